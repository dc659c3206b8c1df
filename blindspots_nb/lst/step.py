"""The pieces of one LST iteration: the model's probabilities and cross-entropy gradient
in one forward and one backward pass (:func:`forward_backward`), the step towards the
target orthogonal to that gradient (:func:`orthogonal_step`), the per-sample inner
product it uses (:func:`per_sample_dot`), and the per-sample choice between the
candidate and the current point (:func:`where_sample`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..execution import Execution


def per_sample_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_i, b_i> for each sample i of two batches of the same shape: shape (B,)."""
    return (a * b).flatten(1).sum(1)


def _over_images(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-sample ``values`` (B,) shaped (B, 1, ..., 1) to broadcast over ``like``'s samples."""
    return values.view(-1, *([1] * (like.dim() - 1)))


def where_sample(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample select: a where mask else b."""
    return torch.where(_over_images(mask, a), a, b)


def orthogonal_step(gradient: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The part of ``direction`` orthogonal to ``gradient``, per sample.

    A sample with zero gradient keeps its whole direction.
    """
    g_dot_g = per_sample_dot(gradient, gradient)
    coefficient = per_sample_dot(gradient, direction) / torch.where(g_dot_g > 0, g_dot_g, 1.0)
    return direction - _over_images(coefficient, gradient) * gradient


def as_execution(execution: Execution | None) -> Execution:
    """``execution`` checked to be an :class:`Execution`; None is the default one."""
    if not isinstance(execution, (Execution, type(None))):
        raise TypeError(f"execution must be an Execution, got {type(execution).__name__}")
    return execution or Execution()


def forward_backward(model, images: torch.Tensor, labels: torch.Tensor, execution: Execution | None = None):
    """Probabilities at ``images`` and the gradient of CE(f(x), y) with respect to each
    image (the loss is summed, so each image gets exactly its own gradient), both at least
    float32: one forward and one backward pass, as LST takes them."""
    execution = as_execution(execution)
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), execution.scope(x.device):
        logits = execution.logits(model, x)
        (gradient,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), x)
    return logits.detach().softmax(1), gradient
