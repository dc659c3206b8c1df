"""The CUDA paths in one command, for whoever has a GPU: the tests marked ``gpu``, LST at each
precision on ``resnet50`` and ``deit_small_patch16_224`` (random weights, batch 196: the
paper's per-image cost), the explorer stepping and redrawing its live triangle on CUDA, and a
tiny protocol run on CUDA. Budgeted for under 8 minutes on one H100 (the two subprocesses are
cut off after 3 and 2.5 minutes); not yet run on one.

    python benchmarks/gpu_check.py [--out-dir results/gpu_check] [--iterations 5]

Writes ``report.json`` (every figure, the device and the versions) and ``table.md`` (the
table for docs/findings.md) to ``--out-dir``. Without CUDA it says so in one line and exits 0.
Random weights time the models and check the device paths; they say nothing about the models.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPOSITORY = Path(__file__).resolve().parents[1]
MODELS = ("resnet50", "deit_small_patch16_224")
BATCH = 196
# The tiny protocol run: fonts_cnn's packaged weights, generated glyphs, nothing to download.
PROTOCOL_RUN = ["reproduce", "--models", "fonts_cnn", "--n-sources", "4", "--rounds", "2", "--iterations", "20",
                "--batch-size", "2", "--device", "cuda"]


def _timed(work) -> tuple[object, float]:
    """What ``work()`` returns and the seconds it took, the GPU's queue drained before and after."""
    torch.cuda.synchronize()
    start = time.perf_counter()
    result = work()
    torch.cuda.synchronize()
    return result, time.perf_counter() - start


def _run(command: list, timeout: float) -> subprocess.CompletedProcess:
    """``command`` in the repository; one cut off after ``timeout`` seconds fails, saying so."""
    try:
        return subprocess.run(command, cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as expired:
        return subprocess.CompletedProcess(command, -1, expired.stdout or "",
                                           f"cut off after {timeout:.0f} s\n{expired.stderr or ''}")


def gpu_tests(timeout: float = 180) -> dict:
    """``pytest -m gpu`` in a subprocess: its exit code and summary line."""
    start = time.perf_counter()
    run = _run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "tests"], timeout)
    lines = (run.stdout.strip() or run.stderr.strip()).splitlines()
    return {"passed": run.returncode == 0, "exit_code": run.returncode, "summary": lines[-1] if lines else "",
            "seconds": time.perf_counter() - start, "output_tail": run.stdout[-3000:] + run.stderr[-2000:]}


def lst_at_each_precision(name: str, iterations: int) -> dict:
    """Image-iterations per second of LST on ``name`` (random weights) at each precision, after
    one warm-up step; the peak memory; whether every image stayed on its level set."""
    from blindspots_nb.execution import PRECISIONS, Execution
    from blindspots_nb.lst import LSTConfig, Traversal
    from blindspots_nb.models import predict, random_model

    model = random_model(name, "cuda")
    generator = torch.Generator().manual_seed(0)
    sources, targets = torch.rand(2, BATCH, *model.input_size, generator=generator).cuda()
    labels = predict(model, sources)[0].cuda()
    results = {}
    for precision in PRECISIONS:
        torch.cuda.reset_peak_memory_stats()
        traversal = Traversal(model, sources, labels, targets, LSTConfig(init_noise=0.0),
                              execution=Execution(precision))
        traversal.step(1)  # kernel choice, allocator
        _, seconds = _timed(lambda: traversal.step(iterations))
        on_level_set = bool((traversal.initial_confidence - traversal.confidence < traversal.config.delta).all())
        results[precision] = {"image_iterations_per_second": BATCH * iterations / seconds,
                              "ms_per_image_iteration": 1000 * seconds / (BATCH * iterations),
                              "peak_memory_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
                              "finite": bool(torch.isfinite(traversal.images).all()), "on_level_set": on_level_set}
    return results


def explorer_on_cuda() -> dict:
    """The explorer's view on fonts_cnn on CUDA: a Step of 10 iterations with its live triangle
    (every grid point in one pass), then the 'Redraw triangle' button's work; the figures must
    show the iteration the explorer reached."""
    from blindspots_nb.explorer.view import LSTExplorer

    explorer = LSTExplorer("fonts_cnn", device="cuda")
    _, step_seconds = _timed(lambda: explorer.step(10))
    _, redraw_seconds = _timed(explorer.triangle.redraw)
    triangle = explorer.state.live_triangle
    drawn = [figure.layout.meta["iteration"] for figure in (explorer.figure, explorer.triangle.surface)]
    return {"step_10_seconds": step_seconds, "redraw_seconds": redraw_seconds,
            "triangle_seconds": triangle.seconds, "points": triangle.points, "on_cuda": explorer.traversal.images.is_cuda,
            "iteration": explorer.traversal.iteration, "drawn_iterations": drawn,
            "passed": explorer.traversal.images.is_cuda and drawn == [10, 10]}


