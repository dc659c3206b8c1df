"""Confidence along one traversal (an ``LSTResult``): the curves, their plotly figure,
and its update in place for the live explorer."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import plotly_title


def confidence_curves(result, index: int = 0) -> dict[str, np.ndarray]:
    """Per recorded iteration of sample ``index`` of an ``LSTResult``: source- and
    target-class confidence, RMSE to the target, and the rejection bound: the initial
    confidence minus delta."""
    history = result.history.as_tensors()
    pixels = result.images[index].numel()
    iteration = history["iteration"].numpy()
    bound = float(result.initial_confidence[index]) - result.config.delta
    return {
        "iteration": iteration,
        "source_confidence": history["source_confidence"][:, index].double().numpy(),
        "target_confidence": history["target_confidence"][:, index].double().numpy(),
        "rmse": (history["distance"][:, index].double() / pixels ** 0.5).numpy(),
        "bound": np.full(len(iteration), bound),
    }


def confidence_figure(result, index: int = 0, class_names: tuple[str, str] | None = None,
                      caption: str = "", title: str = "Level Set Traversal") -> go.Figure:
    """Source- and target-class confidence (top) and RMSE to the target (bottom) per
    iteration of one traversal; wrap it in ``go.FigureWidget`` to update it live with
    :func:`update_confidence_figure`."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.65, 0.35], vertical_spacing=0.08)
    fig.add_trace(go.Scatter(mode="lines+markers", marker_size=3, line_color="#1f77b4"), row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines+markers", marker_size=3, line_color="#d62728"), row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines", name="initial confidence \u2212 \u03b4 (rejection bound)",
                             line={"color": "gray", "dash": "dash"}), row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines+markers", marker_size=3, name="RMSE to target",
                             line_color="#2ca02c"), row=2, col=1)
    fig.update_yaxes(title_text="confidence", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="RMSE to target", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    fig.update_layout(title=plotly_title(title, caption), height=480, margin={"t": 110, "b": 40},
                      legend={"orientation": "h", "y": -0.18})
    update_confidence_figure(fig, result, index, class_names)
    return fig


def update_confidence_figure(fig, result, index: int = 0, class_names: tuple[str, str] | None = None) -> None:
    """Put the curves of ``result`` into a figure from :func:`confidence_figure`, in place."""
    curves = confidence_curves(result, index)
    source_name, target_name = class_names or ("source", "target")
    with fig.batch_update():
        for trace, key, name in ((fig.data[0], "source_confidence", f"source class: {source_name}"),
                                 (fig.data[1], "target_confidence", f"target class: {target_name}"),
                                 (fig.data[2], "bound", None), (fig.data[3], "rmse", None)):
            trace.x, trace.y = curves["iteration"], curves[key]
            if name:
                trace.name = name
