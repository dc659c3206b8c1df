"""The FONTS generator as a data manifold: how far an image is from each letter's renderings.

Every FONTS glyph is a rendering (font, letter, affine transform) of
:class:`~blindspots_nb.data.fonts.GlyphRenderer`, so the manifold of letter k is known
exactly: all renderings of k over the fonts and the transforms of a box (the dataset's
ranges, :data:`~blindspots_nb.data.fonts.TRANSFORM_RANGES`, widened by ``margin`` of their
width on each side). :class:`GlyphManifold` projects an image onto it:

1. *screening*: an atlas of ``starts`` seeded random transforms (the box's centre first)
   per letter and font, rendered once; each image's RMSE to every rendering of the atlas;
2. *descent*: from the ``keep`` nearest atlas renderings of each letter (fonts and
   transforms), Adam on the transform (in box coordinates, clamped to the box) for a
   quarter of ``steps``, then from the ``refine`` best of them for the rest, minimising
   the squared error; the best point seen is kept;
3. the oracle (:meth:`GlyphManifold.oracle`) descends only the letters nearest at
   screening (and those asked for).

The result (:class:`Projection`) holds, for each image and letter, the RMSE to the
nearest rendering found, its font and its transform; the nearest letter overall is the
manifold's "oracle" label (Stutz et al. 2019: an adversarial example the oracle gives
another class is *invalid*, a proper instance of that class). Distances are upper bounds
(the search may miss a nearer rendering); validation measures how tight they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .metrics import rmse
from ..data.fonts import TRANSFORM_PARAMETERS, TRANSFORM_RANGES, GlyphRenderer
from ..models import FONTS_CLASSES

SEARCH_MARGIN = 0.1  # the box reaches this fraction of each range's width beyond the dataset's range


def count_at_least(name: str, value, low: int = 1) -> int:
    """``value`` if it is an integer >= ``low``, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def letter_indices(letters, n: int | None = None) -> torch.Tensor:
    """Letters as indices into A-J: ints, 'A'-'J', or a tensor/list of them; a clear error otherwise."""
    if isinstance(letters, str):
        letters = list(letters)
    values = list(letters) if isinstance(letters, (list, tuple, range)) else [letters] if not torch.is_tensor(letters) \
        else letters.reshape(-1).tolist()
    out = []
    for value in values:
        if isinstance(value, str) and value in FONTS_CLASSES:
            out.append(FONTS_CLASSES.index(value))
        elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(FONTS_CLASSES):
            out.append(value)
        else:
            raise ValueError(f"letter must be one of {''.join(FONTS_CLASSES)} or an index in "
                             f"[0, {len(FONTS_CLASSES)}), got {value!r}")
    if n is not None and len(out) == 1:
        out = out * n
    if n is not None and len(out) != n:
        raise ValueError(f"need one letter or {n} letters, got {len(out)}")
    return torch.tensor(out, dtype=torch.long)


