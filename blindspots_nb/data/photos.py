"""scikit-image's bundled photos, at a model's input size."""

from __future__ import annotations

from typing import Sequence

import torch
from PIL import Image

from .images import preprocess_for

SAMPLE_IMAGES = ("astronaut", "camera", "chelsea", "coffee", "rocket",
                 "hubble_deep_field", "immunohistochemistry", "coins", "moon")


def sample_images(size=224, names: Sequence[str] = SAMPLE_IMAGES) -> tuple[torch.Tensor, list[str]]:
    """scikit-image's bundled photos as ((N, C, H, W) in [0, 1], names) at ``size``
    (an int, (C, H, W) or a model), with that model's preprocessing."""
    from skimage import data as skdata

    prep = preprocess_for(size)
    unknown = [n for n in names if not callable(getattr(skdata, n, None))]
    if unknown:
        raise ValueError(f"not scikit-image sample images: {unknown}; try {list(SAMPLE_IMAGES)}")
    images = [prep(Image.fromarray(getattr(skdata, n)())) for n in names]
    return torch.stack(images), list(names)
