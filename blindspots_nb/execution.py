"""How a model is run, apart from what is computed: precision, compilation, layout.

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
"""

from __future__ import annotations

import contextlib
import dataclasses
import weakref
from dataclasses import dataclass

import torch

PRECISIONS = {
    "fp32": "float32 throughout (TF32 off)",
    "tf32-conv": "TF32 convolutions, float32 matrix products (PyTorch's CUDA defaults; the released code's)",
    "tf32": "TF32 convolutions and matrix products",
    "bf16": "bfloat16 autocast forward; logits, gradient and acceptance test in float32",
}

# (convolutions, matrix products) precision of float32 work on CUDA, per precision.
_CUDA_FP32 = {"fp32": ("ieee", "ieee"), "tf32-conv": ("tf32", "ieee"), "tf32": ("tf32", "tf32"),
              "bf16": ("ieee", "ieee")}

_compiled: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Execution:
    """How forward and backward passes run.

    precision: one of fp32, tf32-conv, tf32, bf16 (see the module's docstring).
    compile: run the model through ``torch.compile`` (compiled once per model).
    channels_last: keep images in channels-last layout (faster convolutions).
    """

    precision: str = "fp32"
    compile: bool = False
    channels_last: bool = True

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; known: "
                             + "; ".join(f"{name} ({meaning})" for name, meaning in PRECISIONS.items()))
        for name in ("compile", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"Execution.{name} must be True or False, got {getattr(self, name)!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

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

    def runner(self, model):
        """The callable that runs ``model``: ``model`` itself, or its compiled form
        (kept per model, so every traversal of it reuses one compilation)."""
        if not self.compile:
            return model
        if not isinstance(model, torch.nn.Module):
            raise TypeError("compile=True needs the model to be a torch.nn.Module")
        if model not in _compiled:
            _compiled[model] = torch.compile(model)
        return _compiled[model]

    def logits(self, model, images: torch.Tensor) -> torch.Tensor:
        """Logits of ``model`` at ``images``, at least float32 (bf16 ones are cast up);
        call inside :meth:`scope`."""
        logits = self.runner(model)(self.layout(images))
        return logits.to(torch.promote_types(logits.dtype, torch.float32))

