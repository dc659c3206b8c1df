"""What produced a result: model, weights, hyperparameters, device, versions.

Every file a user opens (JSON records, tables, figure captions) carries this.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import platform
from importlib import metadata
from pathlib import Path

import torch

from . import atomic
from .. import __version__

_PACKAGES = ("torch", "torchvision", "timm", "lpips", "torchmetrics", "captum")


def device_name(device) -> str:
    """A readable name of a device: 'cpu (x86_64, 2 threads)' or 'cuda:0 (NVIDIA H100 ...)'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.machine()}, {torch.get_num_threads()} threads)"


def versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries behind the numbers."""
    found = {"python": platform.python_version(), "blindspots_nb": __version__}
    for package in _PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def model_info(model) -> dict:
    """The model's registry record, or its class name for a plain module."""
    info = getattr(model, "info", None)
    return dict(info) if info else {"name": type(model).__name__, "weights": "user-supplied module"}


def display_name(model) -> str:
    """The name a model is shown by in tables, titles, menus and file names: a factory's
    own (``wrap(name=)`` or its dict's ``name``), else its registry name. A factory spec,
    which holds an absolute path, stays its identity in ``info["spec"]`` and the records.
    ``model``: a model, or its info as a record holds it."""
    info = model if isinstance(model, dict) else model_info(model)
    return str(info.get("display_name") or info.get("name"))


def record(model=None, config=None, device=None, **extra) -> dict:
    """A JSON-serialisable record of what produced a result."""
    out = {"created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    if model is not None:
        out["model"] = model_info(model)
        if device is None:
            from .tensors import module_device  # imports torch: only when a model is given
            device = module_device(model)
    if config is not None:
        out["config"] = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    if device is not None:
        out["device"] = device_name(device)
    out["versions"] = versions()
    out.update(extra)
    return out


def write_record(path, model=None, config=None, device=None, **extra) -> Path:
    """Write :func:`record` as a JSON file (whole or not at all); values JSON cannot hold
    (a path, a module given as an option) are written as their text."""
    return atomic.write_text(path, json.dumps(record(model, config, device, **extra), indent=2, default=str))


def _without_folders(text: str) -> str:
    """A factory's weights in words (``made by /home/me/my_models.py:build``) with each
    absolute path cut to its file name: a caption is meant for a figure others read."""
    return " ".join(Path(word).name if word.startswith("/") else word for word in str(text).split(" "))


def caption(model=None, config=None, device=None) -> str:
    """One line for a figure: model, weights, hyperparameters, device, version."""
    parts = []
    if model is not None:
        info = model_info(model)
        parts.append(f"{display_name(model)} [{_without_folders(info.get('weights', '?'))}]")
    if config is not None:
        values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
        parts.append(", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                               for key, value in values.items()))
    if device is not None:
        parts.append(device_name(device))
    parts.append(f"blindspots_nb {__version__}")
    return " | ".join(parts)
