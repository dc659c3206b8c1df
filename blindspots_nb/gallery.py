"""Named image collections that the explorer and the notebooks offer: the bundled
photos, FONTS glyphs, or a folder, each preprocessed for a given model."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

PHOTOS = "bundled photos (scikit-image)"
GLYPHS = "FONTS glyphs (test split)"
FOLDER_PREFIX = "folder: "
# Photos the ImageNet models name confidently (espresso, tabby/Egyptian cat, tripod, ...).
PHOTO_PICKS = ("coffee", "chelsea", "camera", "astronaut", "rocket", "moon")


def collection_images(collection: str, model) -> tuple[torch.Tensor, list[str]]:
    """Images (N, C, H, W) in [0, 1] and their names, preprocessed for ``model``:
    ``PHOTOS``, ``GLYPHS`` (20 test glyphs, named like 'A0 (font)'), or 'folder: PATH'."""
    from . import data

    if collection == PHOTOS:
        return data.sample_images(model)
    if collection == GLYPHS:
        c, h, _ = model.input_size
        glyphs = data.fonts_dataset("test", n=20, seed=0, size=h)
        images = glyphs.images if c == 1 else glyphs.images.expand(-1, 3, -1, -1)
        names = [f"{glyphs.class_names[int(y)]}{i} ({font})"
                 for i, (y, font) in enumerate(zip(glyphs.labels, glyphs.names))]
        return images, names
    if collection.startswith(FOLDER_PREFIX):
        files = data.image_folder(collection[len(FOLDER_PREFIX):], size=model)
        return torch.stack([files[i][0] for i in range(len(files))]), [Path(n).name for n in files.names]
    raise ValueError(f"unknown image collection {collection!r}: use {PHOTOS!r}, {GLYPHS!r} "
                     f"or '{FOLDER_PREFIX}PATH'")


def default_collection(model) -> str:
    """Glyphs for models trained on FONTS, photos for the others."""
    return GLYPHS if getattr(model, "info", {}).get("dataset") == "fonts" else PHOTOS


def pick_images(model, names: Sequence[str] | None = None, k: int = 3,
                collection: str | None = None) -> tuple[torch.Tensor, list[str]]:
    """``k`` images of a collection (default: the model's) by name; without names,
    photos from ``PHOTO_PICKS`` and glyphs of the first k letters, else the first k."""
    collection = collection or default_collection(model)
    images, all_names = collection_images(collection, model)
    if names is None:
        if collection == PHOTOS:
            names = PHOTO_PICKS[:k]
        elif collection == GLYPHS:
            first = {}
            for name in all_names:
                first.setdefault(name[0], name)
            names = [first[letter] for letter in sorted(first)][:k]
        else:
            names = all_names[:k]
    unknown = [name for name in names if name not in all_names]
    if unknown:
        raise ValueError(f"no images {unknown} in {collection!r}; it has {all_names}")
    return images[[all_names.index(name) for name in names]], list(names)
