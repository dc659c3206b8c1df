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
oracle's label and the verdict (:class:`Judgement`, its rows). The taxonomy's rows of each
kind are made here, for ``scripts/manifold_taxonomy.py`` and notebook 08 alike:
:func:`judge_adversarial` (regular examples), :func:`judge_blind_spots`,
:func:`on_manifold_rows`, :func:`rendering_rows`; :func:`summarize_kind` makes a table row
of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data.fonts import GlyphRenderer, font_split, indices_of
from ..models import FONTS_CLASSES, predict
from .manifold import ORACLE_SHORTLIST, GlyphManifold, Projection, TransformBox, count_at_least, descend, letter_indices
from .metrics import rmse

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
    letters, fonts = letter_indices(letters, n), indices_of("font", fonts, n, count)
    box = TransformBox(0.0)
    start = box.units(transforms).clamp(0, 1)
    units = start[:, None].expand(n, count, -1).reshape(n * count, -1).float()
    letter, font = letters.repeat_interleave(count), torch.arange(count).repeat(n)
    device = module_device(model)

    def margin_of(units):  # the source logit minus the largest other
        logits = model(renderer(font, letter, box.transforms(units)).to(device)).float().cpu()
        return logits.gather(1, letter[:, None]).squeeze(1) - logits.scatter(1, letter[:, None], float("-inf")).amax(1)

    best_margin, best_units = descend(units, margin_of, count_at_least("steps", steps, 0), lr)
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


@dataclass
class Judgement:
    """Images judged by the manifold: per image its ``sources`` and ``others`` letters (the
    second letter: the model's prediction, or the target), the oracle's ``projection``
    (searched on both and on the letters nearest at screening) and the ``verdicts``
    (``source``: the oracle names the source letter, ``other``: the second letter,
    ``neither``)."""

    sources: torch.Tensor
    others: torch.Tensor
    projection: Projection
    verdicts: list[str]

    def nearest(self, manifold: GlyphManifold, which: str = "source") -> torch.Tensor:
        """The nearest renderings (N, 1, size, size) of each image's ``source`` or ``other`` letter."""
        letters = {"source": self.sources, "other": self.others}[which]
        _, font, transform = self.projection.to(letters)
        return manifold.render(font, letters, transform)

    def rows(self, font_names: list[str]) -> list[dict]:
        """One row per image: letters, the oracle's label and verdict, the RMSE to the nearest
        rendering of the source letter, of the other letter and of the oracle's letter, the
        ``margin`` of the oracle's letter (:attr:`Projection.margin`), and the fonts of the
        first two."""
        label, margin = self.projection.label, self.projection.margin
        (d_source, f_source, _), (d_other, f_other, _) = self.projection.to(self.sources), self.projection.to(self.others)
        d_oracle = self.projection.to(label)[0]
        return [{"source_letter": int(self.sources[i]), "other_letter": int(self.others[i]), "oracle": int(label[i]),
                 "verdict": self.verdicts[i], "distance_source": float(d_source[i]),
                 "distance_other": float(d_other[i]), "distance_oracle": float(d_oracle[i]),
                 "margin": float(margin[i]), "font_source": font_names[int(f_source[i])],
                 "font_other": font_names[int(f_other[i])]}
                for i in range(len(self.verdicts))]


def judge(manifold: GlyphManifold, images: torch.Tensor, sources, others, shortlist: int = ORACLE_SHORTLIST,
          **search) -> Judgement:
    """The oracle's judgement of ``images`` against one ``sources`` letter and one
    ``others`` letter per image (``search``: :meth:`GlyphManifold.project`'s options)."""
    sources, others = letter_indices(sources, len(images)), letter_indices(others, len(images))
    projection = manifold.oracle(images, include=torch.stack([sources, others], 1), shortlist=shortlist, **search)
    return Judgement(sources, others, projection, oracle_verdict(projection.label, source=sources, other=others))


def judge_adversarial(model, manifold: GlyphManifold, sources: torch.Tensor, labels, adversarial: torch.Tensor,
                      **search) -> tuple[Judgement, list[dict]]:
    """Regular adversarial examples of ``sources`` (letters ``labels``) judged against the
    source letter and the letter ``model`` gives them (:func:`judge`, ``search`` its
    options); its rows, each with its source's index, whether it fools the model, the
    predicted letter and the l_inf change."""
    predicted = predict(model, adversarial)[0]
    labels = letter_indices(labels, len(adversarial))
    judgement = judge(manifold, adversarial, labels, predicted, **search)
    changes = (adversarial.detach().cpu() - sources.detach().cpu()).flatten(1).abs().amax(1)
    rows = [{"source": i, "fooled": int(p != y), "predicted": p, "linf": float(change), **row}
            for i, (p, y, change, row) in enumerate(zip(predicted.tolist(), labels.tolist(), changes,
                                                        judgement.rows(manifold.renderer.font_names)))]
    return judgement, rows


def judge_blind_spots(manifold: GlyphManifold, spots: torch.Tensor, labels, target_labels,
                      target_images: torch.Tensor, about: list[dict] | None = None,
                      **search) -> tuple[Judgement, list[dict]]:
    """Blind spots judged against their source letters ``labels`` and their targets'
    letters (:func:`judge`); its rows, each after its ``about`` row (default: the blind
    spot's index as ``source``) and the RMSE to its target image (the tables' RMSE)."""
    judgement = judge(manifold, spots, labels, target_labels, **search)
    about = [{"source": i} for i in range(len(spots))] if about is None else about
    to_target = rmse(spots.detach().cpu(), target_images.detach().cpu())
    rows = [{**more, "rmse_to_target_image": float(d), **row}
            for more, d, row in zip(about, to_target, judgement.rows(manifold.renderer.font_names))]
    return judgement, rows


