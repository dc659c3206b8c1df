"""What one experiment of the tables' protocol is, and the named presets.

An :class:`Experiment` is frozen and holds the engine's :class:`~blindspots_nb.lst.LSTConfig`
itself, so a new hyperparameter reaches the presets, the command line, the stored
settings and the notebook at once. Presets are built from ``LSTConfig()`` with
``dataclasses.replace``: the paper's numbers are written once, in ``LSTConfig``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..execution import Execution
from ..lst import LSTConfig
from ..data.sources import ImageSource
from ..models.spec_names import checked_model_name
from ..tools.deprecation import renamed_keys
from ..tools.validation import MAX_SEED, plain_number


@dataclass(frozen=True)
class Experiment:
    """One image source, the models studied on it, the pool rule and LST's hyperparameters.

    image_source: an image source spelling (``photos``, ``fonts:test``, ``imagenet:ROOT`` ...)
        or an :class:`~blindspots_nb.data.sources.ImageSource`; a folder named relatively is
        made absolute, so a run's processes and kernels open the same folder wherever they run.
    models: registry names or factory specs (``path/to/file.py:function``,
        ``package.module:function``: see :mod:`blindspots_nb.models.spec`); the pool must
        suit every one of them. Checked when the experiment is built.
    lst: LST's hyperparameters (its seed is replaced by one per source batch and round).
    execution: how the models run (precision, compile, layout); not the algorithm, but
        part of the run's identity, since a precision can move the numbers.
    name: the experiment's folder in the output; default: the image source's kind.
    n_sources: cap on the pool size (None: the whole pool).
    per_class: pool images per class.
    min_conf: pool rule: correct with confidence above this under every model.
    rounds: derangement rounds, i.e. blind spots per source.
    batch_size: sources per LST batch.
    divisions: divisions of the triangle grid (10: 66 points).
    seed: seed of the derangements and of every batch's LST noise.
    note: what a reader of the tables should know about this experiment.
    """

    image_source: ImageSource
    models: tuple[str, ...]
    lst: LSTConfig = field(default_factory=LSTConfig)
    execution: Execution = field(default_factory=Execution)
    name: str = ""
    n_sources: int | None = None
    per_class: int = 1
    min_conf: float = 0.6
    rounds: int = 5
    batch_size: int = 196
    divisions: int = 10
    seed: int = 0
    note: str = ""

    def __post_init__(self):
        set_ = lambda key, value: object.__setattr__(self, key, value)  # noqa: E731 (frozen dataclass)
        for key in ("per_class", "rounds", "batch_size", "divisions", "seed", "min_conf") + (
                ("n_sources",) if self.n_sources is not None else ()):
            set_(key, plain_number(f"Experiment.{key}", getattr(self, key), integral=key != "min_conf"))
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"Experiment.seed must be an integer in [0, 2**64 - 1] (the seeds "
                             f"torch.Generator.manual_seed takes), got {self.seed}")
        if not isinstance(self.image_source, (str, ImageSource)):
            raise TypeError(f"Experiment.image_source is an image source's spelling (photos, fonts:test, "
                            f"folder:PATH, imagenet:ROOT, ...), got {type(self.image_source).__name__}: each "
                            "process of a run opens the images itself")
        set_("image_source", ImageSource.of(self.image_source).absolute())  # a folder named relatively: absolute
        models = self.models if isinstance(self.models, (list, tuple)) else (self.models,)
        set_("models", tuple(checked_model_name(m) for m in models))
        set_("name", self.name or self.image_source.kind)
        if not isinstance(self.lst, LSTConfig):
            raise TypeError(f"Experiment.lst must be an LSTConfig, got {type(self.lst).__name__}")
        if not isinstance(self.execution, Execution):
            raise TypeError(f"Experiment.execution must be an Execution, got {type(self.execution).__name__}")
        if not self.models:
            raise ValueError("an experiment needs at least one model")
        if self.rounds < 2:
            raise ValueError(f"rounds must be >= 2 (Table 2 needs pairs of blind spots), got {self.rounds}")
        for key in ("batch_size", "per_class", "divisions"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_sources is not None and self.n_sources < 2:
            raise ValueError(f"n_sources must be >= 2 (each source needs a target among the others), "
                             f"got {self.n_sources}")
        if not 0 <= self.min_conf < 1:
            raise ValueError(f"min_conf must lie in [0, 1), got {self.min_conf}")

    def lst_config(self, seed: int) -> LSTConfig:
        return dataclasses.replace(self.lst, seed=seed)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "image_source": str(self.image_source), "models": list(self.models)}

    @classmethod
    def from_dict(cls, values: dict) -> "Experiment":
        """The experiment :meth:`to_dict` wrote (a ``source`` key, written before it was
        ``image_source``, is read too)."""
        values = renamed_keys(values, "experiment settings", source="image_source")
        return cls(**{**values, "lst": LSTConfig(**values["lst"]),
                      "execution": Execution(**values.get("execution", {}))})


PRESETS = ("offline", "digits", "paper", "cifar10")
# what the presets that need --data-root say without one
_DATA_ROOT_NEEDED = {
    "paper": "the paper preset needs ImageNet validation images: pass --data-root",
    "cifar10": "the cifar10 preset needs the CIFAR-10 test batch: pass --data-root, a folder holding "
               "cifar-10-batches-py/test_batch (or that file)"}
PAPER_MODELS = ("resnet50", "resnet50_at", "deit_small_patch16_224", "deit_small_at")
CIFAR10_MODELS = ("cifar10_wrn28_10", "cifar10_wrn28_10_at")


# How new runs of the GPU presets run: TF32 convolutions, as the released code's CUDA defaults, and batch norms
# folded into the convolutions (the same function up to float rounding, 1.3x faster LST on a CPU, every offline
# table row within 0.02 std: docs/reproduction.md, "Execution options of new runs"). The offline preset runs
# as it always did: its tables are the reference the tests hold byte for byte.
_FOLDED_TF32_CONV = Execution(precision="tf32-conv", fold_batchnorm=True)


def preset(name: str, data_root: str | None = None) -> list[Experiment]:
    """The experiments of a named preset: ``offline`` (default), ``digits`` (real handwriting,
    offline: the LeNet pair on scikit-learn's digits; a preset of its own so that the offline
    one stays within about 3 minutes on a CPU), ``paper`` (ImageNet validation images from
    ``data_root``) or ``cifar10`` (the CIFAR-10 test batch under ``data_root``, with the
    WideResNet-28-10 pair the authors' code also ran)."""
    check_preset(name, data_root)
    paper = LSTConfig()
    if name == "offline":
        return [
            Experiment("fonts:test", ("fonts_cnn", "fonts_cnn_at"), paper,
                       note="FONTS-style glyphs (test fonts), paper hyperparameters"),
            Experiment("photos", ("efficientnet_lite0",), dataclasses.replace(paper, step_size=4e-2, iterations=100),
                       min_conf=0.3, batch_size=16,
                       note="scikit-image photos: no ImageNet labels, so the model's own prediction is the "
                            "label and the pool rule is relaxed to confidence > 0.3; 100 iterations of step "
                            "0.04 stand in for 400 of 0.01 (0.96^100 ~ 0.99^400 ~ 0.02)"),
        ]
    if name == "digits":
        return [Experiment("digits:test", ("digits_lenet", "digits_lenet_at"), paper,
                           note="scikit-learn's handwritten digits (8x8 upsampled to 32x32, the fixed test split), "
                                "paper hyperparameters")]
    if name == "paper":
        return [Experiment(f"imagenet:{data_root}", PAPER_MODELS, paper, execution=_FOLDED_TF32_CONV,
                           note="the paper's protocol and hyperparameters (ImageNet); TF32 convolutions "
                                "as the released code ran by PyTorch's CUDA defaults")]
    return [Experiment(f"cifar10:{data_root}", CIFAR10_MODELS, paper, per_class=100,  # cifar10
                       execution=_FOLDED_TF32_CONV,
                       note="CIFAR-10 test images, the paper's LST hyperparameters; 100 sources per class "
                            "make the paper's 1000")]


def check_preset(name: str, data_root: str | None = None) -> None:
    """Refuse an unknown preset, or one that needs ``data_root`` without it; without torch
    (the command line checks its arguments before importing it)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(PRESETS)}")
    if name in _DATA_ROOT_NEEDED and not data_root:
        raise ValueError(_DATA_ROOT_NEEDED[name])


def taxonomy_experiment(per_class: int, rounds: int, iterations: int, seed: int):
    """The tables' protocol on ``fonts:test`` for both FONTS CNNs, as the taxonomy runs it
    (LST with the paper's hyperparameters, ``iterations`` of them)."""
    return Experiment("fonts:test", ("fonts_cnn", "fonts_cnn_at"), LSTConfig(iterations=iterations),
                      per_class=per_class, rounds=rounds, seed=seed, name="fonts",
                      note="manifold taxonomy: the tables' protocol on FONTS test glyphs")


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        index, count = (int(part) for part in str(text).split("/"))
    except ValueError:
        raise ValueError(f"a shard is written i/n (e.g. 0/4), got {text!r}") from None
    if not 0 <= index < count:
        raise ValueError(f"shard {text}: need 0 <= i < n")
    return index, count
