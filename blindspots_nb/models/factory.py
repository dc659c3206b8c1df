"""Making a model: :func:`load_model` puts an entry's network and its checked weights
together as a :class:`~blindspots_nb.models.classifier.Classifier` on a device;
:func:`random_model` does so without weights (for timing); :func:`weights_record`
finds and checks the weights alone."""

from __future__ import annotations

import os

import torch

from .checkpoint_formats import CheckpointError, load_into, read_checkpoint
from .classifier import Classifier
from .entry import ModelEntry
from .hub import find_weights, weights_identity
from .registry import get_entry
from .spec import is_spec, load_spec
from ..tools.devices import resolve_device


def weights_record(name: str, weights: str | os.PathLike | None = None) -> dict:
    """Find (or download) and check model ``name``'s weights file as :func:`load_model`
    would, without building the model: the ``weights*`` keys of its ``info``.

    Raises :class:`~blindspots_nb.models.checkpoint_formats.CheckpointError` for a file
    that fails the hash it claims. A factory spec's model is built (on the CPU) and
    fingerprinted: its parameters are its identity.
    """
    if is_spec(name):
        info = load_spec(name, "cpu", weights).info
        return {key: value for key, value in info.items() if key.startswith("weights")}
    entry = get_entry(name)
    return weights_identity(entry, *find_weights(entry, weights))


def model_identity(model: Classifier | ModelEntry) -> dict:
    """What the wrapper of a model (a :class:`Classifier`, or a registry entry before it is
    built) holds besides its parameters and changes its numbers: input size, mean and std,
    the centre crop of its preprocessing (``crop_pct``; None: the default for its input
    size) and the class names. With the weights' sha256 it is the model's identity in a run."""
    entry = isinstance(model, ModelEntry)
    floats = lambda values: None if values is None else torch.as_tensor(  # noqa: E731
        values, dtype=torch.float32).flatten().tolist()  # as the wrapper's buffers hold them
    return {"input_size": [int(v) for v in model.input_size],
            "mean": floats(getattr(model, "mean", None)), "std": floats(getattr(model, "std", None)),
            "crop_pct": model.crop_pct if entry else getattr(model, "info", {}).get("crop_pct"),
            "class_names": [str(name) for name in (model.class_names() if entry else model.class_names)]}


def random_model(name: str, device: str | torch.device | None = None, seed: int = 0) -> Classifier:
    """Model ``name`` with randomly initialised weights (seeded), no file needed: for
    timing and for checking a device path, never for numbers about the model."""
    entry = get_entry(name)
    with torch.random.fork_rng(devices=[]):  # leave the caller's random state alone
        torch.manual_seed(seed)
        net = entry.build()
    info = {**entry.info(f"random initialisation (seed {seed}): for timing only"),
            "weights_file": None, "weights_origin": "random", "weights_url": None, "weights_sha256": None,
            "weights_verified": False, "weights_check": "none: random weights"}
    return Classifier(net, entry.mean, entry.std, entry.class_names(), entry.input_size,
                      info).to(resolve_device(device))


def load_model(name: str, device: str | torch.device | None = None,
               weights: str | os.PathLike | None = None) -> Classifier:
    """Build model ``name`` with its weights as a :class:`Classifier` on ``device``.

    ``device=None`` picks CUDA when available; a device this machine lacks is a ValueError
    (:func:`~blindspots_nb.tools.devices.resolve_device`). ``weights=PATH`` loads a local file
    in the entry's published format instead of the default source. ``info`` records
    the file's identity (:func:`weights_record`'s keys). ``name`` may be a factory spec,
    ``path/to/file.py:function`` or ``package.module:function`` (see
    :mod:`blindspots_nb.models.spec`).
    """
    device = resolve_device(device)  # first: a device this machine lacks is one clear line
    if is_spec(name):
        return load_spec(name, device, weights)
    entry = get_entry(name)
    path, origin = find_weights(entry, weights)
    identity = weights_identity(entry, path, origin)
    state_dict, meta = read_checkpoint(path, origin)
    net = entry.build()
    try:
        state_dict = entry.convert(state_dict, net)
    except CheckpointError as err:
        raise CheckpointError(f"{path} does not fit {entry.name}: {err}") from None
    load_into(net, state_dict, path, entry.name)
    info = {**entry.info(identity["weights"]), **identity}
    if meta:
        info["checkpoint_meta"] = meta
    return Classifier(net, entry.mean, entry.std, entry.class_names(), entry.input_size,
                      info).to(device)