def on_manifold_rows(found: OnManifoldExamples, labels, fonts, font_names: list[str]) -> list[dict]:
    """:func:`on_manifold_attack`'s examples of sources of letters ``labels`` in ``fonts``
    (indices of ``font_names``): one row each (found or not, in the source's own font, the
    model's letter and margin, the transform change and the transform found)."""
    labels, fonts = letter_indices(labels, len(found.fooled)), torch.as_tensor(fonts).reshape(-1)
    return [{"source": i, "source_letter": int(labels[i]), "fooled": int(found.fooled[i]),
             "fooled_own_font": int(found.fooled_own_font[i]), "predicted": int(found.predicted[i]),
             "font_source": font_names[int(fonts[i])], "font_found": font_names[int(found.font[i])],
             "margin": float(found.margin[i]), "transform_change": float(found.change[i]),
             **{f"found_{k}": float(v) for k, v in zip(("angle", "scale", "shear", "shift_x", "shift_y"),
                                                        found.transform[i].tolist())}}
            for i in range(len(labels))]


def rendering_rows(model, renderer: GlyphRenderer, n: int, seed: int) -> list[dict]:
    """The model on ``n`` :func:`random_renderings`: one row each (font, whether a test
    font, letter, prediction, correct)."""
    drawn = random_renderings(renderer, n, seed)
    predicted = predict(model, drawn["images"])[0]
    test_fonts = {path.stem for path in font_split("test")}
    return [{"font": renderer.font_names[int(f)], "test_font": int(renderer.font_names[int(f)] in test_fonts),
             "letter": int(y), "predicted": int(p), "correct": int(p == y)}
            for f, y, p in zip(drawn["fonts"], drawn["letters"], predicted)]


def summarize(rows: list[dict], slack: float = 0.0) -> dict:
    """Counts and fractions of the verdicts and median distances of :func:`judge`'s rows;
    ``uncertain``: the share whose verdict a search ``slack`` looser (an RMSE, e.g. the
    largest gap to a reference search measured) could flip: margin below ``slack``;
    ``firm_source``, ``firm_other``, ``firm_neither``: the shares of each verdict that it
    could not flip (with ``uncertain``, they sum to 1)."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    median = lambda key: float(torch.tensor([row[key] for row in rows]).median())  # noqa: E731
    fractions = {f"oracle_{v}": sum(row["verdict"] == v for row in rows) / n for v in VERDICTS}
    measured = "margin" in rows[0]
    uncertain = sum(float(row["margin"]) < slack for row in rows) / n if measured else None
    firm = {f"firm_{v}": sum(row["verdict"] == v and float(row["margin"]) >= slack for row in rows) / n
            for v in VERDICTS} if measured else {}
    return {"n": n, **fractions, "uncertain": uncertain, **firm, "slack": slack,
            "median_distance_source": median("distance_source"), "median_distance_other": median("distance_other"),
            "median_distance_oracle": median("distance_oracle")}


def summarize_kind(kind: str, rows: list[dict], slack: float = 0.0) -> dict:
    """A taxonomy row of one kind of example: :func:`summarize` over the examples that count
    (regular ones that fool the model, blind spots whose target is another letter), with
    ``attempts`` and the share that counts (``fooled``); for ``on_manifold`` rows, the
    success rates (any font, the source's own) and the median transform change of the
    examples found; for ``renderings`` rows (random renderings), the model's error rate
    overall, on train fonts and on test fonts. ``slack``: :func:`summarize`'s."""
    if kind == "renderings":
        errors = lambda chosen: 1 - sum(int(r["correct"]) for r in chosen) / max(1, len(chosen))  # noqa: E731
        return {"n": len(rows), "error": errors(rows),
                "error_train_fonts": errors([r for r in rows if not int(r["test_font"])]),
                "error_test_fonts": errors([r for r in rows if int(r["test_font"])])}
    if kind == "on_manifold":
        found = [float(r["transform_change"]) for r in rows if int(r["fooled"])]
        return {"n": len(rows), "fooled": sum(int(r["fooled"]) for r in rows) / len(rows),
                "fooled_own_font": sum(int(r["fooled_own_font"]) for r in rows) / len(rows),
                "median_transform_change": float(torch.tensor(found).median()) if found else None}
    counted = [r for r in rows if (int(r["fooled"]) if "fooled" in r else r["source_letter"] != r["other_letter"])]
    summary = {"attempts": len(rows), "fooled": len(counted) / len(rows) if rows else 0.0,
               **summarize(counted, slack)}
    if counted and "rmse_to_target_image" in counted[0]:  # blind spots: the tables' RMSE to the target itself
        summary["median_rmse_to_target_image"] = float(torch.tensor(
            [float(r["rmse_to_target_image"]) for r in counted]).median())
    return summary


def random_renderings(renderer: GlyphRenderer, n: int, seed: int) -> dict:
    """``n`` renderings of the generator drawn uniformly: letters, fonts of ``renderer`` and
    transforms in the dataset's ranges (the base rate of a model's errors on the manifold)."""
    generator = torch.Generator().manual_seed(seed)
    letters = torch.randint(len(FONTS_CLASSES), (n,), generator=generator)
    fonts = torch.randint(len(renderer), (n,), generator=generator)
    transforms = TransformBox(0.0).transforms(torch.rand(n, 5, generator=generator, dtype=torch.float64))
    with torch.no_grad():
        images = renderer(fonts, letters, transforms)
    return {"letters": letters, "fonts": fonts, "transforms": transforms, "images": images}
