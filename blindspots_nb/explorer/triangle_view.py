"""The live triangle in the explorer's view: a plotly 3-D surface and a contour in the
triangle's true shape (corner thumbnails), the star's two segments, the Table-2 statistics
as numbers, and the image at a clicked point.

:class:`TrianglePanel` only draws what its :class:`~blindspots_nb.explorer.state.Explorer`
computed (``live_triangle``, ``image_at``); :class:`~blindspots_nb.explorer.view.LSTExplorer`
holds one and redraws it when the explorer tells of a new triangle.
"""

from __future__ import annotations

import html

import ipywidgets as W
import plotly.graph_objects as go
import torch

from ..analysis.geometry import barycentric_from_coordinates
from ..plots import image_to_png
from ..plots.triangles import star_figure, triangle_contour, triangle_surface
from ..plots.widgets import figure_widget
from ..protocol.tables import TABLE2_COLUMNS
from .triangle import CORNER_NAMES, Triangle

_FIGURE_SIZE = 520  # pixels of the surface and the contour
_POINT_PANEL = 160
OUTSIDE = 1e-6  # how far outside the triangle a click may land and still count (rounding)
_PLACEHOLDER = Triangle(iteration=0, divisions=1, weights=torch.eye(3, dtype=torch.float64),
                       confidence=torch.zeros(3, dtype=torch.float64),  # drawn hidden: JSON has no NaN
                       shape=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]], dtype=torch.float64),
                       coordinates=torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]], dtype=torch.float64),
                       corners=(None, None, None), source_class="", stats={}, seconds=0.0)


