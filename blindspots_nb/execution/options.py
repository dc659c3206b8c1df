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

import dataclasses
from dataclasses import dataclass

PRECISIONS = {
    "fp32": "float32 throughout (TF32 off)",
    "tf32-conv": "TF32 convolutions, float32 matrix products (PyTorch's CUDA defaults; the released code's)",
    "tf32": "TF32 convolutions and matrix products",
    "bf16": "bfloat16 autocast forward; logits, gradient and acceptance test in float32",
}

@dataclass(frozen=True)
class Execution:
    """How forward and backward passes run.

    precision: one of fp32, tf32-conv, tf32, bf16 (what each means: :data:`PRECISIONS`).
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

    def in_words(self) -> str:
        """The options in words, for captions: "precision fp32", then what differs from
        the defaults (", compiled", ", batch norms folded", ", NCHW layout")."""
        return (f"precision {self.precision}" + (", compiled" if self.compile else "")
                + (", batch norms folded" if self.fold_batchnorm else "")
                + ("" if self.channels_last else ", NCHW layout"))

    # How the passes run is in .running, which imports torch only when a model runs.
    def layout(self, images):
        """``images`` in the memory layout the model runs fastest on."""
        from .running import layout
        return layout(self, images)

    def scope(self, device):
        """Float32 precision flags and autocast for work on ``device``, restored on exit.

        Wrap forward *and* backward in it: backward kernels read the flags too.
        """
        from .running import scope
        return scope(self, device)

    def runner(self, model, images):
        """The callable that runs ``model``: ``model`` itself, or its folded and/or
        compiled form, made once per model (``images``: an example batch for folding); a
        folded copy is made again when the model's weights change."""
        from .running import runner
        return runner(self, model, images)

    def logits(self, model, images):
        """Logits of ``model`` at ``images``, at least float32 (bf16 ones are cast up);
        call inside :meth:`scope`."""
        from .running import logits
        return logits(self, model, images)
