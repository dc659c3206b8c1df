"""Images as tensors: one preprocessing for every source, image files read safely, datasets.

:func:`preprocess_for` gives a model's preprocessing (:class:`Preprocess`): resize the
shorter side to ``H / crop_pct`` and centre-crop (ImageNet: Resize(256) +
CenterCrop(224)), to float tensors in [0, 1]. :func:`open_image` refuses what is not a
readable image with an :class:`ImageReadError`, and :func:`readable_files` checks a
user's folder's files before use (an ImageNet folder is checked as it is read).
:class:`TensorImages` holds images in memory, :class:`ImageFiles` decodes files on
access; both yield ``(image, label)`` and carry ``class_names`` and per-image ``names``.
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

_SIZE_HELP = "an int, (H, W), (C, H, W) with C in (1, 3), or a model with .input_size"


# --------------------------------------------------------------------------- preprocessing


def input_size_of(target) -> tuple[int, int, int]:
    """(C, H, W) from an int (square RGB), (H, W), (C, H, W) or a model's ``input_size``."""
    size = getattr(target, "input_size", target)
    if isinstance(size, int):
        return (3, size, size)
    size = tuple(int(v) for v in size)
    if len(size) == 2:
        return (3, *size)
    if len(size) == 3 and size[0] in (1, 3):
        return size
    raise ValueError(f"size must be {_SIZE_HELP}, got {target!r}")


# The largest value of each integer mode with more than 8 bits per pixel (Pillow's modes for
# 16-bit grayscale; "I", 32-bit integers, holds 16-bit data in some formats) and of floats.
_HIGH_BIT_DEPTH_TOP = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535, "F": 1.0}


def _scaled_to_unit(image: Image.Image) -> Image.Image:
    """A high-bit-depth grayscale image as a float ("F") image in [0, 1]: 16-bit values
    (and 32-bit integers up to 65535) divided by 65535, floats taken as they are.

    ``convert("RGB")`` would clip such values at 255 (a 16-bit image turns white), so
    they are scaled here; values outside the mode's range have no known scale and are
    refused with a ValueError rather than clipped.
    """
    top = _HIGH_BIT_DEPTH_TOP[image.mode]
    values = np.asarray(image.convert("F"), dtype=np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"the mode-{image.mode} image holds NaN or infinite pixels")
    low, high = float(values.min()), float(values.max())
    if low < 0 or high > top:
        kind = "float images must hold values in [0, 1]" if image.mode == "F" else \
            "integer images are read as 16-bit, values 0 to 65535"
        raise ValueError(f"cannot scale the mode-{image.mode} image to [0, 1]: its values lie in "
                         f"[{low:g}, {high:g}] and {kind}; save it as an 8- or 16-bit image")
    return Image.fromarray((values / top).astype(np.float32), mode="F")


# How many times the crop's pixels a whole resize may make before only the cropped
# region is resampled (see Preprocess._resized_and_cropped).
_WHOLE_RESIZE_LIMIT = 64


