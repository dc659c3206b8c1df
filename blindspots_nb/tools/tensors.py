"""Checks and per-sample measures of image batches, shared by LST, the attacks, the
saliency maps and the explorer so that each refuses the same inputs with the same words
and measures the same distance."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch


def check_images(name: str, images: torch.Tensor) -> None:
    """Refuse NaN, infinite and out-of-[0, 1] pixels (NaN would pass a range test)."""
    finite = torch.isfinite(images)
    if not bool(finite.all()):
        raise ValueError(f"{name} hold {int((~finite).sum())} NaN or infinite pixels; images must have "
                         "finite pixels in [0, 1]")
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise ValueError(f"{name} must have pixels in [0, 1]; found range [{low:.3g}, {high:.3g}]. "
                         "Normalisation belongs inside the model.")


def class_indices(values, name: str, count: int, device) -> torch.Tensor:
    """``values`` as ``count`` class indices (a long tensor); floats and booleans are
    refused rather than truncated to some class."""
    labels = torch.as_tensor(values, device=device)
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be integer class indices, got {labels.dtype} values "
                         f"{labels.reshape(-1)[:5].tolist()}")
    labels = labels.long().reshape(-1)
    if labels.numel() != count:
        raise ValueError(f"need one label per source: {count} sources, {labels.numel()} {name}")
    return labels


def l2_distance(a: torch.Tensor, b: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The l2 distance between ``a[i]`` and ``b[i]`` for each sample, shape (B,); ``a`` and
    ``b`` broadcast (one image against a batch: ``l2_distance(target[None], images)``).
    The difference is taken in the images' dtype, its norm in ``dtype`` (default: the same)."""
    difference = (a - b).flatten(1)
    return (difference if dtype is None else difference.to(dtype)).norm(dim=1)


def label_probability(probabilities: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The probability each row of ``probabilities`` (B, K; a softmax) gives its label in
    ``labels`` (B,), shape (B,): the source-class confidence, where the labels are the
    sources' classes."""
    return probabilities.gather(1, labels.to(probabilities.device)[:, None])[:, 0]


def tensors_sha256(tensors: Mapping[str, torch.Tensor]) -> str:
    """The sha256 of named tensors: their names, dtypes, shapes and bytes, in name order,
    read on the CPU (the same wherever they live and whatever their memory layout)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def module_device(module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU if it has none, or if
    it is a plain callable)."""
    tensors = (getattr(module, attribute, lambda: iter(()))() for attribute in ("parameters", "buffers"))
    tensor = next((t for group in tensors for t in group), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def weights_sha256(model) -> str | None:
    """The sha256 of a model's parameters and buffers: their names, dtypes, shapes and
    bytes, in name order, read on the CPU (the same wherever the model lives and whatever
    its memory layout); None for a model that is not a torch Module."""
    if not isinstance(model, torch.nn.Module):
        return None
    return tensors_sha256({**dict(model.named_parameters()), **dict(model.named_buffers())})
