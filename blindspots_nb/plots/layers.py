"""The layer where the target disappears, from a
:class:`~blindspots_nb.analysis.layers.LayerSimilarity`: heatmaps layer x iteration of
the similarity to the source, to the target and their difference."""

from __future__ import annotations

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .figures import plotly_title


def layer_similarity_figure(result, index: int | None = 0, measure: str = "cosine", caption: str = "",
                            title: str = "Layer similarity along the LST path", height: int | None = None) -> go.Figure:
    """Three heatmaps with one row per layer (pixels at the top, deeper layers below) and
    one column per recorded iteration: the similarity of the iterate's representation to
    the source's, to the target's, and target minus source (red: the target is nearer,
    blue: the source is). At the last iterate a star marks the first layer at which the
    source is nearer, a circle the layer from which on it stays nearer where that is
    deeper (:func:`~blindspots_nb.analysis.layers.crossing_depths`).

    ``index``: which path (None: the mean over the paths); ``measure``: ``"cosine"``, or
    ``"cka"`` or ``"debiased-cka"`` (over the batch; ``index`` unused)."""
    from ..analysis.layers import crossing_depths

    to_source, to_target = result.similarities(measure, index)
    difference = to_target - to_source
    iterations, layers = list(result.iterations), list(result.layers)
    which = ({"cka": "the batch (linear CKA)", "debiased-cka": "the batch (debiased linear CKA)"}.get(measure)
             or ("mean over paths" if index is None else f"path {index}"))
    names = ("to the source", "to the target", "target \u2212 source")
    fig = make_subplots(rows=1, cols=3, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=[f"{measure} {name}" for name in names[:2]] + [names[2]])
    bound = max(float(difference.abs().max()), 1e-12)
    low = min(0.0, float(to_source.min()), float(to_target.min()))  # cosines of logits can be negative
    for column, values in enumerate((to_source, to_target)):
        fig.add_trace(go.Heatmap(z=values.numpy(), x=iterations, y=layers, zmin=low, zmax=1, colorscale="Viridis",
                                 colorbar={"x": 1.0, "len": 0.9, "thickness": 12, "title": measure},
                                 showscale=column == 0,
                                 hovertemplate="layer %{y}<br>iteration %{x}<br>%{z:.3f}<extra></extra>"),
                      row=1, col=column + 1)
    fig.add_trace(go.Heatmap(z=difference.numpy(), x=iterations, y=layers, zmin=-bound, zmax=bound,
                             colorscale="RdBu_r", colorbar={"x": 1.1, "len": 0.9, "thickness": 12, "title": "\u0394"},
                             hovertemplate="layer %{y}<br>iteration %{x}<br>%{z:+.3f}<extra></extra>"), row=1, col=3)
    depth, settled = crossing_depths(to_source[:, -1], to_target[:, -1])
    marks = [(depth, "star", "target disappears at {}"), (settled, "circle", "nearer the source from {} on")]
    for row, symbol, text in marks[:1] if settled == depth else marks:
        if row is not None:
            fig.add_trace(go.Scatter(x=[iterations[-1]], y=[layers[row]], mode="markers", showlegend=False,
                                     marker={"symbol": symbol, "size": 13, "color": "gold", "line": {"width": 1}},
                                     hovertext=text.format(layers[row]), hoverinfo="text"), row=1, col=3)
    fig.update_yaxes(autorange="reversed", type="category", row=1, col=1)
    fig.update_xaxes(title_text="iteration")
    subtitle = f"{which}; star: first layer nearer the source at iteration {iterations[-1]}" + (
        "" if depth is not None else " (none: nearer the target at every layer)")
    fig.update_layout(title=plotly_title(f"{title}: {subtitle}", caption), margin={"t": 120, "l": 10},
                      height=height or 200 + 22 * len(layers), width=1100)
    return fig