@dataclass(frozen=True)
class Preprocess:
    """PIL image -> (C, H, W) tensor in [0, 1]: drop alpha onto white, convert to RGB
    or grayscale, resize the shorter side to ``H / crop_pct`` (bilinear, antialiased),
    centre-crop to (H, W). Images already of size (H, W) are only converted.

    16-bit and other high-bit-depth grayscale images (modes ``I;16*``, ``I``, ``F``) are
    scaled to [0, 1] by their own range, not clipped (see :func:`_scaled_to_unit`).
    Pillow reads 16-bit RGB files as 8-bit RGB, already scaled. Whatever cannot be
    preprocessed (a colour mode Pillow cannot convert, values of unknown scale, too
    little memory) raises a ValueError.
    """

    input_size: tuple[int, int, int]
    crop_pct: float

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torchvision.transforms.functional as TF

        c, h, w = self.input_size
        try:
            converted = self.convert(image)
            if converted.size != (w, h):
                converted = self._resized_and_cropped(converted)
            tensor = TF.to_tensor(converted)  # "F" images keep their values; 8-bit ones are divided by 255
        except MemoryError as err:
            raise ValueError(f"not enough memory to preprocess the {image.width} x {image.height} "
                             "pixel image; make it smaller") from err
        return tensor.expand(c, -1, -1).clone() if converted.mode == "F" else tensor

    def convert(self, image: Image.Image) -> Image.Image:
        """``image`` in the mode its tensor is made from: RGB or L, or F for high bit
        depths; a ValueError for a colour mode Pillow cannot convert (LAB to L)."""
        if image.mode in _HIGH_BIT_DEPTH_TOP:
            return _scaled_to_unit(image)
        if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            image.alpha_composite(rgba)
        mode = "RGB" if self.input_size[0] == 3 else "L"
        try:
            return image.convert(mode)
        except ValueError as err:
            raise ValueError(f"Pillow cannot convert its colour mode {image.mode} to {mode} ({err}); "
                             "save it as an RGB or grayscale image") from err

    def check_mode(self, image: Image.Image) -> None:
        """Raise the ValueError that :meth:`convert` would for ``image``'s colour mode,
        converting one pixel only (pixel values are checked when the image is used)."""
        if image.mode not in _HIGH_BIT_DEPTH_TOP:
            self.convert(image.crop((0, 0, 1, 1)))

    def _resized_and_cropped(self, image: Image.Image) -> Image.Image:
        """torchvision's ``Resize(round(min(H, W) / crop_pct))`` then ``CenterCrop((H, W))``.

        Where the whole resized image would be large (over :data:`_WHOLE_RESIZE_LIMIT`
        times the crop: an aspect ratio beyond about 50:1 at ``crop_pct`` 0.875), only
        the region that the crop keeps is resampled, from the input pixels the filter
        reaches (Pillow's ``resize(box=...)``), so the work is bounded by the output: a
        60000 x 1 image would otherwise become 256 x 15 million pixels (12 GB) first.
        Those pixels differ from the whole resize's by rounding only (Pillow holds the
        box in single precision; 8-bit images round twice: a level or two of 255), so
        ordinary images take the whole resize and keep their pixels exactly.
        """
        import torchvision.transforms.functional as TF

        _, h, w = self.input_size
        short = round(min(h, w) / self.crop_pct)
        width, height = image.size
        resized = ((short, int(short * height / width)) if width <= height
                   else (int(short * width / height), short))  # torchvision's sizes
        if resized[0] * resized[1] <= _WHOLE_RESIZE_LIMIT * h * w:
            image = TF.resize(image, short, interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        else:
            region, box, kept = [], [], []
            for size, new, crop in zip(image.size, resized, (w, h)):
                start, length = max(0, int(round((new - crop) / 2.0))), min(new, crop)
                first, last = start * size / new, (start + length) * size / new
                reach = max(size / new, 1.0) + 1  # the bilinear filter's support, and a pixel
                low, high = max(0, math.floor(first - reach)), min(size, math.ceil(last + reach))
                region.append((low, high))
                box.append((first - low, last - low))
                kept.append(length)
            (x0, x1), (y0, y1) = region
            (left, right), (top, bottom) = box
            image = image.crop((x0, y0, x1, y1)).resize(tuple(kept), Image.BILINEAR,
                                                        box=(left, top, right, bottom))
        return TF.center_crop(image, [h, w])  # pads with black where the image is smaller


def preprocess_for(target, crop_pct: float | None = None) -> Preprocess:
    """The preprocessing of a model (or of an input size): see :class:`Preprocess`.

    ``crop_pct`` defaults to the model's ``info['crop_pct']``, else 0.875 for inputs of
    128 px and more (Resize(256) + CenterCrop(224)) and 1.0 (plain resize) below.
    """
    size = input_size_of(target)
    if crop_pct is None:
        crop_pct = getattr(target, "info", {}).get("crop_pct") or (
            0.875 if min(size[1:]) >= 128 else 1.0)
    return Preprocess(size, float(crop_pct))


# --------------------------------------------------------------------------- image files


class ImageReadError(ValueError):
    """An image file that cannot be used: ``name`` (its path or name) and ``reason``."""

    def __init__(self, name: str, reason: str):
        self.name, self.reason = name, reason
        super().__init__(f"cannot read image {name}: {reason}")


def open_image(file, name: str | None = None, reduced: bool = False) -> Image.Image:
    """Open and decode an image file (a path or a binary file object), refusing what is
    not a readable image with an :class:`ImageReadError` naming ``name`` (default: the
    path). Decompression bombs (images of more than ``2 * PIL.Image.MAX_IMAGE_PIXELS``
    pixels) are refused with that limit; Pillow warns from ``MAX_IMAGE_PIXELS`` on.

    ``reduced``: decode JPEGs at 1/8 scale, which still reads every byte (damage still
    shows) at about 60% of the cost: for checking files, not for using them.
    """
    name = str(file) if name is None else name
    image = None
    try:
        image = Image.open(file)
        if reduced:
            image.draft(None, (1, 1))
        image.load()
        return image
    except Image.DecompressionBombError as err:
        reason = (f"refused as a possible decompression bomb ({err}); if you trust the file, raise "
                  f"PIL.Image.MAX_IMAGE_PIXELS (now {Image.MAX_IMAGE_PIXELS})")
    except UnidentifiedImageError:
        reason = "not a recognised image format"
    except Exception as err:  # Pillow's decoders raise many types for damaged files
        reason = str(err) or type(err).__name__
    if image is not None:
        image.close()
    raise ImageReadError(name, reason)


def readable_files(files: list[tuple[Path, object]], caller: str, transform: Preprocess):
    """The ``(path, label)`` pairs whose files decode as images in a colour mode that
    ``transform`` converts, and ``(path, reason)`` for the others, which a warning of
    ``caller`` lists."""
    kept, skipped = [], []
    for path, label in files:
        try:
            with open_image(path, reduced=True) as image:
                transform.check_mode(image)
            kept.append((path, label))
        except ValueError as err:
            skipped.append((str(path), getattr(err, "reason", str(err))))
    warn_skipped(caller, skipped)
    return kept, skipped


def warn_skipped(caller: str, skipped: list[tuple[str, str]]):
    """One warning of ``caller`` listing the ``(path, reason)`` of files skipped as
    unreadable (none: no warning)."""
    if skipped:
        listing = "; ".join(f"{p} ({r})" for p, r in skipped[:10])
        warnings.warn(f"{caller}: skipped {len(skipped)} file(s) that are not readable "
                      f"images: {listing}" + (" ..." if len(skipped) > 10 else ""), stacklevel=3)


# --------------------------------------------------------------------------- datasets


@dataclass(eq=False)
class TensorImages(torch.utils.data.Dataset):
    """Images held in memory: ``images`` (N, C, H, W) in [0, 1], ``labels`` (N,), -1 = unknown."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


@dataclass(eq=False)
class ImageFiles(torch.utils.data.Dataset):
    """Image files decoded on access with ``transform``; ``names`` are the paths.

    ``skipped`` lists ``(path, reason)`` for files left out as unreadable; ``root``: the
    folder they were listed from (None: names are shown as the paths).
    """

    paths: list[Path]
    labels: torch.Tensor
    class_names: list[str]
    transform: Preprocess
    skipped: list[tuple[str, str]] = field(default_factory=list)
    root: Path | None = None

    @property
    def names(self) -> list[str]:
        return [str(p) for p in self.paths]

    @property
    def short_names(self) -> list[str]:
        """Each image's path within ``root``, ``red/img0.png`` (``/`` on every system): as
        unique as the paths, so that files of the same name in two class folders stay two images."""
        if self.root is None:
            return self.names
        return [Path(os.path.relpath(p, self.root)).as_posix() for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open_image(self.paths[i]) as image:
            try:
                return self.transform(image), int(self.labels[i])
            except (OSError, ValueError) as err:
                raise ImageReadError(str(self.paths[i]), str(err)) from err

