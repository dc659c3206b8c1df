"""The reference LST that the engine (``blindspots_nb.lst``) is checked against.

The straightforward reading of the algorithm that the authors' released code follows:
forward and backward at x for the gradient, then a second, no-grad forward at the
candidate for the acceptance test. It shares no code with the package (only the names of
the hyperparameters it reads: ``step_size``, ``eps``, ``delta``, ``init_noise``, ``seed``), so
that a test comparing the two compares two implementations. ``benchmarks/paper_scale.py``
times :func:`released_style_steps` as its baseline (it puts this folder on its path).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def released_style_steps(model, x: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                         initial_confidence: torch.Tensor, cfg, iterations: int) -> torch.Tensor:
    """``iterations`` LST steps from ``x`` with two forward passes each; the images reached."""
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
        accept = (initial_confidence - confidence) < cfg.delta
        x = torch.where(accept.view(-1, 1, 1, 1), candidate, x)
    return x


def reference_traverse(model, sources: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor,
                       cfg) -> torch.Tensor:
    """``cfg.iterations`` steps of :func:`released_style_steps` from the engine's start: the
    sources plus uniform noise of width ``cfg.init_noise`` drawn from ``cfg.seed``, clamped
    to [0, 1]; the confidence to keep is the clean sources'."""
    initial_confidence = model(sources).softmax(1).gather(1, labels[:, None])[:, 0]
    noise = torch.rand(sources.shape, generator=torch.Generator().manual_seed(cfg.seed), dtype=sources.dtype)
    x = (sources + cfg.init_noise * (noise - 0.5)).clamp(0, 1)
    return released_style_steps(model, x, labels, targets, initial_confidence, cfg, cfg.iterations)
