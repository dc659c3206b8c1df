"""plotly figures as widgets for the live apps (the explorer, the run browser, the runs' plots):
kept apart from the figures themselves, since plotly's widget pulls in ipywidgets and Jupyter's
notebook format (seconds of import) that a static figure never needs."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.serializers import custom_serializers
from traitlets import List


def _traces_as_json(value, manager):
    """plotly's serialiser of a widget's traces, but a float array holding NaN goes as a list with null
    in their place: a widget's state travels as JSON, which has no NaN (plotly would send a 2-D
    array's NaN, a contour's gaps, as they are)."""
    if isinstance(value, dict):
        return {key: _traces_as_json(item, manager) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_traces_as_json(item, manager) for item in value]
    if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isnan(value).any():
        return np.where(np.isnan(value), None, value).tolist()
    return custom_serializers["to_json"](value, manager)


class FigureWidget(go.FigureWidget):
    """plotly's ``FigureWidget`` whose comm opens with its data and layout, its gaps (NaN) sent as null.

    plotly's own opens its comm (ipywidgets does, in the constructor) while its data and layout
    are still empty and sends them just after as updates. anywidget's front end (0.11) drops
    every update that reaches a model whose 5 MB module has not loaded within 2 s of the model's
    creation ("[anywidget] Failed to initialize model."), as on a busy machine: its views then
    draw plotly's empty default plot for good. The state the comm opens with is never dropped.
    NaN becomes null as the traces are sent, not in the figure: plotly copies a figure's traces
    twice into a widget, which for a contour's grid held as a list (200 x 200) cost 30 ms."""

    _widget_data = List().tag(sync=True, to_json=_traces_as_json, from_json=custom_serializers["from_json"])

    def __init__(self, *args, **kwargs):
        self._opening = True
        super().__init__(*args, **kwargs)  # sets _widget_data and _widget_layout after Widget.__init__
        self._opening = False
        self.open()

    def open(self):
        if not getattr(self, "_opening", False):
            super().open()

    # A widget equals only itself, as ipywidgets' do. plotly's figures compare their contents:
    # each time a box's children change, traitlets compares the old tuple with the new, which
    # serialised every figure of both (twice the time a figure takes to build).
    __eq__ = object.__eq__
    __hash__ = object.__hash__


def figure_widget(figure: go.Figure) -> FigureWidget:
    """``figure`` as a :class:`FigureWidget` (a contour's gaps outside the triangle sent as null, drawn
    alike). ``figure`` was validated when it was built, so its copy is not validated again (which
    cost a tenth of a second for the contour's grid); the caller's figure stays as it was."""
    return FigureWidget(data=[trace.to_plotly_json() for trace in figure.data],
                        layout=figure.layout.to_plotly_json(), _validate=False)
