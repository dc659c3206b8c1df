"""Adversarial examples beside blind spots, for the same sources and targets.

An adversarial example is a small change of the source that changes the model's class; a
blind spot (LST) is a large change, towards a target, that keeps it. :func:`compare` makes
both for one model and k (source, target) pairs: PGD at the model's threat model
(:func:`blindspots_nb.analysis.attacks.threat_model`) and :func:`blindspots_nb.lst.traverse`, with the
model's class and confidence for every image and the distances that matter, adversarial
example to its source and blind spot to its target (RMSE, l_inf, SSIM). :func:`transfer`
asks how models of one input space see each other's images: does B keep A's source class
on A's blind spots, or see the target; do A's adversarial examples fool B.

Tables come as Markdown (:func:`distance_table`, :func:`transfer_table`), each followed by
what produced it; :func:`blindspots_nb.analysis.words.comparison_sentences` words the
numbers; figures live in :func:`blindspots_nb.plots.adversarial_vs_blindspots_figure`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..tools import provenance
from ..tools.markup import markdown_text
from .attacks import ThreatModel, autoattack, default_step_size, pgd, threat_model
from ..lst import LSTConfig, traverse
from .metrics import linf, mean_std, rmse, ssim
from ..models import module_device, predict
from ..data.sources import ImageSource, default_source

KINDS = ("source", "adversarial", "blind spot", "target")
ATTACKS = {"pgd": "PGD", "autoattack": "AutoAttack"}  # what makes the adversarial examples, by its option
DISTANCES = {"rmse": rmse, "linf": linf, "ssim": ssim}


@dataclass
class Comparison:
    """PGD adversarial examples and LST blind spots of one model for k (source, target) pairs.

    ``images[kind]``, ``predictions[kind]`` and ``confidence[kind]`` (the model's class and
    its softmax confidence) for each kind in :data:`KINDS`; ``labels`` are the model's
    classes of the sources (what PGD attacks and LST keeps), ``initial_confidence`` and
    ``blind_spot_confidence`` the confidence in them before and at the blind spots. ``distances`` holds
    ``"adversarial to source"`` and ``"blind spot to target"``, each {rmse, linf, ssim}.
    All tensors are on the CPU.
    """

    model: str
    class_names: list[str]
    names: list[tuple[str, str]]              # (source name, target name) per pair
    images: dict[str, torch.Tensor]           # kind -> (k, C, H, W)
    predictions: dict[str, torch.Tensor]      # kind -> (k,)
    confidence: dict[str, torch.Tensor]       # kind -> (k,)
    labels: torch.Tensor                      # (k,)
    initial_confidence: torch.Tensor          # (k,) the clean source's confidence in its class
    blind_spot_confidence: torch.Tensor       # (k,) confidence in the source class at the blind spot
    distances: dict[str, dict[str, torch.Tensor]]
    threat: ThreatModel
    settings: dict = field(default_factory=dict)
    caption: str = ""

    @property
    def k(self) -> int:
        return len(self.labels)

    @property
    def attack(self) -> str:
        """The attack's name as the tables write it: PGD or AutoAttack."""
        return ATTACKS[self.settings.get("attack", "pgd")]

    @property
    def fooled(self) -> torch.Tensor:
        """Whether the attack (PGD or AutoAttack) changed the model's class, per pair."""
        return self.predictions["adversarial"] != self.labels

    @property
    def other_class(self) -> torch.Tensor:
        """Whether the model puts the target in another class than the source, per pair: only
        such a pair can give a blind spot (walking from a 0 to another 0 and keeping '0' is no
        finding), so a pair of one class counts in no table or sentence about blind spots."""
        return self.predictions["target"] != self.labels

    @property
    def kept(self) -> torch.Tensor:
        """Whether the pair gave a blind spot: a target of another class, and the source-class
        confidence kept within delta of its initial confidence at the end, per pair."""
        return self.other_class & (self.initial_confidence - self.blind_spot_confidence < self.settings["delta"])

    def blind_spot_words(self) -> str:
        """``'3 of 4 blind spots'`` (pairs of one class left out, and said so)."""
        pairs, same = int(self.other_class.sum()), int((~self.other_class).sum())
        left_out = f" ({same} pair{'s' * (same != 1)} with a target of the source's class left out)" if same else ""
        return f"{int(self.kept.sum())} of {pairs} blind spot{'s' * (pairs != 1)}{left_out}"


def model_groups(models, image_source=None) -> list[tuple[ImageSource, list]]:
    """Models grouped by the images they are shown: one image source (``image_source``, an
    :class:`~blindspots_nb.data.sources.ImageSource` or its spelling, else each model's
    default: glyphs for FONTS models, photos for the others) and one input space (input
    size and classes). A group's models get the same sources and targets, so
    :func:`transfer` can exchange their images."""
    given = ImageSource.of(image_source) if image_source else None
    groups: dict[tuple, tuple[ImageSource, list]] = {}
    for model in models:
        source = given or default_source(model)
        key = (source, tuple(model.input_size), tuple(model.class_names))
        groups.setdefault(key, (source, []))[1].append(model)
    return list(groups.values())


