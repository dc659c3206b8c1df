"""What the registry holds for one model: :class:`ModelEntry`, everything needed to build
it and to find and check its weights (the registry fills it, the hub reads it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch.nn as nn

from ..tools.checksums import published_hash_prefix
from .checkpoint_formats import match_published_names


@dataclass(frozen=True)
class ModelEntry:
    """Everything needed to build one model and find its weights.

    ``url``/``filename``: published location and cache file name (online entries);
    ``locate``: returns the local file for packaged weights; ``sha256``: the digest
    pinned for that packaged file (shipped with this package); ``convert`` maps the
    file's state dict onto ``build()``'s names.
    """

    name: str
    architecture: str
    build: Callable[[], nn.Module]
    dataset: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    input_size: tuple[int, int, int]
    class_names: Callable[[], Sequence[str]]
    training: str = "normal"
    threat_model: str | None = None
    radius: float | None = None  # the l_p radius of its adversarial training
    weights_from: str = ""  # where the weights come from: a package, a paper, a hub name
    url: str | None = None
    filename: str | None = None
    locate: Callable[[], Path] | None = None
    convert: Callable[[Mapping, nn.Module], Mapping] = match_published_names
    crop_pct: float = 0.875
    sha256: str | None = None

    def published_hash(self) -> tuple[str, str] | None:
        """The hash (whole or prefix) the entry's own file must have, and where it is
        stated; None where nothing is published (Hugging Face, RobustBench, PyPI files)."""
        if self.sha256:
            return self.sha256, f"the sha256 pinned for {self.name}'s packaged file"
        prefix = published_hash_prefix(self.filename) if self.filename else None
        if prefix:
            return prefix, f"the hash prefix published in its file name {self.filename}"
        return None

    def info(self, weights: str) -> dict:
        return {"name": self.name, "architecture": self.architecture, "weights": weights,
                "training": self.training, "threat_model": self.threat_model, "radius": self.radius,
                "dataset": self.dataset, "crop_pct": self.crop_pct,
                "mean": list(self.mean), "std": list(self.std)}
