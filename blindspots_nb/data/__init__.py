"""Image sources: skimage photos, FONTS-style glyphs, ImageNet/CIFAR-10, a user's folder.

Every loader returns images as float tensors in [0, 1] at a model's input size,
made by one preprocessing (:func:`preprocess_for`): resize the shorter side to
``H / crop_pct`` and centre-crop (ImageNet: Resize(256) + CenterCrop(224)).
Datasets yield ``(image, label)`` and carry ``class_names`` and per-image ``names``.
:func:`select_pool` picks the protocol's pool of confidently classified images.
"""

from __future__ import annotations

import math
import os
import pickle
import re
import warnings
from collections import Counter, deque
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from ..models import CIFAR10_CLASSES, FONTS_CLASSES, imagenet_class_names, imagenet_wnids, module_device

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


def _readable_files(files: list[tuple[Path, object]], caller: str, transform: Preprocess):
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
    if skipped:
        listing = "; ".join(f"{p} ({r})" for p, r in skipped[:10])
        warnings.warn(f"{caller}: skipped {len(skipped)} file(s) that are not readable "
                      f"images: {listing}" + (" ..." if len(skipped) > 10 else ""))
    return kept, skipped


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

    ``skipped`` lists ``(path, reason)`` for files left out as unreadable.
    """

    paths: list[Path]
    labels: torch.Tensor
    class_names: list[str]
    transform: Preprocess
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [str(p) for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        with open_image(self.paths[i]) as image:
            try:
                return self.transform(image), int(self.labels[i])
            except (OSError, ValueError) as err:
                raise ImageReadError(str(self.paths[i]), str(err)) from err


# --------------------------------------------------------------------------- skimage photos

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


# --------------------------------------------------------------------------- FONTS-style glyphs


def _has_letters(path: Path) -> bool:
    """Whether a font maps A-J to the standard glyphs named A-J (not symbols or fallbacks)."""
    from fontTools.ttLib import TTFont

    try:
        cmap = TTFont(str(path), lazy=True).getBestCmap() or {}
    except Exception:
        return False
    return all(cmap.get(ord(c)) == c for c in FONTS_CLASSES)


@lru_cache(maxsize=None)
def matplotlib_fonts() -> tuple[Path, ...]:
    """The TrueType fonts matplotlib ships that have the letters A-J, sorted by name."""
    import matplotlib

    folder = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    return tuple(p for p in sorted(folder.glob("*.ttf")) if _has_letters(p))


def font_split(split: str, fonts: Sequence[str | os.PathLike] | None = None) -> list[Path]:
    """The fonts of ``split``: every 4th font (sorted by name, from the 4th on) is a
    test font, the others train fonts, so the two splits share no font."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    paths = sorted((Path(f) for f in fonts), key=lambda p: p.name) if fonts else matplotlib_fonts()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"font files not found: {missing}")
    chosen = [p for i, p in enumerate(paths) if (i % 4 == 3) == (split == "test")]
    if not chosen:
        raise ValueError(f"no {split} fonts: give at least 4 font files")
    return chosen


