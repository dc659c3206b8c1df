"""FONTS-style glyphs (after Stutz et al. 2019): letters A-J drawn from TrueType fonts
under random affine transforms, with train and test fonts kept apart."""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models import FONTS_CLASSES
from .images import TensorImages

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


def _check_size(size) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise ValueError(f"size must be an integer >= 2, got {size!r}")


def _stamped(paths) -> tuple[tuple[Path, int], ...]:
    """Font paths with their files' modification times: what a rendering kept is kept under,
    so that a font file changed since is rendered anew."""
    return tuple((path, path.stat().st_mtime_ns) for path in paths)


@lru_cache(maxsize=8)
def _glyph_bank(fonts: tuple[tuple[Path, int], ...], canvas: int) -> torch.Tensor:
    """(F, 10, canvas, canvas) white-on-black masks of A-J, each glyph scaled so its
    longer side is 5/8 of the canvas and centred; ``fonts``: :func:`_stamped` paths."""
    from PIL import ImageDraw, ImageFont

    bank = torch.zeros(len(fonts), len(FONTS_CLASSES), canvas, canvas)
    box = round(canvas * 5 / 8)
    for f, (path, _) in enumerate(fonts):
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


# The affine transform of a glyph: its parameters and their ranges in fonts_dataset. Angles in
# radians; the shift in grid units ([-1, 1] spans the image, so 0.24 is 12% of its side).
TRANSFORM_PARAMETERS = ("angle", "scale", "shear", "shift_x", "shift_y")
TRANSFORM_RANGES = ((-math.radians(15), math.radians(15)), (0.8, 1.1), (-0.25, 0.25), (-0.24, 0.24), (-0.24, 0.24))


def affine_theta(transforms: torch.Tensor) -> torch.Tensor:
    """(N, 2, 3) matrices for ``affine_grid`` from (N, 5) transforms (:data:`TRANSFORM_PARAMETERS`),
    differentiable. The forward map x -> R(angle) Shear(shear) (scale x) + shift moves the
    glyph; ``affine_grid`` samples through its inverse, written out (det = scale^2)."""
    angle, scale, shear, shift = transforms[:, 0], transforms[:, 1], transforms[:, 2], transforms[:, 3:]
    cos, sin = torch.cos(angle), torch.sin(angle)
    inverse = torch.stack([torch.stack([cos + shear * sin, sin - shear * cos], -1),
                           torch.stack([-sin, cos], -1)], -2) / scale[:, None, None]
    return torch.cat([inverse, -inverse @ shift[:, :, None]], -1)


def indices_of(what: str, value, n: int, count: int) -> torch.Tensor:
    """``value`` (an int or n integers) as n indices in [0, count), or a clear error naming ``what``."""
    index = torch.as_tensor(value)
    if index.is_floating_point() or index.dtype == torch.bool or index.dim() > 1 \
            or (index.dim() == 1 and index.shape[0] != n):
        raise ValueError(f"{what} must be an integer or {n} integers, got {index.dtype} {tuple(index.shape)}")
    if index.numel() and not bool(((index >= 0) & (index < count)).all()):
        raise ValueError(f"{what} index out of range [0, {count}): got {index.tolist()}")
    return index.long().expand(n)


