"""The traversal: :class:`Traversal`, a stepwise LST run that can be paused, saved and
resumed, and :func:`traverse`, a whole run at once.

Each iteration costs one forward and one backward pass: the forward pass at the
candidate point, kept with its graph, both decides acceptance and gives the
gradient for the next step (a rejected sample does not move, so its old gradient
stays valid).
"""

from __future__ import annotations

from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import __version__
from ..execution import Execution
from ..tools.atomic import write_atomically
from ..tools.tensors import check_images, class_indices, l2_distance, label_probability, module_device
from .config import LSTConfig
from .history import History, LSTResult
from .state import FORMAT, FORMAT_VERSION, cache_problem, model_problem, read_state, weights_sha256
from .step import as_execution, forward_backward, orthogonal_step, where_sample


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
        self.execution = as_execution(execution)
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
            self.initial_confidence = label_probability(logits.softmax(1), self.labels)
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
    def step(self, n: int = 1, progress: bool = False, on_iteration=None) -> "Traversal":
        """Run ``n`` more iterations (may be called again and again); ``on_iteration()``,
        if given, is called after each (a caller's progress bar: no wait for the device).

        Raises RuntimeError, naming the first iteration, once the model has given NaN
        or infinite logits (checked at recorded iterations and at the end).
        """
        for _ in tqdm(range(n), desc="LST", disable=not progress, leave=False):
            self._step()
            if on_iteration is not None:
                on_iteration()
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
        confidence = label_probability(probs, self.labels)
        accept = (self.initial_confidence - confidence) < cfg.delta
        self._x = where_sample(accept, candidate, x)
        self._gradient = where_sample(accept, candidate_gradient, gradient)
        self._probs = where_sample(accept, probs, self._probs)
        self._accepted = accept
        self._accepted_total = self._accepted_total + accept.long()
        self.iteration += 1
        self._note_nonfinite(probs)
        if cfg.record_every and self.iteration % cfg.record_every == 0:
            self._record()

    def run(self, progress: bool = False, on_iteration=None) -> "Traversal":
        """Step on until ``config.iterations`` iterations have run (``on_iteration``: see :meth:`step`)."""
        remaining = self.config.iterations - self.iteration
        if remaining > 0:
            self.step(remaining, progress=progress, on_iteration=on_iteration)
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
        return label_probability(self._probs, self.labels)

    @property
    def target_confidence(self) -> torch.Tensor:
        """Target-class confidence at the current points."""
        return label_probability(self._probs, self.target_labels)

    def result(self) -> LSTResult:
        return LSTResult(images=self._x, confidence=self.confidence,
                         initial_confidence=self.initial_confidence,
                         target_confidence=self.target_confidence, labels=self.labels,
                         target_labels=self.target_labels, history=self.history,
                         config=self.config, iterations=self.iteration)

    def state_dict(self) -> dict:
        """Everything needed to resume, as tensors and plain values (no model)."""
        return {
            "format": FORMAT, "format_version": FORMAT_VERSION, "package_version": __version__,
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
        :func:`~blindspots_nb.lst.state.read_state`), and a model other than the one the
        traversal ran with: its parameters and buffers must have the saved
        :func:`~blindspots_nb.lst.state.weights_sha256` (the model given, not a folded or
        compiled copy; a plain function has none), its logits on the clean sources must be
        the saved ones within ``rtol`` of their range, and its source-class confidence there
        the saved one within ``atol``. Files of format 1 hold neither sha256 nor logits: for
        them only the confidence is checked, which a model saturated on the sources hardly
        tells apart from another. Last, the stored probabilities and gradient must be the
        model's at the stored images (:func:`~blindspots_nb.lst.state.cache_problem`).
        """
        path = Path(path)
        state = read_state(path)
        if device is None:
            device = module_device(model)
        self = cls.__new__(cls)
        self.model = model
        if hasattr(model, "eval"):
            model.eval()
        self.config = LSTConfig(**state["config"])
        self.execution = as_execution(execution or Execution(**state.get("execution", {})))
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
        problem = model_problem(model, state, logits, self.labels, self.initial_confidence, atol, rtol)
        if problem:
            raise ValueError(f"the model does not match the saved traversal {path}: {problem}")
        self._source_logits = state["source_logits"].to(device) if "source_logits" in state else logits
        problem = cache_problem((self._probs, self._gradient), self._forward_backward(self._x), self.labels, atol)
        if problem:
            raise ValueError(f"{path} holds an inconsistent Traversal state: {problem}")
        return self


def traverse(model, sources: torch.Tensor, labels, targets: torch.Tensor, config: LSTConfig | None = None,
             target_labels=None, progress: bool = False, execution: Execution | None = None,
             on_iteration=None) -> LSTResult:
    """Run LST for ``config.iterations`` iterations and return the blind spots
    (``on_iteration()`` is called after each iteration)."""
    return Traversal(model, sources, labels, targets, config, target_labels, execution).run(
        progress, on_iteration).result()
