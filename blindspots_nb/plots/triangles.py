"""Confidence over triangles and segments between a source and its blind spots (the
paper's Figures 3 and 5), from ``analysis.geometry``'s grids: one triangle as a 3-D
surface or a filled contour, the triangle averaged over sources and pairs, and the star
of straight segments."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from ..analysis.geometry import grid_coordinates
from .figures import matplotlib_caption, plotly_title
from .images import image_to_data_uri

CORNERS = ("source", "blind spot A", "blind spot B")


def _grid_index(divisions: int) -> dict[tuple[int, int], int]:
    """Row of grid point (t1, t2) = (i, j) / divisions in ``geometry.triangle_grid``."""
    steps = [(i, j) for i in range(divisions + 1) for j in range(divisions + 1 - i)]
    return {step: row for row, step in enumerate(steps)}


def triangle_cells(divisions: int = 10) -> np.ndarray:
    """Small triangles (divisions**2, 3) tiling ``geometry.triangle_grid(divisions)``,
    as rows of its points."""
    index = _grid_index(divisions)
    cells = []
    for i in range(divisions):
        for j in range(divisions - i):
            cells.append((index[i, j], index[i + 1, j], index[i, j + 1]))
            if i + j < divisions - 1:
                cells.append((index[i + 1, j], index[i + 1, j + 1], index[i, j + 1]))
    return np.array(cells)


def _triangle_data(shape, confidence, divisions):
    """Grid coordinates (N, 2), confidences (N,), corners (3, 2) and their confidences (3,)."""
    confidence = torch.as_tensor(confidence).detach().double().cpu().numpy()
    expected = (divisions + 1) * (divisions + 2) // 2
    if confidence.shape != (expected,):
        raise ValueError(f"need the {expected} grid confidences of one triangle with {divisions} "
                         f"divisions; got shape {confidence.shape}")
    shape = torch.as_tensor(shape).double()
    if shape.shape != (3, 2):
        raise ValueError(f"shape must be the (3, 2) corners from geometry.triangle_shape; got {tuple(shape.shape)}")
    index = _grid_index(divisions)
    corner_rows = [index[0, 0], index[divisions, 0], index[0, divisions]]
    return grid_coordinates(shape, divisions).numpy(), confidence, shape.numpy(), confidence[corner_rows]


def triangle_surface(shape, confidence, divisions: int = 10, thumbnails=None, caption: str = "",
                     title: str = "Source-class confidence over the triangle",
                     corner_names=CORNERS) -> go.Figure:
    """3-D surface of confidence over the triangle in its true shape (the paper's Figure 3).

    ``shape``: (3, 2) from ``geometry.triangle_shape``; ``confidence``: (N,) from
    ``geometry.triangle_confidence``; ``thumbnails``: the three corner images, shown
    under the plot in the order of ``corner_names``.
    """
    xy, z, corners, corner_z = _triangle_data(shape, confidence, divisions)
    cells = triangle_cells(divisions)
    extent = np.ptp(corners, axis=0)
    images, names = [], []  # the layout given whole: plotly validates it once, not at each addition
    for n, (image, name) in enumerate(zip(thumbnails if thumbnails is not None else (), corner_names)):
        x = 0.2 + 0.3 * n
        images.append({"source": image_to_data_uri(image, 128), "xref": "paper", "yref": "paper", "x": x,
                       "y": 0.24, "sizex": 0.2, "sizey": 0.2, "xanchor": "center", "yanchor": "top"})
        names.append({"text": name, "xref": "paper", "yref": "paper", "x": x, "y": 0.245, "showarrow": False,
                      "yanchor": "bottom"})
    scene_bottom = 0.28 if thumbnails is not None else 0.0
    return go.Figure([
        go.Mesh3d(x=xy[:, 0], y=xy[:, 1], z=z, i=cells[:, 0], j=cells[:, 1], k=cells[:, 2],
                  intensity=z, colorscale="Viridis", cmin=0, cmax=1, colorbar={"title": "confidence"},
                  name="confidence", hovertemplate="confidence %{z:.3f}<extra></extra>"),
        go.Scatter3d(x=corners[:, 0], y=corners[:, 1], z=corner_z, mode="markers+text",
                     text=list(corner_names), marker={"size": 4, "color": "black"}, name="corners"),
    ], layout={"title": plotly_title(title, caption), "height": 620, "showlegend": False,
               "margin": {"t": 110, "l": 10, "r": 10, "b": 10},
               "scene": {"domain": {"y": [scene_bottom, 1]}, "aspectmode": "manual",
                         "aspectratio": {"x": 1, "y": float(extent[1] / extent[0]), "z": 0.6},
                         "xaxis_title": "", "yaxis_title": "", "zaxis": {"range": [0, 1.01], "title": "confidence"}},
               "images": images, "annotations": names})


def triangle_contour(shape, confidence, divisions: int = 10, thumbnails=None, caption: str = "",
                     title: str = "Source-class confidence over the triangle",
                     corner_names=CORNERS, resolution: int = 200) -> go.Figure:
    """Filled 2-D contour of confidence over the triangle in its true shape, the grid
    linearly interpolated, with the corner images at the corners (the paper's Figure 3)."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    xy, z, corners, _ = _triangle_data(shape, confidence, divisions)
    interpolate = LinearTriInterpolator(Triangulation(xy[:, 0], xy[:, 1], triangle_cells(divisions)), z)
    low, high = corners.min(0), corners.max(0)
    gx, gy = np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution)
    gz = np.ma.filled(interpolate(*np.meshgrid(gx, gy)).astype(float), np.nan)
    outline = np.vstack([corners, corners[:1]])
    size = 0.28 * float(max(np.ptp(corners, axis=0)))
    anchors = (("right", "top"), ("left", "top"), ("center", "bottom"))
    images, names = [], []  # the layout given whole: plotly validates it once, not at each addition
    for (x, y), image, name, (xanchor, yanchor) in zip(corners, thumbnails or [None] * 3, corner_names, anchors):
        if image is not None:
            images.append({"source": image_to_data_uri(image, 128), "xref": "x", "yref": "y", "x": x, "y": y,
                           "sizex": size, "sizey": size, "xanchor": xanchor, "yanchor": yanchor, "layer": "above"})
        above = y + size if image is not None and yanchor == "bottom" else y  # over an image drawn above
        names.append({"x": x, "y": above, "text": name, "showarrow": False, "xanchor": xanchor,
                      "yanchor": "bottom", "font": {"size": 11}})
    pad = size * 1.25
    return go.Figure([
        go.Contour(x=gx, y=gy, z=gz, zmin=0, zmax=1, ncontours=21, colorscale="Viridis",
                   colorbar={"title": "confidence"}, connectgaps=False, name="confidence",
                   contours={"coloring": "fill", "showlines": True}),
        go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker={"size": 3, "color": "white"},
                   customdata=z, hovertemplate="confidence %{customdata:.3f}<extra></extra>", name="grid"),
        go.Scatter(x=outline[:, 0], y=outline[:, 1], mode="lines", line={"color": "black"}, name="edges",
                   hoverinfo="skip"),
    ], layout={"title": plotly_title(title, caption), "height": 620, "showlegend": False, "plot_bgcolor": "white",
               "xaxis": {"range": [low[0] - pad, high[0] + pad], "showgrid": False, "zeroline": False},
               "yaxis": {"range": [low[1] - pad, high[1] + pad], "scaleanchor": "x", "showgrid": False,
                         "zeroline": False},
               "margin": {"t": 110}, "images": images, "annotations": names})


