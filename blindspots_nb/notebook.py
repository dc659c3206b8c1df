"""What the analysis notebooks (``notebooks/02`` to ``06``) share: the model, its images
and the LST hyperparameters, set up in one call (:func:`set_up`), and the first step of
three of them, LST from one source towards the other images
(:meth:`NotebookSetup.traverse_from_first`).

Light to import (no torch): the model, the images and the caption are made when
:func:`set_up` is called.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .lst.config import LSTConfig

if TYPE_CHECKING:
    import torch

    from .lst import Traversal


@dataclass
class NotebookSetup:
    """A notebook's model with its images on the model's device, the LST
    hyperparameters, the caption of every figure and the folder the figures go to."""

    model: Any               # a registry model (blindspots_nb.models.Classifier)
    images: torch.Tensor     # (k, C, H, W) in [0, 1], on ``device``
    names: list[str]         # the images' names in the image source
    device: torch.device
    config: LSTConfig
    caption: str             # model, weights, hyperparameters, device, version
    out_dir: Path
    images_text: str = ""    # a line per image: its name, the model's class and confidence, its label

    def traverse_from_first(self) -> Traversal:
        """LST from the first image towards each of the others, in one batch, run to the
        end; every traversal is labelled with the model's class of the first image."""
        from .lst import Traversal
        from .models import predict

        source, targets = self.images[:1], self.images[1:]
        label = predict(self.model, source)[0].to(self.device)
        return Traversal(self.model, source.expand_as(targets), label.expand(len(targets)), targets,
                         self.config).run()


def set_up(model_name: str, image_names=None, k: int = 2, image_source=None, config: LSTConfig | None = None,
           out_dir="results", settings: dict | None = None, device=None) -> NotebookSetup:
    """Load the model ``model_name`` on ``device`` (:func:`~blindspots_nb.models.load_model`;
    None: CUDA when available), pick ``k`` images of ``image_source``
    (:func:`~blindspots_nb.data.sources.pick_labelled`: by name; None: the model's default
    image source, a source the model classifies as its label and targets of other
    classes), move them to the model's device and caption what will be computed: the
    model, ``config`` (default :class:`~blindspots_nb.lst.LSTConfig`) with the notebook's
    other ``settings``, the device and the package version
    (:func:`~blindspots_nb.tools.provenance.caption`)."""
    from .data.sources import pick_labelled
    from .models import load_model, module_device
    from .tools import provenance

    model = load_model(model_name, device=device)
    device = module_device(model)
    picked = pick_labelled(model, image_names, k=k, image_source=image_source)
    config = config or LSTConfig()
    caption = provenance.caption(model, {**config.to_dict(), **(settings or {})}, device)
    return NotebookSetup(model=model, images=picked.images.to(device), names=picked.names, device=device,
                         config=config, caption=caption, out_dir=Path(out_dir), images_text=picked.text())
