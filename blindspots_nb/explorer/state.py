"""The state behind the live explorer, without any widgets.

:class:`Explorer` holds a model, an image source and its catalogue of images, the
chosen source and targets A and B, the hyperparameters, a stepwise
:class:`~blindspots_nb.lst.Traversal` from the source towards both targets (one batch)
and the live triangle (source, A, B) between its current points. It steps in the
foreground or in a background thread, exports what it reached, and tells
its listeners (see :meth:`Explorer.on_change`) whenever its state changes, so that
a view (:class:`blindspots_nb.explorer.view.LSTExplorer`) can redraw. Code and tests
drive it directly. It is one class of about 500 lines because every change of its
state goes through one lock (the background run shares it), which splitting it would
spread over files; the triangle's computing (:mod:`.triangle`) and the export's files
(:mod:`.export`) live beside it.
"""

from __future__ import annotations

import dataclasses
import io
import threading
from pathlib import Path
from typing import Callable

import torch

from ..tools import provenance
from ..data import sources
from ..data import ImageReadError, open_image, preprocess_for
from ..execution import Execution
from ..tools.tensors import l2_distance, tensors_sha256, weights_sha256
from ..lst import History, LSTConfig, LSTResult, Traversal
from ..analysis.metrics import rmse
from ..models import load_model, module_device, predict
from ..analysis.saliency import attribution_maps
from .export import export_folder, write_export
from .triangle import (RedrawThrottle, Triangle, TrianglePoint, checked_divisions, compute_point,
                       compute_triangle)

