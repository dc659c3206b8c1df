"""A model given by where its code lives: ``package.module:function`` or
``path/to/file.py:function`` (the convention of ``uvicorn module:app`` and entry points).

Everything that takes a registry name (``load_model``, ``--models``, ``Experiment.models``,
the notebooks' ``model_name``, the explorer) takes such a spec too. Each process imports
the factory itself from the spec's text, so a spec crosses papermill's kernel and
torchrun's processes where a model object cannot.

The factory is called with no arguments and returns either

- a classifier of images in [0, 1] with ``class_names``, ``input_size`` and ``info``
  (what :func:`~blindspots_nb.models.wrap` returns: ``return wrap(net, mean, std, classes, (3, 32, 32))``), or
- a dict of what ``wrap`` needs: ``{"module": net, "mean": ..., "std": ..., "class_names": ...,
  "input_size": (C, H, W)}``.

Its weights are part of a run's identity: the model's ``info["weights_sha256"]`` is the
sha256 of its parameters and buffers (a factory should seed any random initialisation,
or every process gets another model and the run refuses it). ``weights=PATH``
(``--weights SPEC=PATH``) loads a state dict saved with ``torch.save(net.state_dict(), PATH)``
into the wrapped network (the classifier's ``net``), strictly, after the factory ran.

The spec is the model's identity (``info["name"]``, ``info["spec"]``, a run's records); its
display name (``info["display_name"]``: ``wrap(..., name=)`` or the dict's ``name``, else
the run folder's ``build-1a2b3c4d``) names its table rows, figure titles and exported files.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
import warnings
from pathlib import Path

import torch
import torch.nn as nn

from ..tools.devices import resolve_device
from ..tools.tensors import module_device, weights_sha256
from .checkpoint_formats import CheckpointError
from .classifier import WRAP_NAME, Classifier, ModelDescriptionError, check_class_names, wrap
from .spec_names import (FORM, ModelSpecError, canonical_spec, checked_model_name, is_spec, model_folder,
                         parse_spec, spec_file)

__all__ = ["FORM", "ModelSpecError", "canonical_spec", "checked_model_name", "factory", "is_spec", "load_spec",
           "model_folder", "parse_spec", "spec_file"]


def _import(target: str, spec: str):
    path = spec_file(spec)
    if path is not None:
        name = f"_blindspots_nb_factory_{hashlib.sha256(str(path).encode()).hexdigest()[:12]}"
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            loader.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as err:
        if err.name and target.startswith(err.name):
            raise ModelSpecError(f"model factory {spec!r}: no module named {err.name!r} "
                                 "(is it installed, or on PYTHONPATH?)") from None
        raise


def factory(spec: str):
    """The function a spec names, imported (the file run or the module imported)."""
    target, function = parse_spec(spec)
    module = _import(target, spec)
    if not hasattr(module, function):
        public = sorted(n for n, v in vars(module).items()  # the functions it defines, not those it imports
                        if callable(v) and not n.startswith("_") and getattr(v, "__module__", None) == module.__name__)
        raise ModelSpecError(f"model factory {spec!r}: {target} has no {function!r}"
                             + (f"; it has {', '.join(public)}" if public else ""))
    made = getattr(module, function)
    if not callable(made):
        raise ModelSpecError(f"model factory {spec!r}: {function} is not a function (type {type(made).__name__})")
    return made


def _classifier(made, spec: str) -> Classifier:
    if isinstance(made, dict):
        missing = {"module", "mean", "std", "class_names", "input_size"} - set(made)
        if missing:
            raise ModelSpecError(f"model factory {spec!r} returned a dict without {', '.join(sorted(missing))}: "
                                 "a dict gives module, mean, std, class_names and input_size (what wrap takes)")
        made = wrap(**made)
    if not isinstance(made, nn.Module):
        raise ModelSpecError(f"model factory {spec!r} returned a {type(made).__name__}, not a module: return "
                             "wrap(net, mean, std, class_names, input_size) or a dict of those")
    missing = [key for key in ("class_names", "input_size", "info") if not hasattr(made, key)]
    if missing:
        raise ModelSpecError(f"model factory {spec!r} returned a module without {', '.join(missing)}: return "
                             "blindspots_nb.models.wrap(net, mean, std, class_names, input_size), which gives "
                             "the class names, the input size and the normalisation")
    return made


def _check_no_arguments(build, spec: str) -> None:
    """Refuse a factory that cannot be called with no arguments, naming what it requires."""
    try:
        parameters = inspect.signature(build).parameters.values()
    except (TypeError, ValueError):  # no signature to read (some builtins): calling it will tell
        return
    required = [p.name for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if required:
        raise ModelSpecError(f"model factory {spec!r}: {parse_spec(spec)[1]} requires the argument(s) "
                             f"{', '.join(required)}, but a factory "
                             "is called with no arguments: give them default values, or write a function without "
                             "arguments that calls it")


# torch's process-wide settings a factory may change (reading them, setting them back):
# default dtype, gradient mode, anomaly detection, deterministic algorithms, matmul precision, threads.
_GLOBAL_SETTINGS = {
    "default dtype": (torch.get_default_dtype, torch.set_default_dtype),
    "gradient mode": (torch.is_grad_enabled, torch.set_grad_enabled),
    "anomaly detection": (torch.is_anomaly_enabled, torch.set_anomaly_enabled),
    "deterministic algorithms": (
        lambda: (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()),
        lambda mode: torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])),
    "float32 matmul precision": (torch.get_float32_matmul_precision, torch.set_float32_matmul_precision),
    "cuDNN deterministic": (lambda: torch.backends.cudnn.deterministic,
                            lambda value: setattr(torch.backends.cudnn, "deterministic", value)),
    "cuDNN benchmark": (lambda: torch.backends.cudnn.benchmark,
                        lambda value: setattr(torch.backends.cudnn, "benchmark", value)),
    "CPU threads": (torch.get_num_threads, torch.set_num_threads),
}


@contextlib.contextmanager
def _caller_settings_kept(spec: str):
    """Run a factory (its import too) leaving the caller's torch as it was: its random
    state (a factory seeds) and its process-wide settings (:data:`_GLOBAL_SETTINGS`),
    which are set back afterwards, with a warning naming those the factory changed, so
    that a model loaded later in the same process does not run in float64 or without
    gradients unawares."""
    before = {name: read() for name, (read, _) in _GLOBAL_SETTINGS.items()}
    try:
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        after = {name: read() for name, (read, _) in _GLOBAL_SETTINGS.items()}
        changed = [name for name in _GLOBAL_SETTINGS if after[name] != before[name]]
        for name in changed:
            _GLOBAL_SETTINGS[name][1](before[name])
        if changed:
            listed = "; ".join(f"{name} {before[name]} -> {after[name]}" for name in changed)
            warnings.warn(f"model factory {spec!r} changed torch's process-wide settings ({listed}); "
                          "they are set back as they were before loading it", stacklevel=4)


def _check_outputs(model: Classifier, spec: str) -> None:
    """One image of the model's input size through it: refuses a network that fails on it
    or whose outputs do not match its class names (one logit per class)."""
    image = torch.full((1, *model.input_size), 0.5, device=module_device(model))
    try:
        with torch.no_grad():
            logits = model(image)
    except Exception as err:  # the user's network: whatever it raises says why it does not take the image
        raise ModelSpecError(f"model factory {spec!r}: its network fails on one image of its input_size "
                             f"{model.input_size}: {type(err).__name__}: {err}") from None
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[1] != len(model.class_names):
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise ModelSpecError(f"model factory {spec!r}: its network gives outputs of shape {shape} for one image, "
                             f"but it has {len(model.class_names)} class names: give one class name per output "
                             f"(a logit per class, shape (1, {len(model.class_names)}))")


def load_spec(spec: str, device: str | torch.device | None = None,
              weights: str | os.PathLike | None = None) -> Classifier:
    """The classifier a factory spec makes, on ``device`` (None: CUDA when available),
    with ``weights`` (a state dict of its ``net``) loaded, and the fingerprint of its
    parameters and buffers as ``info["weights_sha256"]``.

    What the factory describes is checked at once, in one line naming the spec: a factory
    that needs arguments, an input size, mean and std or class names that do not fit
    together (class names must be unique), a network that fails on one image of its input
    size or gives another number of outputs than it has class names. The caller's random
    state and torch's process-wide settings are left as they were (see
    :func:`_caller_settings_kept`)."""
    spec = canonical_spec(spec)
    device = resolve_device(device)
    try:
        with _caller_settings_kept(spec):
            build = factory(spec)
            _check_no_arguments(build, spec)
            model = _classifier(build(), spec)
        check_class_names(model.class_names)
    except ModelDescriptionError as err:
        raise ModelSpecError(f"model factory {spec!r}: {err}") from None
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"--weights {spec}={weights}: no such file")
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        try:
            getattr(model, "net", model).load_state_dict(state_dict)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise CheckpointError(f"{path} does not fit {spec}'s network: {err}") from None
    model = model.eval().requires_grad_(False).to(device)
    _check_outputs(model, spec)
    fingerprint = weights_sha256(model)
    target = parse_spec(spec)[0]
    origin = Path(weights).resolve() if weights is not None else (
        target if target.endswith(".py") else getattr(sys.modules[target], "__file__", target))
    named = model.info.get("name")  # wrap(name=) or the dict's name; wrap's default says nothing
    model.info = {**model.info, "name": spec, "spec": spec,
                  "display_name": str(named) if named and named != WRAP_NAME else model_folder(spec),
                  "weights": f"state dict {origin}" if weights is not None else f"made by {spec}",
                  "weights_file": str(origin), "weights_origin": "file" if weights is not None else "factory",
                  "weights_url": None, "weights_sha256": fingerprint, "weights_verified": False,
                  "weights_check": "none: the sha256 of the model's parameters and buffers identifies it"}
    return model
