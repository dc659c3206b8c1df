"""The live LST explorer of ``notebooks/01_explore_lst.ipynb``: ipywidgets around an
:class:`~blindspots_nb.explorer.state.Explorer`.

:class:`LSTExplorer` offers menus for the model, the image source, the source and
the targets A and B, fields for the hyperparameters and the buttons Step, Run, Pause,
Reset and Export; it shows the source, the targets, the current points (the one towards
A with its map laid over it while the toggle 'saliency' is on, the gradient's or the occlusion's
as the menu 'map' says, as the figures
lay maps: :func:`blindspots_nb.plots.saliency_overlay`), the difference to the source, a
plotly ``FigureWidget`` of the confidence curves towards A and the live triangle
(:class:`.triangle_view.TrianglePanel`), redrawn in place whenever the explorer tells it
of a change (also from its background run). Once a Step, a Run or a restart is done, the
last state is drawn anew in new FigureWidgets (their layout's ``meta`` holds the iteration
they show): a frontend can lose an in-place update (a restyle message reaching a figure whose
view is not ready yet, on a busy machine), never the state a new widget is made with. All
logic lives in the explorer (``.state``); this module only shows it.
"""

from __future__ import annotations

import contextlib
import html

import ipywidgets as W
import plotly.graph_objects as go

from .state import OVERLAY_METHODS, Explorer
from .triangle_view import TrianglePanel
from ..tools import provenance
from ..lst import LSTConfig
from ..plots.widgets import FigureWidget
from ..plots import confidence_figure, difference_image, image_to_png, saliency_overlay, update_confidence_figure

PANEL = 176  # pixels of each image panel
MESSAGE_COLOURS = {"ok": "#2e7d32", "warning": "#b26a00", "error": "#c62828"}