UPLOAD_PREFIX = "upload: "
GIVEN_IMAGES = "given images"  # the name of an image source handed over as a dataset
OFFERED_SOURCES = ("photos", "fonts:test", "digits:test")  # image sources offered whatever the model
OVERLAY_METHODS = ("saliency", "occlusion")  # the maps a view lays over the current point: gradient, black box


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The explorer at one moment, copied under its lock: what a view draws and a record holds."""

    source: str  # image names
    target: str  # target A (the first of the two)
    source_class: str
    target_class: str
    source_image: torch.Tensor  # (C, H, W) on the CPU
    target_image: torch.Tensor
    current_image: torch.Tensor  # the current point towards target A
    iteration: int
    accepted_steps: int  # up to the last recorded iteration (every one with record_every=1)
    initial_confidence: float  # the source-class confidence of the clean source
    confidence: float  # source-class confidence at the current point
    target_confidence: float
    distance_l2: float  # from the current point to the target
    rmse_to_target: float
    result: LSTResult  # of both traversals (index 0: towards A, 1: towards B), its own copy of the history
    running: bool
    target_b: str  # the same of the traversal towards target B
    target_b_class: str
    target_b_image: torch.Tensor
    current_image_b: torch.Tensor
    accepted_steps_b: int
    confidence_b: float
    target_confidence_b: float
    distance_l2_b: float
    rmse_to_target_b: float
    saliency: torch.Tensor | None = None  # (H, W) of the current point, if asked for (Explorer.saliency)
    saliency_method: str | None = None  # the attribution method of that map
    source_label: str | None = None  # the image source's labels (class names), None where unknown
    target_label: str | None = None
    target_b_label: str | None = None


class Explorer:
    """Level Set Traversal from a chosen source towards two target images, step by step, and
    the source-class confidence over the triangle (source, blind spot A, blind spot B), live.

    ``model``: a registry name (see ``models.list_models``; loaded once, on ``device``,
    None: CUDA when available) or a classifier taking images in [0, 1] with
    ``class_names``, ``input_size`` and ``info``. ``image_source``: an image source spelling
    (see :mod:`blindspots_nb.data.sources`; None: the model's default) or an open dataset.
    ``source``/``target``/``target_b``: image names (default: the first image, the first image
    of another class than the source as the model predicts it, and the first of a third
    class); one batched traversal walks from the source towards target A (``target``) and
    target B. ``config``: the
    hyperparameters (default: the paper's, recording every iteration for the curves).
    ``iterations_per_click``: what ``step()`` runs by default, and how often a
    ``run()`` tells its listeners. ``execution``: how the model runs (precision,
    compile, layout; default: float32 eager, channels-last).

    The live triangle (:meth:`triangle`, kept in ``live_triangle``) is computed anew after
    each step and, during a run, whenever ``throttle`` (a :class:`.triangle.RedrawThrottle`)
    says so, while ``live`` is True; listeners hear 'triangle' then. ``divisions``: its
    grid's divisions per edge (10: 66 points).

    Choosing another model, image source, source, target or config starts the
    traversal anew; a change of ``config.iterations`` alone only moves where ``run()``
    stops. A model or image source that fails to load changes nothing and raises.
    """

    def __init__(self, model="efficientnet_lite0", image_source=None, source: str | None = None,
                 target: str | None = None, config: LSTConfig | None = None, iterations_per_click: int = 10,
                 device=None, execution: Execution | None = None, target_b: str | None = None, live: bool = True,
                 divisions: int = 10, throttle: RedrawThrottle | None = None):
        self.device = device
        self.execution = execution or Execution()  # how the model runs (precision, compile, layout)
        self.iterations_per_click = iterations_per_click
        self.error: Exception | None = None  # what stopped the last run(), if anything did
        self.image_sources: dict[str, object] = {spelling: spelling for spelling in OFFERED_SOURCES}
        self.catalog: dict[str, torch.Tensor] = {}
        self.labels: dict[str, int] = {}  # catalogue name -> its label among the model's classes (-1: unknown)
        self.source: str | None = None
        self.target: str | None = None
        self.target_b: str | None = None
        self.live = live
        self.throttle = throttle or RedrawThrottle()
        self.live_triangle: Triangle | None = None  # the last one computed, what a view draws
        self._divisions = checked_divisions(divisions)
        self.traversal: Traversal | None = None
        self._config = config or LSTConfig(record_every=1)
        self._models: dict[str, torch.nn.Module] = {}
        self._uploads: dict[str, object] = {}  # catalogue name -> PIL image, preprocessed anew per model
        self._listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.RLock()
        self._worker: threading.Thread | None = None
        self._saliency: tuple[Traversal, int, str, torch.Tensor] | None = None  # the last map, where, by what
        self._running = False
        self._stop = threading.Event()
        model = self._load(model)
        self._switch(model, sources.default_source(model) if image_source is None else image_source, source, target,
                     target_b)

    # -- listeners -----------------------------------------------------------------
    def on_change(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, message)`` on each change, from whichever thread made it.

        Events: 'restart' (a new traversal, maybe a new model or catalogue),
        'progress' (it stepped), 'triangle' (a new ``live_triangle``), 'running' (a run
        started or ended), 'warning' and
        'error' (``message`` says what; 'error' is a run stopped by an exception,
        kept in ``error``).
        """
        self._listeners.append(callback)

    def _notify(self, event: str, message: str = "") -> None:
        for callback in list(self._listeners):
            callback(event, message)

    # -- what is explored ----------------------------------------------------------
    @property
    def model(self):
        return self._model

    @property
    def model_name(self) -> str:
        return provenance.model_info(self._model)["name"]

    @property
    def image_source(self) -> str:
        """The name of the current image source: its spelling, or ``GIVEN_IMAGES``."""
        return self._image_source

    @property
    def config(self) -> LSTConfig:
        """The hyperparameters of the current traversal."""
        return self._config

    @property
    def running(self) -> bool:
        """Whether a ``run()`` is stepping (False already while it tells its listeners it ended)."""
        return self._running

    def set_model(self, model) -> None:
        """Explore with ``model`` (a registry name or a classifier) from now on.

        The image source stays, except that the old model's default source gives way to
        the new model's (glyphs for FONTS models, photos for the others).
        """
        previous = self._model
        model = self._load(model)
        image_source = self.image_sources[self._image_source]
        if self._image_source == sources.default_source(previous):
            image_source = sources.default_source(model)
        self._switch(model, image_source)

    def set_image_source(self, image_source) -> None:
        """Take images from ``image_source`` (a spelling, a name in ``image_sources`` or a dataset)."""
        self._switch(self._model, image_source)

    def choose(self, source: str | None = None, target: str | None = None, target_b: str | None = None) -> None:
        """Choose the source and the targets A and B by name (None: keep the current one)."""
        chosen = self._choice(self._model, self.catalog, self.labels, self.image_sources[self._image_source], source,
                              target, target_b)
        if chosen != (self.source, self.target, self.target_b):
            self._restart(*chosen, self.config)

    def set_config(self, config: LSTConfig | None = None, **changes) -> None:
        """Use ``config``, or the current hyperparameters with ``changes`` (e.g.
        ``set_config(step_size=0.02)``). A value out of its range raises LSTConfig's
        ValueError and changes nothing; a new config starts anew unless only
        ``iterations`` changed."""
        if config is not None and not isinstance(config, LSTConfig):
            raise TypeError(f"config must be an LSTConfig, got {type(config).__name__}")
        config = dataclasses.replace(config or self.config, **changes)  # checks every value again
        if config == self.config:
            return
        if config == dataclasses.replace(self.config, iterations=config.iterations):
            with self._lock:
                self._config = self.traversal.config = config
            return
        self._restart(self.source, self.target, self.target_b, config)

    @property
    def divisions(self) -> int:
        """Divisions per edge of the live triangle's grid: (divisions + 1)(divisions + 2) / 2 points."""
        return self._divisions

    @divisions.setter
    def divisions(self, divisions: int) -> None:
        self._divisions = checked_divisions(divisions)

    def add_upload(self, name: str, content: bytes) -> str:
        """Add the image file ``content`` to the catalogue and make it the target.

        Returns its catalogue name; raises ValueError if ``content`` is no usable image
        (not an image, a decompression bomb, pixel values of unknown scale, too large for
        the memory).
        """
        try:
            picture = open_image(io.BytesIO(content), name)
            image = preprocess_for(self._model)(picture)
        except MemoryError as error:
            raise ValueError(f"cannot use the upload {name!r}: it needs more memory than this machine has "
                             "to decode and resize; upload a smaller image") from error
        except (OSError, ValueError) as error:
            reason = error.reason if isinstance(error, ImageReadError) else str(error)
            raise ValueError(f"cannot use the upload {name!r}: {reason}") from error
        key = UPLOAD_PREFIX + name
        self.pause()
        with self._lock:
            self._uploads[key] = picture
            self.catalog[key] = image
        self._restart(self.source, key, self.target_b, self.config)
        return key

    def _load(self, model):
        """A model from a registry name, loaded once; a given model is kept under its name."""
        if not isinstance(model, str):
            self._models[provenance.model_info(model)["name"]] = model
            return model
        if model not in self._models:
            self._models[model] = load_model(model, device=self.device)
        return self._models[model]

    def _named_source(self, image_source) -> tuple[str, object]:
        """The name under which ``image_source`` is offered, and what opens it."""
        if not isinstance(image_source, (str, Path)):
            return GIVEN_IMAGES, image_source
        if str(image_source) in self.image_sources:
            return str(image_source), self.image_sources[str(image_source)]
        spelling = sources.canonical(str(image_source))
        return spelling, spelling

    def _catalog(self, model, image_source) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """Name -> image of ``image_source`` at ``model``'s input size, uploads included, and
        name -> its label among the model's classes (-1: unknown, as for uploads)."""
        found, names, labels = sources.labelled_images(image_source, model)
        catalog = dict(zip(names, found))
        preprocess = preprocess_for(model)
        catalog.update((key, preprocess(picture)) for key, picture in self._uploads.items())
        return catalog, dict(zip(names, labels.tolist()))

    def _choice(self, model, catalog, labels, image_source, source: str | None, target: str | None,
                target_b: str | None) -> tuple[str, str, str]:
        """Source and target names: those asked for, else the current ones while the
        catalogue holds them, else chosen by class as the notebooks and the demo choose
        them (:func:`~blindspots_nb.data.sources.choose_by_class`, in the image source's
        default order): a source the model classifies as its label, targets A and B of
        two other classes (by label where known, else by the model's prediction)."""
        for name in (source, target, target_b):
            if name is not None and name not in catalog:
                raise ValueError(f"no image {name!r}; choose one of {list(catalog)}")
        names = list(catalog)
        preferred = [name for name in sources.default_names(image_source, names, len(names)) if name in catalog]
        order = preferred + [name for name in names if name not in preferred]
        chosen = [source or (self.source if self.source in catalog else None),
                  target or (self.target if self.target in catalog else None),
                  target_b or (self.target_b if self.target_b in catalog else None)]
        if None in chosen:
            predictions = predict(model, torch.stack(list(catalog.values())))[0].tolist()
            known = [labels.get(name, -1) for name in names]
            classes = [label if label >= 0 else prediction for label, prediction in zip(known, predictions)]
            correct = [label < 0 or label == prediction for label, prediction in zip(known, predictions)]
            picked = sources.choose_by_class(classes, correct, [names.index(name) for name in order],
                                             [None if name is None else names.index(name) for name in chosen])
            chosen = [names[i] for i in picked]
        return tuple(chosen)

    def _switch(self, model, image_source, source: str | None = None, target: str | None = None,
                target_b: str | None = None) -> None:
        """Use ``model`` and ``image_source`` and start anew; everything is loaded before
        anything changes, so a failure leaves the explorer as it was."""
        self.pause()
        name, image_source = self._named_source(image_source)
        catalog, labels = self._catalog(model, image_source)
        chosen = self._choice(model, catalog, labels, image_source, source, target, target_b)
        traversal = self._traversal(model, catalog, *chosen, self._config)
        with self._lock:
            self._model, self._image_source, self.catalog, self.labels = model, name, catalog, labels
            self.image_sources[name] = image_source
        self._adopt(traversal, *chosen)

    # -- the traversal -------------------------------------------------------------
    def _traversal(self, model, catalog, source: str, target: str, target_b: str, config: LSTConfig) -> Traversal:
        """One batch of two traversals: the source towards target A, and towards target B."""
        device = module_device(model)
        start = torch.stack([catalog[source]] * 2).to(device)
        end = torch.stack([catalog[target], catalog[target_b]]).to(device)
        labels, _ = predict(model, start[:1])
        return Traversal(model, start, labels.expand(2), end, config, execution=self.execution)

    def _restart(self, source: str, target: str, target_b: str, config: LSTConfig) -> None:
        self.pause()
        self._adopt(self._traversal(self._model, self.catalog, source, target, target_b, config), source, target,
                    target_b)

    def _adopt(self, traversal: Traversal, source: str, target: str, target_b: str) -> None:
        with self._lock:
            previous = self.traversal  # the same images for the same model (a reset, new hyperparameters): said
            same_choice = (previous is not None and previous.model is traversal.model  # once is enough
                           and torch.equal(previous.sources, traversal.sources)
                           and torch.equal(previous.targets, traversal.targets))
            self.source, self.target, self.target_b, self.traversal = source, target, target_b, traversal
            self.error, self.live_triangle, self._config = None, None, traversal.config
        self._notify("restart")
        if source in (target, target_b):
            self._notify("warning", "Source and target are the same image: the traversal has nowhere to go.")
        labels = [self.labels.get(name, -1) for name in (source, target, target_b)]
        predictions = [int(traversal.labels[0]), *traversal.target_labels.tolist()]
        found = "; ".join(sources.label_warnings((source, target, target_b), labels, predictions,
                                                 self._model.class_names))
        if found and not same_choice and source not in (target, target_b):  # that, said above, says more
            self._notify("warning", found[0].upper() + found[1:] + ".")
        self._redraw_live()

    def reset(self) -> "Explorer":
        """Start the traversal anew from the current choices."""
        self._restart(self.source, self.target, self.target_b, self.config)
        return self

    def step(self, n: int | None = None) -> "Explorer":
        """Run ``n`` more iterations (default: ``iterations_per_click``)."""
        if self._running:
            raise RuntimeError("a run is going on; pause it first")
        with self._lock:
            self.traversal.step(int(n or self.iterations_per_click))
        self._notify("progress")
        self._redraw_live()
        return self

    def run(self) -> "Explorer":
        """Step on in a background thread until ``config.iterations``, telling the
        listeners every ``iterations_per_click`` iterations; ``pause()`` stops it."""
        if self._running:
            return self
        if self.traversal.iteration >= self.config.iterations:
            raise RuntimeError(f"already at iteration {self.traversal.iteration}, where the run stops; "
                               "raise the iteration to run until, or reset")
        self._stop.clear()
        self.error = None
        self.throttle.start()
        self._worker = threading.Thread(target=self._run_loop, name="lst-explorer", daemon=True)
        self._running = True
        self._notify("running")
        self._worker.start()
        return self

    def _run_loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    traversal = self.traversal
                    if traversal.iteration >= traversal.config.iterations:
                        break
                    traversal.step(1)
                if traversal.iteration % self.iterations_per_click == 0:
                    self._notify("progress")
                if self.live and self.throttle.due():
                    self._redraw_live()
        except Exception as error:  # a thread's traceback would go unseen: keep it and tell
            self.error = error
            self._notify("error", f"Run stopped: {type(error).__name__}: {error}")
        finally:
            self._running = False
            self._notify("running")

    def pause(self) -> "Explorer":
        """Stop a running ``run()`` after its current iteration."""
        self._stop.set()
        self.wait()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running ``run()`` ends; False if it still runs after ``timeout`` seconds."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    # -- the triangle --------------------------------------------------------------
    def triangle(self, divisions: int | None = None) -> Triangle:
        """Source-class confidence over the triangle (source, current point towards A, current
        point towards B) on a grid of ``divisions`` per edge (default: ``divisions``; at most
        :data:`.triangle.MAX_DIVISIONS`), with its true shape and Table-2 statistics
        (:func:`.triangle.compute_triangle`)."""
        divisions = checked_divisions(self._divisions if divisions is None else divisions)
        with self._lock:
            t = self.traversal
            return compute_triangle(self._model, t.sources[0], t.images[0], t.images[1], int(t.labels[0]), divisions,
                                    self.execution, t.iteration)

    def image_at(self, a: float, b: float, triangle: Triangle | None = None) -> TrianglePoint:
        """The image at source + a (A - source) + b (B - source) of the current triangle (or of
        ``triangle``, e.g. the one a view shows), its source-class confidence and the model's
        class there; a, b >= 0 and a + b <= 1."""
        with self._lock:
            t = self.traversal
            device = t.sources.device
            corners = [t.sources[0], t.images[0], t.images[1]] if triangle is None else \
                [image.to(device) for image in triangle.corners]
            return compute_point(self._model, *corners, int(t.labels[0]), a, b, self.execution)

    def redraw_triangle(self) -> Triangle | None:
        """Compute the live triangle now, live or not, and tell the listeners ('triangle'); what
        it and their drawing take is timed by ``throttle``. None, and nothing told, while a
        current point still coincides with the source (a triangle without a shape)."""
        return self.throttle.timed(self._new_triangle)

    def _new_triangle(self) -> Triangle | None:
        with self._lock:
            triangle = self._triangle_if_any()
            if triangle is None:
                return None
            self.live_triangle = triangle
        self._notify("triangle")
        return triangle

    def _triangle_if_any(self) -> Triangle | None:
        """The triangle now, or None while a current point is still the source (no shape)."""
        with self._lock:
            t = self.traversal
            return None if bool((t.images == t.sources).flatten(1).all(1).any()) else self.triangle()

    def _redraw_live(self) -> None:
        if self.live:
            self.redraw_triangle()

    # -- what it reached -----------------------------------------------------------
    def saliency(self, method: str = "saliency") -> torch.Tensor:
        """Where the model looks at the current point (towards A) for the source class: its map by
        ``method`` (:func:`blindspots_nb.analysis.saliency.attribution_maps`; ``"saliency"``: Captum's
        Saliency, the gradient; ``"occlusion"``: Captum's Occlusion, the black box), (H, W) on the
        CPU, >= 0, maximum 1. Kept until the traversal moves on, so a redraw costs nothing."""
        with self._lock:
            t = self.traversal
            if self._saliency is None or self._saliency[0] is not t or self._saliency[1:3] != (t.iteration, method):
                self._saliency = t, t.iteration, method, attribution_maps(self._model, t.images[:1], t.labels[:1],
                                                                          method)[0]
            return self._saliency[3]

    def snapshot(self, saliency: bool | str = False) -> Snapshot:
        """The current point and what the model says of it, consistent even while running;
        ``saliency``: with the current point's map by that method (True: ``"saliency"``; see
        :meth:`saliency`)."""
        method = "saliency" if saliency is True else saliency or None
        with self._lock:
            t = self.traversal
            result = dataclasses.replace(t.result(), history=History.from_state_dict(t.history.state_dict()))
            current, target = t.images.cpu(), t.targets.cpu()
            names = self._model.class_names
            distance, rmse_to_target = l2_distance(target, current), rmse(current, target)
            return Snapshot(
                source=self.source, target=self.target, source_class=names[int(t.labels[0])],
                target_class=names[int(t.target_labels[0])], source_image=t.sources[0].cpu(),
                target_image=target[0], current_image=current[0], iteration=t.iteration,
                accepted_steps=int(t.history.accepted_total[-1][0]),
                initial_confidence=float(t.initial_confidence[0]), confidence=float(t.confidence[0]),
                target_confidence=float(t.target_confidence[0]),
                distance_l2=float(distance[0]), rmse_to_target=float(rmse_to_target[0]), result=result,
                running=self._running, target_b=self.target_b, target_b_class=names[int(t.target_labels[1])],
                target_b_image=target[1], current_image_b=current[1],
                accepted_steps_b=int(t.history.accepted_total[-1][1]), confidence_b=float(t.confidence[1]),
                target_confidence_b=float(t.target_confidence[1]), distance_l2_b=float(distance[1]),
                rmse_to_target_b=float(rmse_to_target[1]), saliency=self.saliency(method) if method else None,
                saliency_method=method, **{f"{role}_label": self._label_name(name) for role, name in
                                           (("source", self.source), ("target", self.target),
                                            ("target_b", self.target_b))})

    def _label_name(self, name: str) -> str | None:
        """The class name of an image's label, None where it has none."""
        label = self.labels.get(name, -1)
        return self._model.class_names[label] if label >= 0 else None

    def caption(self) -> str:
        """What produces the traversal: model, weights, hyperparameters, device, version."""
        caption = provenance.caption(self._model, self.config, module_device(self._model))
        return caption if self.execution == Execution() else f"{caption} | execution {self.execution}"

    def record(self) -> dict:
        """A JSON-serialisable record of the current point and what produced it."""
        snap = self.snapshot()
        return provenance.record(
            self._model, snap.result.config, module_device(self._model), source=snap.source, target=snap.target,
            image_source=self._image_source, source_class=snap.source_class, target_class=snap.target_class,
            iteration=snap.iteration, accepted_steps=snap.accepted_steps,
            initial_confidence=snap.initial_confidence, confidence=snap.confidence,
            target_confidence=snap.target_confidence, distance_l2=snap.distance_l2,
            rmse_to_target=snap.rmse_to_target, target_b=snap.target_b, target_b_class=snap.target_b_class,
            accepted_steps_b=snap.accepted_steps_b, confidence_b=snap.confidence_b,
            target_confidence_b=snap.target_confidence_b, distance_l2_b=snap.distance_l2_b,
            rmse_to_target_b=snap.rmse_to_target_b, execution=self.execution.to_dict())

    def export(self, out_dir) -> dict[str, Path]:
        """Write the current points towards A and B (PNG), the whole traversal (.pt, resumable
        with ``Traversal.load``), the triangle's grid (CSV: weights, 2-D coordinates and
        confidence of each point) and the record (JSON, with the triangle's statistics and
        shape) to ``out_dir``; returns the paths (no triangle while a current point is
        still the source).

        A name holds the model, source, targets (each shortened to a bounded length) and
        the iteration, then 10 hex digits of the sha256 of :meth:`export_identity`, so
        exports of other models, weights, images, hyperparameters, execution options or
        iterations never share a name (:func:`.export.write_export`). Each file is written
        whole or not at all, the record last; exporting the same point again writes the
        same content over its files (only the record's ``created`` changes).
        """
        out_dir = export_folder(out_dir)
        with self._lock:  # all of the same iteration, even while running
            return write_export(out_dir, self.record(), self.export_identity(), self.traversal,
                                self._triangle_if_any())

    def export_identity(self) -> dict:
        """What makes the current points what they are: the model's name and weights (the
        sha256 of its parameters and buffers as loaded), the image source, the source and
        target names and pixels, the hyperparameters, the execution options, the device,
        the iteration and the triangle's divisions."""
        with self._lock:
            t, info = self.traversal, provenance.model_info(self._model)
            return {"model": info.get("name"), "weights": weights_sha256(self._model),
                    "image_source": self._image_source, "source": self.source, "target": self.target,
                    "target_b": self.target_b, "divisions": self._divisions,
                    "pixels": tensors_sha256({"sources": t.sources, "targets": t.targets}),
                    "config": dataclasses.asdict(t.config), "execution": self.execution.to_dict(),
                    "device": str(module_device(self._model)), "iteration": t.iteration}