def check_glyph_images(images, size: int) -> torch.Tensor:
    """Images (N, 1, size, size), float, finite, in [0, 1]: grayscale glyphs like the renderer's."""
    if not torch.is_tensor(images) or not images.is_floating_point() or images.dim() != 4:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, 1, {size}, {size}), got {shape}")
    if tuple(images.shape[1:]) != (1, size, size):
        raise ValueError(f"images must be grayscale glyphs (N, 1, {size}, {size}) like the renderer's, got "
                         f"{tuple(images.shape)}{' (RGB? the FONTS manifold is grayscale)' if images.shape[1] == 3 else ''}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    if not bool(torch.isfinite(images).all()) or float(images.min()) < 0 or float(images.max()) > 1:
        raise ValueError("images must be finite and in [0, 1]")
    return images.detach().float().cpu()


class TransformBox:
    """The transforms searched: the dataset's ranges widened by ``margin`` of their width
    on each side, in box coordinates (0 and 1 are the box's edges: one step size suits
    every parameter)."""

    def __init__(self, margin: float = SEARCH_MARGIN):
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not 0 <= margin <= 1:
            raise ValueError(f"margin must be a fraction of each range's width in [0, 1], got {margin!r}")
        self.margin = float(margin)
        low, high = torch.tensor(TRANSFORM_RANGES, dtype=torch.float64).unbind(1)
        self.low, self.width = low - margin * (high - low), (1 + 2 * margin) * (high - low)

    def transforms(self, units: torch.Tensor) -> torch.Tensor:
        """Transforms (..., 5) from box coordinates."""
        return self.low.to(units) + units * self.width.to(units)

    def units(self, transforms: torch.Tensor) -> torch.Tensor:
        """Box coordinates of transforms (..., 5)."""
        return (transforms - self.low.to(transforms)) / self.width.to(transforms)


@dataclass
class Projection:
    """Nearest renderings of letters to N images: ``letters`` (N, K) the letters searched
    for each image, ``distance`` (N, K) RMSE to the nearest rendering found, ``font``
    (N, K) its font (an index of the renderer), ``transform`` (N, K, 5) its transform."""

    letters: torch.Tensor
    distance: torch.Tensor
    font: torch.Tensor
    transform: torch.Tensor

    @property
    def label(self) -> torch.Tensor:
        """(N,) the oracle's label: the nearest letter's index into A-J."""
        return self.letters.gather(1, self.distance.argmin(1, keepdim=True)).squeeze(1)

    def to(self, letters) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Distance (N,), font (N,) and transform (N, 5) of the nearest rendering of one
        letter per image (``letters``: one or N letters)."""
        wanted = letter_indices(letters, self.distance.shape[0])
        where = self.letters == wanted[:, None]
        if not bool(where.any(1).all()):
            missing = sorted(set(wanted[~where.any(1)].tolist()))
            raise ValueError(f"letters {[FONTS_CLASSES[i] for i in missing]} were not projected on")
        rows, column = torch.arange(len(wanted)), where.float().argmax(1)
        return self.distance[rows, column], self.font[rows, column], self.transform[rows, column]


def descend(units: torch.Tensor, objective, steps: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Adam on ``units`` (M, 5) (box coordinates, kept in [0, 1]) for ``steps`` steps,
    minimising ``objective(units)`` (M,) of each row independently; returns the lowest
    value of each row seen and the units where it was seen."""
    units = units.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([units], lr=lr)
    best_value, best_units = torch.full((units.shape[0],), float("inf")), units.detach().clone()
    for step in range(steps + 1):
        with torch.enable_grad():
            value = objective(units)
            better = value.detach() < best_value
            best_value = torch.where(better, value.detach(), best_value)
            best_units[better] = units.detach()[better]
            if step == steps:
                break
            optimizer.zero_grad()
            value.sum().backward()
        optimizer.step()
        with torch.no_grad():
            units.clamp_(0, 1)
    return best_value, best_units


class GlyphManifold:
    """The letters' manifolds of a :class:`GlyphRenderer` (default: all fonts matplotlib
    ships, train and test), searched in the box of ``margin``; ``starts`` atlas transforms
    per letter and font, drawn from ``seed``."""

    def __init__(self, renderer: GlyphRenderer | None = None, margin: float = SEARCH_MARGIN, starts: int = 64,
                 seed: int = 0):
        self.renderer = renderer or GlyphRenderer()
        self.box = TransformBox(margin)
        self.starts, self.seed = count_at_least("starts", starts), count_at_least("seed", seed, 0)
        generator = torch.Generator().manual_seed(seed)
        units = torch.rand(starts, len(TRANSFORM_PARAMETERS), generator=generator, dtype=torch.float64)
        units[0] = 0.5  # the box's centre: an upright glyph of mid scale
        self.atlas_units = units
        self._atlas: torch.Tensor | None = None

    def settings(self) -> dict:
        """What defines the search's atlas (for provenance)."""
        return {"fonts": self.renderer.font_names, "size": self.renderer.size, "margin": self.box.margin,
                "starts": self.starts, "seed": self.seed}

    @property
    def atlas(self) -> torch.Tensor:
        """(10, fonts, starts, size * size) renderings of every letter and font under the atlas transforms."""
        if self._atlas is None:
            letters, fonts, starts = len(FONTS_CLASSES), len(self.renderer), self.starts
            grid = torch.cartesian_prod(torch.arange(letters), torch.arange(fonts), torch.arange(starts))
            with torch.no_grad():
                images = torch.cat([self.renderer(part[:, 1], part[:, 0], self.box.transforms(self.atlas_units[part[:, 2]]))
                                    for part in grid.split(4096)])
            self._atlas = images.reshape(letters, fonts, starts, -1)
        return self._atlas

    def screen(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 10) RMSE of each image to the nearest atlas rendering of each letter (no descent)."""
        images = check_glyph_images(images, self.renderer.size)
        return self._screen(images.flatten(1)).amin(2) / images[0].numel() ** 0.5

    def _screen(self, flat: torch.Tensor) -> torch.Tensor:
        """(N, 10, fonts * starts) l2 distances of flattened images to the atlas."""
        atlas = self.atlas.flatten(1, 2)
        return torch.cdist(flat[None].expand(len(atlas), -1, -1), atlas).transpose(0, 1)

    def project(self, images: torch.Tensor, letters=None, keep: int = 16, refine: int = 4, steps: int = 80,
                lr: float = 0.03, batch_size: int = 64, progress=None) -> Projection:
        """The nearest renderings of ``letters`` to ``images`` (N, 1, size, size).

        Per image and letter, the ``keep`` nearest atlas renderings are descended for a
        quarter of ``steps`` Adam steps of ``lr`` (box coordinates), then the ``refine``
        best of them for the rest. ``letters``: None (all ten), one letter or a list of
        letters for every image, or an (N, K) tensor of letters per image. ``progress``: a
        callable told the number of images done after each batch."""
        images = check_glyph_images(images, self.renderer.size)
        n = images.shape[0]
        if torch.is_tensor(letters) and letters.dim() == 2:
            if letters.shape[0] != n:
                raise ValueError(f"letters (N, K) must have a row per image ({n}), got {tuple(letters.shape)}")
            letters = letter_indices(letters).reshape(letters.shape)
        else:
            shared = letter_indices(list(range(len(FONTS_CLASSES))) if letters is None else letters)
            letters = shared[None].expand(n, -1)
        keep, refine = count_at_least("keep", keep), count_at_least("refine", refine)
        steps, batch_size = count_at_least("steps", steps, 0), count_at_least("batch_size", batch_size)
        keep = min(keep, len(self.renderer) * self.starts)
        parts = []
        for rows in torch.arange(n).split(batch_size):
            parts.append(self._project_batch(images[rows], letters[rows], keep, min(refine, keep), steps, lr))
            if progress is not None:
                progress(len(rows))
        distance, font, transform = (torch.cat(values) for values in zip(*parts))
        return Projection(letters.clone(), distance, font, transform)

    def oracle(self, images: torch.Tensor, include=None, shortlist: int = 3, **search) -> Projection:
        """The nearest letter's search, spent where it decides: the ``shortlist`` letters
        nearest at screening, plus ``include`` (N, M) letters per image (e.g. a source's
        and a target's), are descended (:meth:`project`, ``search`` its options); the
        other letters are farther than these at screening and stay out. Its
        :attr:`Projection.label` is the oracle's label."""
        images = check_glyph_images(images, self.renderer.size)
        order = self.screen(images).argsort(1).tolist()
        wanted = [[] for _ in order] if include is None else letter_indices(include).reshape(len(order), -1).tolist()
        width = count_at_least("shortlist", shortlist) + max(len(set(row)) for row in wanted)
        rows = [list(dict.fromkeys(must + ranked))[:width] for must, ranked in zip(wanted, order)]
        return self.project(images, torch.tensor(rows), **search)

    def _project_batch(self, images, letters, keep, refine, steps, lr):
        n, k = letters.shape
        flat = images.flatten(1)
        screened = self._screen(flat)
        screened = screened.gather(1, letters[..., None].expand(-1, -1, screened.shape[2]))  # (N, K, atlas)
        nearest = screened.topk(keep, dim=2, largest=False).indices  # (N, K, keep)
        font = nearest // self.starts
        letter = letters[..., None].expand(n, k, keep)
        units = self.atlas_units[nearest % self.starts].float()
        target = flat[:, None, None, :]
        first = steps // 4
        error, units = self._descend(units, font, letter, target, first, lr)
        best = error.topk(refine, dim=2, largest=False).indices  # (N, K, refine)
        font, letter = font.gather(2, best), letter.gather(2, best)
        units = units.gather(2, best[..., None].expand(-1, -1, -1, units.shape[3]))
        error, units = self._descend(units, font, letter, target, steps - first, lr)
        error, choice = error.min(2)
        font = font.gather(2, choice[..., None]).squeeze(2)
        units = units.gather(2, choice[..., None, None].expand(-1, -1, 1, units.shape[3])).squeeze(2)
        return error.sqrt(), font, self.box.transforms(units.double())

    def _descend(self, units, font, letter, target, steps, lr):
        """:func:`descend` from ``units`` (N, K, C, 5) minimising the mean squared error of each
        rendering to its image in ``target``; returns the best error (N, K, C) and units seen."""
        shape = units.shape[:3]
        font, letter = font.reshape(-1), letter.reshape(-1)
        target = target.expand(*shape, -1).reshape(-1, target.shape[-1])
        error, units = descend(units.reshape(-1, units.shape[3]), lambda u: (self.renderer(
            font, letter, self.box.transforms(u)).flatten(1) - target).pow(2).mean(1), steps, lr)
        return error.reshape(shape), units.reshape(*shape, -1)

    def render(self, font, letter, transform) -> torch.Tensor:
        """The renderings (N, 1, size, size) a projection names (``Projection.to``)."""
        with torch.no_grad():
            return self.renderer(font, letter_indices(letter, len(torch.as_tensor(font).reshape(-1))), transform)



def dataset_glyphs(split: str, n: int, seed: int, renderer: GlyphRenderer, indices=None) -> dict:
    """The glyphs of ``fonts_dataset(split, n, seed)`` (``indices`` of them; default all)
    with their generator parameters: ``letters``, ``fonts`` (indices of ``renderer``'s
    fonts), ``transforms`` (float64) and ``images`` rendered by ``renderer``."""
    from ..data.fonts import draw_parameters, font_split

    paths = font_split(split)
    letters, fonts, transforms = draw_parameters(split, n, seed, len(paths))
    indices = list(range(n)) if indices is None else list(indices)
    where = {path.stem: i for i, path in enumerate(renderer.paths)}
    missing = sorted({paths[int(f)].stem for f in fonts[indices]} - set(where))
    if missing:
        raise ValueError(f"the renderer lacks the {split} fonts {missing}: it cannot render these glyphs")
    letters = torch.from_numpy(letters[indices]).long()
    fonts = torch.tensor([where[paths[int(f)].stem] for f in fonts[indices]])
    transforms = torch.from_numpy(transforms[indices])
    with torch.no_grad():
        images = renderer(fonts, letters, transforms)
    return {"letters": letters, "fonts": fonts, "transforms": transforms, "images": images}


def quantiles(values: torch.Tensor) -> dict:
    """min, q10, median, q90 and max of ``values``, rounded to 5 decimals."""
    q = torch.quantile(values.double(), torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0], dtype=torch.float64))
    return dict(zip(("min", "q10", "median", "q90", "max"), (round(float(v), 5) for v in q)))


