"""The live LST explorer of ``notebooks/01_explore_lst.ipynb``.

:class:`LSTExplorer` holds a model, a source and a target image and a stepwise
:class:`~blindspots_nb.lst.Traversal`; ipywidgets drive it (Step, Run, Pause,
Reset, Export) and show the source, the target, the current point, their difference
and a plotly ``FigureWidget`` of the confidence curves, updated in place. All logic
is in plain methods (``step``, ``run``, ``pause``, ``reset``, ``export``, ...), so
it can be driven and checked without a browser.
"""

from __future__ import annotations

import dataclasses
import html
import io
import json
import re
import threading
from pathlib import Path

import ipywidgets as W
import plotly.graph_objects as go
import torch

from . import provenance
from .gallery import GLYPHS, PHOTOS, as_collection, collection_images, default_collection
from .lst import LSTConfig, Traversal
from .paths import predict
from .plots import confidence_figure, difference_image, image_to_png, update_confidence_figure

UPLOAD_PREFIX = "upload: "
PANEL = 176  # pixels of each image panel


def _device_of(model) -> torch.device:
    tensor = next(iter(model.parameters()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


class LSTExplorer:
    """Step through Level Set Traversal from a source towards a target image, live.

    ``model``: a registry name (see ``models.list_models``) or a classifier taking
    images in [0, 1] with ``class_names``, ``input_size`` and ``info``;
    ``images``: None (the model's default collection), a collection of
    :mod:`blindspots_nb.gallery` ('imagenet: ROOT', 'cifar10: ROOT', ...), a folder
    path, or ``(images (N, C, H, W), names)``; ``source``/``target``: image names (default:
    the first image, and the first of another class as the model sees it);
    ``models``: the names offered in the model menu; ``device``: None picks CUDA
    when available. Display the explorer as the last expression of a cell.
    """

    def __init__(self, model="efficientnet_lite0", source: str | None = None, target: str | None = None,
                 images=None, step_size: float = 1e-2, delta: float = 0.2, eps: float = 2e-3,
                 iterations_per_click: int = 10, iterations: int = 400, init_noise: float = 4 / 255,
                 seed: int = 0, output_dir="results/explorer", device=None, models=None):
        self.device = device
        self._models: dict[str, torch.nn.Module] = {}
        self._uploads: dict[str, object] = {}  # name -> PIL image, re-preprocessed when the model changes
        self._lock = threading.RLock()
        self._worker: threading.Thread | None = None
        self._running = False
        self._stop = threading.Event()
        self._quiet = False  # set while the explorer changes its own widgets
        self.traversal: Traversal | None = None

        self.model = self._load(model)
        model_name = self.model.info.get("name", type(self.model).__name__)
        if models is None:
            from .models import list_models
            models = list_models()
        options = [model_name] + [m for m in models if m != model_name]
        if isinstance(images, tuple):
            self._given, collections, collection = images, ["given images"], "given images"
        else:
            self._given, collections = None, [PHOTOS, GLYPHS]
            collection = as_collection(images) if images is not None else default_collection(self.model)
            collections += [collection] if collection not in collections else []
        style = {"description_width": "initial"}
        self.model_menu = W.Dropdown(options=options, value=model_name, description="model", style=style)
        self.collection_menu = W.Dropdown(options=collections, value=collection, description="images", style=style)
        self.source_menu = W.Dropdown(description="source", style=style)
        self.target_menu = W.Dropdown(description="target", style=style)
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        # Text boxes, not sliders: a slider's front end snaps values to its steps and sends them
        # back, which would silently change the hyperparameters (and restart the traversal).
        number = {"style": style, "layout": W.Layout(width="200px")}
        self.step_size = W.BoundedFloatText(value=step_size, min=0, max=10, step=1e-3, description="step size \u03b7",
                                            **number)
        self.delta = W.BoundedFloatText(value=delta, min=0, max=1, step=0.01, description="\u03b4", **number)
        self.eps = W.BoundedFloatText(value=eps, min=0, max=1, step=1e-3, description="\u03b5", **number)
        self.per_click = W.IntSlider(value=iterations_per_click, min=1, max=200, description="iterations per click",
                                     style=style)
        self.iterations = W.BoundedIntText(value=iterations, min=1, max=100000, description="Run until iteration",
                                           style=style, layout=W.Layout(width="220px"))
        self.init_noise, self.seed = init_noise, seed
        self.step_button = W.Button(description="Step", icon="step-forward", button_style="primary")
        self.run_button = W.Button(description="Run", icon="play", button_style="success")
        self.pause_button = W.Button(description="Pause", icon="pause", button_style="warning", disabled=True)
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.export_button = W.Button(description="Export", icon="download")
        self.output_dir = W.Text(value=str(output_dir), description="export to", style=style)
        self.panels = {name: W.Image(format="png", width=PANEL, height=PANEL)
                       for name in ("source", "target", "current", "difference")}
        self.panel_labels = {name: W.HTML() for name in self.panels}
        self.status = W.HTML()
        self.message = W.HTML()
        self.caption_line = W.HTML()
        self.figure = None

        self._load_collection()
        self._choose(source, target)
        self.reset()
        self.figure = go.FigureWidget(self.snapshot_figure())
        self._wire()
        self.ui = self._layout()
        self._refresh()

    # -- construction --------------------------------------------------------------
    def _load(self, model):
        if not isinstance(model, str):
            return model
        if model not in self._models:
            from .models import load_model
            self._models[model] = load_model(model, device=self.device)
        return self._models[model]

    def _load_collection(self):
        """Fill the image catalog for the current model and collection, uploads included."""
        from .data import preprocess_for

        if self._given is None:
            images, names = collection_images(self.collection_menu.value, self.model)
        else:
            images, names = self._given
            if tuple(images.shape[1:]) != tuple(self.model.input_size):
                raise ValueError(f"the given images are {tuple(images.shape[1:])}, the model expects "
                                 f"{tuple(self.model.input_size)}")
        self.catalog = dict(zip(names, images))
        self._collection = self.collection_menu.value
        prep = preprocess_for(self.model)
        for name, picture in self._uploads.items():
            self.catalog[name] = prep(picture)
        self._offer_catalog()

    def _offer_catalog(self):
        """Offer the catalog in the source and target menus, keeping choices still in it."""
        self._quiet = True
        try:
            for menu in (self.source_menu, self.target_menu):
                value = menu.value
                menu.options = list(self.catalog)
                menu.value = value if value in self.catalog else None
        finally:
            self._quiet = False

    def _choose(self, source: str | None, target: str | None):
        """Set the source and target menus; by default the first image, and the first
        image of another class than the source's (in the model's eyes) as target."""
        names = list(self.catalog)
        for name in (source, target):
            if name is not None and name not in self.catalog:
                raise ValueError(f"no image {name!r}; choose one of {names}")
        source = source or names[0]
        if target is None:
            labels, _ = predict(self.model, torch.stack(list(self.catalog.values())).to(_device_of(self.model)))
            others = [n for n, label in zip(names, labels) if label != labels[names.index(source)]]
            target = others[0] if others else names[min(1, len(names) - 1)]
        self._set_quietly(self.source_menu, source)
        self._set_quietly(self.target_menu, target)

    def _wire(self):
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.pause_button.on_click(lambda _: self.pause())
        self.reset_button.on_click(lambda _: self.reset())
        self.export_button.on_click(lambda _: self.export())
        self.model_menu.observe(self._on_model, names="value")
        self.collection_menu.observe(self._on_collection, names="value")
        for widget in (self.source_menu, self.target_menu, self.step_size, self.delta, self.eps, self.iterations):
            widget.observe(self._on_setting, names="value")
        self.upload.observe(self._on_upload, names="value")

    def _layout(self):
        def panel(name):
            return W.VBox([self.panel_labels[name], self.panels[name]], layout=W.Layout(width=f"{PANEL + 16}px"))
        return W.VBox([
            W.HBox([self.model_menu, self.collection_menu, self.upload]),
            W.HBox([self.source_menu, self.target_menu]),
            W.HBox([self.step_size, self.delta, self.eps]),
            W.HBox([self.per_click, self.iterations]),
            W.HBox([self.step_button, self.run_button, self.pause_button, self.reset_button, self.export_button,
                    self.output_dir]),
            self.message,
            W.HBox([panel(name) for name in self.panels]),
            self.status,
            self.figure,
            self.caption_line,
        ])

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # -- the traversal -------------------------------------------------------------
    @property
    def config(self) -> LSTConfig:
        """The hyperparameters the widgets set."""
        return LSTConfig(step_size=float(self.step_size.value), iterations=int(self.iterations.value),
                         delta=float(self.delta.value), eps=float(self.eps.value), init_noise=self.init_noise,
                         record_every=1, seed=self.seed)

    @property
    def running(self) -> bool:
        """Whether a ``run()`` is stepping (False already during its last view update)."""
        return self._running

    def reset(self):
        """Start the traversal anew from the chosen source, model and hyperparameters."""
        self.pause()
        with self._lock:
            device = _device_of(self.model)
            self._source_image = self.catalog[self.source_menu.value]
            self._target_image = self.catalog[self.target_menu.value]
            source, target = self._source_image[None].to(device), self._target_image[None].to(device)
            with torch.no_grad():
                label = self.model(source).argmax(1)
            self.traversal = Traversal(self.model, source, label, target, self.config)
        if self.source_menu.value == self.target_menu.value:
            self._say("Source and target are the same image: the traversal has nowhere to go.", "warning")
        if self.figure is not None:
            self.figure.update_layout(title=self.snapshot_figure().layout.title)
            self._refresh()
        return self

    def step(self, n: int | None = None):
        """Run ``n`` more iterations (default: the iterations-per-click slider)."""
        if self.running:
            self._say("Running: press Pause before stepping.", "warning")
            return self
        with self._lock:
            self.traversal.step(int(n or self.per_click.value))
        self._refresh()
        return self

    def run(self):
        """Step on in a background thread until 'Run until iteration', refreshing the
        view every 'iterations per click'; ``pause()`` stops it."""
        if self.running:
            return self
        if self.traversal.iteration >= self.iterations.value:
            self._say(f"Already at iteration {self.traversal.iteration}; raise 'Run until iteration' or Reset.",
                      "warning")
            return self
        self._stop.clear()
        self._worker = threading.Thread(target=self._run_loop, name="lst-explorer", daemon=True)
        self._set_running(True)
        self._worker.start()
        return self

    def _run_loop(self):
        try:
            while not self._stop.is_set() and self.traversal.iteration < self.iterations.value:
                with self._lock:
                    self.traversal.step(1)
                if self.traversal.iteration % self.per_click.value == 0:
                    self._refresh()
        except Exception as error:  # shown in the widget: a thread's traceback would go unseen
            self._say(f"Run stopped: {type(error).__name__}: {error}", "error")
        finally:
            self._set_running(False)
            self._refresh()

    def pause(self):
        """Stop a running ``run()`` after its current iteration."""
        self._stop.set()
        self.wait()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a running ``run()`` ends; False if it is still running after ``timeout``."""
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)
        return worker is None or not worker.is_alive()

    def _set_running(self, running: bool):
        self._running = running
        for button in (self.step_button, self.run_button, self.reset_button):
            button.disabled = running
        self.pause_button.disabled = not running

    # -- what produced it -----------------------------------------------------------
    def record(self) -> dict:
        """JSON-serialisable record of the current point and what produced it."""
        t = self.traversal
        names = self.model.class_names
        distance = float((t.targets - t.images).flatten(1).norm(dim=1)[0])
        return provenance.record(
            self.model, t.config, _device_of(self.model),
            source=self.source_menu.value, target=self.target_menu.value,
            image_collection=self.collection_menu.value,
            source_class=names[int(t.labels[0])], target_class=names[int(t.target_labels[0])],
            iteration=t.iteration, accepted_steps=int(t.history.accepted_total[-1][0]),
            initial_confidence=float(t.initial_confidence[0]), source_class_confidence=float(t.confidence[0]),
            target_class_confidence=float(t.target_confidence[0]), distance_l2=distance,
            rmse_to_target=distance / t.images[0].numel() ** 0.5)

    def export(self, directory=None) -> dict[str, Path]:
        """Write the current blind spot (PNG), the full traversal state (.pt, resumable
        with ``Traversal.load``) and its record (JSON) to ``directory`` (default: the
        'export to' field). Returns the paths."""
        with self._lock:
            directory = Path(directory or self.output_dir.value)
            directory.mkdir(parents=True, exist_ok=True)
            record = self.record()
            stem = _file_stem(f"{record['model'].get('name')}_{record['source']}_to_{record['target']}"
                              f"_it{record['iteration']}")
            paths = {"image": directory / f"{stem}.png", "traversal": directory / f"{stem}.pt",
                     "record": directory / f"{stem}.json"}
            paths["image"].write_bytes(image_to_png(self.traversal.images[0]))
            self.traversal.save(paths["traversal"])
            record["files"] = {key: path.name for key, path in paths.items()}
            paths["record"].write_text(json.dumps(record, indent=2))
        self._say(f"Exported {html.escape(str(paths['image']))} with its record "
                  f"{html.escape(paths['record'].name)} and state {html.escape(paths['traversal'].name)}.", "ok")
        return paths

    # -- reacting to the widgets ----------------------------------------------------
    def _set_quietly(self, widget, value):
        """Change a widget without the explorer reacting to it."""
        self._quiet = True
        try:
            widget.value = value
        finally:
            self._quiet = False

    def _switch(self, model, collection: str):
        """Use ``model`` and the image ``collection`` from now on, starting anew; if
        that fails, go back to the previous ones and raise."""
        self.pause()
        previous = (self.model, self._collection)
        try:
            self.model = model
            self._set_quietly(self.collection_menu, collection)
            self._load_collection()
            self._choose(self.source_menu.value, self.target_menu.value)
            self.reset()
        except Exception:
            self.model = previous[0]
            self._set_quietly(self.collection_menu, previous[1])
            self._load_collection()
            self._choose(self.source_menu.value, self.target_menu.value)
            self.reset()
            raise

    def _on_model(self, change):
        if self._quiet:
            return
        try:  # e.g. weights that cannot be downloaded offline: say so, keep the current model
            model = self._load(change["new"])
            self._switch(model, self.collection_menu.value if self._given is not None else default_collection(model))
            self._say(f"Loaded model {html.escape(change['new'])}.", "ok")
        except Exception as error:
            self._set_quietly(self.model_menu, change["old"])
            self._say(f"Could not load {html.escape(str(change['new']))}: {html.escape(str(error))}", "error")

    def _on_collection(self, change):
        if self._quiet:
            return
        try:
            self._switch(self.model, change["new"])
        except Exception as error:
            self._say(f"Could not load {html.escape(str(change['new']))}: {html.escape(str(error))}", "error")

    def _on_setting(self, change):
        if self._quiet or change["new"] is None:
            return
        if change["owner"] is self.iterations:  # only where Run stops: the traversal goes on
            with self._lock:
                self.traversal.config = dataclasses.replace(self.traversal.config, iterations=int(change["new"]))
            return
        t = self.traversal
        unchanged = (self.config == t.config and self.catalog[self.source_menu.value] is self._source_image
                     and self.catalog[self.target_menu.value] is self._target_image)
        if not unchanged:  # a front end echoing the same value back must not restart the traversal
            self.reset()

    def _on_upload(self, change):
        for item in change["new"]:
            self.add_upload(item["name"], bytes(item["content"]))
        if change["new"]:
            self.upload.value = ()  # so that the same file can be uploaded again

    def add_upload(self, name: str, content: bytes) -> str | None:
        """Add an uploaded image file to the catalog and make it the target.

        Returns its catalog name, or None (with a visible message) if it is not an image.
        """
        from PIL import Image, UnidentifiedImageError

        from .data import preprocess_for

        try:
            picture = Image.open(io.BytesIO(content))
            picture.load()
            image = preprocess_for(self.model)(picture)
        except (UnidentifiedImageError, OSError, ValueError) as error:
            reason = "not a recognised image format" if isinstance(error, UnidentifiedImageError) else str(error)
            self._say(f"Could not read {html.escape(name)} as an image ({html.escape(reason)}); "
                      "upload a PNG, JPEG or other picture file.", "error")
            return None
        key = UPLOAD_PREFIX + name
        self._uploads[key] = picture
        self.catalog[key] = image
        self._offer_catalog()
        self._set_quietly(self.target_menu, key)
        self.reset()
        self._say(f"Added {html.escape(key)} as the target (it is also in the source menu).", "ok")
        return key

    # -- the view ------------------------------------------------------------------
    def _class_names(self) -> tuple[str, str]:
        names, t = self.model.class_names, self.traversal
        return names[int(t.labels[0])], names[int(t.target_labels[0])]

    def caption(self) -> str:
        """What produces the current traversal: model, weights, hyperparameters, device, version."""
        return provenance.caption(self.model, self.traversal.config, _device_of(self.model))

    def snapshot_figure(self) -> go.Figure:
        """The confidence curves so far as a plain plotly figure (to save as HTML)."""
        return confidence_figure(self.traversal.result(), class_names=self._class_names(), caption=self.caption(),
                                 title="Confidence along the traversal")

    def _refresh(self):
        """Show the traversal's current state in the images, curves and text."""
        with self._lock:
            t = self.traversal
            result = t.result()
            current, source, target = t.images[0].cpu(), t.sources[0].cpu(), t.targets[0].cpu()
            difference, scale = difference_image(current, source)
            source_class, target_class = self._class_names()
            rmse = float((target - current).norm()) / current.numel() ** 0.5
            accepted = int(t.history.accepted_total[-1][0])
        for name, image in (("source", source), ("target", target), ("current", current),
                            ("difference", difference)):
            self.panels[name].value = image_to_png(image, PANEL)
        p0 = float(t.initial_confidence[0])
        self.panel_labels["source"].value = (f"<b>source</b>: {html.escape(str(self.source_menu.value))}<br>"
                                             f"{html.escape(source_class[:28])} ({p0:.3f})")
        self.panel_labels["target"].value = (f"<b>target</b>: {html.escape(str(self.target_menu.value))}<br>"
                                             f"{html.escape(target_class[:28])}")
        self.panel_labels["current"].value = (f"<b>current</b>, iteration {t.iteration}<br>"
                                              f"{html.escape(source_class[:20])}: {float(t.confidence[0]):.3f}")
        self.panel_labels["difference"].value = (f"<b>current \u2212 source</b><br>gray = 0, "
                                                 f"extremes = \u00b1{scale:.3f}")
        update_confidence_figure(self.figure, result, class_names=(source_class, target_class))
        self.status.value = (
            f"<b>iteration {t.iteration}</b> \u00b7 {html.escape(source_class[:30])}: {float(t.confidence[0]):.4f} "
            f"(p0 {p0:.4f}, rejected below {p0 - t.config.delta:.4f}) \u00b7 {html.escape(target_class[:30])}: "
            f"{float(t.target_confidence[0]):.4f} \u00b7 RMSE to target {rmse:.4f} \u00b7 accepted steps "
            f"{accepted}/{t.iteration}" + (" \u00b7 <i>running</i>" if self.running else ""))
        self.caption_line.value = f"<small style='color:#555'>{html.escape(self.caption())}</small>"

    def _say(self, text: str, kind: str = "ok"):
        color = {"ok": "#2e7d32", "warning": "#b26a00", "error": "#c62828"}[kind]
        self.message.value = f"<span style='color:{color}'>{text}</span>"


def _file_stem(text: str) -> str:
    """A file name from free text: letters, digits, '-', '_' and '.' only."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:120]
