"""Benchmark of the explorer's live triangle: what one redraw of the triangle costs (its
grid's forward passes and the view's drawing), and the iterations per second of the
explorer's Run with the live triangle on and off, beside a plain ``Traversal`` of the
same two pairs in the same process.

    python benchmarks/live_triangle.py [--models efficientnet_lite0,fonts_cnn] [--iterations 200]
                                       [--runs 3] [--redraws 5] [--divisions 10]

Each model explores its default images (photos for ImageNet models, glyphs for FONTS
ones) with the shipped weights, in the widget view (``LSTExplorer``, no browser: the
figures are built as for one). The plain traversal steps, and the timed redraws run, in
a worker thread as the explorer's Run does (on a CPU torch can run at other speeds in
the main thread). A redraw is timed as the explorer times it for its
throttle (compute and drawing); each rate is the median over ``--runs`` rounds, the three
kinds of run interleaved in each round so that drifts of the machine hit all alike.
'share' is the part of a live run's wall time its redraws took (the throttle's own
timing, within the run): what the live triangle takes from stepping, free of the drift
between runs that the ratio on/off also holds.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time

import torch
from tqdm.auto import tqdm

import blindspots_nb
from blindspots_nb.explorer.view import LSTExplorer
from blindspots_nb.lst import Traversal

KINDS = ("plain Traversal", "Run, live off", "Run, live on")


def in_worker(work):
    """``work()`` in a thread of its own, as the explorer's Run steps and redraws: torch's
    CPU kernels can run at other speeds in the main thread than in another one."""
    results = []
    worker = threading.Thread(target=lambda: results.append(work()))
    worker.start()
    worker.join()
    return results[0]


def redraw_seconds(view: LSTExplorer, redraws: int) -> tuple[float, float]:
    """Median seconds of one redraw of the live triangle (compute and draw), and of its compute alone."""
    state, total, compute = view.state, [], []
    for _ in range(redraws):
        triangle = in_worker(state.redraw_triangle)
        total.append(state.throttle.cost)
        compute.append(triangle.seconds)
    return statistics.median(total), statistics.median(compute)


def run_rate(view: LSTExplorer, kind: str, iterations: int) -> tuple[float, int, float]:
    """Iterations per second of one kind of run from the start, the triangles it redrew and the
    share of its time that redrawing took (as the throttle timed it)."""
    state = view.state
    state.live = kind == "Run, live on"
    in_worker(state.reset)  # with the live triangle on, its first redraw: the throttle's first cost
    if kind == "plain Traversal":
        t = state.traversal
        plain = Traversal(t.model, t.sources, t.labels, t.targets, t.config, execution=t.execution)
        start = time.perf_counter()
        in_worker(lambda: plain.step(iterations))
        return iterations / (time.perf_counter() - start), 0, 0.0
    state.set_config(iterations=iterations)
    redraws, spent = state.throttle.redraws, state.throttle.spent
    start = time.perf_counter()
    state.run()
    state.wait()
    seconds = time.perf_counter() - start
    if state.error is not None:
        raise state.error
    return iterations / seconds, state.throttle.redraws - redraws, (state.throttle.spent - spent) / seconds


def measure(model_name: str, iterations: int, runs: int, redraws: int, divisions: int, every: float) -> dict:
    """The redraw time and the median rate of each kind of run for ``model_name``."""
    view = LSTExplorer(model_name, model_names=[], iterations_per_click=10, divisions=divisions, device="cpu")
    state = view.state
    state.throttle.every = every
    t = state.traversal  # warm up: the first passes of a model run slower
    in_worker(lambda: Traversal(t.model, t.sources, t.labels, t.targets, t.config, execution=t.execution).step(3))
    total, compute = redraw_seconds(view, redraws)
    rates = {kind: [] for kind in KINDS}
    drawn, shares = [], []
    for _ in tqdm(range(runs), desc=model_name, leave=False):
        for kind in KINDS:
            rate, count, share = run_rate(view, kind, iterations)
            rates[kind].append(rate)
            if kind == "Run, live on":
                drawn.append(count)
                shares.append(share)
    return {"model": model_name, "caption": state.caption(), "points": state.live_triangle.points,
            "redraw": total, "compute": compute, "redraws per run": statistics.median(drawn),
            "redraw share": statistics.median(shares),
            **{kind: statistics.median(values) for kind, values in rates.items()}}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="efficientnet_lite0,fonts_cnn")
    parser.add_argument("--iterations", type=int, default=200, help="iterations of each run")
    parser.add_argument("--runs", type=int, default=3, help="rounds; each rate is the median over them")
    parser.add_argument("--redraws", type=int, default=5, help="redraws timed; the median is shown")
    parser.add_argument("--divisions", type=int, default=10, help="the triangle's grid (10: 66 points)")
    parser.add_argument("--every", type=float, default=3.0, help="the throttle's least seconds between redraws")
    args = parser.parse_args(argv)
    print(f"blindspots_nb {blindspots_nb.__version__}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.iterations} iterations per run, "
          f"median of {args.runs} rounds; the live triangle redraws at most every {args.every:g} s and after 20x "
          "its last redraw's cost")
    rows = [measure(name, args.iterations, args.runs, args.redraws, args.divisions, args.every)
            for name in args.models.split(",")]
    print(f"{'model':<20} {'points':>6} {'redraw s':>9} {'compute s':>9} {'plain it/s':>10} {'off it/s':>9} "
          f"{'on it/s':>8} {'redraws':>7} {'share':>6} {'on/off':>7} {'off/plain':>9}")
    for row in rows:
        on, off, plain = row["Run, live on"], row["Run, live off"], row["plain Traversal"]
        print(f"{row['model']:<20} {row['points']:>6} {row['redraw']:>9.3f} {row['compute']:>9.3f} {plain:>10.2f} "
              f"{off:>9.2f} {on:>8.2f} {row['redraws per run']:>7g} {row['redraw share']:>6.3f} {on / off:>7.3f} "
              f"{off / plain:>9.3f}")
    for row in rows:
        cost = 1 - row["Run, live on"] / row["Run, live off"]
        print(f"{row['model']}: the live triangle costs {100 * cost:.1f}% of Run's iterations per second (on/off); "
              f"redrawing took {100 * row['redraw share']:.1f}% of a live run's time ({row['caption']})")
    return rows


if __name__ == "__main__":
    main()
