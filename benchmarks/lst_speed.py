"""Benchmark: the fused LST engine against a plain two-forward loop.

Both run the same iterations on the same model and inputs in this process; each is
timed over several runs and the median time per iteration is compared.

    python benchmarks/lst_speed.py [--model efficientnet_lite0] [--batch 4]
                                   [--iterations 5] [--runs 7] [--device cpu]

The baseline is the straightforward reading of the algorithm: forward and backward
at x for the gradient, then a second (no-grad) forward at the candidate to test
acceptance, on images in the default (NCHW-contiguous) layout.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

import blindspots_nb
from blindspots_nb.data import sample_images
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import load_model, module_device, predict


def two_forward_steps(model, x, labels, targets, p0, cfg: LSTConfig, iterations: int) -> torch.Tensor:
    """The baseline: ``iterations`` LST steps with two forward passes each."""
    parallel = torch.zeros_like(x)
    for _ in range(iterations):
        x_grad = x.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_grad), labels, reduction="sum")
        (g,) = torch.autograd.grad(loss, x_grad)
        dx = targets - x
        coefficient = (g * dx).flatten(1).sum(1) / (g * g).flatten(1).sum(1).clamp_min(1e-30)
        dx_perp = dx - coefficient.view(-1, 1, 1, 1) * g
        parallel = (parallel + cfg.eps / 2 * g).clamp(-cfg.eps, cfg.eps)
        candidate = (x + cfg.step_size * dx_perp - parallel).clamp(0, 1)
        with torch.no_grad():
            confidence = model(candidate).softmax(1).gather(1, labels[:, None])[:, 0]
        accept = (p0 - confidence) < cfg.delta
        x = torch.where(accept.view(-1, 1, 1, 1), candidate, x)
    return x


def _synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=5, help="LST iterations per timed run")
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each (median reported)")
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)

    model = load_model(args.model, device=args.device)
    device = module_device(model)
    images, names = sample_images(model)
    generator = torch.Generator().manual_seed(0)
    order = torch.randperm(len(names), generator=generator)
    sources = images[order[:args.batch]].to(device)
    targets = images[order.roll(1)[:args.batch]].to(device)
    labels, p0 = (value.to(device) for value in predict(model, sources))
    cfg = LSTConfig(init_noise=0.0)

    def time_engine():
        traversal = Traversal(model, sources, labels, targets, cfg)
        _synchronize(device)
        start = time.perf_counter()
        traversal.step(args.iterations)
        _synchronize(device)
        return time.perf_counter() - start

    def time_baseline():
        _synchronize(device)
        start = time.perf_counter()
        two_forward_steps(model, sources.clone(), labels, targets, p0, cfg, args.iterations)
        _synchronize(device)
        return time.perf_counter() - start

    time_engine(), time_baseline()  # warm-up: allocator, kernels, layouts
    engine, baseline = [], []
    for _ in range(args.runs):  # interleaved, so drifts of the machine hit both alike
        baseline.append(time_baseline() / args.iterations)
        engine.append(time_engine() / args.iterations)

    baseline_ms, engine_ms = statistics.median(baseline) * 1e3, statistics.median(engine) * 1e3
    print(f"blindspots_nb {blindspots_nb.__version__}, torch {torch.__version__}, {args.model}, "
          f"batch {args.batch} at {tuple(sources.shape[1:])}, device {device} "
          f"({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)")
    print(f"median per iteration over {args.runs} runs of {args.iterations} iterations: "
          f"two-forward baseline {baseline_ms:.1f} ms, engine {engine_ms:.1f} ms")
    print(f"speed-up (baseline / engine): {baseline_ms / engine_ms:.2f}x")
    return baseline_ms / engine_ms


if __name__ == "__main__":
    main()
