import pickle
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb.gallery import (CIFAR10_PREFIX, FOLDER_PREFIX, GLYPHS, IMAGENET_PREFIX, PHOTOS, PHOTO_PICKS,
                                   collection_images, default_collection, pick_images)


def _model(input_size=(3, 16, 16), dataset="imagenet"):
    """What the gallery reads of a model: its input size, info and class names."""
    return SimpleNamespace(input_size=input_size, info={"dataset": dataset, "crop_pct": 1.0},
                           class_names=[f"class {i}" for i in range(1000)])


def test_photos_and_default_picks():
    images, names = collection_images(PHOTOS, _model())
    assert images.shape[1:] == (3, 16, 16) and len(images) == len(names)
    assert 0 <= images.min() and images.max() <= 1
    picked, picked_names = pick_images(_model(), k=3)
    assert picked_names == list(PHOTO_PICKS[:3])
    torch.testing.assert_close(picked[1], images[names.index(PHOTO_PICKS[1])])
    gray, _ = collection_images(PHOTOS, _model((1, 16, 16)))
    assert gray.shape[1:] == (1, 16, 16)


def test_glyphs_for_fonts_models():
    model = _model((1, 32, 32), dataset="fonts")
    assert default_collection(model) == GLYPHS and default_collection(_model()) == PHOTOS
    images, names = pick_images(model, k=3)
    assert [name[0] for name in names] == ["A", "B", "C"]
    assert images.shape == (3, 1, 32, 32)


def test_folders_and_datasets(tmp_path):
    folder = tmp_path / "imagenet" / "n01440764"
    folder.mkdir(parents=True)
    for n in range(3):
        Image.new("RGB", (24, 20), (80 * n, 0, 0)).save(folder / f"fish{n}.png")
    images, names = collection_images(f"{IMAGENET_PREFIX}{tmp_path / 'imagenet'}", _model())
    assert names == ["fish0.png", "fish1.png", "fish2.png"] and images.shape == (3, 3, 16, 16)
    images, names = collection_images(f"{FOLDER_PREFIX}{folder}", _model())
    assert names == ["fish0.png", "fish1.png", "fish2.png"]

    batch = {"data": np.arange(2 * 3072).reshape(2, 3072) % 256, "labels": [3, 5],
             "filenames": [b"cat.png", b"dog.png"]}
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({key.encode(): value for key, value in batch.items()}))
    images, names = collection_images(f"{CIFAR10_PREFIX}{path}", _model((3, 32, 32)))
    assert names == ["cat.png", "dog.png"]
    torch.testing.assert_close(images[0].flatten()[:3], torch.tensor([0.0, 1.0, 2.0]) / 255)
    with pytest.raises(ValueError, match="expects"):
        collection_images(f"{CIFAR10_PREFIX}{path}", _model((3, 16, 16)))


def test_bad_requests_are_clear():
    with pytest.raises(ValueError, match="unknown image collection"):
        collection_images("somewhere", _model())
    with pytest.raises(ValueError, match="no images \\['nope'\\]"):
        pick_images(_model(), ["coffee", "nope"])
