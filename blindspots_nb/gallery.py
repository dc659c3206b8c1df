"""Named image collections that the explorer and the notebooks offer: the bundled
photos, FONTS glyphs, or a folder, each preprocessed for a given model."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

PHOTOS = "bundled photos (scikit-image)"
GLYPHS = "FONTS glyphs (test split)"
FOLDER_PREFIX = "folder: "
IMAGENET_PREFIX = "imagenet: "
CIFAR10_PREFIX = "cifar10: "
DATASET_LIMIT = 100  # images taken from the start of a large dataset
# Photos the ImageNet models name confidently (espresso, tabby/Egyptian cat, tripod, ...).
PHOTO_PICKS = ("coffee", "chelsea", "camera", "astronaut", "rocket", "moon")


def collection_images(collection: str, model) -> tuple[torch.Tensor, list[str]]:
    """See :func:`_collection_images`; also checks that the images fit the model."""
    images, names = _collection_images(collection, model)
    if tuple(images.shape[1:]) != tuple(model.input_size):
        raise ValueError(f"{collection!r} holds images of shape {tuple(images.shape[1:])}, but the model expects "
                         f"{tuple(model.input_size)}")
    return images, names


def _collection_images(collection: str, model) -> tuple[torch.Tensor, list[str]]:
    """Images (N, C, H, W) in [0, 1] and their names, preprocessed for ``model``:
    ``PHOTOS``; ``GLYPHS`` (20 test glyphs, named like 'A0 (font)'); 'folder: PATH'
    (a user's images); 'imagenet: ROOT' (validation images in class folders) or
    'cifar10: ROOT' (the test batch), the first ``DATASET_LIMIT`` of them."""
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
    for prefix, load in ((FOLDER_PREFIX, lambda root: data.image_folder(root, size=model)),
                         (IMAGENET_PREFIX, lambda root: data.imagenet_val(root, size=model)),
                         (CIFAR10_PREFIX, lambda root: data.cifar10(root, download=False))):
        if collection.startswith(prefix):
            dataset = load(collection[len(prefix):])
            count = min(len(dataset), DATASET_LIMIT)
            images = torch.stack([dataset[i][0] for i in range(count)])
            return images, [Path(str(name)).name for name in dataset.names[:count]]
    raise ValueError(f"unknown image collection {collection!r}: use {PHOTOS!r}, {GLYPHS!r}, "
                     f"'{FOLDER_PREFIX}PATH', '{IMAGENET_PREFIX}ROOT' or '{CIFAR10_PREFIX}ROOT'")


def as_collection(spec) -> str:
    """A collection name from a user's spec: a collection name as is, any other
    string or path as 'folder: PATH'."""
    spec = str(spec)
    known = spec in (PHOTOS, GLYPHS) or spec.startswith((FOLDER_PREFIX, IMAGENET_PREFIX, CIFAR10_PREFIX))
    return spec if known else FOLDER_PREFIX + spec


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
