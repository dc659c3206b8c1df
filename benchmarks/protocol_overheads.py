"""Benchmark of what the tables' protocol does around the model's compute, at ImageNet's scale.

It builds an ImageNet-shaped folder in a temporary directory (the 1000 ImageNet class
folders ``nXXXXXXXX``, small JPEGs in each), runs the paper preset's protocol on it with a
tiny model of the 1000 ImageNet classes, so that the model's compute is negligible, and
prints the wall time of each stage per model and in total, the peak memory, and how each
stage grows from the smallest folder to the largest (a stage growing faster than the
number of files is flagged).

    python benchmarks/protocol_overheads.py [--files-per-class 10,50] [--runs 1]
                                            [--n-sources N] [--iterations 1] [--divisions 1]

The tiny model: one convolution of random weights (seeded), pooled to a 4 x 4 grid, and a
nearest-class-mean head fitted to the synthetic classes (each class is a 4 x 4 pattern of
colours, every file of it that pattern with noise), so that the pool rule (correct,
confidence > 0.6) passes on the first image of each class, as a good ImageNet model does
on most classes. The stages run in this process as ``blindspots-nb reproduce`` runs them
(prepare the pool; per model the notebook's work, then its report notebook under papermill;
the tables), each timed by what it does exclusively:

- open folder: listing (and checking) the image folder; pool: selecting the pool
  (decoding images, running the models), drawing the derangements;
- blind spots: LST; distances: the Table-1 distances (SSIM and LPIPS: not the model's
  compute, but slow on a CPU); triangles: the Table-2 grid passes;
- manifests: hashing and checking the finished pieces; pieces: loading the model and the
  pool's images, writing the pieces' files;
- report: the papermill kernel executing the packaged notebook of the finished model
  (its start, its checks, the report's figures); tables: Tables 1 and 2 and ``run.json``.

The folder is fresh in the page cache (a real ImageNet folder may be read from disk).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

import blindspots_nb
from blindspots_nb.models import imagenet_class_names, imagenet_wnids

GRID = 4                   # each synthetic class is a GRID x GRID pattern of colours
PICTURE = (80, 60)         # (width, height) of each JPEG: small, and not square, as photos are
INPUT_SIZE = (3, 224, 224)
MODEL_SPEC = f"{Path(__file__).resolve()}:tiny_imagenet_model"
LINEAR_SLACK = 1.2         # a stage is flagged when it grows more than this times the files


def class_patterns(seed: int = 0) -> np.ndarray:
    """(1000, GRID, GRID, 3) colours in [40, 215], one pattern per ImageNet class."""
    return np.random.default_rng(seed).uniform(40, 215, size=(1000, GRID, GRID, 3))


def picture(pattern: np.ndarray, noise: np.ndarray | None = None) -> Image.Image:
    """A class's pattern as a PICTURE-sized RGB image, with ``noise`` (pixels) added."""
    width, height = PICTURE
    pixels = pattern.repeat(height // GRID, 0).repeat(width // GRID, 1)
    if noise is not None:
        pixels = pixels + noise
    return Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")


def build_folder(root: Path, files_per_class: int, seed: int = 0) -> int:
    """``root/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG``, ``files_per_class`` per class; returns
    the number of files."""
    generator = np.random.default_rng(seed + 1)
    width, height = PICTURE
    count = 0
    for wnid, pattern in zip(imagenet_wnids(), class_patterns(seed)):
        folder = root / wnid
        folder.mkdir(parents=True)
        for _ in range(files_per_class):
            count += 1
            buffer = io.BytesIO()
            picture(pattern, generator.normal(0, 4, size=(height, width, 3))).save(
                buffer, "JPEG", quality=90, subsampling=0)
            (folder / f"ILSVRC2012_val_{count:08d}.JPEG").write_bytes(buffer.getvalue())
    return count


def _pattern_at(size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pattern's cell under each of ``size`` x ``size`` evenly spaced points of the
    model's input (rows, columns): where the preprocessing (shorter side resized to 256,
    centre crop 224) puts the pattern's cells."""
    width, height = PICTURE
    short = round(INPUT_SIZE[1] / 0.875)
    resized = (int(short * width / height), short)
    cells = []
    for length, new, cell in ((height, resized[1], height // GRID), (width, resized[0], width // GRID)):
        offset = int(round((new - INPUT_SIZE[1]) / 2.0))
        centres = (np.arange(size) + 0.5) * INPUT_SIZE[1] / size + offset
        cells.append(np.clip(((centres * length / new) // cell).astype(int), 0, GRID - 1))
    return cells[0], cells[1]


def tiny_imagenet_model():
    """The benchmark's model (a factory spec's function): 8 x 8 average pooling, a random
    3 x 3 convolution (seed 0), pooled to GRID x GRID, and a nearest-class-mean head over
    the class patterns as the preprocessing places them, rounded so that every process
    builds the very same weights."""
    torch.manual_seed(0)
    pooled = INPUT_SIZE[1] // 8
    features = nn.Sequential(nn.AvgPool2d(8), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(GRID),
                             nn.Flatten())
    rows, columns = _pattern_at(pooled)
    prototypes = torch.tensor(class_patterns()[:, rows][:, :, columns] / 255, dtype=torch.float32)
    with torch.no_grad():
        means = features[1:](prototypes.permute(0, 3, 1, 2)).double()
        squared = torch.cdist(means, means).pow(2)
        scale = 30 / squared[~torch.eye(len(means), dtype=torch.bool)].min()  # a margin of 30 at the closest pair
        head = nn.Linear(means.shape[1], len(means))
        head.weight.copy_((2 * scale * means).round(decimals=4))
        head.bias.copy_((-scale * means.pow(2).sum(1)).round(decimals=4))
    return {"module": nn.Sequential(features, head).eval(), "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0),
            "class_names": list(imagenet_class_names()), "input_size": INPUT_SIZE}


class StageClock:
    """Wall time per stage, each stage timed exclusively: time spent in a timed function
    called from another timed one counts for the inner one only (main thread only)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self._stack: list[list] = []  # [stage, start, seconds in inner stages]

    def wrap(self, owner, attribute: str, stage: str):
        original = getattr(owner, attribute)

        def timed(*args, **kwargs):
            if threading.current_thread() is not threading.main_thread():
                return original(*args, **kwargs)
            self._stack.append([stage, time.perf_counter(), 0.0])
            try:
                return original(*args, **kwargs)
            finally:
                _, start, inner = self._stack.pop()
                elapsed = time.perf_counter() - start
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed - inner
                if self._stack:
                    self._stack[-1][2] += elapsed
        setattr(owner, attribute, timed)
        return original

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, {}
        return taken


@contextlib.contextmanager
def instrumented(clock: StageClock):
    """The protocol's functions, wrapped by ``clock`` for the duration."""
    from blindspots_nb import data
    from blindspots_nb.data import imagenet
    from blindspots_nb.protocol import run, store

    targets = [(data, "imagenet_val", "open folder"), (imagenet, "imagenet_val", "open folder"),
               (run, "prepare", "pool"), (run, "run_model", "pieces"), (run, "traverse", "blind spots"),
               (run, "target_distances", "distances"), (run, "triangles_confidence", "triangles"),
               (store.RunStore, "_seal", "manifests"), (store.RunStore, "_piece", "manifests"),
               (run, "run_notebook", "report"), (run, "assemble", "tables")]
    originals = [(owner, attribute, clock.wrap(owner, attribute, stage)) for owner, attribute, stage in targets]
    try:
        yield
    finally:
        for owner, attribute, original in reversed(originals):
            setattr(owner, attribute, original)


SHARED = ("open folder", "pool", "tables")
PER_MODEL = ("pieces", "blind spots", "distances", "triangles", "manifests", "report")
COMPUTE = ("blind spots", "triangles")


def run_protocol(data_root: Path, out_dir: Path, n_sources, iterations: int, divisions: int,
                 clock: StageClock) -> dict:
    """The paper preset's protocol on ``data_root`` with the tiny model as its one model, stage
    by stage as ``reproduce`` runs it; returns {"shared": {stage: s}, "model": {stage: s}}."""
    from blindspots_nb.protocol import experiment as experiments, run
    from blindspots_nb.protocol.store import RunStore

    paper = experiments.preset("paper", str(data_root))[0]
    experiment = dataclasses.replace(paper, models=(MODEL_SPEC,), n_sources=n_sources, divisions=divisions,
                                     lst=dataclasses.replace(paper.lst, iterations=iterations))
    store = RunStore(out_dir)
    with instrumented(clock), contextlib.redirect_stdout(io.StringIO()), store.hold():
        store.begin([experiment], weights=run.weights_identity([experiment], {}))
        run.prepare(experiment, store)
        shared = clock.take()
        run.run_model(experiment, MODEL_SPEC, RunStore(out_dir), progress=False)  # the kernel's own store
        run.run_notebook(store, experiment, MODEL_SPEC)
        store.model_finished(experiment, MODEL_SPEC)  # reproduce's check once the notebooks ran
        model = clock.take()
        run.assemble(store, [experiment])
        return {"shared": {**shared, **clock.take()}, "model": model}


def median_stages(runs: list[dict]) -> dict:
    return {part: {stage: statistics.median(run[part].get(stage, 0.0) for run in runs)
                   for stage in set().union(*(run[part] for run in runs))} for part in runs[0]}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files-per-class", default="10,50",
                        help="comma-separated folder sizes, files per class (default: 10,50: 10,000 and 50,000 files)")
    parser.add_argument("--runs", type=int, default=1, help="runs of the protocol per size (medians reported)")
    parser.add_argument("--n-sources", type=int, default=None, help="cap on the pool (default: all 1000 classes)")
    parser.add_argument("--iterations", type=int, default=1, help="LST iterations (the paper: 400)")
    parser.add_argument("--divisions", type=int, default=1, help="triangle grid divisions (the paper: 10)")
    args = parser.parse_args(argv)
    sizes = [int(value) for value in args.files_per_class.split(",")]

    print(f"blindspots_nb {blindspots_nb.__version__} ({Path(blindspots_nb.__file__).parent}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(f"model: {MODEL_SPEC} — random convolution weights (seed 0) and a nearest-class-mean head fitted "
          "to the synthetic classes: for timing only, not a real classifier")
    print(f"protocol: the paper preset (pool rule, {1000 if args.n_sources is None else args.n_sources} "
          f"sources, 5 rounds, batch 196) with {args.iterations} LST iteration(s) and {args.divisions} triangle "
          f"division(s); one model; median of {args.runs} run(s) per size")
    results = {}
    with tempfile.TemporaryDirectory(prefix="protocol_overheads_") as temporary:
        for per_class in sizes:
            data_root = Path(temporary) / f"imagenet_{per_class}" / "val"
            start = time.perf_counter()
            files = build_folder(data_root, per_class)
            print(f"\n{files:,} files ({per_class} per class), made in {time.perf_counter() - start:.1f} s")
            clock, runs = StageClock(), []
            for index in range(args.runs):
                start = time.perf_counter()
                runs.append(run_protocol(data_root, Path(temporary) / f"run_{per_class}_{index}", args.n_sources,
                                         args.iterations, args.divisions, clock))
                print(f"  run {index + 1}: {time.perf_counter() - start:.1f} s", flush=True)
            results[files] = median_stages(runs)
            print_stages(results[files])
    peak = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(f"\npeak memory (largest resident set of this process or a kernel): {peak / 1024:.0f} MiB")
    if len(results) > 1:
        print_growth(results)
    return results


def overhead(stages: dict) -> float:
    return sum(seconds for stage, seconds in stages.items() if stage not in COMPUTE)


def print_stages(stages: dict):
    models = [part for part in stages if part != "shared"]
    shared = stages["shared"]
    print("  stage          " + "".join(f"{part:>10s}" for part in ["shared", *models]))
    for stage in SHARED + PER_MODEL:
        print(f"  {stage:14s} " + "".join(f"{stages[part].get(stage, 0.0):10.2f}" for part in ["shared", *models]))
    total = sum(shared.values()) + sum(sum(stages[m].values()) for m in models)
    per_model = statistics.median(overhead(stages[m]) for m in models) + overhead(shared) / len(models)
    distances = statistics.median(stages[m].get("distances", 0.0) for m in models)
    print(f"  total {total:.1f} s; outside the model's compute ({', '.join(COMPUTE)}): {per_model:.1f} s per model "
          f"(its own stages and its share of the shared ones), {per_model - distances:.1f} s without the Table-1 "
          "distances (SSIM and LPIPS: compute of their own, on the device in a GPU run)")


def print_growth(results: dict):
    (small, low), (large, high) = min(results.items()), max(results.items())
    factor = large / small
    print(f"\ngrowth from {small:,} to {large:,} files ({factor:g}x the files):")
    for stage in SHARED + PER_MODEL:
        before = low["shared"].get(stage, 0.0) + sum(low[m].get(stage, 0.0) for m in low if m != "shared")
        after = high["shared"].get(stage, 0.0) + sum(high[m].get(stage, 0.0) for m in high if m != "shared")
        ratio = after / before if before > 0 else float("nan")
        flag = "  <- faster than linear" if before > 0.05 and ratio > LINEAR_SLACK * factor else ""
        print(f"  {stage:14s} {before:8.2f} s -> {after:8.2f} s  ({ratio:5.2f}x){flag}")


if __name__ == "__main__":
    main()
