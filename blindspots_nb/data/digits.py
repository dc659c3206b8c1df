"""Real handwriting offline: scikit-learn's handwritten digits (``load_digits``, 1,797 images
of 8x8 pixels from 43 writers, shipped inside scikit-learn's wheel), upsampled to a model's
input size, with a fixed train/test split."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F

from ..models import DIGITS_CLASSES
from .images import TensorImages, input_size_of

DIGITS_TEST_SHARE = 0.2  # of each digit's images, in the test split (360 of 1,797)
DIGITS_SPLIT_SEED = 0  # the split is fixed: the shipped models were trained on its train part


@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """scikit-learn's digits (N, 8, 8) with values 0-16 (ink high), their labels, and the
    indices of each split: stratified by digit, drawn once from :data:`DIGITS_SPLIT_SEED`."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    train, test = train_test_split(np.arange(len(bunch.target)), test_size=DIGITS_TEST_SHARE,
                                   stratify=bunch.target, random_state=DIGITS_SPLIT_SEED)
    return bunch.images, bunch.target, {"train": np.sort(train), "test": np.sort(test)}


def digits_dataset(split: str = "test", size=(1, 32, 32)) -> TensorImages:
    """The handwritten digits of ``split`` (``"test"``: 360 images, ``"train"``: 1,437), white
    ink on black, in [0, 1] (scikit-learn's 0-16 divided by 16), upsampled bilinearly from 8x8
    to ``size`` (an int, (H, W), (C, H, W) or a model; grayscale repeated over 3 channels).

    Labelled 0-9; each image is named ``<digit>-<its row in load_digits>`` (``3-1071``), so
    it can be found again. The split does not depend on any seed of the caller.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    channels, height, width = input_size_of(size)
    pixels, targets, splits = _digits()
    rows = splits[split]
    images = torch.from_numpy(pixels[rows]).float()[:, None] / 16.0
    images = F.interpolate(images, size=(height, width), mode="bilinear", align_corners=False).clamp(0, 1)
    labels = torch.from_numpy(targets[rows]).long()
    names = [f"{int(label)}-{int(row)}" for label, row in zip(labels, rows)]
    return TensorImages(images.expand(-1, channels, -1, -1).contiguous(), labels, list(DIGITS_CLASSES), names)