class TrianglePanel:
    """Widgets of the live triangle: 'live triangle' (on: redrawn after each step and during a
    run as the explorer's throttle allows), 'Redraw triangle', 'grid divisions', the surface,
    the contour, the star, the statistics and the clicked point."""

    def __init__(self, state, say):
        self.state = state
        self._say = say  # say(html, kind): the explorer view's message line
        self.shown: Triangle | None = None
        self.live_toggle = W.Checkbox(value=state.live, description="live triangle", indent=False,
                                      layout=W.Layout(width="120px"))
        self.redraw_button = W.Button(description="Redraw triangle", icon="refresh")
        self.divisions = W.IntSlider(value=state.divisions, min=2, max=30, description="grid divisions",
                                     style={"description_width": "initial"}, continuous_update=False)
        self.grid_points = W.HTML()
        self.figures = W.HBox()  # the surface and the contour
        self.star_box = W.Box()
        self._show_figures()
        self.stats = W.HTML(_dom_classes=("lst-triangle-stats",))
        self.point_image = W.Image(format="png", width=_POINT_PANEL, height=_POINT_PANEL, _dom_classes=("lst-point",))
        self.point_label = W.HTML("<i>click a point of the surface or the contour</i>",
                                  _dom_classes=("lst-point-label",))
        self.live_toggle.observe(self._on_live, names="value")
        self.redraw_button.on_click(lambda _: self.redraw())
        self.divisions.observe(self._on_divisions, names="value")
        self.ui = W.VBox([
            W.HBox([self.live_toggle, self.redraw_button, self.divisions, self.grid_points]),
            self.figures,
            W.HBox([self.star_box, W.VBox([self.stats, self.point_label, self.point_image])]),
        ])
        self._show_numbers()

    # -- figures from a triangle -----------------------------------------------------
    def _title(self, what: str, triangle: Triangle, points: bool = True) -> str:
        if triangle is _PLACEHOLDER:
            return f"{what}: none yet (a current point is still the source; step first)"
        return f"{what}, iteration {triangle.iteration}" + (f" ({triangle.points} points)" if points else "")

    def _corners(self, triangle: Triangle):
        return None if triangle is _PLACEHOLDER else list(triangle.corners)

    def _surface(self, triangle: Triangle) -> go.Figure:
        return triangle_surface(triangle.shape, triangle.confidence, triangle.divisions, self._corners(triangle),
                                title=self._title("Source-class confidence over the triangle", triangle),
                                caption=self.state.caption())

    def _contour(self, triangle: Triangle) -> go.Figure:
        return triangle_contour(triangle.shape, triangle.confidence, triangle.divisions, self._corners(triangle),
                                title=self._title("The same, in the triangle's true shape", triangle),
                                caption=self.state.caption(), resolution=120)

    def _star(self, triangle: Triangle) -> go.Figure:
        segments = torch.stack([triangle.segment("A")[1], triangle.segment("B")[1]])
        return star_figure(segments, names=["source \u2192 A", "source \u2192 B"],
                           title=self._title("The star: straight segments from the source", triangle, points=False))

    def _figures(self) -> list[go.Figure]:
        """The surface, the contour and the star of the explorer's ``live_triangle`` (hidden
        traces of a placeholder while there is none), and that triangle becomes the one shown;
        their layout's ``meta`` holds its iteration (None for the placeholder)."""
        triangle = self.state.live_triangle or _PLACEHOLDER
        self.shown = None if triangle is _PLACEHOLDER else triangle
        meta = {"iteration": None if self.shown is None else triangle.iteration}
        square = {"meta": meta, "width": _FIGURE_SIZE, "height": _FIGURE_SIZE}  # one relayout each
        layouts = (square, {**square, "clickmode": "event"}, {**square, "height": 380})
        return [figure.update_traces(visible=triangle is not _PLACEHOLDER).update_layout(layout)
                for figure, layout in zip((self._surface(triangle), self._contour(triangle), self._star(triangle)),
                                          layouts)]

    # -- drawing --------------------------------------------------------------------
    def draw(self) -> None:
        """Show the explorer's ``live_triangle`` (a placeholder while there is none), unless it is
        shown already (a restart's, drawn at 'restart' and then told as 'triangle')."""
        if self.shown is not None and self.state.live_triangle is self.shown:
            return
        previous = (self.surface, self.contour, self.star)
        self._show_figures()
        for widget in previous:
            widget.close()
        self._show_numbers()

    def _show_figures(self) -> None:
        """New FigureWidgets of the triangle in the boxes. New ones, not updates of the old: a
        FigureWidget reliably shows the state it was made with, while its updates (restyle and
        relayout messages) can be lost in a frontend when several figures change at once."""
        self.surface, self.contour, self.star = (figure_widget(figure) for figure in self._figures())
        for trace in (self.surface.data[0], *self.contour.data[:2]):
            trace.on_click(self._on_click)
        self.figures.children = (self.surface, self.contour)
        self.star_box.children = (self.star,)

    def _show_numbers(self) -> None:
        self.grid_points.value = f"{_points(self.divisions.value)} grid points"
        self.stats.value = _stats_table(self.shown or _PLACEHOLDER)

    def redraw(self) -> None:
        """Compute the triangle at the current points now and draw it (the button)."""
        if self.state.redraw_triangle() is None:
            self._say("No triangle yet: a current point is still the source; step first.", "warning")

    def _on_live(self, change) -> None:
        self.state.live = bool(change["new"])
        if self.state.live and not self.state.running:
            self.redraw()

    def _on_divisions(self, change) -> None:
        self.state.divisions = int(change["new"])
        self.grid_points.value = f"{_points(self.state.divisions)} grid points"
        if not self.state.running:
            self.redraw()

    # -- touching a point -----------------------------------------------------------
    def _on_click(self, trace, points, state) -> None:
        if not points.xs or self.shown is None:
            return
        self.show_point(points.xs[0], points.ys[0])

    def show_point(self, x: float, y: float) -> None:
        """Show the image at the 2-D point (x, y) of the shown triangle (its coordinates in the
        surface and the contour), its source-class confidence and the model's class there."""
        triangle = self.shown
        a, b = barycentric_from_coordinates(triangle.shape, x, y)
        if min(a, b) < -OUTSIDE or a + b > 1 + OUTSIDE:
            self._say(f"({x:.3f}, {y:.3f}) lies outside the triangle: click inside it.", "warning")
            return
        a, b = max(a, 0.0), max(b, 0.0)
        a, b = (a / (a + b), b / (a + b)) if a + b > 1 else (a, b)
        point = self.state.image_at(a, b, triangle=triangle)
        self.point_image.value = image_to_png(point.image, _POINT_PANEL)
        self.point_label.value = (
            f"<b>point a = {point.a:.3f}, b = {point.b:.3f}</b> (source + a (A \u2212 source) + b (B \u2212 source)),"
            f" iteration {triangle.iteration}<br>{html.escape(triangle.source_class[:28])}: "
            f"<span class='lst-point-confidence'>{point.confidence:.4f}</span><br>"
            f"model's class: {html.escape(point.class_name[:28])} ({point.class_confidence:.3f})")


def _points(divisions: int) -> int:
    return (divisions + 1) * (divisions + 2) // 2


def _stats_table(triangle: Triangle) -> str:
    """Table 2's statistics of the triangle as an HTML table."""
    if not triangle.stats:
        return "<i>Table-2 statistics: none yet</i>"
    names = {**TABLE2_COLUMNS, "edge_min": "least edge confidence \u2212 p_src"}
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td style='text-align:right'>{triangle.stats[key]:.3f}</td></tr>"
                   for key, label in names.items())
    return (f"<b>Table-2 statistics</b> of the triangle ({', '.join(CORNER_NAMES)}), iteration "
            f"{triangle.iteration}, {triangle.points} points, computed in {triangle.seconds:.2f} s"
            f"<table>{rows}</table>")