def tiny_protocol_run(out_dir: Path, timeout: float = 150) -> dict:
    """``blindspots-nb reproduce`` on fonts_cnn with ``--device cuda`` (through papermill) and its Table 1 row."""
    start = time.perf_counter()
    run = _run([sys.executable, "-m", "blindspots_nb", *PROTOCOL_RUN, "--out-dir", str(out_dir)], timeout)
    seconds = time.perf_counter() - start
    table = out_dir / "table1.csv"
    row = table.read_text().splitlines()[1] if run.returncode == 0 and table.is_file() else None
    return {"passed": run.returncode == 0, "seconds": seconds, "table1_row": row, "stderr_tail": run.stderr[-2000:]}


def markdown(report: dict) -> str:
    """The report as the table for docs/findings.md."""
    lines = [f"{report['device']}, torch {report['versions']['torch']}, blindspots_nb "
             f"{report['versions']['blindspots_nb']}; `python benchmarks/gpu_check.py`, {report['created']}", "",
             "| check | result | seconds |", "|---|---|---:|",
             f"| `pytest -m gpu` | {report['gpu_tests']['summary']} | {report['gpu_tests']['seconds']:.0f} |"]
    for name, precisions in report["lst"].items():
        for precision, figures in precisions.items():
            state = "ok" if figures["finite"] and figures["on_level_set"] else "NOT on the level set"
            lines.append(f"| LST {name}, batch {BATCH}, {precision} | {figures['image_iterations_per_second']:.0f} "
                         f"image-iterations/s ({figures['ms_per_image_iteration']:.2f} ms each), peak "
                         f"{figures['peak_memory_gib']:.1f} GiB, {state} | |")
    explorer = report["explorer"]
    lines.append(f"| explorer on fonts_cnn: Step of 10 with its triangle ({explorer['points']} points), drawn at "
                 f"iteration {explorer['drawn_iterations']} | {'ok' if explorer['passed'] else 'FAILED'}; redraw "
                 f"{explorer['redraw_seconds']:.2f} s | {explorer['step_10_seconds']:.2f} |")
    protocol = report["protocol"]
    lines.append(f"| tiny protocol run on CUDA (fonts_cnn, 4 sources x 2 rounds x 20 iterations) | "
                 f"{'ok' if protocol['passed'] else 'FAILED'} | {protocol['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=REPOSITORY / "results" / "gpu_check")
    parser.add_argument("--iterations", type=int, default=5, help="timed LST iterations per precision")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device here (torch {torch.__version__}); nothing to check. "
              "Run `python benchmarks/gpu_check.py` on a machine with an NVIDIA GPU.")
        return 0

    import blindspots_nb
    from blindspots_nb.tools import provenance

    report = {"device": provenance.device_name("cuda"), "versions": provenance.versions(),
              "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "batch": BATCH,
              "weights": "random initialisation (seed 0): for timing and device paths only"}
    print(f"gpu_check: {report['device']}, blindspots_nb {blindspots_nb.__version__}, torch {torch.__version__}")
    report["gpu_tests"] = gpu_tests()
    print(f"  pytest -m gpu: {report['gpu_tests']['summary']}")
    report["lst"] = {}
    for name in MODELS:
        report["lst"][name] = lst_at_each_precision(name, args.iterations)
        print(f"  LST {name}: " + ", ".join(f"{p} {f['image_iterations_per_second']:.0f}/s"
                                           for p, f in report["lst"][name].items()))
    report["explorer"] = explorer_on_cuda()
    print(f"  explorer: step {report['explorer']['step_10_seconds']:.2f} s, drawn {report['explorer']['drawn_iterations']}")
    with tempfile.TemporaryDirectory() as folder:
        report["protocol"] = tiny_protocol_run(Path(folder) / "run")
    print(f"  tiny protocol run: {'ok' if report['protocol']['passed'] else 'FAILED'}")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "report.json").write_text(json.dumps(report, indent=1))
    (args.out_dir / "table.md").write_text(markdown(report))
    print(f"wrote {args.out_dir / 'report.json'} and {args.out_dir / 'table.md'}")
    passed = (report["gpu_tests"]["passed"] and report["explorer"]["passed"] and report["protocol"]["passed"]
              and all(f["finite"] and f["on_level_set"] for p in report["lst"].values() for f in p.values()))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
