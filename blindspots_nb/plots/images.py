"""Images as pictures: tensors (C, H, W) in [0, 1] as arrays, PNG bytes and data URIs
(for widgets and plotly), the difference of two images, and one image in a matplotlib
panel; every figure draws its images through these."""

from __future__ import annotations

import base64
import io

import numpy as np
import torch


def to_array(image) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as a float array (H, W, 3), or (H, W) for one channel."""
    array = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"expected one image (C, H, W) with 1 or 3 channels; got shape {array.shape}")
    array = np.clip(array, 0, 1)
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def image_to_png(image, size: int | None = None) -> bytes:
    """PNG bytes of an image (C, H, W) in [0, 1]; ``size``: longest side in pixels
    (small images are enlarged without smoothing, so pixels stay visible)."""
    from PIL import Image

    picture = Image.fromarray(np.round(to_array(image) * 255).astype(np.uint8))
    if size is not None and max(picture.size) != size:
        scale = size / max(picture.size)
        new_size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        resample = Image.NEAREST if scale > 1 else Image.LANCZOS
        picture = picture.resize(new_size, resample)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_to_data_uri(image, size: int | None = None) -> str:
    """A ``data:image/png`` URI of an image, for plotly layout images."""
    return "data:image/png;base64," + base64.b64encode(image_to_png(image, size)).decode()


def difference_image(image: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``image - reference`` shown as an image: 0.5 is no change, the largest absolute
    change maps to 0 or 1. Returns the picture and that largest change (the scale)."""
    difference = (image - reference).detach().float()
    scale = float(difference.abs().max())
    return (0.5 + difference / (2 * scale if scale > 0 else 1.0)).clamp(0, 1), scale


def show_image(ax, image):
    """One image in a matplotlib panel, its pixels unsmoothed, without ticks."""
    array = to_array(image)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
