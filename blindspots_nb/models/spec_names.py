"""How a model is named, checked without importing torch or the factory: the registry's
names, and how a factory spec is written (``path/to/file.py:function`` or
``package.module:function``). The command line refuses an unknown name, a misspelt spec or
a missing file at once, before the seconds torch takes to import."""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

# The registry's names, in its order (models.registry holds their entries, which import torch;
# tests/test_models.py checks that both name the same models).
REGISTRY_NAMES = ("efficientnet_lite0", "resnet50", "deit_small_patch16_224", "resnet50_at", "deit_small_at",
                  "cifar10_wrn28_10", "cifar10_wrn28_10_at", "fonts_cnn", "fonts_cnn_at", "digits_lenet",
                  "digits_lenet_at")
FORM = "'path/to/file.py:function' or 'package.module:function'"
_NAME = r"[A-Za-z_]\w*"
_MODULE = re.compile(rf"{_NAME}(\.{_NAME})*")


class ModelSpecError(ValueError):
    """A factory spec that is malformed or does not give a classifier."""


def is_spec(name) -> bool:
    """Whether ``name`` is a factory spec rather than a registry name (``timm:<name>`` is one of those)."""
    return isinstance(name, str) and ":" in name and not name.startswith("timm:")


def parse_spec(spec: str) -> tuple[str, str]:
    """``'a/b.py:build'`` -> ``('a/b.py', 'build')``; ``'pkg.mod:build'`` -> ``('pkg.mod', 'build')``."""
    target, _, function = str(spec).rpartition(":")
    if not target or not re.fullmatch(_NAME, function) or not (
            target.endswith(".py") or _MODULE.fullmatch(target)):
        raise ModelSpecError(f"{spec!r} is not a model factory spec: write {FORM}")
    return target, function


def canonical_spec(spec: str) -> str:
    """The one way of writing a spec: a file's path made absolute (a notebook's kernel runs
    in the output folder), a module's name as it is."""
    target, function = parse_spec(spec)
    if target.endswith(".py"):
        target = str(Path(target).expanduser().resolve())
    return f"{target}:{function}"


def spec_file(spec: str) -> Path | None:
    """The file a ``file.py:function`` spec names, refused (:class:`ModelSpecError`) where
    there is none; None for a ``package.module:function`` spec."""
    target, _ = parse_spec(spec)
    if not target.endswith(".py"):
        return None
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        raise ModelSpecError(f"model factory {spec!r}: no such file {path}")
    return path


def model_folder(name: str) -> str:
    """A model's folder name in a run: a registry name as it is; a spec (which holds '/'
    and ':') as its function's name and a short hash of the canonical spec, ``build-1a2b3c4d``."""
    if not is_spec(name):
        return name
    spec = canonical_spec(name)
    return f"{parse_spec(spec)[1]}-{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


def checked_model_name(name) -> str:
    """``name`` as an experiment holds it: a known registry name, ``timm:<name>``, or a
    well-formed factory spec (canonical); anything else is refused, saying what is accepted.
    The factory itself is imported only when the model is loaded."""
    torch = sys.modules.get("torch")  # a model object exists only where torch was imported
    if torch is not None and isinstance(name, torch.nn.Module):
        raise ModelSpecError(f"pass a registry name or a factory spec {FORM}, not a model object "
                             f"({type(name).__name__}): each process of a run imports the model itself")
    if not isinstance(name, str):
        raise ModelSpecError(f"a model is a registry name or a factory spec {FORM}, got {type(name).__name__}")
    if is_spec(name):
        return canonical_spec(name)
    if name.startswith("timm:") or name in REGISTRY_NAMES:
        return name
    raise ModelSpecError(f"unknown model {name!r}; known models: {', '.join(REGISTRY_NAMES)}; "
                         f"'timm:<name>' for any timm model; or a factory spec {FORM}")
