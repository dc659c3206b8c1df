"""Adversarial examples: FGSM and PGD from Captum, AutoAttack from its authors' package.

Every attack takes images in [0, 1] and labels, and returns images in [0, 1] within the
ball of ``radius`` around the inputs (``norm`` "Linf" or "L2"), untargeted on cross-entropy. The
model is any module mapping [0, 1] images to logits (a registry model normalises inside).
The attack's radius is ``radius`` (``eps`` is LST's parallel box).

* :func:`fgsm`: one signed-gradient step of size ``radius`` (Goodfellow et al. 2015);
* :func:`pgd`: ``steps`` signed-gradient steps of ``step_size`` (default 2.5 radius / steps)
  from a uniform random start in the ball, each projected onto the ball and [0, 1]
  (Madry et al. 2018). This is the one PGD of the project: adversarial training and the
  evaluation in :mod:`blindspots_nb.train` call it too;
* :func:`autoattack`: the standard AutoAttack (Croce & Hein 2020: APGD-CE, APGD-T, FAB-T,
  Square with 5000 queries) from ``pyautoattack``, the authors' reference code on PyPI.

Captum's steps skip gradient entries below ``1e-6`` by default; here every non-zero
entry moves (``zero_thresh = 0``), as in the textbook PGD: a confident model's gradients
are tiny but still point somewhere. Captum draws its random starts from torch's global
generator, and AutoAttack seeds that generator itself; here each call seeds a forked copy
of it (``seed``), so the result depends on the seed alone and the caller's random state
is left as it was.

:func:`threat_model` reads a model's threat model from ``model.info`` (its adversarial
training's norm and radius); a normally trained model gets its dataset's standard radius
(:data:`STANDARD_RADIUS`), so a normal and an adversarially trained model of one dataset are
attacked alike.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import DIGITS_AT_RADIUS, FONTS_AT_RADIUS, module_device, predict
from ..tools.tensors import check_images

NORMS = ("Linf", "L2")
# The l_inf radius that robustness on each dataset is usually measured at (pixels in [0, 1]).
STANDARD_RADIUS = {"fonts": FONTS_AT_RADIUS, "digits": DIGITS_AT_RADIUS, "imagenet": 4 / 255, "cifar10": 8 / 255}
# The l_inf radius for a model whose dataset has no standard (a user's model): 8/255, the most
# common radius of l_inf robustness benchmarks (RobustBench's CIFAR-10); pass radius= for another.
UNKNOWN_DATASET_RADIUS = 8 / 255
_AUTOATTACK_TARGET_CLASSES = 9  # APGD-T and FAB-T of the standard version attack the 9 most likely other classes


@dataclass(frozen=True)
class ThreatModel:
    """An l_p ball around each image: ``norm`` ("Linf" or "L2"), ``radius``, and
    where the radius comes from (``origin``: the model's adversarial training, or its
    dataset's standard)."""

    norm: str
    radius: float
    origin: str

    def __str__(self) -> str:
        return f"{self.norm} radius {self.radius:.4g} ({self.origin})"


def _canonical_norm(norm: str) -> str:
    """``"Linf"`` or ``"L2"`` for any spelling of them ("linf", "l_inf", "L2" ...)."""
    spelled = str(norm).lower().replace("_", "").replace("-", "")
    found = {"linf": "Linf", "l2": "L2"}.get(spelled)
    if found is None:
        raise ValueError(f"unknown norm {norm!r}: the attacks know {' and '.join(NORMS)}")
    return found


def threat_model(model) -> ThreatModel:
    """The model's own threat model from ``model.info`` (``threat_model``, ``radius``) when it
    was adversarially trained, else the l_inf ball of its dataset's standard radius, else
    (a dataset without a standard, e.g. a user's model) of :data:`UNKNOWN_DATASET_RADIUS`, 8/255,
    which its ``origin`` says, with how to choose another."""
    info = getattr(model, "info", None) or {}
    name = info.get("name", type(model).__name__)
    if info.get("threat_model") and info.get("radius"):
        return ThreatModel(_canonical_norm(info["threat_model"]), float(info["radius"]),
                           f"{name}'s adversarial training")
    dataset = str(info.get("dataset") or "")
    key = "imagenet" if dataset.startswith("imagenet") else dataset
    if key not in STANDARD_RADIUS:
        dataset = f"dataset {dataset!r}" if dataset else "an unknown dataset"
        return ThreatModel("Linf", UNKNOWN_DATASET_RADIUS, f"the default 8/255 for {dataset}, which has no "
                           "standard radius; set radius to choose another")
    return ThreatModel("Linf", STANDARD_RADIUS[key], f"the {key} standard")


def default_radius(model) -> float:
    """The radius to attack ``model`` at: its own adversarial-training radius, or its
    dataset's standard (FONTS 0.2, digits 0.1, ImageNet 4/255, CIFAR-10 8/255), else 8/255."""
    return threat_model(model).radius


# --------------------------------------------------------------------------- checks


def _check_number(name: str, value, low: float, high: float, low_included: bool = False) -> float:
    number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not (number and (low <= value if low_included else low < value) and value <= high):
        interval = f"{'[' if low_included else '('}{low:g}, {high:g}]"
        raise ValueError(f"{name} must lie in {interval} (pixels are in [0, 1]), got {value!r}")
    return float(value)


def _check_inputs(model, images, labels, radius, norm) -> tuple[torch.Tensor, torch.Tensor, float, str]:
    """Images (N, C, H, W) in [0, 1] and N integer labels on the model's device, a valid
    radius and norm; raises ValueError saying which is wrong."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a float tensor (N, C, H, W), got {shape}")
    if images.shape[0] == 0:
        raise ValueError("images is an empty batch")
    check_images("images", images)
    labels = torch.as_tensor(labels)
    if labels.dtype in (torch.bool,) or labels.is_floating_point() or labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be {images.shape[0]} integer class indices, got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    norm = _canonical_norm(norm)
    radius = _check_number("radius", radius, 0.0, 1.0 if norm == "Linf" else math.sqrt(images[0].numel()))
    device = module_device(model)
    return images.detach().to(device), labels.long().to(device), radius, norm


def default_step_size(radius: float, steps: int) -> float:
    """PGD's step when none is given: 2.5 radius / steps, so the walk can cross the ball."""
    return 2.5 * radius / steps


def _seed_of(seed) -> int:
    """An int seed as it is; a torch.Generator gives a fresh one (for a stream of calls)."""
    if isinstance(seed, torch.Generator):
        return int(torch.randint(0, 2**62, (), generator=seed))
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0 or a torch.Generator, got {seed!r}")
    return seed


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Torch's global generators (CPU and ``device``) seeded with ``seed`` inside, restored after."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextmanager
def _captum_quiet():
    """Captum warns on every step that the (detached) images did not require gradients;
    they need not: it sets that itself."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
        yield


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-image cross-entropy: Captum takes the gradient of each image's own loss."""
    return F.cross_entropy(logits, labels, reduction="none")


# --------------------------------------------------------------------------- attacks


def fgsm(model, images: torch.Tensor, labels, radius: float) -> torch.Tensor:
    """FGSM (Captum): ``clip(x + radius * sign(grad_x CE(model(x), y)), 0, 1)``, l_inf."""
    from captum.robust import FGSM

    device = images.device
    images, labels, radius, _ = _check_inputs(model, images, labels, radius, "Linf")
    attack = FGSM(model, loss_func=_cross_entropy, lower_bound=0.0, upper_bound=1.0)
    attack.zero_thresh = 0.0
    with _captum_quiet():
        return attack.perturb(images, radius, labels).detach().to(device)


def pgd(model, images: torch.Tensor, labels, radius: float, step_size: float | None = None, steps: int = 20,
        norm: str = "Linf", random_start: bool = True, seed: int | torch.Generator = 0) -> torch.Tensor:
    """PGD (Captum) in the ``norm`` ball of ``radius``: ``steps`` gradient steps of
    ``step_size`` (default 2.5 radius / steps; signed for Linf), each projected onto the ball
    and [0, 1], from a uniform random point of the ball when ``random_start``.

    ``seed`` (an int, or a torch.Generator that draws one per call) fixes the random start.
    """
    from captum.robust import PGD

    device = images.device
    images, labels, radius, norm = _check_inputs(model, images, labels, radius, norm)
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    step_size = (default_step_size(radius, steps) if step_size is None
                 else _check_number("step_size", step_size, 0.0, math.inf))
    if random_start and norm == "L2":  # Captum 0.9 broadcasts the random radii over the image width
        raise ValueError("Captum's L2 random start is broken (its radius does not broadcast over a "
                         "batch of images): use random_start=False with norm='L2'")
    attack = PGD(model, loss_func=_cross_entropy, lower_bound=0.0, upper_bound=1.0)
    attack.fgsm.zero_thresh = 0.0
    with _seeded(_seed_of(seed), images.device), _captum_quiet():
        adversarial = attack.perturb(images, radius=radius, step_size=step_size, step_num=steps, target=labels,
                                     random_start=random_start, norm=norm)
    return adversarial.detach().to(device)


@contextmanager
def _autoattack_log(verbose: bool):
    """AutoAttack logs its progress at DEBUG level to the "auto-attack" logger; when
    ``verbose``, inside, that goes to stderr."""
    if not verbose:
        yield
        return
    logger = logging.getLogger("auto-attack")
    handler, level = logging.StreamHandler(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def autoattack(model, images: torch.Tensor, labels, radius: float, norm: str = "Linf", seed: int = 0,
               verbose: bool = False) -> torch.Tensor:
    """The standard AutoAttack (``pyautoattack``, Croce and Hein's code): APGD-CE, APGD-T
    and FAB-T on the 9 most likely other classes (all others when fewer), Square (5000
    queries), each on the images that the attacks before left correctly classified. An
    image keeps the first example that fools the model; one that none fools, or that
    the model gets wrong already, comes back unchanged. Deterministic given ``seed``."""
    from pyautoattack import AutoAttack

    device = images.device
    images, labels, radius, norm = _check_inputs(model, images, labels, radius, norm)
    seed = _seed_of(seed)
    with torch.no_grad():
        classes = model(images[:1]).shape[1]
    if classes < 4:
        raise ValueError(f"AutoAttack needs a model of at least 4 classes (APGD-T's targeted DLR loss "
                         f"compares the 4 largest logits), got {classes}")
    attack = AutoAttack(model, norm=norm, eps=radius, version="standard", device=images.device, seed=seed)
    attack.verbose = verbose
    targets = min(classes - 1, _AUTOATTACK_TARGET_CLASSES)  # the package would index past a model's classes
    attack.apgd_targeted.n_target_classes = attack.fab.n_target_classes = targets
    with _seeded(seed, images.device), _autoattack_log(verbose):
        adversarial, _ = attack.run_standard_evaluation(images, labels, batch_size=len(images))
    return adversarial.detach().to(device)


def correct(model, images: torch.Tensor, labels) -> int:
    """How many images the model assigns to their labels."""
    return int((predict(model, images)[0] == torch.as_tensor(labels).cpu()).sum())


def accuracy(model, images: torch.Tensor, labels) -> float:
    """The fraction of images the model assigns to their labels."""
    return correct(model, images, labels) / len(images)


@dataclass(frozen=True)
class Robustness:
    """Accuracy of one model on n labelled images: clean, under PGD and under AutoAttack
    (the same ball), with the seconds each attack took."""

    n: int
    norm: str
    radius: float
    pgd_steps: int
    clean: float
    pgd: float
    autoattack: float
    pgd_seconds: float
    autoattack_seconds: float


def robustness(model, images: torch.Tensor, labels, radius: float | None = None, steps: int = 20, seed: int = 0,
               batch_size: int = 250) -> Robustness:
    """Clean, PGD-``steps`` and AutoAttack accuracy at ``radius`` (default: the model's threat
    model), over batches of ``batch_size`` images."""
    threat = threat_model(model) if radius is None else ThreatModel("Linf", radius, "given")
    labels = torch.as_tensor(labels)
    counts = {"clean": 0, "pgd": 0, "autoattack": 0}
    seconds = {"pgd": 0.0, "autoattack": 0.0}
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(images), batch_size):
        x, y = images[start:start + batch_size], labels[start:start + batch_size]
        counts["clean"] += correct(model, x, y)
        for name, attack in (("pgd", lambda: pgd(model, x, y, threat.radius, steps=steps, norm=threat.norm,
                                                 seed=generator)),
                             ("autoattack", lambda: autoattack(model, x, y, threat.radius, threat.norm,
                                                               seed=_seed_of(generator)))):
            began = time.perf_counter()
            adversarial = attack()
            seconds[name] += time.perf_counter() - began
            counts[name] += correct(model, adversarial, y)
    n = len(images)
    return Robustness(n, threat.norm, threat.radius, steps, counts["clean"] / n, counts["pgd"] / n,
                      counts["autoattack"] / n, seconds["pgd"], seconds["autoattack"])
