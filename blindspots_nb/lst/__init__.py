"""Level Set Traversal (LST): walk along a model's level set from a source image
towards a target image, ending at a *blind spot* — an image that looks like the
target while the model keeps the source's class and confidence.

Images are tensors in [0, 1]; the model maps them to logits (normalisation lives in
the model). The algorithm (``docs/algorithm.md``): raw cross-entropy gradient, the
step towards the target projected orthogonally to it, an accumulated box-bounded
parallel part, and a per-sample acceptance test against the clean source confidence.

Each iteration costs one forward and one backward pass: the forward pass at the
candidate point, kept with its graph, both decides acceptance and gives the
gradient for the next step (a rejected sample does not move, so its old gradient
stays valid).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .. import __version__
from ..tools.atomic import write_atomically
from ..tools.checksums import tensors_sha256
from ..tools.tensors import check_images, class_indices, l2_distance
from ..execution import Execution
from ..tools.validation import MAX_SEED, plain_number

_FORMAT = "blindspots_nb.Traversal"
_FORMAT_VERSION = 2  # 2: the model's weights_sha256 and its logits on the sources


# The range of each real hyperparameter: (low, low included, high) and why.
_RANGES = {
    "step_size": (0.0, False, 1.0, "a fraction of the step towards the target; above 1 it overshoots"),
    "delta": (0.0, False, 1.0, "a drop of confidence, a probability"),
    "eps": (0.0, True, 1.0, "a box on changes of pixels in [0, 1]"),
    "init_noise": (0.0, True, 1.0, "a width of noise on pixels in [0, 1]"),
}


@dataclass(frozen=True)
class LSTConfig:
    """Hyperparameters of LST. Defaults are those behind the paper's ImageNet tables.

    step_size: eta in (0, 1], fraction of the orthogonal step towards the target per iteration.
    iterations: T, number of iterations a full traversal runs.
    delta: in (0, 1]; a candidate is rejected when it drops source-class confidence by delta or more.
    eps: in [0, 1], l_inf box of the accumulated parallel (confidence-raising) part.
    init_noise: in [0, 1], width a of the uniform noise added to the source at the start.
    record_every: history is recorded every this many iterations (0: start and end only).
    record_images: also keep the images at each recorded step (memory grows).
    seed: seed of the initial noise, in [0, 2**64 - 1].

    Numbers may be numpy scalars: they are kept as Python ones (the config goes into JSON).
    """

    step_size: float = 1e-2
    iterations: int = 400
    delta: float = 0.2
    eps: float = 2e-3
    init_noise: float = 4 / 255
    record_every: int = 20
    record_images: bool = False
    seed: int = 0

    def __post_init__(self):
        for name, (low, closed, high, meaning) in _RANGES.items():
            value = plain_number(f"LSTConfig.{name}", getattr(self, name))
            if not ((low <= value if closed else low < value) and value <= high):
                interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
                raise ValueError(f"LSTConfig.{name} must lie in {interval} ({meaning}), got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        for name, high in (("iterations", None), ("record_every", None), ("seed", MAX_SEED)):
            value = plain_number(f"LSTConfig.{name}", getattr(self, name), integral=True)
            if value < 0 or (high is not None and value > high):
                accepted = (">= 0" if high is None else
                            "in [0, 2**64 - 1] (the seeds torch.Generator.manual_seed takes)")
                raise ValueError(f"LSTConfig.{name} must be an integer {accepted}, got {value!r}")
            object.__setattr__(self, name, value)
        if not isinstance(self.record_images, bool):
            raise ValueError(f"LSTConfig.record_images must be True or False, got {self.record_images!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class History:
    """What a traversal recorded, one row per recorded iteration.

    Every tensor has shape (R, B) (images: (R, B, C, H, W)), on the CPU.
    ``accepted`` is whether each sample's step *at* that iteration was accepted
    (True at iteration 0); ``accepted_total`` counts accepted steps so far.
    """

    iteration: list[int] = field(default_factory=list)
    source_confidence: list[torch.Tensor] = field(default_factory=list)
    target_confidence: list[torch.Tensor] = field(default_factory=list)
    distance: list[torch.Tensor] = field(default_factory=list)
    accepted: list[torch.Tensor] = field(default_factory=list)
    accepted_total: list[torch.Tensor] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)

    _TENSOR_FIELDS = ("source_confidence", "target_confidence", "distance", "accepted",
                      "accepted_total", "images")

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """Stacked view: ``iteration`` (R,) and each recorded quantity (R, B, ...)."""
        out = {"iteration": torch.tensor(self.iteration, dtype=torch.long)}
        for name in self._TENSOR_FIELDS:
            values = getattr(self, name)
            if values:
                out[name] = torch.stack(values)
        return out

    def state_dict(self) -> dict:
        return {"iteration": list(self.iteration),
                **{name: list(getattr(self, name)) for name in self._TENSOR_FIELDS}}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls(**{name: list(state[name]) for name in ("iteration", *cls._TENSOR_FIELDS)})


@dataclass
class LSTResult:
    """Outcome of a traversal: blind spots and what the model says of them."""

    images: torch.Tensor              # (B, C, H, W) blind spots in [0, 1]
    confidence: torch.Tensor          # (B,) source-class confidence at the blind spots
    initial_confidence: torch.Tensor  # (B,) p0, source-class confidence of the clean sources
    target_confidence: torch.Tensor   # (B,) target-class confidence at the blind spots
    labels: torch.Tensor              # (B,) source classes
    target_labels: torch.Tensor       # (B,) target classes
    history: History
    config: LSTConfig
    iterations: int                   # iterations run


def _per_sample_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """<a_i, b_i> for each sample, shaped (B, 1, ..., 1) to broadcast over images."""
    dot = (a * b).flatten(1).sum(1)
    return dot.view(-1, *([1] * (a.dim() - 1)))


def _where_sample(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample select: a where mask else b."""
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


