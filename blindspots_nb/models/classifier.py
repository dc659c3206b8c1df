"""The model as the analyses see it: a :class:`Classifier` of images in [0, 1], and what
is asked of one (its device, its prediction, its confidence in a given class)."""

from __future__ import annotations

import contextlib
import numbers
import unicodedata
from typing import Mapping, Sequence

import torch
import torch.nn as nn

from ..execution import Execution
from ..tools.tensors import label_probability, module_device
from .classes import imagenet_class_names


class ModelDescriptionError(ValueError):
    """What a model's wrapper is given does not fit together (input size, mean and std,
    class names): a mistake in how a model is described, not in its network."""


def class_name_key(name) -> str:
    """The form in which class names (and the class folders named after them) are
    compared: the text NFC-normalised, so that an accent typed as one code point or as a
    letter and a combining mark is the same name. Nothing else is folded (no case)."""
    return unicodedata.normalize("NFC", str(name))


def spelled_out(name) -> str:
    """``repr(name)``, with its code points where it is not plain ASCII, so that names
    that look alike can be told apart: ``'é' (U+0065 U+0301)``."""
    text = str(name)
    return repr(text) if text.isascii() else f"{text!r} ({' '.join(f'U+{ord(c):04X}' for c in text)})"


def check_class_names(class_names: Sequence) -> None:
    """Refuse class names that are the same once compared (:func:`class_name_key`): a
    label would name two classes. ModelDescriptionError naming them, with their code points.
    ImageNet-1k's own names are accepted as they are: its two classes named "crane" (the bird
    and the machine) are told apart by their WordNet ids."""
    seen: dict[str, list[int]] = {}
    for i, name in enumerate(class_names):
        seen.setdefault(class_name_key(name), []).append(i)
    same = [indices for indices in seen.values() if len(indices) > 1]
    if same and tuple(map(str, class_names)) != imagenet_class_names():
        listed = "; ".join(" and ".join(f"{i} {spelled_out(class_names[i])}" for i in indices) for indices in same[:5])
        raise ModelDescriptionError(f"its class names are not unique ({listed}): give each class its own name")


def _checked_input_size(input_size) -> tuple[int, int, int]:
    """``input_size`` as (C, H, W) of positive ints, or ModelDescriptionError saying what it is."""
    if isinstance(input_size, str) or not isinstance(input_size, Sequence) or len(input_size) != 3 or not all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) and v > 0 for v in input_size):
        raise ModelDescriptionError(f"input_size must be (C, H, W), three positive whole numbers such as "
                                    f"(3, 224, 224), got {input_size!r}")
    return tuple(int(v) for v in input_size)


class Classifier(nn.Module):
    """A classifier of images in [0, 1]: ``(x - mean) / std`` then the network.

    Attributes: ``net`` (the wrapped module), ``class_names`` (list of str),
    ``input_size`` ((C, H, W)), ``info`` (plain dict describing the model).
    """

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float],
                 class_names: Sequence[str], input_size: tuple[int, int, int],
                 info: Mapping | None = None):
        super().__init__()
        input_size = _checked_input_size(input_size)
        channels = input_size[0]
        if len(mean) != channels or len(std) != channels:
            raise ModelDescriptionError(f"mean and std need {channels} values (one per input channel), "
                                        f"got {len(mean)} and {len(std)}")
        if any(s <= 0 for s in std):
            raise ModelDescriptionError(f"std must be positive, got {tuple(std)}")
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.class_names = list(class_names)
        self.input_size = input_size
        self.info = {"num_classes": len(self.class_names), "input_size": list(self.input_size),
                     "mean": [float(v) for v in mean], "std": [float(v) for v in std],
                     **dict(info or {})}
        self.eval()
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1] != self.input_size[0]:
            raise ValueError(f"{self.info.get('name', 'model')} expects images of shape "
                             f"(N, {self.input_size[0]}, H, W) with pixels in [0, 1], "
                             f"got {tuple(x.shape)}")
        return self.net((x - self.mean) / self.std)

    def extra_repr(self) -> str:
        return f"name={self.info.get('name')!r}, input_size={self.input_size}"


WRAP_NAME = "custom"  # wrap's name when none is given: a factory's model is then shown by its spec's function


def wrap(module: nn.Module, mean: Sequence[float], std: Sequence[float],
         class_names: Sequence[str], input_size: tuple[int, int, int] = (3, 224, 224),
         name: str = WRAP_NAME, device: str | torch.device | None = None) -> Classifier:
    """Wrap a user's module (which expects normalised inputs) as a :class:`Classifier`
    on ``device`` (default: where the module is). ``name``: what tables, figure titles,
    menus and exported files call it."""
    info = {"name": name, "architecture": type(module).__name__, "weights": "user module",
            "training": "unknown", "threat_model": None, "radius": None, "dataset": None}
    model = Classifier(module, mean, std, class_names, input_size, info)
    return model.to(device if device is not None else module_device(module))


def _probabilities(model, images: torch.Tensor, execution: Execution | None, batch_size: int):
    """The softmax of ``batch_size`` images at a time, on the model's device, without a
    graph: the model called plainly (``execution`` None) or as ``execution`` says."""
    device = module_device(model)
    with torch.no_grad(), execution.scope(device) if execution else contextlib.nullcontext():
        for chunk in images.split(batch_size):
            chunk = chunk.to(device)
            yield (execution.logits(model, chunk) if execution else model(chunk)).softmax(1)


def predict(model, images: torch.Tensor, batch_size: int = 64,
            execution: Execution | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's class and its confidence for each image, on the CPU. Where images
    carry no label, the model's own prediction is the label. ``execution``: how the model
    runs (default: called as it is)."""
    labels, confidence = [], []
    for probs in _probabilities(model, images, execution, batch_size):
        top = probs.max(1)
        labels.append(top.indices.cpu())
        confidence.append(top.values.cpu())
    return torch.cat(labels), torch.cat(confidence)


def class_confidence(model, images: torch.Tensor, labels, execution: Execution | None = None,
                     batch_size: int = 64) -> torch.Tensor:
    """The softmax probability the model gives each image's label, on the CPU: the
    source-class confidence of the analyses.

    ``images``: (N, C, H, W); ``labels``: N labels, or one for all. Runs ``batch_size``
    images per forward pass, as ``execution`` says (precision, layout, folding,
    compilation; default :class:`~blindspots_nb.execution.Execution`), without a graph.
    """
    labels = torch.as_tensor(labels).long().reshape(-1)
    if labels.numel() not in (1, len(images)):
        raise ValueError(f"class_confidence needs one label per image or one for all; "
                         f"got {labels.numel()} labels for {len(images)} images")
    chunks = _probabilities(model, images, execution or Execution(), batch_size)
    return torch.cat([label_probability(probs, chunk_labels).cpu()
                      for probs, chunk_labels in zip(chunks, labels.expand(len(images)).split(batch_size))])
