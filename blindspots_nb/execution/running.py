"""How an :class:`~blindspots_nb.execution.options.Execution` runs a model: memory layout,
precision flags and autocast, the folded or compiled runner, the logits; and the folding
of batch normalisation into convolutions itself."""

from __future__ import annotations

import contextlib
import copy
import weakref

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

# (convolutions, matrix products) precision of float32 work on CUDA, per precision.
_CUDA_FP32 = {"fp32": ("ieee", "ieee"), "tf32-conv": ("tf32", "ieee"), "tf32": ("tf32", "tf32"),
              "bf16": ("ieee", "ieee")}

# model -> {(fold_batchnorm, compile): (fingerprint of the model's tensors, runner)}
_runners: "weakref.WeakKeyDictionary[nn.Module, dict]" = weakref.WeakKeyDictionary()


def layout(execution, images: torch.Tensor) -> torch.Tensor:
    """``images`` in the memory layout the model runs fastest on."""
    if execution.channels_last and images.dim() == 4:
        return images.contiguous(memory_format=torch.channels_last)
    return images


@contextlib.contextmanager
def scope(execution, device: torch.device | str):
    """Float32 precision flags and autocast for work on ``device``, restored on exit.

    Wrap forward *and* backward in it: backward kernels read the flags too.
    """
    device = torch.device(device)
    conv, matmul = _CUDA_FP32[execution.precision]
    flags = (torch.backends.cudnn.conv, torch.backends.cuda.matmul)
    before = [flag.fp32_precision for flag in flags]
    try:
        flags[0].fp32_precision, flags[1].fp32_precision = conv, matmul
        autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if execution.precision == "bf16"
                    else contextlib.nullcontext())
        with autocast:
            yield
    finally:
        for flag, value in zip(flags, before):
            flag.fp32_precision = value


def runner(execution, model, images: torch.Tensor):
    """The callable that runs ``model``: ``model`` itself, or its folded and/or
    compiled form, made once per model (``images``: an example batch for folding); a
    folded copy is made again when the model's weights change."""
    if not (execution.compile or execution.fold_batchnorm):
        return model
    if not isinstance(model, nn.Module):
        raise TypeError("compile=True and fold_batchnorm=True need the model to be a torch.nn.Module")
    key = (execution.fold_batchnorm, execution.compile)
    fingerprint = _fingerprint(model) if execution.fold_batchnorm else None  # a compiled model reads live weights
    made = _runners.setdefault(model, {}).get(key)
    if made is None or made[0] != fingerprint:
        runner = fold_batchnorm(model, images[:1]) if execution.fold_batchnorm else model
        made = (fingerprint, torch.compile(runner) if execution.compile else runner)
        _runners[model][key] = made
    return made[1]


def logits(execution, model, images: torch.Tensor) -> torch.Tensor:
    """Logits of ``model`` at ``images``, at least float32 (bf16 ones are cast up);
    call inside :meth:`scope`."""
    images = layout(execution, images)
    logits = runner(execution, model, images)(images)
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
