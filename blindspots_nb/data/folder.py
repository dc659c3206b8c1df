"""A user's images: one file or a folder, labels from class subfolders or given, by
class name (exactly), ImageNet synonym or wnid, or (a given label only) index.

Class subfolders are matched against the model's own ``class_names`` (any model, not
only the registry's), so a dataset with classes of its own gives labels for a model
trained on them. Names are compared exactly, NFC-normalised on both sides
(:func:`~blindspots_nb.models.classifier.class_name_key`): no case folding, and a folder
named ``1`` is the class named "1", never the class at index 1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..models import imagenet_class_names, imagenet_wnids
from ..models.classifier import class_name_key, spelled_out
from .images import ImageFiles, open_image, preprocess_for, readable_files
from .imagenet import WNID


class _ClassNames:
    """A model's class names, looked up by name: its whole names first, then (for names
    such as ImageNet's "tabby, tabby cat") each comma-separated synonym, then, for
    ImageNet's 1000 classes, the WordNet id; all compared exactly after NFC normalisation."""

    def __init__(self, class_names: Sequence[str]):
        self.names = list(class_names)
        self.whole: dict[str, list[int]] = {}
        self.synonyms: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            self.whole.setdefault(class_name_key(name), []).append(i)
            for synonym in dict.fromkeys(class_name_key(s.strip()) for s in str(name).split(",")):
                self.synonyms.setdefault(synonym, []).append(i)

    def matches(self, name: str) -> list[int]:
        """The indices of the classes ``name`` names (none, one, or several where it is ambiguous)."""
        key = class_name_key(name)
        found = self.whole.get(key) or self.synonyms.get(key, [])
        if not found and len(self.names) == 1000 and WNID.match(key) and key in imagenet_wnids():
            found = [imagenet_wnids().index(key)]
        return found

    def index(self, label) -> int:
        """Index of ``label``: an int (an index, for a label given by the caller) or a name
        naming one class; ValueError if it names none, or several."""
        n = len(self.names)
        if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
            if 0 <= label < n:
                return int(label)
            raise ValueError(f"label {label} is outside the model's classes (0 to {n - 1})")
        found = self.matches(str(label))
        if len(found) == 1:
            return found[0]
        if found:
            raise ValueError(f"label {spelled_out(label)} names {len(found)} of the model's classes: "
                             f"{self.ambiguity(found)}")
        raise ValueError(f"label {spelled_out(label)} is not one of the model's {n} classes "
                         f"(e.g. {', '.join(spelled_out(c) for c in self.names[:3])})")

    def ambiguity(self, found: list[int]) -> str:
        """The classes an ambiguous name names, and how to name one of them alone."""
        listed = ", ".join(f"{i} {spelled_out(self.names[i])}" for i in found)
        if len(self.names) == 1000:
            return f"{listed}; name the folder by its WordNet id ({', '.join(imagenet_wnids()[i] for i in found)})"
        return listed


def _first_few(names: Sequence[str], count: int = 5) -> str:
    """The first ``count`` names, comma-separated, with "..." when there are more."""
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _check_class_folders(path: Path, classes: Sequence[str], class_names: _ClassNames):
    """Refuses every class folder that names none of the model's classes, or several, at once
    (ValueError naming them, with their code points where not plain ASCII, and the model's
    first classes), rather than the first one found."""
    unknown, ambiguous = [], []
    for name in classes:
        found = class_names.matches(name)
        if not found:
            unknown.append(spelled_out(name))
        elif len(found) > 1:
            ambiguous.append(f"{spelled_out(name)} names {class_names.ambiguity(found)}")
    if ambiguous:
        raise ValueError(f"{path} has class folder(s) that name several classes of the model: {'; '.join(ambiguous)}")
    if unknown:
        listed = _first_few([spelled_out(c) for c in class_names.names])
        raise ValueError(f"{path} has class folder(s) {_first_few(unknown)} that are not classes of the model; "
                         f"its {len(class_names.names)} classes are {listed}: name each class folder exactly after "
                         "one of them (or, for an ImageNet model, a synonym or wnid), or put the images in one "
                         "folder to use them unlabelled")


def _listing(path: Path, label=None) -> list[tuple[Path, object]]:
    """``(file, label)`` of an image file or of a folder's files: those in it with ``label``,
    and, without a label, those of its class subfolders (not hidden ones) with the subfolder's name."""
    if path.is_file():
        return [(path, label)]
    subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files = [(p, label) for p in sorted(path.iterdir()) if p.is_file()]
    if label is None:
        files += [(p, d.name) for d in subdirs for p in sorted(d.iterdir()) if p.is_file()]
    return files


def image_folder(path: str | os.PathLike, size=224, label=None,
                 class_names: Sequence[str] | None = None) -> ImageFiles:
    """A user's images, preprocessed for ``size`` (an int, (C, H, W) or a model).

    ``path`` is an image file or a folder. Labels come from ``label`` (for all images),
    else from subfolder names (``path/<class>/*``), else are unknown (-1); images beside
    class subfolders have no label and are refused (ValueError naming them), not mixed
    in unlabelled. Labels are class indices or names of ``class_names`` (default: the
    model's own ``class_names``, else ImageNet's); class folders that name none are refused
    together (ValueError naming them and the model's first classes). Grayscale and RGBA
    images are converted and any size is resized; files that are not readable images (or
    in a colour mode that cannot be converted) are skipped with a warning listing them.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"no such image folder or file: {path}")
    names = _ClassNames(class_names if class_names is not None else
                        getattr(size, "class_names", None) or imagenet_class_names())
    transform = preprocess_for(size)
    readable, skipped = readable_files(_listing(path, label), "image_folder", transform)
    loose = [file.name for file, lab in readable if lab is None]
    classes = sorted({lab for _, lab in readable if lab is not None})
    if loose and classes:
        raise ValueError(f"{path} has class folders ({_first_few(classes)}) and {len(loose)} image(s) "
                         f"beside them ({_first_few(loose)}), which would have no label: move those into "
                         "a class folder, or into a folder of their own to use them unlabelled")
    if label is None:
        _check_class_folders(path, classes, names)
    paths = [file for file, _ in readable]
    labels = [-1 if lab is None else names.index(lab) for _, lab in readable]
    if not paths:
        raise ValueError(f"no readable images in {path}")
    return ImageFiles(paths, torch.tensor(labels), names.names, transform, skipped,
                      root=path.parent if path.is_file() else path)


def has_class_folders(path: str | os.PathLike) -> bool:
    """Whether :func:`image_folder` reads a folder's images labelled by class subfolder:
    whether a subfolder (not a hidden one) holds a file that opens as an image (else the
    protocol labels them with the model's prediction). Stops at the first such file."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return False
    for file, label in _listing(path):
        if label is None:
            continue
        try:
            open_image(file, reduced=True).close()
            return True
        except ValueError:  # not an image: image_folder skips it
            continue
    return False