def rolled_pairs(images: torch.Tensor, names) -> tuple[torch.Tensor, torch.Tensor, list[tuple[str, str]]]:
    """Sources and targets from k images: image i goes towards image i + 1 (mod k)."""
    if images.dim() != 4 or images.shape[0] < 2 or len(names) != images.shape[0]:
        raise ValueError(f"need at least 2 images (k, C, H, W) and one name each; got "
                         f"{tuple(images.shape)} and {len(names)} names")
    names = list(names)
    return images, images.roll(-1, 0), list(zip(names, names[1:] + names[:1]))


def _settings(threat: ThreatModel, attack: str, step_size: float, steps: int, seed: int, config: LSTConfig,
              image_source: ImageSource | str) -> dict:
    """The hyperparameters of a comparison, flat, for its caption."""
    attack_settings = ({"attack": attack, "pgd_steps": steps, "pgd_step_size": step_size, "pgd_random_start": True}
                       if attack == "pgd" else {"attack": attack, "autoattack_version": "standard"})
    return {"image_source": str(image_source), "threat": str(threat), **attack_settings, "seed": seed,
            "lst_step_size": config.step_size,
            "lst_iterations": config.iterations, "delta": config.delta, "eps": config.eps,
            "init_noise": config.init_noise, "lst_seed": config.seed}


def compare(model, sources: torch.Tensor, targets: torch.Tensor, config: LSTConfig | None = None,
            radius: float | None = None, steps: int = 20, step_size: float | None = None, seed: int = 0,
            names=None, image_source: ImageSource | str = "", progress: bool = False, attack: str = "pgd") -> Comparison:
    """Adversarial examples (l_inf ball of ``radius``, default the model's threat model) by
    ``attack``: "pgd" (``steps`` steps, random start seeded by ``seed``) or "autoattack" (the
    standard AutoAttack, :func:`~blindspots_nb.analysis.attacks.autoattack`, seeded by ``seed``;
    slower, and a stronger test of robustness), and LST blind spots (``config``) of ``model`` for
    the pairs (sources[i], targets[i]), with the model's own classes of the sources as labels.
    ``image_source`` names where the images come from (for the caption)."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}: write one of {', '.join(map(repr, ATTACKS))}")
    if sources.shape != targets.shape:
        raise ValueError(f"sources and targets must have the same shape, got {tuple(sources.shape)} "
                         f"and {tuple(targets.shape)}")
    config = config or LSTConfig()
    threat = threat_model(model) if radius is None else ThreatModel("Linf", float(radius), "given")
    step_size = default_step_size(threat.radius, steps) if step_size is None else step_size
    device = module_device(model)
    sources, targets = sources.detach().to(device), targets.detach().to(device)
    predictions, confidence = {}, {}
    for kind, image in (("source", sources), ("target", targets)):
        predictions[kind], confidence[kind] = predict(model, image)
    labels = predictions["source"]
    adversarial = (pgd(model, sources, labels, threat.radius, step_size, steps, threat.norm, True, seed)
                   if attack == "pgd" else autoattack(model, sources, labels, threat.radius, threat.norm, seed))
    result = traverse(model, sources, labels.to(device), targets, config,
                      target_labels=predictions["target"].to(device), progress=progress)
    images = {"source": sources, "adversarial": adversarial, "blind spot": result.images, "target": targets}
    images = {kind: image.detach().cpu() for kind, image in images.items()}
    for kind in ("adversarial", "blind spot"):
        predictions[kind], confidence[kind] = predict(model, images[kind])
    distances = {
        "adversarial to source": {key: f(images["adversarial"], images["source"]).cpu() for key, f in DISTANCES.items()},
        "blind spot to target": {key: f(images["blind spot"], images["target"]).cpu() for key, f in DISTANCES.items()},
    }
    names = list(names) if names is not None else [(f"source {i}", f"target {i}") for i in range(len(labels))]
    settings = _settings(threat, attack, step_size, steps, seed, config, image_source)
    return Comparison(
        model=model.info.get("name", type(model).__name__) if hasattr(model, "info") else type(model).__name__,
        class_names=list(getattr(model, "class_names", [])) or [str(c) for c in range(int(labels.max()) + 1)],
        names=names, images=images, predictions=predictions, confidence=confidence, labels=labels,
        initial_confidence=result.initial_confidence.detach().cpu(),
        blind_spot_confidence=result.confidence.detach().cpu(), distances=distances, threat=threat,
        settings=settings, caption=provenance.caption(model, settings, device))


# --------------------------------------------------------------------------- transfer


@dataclass
class Transfer:
    """How models of one input space classify each other's images; entry [a, b] counts
    model a's images (adversarial examples or blind spots) as model b classifies them.

    ``fooled[a, b]``: a's adversarial examples that b puts outside a's source class;
    ``keeps_source[a, b]``: a's blind spots that b puts in a's source class;
    ``sees_target[a, b]``: a's blind spots that b puts in a's target class (a's class of the target).
    The diagonal is each model on its own images. ``k``: pairs per model; ``blind_spots[a]``:
    a's pairs whose target is of another class than the source (the count of a's blind spots;
    a pair of one class gives none, :attr:`Comparison.other_class`).
    """

    models: list[str]
    fooled: torch.Tensor        # (n, n) counts
    keeps_source: torch.Tensor  # (n, n) counts
    sees_target: torch.Tensor   # (n, n) counts
    k: int
    caption: str = ""
    blind_spots: torch.Tensor | None = None  # (n,) counts; None: k each

    def rate(self, name: str) -> torch.Tensor:
        """A matrix of counts as fractions of k (of the pairs), or of row a's blind spots."""
        return getattr(self, name).double() / (self.k if name == "fooled" else self.pairs()[:, None])

    def pairs(self) -> torch.Tensor:
        """Each model's count of blind spots (pairs of two classes), k where not known."""
        return self.blind_spots if self.blind_spots is not None else torch.full((len(self.models),), self.k)