# -- the star ------------------------------------------------------------------------
def mean_triangle_figure(mean_grid, divisions: int = 10, caption: str = "",
                         title: str = "Source-class confidence over the triangle, averaged"):
    """Confidence at each grid point of the triangle (source, o_i, o_j), averaged over
    sources and pairs, drawn on an equilateral triangle (matplotlib)."""
    import matplotlib.pyplot as plt
    from matplotlib.tri import Triangulation

    confidence = torch.as_tensor(mean_grid).double().cpu().numpy()
    shape = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.5, 3 ** 0.5 / 2]], dtype=torch.float64)
    xy = grid_coordinates(shape, divisions).numpy()
    fig, ax = plt.subplots(figsize=(6.0, 5.4))
    filled = ax.tricontourf(Triangulation(xy[:, 0], xy[:, 1], triangle_cells(divisions)), confidence,
                            levels=np.linspace(0, 1, 21), cmap="viridis")
    fig.colorbar(filled, ax=ax, label="source-class confidence")
    for (x, y), name, below in zip(shape.numpy(), ("source", "blind spot $o_i$", "blind spot $o_j$"),
                                   (True, True, False)):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(0, -14 if below else 6), ha="center",
                    fontsize=9)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.margins(0.08)
    matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.08, 1, 0.93))
    return fig


def star_figure(confidence, names=None, caption: str = "",
                title: str = "Confidence on straight segments from the source to its blind spots") -> go.Figure:
    """Source-class confidence along segments from one source to many blind spots
    (the paper's Figure 5): ``confidence`` (B, steps) from ``geometry.segment_confidence``."""
    confidence = torch.as_tensor(confidence).detach().double().cpu().numpy()
    if confidence.ndim != 2 or confidence.shape[1] < 2:
        raise ValueError(f"need confidences (blind spots, steps >= 2); got shape {confidence.shape}")
    names = list(names) if names is not None else [f"blind spot {n}" for n in range(len(confidence))]
    if len(names) != len(confidence):
        raise ValueError(f"{len(confidence)} segments but {len(names)} names")
    t = np.linspace(0, 1, confidence.shape[1])
    return go.Figure([*(go.Scatter(x=t, y=row, mode="lines+markers", marker_size=4, name=name, opacity=0.8)
                        for row, name in zip(confidence, names)),
                      go.Scatter(x=t, y=confidence.mean(0), mode="lines", name="mean",
                                 line={"color": "black", "width": 4})],
                     layout={"title": plotly_title(title, caption), "height": 480, "margin": {"t": 110},
                             "xaxis_title": "t: (1 − t) source + t blind spot",
                             "yaxis": {"title": "source-class confidence", "range": [0, 1.02]}})