class LSTExplorer:
    """Step through Level Set Traversal from a source towards two target images, live, with
    the confidence over the triangle they span.

    ``model``, ``image_source``, ``source_name``, ``target`` (A), ``target_b``, ``iterations_per_click``,
    ``device``, ``live`` and ``divisions``: as for
    :class:`~blindspots_nb.explorer.state.Explorer`; ``step_size``,
    ``delta``, ``eps``, ``iterations``, ``init_noise``, ``seed``: its
    :class:`~blindspots_nb.lst.LSTConfig` (with LSTConfig's defaults); ``execution``: how the model runs
    (:class:`~blindspots_nb.execution.Execution`); ``out_dir``: where Export writes;
    ``model_names``: the names offered in the model menu (None: the whole registry).
    Display the explorer as the last expression of a cell.
    """

    def __init__(self, model="efficientnet_lite0", source_name: str | None = None, target: str | None = None,
                 image_source=None, step_size: float = LSTConfig.step_size, delta: float = LSTConfig.delta,
                 eps: float = LSTConfig.eps, iterations_per_click: int = 10, iterations: int = LSTConfig.iterations,
                 init_noise: float = LSTConfig.init_noise, seed: int = LSTConfig.seed, out_dir="results/explorer",
                 device=None, model_names=None, execution=None, target_b: str | None = None, live: bool = True,
                 divisions: int = 10):
        config = LSTConfig(step_size=step_size, iterations=iterations, delta=delta, eps=eps, init_noise=init_noise,
                           record_every=1, seed=seed)
        self.state = Explorer(model, image_source, source_name, target, config, iterations_per_click, device, execution,
                              target_b=target_b, live=live, divisions=divisions)
        if model_names is None:
            from ..models import list_models
            model_names = list_models() + ([model] if isinstance(model, str) and model not in list_models() else [])
        self._quiet = False  # set while the view changes its own widgets
        style = {"description_width": "initial"}
        self.model_menu = W.Dropdown(options=[(name, name) for name in model_names], description="model", style=style)
        self.image_source_menu = W.Dropdown(description="images", style=style)
        self.source_menu = W.Dropdown(description="source", style=style)
        self.target_menu = W.Dropdown(description="target A", style=style)
        self.target_b_menu = W.Dropdown(description="target B", style=style)
        self.upload = W.FileUpload(accept="image/*", multiple=False, description="upload image")
        # Plain text boxes, not sliders or bounded boxes: those snap or clamp what is typed, silently
        # changing the hyperparameters; here every value reaches LSTConfig's check, and a bad one
        # gives a message and changes nothing.
        number = {"style": style, "layout": W.Layout(width="200px")}
        self.step_size = W.FloatText(step=1e-3, description="step size \u03b7", **number)
        self.delta = W.FloatText(step=0.01, description="\u03b4", **number)
        self.eps = W.FloatText(step=1e-3, description="\u03b5", **number)
        self.per_click = W.IntSlider(min=1, max=200, description="iterations per click", style=style)
        self.iterations = W.IntText(description="Run until iteration", style=style, layout=W.Layout(width="220px"))
        self.step_button = W.Button(description="Step", icon="step-forward", button_style="primary")
        self.run_button = W.Button(description="Run", icon="play", button_style="success")
        self.pause_button = W.Button(description="Pause", icon="pause", button_style="warning", disabled=True)
        self.reset_button = W.Button(description="Reset", icon="undo")
        self.export_button = W.Button(description="Export", icon="download")
        self.saliency_toggle = W.ToggleButton(value=False, description="saliency", icon="eye",
                                              tooltip="lay the map of the source class over the current point")
        self.saliency_method = W.Dropdown(options=list(OVERLAY_METHODS), value="saliency", description="map",
                                          style=style, layout=W.Layout(width="180px"),
                                          tooltip="saliency: Captum's gradient map; occlusion: Captum's black-box map")
        self.out_dir = W.Text(value=str(out_dir), description="export to", style=style)
        self.panels = {name: W.Image(format="png", width=PANEL, height=PANEL, _dom_classes=(f"lst-{name}",))
                       for name in ("source", "target", "current", "difference", "target_b", "current_b")}
        self.panel_labels = {name: W.HTML() for name in self.panels}
        self.status = W.HTML()
        self.message = W.HTML()
        self.caption_line = W.HTML()
        self.figure = FigureWidget(self.snapshot_figure())
        self.figure_box = W.Box([self.figure])
        self.triangle = TrianglePanel(self.state, self._say)

        self._show_choices()
        self._wire()
        self.ui = self._layout()
        self._redraw()
        self.state.on_change(self._on_state)

    # -- what the notebook and tests use ------------------------------------------
    @property
    def traversal(self):
        return self.state.traversal

    @property
    def model(self):
        return self.state.model

    @property
    def catalog(self):
        return self.state.catalog

    @property
    def running(self) -> bool:
        return self.state.running

    def step(self, n: int | None = None) -> "LSTExplorer":
        """Run ``n`` more iterations (default: 'iterations per click'); refused while running."""
        self._attempt("Cannot step", self.state.step, n)
        return self

    def run(self) -> "LSTExplorer":
        """Step on in the background until 'Run until iteration'; Pause stops it."""
        self._attempt("Cannot run", self.state.run)
        return self

    def pause(self) -> "LSTExplorer":
        self.state.pause()
        return self

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a run ends; False if it still runs after ``timeout`` seconds."""
        return self.state.wait(timeout)

    def reset(self) -> "LSTExplorer":
        self.state.reset()
        return self

    def export(self, out_dir=None):
        """Write the current point, the traversal and its record to ``out_dir``
        (default: the 'export to' field); returns the paths."""
        paths = self.state.export(out_dir or self.out_dir.value)
        self._say(f"Exported {html.escape(str(paths['image']))} with its record "
                  f"{html.escape(paths['record'].name)} and state {html.escape(paths['traversal'].name)}.", "ok")
        return paths

    def add_upload(self, name: str, content: bytes) -> str:
        """Add an image file to the catalogue as the target; returns its catalogue name."""
        key = self.state.add_upload(name, content)
        self._say(f"Added {html.escape(key)} as the target (it is also in the source menu).", "ok")
        return key

    def snapshot_figure(self) -> go.Figure:
        """The confidence curves so far as a plain plotly figure (to save as HTML)."""
        snap = self.state.snapshot()
        figure = confidence_figure(snap.result, class_names=(snap.source_class, snap.a.target_class),
                                   caption=self.state.caption(), title="Confidence along the traversal")
        return figure.update_layout(meta={"iteration": snap.iteration})

    def _repr_mimebundle_(self, **kwargs):
        return self.ui._repr_mimebundle_(**kwargs)

    # -- building ------------------------------------------------------------------
    def _wire(self):
        self.step_button.on_click(lambda _: self.step())
        self.run_button.on_click(lambda _: self.run())
        self.pause_button.on_click(lambda _: self.pause())
        self.reset_button.on_click(lambda _: self.reset())
        self.export_button.on_click(lambda _: self._attempt("Export failed", self.export))
        self.model_menu.observe(self._on_model, names="value")
        self.image_source_menu.observe(self._on_image_source, names="value")
        for menu in (self.source_menu, self.target_menu, self.target_b_menu):
            menu.observe(self._on_choice, names="value")
        for field in (self.step_size, self.delta, self.eps, self.iterations):
            field.observe(self._on_hyperparameter, names="value")
        self.per_click.observe(self._on_per_click, names="value")
        self.upload.observe(self._on_upload, names="value")
        for widget in (self.saliency_toggle, self.saliency_method):
            widget.observe(lambda _: self._attempt("Cannot show the map", self._redraw), names="value")

    def _layout(self):
        def panel(name):
            return W.VBox([self.panel_labels[name], self.panels[name]], layout=W.Layout(width=f"{PANEL + 16}px"))
        return W.VBox([
            W.HBox([self.model_menu, self.image_source_menu, self.upload]),
            W.HBox([self.source_menu, self.target_menu, self.target_b_menu]),
            W.HBox([self.step_size, self.delta, self.eps]),
            W.HBox([self.per_click, self.iterations]),
            W.HBox([self.step_button, self.run_button, self.pause_button, self.reset_button, self.export_button,
                    self.out_dir, self.saliency_toggle, self.saliency_method]),
            self.message,
            W.HBox([panel(name) for name in self.panels]),
            self.status,
            self.figure_box,
            self.triangle.ui,
            self.caption_line,
        ])

    # -- from the widgets to the explorer ------------------------------------------
    @contextlib.contextmanager
    def _quietly(self):
        """Change widgets without the view acting on the change."""
        self._quiet = True
        try:
            yield
        finally:
            self._quiet = False

    def _attempt(self, failure: str, action, *args) -> bool:
        """Do ``action``; if it raises, say ``failure`` and why, and show the explorer's
        choices again (they are unchanged)."""
        try:
            action(*args)
        except Exception as error:
            self._show_choices()
            self._say(f"{html.escape(failure)}: {html.escape(str(error))}", "error")
            return False
        return True

    def _on_model(self, change):
        if not self._quiet and self._attempt(f"Could not load {change['new']}", self.state.set_model, change["new"]):
            self._say(f"Loaded model {html.escape(change['new'])}.", "ok")

    def _on_image_source(self, change):
        if not self._quiet:
            self._attempt(f"Could not load {change['new']}", self.state.set_image_source, change["new"])

    def _on_choice(self, change):
        if not self._quiet and change["new"] is not None:
            self._attempt("Cannot choose it", self.state.choose, self.source_menu.value, self.target_menu.value,
                          self.target_b_menu.value)

    def _on_hyperparameter(self, change):
        if self._quiet or change["new"] is None:
            return
        self._attempt("Cannot use these settings", lambda: self.state.set_config(
            step_size=self.step_size.value, delta=self.delta.value, eps=self.eps.value,
            iterations=self.iterations.value))

    def _on_per_click(self, change):
        self.state.iterations_per_click = int(change["new"])

    def _on_upload(self, change):
        for item in change["new"]:
            self._attempt("Upload failed", self.add_upload, item["name"], bytes(item["content"]))
        if change["new"]:
            self.upload.value = ()  # so that the same file can be uploaded again

    # -- from the explorer to the widgets ------------------------------------------
    def _on_state(self, event: str, message: str):
        if event in ("warning", "error"):
            self._say(html.escape(message), event)
            return
        if event == "triangle":
            self.triangle.draw()
            return
        if event == "restart":
            self._show_choices()
            self.triangle.draw()
        if event == "running":
            for button in (self.step_button, self.run_button, self.reset_button):
                button.disabled = self.state.running
            self.pause_button.disabled = not self.state.running
        done = not self.state.running  # a step, a restart or the end of a run: the state to stay on screen
        if done and event == "running" and self.state.live:
            triangle = self.state.live_triangle  # the run's throttle may have left an older one
            if triangle is None or triangle.iteration != self.state.traversal.iteration:
                self.state.redraw_triangle()
        self._redraw(settled=done)

    def _show_choices(self):
        """Set the menus and fields to what the explorer holds."""
        state, config = self.state, self.state.config
        with self._quietly():
            names = [value for _, value in self.model_menu.options]
            names = names if state.model_name in names else [state.model_name, *names]
            # each model by its value (a registry name or a spec); the loaded one labelled by its display name
            self.model_menu.options = [(provenance.display_name(state.model) if name == state.model_name else name,
                                        name) for name in names]
            self.model_menu.value = state.model_name
            for menu, options, value in ((self.image_source_menu, list(state.image_sources), state.image_source),
                                         (self.source_menu, list(state.catalog), state.source_name),
                                         (self.target_menu, list(state.catalog), state.target),
                                         (self.target_b_menu, list(state.catalog), state.target_b)):
                if list(menu.options) != options:
                    menu.options = options
                menu.value = value
            self.step_size.value, self.delta.value, self.eps.value = config.step_size, config.delta, config.eps
            self.iterations.value = config.iterations
            self.per_click.value = state.iterations_per_click

    def _redraw(self, settled: bool = False):
        """Show the traversal's current point in the images, curves and text; ``settled``: in a
        new confidence figure (see the module's docstring), else by updating the one shown."""
        overlay = self.saliency_method.value if self.saliency_toggle.value else None
        snap = self.state.snapshot(saliency=overlay)
        a, b = snap.targets
        difference, scale = difference_image(a.current_image, snap.source_image)
        current = saliency_overlay(a.current_image, snap.saliency) if overlay else a.current_image
        for name, image in (("source", snap.source_image), ("target", a.target_image),
                            ("current", current), ("difference", difference), ("target_b", b.target_image),
                            ("current_b", b.current_image)):
            self.panels[name].value = image_to_png(image, PANEL)
        source_class, target_class = snap.source_class, a.target_class
        initial_confidence = snap.initial_confidence
        self.panel_labels["source"].value = (f"<b>source</b>: {html.escape(snap.source_name)}<br>"
                                             f"{html.escape(source_class[:28])} ({initial_confidence:.3f})"
                                             + _labelled(snap.source_label))
        for panel, role, state in (("target", "A", a), ("target_b", "B", b)):
            self.panel_labels[panel].value = (f"<b>target {role}</b>: {html.escape(state.target)}<br>"
                                              f"{html.escape(state.target_class[:28])}" + _labelled(state.target_label))
        self.panel_labels["current_b"].value = (f"<b>current B</b>, iteration {snap.iteration}<br>"
                                                f"{html.escape(source_class[:20])}: {b.confidence:.3f}")
        self.panel_labels["current"].value = (f"<b>{overlay or 'current'}</b>, "
                                              f"iteration {snap.iteration}<br>"
                                              f"{html.escape(source_class[:20])}: {a.confidence:.3f}")
        self.panel_labels["difference"].value = (f"<b>current \u2212 source</b><br>gray = 0, "
                                                 f"extremes = \u00b1{scale:.3f}")
        if settled:
            self._new_figure()
        else:
            with self.figure.batch_update():
                update_confidence_figure(self.figure, snap.result, class_names=(source_class, target_class))
                self.figure.layout.meta = {"iteration": snap.iteration}
        self.status.value = (
            f"<b>iteration {snap.iteration}</b> \u00b7 {html.escape(source_class[:30])}: {a.confidence:.4f} "
            f"(initially {initial_confidence:.4f}, rejected below {initial_confidence - snap.result.config.delta:.4f})"
            " \u00b7 "
            f"{html.escape(target_class[:30])}: {a.target_confidence:.4f} \u00b7 RMSE to target "
            f"{a.rmse_to_target:.4f} \u00b7 accepted steps {a.accepted_steps}/{snap.iteration}"
            f" \u00b7 towards B: {html.escape(source_class[:30])} {b.confidence:.4f}, RMSE "
            f"{b.rmse_to_target:.4f}"
            + (" \u00b7 <i>running</i>" if snap.running else ""))
        self.caption_line.value = f"<small style='color:#555'>{html.escape(self.state.caption())}</small>"

    def _new_figure(self):
        """The confidence figure anew from the explorer's state, in place of the one shown."""
        previous, self.figure = self.figure, FigureWidget(self.snapshot_figure())
        self.figure_box.children = (self.figure,)
        previous.close()

    def _say(self, text: str, kind: str = "ok"):
        """Show ``text`` (HTML) as the message line, coloured by ``kind``."""
        self.message.value = f"<span style='color:{MESSAGE_COLOURS[kind]}'>{text}</span>"


def _labelled(label: str | None) -> str:
    """The image source's label beside the model's class in a panel's caption, if it has one."""
    return "" if label is None else f" \u00b7 labelled {html.escape(label[:20])}"