def orthogonal_step(gradient: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The part of ``direction`` orthogonal to ``gradient``, per sample.

    A sample with zero gradient keeps its whole direction.
    """
    g_dot_g = _per_sample_dot(gradient, gradient)
    coefficient = _per_sample_dot(gradient, direction) / torch.where(g_dot_g > 0, g_dot_g, 1.0)
    return direction - coefficient * gradient


def _execution(execution) -> Execution:
    if not isinstance(execution, (Execution, type(None))):
        raise TypeError(f"execution must be an Execution, got {type(execution).__name__}")
    return execution or Execution()


def _model_dtype(model) -> torch.dtype | None:
    """The dtype of the model's first floating parameter or buffer (None if it has none)."""
    tensors = [*model.parameters(), *model.buffers()] if isinstance(model, torch.nn.Module) else []
    return next((t.dtype for t in tensors if t.is_floating_point()), None)


def _check_inputs(model, sources, labels, targets):
    if not isinstance(sources, torch.Tensor) or not isinstance(targets, torch.Tensor):
        raise TypeError("sources and targets must be torch tensors of images (B, C, H, W)")
    if sources.dim() != 4:
        raise ValueError(f"sources must be a batch (B, C, H, W); got shape {tuple(sources.shape)}")
    if sources.shape[0] == 0:
        raise ValueError("sources hold no images: a batch of 0 has nothing to traverse")
    if targets.shape != sources.shape:
        raise ValueError(f"targets must have the sources' shape {tuple(sources.shape)}; "
                         f"got {tuple(targets.shape)}")
    if not sources.is_floating_point() or not targets.is_floating_point():
        raise TypeError("images must be floating point tensors with pixels in [0, 1]")
    dtype, holder = _model_dtype(model), "the model computes in"
    if dtype is None:
        dtype, holder = sources.dtype, "the sources are"
    for name, images in (("sources", sources), ("targets", targets)):
        if images.dtype != dtype:  # never cast silently: the caller decides the precision
            raise ValueError(f"{name} are {images.dtype} but {holder} {dtype}: convert the images "
                             f"with .to({dtype}) (or the model with .to({images.dtype}))")
        check_images(name, images)
    return class_indices(labels, "labels", sources.shape[0], sources.device)


def weights_sha256(model) -> str | None:
    """The sha256 of a model's parameters and buffers: their names, dtypes, shapes and
    bytes, in name order, read on the CPU (the same wherever the model lives and whatever
    its memory layout); None for a model that is not a torch Module."""
    if not isinstance(model, torch.nn.Module):
        return None
    return tensors_sha256({**dict(model.named_parameters()), **dict(model.named_buffers())})


# The tensors of a saved state: B images (C, H, W) each, or one value per sample; and
# what format 2 added (the model's identity).
_IMAGE_STATE = ("sources", "targets", "images", "parallel", "gradient")
_SAMPLE_STATE = ("labels", "target_labels", "initial_confidence", "accepted", "accepted_total")
_MODEL_STATE = ("weights_sha256", "source_logits")
# The kind of each recorded quantity of the history (the others are floating point).
_HISTORY_KIND = {"accepted": "bool", "accepted_total": "integer"}


def _kind(tensor: torch.Tensor) -> str:
    return "bool" if tensor.dtype == torch.bool else "floating" if tensor.is_floating_point() else "integer"


def _state_problem(state: dict) -> str | None:
    """What makes a loaded Traversal state inconsistent, or None: a file that was edited,
    damaged or pieced together must not be resumed into silently wrong numbers.

    Besides types, shapes and ranges, it checks what the algorithm makes true: the parallel
    part stays in its eps box; the history holds iteration 0 and then exactly one row per
    ``record_every`` iterations up to ``iteration`` (plus the ends of ``run``), which ties
    ``iteration`` to the history (with ``record_every=0`` nothing does); and each sample's
    count of accepted steps grows by at most one per iteration between recorded rows.
    """
    model_keys = _MODEL_STATE if state.get("format_version", 0) >= 2 else ()
    required = (*_IMAGE_STATE, *_SAMPLE_STATE, "probs", "rng_state", "config", "iteration", "history", *model_keys)
    missing = [key for key in required if key not in state]
    if missing:
        return f"it lacks {missing}"
    iteration = state["iteration"]
    if not isinstance(iteration, int) or isinstance(iteration, bool) or iteration < 0:
        return f"its iteration must be an integer >= 0, got {iteration!r}"
    try:
        config = LSTConfig(**state["config"])
    except (TypeError, ValueError) as error:
        return f"its config is invalid ({error})"
    try:
        Execution(**state.get("execution", {}))
    except (TypeError, ValueError) as error:
        return f"its execution options are invalid ({error})"
    sha256 = state.get("weights_sha256")
    if sha256 is not None and not (isinstance(sha256, str) and re.fullmatch("[0-9a-f]{64}", sha256)):
        return f"its weights_sha256 is not a sha256 (64 hex digits), got {sha256!r}"
    tensors = {key: state[key] for key in (*_IMAGE_STATE, *_SAMPLE_STATE, "probs", "rng_state", *model_keys[1:])}
    wrong = [key for key, value in tensors.items() if not isinstance(value, torch.Tensor)]
    if wrong:
        return f"{wrong} are not tensors"
    shape = tuple(tensors["sources"].shape)
    if len(shape) != 4 or shape[0] == 0:
        return f"its sources have shape {shape}, not (B, C, H, W) with B >= 1"
    probs = tensors["probs"]
    if probs.dim() != 2 or probs.shape[0] != shape[0]:
        return f"its probs have shape {tuple(probs.shape)}, not ({shape[0]}, classes)"
    expected = {**{key: shape for key in _IMAGE_STATE}, **{key: shape[:1] for key in _SAMPLE_STATE},
                "source_logits": tuple(probs.shape)}
    for key in [key for key in tensors if key in expected]:
        if tuple(tensors[key].shape) != expected[key]:
            return f"its {key} have shape {tuple(tensors[key].shape)}, but the sources {shape} need {expected[key]}"
    # the model's outputs are at least float32 (Execution.logits), the images as given
    dtypes = {key: torch.promote_types(tensors["sources"].dtype, torch.float32)
              for key in ("initial_confidence", "probs", "source_logits")}
    for key in [key for key in tensors if key in _IMAGE_STATE or key in dtypes]:
        dtype = dtypes.get(key, tensors["sources"].dtype)
        if tensors[key].dtype != dtype or not bool(torch.isfinite(tensors[key]).all()):
            return f"its {key} are not all finite numbers of dtype {dtype}"
    for key in ("sources", "targets", "images", "initial_confidence", "probs"):
        if float(tensors[key].min()) < 0 or float(tensors[key].max()) > 1:
            return f"its {key} leave [0, 1]"
    box = float(torch.tensor(config.eps, dtype=tensors["parallel"].dtype))  # the clamp's bound, rounded alike
    if float(tensors["parallel"].abs().max()) > box:
        return (f"its parallel part leaves its box [-eps, eps] (eps = {config.eps:g}): it reaches "
                f"{float(tensors['parallel'].abs().max()):.3g}")
    for key, high in (("labels", probs.shape[1] - 1), ("target_labels", probs.shape[1] - 1),
                      ("accepted_total", iteration)):
        value = tensors[key]
        if _kind(value) != "integer" or not (0 <= int(value.min()) and int(value.max()) <= high):
            return f"its {key} must be integers in [0, {high}], got {value[:8].tolist()}"
    if tensors["accepted"].dtype != torch.bool:
        return f"its accepted flags are {tensors['accepted'].dtype}, not booleans"
    return _history_problem(state["history"], iteration, config.record_every, shape, tensors["accepted_total"])


def _history_problem(history, iteration: int, every: int, shape: tuple, accepted_total: torch.Tensor) -> str | None:
    """What makes a saved history inconsistent, in itself or with the state's ``iteration``
    and ``accepted_total`` (see :func:`_state_problem`), or None."""
    if not isinstance(history, dict) or any(key not in history for key in ("iteration", *History._TENSOR_FIELDS)):
        return "its history is incomplete"
    recorded = history["iteration"]
    if any(len(history[key]) != len(recorded) for key in History._TENSOR_FIELDS if key != "images") \
            or len(history["images"]) not in (0, len(recorded)):
        return f"its history fields disagree in length (iterations recorded: {len(recorded)})"
    if any(not isinstance(i, int) or isinstance(i, bool) for i in recorded) or recorded[:1] != [0] \
            or any(a >= b for a, b in zip(recorded, recorded[1:])) or recorded[-1] > iteration:
        return f"its history's iterations must rise from 0 to at most its iteration {iteration}, got {recorded[:8]}"
    if every:
        regular = [i for i in recorded if i % every == 0]
        if len(regular) != iteration // every + 1 or any(i != k * every for k, i in enumerate(regular)):
            return (f"its iteration {iteration} does not fit its history: recording every {every} iterations, "
                    f"it would hold iterations 0, {every}, ..., {iteration // every * every}, but holds "
                    f"{regular[:8]}{' ...' if len(regular) > 8 else ''}")
    for key in History._TENSOR_FIELDS:
        want, kind = (shape if key == "images" else shape[:1]), _HISTORY_KIND.get(key, "floating")
        if any(not isinstance(row, torch.Tensor) or tuple(row.shape) != want or _kind(row) != kind
               for row in history[key]):
            return f"its history's {key} are not all {kind} tensors of shape {want}"
    before, before_total = 0, torch.zeros_like(accepted_total)
    for at, total, name in [*((i, t, f"history's accepted_total at iteration {i}")
                              for i, t in zip(recorded, history["accepted_total"])),
                            (iteration, accepted_total, "accepted_total")]:
        gained = total.long() - before_total.long()
        if int(gained.min()) < 0 or int(gained.max()) > at - before:
            return (f"its {name}, {total[:8].tolist()}, cannot follow {before_total[:8].tolist()} at iteration "
                    f"{before}: at most one step per iteration is accepted, and none is taken back")
        before, before_total = at, total
    return None


def forward_backward(model, images: torch.Tensor, labels: torch.Tensor, execution: Execution | None = None):
    """Probabilities at ``images`` and the gradient of CE(f(x), y) with respect to each
    image (the loss is summed, so each image gets exactly its own gradient), both at least
    float32: one forward and one backward pass, as LST takes them."""
    execution = _execution(execution)
    x = images.detach().requires_grad_(True)
    with torch.enable_grad(), execution.scope(x.device):
        logits = execution.logits(model, x)
        (gradient,) = torch.autograd.grad(F.cross_entropy(logits, labels, reduction="sum"), x)
    return logits.detach().softmax(1), gradient


class Traversal:
    """A stepwise LST run that can be paused, saved and resumed.

    >>> t = Traversal(model, sources, labels, targets, LSTConfig(iterations=400))
    >>> t.step(20); t.images; t.iteration
    >>> t.run()            # on to config.iterations
    >>> t.save("run.pt"); t2 = Traversal.load("run.pt", model)

    ``execution`` says how the model runs (precision, compilation, layout), apart from
    the algorithm's ``config``.
    """

    def __init__(self, model, sources: torch.Tensor, labels, targets: torch.Tensor,
                 config: LSTConfig | None = None, target_labels=None, execution: Execution | None = None):
        self.model = model
        self.config = config or LSTConfig()
        self.execution = _execution(execution)
        self.labels = _check_inputs(model, sources, labels, targets)
        if hasattr(model, "eval"):
            model.eval()
        self.sources = self.execution.layout(sources.detach())
        self.targets = self.execution.layout(targets.detach())
        with torch.no_grad(), self.execution.scope(sources.device):
            logits = self._logits(self.sources)
            if logits.dim() != 2 or logits.shape[0] != sources.shape[0]:
                raise ValueError(f"the model must return logits (B, classes); got {tuple(logits.shape)}")
            if not bool(torch.isfinite(logits).all()):
                raise ValueError("the model gives NaN or infinite logits for the sources: "
                                 "there is no confidence to keep")
            num_classes = logits.shape[1]
            if int(self.labels.min()) < 0 or int(self.labels.max()) >= num_classes:
                raise ValueError(f"labels must lie in [0, {num_classes}); got {self.labels.tolist()}")
            self._source_logits = logits  # with the weights' sha256, what identifies the model in a saved state
            self.initial_confidence = logits.softmax(1).gather(1, self.labels[:, None])[:, 0]
            if target_labels is None:
                target_labels = self._logits(self.targets).argmax(1)
        self.target_labels = class_indices(target_labels, "target_labels", sources.shape[0], sources.device)
        if int(self.target_labels.min()) < 0 or int(self.target_labels.max()) >= num_classes:
            raise ValueError(f"target_labels must lie in [0, {num_classes}); got {self.target_labels.tolist()}")

        self._generator = torch.Generator().manual_seed(self.config.seed)
        noise = torch.rand(sources.shape, generator=self._generator, dtype=sources.dtype)
        start = (self.sources + self.config.init_noise * (noise.to(sources.device) - 0.5)).clamp(0, 1)
        self.parallel = torch.zeros_like(self.sources)
        self.iteration = 0
        self.history = History()
        self._x = start
        self._first_nonfinite = torch.full((), -1, dtype=torch.long, device=sources.device)
        self._probs, self._gradient = self._forward_backward(start)
        self._note_nonfinite(self._probs)
        self._accepted = torch.ones_like(self.labels, dtype=torch.bool)
        self._accepted_total = torch.zeros_like(self.labels)
        self._record()

    # -- the model ---------------------------------------------------------------
    def _logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.execution.logits(self.model, images)

    def _forward_backward(self, images: torch.Tensor):
        return forward_backward(self.model, images, self.labels, self.execution)

    # -- stepping ----------------------------------------------------------------
    def step(self, n: int = 1, progress: bool = False) -> "Traversal":
        """Run ``n`` more iterations (may be called again and again).

        Raises RuntimeError, naming the first iteration, once the model has given NaN
        or infinite logits (checked at recorded iterations and at the end).
        """
        for _ in tqdm(range(n), desc="LST", disable=not progress, leave=False):
            self._step()
        self._check_finite()
        return self

    def _note_nonfinite(self, probs: torch.Tensor) -> None:
        """Remember the first iteration whose probabilities are not all finite, on the
        device, so that no step waits for the device to answer."""
        bad = ~torch.isfinite(probs).all()
        self._first_nonfinite = torch.where(bad & (self._first_nonfinite < 0), self.iteration,
                                            self._first_nonfinite)

    def _check_finite(self) -> None:
        first = int(self._first_nonfinite)
        if first >= 0:
            raise RuntimeError(f"the model gave NaN or infinite logits at iteration {first} (the first such "
                               f"iteration; its steps with them were rejected); stopped at iteration "
                               f"{self.iteration}. Check the model and its inputs.")

    def _step(self):
        """One iteration: orthogonal step, parallel part, one forward+backward at the candidate."""
        cfg = self.config
        x, gradient = self._x, self._gradient
        direction = orthogonal_step(gradient, self.targets - x)
        self.parallel = (self.parallel + (cfg.eps / 2) * gradient).clamp(-cfg.eps, cfg.eps)
        candidate = (x + cfg.step_size * direction - self.parallel).clamp(0, 1)
        probs, candidate_gradient = self._forward_backward(candidate)
        confidence = probs.gather(1, self.labels[:, None])[:, 0]
        accept = (self.initial_confidence - confidence) < cfg.delta
        self._x = _where_sample(accept, candidate, x)
        self._gradient = _where_sample(accept, candidate_gradient, gradient)
        self._probs = _where_sample(accept, probs, self._probs)
        self._accepted = accept
        self._accepted_total = self._accepted_total + accept.long()
        self.iteration += 1
        self._note_nonfinite(probs)
        if cfg.record_every and self.iteration % cfg.record_every == 0:
            self._record()

    def run(self, progress: bool = False) -> "Traversal":
        """Step on until ``config.iterations`` iterations have run."""
        remaining = self.config.iterations - self.iteration
        if remaining > 0:
            self.step(remaining, progress=progress)
        if not self.history.iteration or self.history.iteration[-1] != self.iteration:
            self._record()
        return self

    def _record(self):
        self._check_finite()  # recording waits for the device anyway
        h = self.history
        h.iteration.append(self.iteration)
        h.source_confidence.append(self.confidence.cpu())
        h.target_confidence.append(self.target_confidence.cpu())
        h.distance.append(l2_distance(self.targets, self._x).cpu())
        h.accepted.append(self._accepted.cpu())
        h.accepted_total.append(self._accepted_total.cpu())
        if self.config.record_images:
            h.images.append(self._x.cpu())

    # -- state -------------------------------------------------------------------
    @property
    def images(self) -> torch.Tensor:
        """The current points of the traversal, (B, C, H, W) in [0, 1]."""
        return self._x

    @property
    def confidence(self) -> torch.Tensor:
        """Source-class confidence at the current points."""
        return self._probs.gather(1, self.labels[:, None])[:, 0]

    @property
    def target_confidence(self) -> torch.Tensor:
        """Target-class confidence at the current points."""
        return self._probs.gather(1, self.target_labels[:, None])[:, 0]

    def result(self) -> LSTResult:
        return LSTResult(images=self._x, confidence=self.confidence,
                         initial_confidence=self.initial_confidence,
                         target_confidence=self.target_confidence, labels=self.labels,
                         target_labels=self.target_labels, history=self.history,
                         config=self.config, iterations=self.iteration)

    def state_dict(self) -> dict:
        """Everything needed to resume, as tensors and plain values (no model)."""
        return {
            "format": _FORMAT, "format_version": _FORMAT_VERSION, "package_version": __version__,
            "config": self.config.to_dict(), "execution": self.execution.to_dict(), "iteration": self.iteration,
            "sources": self.sources.cpu().contiguous(), "targets": self.targets.cpu().contiguous(),
            "labels": self.labels.cpu(), "target_labels": self.target_labels.cpu(),
            "initial_confidence": self.initial_confidence.cpu(),
            "images": self._x.cpu().contiguous(), "parallel": self.parallel.cpu().contiguous(),
            "gradient": self._gradient.cpu().contiguous(), "probs": self._probs.cpu(),
            "accepted": self._accepted.cpu(), "accepted_total": self._accepted_total.cpu(),
            "rng_state": self._generator.get_state(), "history": self.history.state_dict(),
            "weights_sha256": weights_sha256(self.model), "source_logits": self._source_logits.cpu(),
        }

    def save(self, path) -> Path:
        """Write the whole state of the traversal (not the model, but its weights' sha256)
        to ``path``, whole or not at all."""
        state = self.state_dict()
        return write_atomically(path, lambda temporary: torch.save(state, temporary))

    @classmethod
    def load(cls, path, model, device=None, atol: float = 1e-4, rtol: float = 1e-2,
             execution: Execution | None = None) -> "Traversal":
        """Resume a saved traversal with ``model``, run as ``execution`` (default: as saved).

        Refuses a file that is not a saved Traversal, an inconsistent state (see
        :func:`_state_problem`), and a model other than the one the traversal ran with:
        its parameters and buffers must have the saved :func:`weights_sha256` (the model
        given, not a folded or compiled copy; a plain function has none), its logits on the
        clean sources must be the saved ones within ``rtol`` of their range, and its
        source-class confidence there the saved one within ``atol``. Files of format 1 hold
        neither sha256 nor logits: for them only the confidence is checked, which a model
        saturated on the sources hardly tells apart from another. Last, the stored
        probabilities and gradient must be the model's at the stored images
        (:meth:`_cache_problem`).
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no saved traversal at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises several types for foreign files
            raise ValueError(f"{path} is not a saved blindspots_nb Traversal ({error})") from error
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a saved blindspots_nb Traversal")
        version = state.get("format_version", 0)
        if not isinstance(version, int) or isinstance(version, bool) or version > _FORMAT_VERSION:
            raise ValueError(f"{path} was written by a newer blindspots_nb ({state.get('package_version')}, "
                             f"format version {version!r}); this is {__version__}")
        problem = _state_problem(state)
        if problem:
            raise ValueError(f"{path} holds an inconsistent Traversal state: {problem}")
        if device is None:
            from ..models import module_device
            device = module_device(model)
        self = cls.__new__(cls)
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        self.config = LSTConfig(**state["config"])
        self.execution = _execution(execution or Execution(**state.get("execution", {})))
        self.iteration = state["iteration"]
        def restore(name):
            return self.execution.layout(state[name].to(device))
        self.sources, self.targets = restore("sources"), restore("targets")
        self.labels, self.target_labels = restore("labels"), restore("target_labels")
        self.initial_confidence, self.parallel = restore("initial_confidence"), restore("parallel")
        self._x, self._gradient, self._probs = restore("images"), restore("gradient"), restore("probs")
        self._accepted, self._accepted_total = restore("accepted"), restore("accepted_total")
        self._first_nonfinite = torch.full((), -1, dtype=torch.long, device=device)
        self._generator = torch.Generator()
        try:
            self._generator.set_state(state["rng_state"])
        except RuntimeError as error:
            raise ValueError(f"{path} holds an inconsistent Traversal state: its rng_state is "
                             f"not a random generator's state ({error})") from error
        self.history = History.from_state_dict(state["history"])
        with torch.no_grad(), self.execution.scope(device):
            logits = self._logits(self.sources)
        problem = self._model_problem(state, logits, atol, rtol)
        if problem:
            raise ValueError(f"the model does not match the saved traversal {path}: {problem}")
        self._source_logits = state["source_logits"].to(device) if "source_logits" in state else logits
        problem = self._cache_problem(atol)
        if problem:
            raise ValueError(f"{path} holds an inconsistent Traversal state: {problem}")
        return self

    def _model_problem(self, state: dict, logits: torch.Tensor, atol: float, rtol: float) -> str | None:
        """How the model shows that it is not the one ``state`` was saved with, or None;
        ``logits``: its logits on the stored sources."""
        saved, now = state.get("weights_sha256"), weights_sha256(self.model)
        if saved and now and saved != now:
            return (f"its parameters and buffers differ from those the traversal ran with (sha256 {now[:16]}..., "
                    f"saved {saved[:16]}...): it is another model, or has other weights")
        if logits.shape != state["probs"].shape:
            return (f"it gives logits of shape {tuple(logits.shape)} for the stored sources, the traversal "
                    f"{tuple(state['probs'].shape)}")
        if "source_logits" in state:
            saved_logits = state["source_logits"].to(logits)
            gap = (logits - saved_logits).abs().amax(1)
            allowed = rtol * (saved_logits.amax(1) - saved_logits.amin(1)).clamp(min=1)
            if bool((gap > allowed).any()):
                i = int((gap > allowed).nonzero()[0])
                return (f"its logits on the stored sources differ from the saved ones (source {i}: by "
                        f"{float(gap[i]):.3g}, more than rtol = {rtol:g} of their range allows, {float(allowed[i]):.3g})")
        p0 = logits.softmax(1).gather(1, self.labels[:, None])[:, 0]
        gap = float((p0 - self.initial_confidence).abs().max())
        if gap > atol:
            return f"its source-class confidence on the stored sources differs by up to {gap:.3g} (> {atol})"
        return None

    def _cache_problem(self, atol: float) -> str | None:
        """Whether the stored probabilities and gradient are what they cache: the model's
        at the stored images, recomputed by one forward-backward pass; None if they are.

        Probabilities must agree within ``atol``. The gradient J^T (p - e_y) shrinks with
        the probability off the source class, m = 1 - p_y: probabilities known to ``atol``
        move it by about atol / m of its size, and rounding (bf16, another device) by less
        than its size. So each sample's stored gradient must lie within (1 + atol / m) times
        the recomputed gradient's norm of it (within its norm where m = 0, where that norm
        is zero): a scaled, sign-flipped or foreign gradient is refused.
        """
        probs, gradient = self._forward_backward(self._x)
        gap = float((probs - self._probs).abs().max())
        if gap > atol:
            return f"its probs are not the model's probabilities at its images (they differ by up to {gap:.3g} > {atol})"
        off_source = probs.scatter(1, self.labels[:, None], 0).sum(1).double()  # 1 - p_y without cancellation
        size = gradient.flatten(1).double().norm(dim=1)
        allowed = torch.where(off_source > 0, size * (1 + atol / off_source), size)
        miss = (self._gradient - gradient).flatten(1).double().norm(dim=1)
        if bool((miss > allowed).any()):
            i = int((miss > allowed).nonzero()[0])
            return (f"its gradient is not the model's gradient at its images (sample {i}: it is {float(miss[i]):.3g} "
                    f"away, more than the {float(allowed[i]):.3g} that its norm {float(size[i]):.3g} and atol allow)")
        return None


def traverse(model, sources: torch.Tensor, labels, targets: torch.Tensor, config: LSTConfig | None = None,
             target_labels=None, progress: bool = False, execution: Execution | None = None) -> LSTResult:
    """Run LST for ``config.iterations`` iterations and return the blind spots."""
    return Traversal(model, sources, labels, targets, config, target_labels, execution).run(progress).result()