class GlyphRenderer:
    """The FONTS generator as a differentiable function: (font, letter, transform) -> image.

    ``fonts``: font files (default: every font matplotlib ships with A-J, train and test,
    :func:`matplotlib_fonts`); fonts are indexed in the order given. ``size``: the side of
    the 1 x size x size images in [0, 1]. The glyphs are drawn at twice the size, warped
    by ``grid_sample`` and average-pooled: :func:`fonts_dataset` renders through this, so a
    glyph's parameters give back its image; the image is differentiable in the transform.
    """

    def __init__(self, fonts: Sequence[str | os.PathLike] | None = None, size: int = 32):
        _check_size(size)
        self.paths = tuple(Path(f) for f in fonts) if fonts else matplotlib_fonts()
        missing = [str(p) for p in self.paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"font files not found: {missing}")
        self.size = size
        self.bank = _glyph_bank(_stamped(self.paths), 2 * size)

    @property
    def font_names(self) -> list[str]:
        return [p.stem for p in self.paths]

    def __len__(self) -> int:
        return len(self.paths)

    def __call__(self, font, letter, transforms: torch.Tensor) -> torch.Tensor:
        """(N, 1, size, size) renderings of letters ``letter`` (indices into A-J) in fonts
        ``font`` (indices into :attr:`paths`) under (N, 5) ``transforms``; ``font`` and
        ``letter`` are ints or N indices."""
        transforms = torch.as_tensor(transforms)
        if transforms.dim() != 2 or transforms.shape[1] != len(TRANSFORM_PARAMETERS) \
                or not transforms.is_floating_point():
            raise ValueError(f"transforms must be a float tensor (N, {len(TRANSFORM_PARAMETERS)}) of "
                             f"{', '.join(TRANSFORM_PARAMETERS)}, got {transforms.dtype} {tuple(transforms.shape)}")
        n = transforms.shape[0]
        font = indices_of("font", font, n, len(self.paths))
        letter = indices_of("letter", letter, n, len(FONTS_CLASSES))
        glyphs = self.bank[font, letter][:, None]
        grid = F.affine_grid(affine_theta(transforms).float(), list(glyphs.shape), align_corners=False)
        warped = F.grid_sample(glyphs, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return F.avg_pool2d(warped, 2).clamp(0, 1)


def draw_parameters(split: str, n: int, seed: int, fonts: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What :func:`fonts_dataset` draws for (split, n, seed) among ``fonts`` fonts: the
    letters (n,), font indices (n,) and transforms (n, 5) (:data:`TRANSFORM_PARAMETERS`)."""
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    labels = rng.permutation(np.arange(n) % len(FONTS_CLASSES))
    font_idx = rng.integers(fonts, size=n)
    angle = np.deg2rad(rng.uniform(-15, 15, n))
    scale = rng.uniform(0.8, 1.1, n)
    shear = rng.uniform(-0.25, 0.25, n)
    shift = rng.uniform(-0.12, 0.12, (n, 2)) * 2  # in grid units ([-1, 1] spans the image)
    return labels, font_idx, np.column_stack([angle, scale, shear, shift])


def fonts_dataset(split: str = "train", n: int = 10000, seed: int = 0, size: int = 32,
                  fonts: Sequence[str | os.PathLike] | None = None) -> TensorImages:
    """FONTS-style glyph images (after Stutz et al. 2019): letters A-J, white on black,
    1 x size x size in [0, 1], under random affine transforms (rotation +-15 deg, scale
    0.8-1.1, shear +-0.25, shift +-12%: :data:`TRANSFORM_RANGES`), rendered by
    :class:`GlyphRenderer`.

    Deterministic in (split, n, seed); train and test draw from disjoint fonts
    (:func:`font_split`; default: the fonts matplotlib ships). Labels are balanced. The last
    two renderings are kept (the explorer, the run browser and the protocol open the same glyphs
    again and again; a font file changed since is rendered anew); each call gets its own copy.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    _check_size(size)
    images, labels, names = _rendered(split, n, seed, size, _stamped(font_split(split, fonts)))
    return TensorImages(images.clone(), labels.clone(), list(FONTS_CLASSES), list(names))


@lru_cache(maxsize=2)
def _rendered(split: str, n: int, seed: int, size: int,
              fonts: tuple[tuple[Path, int], ...]) -> tuple[torch.Tensor, torch.Tensor, tuple[str, ...]]:
    """:func:`fonts_dataset`'s images, labels and font names; ``fonts``: :func:`_stamped` paths."""
    renderer = GlyphRenderer([path for path, _ in fonts], size)
    labels, font_idx, transforms = draw_parameters(split, n, seed, len(renderer))
    transforms = torch.from_numpy(transforms)
    images = torch.empty(n, 1, size, size)
    for start in range(0, n, 2048):
        sl = slice(start, start + 2048)
        images[sl] = renderer(torch.from_numpy(font_idx[sl]), torch.from_numpy(labels[sl]), transforms[sl])
    return images, torch.from_numpy(labels).long(), tuple(renderer.paths[i].stem for i in font_idx)
