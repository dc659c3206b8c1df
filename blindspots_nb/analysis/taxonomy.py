"""Adversarial examples and blind spots judged by the FONTS generator (Stutz et al. 2019).

With the letters' manifolds known (:mod:`.manifold`), an image that fools a model is

* *regular* (off the manifold) when it is far from every rendering and the oracle still
  names its source letter;
* *on-manifold* when it is a rendering of its source letter (:func:`on_manifold_attack`
  searches the generator's parameters for one);
* *invalid* when the oracle names the letter the model gives it: a proper instance of
  that letter, so the model is right. A blind spot (LST: the model keeps the source's
  label) whose oracle is its target's letter is the excessive invariance the paper
  describes, seen by a judge that knows the data.

:func:`judge` measures a batch of such images: distances to the manifolds of their
source letter and of a second letter (the model's prediction, or the target), the
oracle's label and the verdict; :func:`summarize` makes a table row of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.fonts import GlyphRenderer
from .manifold import GlyphManifold, TransformBox, _count, letter_indices

VERDICTS = ("source", "other", "neither")


def oracle_verdict(label: torch.Tensor, **letters: torch.Tensor) -> list[str]:
    """Per image, the name of the first of ``letters`` (name -> (N,) letters, e.g.
    ``source=..., target=...``) that the oracle's ``label`` equals, else ``"neither"``."""
    names = []
    for i, value in enumerate(label.tolist()):
        names.append(next((name for name, wanted in letters.items() if int(wanted[i]) == value), "neither"))
    return names


@dataclass
class OnManifoldExamples:
    """Renderings of each source's letter searched to fool a model: ``fooled`` (N,) whether
    one was found in any font, ``fooled_own_font`` (N,) in the source's own font;
    the example kept per source (the fooling one nearest the source's transform, else the
    one of lowest margin): ``font`` (N,), ``transform`` (N, 5), ``images``, the model's
    ``predicted`` letter and ``margin`` (its source logit minus the largest other)."""

    fooled: torch.Tensor
    fooled_own_font: torch.Tensor
    font: torch.Tensor
    transform: torch.Tensor
    images: torch.Tensor
    predicted: torch.Tensor
    margin: torch.Tensor
    change: torch.Tensor  # (N,) l_inf change of the transform from the source's, in the dataset's ranges (1 = a range)


def on_manifold_attack(model, renderer: GlyphRenderer, letters, fonts, transforms: torch.Tensor, steps: int = 30,
                       lr: float = 0.05) -> OnManifoldExamples:
    """On-manifold adversarial examples (Stutz et al. 2019) of sources given by their
    generator parameters (letters, fonts, transforms (N, 5)): in every font of
    ``renderer`` (the font a discrete choice), Adam on the transform from the source's,
    kept within the dataset's ranges, lowering the model's margin (source logit minus the
    largest other); a rendering the model gives another letter fools it."""
    from ..models import module_device

    transforms = torch.as_tensor(transforms, dtype=torch.float64)
    n, count = transforms.shape[0], len(renderer)
    letters, fonts = letter_indices(letters, n), GlyphRenderer._indices("font", fonts, n, count)
    box = TransformBox(0.0)
    start = box.units(transforms).clamp(0, 1)
    units = start[:, None].expand(n, count, -1).reshape(n * count, -1).float().clone().requires_grad_(True)
    letter, font = letters.repeat_interleave(count), torch.arange(count).repeat(n)
    device = module_device(model)
    optimizer = torch.optim.Adam([units], lr=lr)
    best_margin, best_units = torch.full((n * count,), float("inf")), units.detach().clone()
    for step in range(_count("steps", steps, 0) + 1):
        with torch.enable_grad():
            logits = model(renderer(font, letter, box.transforms(units)).to(device)).float().cpu()
            own = logits.gather(1, letter[:, None]).squeeze(1)
            margin = own - logits.scatter(1, letter[:, None], float("-inf")).amax(1)
            better = margin.detach() < best_margin
            best_margin = torch.where(better, margin.detach(), best_margin)
            best_units[better] = units.detach()[better]
            if step == steps:
                break
            optimizer.zero_grad()
            margin.sum().backward()
        optimizer.step()
        with torch.no_grad():
            units.clamp_(0, 1)
    margin, best_units = best_margin.reshape(n, count), best_units.reshape(n, count, -1).double()
    change = (best_units - start[:, None]).abs().amax(2)
    fooled = margin < 0
    rank = torch.where(fooled, change - 2, margin)  # a fooling font first (nearest: change <= 1), else the lowest margin
    pick = rank.argmin(1)
    rows = torch.arange(n)
    chosen = box.transforms(best_units[rows, pick])
    with torch.no_grad():
        images = renderer(pick, letters, chosen)
        predicted = model(images.to(device)).argmax(1).cpu()
    return OnManifoldExamples(fooled.any(1), fooled[rows, fonts], pick, chosen, images, predicted,
                              margin[rows, pick], change[rows, pick])


def judge(manifold: GlyphManifold, images: torch.Tensor, sources, others, shortlist: int = 3, **search) -> list[dict]:
    """One row per image: the oracle's label (``oracle``), the verdict (``source``: it
    names the source letter, ``other``: the second letter, e.g. the model's prediction
    or the target, ``neither``), the RMSE to the nearest rendering of the source letter
    (``distance_source``), of the other letter (``distance_other``) and of the oracle's
    letter (``distance_oracle``), and the fonts of the first two. ``sources`` and
    ``others``: one letter per image; ``search``: :meth:`GlyphManifold.project`'s options."""
    sources, others = letter_indices(sources, len(images)), letter_indices(others, len(images))
    projection = manifold.oracle(images, include=torch.stack([sources, others], 1), shortlist=shortlist, **search)
    label = projection.label
    to_source, to_other, to_oracle = projection.to(sources), projection.to(others), projection.to(label)
    verdicts = oracle_verdict(label, source=sources, other=others)
    names = manifold.renderer.font_names
    return [{"source_letter": int(s), "other_letter": int(o), "oracle": int(label[i]), "verdict": verdicts[i],
             "distance_source": float(to_source[0][i]), "distance_other": float(to_other[0][i]),
             "distance_oracle": float(to_oracle[0][i]), "font_source": names[int(to_source[1][i])],
             "font_other": names[int(to_other[1][i])]}
            for i, (s, o) in enumerate(zip(sources.tolist(), others.tolist()))]


def summarize(rows: list[dict]) -> dict:
    """Counts and fractions of the verdicts and median distances of :func:`judge`'s rows."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    median = lambda key: float(torch.tensor([row[key] for row in rows]).median())  # noqa: E731
    fractions = {f"oracle_{v}": sum(row["verdict"] == v for row in rows) / n for v in VERDICTS}
    return {"n": n, **fractions, "median_distance_source": median("distance_source"),
            "median_distance_other": median("distance_other"), "median_distance_oracle": median("distance_oracle")}
