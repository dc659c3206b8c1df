"""The state behind the live explorer, without any widgets.

:class:`Explorer` holds a model, an image source and its catalogue of images, the
chosen source and targets A and B, the hyperparameters, a stepwise
:class:`~blindspots_nb.lst.Traversal` from the source towards both targets (one batch)
and the live triangle (source, A, B) between its current points. It steps in the
foreground or in a background thread (:mod:`.background`), exports what it reached, and tells
its listeners (see :meth:`Explorer.on_change`) whenever its state changes, so that
a view (:class:`blindspots_nb.explorer.view.LSTExplorer`) can redraw. Code and tests
drive it directly. Every change of its state goes through one lock (the background run
shares it); what needs none lives beside it: the catalogue of images and the choice
among them (:mod:`.catalogue`), the snapshot of one moment and the map at the current
point (:mod:`.snapshot`), the triangle of the current points (:mod:`.triangle`) and the
export's files (:mod:`.export`).
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Callable

import torch

from ..tools import provenance
from ..data import sources
from ..execution import Execution
from ..lst import LSTConfig, Traversal
from ..models import module_device
from .background import BackgroundLoop
from .catalogue import OFFERED_SOURCES, Catalogue, LoadedModels, named_source, read_upload
from .export import export_folder, export_identity, write_export
from .snapshot import MapAtPoint, Snapshot, take_snapshot
from .triangle import (RedrawThrottle, Triangle, TrianglePoint, checked_divisions, current_point,
                       current_triangle, has_shape)

OVERLAY_METHODS = ("saliency", "occlusion")  # the maps a view lays over the current point: gradient, black box


class Explorer:
    """Level Set Traversal from a chosen source towards two target images, step by step, and
    the source-class confidence over the triangle (source, blind spot A, blind spot B), live.

    ``model``: a registry name (see ``models.list_models``; loaded once, on ``device``,
    None: CUDA when available) or a classifier taking images in [0, 1] with
    ``class_names``, ``input_size`` and ``info``. ``image_source``: an ImageSource or its spelling
    (see :mod:`blindspots_nb.data.sources`; None: the model's default) or an open dataset.
    ``source_name``/``target``/``target_b``: image names (default: see :meth:`.catalogue.Catalogue.choose`);
    one batched traversal walks from the source towards target A (``target``) and target B.
    ``config``: the hyperparameters (default: the paper's, recording every iteration for the
    curves). ``iterations_per_click``: what ``step()`` runs by default, and how often a
    ``run()`` tells its listeners. ``execution``: how the model runs (precision, compile,
    layout; default: float32 eager, channels-last).

    The live triangle (:meth:`triangle`, kept in ``live_triangle``) is computed anew after
    each step and, during a run, whenever ``throttle`` (a :class:`.triangle.RedrawThrottle`)
    says so, while ``live`` is True; listeners hear 'triangle' then. ``divisions``: its
    grid's divisions per edge (10: 66 points).

    Choosing another model, image source, source, target or config starts the
    traversal anew; a change of ``config.iterations`` alone only moves where ``run()``
    stops. A model or image source that fails to load changes nothing and raises.
    """

    def __init__(self, model="efficientnet_lite0", image_source=None, source_name: str | None = None,
                 target: str | None = None, config: LSTConfig | None = None, iterations_per_click: int = 10,
                 device=None, execution: Execution | None = None, target_b: str | None = None, live: bool = True,
                 divisions: int = 10, throttle: RedrawThrottle | None = None):
        self.execution = execution or Execution()  # how the model runs (precision, compile, layout)
        self.iterations_per_click = iterations_per_click
        self.error: Exception | None = None  # what stopped the last run(), if anything did
        self.image_sources: dict[str, object] = {str(source): source for source in OFFERED_SOURCES}
        self._catalogue: Catalogue | None = None  # the images to choose from, the model's and the uploads
        self.source_name = self.target = self.target_b = None  # the chosen images' names (str), set by _switch
        self.live = live
        self.throttle = throttle or RedrawThrottle()
        self.live_triangle: Triangle | None = None  # the last one computed, what a view draws
        self._divisions = checked_divisions(divisions)
        self.traversal: Traversal | None = None
        self._config = config or LSTConfig(record_every=1)
        self._models = LoadedModels(device)
        self._uploads: dict[str, object] = {}  # catalogue name -> PIL image, preprocessed anew per model
        self._listeners: list[Callable[[str, str], None]] = []
        self._lock = threading.RLock()
        self._saliency = MapAtPoint()  # the last map, kept while the point stays
        self._loop = BackgroundLoop("lst-explorer")  # what run() steps in
        model = self._models.get(model)
        self._switch(model, sources.default_source(model) if image_source is None else image_source,
                     source_name, target, target_b)

    # -- listeners -----------------------------------------------------------------
    def on_change(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, message)`` on each change, from whichever thread made it.
        Events: 'restart' (a new traversal, maybe a new model or catalogue, with its
        ``live_triangle`` already computed while live; 'triangle' follows), 'progress' (it
        stepped), 'triangle' (a new ``live_triangle``), 'running' (a run started or ended),
        'warning' and 'error' (``message`` says what; 'error': a run stopped by an exception,
        kept in ``error``)."""
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
        """The name of the current image source: its spelling, or ``catalogue.GIVEN_IMAGES``."""
        return self._image_source

    @property
    def catalog(self) -> dict[str, torch.Tensor]:
        """Name -> image of the catalogue: what the source and targets are chosen from."""
        return self._catalogue.images

    @property
    def config(self) -> LSTConfig:
        """The hyperparameters of the current traversal."""
        return self._config

    @property
    def running(self) -> bool:
        """Whether a ``run()`` is stepping (False already while it tells its listeners it ended)."""
        return self._loop.running

    def set_model(self, model) -> None:
        """Explore with ``model`` (a registry name or a classifier) from now on. The image
        source stays, except that the old model's default source gives way to the new
        model's (glyphs for FONTS models, photos for the others)."""
        previous = self._model
        model = self._models.get(model)
        image_source = self.image_sources[self._image_source]
        if image_source == sources.default_source(previous):
            image_source = sources.default_source(model)
        self._switch(model, image_source)

    def set_image_source(self, image_source) -> None:
        """Take images from ``image_source`` (a spelling, a name in ``image_sources`` or a dataset)."""
        self._switch(self._model, image_source)

    def choose(self, source_name: str | None = None, target: str | None = None, target_b: str | None = None) -> None:
        """Choose the source and the targets A and B by name (None: keep the current one)."""
        chosen = self._catalogue.choose(self._model, (source_name, target, target_b), self._chosen())
        if chosen != self._chosen():
            self._restart(chosen, self.config)

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
        self._restart(self._chosen(), config)

    @property
    def divisions(self) -> int:
        """Divisions per edge of the live triangle's grid: (divisions + 1)(divisions + 2) / 2 points."""
        return self._divisions

    @divisions.setter
    def divisions(self, divisions: int) -> None:
        self._divisions = checked_divisions(divisions)

    def add_upload(self, name: str, content: bytes) -> str:
        """Add the image file ``content`` to the catalogue and make it target A; returns its
        catalogue name, or raises ValueError if it is no usable image (:func:`.catalogue.read_upload`)."""
        key, picture, image = read_upload(name, content, self._model)
        self.pause()
        with self._lock:
            self._uploads[key] = picture
            self._catalogue = self._catalogue.with_image(key, image)
        self._restart((self.source_name, key, self.target_b), self.config)
        return key

    def _chosen(self) -> tuple[str | None, str | None, str | None]:
        """The names of the current source and targets A and B."""
        return self.source_name, self.target, self.target_b

    def _switch(self, model, image_source, source_name: str | None = None, target: str | None = None,
                target_b: str | None = None) -> None:
        """Use ``model`` and ``image_source`` and start anew; everything is loaded before
        anything changes, so a failure leaves the explorer as it was."""
        self.pause()
        name, image_source = named_source(image_source, self.image_sources)
        catalogue = Catalogue.load(model, image_source, self._uploads)
        chosen = catalogue.choose(model, (source_name, target, target_b), self._chosen())
        traversal = catalogue.traversal(model, chosen, self._config, self.execution)
        with self._lock:
            self._model, self._image_source, self._catalogue = model, name, catalogue
            self.image_sources[name] = image_source
        self._adopt(traversal, chosen)

    # -- the traversal -------------------------------------------------------------
    def _restart(self, chosen: tuple[str, str, str], config: LSTConfig) -> None:
        self.pause()
        self._adopt(self._catalogue.traversal(self._model, chosen, config, self.execution), chosen)

    def _adopt(self, traversal: Traversal, chosen: tuple[str, str, str]) -> None:
        source_name, target, target_b = chosen
        with self._lock:
            previous = self.traversal  # the same images for the same model (a reset, new hyperparameters): said
            same_choice = (previous is not None and previous.model is traversal.model  # once is enough
                           and torch.equal(previous.sources, traversal.sources)
                           and torch.equal(previous.targets, traversal.targets))
            self.source_name, self.target, self.target_b, self.traversal = source_name, target, target_b, traversal
            self.error, self.live_triangle, self._config = None, None, traversal.config
            if self.live:  # the new traversal comes with its triangle: a view draws it once, at 'restart'
                self.live_triangle = self.throttle.timed(self._triangle_if_any)
        self._notify("restart")
        predictions = [int(traversal.labels[0]), *traversal.target_labels.tolist()]
        for message in self._catalogue.warnings(chosen, predictions, again=same_choice):
            self._notify("warning", message)
        if self.live_triangle is not None:
            self._notify("triangle")

    def reset(self) -> "Explorer":
        """Start the traversal anew from the current choices."""
        self._restart(self._chosen(), self.config)
        return self

    def step(self, n: int | None = None) -> "Explorer":
        """Run ``n`` more iterations (default: ``iterations_per_click``)."""
        if self._loop.running:
            raise RuntimeError("a run is going on; pause it first")
        with self._lock:
            self.traversal.step(int(n or self.iterations_per_click))
        self._notify("progress")
        if self.live:
            self.redraw_triangle()
        return self

    def run(self) -> "Explorer":
        """Step on in a background thread until ``config.iterations``, telling the
        listeners every ``iterations_per_click`` iterations; ``pause()`` stops it."""
        if self._loop.running:
            return self
        if self.traversal.iteration >= self.config.iterations:
            raise RuntimeError(f"already at iteration {self.traversal.iteration}, where the run stops; "
                               "raise the iteration to run until, or reset")
        self.error = None
        self.throttle.start()
        self._loop.start(self._run_step, lambda: self._notify("running"), self._run_stopped)
        return self

    def _run_step(self) -> bool:
        """One iteration of a run; False where the run ends."""
        with self._lock:
            traversal = self.traversal
            if traversal.iteration >= traversal.config.iterations:
                return False
            traversal.step(1)
        if traversal.iteration % self.iterations_per_click == 0:
            self._notify("progress")
        if self.live and self.throttle.due():
            self.redraw_triangle()
        return True

    def _run_stopped(self, error: Exception) -> None:
        self.error = error
        self._notify("error", f"Run stopped: {type(error).__name__}: {error}")

    def pause(self) -> "Explorer":
        """Stop a running ``run()`` after its current iteration."""
        self._loop.stop()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running ``run()`` ends; False if it still runs after ``timeout`` seconds."""
        return self._loop.wait(timeout)

    # -- the triangle --------------------------------------------------------------
    def triangle(self, divisions: int | None = None) -> Triangle:
        """Source-class confidence over the triangle (source, current point towards A, current
        point towards B) on a grid of ``divisions`` per edge (default: ``divisions``; at most
        :data:`.triangle.MAX_DIVISIONS`), with its true shape and Table-2 statistics
        (:func:`.triangle.compute_triangle`)."""
        divisions = checked_divisions(self._divisions if divisions is None else divisions)
        with self._lock:
            return current_triangle(self._model, self.traversal, divisions, self.execution)

    def image_at(self, a: float, b: float, triangle: Triangle | None = None) -> TrianglePoint:
        """The image at source + a (A - source) + b (B - source) of the current triangle (or of
        ``triangle``, e.g. the one a view shows), its source-class confidence and the model's
        class there; a, b >= 0 and a + b <= 1."""
        with self._lock:
            return current_point(self._model, self.traversal, a, b, self.execution, triangle)

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
            return self.triangle() if has_shape(self.traversal) else None

    # -- what it reached -----------------------------------------------------------
    def saliency(self, method: str = "saliency") -> torch.Tensor:
        """Where the model looks at the current point (towards A) for the source class: its map by
        ``method`` (:func:`blindspots_nb.analysis.saliency.attribution_maps`; ``"saliency"``: Captum's
        Saliency, the gradient; ``"occlusion"``: Captum's Occlusion, the black box), (H, W) on the
        CPU, >= 0, maximum 1. Kept until the traversal moves on, so a redraw costs nothing."""
        with self._lock:
            return self._saliency(self._model, self.traversal, method)

    def snapshot(self, saliency: bool | str = False) -> Snapshot:
        """The current point and what the model says of it, consistent even while running;
        ``saliency``: with the current point's map by that method (True: ``"saliency"``; see
        :meth:`saliency`)."""
        method = "saliency" if saliency is True else saliency or None
        with self._lock:
            names = self._chosen()
            return take_snapshot(self.traversal, self._model.class_names, names,
                                 tuple(self._catalogue.label_name(name) for name in names), self._loop.running,
                                 self.saliency(method) if method else None, method)

    def caption(self) -> str:
        """What produces the traversal: model, weights, hyperparameters, device, version."""
        caption = provenance.caption(self._model, self.config, module_device(self._model))
        return caption if self.execution == Execution() else f"{caption} | execution {self.execution}"

    def record(self) -> dict:
        """A JSON-serialisable record of the current point and what produced it."""
        with self._lock:  # the snapshot and the image source of one moment
            snap = self.snapshot()
            return provenance.record(self._model, snap.result.config, module_device(self._model),
                                     image_source=self._image_source, **snap.summary(),
                                     execution=self.execution.to_dict())

    def export(self, out_dir) -> dict[str, Path]:
        """Write the current points towards A and B (PNG), the whole traversal (.pt, resumable
        with ``Traversal.load``), the triangle's grid (CSV) and the record (JSON) to
        ``out_dir`` under a name of their own (:func:`.export.write_export`); returns the
        paths (no triangle while a current point is still the source)."""
        out_dir = export_folder(out_dir)
        with self._lock:  # all of the same iteration, even while running
            identity = export_identity(self._model, self.traversal, self._image_source, self._chosen(),
                                       self._divisions, self.execution)
            return write_export(out_dir, self.record(), identity, self.traversal, self._triangle_if_any())