def validate(manifold: GlyphManifold, glyphs: dict, noise: float, seed: int, starts: tuple[int, ...] = (4, 16),
             shortlist: int = 3, **search) -> dict:
    """The projection checked on glyphs of known parameters (:func:`dataset_glyphs`): each
    glyph's RMSE to its own and to the nearest other letter's manifold (all ten searched),
    the oracle's accuracy; the glyph plus Gaussian noise of std ``noise`` (seeded): the
    oracle's accuracy and how near the rendering found is to the clean glyph; the
    own-letter RMSE with atlases of ``starts`` and of the manifold's own starts per font.
    Returns ``rows`` (one per glyph) and a ``summary``."""
    images, letters, renderer = glyphs["images"], glyphs["letters"], manifold.renderer
    everything = manifold.project(images, **search)
    own, font, transform = everything.to(letters)
    others = everything.distance.clone()
    others[torch.arange(len(letters)), letters] = float("inf")
    nearest_other = others.amin(1)
    generator = torch.Generator().manual_seed(seed)
    noisy = (images + noise * torch.randn(images.shape, generator=generator)).clamp(0, 1)
    back = manifold.oracle(noisy, include=letters[:, None], shortlist=shortlist, **search)
    back_distance, back_font, back_transform = back.to(letters)
    recovered = rmse(manifold.render(back_font, letters, back_transform), images)
    by_starts = {count: GlyphManifold(renderer, manifold.box.margin, count, manifold.seed).project(
        images, letters[:, None], **search).distance[:, 0] for count in starts}
    by_starts[manifold.starts] = own
    noise_rmse = rmse(noisy, images)
    rows = [{"glyph": i, "letter": int(letters[i]), "font": renderer.font_names[int(glyphs["fonts"][i])],
             "own_distance": float(own[i]), "nearest_other_distance": float(nearest_other[i]),
             "oracle": int(everything.label[i]), "found_font": renderer.font_names[int(font[i])],
             "transform_error": float((transform[i] - glyphs["transforms"][i]).abs().max()),
             "noise_rmse": float(noise_rmse[i]), "noisy_own_distance": float(back_distance[i]),
             "noisy_oracle": int(back.label[i]), "noisy_recovered_rmse": float(recovered[i]),
             **{f"own_distance_starts{count}": float(d[i]) for count, d in by_starts.items()}}
            for i in range(len(letters))]
    return {"rows": rows, "summary": {
        "n": len(rows), "oracle_accuracy": float((everything.label == letters).float().mean()),
        "own_distance_quantiles": quantiles(own), "nearest_other_distance_quantiles": quantiles(nearest_other),
        "separated": float((own < nearest_other).float().mean()), "noise_rmse_median": float(noise_rmse.median()),
        "noisy_own_distance_quantiles": quantiles(back_distance),
        "noisy_oracle_accuracy": float((back.label == letters).float().mean()),
        "noisy_recovered_rmse_quantiles": quantiles(recovered),
        "own_distance_median_by_starts": {count: float(d.median()) for count, d in sorted(by_starts.items())},
        "own_distance_below_0.02_by_starts": {count: float((d < 0.02).float().mean())
                                              for count, d in sorted(by_starts.items())}}}
