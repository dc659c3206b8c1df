"""Benchmark at the paper's scale: LST image-iterations per second for the engine under
each execution option and for the released-style two-forward loop, triangle points per
second per pair and with shared points, and the projected time of one paper row.

Everything runs in this process on the same model and inputs; each timing is the
median of ``--runs`` interleaved runs (so drifts of the machine hit all alike).

    python benchmarks/paper_scale.py [--model resnet50] [--batch 196] [--device cuda]
                                     [--options fp32,fp32-folded,bf16] [--pretrained]

Weights are random unless ``--pretrained`` (speed does not depend on them; the output
says which). The released-style loop is the reference LST the tests check the engine
against (``tests/reference_lst.py``): the straightforward reading of the algorithm that
the authors' code follows, forward and backward at x for the gradient, then a second,
no-grad forward at the candidate for the acceptance test; here in the default
(NCHW-contiguous) layout and PyTorch's default precision.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path

import torch

import blindspots_nb
from blindspots_nb.tools import provenance
from blindspots_nb.execution import Execution
from blindspots_nb.analysis.geometry import shared_grid_points, triangle_confidence, triangle_grid, triangles_confidence
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import load_model, module_device, predict, random_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the reference LST lives with the tests
from reference_lst import released_style_steps  # noqa: E402

OPTIONS = {  # name -> execution options of the engine
    "fp32": Execution("fp32"),
    "fp32-nchw": Execution("fp32", channels_last=False),
    "fp32-compiled": Execution("fp32", compile=True),
    "fp32-folded": Execution("fp32", fold_batchnorm=True),
    "fp32-folded-compiled": Execution("fp32", compile=True, fold_batchnorm=True),
    "tf32-conv": Execution("tf32-conv"),
    "tf32": Execution("tf32"),
    "bf16": Execution("bf16"),
    "bf16-compiled": Execution("bf16", compile=True),
    "bf16-folded": Execution("bf16", fold_batchnorm=True),
}
PAPER_ROW = {"sources": 1000, "rounds": 5, "iterations": 400, "divisions": 10}


def _timer(device: torch.device):
    def timed(work) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        work()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start
    return timed


def medians(candidates: dict, runs: int, timed) -> dict[str, float]:
    """Median seconds of each candidate over ``runs`` interleaved runs, after one warm-up
    (compilation, allocator, kernel choice)."""
    for work in candidates.values():
        timed(work)
    times = {name: [] for name in candidates}
    for _ in range(runs):
        for name, work in candidates.items():
            times[name].append(timed(work))
    return {name: statistics.median(values) for name, values in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--device", default=None, help="default: CUDA when available")
    parser.add_argument("--batch", type=int, default=None, help="LST batch (default: 196 on a GPU, 4 on a CPU)")
    parser.add_argument("--iterations", type=int, default=5, help="LST iterations per timed run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs of each (median reported)")
    parser.add_argument("--options", default=None,
                        help=f"comma-separated engine options of {', '.join(OPTIONS)} "
                             "(default: all but the TF32 ones on a CPU, where they equal fp32)")
    parser.add_argument("--triangle-sources", type=int, default=None,
                        help="sources in the triangle timing (default: the batch on a GPU, 1 on a CPU)")
    parser.add_argument("--pretrained", action="store_true", help="the registry's weights instead of random ones")
    args = parser.parse_args(argv)

    model = load_model(args.model, args.device) if args.pretrained else random_model(args.model, args.device)
    device = module_device(model)
    gpu = device.type == "cuda"
    batch = args.batch or (196 if gpu else 4)
    names = (args.options.split(",") if args.options else
             [n for n in OPTIONS if gpu or not n.startswith("tf32")])
    unknown = [n for n in names if n not in OPTIONS]
    if unknown:
        parser.error(f"unknown options {unknown}; known: {', '.join(OPTIONS)}")
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(2 * batch, *model.input_size, generator=generator).to(device)
    sources, targets = images[:batch], images[batch:]
    labels, initial_confidence = (value.to(device) for value in predict(model, sources))
    cfg = LSTConfig(init_noise=0.0)
    timed = _timer(device)
    print(f"blindspots_nb {blindspots_nb.__version__}, torch {torch.__version__}, {args.model} "
          f"({model.info['weights']}), batch {batch} at {model.input_size}, {provenance.device_name(device)}")

    # -- LST
    traversals = {name: Traversal(model, sources, labels, targets, cfg, execution=OPTIONS[name]) for name in names}
    candidates = {name: (lambda t=t: t.step(args.iterations)) for name, t in traversals.items()}
    released = Execution("tf32-conv", channels_last=False)  # PyTorch's defaults, NCHW

    def released_style():
        with torch.enable_grad(), released.scope(device):
            released_style_steps(model, sources.clone(), labels, targets, initial_confidence, cfg, args.iterations)
    candidates["released-style"] = released_style
    seconds = medians(candidates, args.runs, timed)
    rate = {name: batch * args.iterations / s for name, s in seconds.items()}
    baseline = rate["released-style"]
    print(f"\nLST, median of {args.runs} runs of {args.iterations} iterations: image-iterations per second")
    for name, value in rate.items():
        print(f"  {name:20s} {value:10.1f}   {value / baseline:5.2f}x the released-style loop")

    kept = [n for n in names if OPTIONS[n].precision != "bf16"]
    best = max(kept, key=rate.get) if kept else max(names, key=rate.get)
    fastest = max(names, key=rate.get)

    # -- triangles over a paper row's blind spots per source (one per round)
    rounds, divisions = PAPER_ROW["rounds"], PAPER_ROW["divisions"]
    count = args.triangle_sources or (batch if gpu else 1)
    tri_sources, *spots = torch.rand(1 + rounds, count, *model.input_size, generator=generator).to(device)
    tri_labels = predict(model, tri_sources)[0].to(device)
    pairs = list(combinations(range(rounds), 2))
    grid = len(triangle_grid(divisions))
    shared = len(shared_grid_points(rounds, divisions)[0])
    triangle_work = {  # the released way: each triangle's grid in one forward pass
        "per pair": lambda: [triangle_confidence(model, tri_sources, spots[i], spots[j], tri_labels, divisions,
                                                 points_per_pass=grid, execution=released) for i, j in pairs]}
    for name in dict.fromkeys(["fp32", best, fastest]):  # at geometry.default_points_per_pass images per pass
        triangle_work[f"shared, {name}"] = (lambda e=OPTIONS[name]:
                                            triangles_confidence(model, tri_sources, spots, tri_labels, divisions,
                                                                 execution=e))
    triangle_seconds = medians(triangle_work, max(1, args.runs // 2), timed)
    print(f"\ntriangles of {rounds} blind spots ({len(pairs)} pairs, {grid}-point grid), {count} source(s), "
          f"median of {max(1, args.runs // 2)} runs")
    for name, s in triangle_seconds.items():
        forwards = len(pairs) * grid if name == "per pair" else shared
        print(f"  {name:20s} {forwards:4d} forward passes per source, {s / count:7.3f} s per source, "
              f"{forwards * count / s:9.1f} points per second")

    # -- one paper row
    blind_spot_iterations = PAPER_ROW["sources"] * PAPER_ROW["rounds"] * PAPER_ROW["iterations"]
    def row_minutes(lst_rate, triangle_name):
        triangles = PAPER_ROW["sources"] * triangle_seconds[triangle_name] / count
        return (blind_spot_iterations / lst_rate + triangles) / 60
    print(f"\none paper row ({PAPER_ROW['sources']} sources x {PAPER_ROW['rounds']} rounds x "
          f"{PAPER_ROW['iterations']} iterations, then the triangles), projected:")
    print(f"  released-style loop, per-pair triangles: {row_minutes(baseline, 'per pair'):8.1f} min")
    print(f"  engine {best} (best keeping fp32 numbers), shared points: "
          f"{row_minutes(rate[best], f'shared, {best}'):8.1f} min ({rate[best] / baseline:.2f}x on LST)")
    if fastest != best:
        print(f"  engine {fastest} (fastest), shared points: "
              f"{row_minutes(rate[fastest], f'shared, {fastest}'):8.1f} min")
    return rate, triangle_seconds


if __name__ == "__main__":
    main()