def transfer(models, comparisons) -> Transfer:
    """The transfer matrices of models (same input size and classes) whose comparisons
    share their sources and targets."""
    models, comparisons = list(models), list(comparisons)
    if len(models) != len(comparisons) or not models:
        raise ValueError(f"need one comparison per model, got {len(models)} models and {len(comparisons)} comparisons")
    first = comparisons[0]
    for model, comparison in zip(models, comparisons):
        if tuple(model.input_size) != tuple(models[0].input_size) or list(model.class_names) != list(models[0].class_names):
            raise ValueError(f"{comparison.model} and {first.model} do not share an input space "
                             "(input size and classes): their images cannot be exchanged")
        if not all(torch.equal(comparison.images[kind], first.images[kind]) for kind in ("source", "target")):
            raise ValueError(f"{comparison.model}'s comparison has other sources or targets than {first.model}'s")
    n = len(models)
    fooled, keeps, sees = (torch.zeros(n, n, dtype=torch.long) for _ in range(3))
    for a, comparison in enumerate(comparisons):
        for b, model in enumerate(models):
            adversarial, _ = predict(model, comparison.images["adversarial"])
            blind, _ = predict(model, comparison.images["blind spot"])
            spots = comparison.other_class
            fooled[a, b] = int((adversarial != comparison.labels).sum())
            keeps[a, b] = int((blind == comparison.labels)[spots].sum())
            sees[a, b] = int((blind == comparison.predictions["target"])[spots].sum())
    caption = "; ".join(c.caption for c in comparisons)
    return Transfer([c.model for c in comparisons], fooled, keeps, sees, first.k, caption,
                    torch.tensor([int(c.other_class.sum()) for c in comparisons]))


# --------------------------------------------------------------------------- tables and words


def _mean_std(values: torch.Tensor) -> str:
    """Mean ± population std, as the tables write it."""
    return "{:.3f} ± {:.3f}".format(*mean_std(values.double().tolist()))


def distance_table(comparisons) -> str:
    """Markdown: per model, the attack's success and the adversarial examples' distance to their
    sources beside the blind spots' kept class and distance to their targets (mean ± std
    over the pairs; for blind spots, over the pairs of two classes), then what produced each row."""
    attacks = " or ".join(dict.fromkeys(c.attack for c in comparisons)) or "PGD"
    head = (f"| model | threat model | {attacks} fools | adv→source RMSE | l_inf | SSIM | blind spots kept | "
            "blind spot→target RMSE | l_inf | SSIM |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for c in comparisons:
        adv, blind = c.distances["adversarial to source"], c.distances["blind spot to target"]
        lines.append(f"| {markdown_text(c.model)} | {c.threat.norm} {c.threat.radius:.4g} | "
                     f"{int(c.fooled.sum())}/{c.k} | "
                     + " | ".join(_mean_std(adv[key]) for key in DISTANCES)
                     + f" | {int(c.kept.sum())}/{int(c.other_class.sum())} | "
                     + " | ".join(_mean_std(blind[key][c.other_class]) if c.other_class.any() else "–"
                                  for key in DISTANCES) + " |")
    lines += ["", *(markdown_text(f"{c.model}: {c.caption}") for c in comparisons)]
    return "\n".join(lines)


def transfer_table(result: Transfer) -> str:
    """Markdown: for each pair (A, B), how B classifies A's adversarial examples and blind
    spots, as counts of the k pairs, then what produced them."""
    lines = ["| images of A | classified by B | adversarial: B fooled | blind spot: B keeps A's source class "
             "| blind spot: B sees the target |", "|---|---|---|---|---|"]
    for a, name_a in enumerate(result.models):
        spots = int(result.pairs()[a])
        for b, name_b in enumerate(result.models):
            lines.append(f"| {markdown_text(name_a)} | {markdown_text(name_b)} | "
                         f"{int(result.fooled[a, b])}/{result.k} | "
                         f"{int(result.keeps_source[a, b])}/{spots} | {int(result.sees_target[a, b])}/{spots} |")
    lines += ["", markdown_text(result.caption)]
    return "\n".join(lines)
