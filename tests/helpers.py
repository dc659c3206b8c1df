"""Helpers the tests import (a module of its own: ``conftest`` is a name several folders use)."""

import hashlib
import importlib.util
from pathlib import Path

import torch
from torch import nn


def load_benchmark(name: str):
    """A script of benchmarks/ as a module (the scripts are not a package)."""
    path = Path(__file__).resolve().parent.parent / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_tiny_cnn(num_classes: int = 5, channels: int = 3, seed: int = 0, sharpness: float = 100.0) -> nn.Module:
    """A small random CNN for 16x16 images, its logits scaled so that it is confident."""
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.Tanh(),
        nn.Flatten(), nn.Linear(8 * 8 * 8, num_classes),
    )
    with torch.no_grad():
        net[-1].weight.mul_(sharpness)
    return net.eval()


def folder_listing(folder: Path) -> dict:
    """Every entry under ``folder`` with its size, mtime and content hash: equal before and after
    means nothing was written, removed or touched."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                          hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))} | {".": folder.stat().st_mtime_ns}
