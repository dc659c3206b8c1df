"""ImageNet validation images in class folders named by WordNet id."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import torch

from ..models import imagenet_class_names, imagenet_wnids
from .images import ImageFiles, preprocess_for

WNID = re.compile(r"^n\d{8}$")  # an ImageNet class folder's name: its WordNet id


def imagenet_val(root: str | os.PathLike, size=224) -> ImageFiles:
    """ImageNet validation images in class folders: ``root/<wnid>/*`` or
    ``root/val/<wnid>/*``. Labels follow timm's class order; decoded on access.

    Opening lists the folders only (50,000 files in well under a second): a file is checked
    when it is first decoded, and one that is not a readable image (or in a colour mode that
    cannot be converted) raises an :class:`~blindspots_nb.data.images.ImageReadError` naming
    it, which the tables' pool selection records and skips."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet folder {root} does not exist")
    wnids = {w: i for i, w in enumerate(imagenet_wnids())}
    for folder in (root, root / "val"):
        dirs = sorted(d for d in folder.iterdir() if d.is_dir() and WNID.match(d.name)) \
            if folder.is_dir() else []
        if dirs:
            break
    else:
        raise ValueError(f"{root} is not an ImageNet validation folder: expected class folders "
                         f"named by WordNet id (e.g. {root}/n01440764/*.JPEG) in it or in "
                         f"{root}/val")
    unknown = [d.name for d in dirs if d.name not in wnids]
    if unknown:
        warnings.warn(f"imagenet_val: ignored {len(unknown)} folders that are not ImageNet-1k "
                      f"classes: {unknown[:5]}")
    files = [(Path(entry.path), wnids[d.name]) for d in dirs if d.name in wnids
             for entry in sorted(os.scandir(d), key=lambda entry: entry.name)
             if entry.is_file() and not entry.name.startswith(".")]
    if not files:
        raise ValueError(f"no image files in the class folders of {folder}")
    return ImageFiles([path for path, _ in files], torch.tensor([label for _, label in files]),
                      list(imagenet_class_names()), preprocess_for(size), root=folder)
