"""How long :func:`blindspots_nb.results.collect` takes on many runs: one run folder of the offline
preset's size (its experiments, models, pool sizes, rounds and divisions; LST shortened to 5
iterations, which leaves the folder's files as many and as large) seen 100 times in a temporary
folder (each a folder of links to the run's files), collected a few times; prints the median.

    python benchmarks/collect_runs.py [--run FOLDER] [--runs 100] [--repeats 5]

``--run`` takes an existing run folder (e.g. ``results/reproduce``) instead of making one (about a
minute on a CPU). The files are read from the page cache after the first repeat, as on a machine
that browses its runs again; the first repeat is printed too.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from blindspots_nb import protocol
from blindspots_nb.results import collect
from blindspots_nb.results.examples import make_run


def offline_sized_run(folder: Path) -> Path:
    """A finished run of the offline preset with its sizes, LST shortened to 5 iterations."""
    experiments = [dataclasses.replace(e, lst=dataclasses.replace(e.lst, iterations=5))
                   for e in protocol.preset("offline")]
    return make_run(folder, experiments, preset="offline")


def linked_copies(run: Path, root: Path, count: int) -> Path:
    """``root`` holding ``count`` folders, each linking to every entry of ``run``: ``count`` runs to collect."""
    for k in range(count):
        copy = root / f"run_{k:03d}"
        copy.mkdir(parents=True)
        for entry in run.iterdir():
            (copy / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
    return root


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="a finished run folder (default: make one of the offline preset)")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as temporary:
        run = args.run or offline_sized_run(Path(temporary) / "offline")
        root = linked_copies(run, Path(temporary) / "runs", args.runs)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            with warnings.catch_warnings(record=True) as skipped:
                rows = collect(root)
            times.append(time.perf_counter() - start)
            if skipped or rows["run"].nunique() != args.runs:
                raise SystemExit(f"collect read {rows['run'].nunique()} of {args.runs} runs: "
                                 + "; ".join(str(w.message) for w in skipped))
        median = statistics.median(times)
        print(f"collect on {args.runs} runs ({len(rows)} rows, {rows.shape[1]} columns) of {run}: median "
              f"{median:.2f} s over {args.repeats} repeats (first {times[0]:.2f} s, min {min(times):.2f} s, "
              f"max {max(times):.2f} s)")
    return median


if __name__ == "__main__":
    main()
