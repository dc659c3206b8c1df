"""A user's images: one file or a folder, labels from class subfolders or given, by
index, class name, synonym or ImageNet wnid.

Class subfolders are matched against the model's own ``class_names`` (any model, not
only the registry's), so a dataset with classes of its own gives labels for a model
trained on them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..models import imagenet_class_names, imagenet_wnids
from .images import ImageFiles, preprocess_for, readable_files
from .imagenet import WNID

def _class_index(label, class_names: Sequence[str]) -> int:
    """Index of ``label`` (an int, a class name, one of its comma-separated synonyms, or
    an ImageNet wnid) in ``class_names``; ValueError if the model has no such class."""
    n = len(class_names)
    if isinstance(label, (int, np.integer)) and not isinstance(label, bool):
        if 0 <= label < n:
            return int(label)
        raise ValueError(f"label {label} is outside the model's classes (0 to {n - 1})")
    text = str(label).strip()
    if text.isdigit():
        return _class_index(int(text), class_names)
    lowered = text.lower()
    for i, name in enumerate(class_names):
        if lowered == name.lower() or lowered in (s.strip().lower() for s in name.split(",")):
            return i
    if n == 1000 and WNID.match(text) and text in imagenet_wnids():
        return imagenet_wnids().index(text)
    raise ValueError(f"label {text!r} is not one of the model's {n} classes "
                     f"(e.g. {', '.join(repr(c) for c in class_names[:3])})")


def _first_few(names: Sequence[str], count: int = 5) -> str:
    """The first ``count`` names, comma-separated, with "..." when there are more."""
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def _check_class_folders(path: Path, classes: Sequence[str], class_names: Sequence[str]):
    """Refuses every class folder that names none of ``class_names`` at once (ValueError
    naming them and the model's first classes), rather than the first one found."""
    unknown = []
    for name in classes:
        try:
            _class_index(name, class_names)
        except ValueError:
            unknown.append(name)
    if unknown:
        raise ValueError(f"{path} has class folder(s) {_first_few(unknown)} that are not classes of the model; "
                         f"its {len(class_names)} classes are {_first_few(list(class_names))}: name each class "
                         "folder after one of them (an index, a class name or, for an ImageNet model, a synonym "
                         "or wnid), or put the images in one folder to use them unlabelled")


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
    names = list(class_names if class_names is not None else
                 getattr(size, "class_names", None) or imagenet_class_names())
    if path.is_file():
        files = [(path, label)]
    else:
        subdirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
        files = [(p, label) for p in sorted(path.iterdir()) if p.is_file()]
        if label is None:
            files += [(p, d.name) for d in subdirs for p in sorted(d.iterdir()) if p.is_file()]
    transform = preprocess_for(size)
    readable, skipped = readable_files(files, "image_folder", transform)
    loose = [file.name for file, lab in readable if lab is None]
    classes = sorted({lab for _, lab in readable if lab is not None})
    if loose and classes:
        raise ValueError(f"{path} has class folders ({_first_few(classes)}) and {len(loose)} image(s) "
                         f"beside them ({_first_few(loose)}), which would have no label: move those into "
                         "a class folder, or into a folder of their own to use them unlabelled")
    if label is None:
        _check_class_folders(path, classes, names)
    paths = [file for file, _ in readable]
    labels = [-1 if lab is None else _class_index(lab, names) for _, lab in readable]
    if not paths:
        raise ValueError(f"no readable images in {path}")
    return ImageFiles(paths, torch.tensor(labels), names, transform, skipped)


def has_class_folders(path: str | os.PathLike) -> bool:
    """Whether a folder holds class subfolders with files in them, so that its images
    are labelled by folder (else the protocol labels them with the model's prediction)."""
    path = Path(path).expanduser()
    return path.is_dir() and any(d.is_dir() and not d.name.startswith(".") and any(f.is_file() for f in d.iterdir())
                                 for d in path.iterdir())