@lru_cache(maxsize=8)
def _glyph_bank(fonts: tuple[Path, ...], canvas: int) -> torch.Tensor:
    """(F, 10, canvas, canvas) white-on-black masks of A-J, each glyph scaled so its
    longer side is 5/8 of the canvas and centred."""
    from PIL import ImageDraw, ImageFont

    bank = torch.zeros(len(fonts), len(FONTS_CLASSES), canvas, canvas)
    box = round(canvas * 5 / 8)
    for f, path in enumerate(fonts):
        font = ImageFont.truetype(str(path), size=2 * canvas)
        for k, letter in enumerate(FONTS_CLASSES):
            x0, y0, x1, y1 = font.getbbox(letter)
            glyph = Image.new("L", (x1 - x0, y1 - y0))
            ImageDraw.Draw(glyph).text((-x0, -y0), letter, fill=255, font=font)
            scale = box / max(glyph.size)
            glyph = glyph.resize((max(1, round(glyph.width * scale)),
                                  max(1, round(glyph.height * scale))), Image.LANCZOS)
            page = Image.new("L", (canvas, canvas))
            page.paste(glyph, ((canvas - glyph.width) // 2, (canvas - glyph.height) // 2))
            bank[f, k] = torch.from_numpy(np.asarray(page, dtype=np.float32) / 255.0)
    return bank


def fonts_dataset(split: str = "train", n: int = 10000, seed: int = 0, size: int = 32,
                  fonts: Sequence[str | os.PathLike] | None = None) -> TensorImages:
    """FONTS-style glyph images (after Stutz et al. 2019): letters A-J, white on black,
    1 x size x size in [0, 1], under random affine transforms (rotation +-15 deg, scale
    0.8-1.1, shear +-0.25, shift +-12%).

    Deterministic in (split, n, seed); train and test draw from disjoint fonts
    (:func:`font_split`; default: the fonts matplotlib ships). Labels are balanced.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    paths = tuple(font_split(split, fonts))
    canvas = 2 * size  # render at twice the size, then average-pool: antialiasing
    bank = _glyph_bank(paths, canvas)
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(n) % len(FONTS_CLASSES))
    font_idx = rng.integers(len(paths), size=n)
    angle = np.deg2rad(rng.uniform(-15, 15, n))
    scale = rng.uniform(0.8, 1.1, n)
    shear = rng.uniform(-0.25, 0.25, n)
    shift = rng.uniform(-0.12, 0.12, (n, 2)) * 2  # in grid units ([-1, 1] spans the image)
    # forward map: x -> R(angle) @ Shear(shear) @ (scale * x) + shift; affine_grid wants its inverse
    cos, sin = np.cos(angle), np.sin(angle)
    fwd = np.stack([np.stack([cos, cos * shear - sin], -1),
                    np.stack([sin, sin * shear + cos], -1)], -2) * scale[:, None, None]
    inv = np.linalg.inv(fwd)
    theta = np.concatenate([inv, -inv @ shift[:, :, None]], -1)
    images = torch.empty(n, 1, size, size)
    for start in range(0, n, 2048):
        sl = slice(start, start + 2048)
        src = bank[torch.from_numpy(font_idx[sl]), torch.from_numpy(labels[sl])][:, None]
        grid = F.affine_grid(torch.from_numpy(theta[sl]).float(), list(src.shape),
                             align_corners=False)
        warped = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        images[sl] = F.avg_pool2d(warped, 2).clamp_(0, 1)
    return TensorImages(images, torch.from_numpy(labels).long(), list(FONTS_CLASSES),
                        [paths[i].stem for i in font_idx])


# --------------------------------------------------------------------------- ImageNet

_WNID = re.compile(r"^n\d{8}$")


def imagenet_val(root: str | os.PathLike, size=224) -> ImageFiles:
    """ImageNet validation images in class folders: ``root/<wnid>/*`` or
    ``root/val/<wnid>/*``. Labels follow timm's class order; decoded on access. Files
    that are not readable images (or in a colour mode that cannot be converted) are
    skipped with a warning listing them (``skipped``)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"ImageNet folder {root} does not exist")
    wnids = {w: i for i, w in enumerate(imagenet_wnids())}
    for folder in (root, root / "val"):
        dirs = sorted(d for d in folder.iterdir() if d.is_dir() and _WNID.match(d.name)) \
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
    files = [(p, wnids[d.name]) for d in dirs if d.name in wnids
             for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")]
    if not files:
        raise ValueError(f"no image files in the class folders of {folder}")
    transform = preprocess_for(size)
    readable, skipped = _readable_files(files, "imagenet_val", transform)
    if not readable:
        raise ValueError(f"no readable images in the class folders of {folder}")
    return ImageFiles([p for p, _ in readable], torch.tensor([label for _, label in readable]),
                      list(imagenet_class_names()), transform, skipped)


# --------------------------------------------------------------------------- CIFAR-10


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: no other code can run."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_test_batch(root: Path, download: bool) -> Path:
    from torchvision.datasets import CIFAR10

    candidates = [root, root / "test_batch", root / CIFAR10.base_folder / "test_batch"]
    found = next((p for p in candidates if p.is_file()), None)
    if found:
        return found
    target = candidates[-1]
    hint = (f"download {CIFAR10.url} and extract it into {root} "
            f"(giving {target})")
    if not download:
        raise FileNotFoundError(f"no CIFAR-10 test batch at {target}; {hint}")
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                     md5=CIFAR10.tgz_md5)
    except Exception as err:
        raise FileNotFoundError(f"no CIFAR-10 test batch at {target} and the download failed "
                                f"({type(err).__name__}: {err}); {hint}") from err
    return target


def cifar10(root: str | os.PathLike, download: bool = True) -> TensorImages:
    """The 10,000 CIFAR-10 test images (3 x 32 x 32, in [0, 1]) from the python-format
    ``cifar-10-batches-py/test_batch`` under ``root`` (``root`` may also be that file),
    downloaded from torchvision's URL when missing and ``download`` is true."""
    path = _cifar_test_batch(Path(root).expanduser(), download)
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = torch.tensor(batch["labels"], dtype=torch.long)
    except Exception as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch file ({err})") from err
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in batch.get("filenames", range(len(labels)))]
    return TensorImages(torch.from_numpy(data).float() / 255, labels, list(CIFAR10_CLASSES), names)


# --------------------------------------------------------------------------- a user's images


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
    if n == 1000 and _WNID.match(text) and text in imagenet_wnids():
        return imagenet_wnids().index(text)
    raise ValueError(f"label {text!r} is not one of the model's {n} classes "
                     f"(e.g. {', '.join(repr(c) for c in class_names[:3])})")


def _first_few(names: Sequence[str], count: int = 5) -> str:
    """The first ``count`` names, comma-separated, with "..." when there are more."""
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def image_folder(path: str | os.PathLike, size=224, label=None,
                 class_names: Sequence[str] | None = None) -> ImageFiles:
    """A user's images, preprocessed for ``size`` (an int, (C, H, W) or a model).

    ``path`` is an image file or a folder. Labels come from ``label`` (for all images),
    else from subfolder names (``path/<class>/*``), else are unknown (-1); images beside
    class subfolders have no label and are refused (ValueError naming them), not mixed
    in unlabelled. Labels are class indices or names of ``class_names`` (default: the
    model's, else ImageNet's). Grayscale and RGBA images are converted and any size is
    resized; files that are not readable images (or in a colour mode that cannot be
    converted) are skipped with a warning listing them.
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
    readable, skipped = _readable_files(files, "image_folder", transform)
    loose = [file.name for file, lab in readable if lab is None]
    classes = sorted({lab for _, lab in readable if lab is not None})
    if loose and classes:
        raise ValueError(f"{path} has class folders ({_first_few(classes)}) and {len(loose)} image(s) "
                         f"beside them ({_first_few(loose)}), which would have no label: move those into "
                         "a class folder, or into a folder of their own to use them unlabelled")
    paths = [file for file, _ in readable]
    labels = [-1 if lab is None else _class_index(lab, names) for _, lab in readable]
    if not paths:
        raise ValueError(f"no readable images in {path}")
    return ImageFiles(paths, torch.tensor(labels), names, transform, skipped)


# --------------------------------------------------------------------------- pool selection


@dataclass(eq=False)
class Pool:
    """The protocol's pool: images every model classifies correctly with confidence
    above ``min_conf``; at most ``per_class`` per class, first ones in dataset order.

    ``confidences[i, m]``: model m's softmax probability of ``labels[i]``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]
    names: list[str]
    class_names: list[str]
    confidences: torch.Tensor
    models: list[str]
    per_class: int
    min_conf: float

    def __len__(self) -> int:
        return len(self.indices)


def _next_batch(pending: deque, labels, count, per_class: int, batch_size: int) -> list[int]:
    """Pop up to ``batch_size`` indices, in order, of classes not yet full, taking no more
    images of a class than it still needs; the others stay pending, in order."""
    batch, taken, deferred = [], Counter(), []
    while pending and len(batch) < batch_size:
        i = pending.popleft()
        c = labels[i]
        if count[c] >= per_class:
            continue
        if count[c] + taken[c] >= per_class:
            deferred.append(i)
            continue
        taken[c] += 1
        batch.append(i)
    pending.extendleft(reversed(deferred))
    return batch


@torch.no_grad()
def select_pool(models, dataset, per_class: int = 1, min_conf: float = 0.6,
                batch_size: int = 64) -> Pool:
    """For each class, the first ``per_class`` images of ``dataset`` (in its order) that
    every model in ``models`` (one model or a list) classifies correctly with softmax
    confidence above ``min_conf``. Images of classes already full are never evaluated,
    so a class-sorted ImageNet folder costs about one forward pass per class."""
    models = list(models) if isinstance(models, (list, tuple)) else [models]
    if not models:
        raise ValueError("select_pool needs at least one model")
    if per_class < 1 or not 0 <= min_conf < 1:
        raise ValueError(f"need per_class >= 1 and 0 <= min_conf < 1, got {per_class}, {min_conf}")
    class_names = list(getattr(dataset, "class_names", []) or models[0].class_names)
    num_classes = len(class_names)
    for m in models:
        if len(m.class_names) != num_classes:
            raise ValueError(f"model {m.info.get('name')} has {len(m.class_names)} classes, "
                             f"the dataset {num_classes}")
    labels = getattr(dataset, "labels", None)
    labels = ([int(v) for v in labels] if labels is not None
              else [dataset[i][1] for i in range(len(dataset))])
    bad = next((i for i, v in enumerate(labels) if not 0 <= v < num_classes), None)
    if bad is not None:
        raise ValueError(f"label {labels[bad]} of dataset item {bad} is unknown or outside the "
                         f"{num_classes} classes; select_pool needs labelled images")
    count = [0] * num_classes
    kept = {}  # dataset index -> (image, confidences)
    pending = deque(range(len(dataset)))
    while batch := _next_batch(pending, labels, count, per_class, batch_size):
        x = torch.stack([dataset[i][0] for i in batch])
        y = torch.tensor([labels[i] for i in batch])
        conf = []
        for m in models:
            if tuple(x.shape[1:]) != tuple(m.input_size):
                raise ValueError(f"dataset images are {tuple(x.shape[1:])} but model "
                                 f"{m.info.get('name')} expects {tuple(m.input_size)}; build the "
                                 "dataset with size=model")
            probs = m(x.to(module_device(m))).softmax(-1).cpu()
            right = probs.argmax(-1) == y
            conf.append(torch.where(right, probs.gather(1, y[:, None])[:, 0], torch.zeros(())))
        conf = torch.stack(conf, 1)
        for j in (conf > min_conf).all(1).nonzero()[:, 0].tolist():
            count[int(y[j])] += 1
            kept[batch[j]] = (x[j], conf[j])
    indices = sorted(kept)
    names = list(getattr(dataset, "names", []) or map(str, range(len(dataset))))
    c, h, w = models[0].input_size
    return Pool(images=torch.stack([kept[i][0] for i in indices]) if kept else torch.empty(0, c, h, w),
                labels=torch.tensor([labels[i] for i in indices], dtype=torch.long),
                indices=indices, names=[names[i] for i in indices], class_names=class_names,
                confidences=(torch.stack([kept[i][1] for i in indices]) if kept
                             else torch.empty(0, len(models))),
                models=[m.info.get("name", "model") for m in models],
                per_class=per_class, min_conf=float(min_conf))
