"""The explorer's catalogue: the models and images its source and targets A and B are chosen from.

An image source's images at a model's input size with their labels, the user's uploads
among them, the default choice of a source and two targets by class, what to warn of a
choice, and the models loaded so far. The explorer builds a catalogue before it takes its
lock, so that a source that fails to load changes nothing; everything here is a plain
function of its inputs (no threads, no listeners).
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import torch

from ..data import ImageReadError, open_image, preprocess_for, sources
from ..execution import Execution
from ..lst import LSTConfig, Traversal
from ..models import load_model, module_device, predict
from ..tools import provenance

UPLOAD_PREFIX = "upload: "  # before an uploaded file's name in the catalogue
GIVEN_IMAGES = "given images"  # the name of an image source handed over as a dataset
OFFERED_SOURCES = (sources.ImageSource("photos"), sources.ImageSource("fonts", "test"),  # offered whatever the model
                   sources.ImageSource("digits", "test"))


def named_source(image_source, offered: dict[str, object]) -> tuple[str, object]:
    """The name under which ``image_source`` (an :class:`~blindspots_nb.data.sources.ImageSource`,
    a name in ``offered``, a spelling, parsed here once, or a dataset) is offered, and what
    opens it: an ImageSource or the dataset."""
    if isinstance(image_source, (str, Path)) and str(image_source) in offered:
        return str(image_source), offered[str(image_source)]
    if isinstance(image_source, (str, Path)):
        image_source = sources.ImageSource.of(image_source)
    if isinstance(image_source, sources.ImageSource):
        return str(image_source), image_source
    return GIVEN_IMAGES, image_source


class LoadedModels:
    """The models explored so far by name, each loaded once: switching back costs nothing."""

    def __init__(self, device=None):
        self.device = device  # where a registry name's model is loaded (None: CUDA when available)
        self._models: dict[str, torch.nn.Module] = {}

    def get(self, model) -> torch.nn.Module:
        """The model of a registry name, loaded on first use; a given classifier is kept under its name."""
        if not isinstance(model, str):
            self._models[provenance.model_info(model)["name"]] = model
            return model
        if model not in self._models:
            self._models[model] = load_model(model, device=self.device)
        return self._models[model]


def read_upload(name: str, content: bytes, model) -> tuple[str, object, torch.Tensor]:
    """The catalogue name, the picture and the image at ``model``'s input size of the
    uploaded file ``content`` called ``name``; ValueError if it is no usable image (not an
    image, a decompression bomb, pixel values of unknown scale, too large for the memory)."""
    try:
        picture = open_image(io.BytesIO(content), name)
        image = preprocess_for(model)(picture)
    except MemoryError as error:
        raise ValueError(f"cannot use the upload {name!r}: it needs more memory than this machine has "
                         "to decode and resize; upload a smaller image") from error
    except (OSError, ValueError) as error:
        reason = error.reason if isinstance(error, ImageReadError) else str(error)
        raise ValueError(f"cannot use the upload {name!r}: {reason}") from error
    return UPLOAD_PREFIX + name, picture, image


@dataclasses.dataclass(frozen=True, eq=False)
class Catalogue:
    """The images of one image source for one model, uploads included."""

    images: dict[str, torch.Tensor]  # name -> image at the model's input size, (C, H, W)
    labels: dict[str, int]  # name -> its label among the model's classes (none for uploads)
    class_names: tuple[str, ...]  # the model's
    image_source: object  # what opened the images (an ImageSource or a dataset): their default order

    @classmethod
    def load(cls, model, image_source, uploads: dict[str, object]) -> "Catalogue":
        """The images of ``image_source`` and the pictures ``uploads`` (name -> PIL image) at
        ``model``'s input size."""
        found, names, labels = sources.labelled_images(image_source, model)
        images = dict(zip(names, found))
        preprocess = preprocess_for(model)
        images.update((key, preprocess(picture)) for key, picture in uploads.items())
        return cls(images, dict(zip(names, labels.tolist())), tuple(model.class_names), image_source)

    def with_image(self, name: str, image: torch.Tensor) -> "Catalogue":
        """This catalogue with ``image`` (of no known label) under ``name``."""
        return dataclasses.replace(self, images={**self.images, name: image})

    def traversal(self, model, chosen: tuple[str, str, str], config: LSTConfig, execution: Execution) -> Traversal:
        """One batch of two traversals from the ``chosen`` source: towards target A, and
        towards target B; the source's label is ``model``'s class of it."""
        source, target, target_b = (self.images[name] for name in chosen)
        start = torch.stack([source, source]).to(module_device(model))
        labels, _ = predict(model, start[:1])
        return Traversal(model, start, labels.expand(2), torch.stack([target, target_b]).to(start.device), config,
                         execution=execution)

    def label_name(self, name: str) -> str | None:
        """The class name of image ``name``'s label, None where it has none."""
        label = self._label(name)
        return self.class_names[label] if label >= 0 else None

    def label_warning(self, names: tuple[str, str, str], predictions: list[int]) -> str | None:
        """One sentence on the labels of the chosen source and targets that disagree with the
        model's ``predictions`` of them (a misclassified source, a target of the source's
        class; :func:`~blindspots_nb.data.sources.label_warnings`), None where none do."""
        found = "; ".join(sources.label_warnings(names, [self._label(name) for name in names], predictions,
                                                 self.class_names))
        return found[0].upper() + found[1:] + "." if found else None

    def warnings(self, chosen: tuple[str, str, str], predictions: list[int], again: bool) -> list[str]:
        """What to tell of the ``chosen`` source and targets: that the source is a target (the
        traversal has nowhere to go), else :meth:`label_warning`'s sentence, unless ``again``
        (the same images as the traversal before: said once is enough)."""
        if chosen[0] in chosen[1:]:
            return ["Source and target are the same image: the traversal has nowhere to go."]
        found = None if again else self.label_warning(chosen, predictions)
        return [found] if found else []

    def _label(self, name: str) -> int:
        """The label of image ``name`` among the model's classes, -1 where unknown."""
        return self.labels.get(name, -1)

    def choose(self, model, asked: tuple[str | None, str | None, str | None],
               current: tuple[str | None, str | None, str | None] = (None, None, None)) -> tuple[str, str, str]:
        """Source and targets A and B: those ``asked`` for, else the ``current`` ones while
        the catalogue holds them, else chosen by class as the notebooks and the demo choose
        them (:func:`~blindspots_nb.data.sources.choose_by_class`, in the image source's
        default order): a source that ``model`` classifies as its label, targets of two
        other classes (by label where known, else by the model's prediction). ValueError
        for a name asked for that the catalogue lacks."""
        for name in asked:
            if name is not None and name not in self.images:
                raise ValueError(f"no image {name!r}; choose one of {list(self.images)}")
        names = list(self.images)
        preferred = [name for name in sources.default_names(self.image_source, names, len(names))
                     if name in self.images]
        order = preferred + [name for name in names if name not in preferred]
        chosen = [wanted or (kept if kept in self.images else None) for wanted, kept in zip(asked, current)]
        if None in chosen:
            predictions = predict(model, torch.stack(list(self.images.values())))[0].tolist()
            known = [self._label(name) for name in names]
            classes = [label if label >= 0 else prediction for label, prediction in zip(known, predictions)]
            correct = [label < 0 or label == prediction for label, prediction in zip(known, predictions)]
            picked = sources.choose_by_class(classes, correct, [names.index(name) for name in order],
                                             [None if name is None else names.index(name) for name in chosen])
            chosen = [names[i] for i in picked]
        return tuple(chosen)
