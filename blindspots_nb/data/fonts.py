"""FONTS-style glyphs (after Stutz et al. 2019): letters A-J drawn from TrueType fonts
under random affine transforms, with train and test fonts kept apart."""

from __future__ import annotations

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
