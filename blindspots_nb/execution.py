"""How a model is run, apart from what is computed: precision, compilation, layout,
batch normalisation folded into the convolutions.

:class:`~blindspots_nb.lst.LSTConfig` holds the algorithm's hyperparameters; an
:class:`Execution` says how its forward and backward passes run. The same object
reaches the :class:`~blindspots_nb.lst.Traversal`, the triangle pass, the
reproduction (command line and run record) and the explorer.

Precisions (``docs/algorithm.md``, "Execution options"):

- ``fp32``: float32 throughout, TF32 off for convolutions and matrix products.
- ``tf32-conv``: TF32 convolutions, float32 matrix products: PyTorch's CUDA defaults
  since 1.12, hence what the authors' released code effectively ran with.
- ``tf32``: TF32 convolutions and matrix products.
- ``bf16``: the model's forward pass under bfloat16 autocast; its logits, the loss,
  the gradient with respect to the images and the acceptance test stay float32.

TF32 exists on CUDA only: on a CPU ``tf32-conv`` and ``tf32`` compute what ``fp32``
computes.

``fold_batchnorm`` runs a copy of the model whose eval-mode batch normalisations are
folded into the convolutions before them (:func:`fold_batchnorm`): the same function up
to float rounding, without the normalisations' forward and backward passes.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import weakref
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

PRECISIONS = {
    "fp32": "float32 throughout (TF32 off)",
    "tf32-conv": "TF32 convolutions, float32 matrix products (PyTorch's CUDA defaults; the released code's)",
    "tf32": "TF32 convolutions and matrix products",
    "bf16": "bfloat16 autocast forward; logits, gradient and acceptance test in float32",
}

# (convolutions, matrix products) precision of float32 work on CUDA, per precision.
_CUDA_FP32 = {"fp32": ("ieee", "ieee"), "tf32-conv": ("tf32", "ieee"), "tf32": ("tf32", "tf32"),
              "bf16": ("ieee", "ieee")}

# model -> {(fold_batchnorm, compile): (fingerprint of the model's tensors, runner)}
_runners: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Execution:
    """How forward and backward passes run.

    precision: one of fp32, tf32-conv, tf32, bf16 (see the module's docstring).
    compile: run the model through ``torch.compile`` (compiled once per model).
    channels_last: keep images in channels-last layout (faster convolutions).
    fold_batchnorm: run a copy of the model with its batch normalisations folded into
        the convolutions before them (same function up to float rounding, faster).
    """

    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = True
    fold_batchnorm: bool = False

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: "
                             + "; ".join(f"{name} ({meaning})" for name, meaning in PRECISIONS.items()))
        for name in ("compile", "channels_last", "fold_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Execution.{name} must be True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        """The options in words, for captions: "precision fp32", then what differs from
        the defaults (", compiled", ", batch norms folded", ", NCHW layout")."""
        return (f"precision {self.precision}" + (", compiled" if self.compile else "")
                + (", batch norms folded" if self.fold_batchnorm else "")
                + ("" if self.channels_last else ", NCHW layout"))

    def layout(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` in the memory layout the model runs fastest on."""
        if self.channels_last and images.dim() == 4:
            return images.contiguous(memory_format=torch.channels_last)
        return images

    @contextlib.contextmanager
    def scope(self, device: torch.device | str):
        """Float32 precision flags and autocast for work on ``device``, restored on exit.

        Wrap forward *and* backward in it: backward kernels read the flags too.
        """
        device = torch.device(device)
        conv, matmul = _CUDA_FP32[self.precision]
        flags = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
        before = [flag.fp32_precision for flag in flags]
        try:
            flags[0].fp32_precision, flags[1].fp32_precision = conv, matmul
            autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if self.precision == "bf16"
                        else contextlib.nullcontext())
            with autocast:
                yield
        finally:
            for flag, value in zip(flags, before):
                flag.fp32_precision = value

    def runner(self, model, images: torch.Tensor):
        """The callable that runs ``model``: ``model`` itself, or its folded and/or
        compiled form, made once per model (``images``: an example batch for folding); a
        folded copy is made again when the model's weights change."""
        if not (self.compile or self.fold_batchnorm):
            return model
        if not isinstance(model, nn.Module):
            raise TypeError("compile=True and fold_batchnorm=True need the model to be a torch.nn.Module")
        key = (self.fold_batchnorm, self.compile)
        fingerprint = _fingerprint(model) if self.fold_batchnorm else None  # a compiled model reads live weights
        made = _runners.setdefault(model, {}).get(key)
        if made is None or made[0] != fingerprint:
            runner = fold_batchnorm(model, images[:1]) if self.fold_batchnorm else model
            made = (fingerprint, torch.compile(runner) if self.compile else runner)
            _runners[model][key] = made
        return made[1]

    def logits(self, model, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``model`` at ``images``, at least float32 (bf16 ones are cast up);
        call inside :meth:`scope`."""
        images = self.layout(images)
        logits = self.runner(model, images)(images)
        return logits.to(torch.promote_types(logits.dtype, torch.float32))


def _fingerprint(model: nn.Module) -> tuple:
    """Identity, place and in-place version of every weight and buffer: changes when
    they are loaded, moved or trained."""
    return tuple((t.data_ptr(), t.device, t._version)
                 for t in (*model.parameters(), *model.buffers()))


def fold_batchnorm(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """A copy of ``model`` whose ``BatchNorm2d`` layers that directly follow a ``Conv2d``
    are folded into it (``torch.nn.utils.fusion.fuse_conv_bn_eval``); eval mode only, and
    only normalisations with running statistics (the others depend on the batch).

    Which normalisation follows which convolution is seen by running ``example`` (a
    small batch of the model's inputs): a normalisation is folded when its input is the
    output of the convolution called just before it. A normalisation with an activation
    (timm's ``BatchNormAct2d``) keeps its activation. The copy is checked against the
    model on ``example``: if folding changes the logits (a convolution's output also used
    elsewhere), ValueError. A model without such pairs comes back as it is.
    """
    layers = [(name, module) for name, module in model.named_modules()
              if isinstance(module, (nn.Conv2d, nn.BatchNorm2d))]
    training = [name for name, module in layers if module.training]
    if training:
        raise ValueError(f"fold_batchnorm needs the model in eval mode (model.eval()); in training mode: "
                         f"{', '.join(training[:3])}")
    names = {module: name for name, module in layers}
    last_conv, pairs = {}, {}

    def after_conv(conv, inputs, output):
        last_conv["call"] = (conv, output)

    def before_norm(norm, inputs):
        conv, output = last_conv.pop("call", (None, None))
        if inputs[0] is output and norm.running_mean is not None:  # without statistics: batch-dependent
            pairs[names[conv]] = names[norm]

    hooks = [module.register_forward_hook(after_conv) if isinstance(module, nn.Conv2d)
             else module.register_forward_pre_hook(before_norm) for _, module in layers]
    try:
        with torch.no_grad():
            expected = model(example)
    finally:
        for hook in hooks:
            hook.remove()
    if not pairs:
        return model
    folded = copy.deepcopy(model)
    for conv_name, norm_name in pairs.items():
        conv, norm = folded.get_submodule(conv_name), folded.get_submodule(norm_name)
        _replace(folded, conv_name, fuse_conv_bn_eval(conv, norm))
        _replace(folded, norm_name, _activation_of(norm))
    with torch.no_grad():
        difference = float((folded(example) - expected).abs().max())
    if not difference <= 1e-4 * (1.0 + float(expected.abs().max())):
        raise ValueError(f"folding batch normalisation into the convolutions changes this model's logits by "
                         f"{difference:.3g} (a convolution's output is used by more than its normalisation); "
                         "run it with fold_batchnorm=False")
    return folded


def _activation_of(norm: nn.Module) -> nn.Module:
    """What a normalisation layer does after normalising (timm's ``BatchNormAct2d``:
    dropout and activation), or nothing."""
    if not hasattr(norm, "act"):
        return nn.Identity()
    return nn.Sequential(getattr(norm, "drop", nn.Identity()), norm.act)


def _replace(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent), leaf, module)
