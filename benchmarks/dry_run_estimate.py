"""How close ``reproduce --dry-run``'s estimate comes to the run's own computation.

In one process and back to back (so that a loaded machine slows both alike): the plan of
a small run (:func:`blindspots_nb.protocol.run.plan`, which times a few LST iterations on
each model's first batch), then that run's work (pool, each model's blind spots and
triangles, as ``blindspots-nb reproduce``'s notebooks do it) in a temporary folder. It prints
the estimate, the computation the run measured (its records' ``blind_spots_s`` and
``triangles_s``), their ratio, and exits 1 when the ratio is outside [1/2, 2].

    python benchmarks/dry_run_estimate.py [--models fonts_cnn,fonts_cnn_at] [--n-sources 12]
                                          [--rounds 3] [--iterations 100] [--batch-size 4]
                                          [--divisions 5] [--device cpu]

The estimate leaves out what is not computation (loading models, selecting the pool,
starting the notebooks' kernels): the plan says so beside its number.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunStore, plan, prepare, run_model
from blindspots_nb.protocol import run as run_module


def main(argv=None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="fonts_cnn,fonts_cnn_at")
    parser.add_argument("--n-sources", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--divisions", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    experiment = Experiment("fonts:test", tuple(args.models.split(",")), LSTConfig(iterations=args.iterations),
                            n_sources=args.n_sources, rounds=args.rounds, batch_size=args.batch_size,
                            divisions=args.divisions)
    start = time.perf_counter()
    planned = plan([experiment], device=args.device)
    plan_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as folder:
        store = RunStore(folder)
        store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
        prepare(experiment, store, device=args.device)
        measured = {name: run_model(experiment, name, store, device=args.device, progress=False)
                    for name in experiment.models}
    computed = sum(t["blind_spots_s"] + t["triangles_s"] for t in measured.values())
    ratio = planned["estimate_s"] / computed
    for name, timings in measured.items():
        print(f"{name}: estimated {planned['experiments'][0]['timings'][name]['estimate_s']:.2f} s, "
              f"measured {timings['blind_spots_s'] + timings['triangles_s']:.2f} s")
    print(f"plan (dry run) {plan_s:.1f} s; estimate {planned['estimate_s']:.2f} s; computation measured "
          f"{computed:.2f} s; estimate / measured = {ratio:.2f}")
    return ratio


if __name__ == "__main__":
    sys.exit(0 if 0.5 <= main() <= 2 else 1)
