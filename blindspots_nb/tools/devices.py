"""The device a model runs on, from what a user writes: one resolver for the command line,
the notebooks, the app and the explorer, so that a device this machine lacks is one clear
line (not torch's "Found no NVIDIA driver" from deep inside a model's ``.to``)."""

from __future__ import annotations

import torch

_DEVICE_WORDS = "cpu, cuda, cuda:1, ... or None (CUDA when available, else the CPU)"
_ON_THE_CPU = "run on the CPU (device 'cpu', --device cpu) or leave the device unset (CUDA when available)"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a torch.device; None (or "auto"): CUDA when available, else the CPU.
    A name torch does not know, CUDA where torch finds no GPU, or a GPU index past the
    last one is a ValueError saying what this machine has and what to write instead."""
    if device is None or str(device).strip().lower() in ("", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device.strip() if isinstance(device, str) else device)
    except (RuntimeError, TypeError):
        raise ValueError(f"unknown device {device!r}: write {_DEVICE_WORDS}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} asked for, but torch finds no CUDA GPU on this machine "
                             f"(torch {torch.__version__}, built for CUDA {torch.version.cuda or 'none'}): "
                             f"{_ON_THE_CPU}")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r} asked for, but this machine has "
                             f"{torch.cuda.device_count()} CUDA GPU(s), cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(device)!r} asked for, but torch finds no Apple GPU (MPS) here: {_ON_THE_CPU}")
    return resolved
