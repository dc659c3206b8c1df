"""Figures of the paper, drawn from results (tensors, ``LSTResult``, ``PathWidths``,
``BlindSpotGrid``), never from models: computing lives in ``lst``, ``geometry`` and
``paths``.

Interactive figures are plotly (written as HTML), image panels matplotlib (written
as PNG; animations as GIF or MP4). Every figure takes a ``caption``, the line from
:func:`blindspots_nb.tools.provenance.caption` that says what produced it.
"""

from __future__ import annotations

import base64
import io
import textwrap
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from ..analysis.geometry import grid_coordinates

CORNERS = ("source", "blind spot A", "blind spot B")


# -- images --------------------------------------------------------------------------
def to_array(image) -> np.ndarray:
    """An image (C, H, W) in [0, 1] as a float array (H, W, 3), or (H, W) for one channel."""
    array = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    if array.ndim != 3 or array.shape[0] not in (1, 3):
        raise ValueError(f"expected one image (C, H, W) with 1 or 3 channels; got shape {array.shape}")
    array = np.clip(array, 0, 1)
    return array[0] if array.shape[0] == 1 else array.transpose(1, 2, 0)


def image_to_png(image, size: int | None = None) -> bytes:
    """PNG bytes of an image (C, H, W) in [0, 1]; ``size``: longest side in pixels
    (small images are enlarged without smoothing, so pixels stay visible)."""
    from PIL import Image

    picture = Image.fromarray(np.round(to_array(image) * 255).astype(np.uint8))
    if size is not None and max(picture.size) != size:
        scale = size / max(picture.size)
        new_size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
        resample = Image.NEAREST if scale > 1 else Image.LANCZOS
        picture = picture.resize(new_size, resample)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def image_to_data_uri(image, size: int | None = None) -> str:
    """A ``data:image/png`` URI of an image, for plotly layout images."""
    return "data:image/png;base64," + base64.b64encode(image_to_png(image, size)).decode()


def difference_image(image: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, float]:
    """``image - reference`` shown as an image: 0.5 is no change, the largest absolute
    change maps to 0 or 1. Returns the picture and that largest change (the scale)."""
    difference = (image - reference).detach().float()
    scale = float(difference.abs().max())
    return (0.5 + difference / (2 * scale if scale > 0 else 1.0)).clamp(0, 1), scale


# -- captions ------------------------------------------------------------------------
def _plotly_title(title: str, caption: str, width: int = 120) -> dict:
    lines = textwrap.wrap(caption, width)
    text = title + "".join(f"<br><sup>{line}</sup>" for line in lines)
    return {"text": text, "x": 0.01, "xanchor": "left", "font": {"size": 15}}


def _matplotlib_caption(fig, title: str, caption: str) -> None:
    fig.suptitle(title)
    if caption:
        fig.text(0.5, 0.005, caption, ha="center", va="bottom", fontsize=7, color="0.3", wrap=True)


# -- confidence along a traversal ----------------------------------------------------
def confidence_curves(result, index: int = 0) -> dict[str, np.ndarray]:
    """Per recorded iteration of sample ``index`` of an ``LSTResult``: source- and
    target-class confidence, RMSE to the target, and the rejection bound p0 - delta."""
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
    fig.add_trace(go.Scatter(mode="lines", name="p0 \u2212 \u03b4 (rejection bound)",
                             line={"color": "gray", "dash": "dash"}), row=1, col=1)
    fig.add_trace(go.Scatter(mode="lines+markers", marker_size=3, name="RMSE to target",
                             line_color="#2ca02c"), row=2, col=1)
    fig.update_yaxes(title_text="confidence", range=[0, 1.02], row=1, col=1)
    fig.update_yaxes(title_text="RMSE to target", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text="iteration", row=2, col=1)
    fig.update_layout(title=_plotly_title(title, caption), height=480, margin={"t": 110, "b": 40},
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


# -- triangles -----------------------------------------------------------------------
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
    fig = go.Figure([
        go.Mesh3d(x=xy[:, 0], y=xy[:, 1], z=z, i=cells[:, 0], j=cells[:, 1], k=cells[:, 2],
                  intensity=z, colorscale="Viridis", cmin=0, cmax=1, colorbar={"title": "confidence"},
                  name="confidence", hovertemplate="confidence %{z:.3f}<extra></extra>"),
        go.Scatter3d(x=corners[:, 0], y=corners[:, 1], z=corner_z, mode="markers+text",
                     text=list(corner_names), marker={"size": 4, "color": "black"}, name="corners"),
    ])
    extent = np.ptp(corners, axis=0)
    scene_bottom = 0.28 if thumbnails is not None else 0.0
    fig.update_layout(title=_plotly_title(title, caption), height=620, showlegend=False,
                      margin={"t": 110, "l": 10, "r": 10, "b": 10},
                      scene={"domain": {"y": [scene_bottom, 1]}, "aspectmode": "manual",
                             "aspectratio": {"x": 1, "y": float(extent[1] / extent[0]), "z": 0.6},
                             "xaxis_title": "", "yaxis_title": "",
                             "zaxis": {"range": [0, 1.01], "title": "confidence"}})
    if thumbnails is not None:
        for n, (image, name) in enumerate(zip(thumbnails, corner_names)):
            x = 0.2 + 0.3 * n
            fig.add_layout_image(source=image_to_data_uri(image, 128), xref="paper", yref="paper", x=x,
                                 y=0.24, sizex=0.2, sizey=0.2, xanchor="center", yanchor="top")
            fig.add_annotation(text=name, xref="paper", yref="paper", x=x, y=0.245, showarrow=False,
                               yanchor="bottom")
    return fig


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
    fig = go.Figure([
        go.Contour(x=gx, y=gy, z=gz, zmin=0, zmax=1, ncontours=21, colorscale="Viridis",
                   colorbar={"title": "confidence"}, connectgaps=False, name="confidence",
                   contours={"coloring": "fill", "showlines": True}),
        go.Scatter(x=xy[:, 0], y=xy[:, 1], mode="markers", marker={"size": 3, "color": "white"},
                   customdata=z, hovertemplate="confidence %{customdata:.3f}<extra></extra>", name="grid"),
        go.Scatter(x=outline[:, 0], y=outline[:, 1], mode="lines", line={"color": "black"}, name="edges",
                   hoverinfo="skip"),
    ])
    size = 0.28 * float(max(np.ptp(corners, axis=0)))
    anchors = (("right", "top"), ("left", "top"), ("center", "bottom"))
    for (x, y), image, name, (xanchor, yanchor) in zip(corners, thumbnails or [None] * 3, corner_names, anchors):
        if image is not None:
            fig.add_layout_image(source=image_to_data_uri(image, 128), xref="x", yref="y", x=x, y=y,
                                 sizex=size, sizey=size, xanchor=xanchor, yanchor=yanchor, layer="above")
        above = y + size if image is not None and yanchor == "bottom" else y  # over an image drawn above
        fig.add_annotation(x=x, y=above, text=name, showarrow=False, xanchor=xanchor, yanchor="bottom",
                           font={"size": 11})
    pad = size * 1.25
    fig.update_layout(title=_plotly_title(title, caption), height=620, showlegend=False, plot_bgcolor="white",
                      xaxis={"range": [low[0] - pad, high[0] + pad], "showgrid": False, "zeroline": False},
                      yaxis={"range": [low[1] - pad, high[1] + pad], "scaleanchor": "x", "showgrid": False,
                             "zeroline": False},
                      margin={"t": 110})
    return fig


# -- the star ------------------------------------------------------------------------
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
    fig = go.Figure([go.Scatter(x=t, y=row, mode="lines+markers", marker_size=4, name=name, opacity=0.8)
                     for row, name in zip(confidence, names)])
    fig.add_trace(go.Scatter(x=t, y=confidence.mean(0), mode="lines", name="mean",
                             line={"color": "black", "width": 4}))
    fig.update_layout(title=_plotly_title(title, caption), height=480, margin={"t": 110},
                      xaxis_title="t: (1 − t) source + t blind spot",
                      yaxis={"title": "source-class confidence", "range": [0, 1.02]})
    return fig


# -- the grid, the path --------------------------------------------------------------
def _show(ax, image):
    array = to_array(image)
    ax.imshow(array, cmap="gray" if array.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def blindspot_grid_figure(grid, class_names=None, image_names=None, caption: str = "",
                          title: str = "Blind spots: column = source, row = target", cell: float = 1.9,
                          overlay=None):
    """The paper's Figure 2 (matplotlib): entry (i, j) is the blind spot with image j
    as source and image i as target, the source-class confidence under it. ``overlay``:
    maps (k, k, H, W) in [0, 1] drawn over the images, e.g. Grad-CAM from
    :func:`blindspots_nb.analysis.saliency.grid_attribution_maps` (None: the images alone)."""
    import matplotlib.pyplot as plt

    k = grid.images.shape[0]
    if overlay is not None and tuple(overlay.shape) != (k, k, *grid.images.shape[-2:]):
        raise ValueError(f"overlay must hold one map per grid image, shape {(k, k, *grid.images.shape[-2:])}; "
                         f"got {tuple(overlay.shape)}")
    image_names = list(image_names) if image_names is not None else [str(n) for n in range(k)]
    def class_name(n):
        label = int(grid.labels[n])
        return class_names[label] if class_names is not None else str(label)
    fig, axes = plt.subplots(k, k, figsize=(cell * k + 0.8, cell * k + 1.4), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if overlay is None:
                _show(ax, grid.images[i, j])
            else:
                _show_overlay(ax, grid.images[i, j], overlay[i, j])
            ax.set_xlabel(f"{class_name(j)[:18]}: {float(grid.confidence[i, j]):.3f}", fontsize=8)
            if i == j:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:blue")
                    spine.set_linewidth(2.5)
    for n, name in enumerate(image_names):
        axes[0, n].set_title(f"source: {name}", fontsize=9)
        axes[n, 0].set_ylabel(f"target: {name}", fontsize=9)
    _matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.03 if overlay is None else 0.05, 1, 0.97))  # room for a caption naming the maps
    return fig


def _path_inputs(images, confidence, iterations):
    images = torch.as_tensor(images).detach().cpu()
    confidence = torch.as_tensor(confidence).detach().double().cpu().numpy()
    iterations = np.asarray(iterations)
    if images.dim() != 4 or not (len(images) == len(confidence) == len(iterations)):
        raise ValueError("need images (R, C, H, W) with one confidence and one iteration per image; got "
                         f"{tuple(images.shape)}, {confidence.shape}, {iterations.shape}")
    return images, confidence, iterations


def path_strip(images, confidence, iterations, class_name: str = "source class", caption: str = "",
               title: str = "The path of one traversal", max_frames: int = 8, cell: float = 1.7):
    """The paper's Figure 1 (matplotlib): images along a traversal, the iteration and
    the source-class confidence under each; at most ``max_frames`` evenly spaced
    frames, the first and the last included."""
    import matplotlib.pyplot as plt

    images, confidence, iterations = _path_inputs(images, confidence, iterations)
    keep = np.unique(np.round(np.linspace(0, len(images) - 1, min(max_frames, len(images)))).astype(int))
    images, confidence, iterations = images[keep], confidence[keep], iterations[keep]
    fig, axes = plt.subplots(1, len(images), figsize=(cell * len(images), cell + 1.3), squeeze=False)
    for ax, image, value, iteration in zip(axes[0], images, confidence, iterations):
        _show(ax, image)
        ax.set_xlabel(f"iteration {int(iteration)}\n{class_name[:18]}: {value:.3f}", fontsize=8)
    _matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig


def path_animation(images, confidence, iterations, class_name: str = "source class", caption: str = "",
                   title: str = "The path of one traversal", interval: int = 150):
    """The path as an animation (matplotlib ``FuncAnimation``): the image at each
    recorded iteration beside the confidence curve with the current point marked.
    Write it with :func:`save_figure` to .gif or .mp4."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    images, confidence, iterations = _path_inputs(images, confidence, iterations)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    _show(left, images[0])
    picture = left.images[0]
    right.plot(iterations, confidence, color="tab:blue")
    marker, = right.plot(iterations[:1], confidence[:1], "o", color="tab:red")
    right.set(xlabel="iteration", ylabel=f"confidence: {class_name[:24]}", ylim=(0, 1.02))
    label = left.set_title("")
    _matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))

    def draw(frame):
        picture.set_data(to_array(images[frame]))
        marker.set_data(iterations[frame:frame + 1], confidence[frame:frame + 1])
        label.set_text(f"iteration {int(iterations[frame])}: {confidence[frame]:.3f}")
        return picture, marker, label

    animation = FuncAnimation(fig, draw, frames=len(images), interval=interval, blit=False)
    plt.close(fig)  # shown through the saved file or ``animation.to_jshtml()``, not as a still
    return animation


# -- path widths ---------------------------------------------------------------------
_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")


def path_widths_figure(widths, position_label: str = "t along the path (0: source)", caption: str = "",
                       title: str = "Width of the high-confidence path") -> go.Figure:
    """The paper's Figure 4: along the path, the band between the lowest and highest
    quantile of confidence under orthogonal perturbations, one band per l2 radius."""
    x = widths.positions.double().numpy()
    fig = go.Figure(go.Scatter(x=x, y=widths.center.double().numpy(), mode="lines+markers", name="on the path",
                               line={"color": "black", "width": 3}))
    low_q, high_q = float(widths.quantiles[0]), float(widths.quantiles[-1])
    for r, radius in enumerate(widths.radii.tolist()):
        color = _COLORS[r % len(_COLORS)]
        group = f"radius {radius:g}"
        fig.add_trace(go.Scatter(x=x, y=widths.values[-1, r].numpy(), mode="lines", line={"color": color, "width": 1},
                                 legendgroup=group, showlegend=False, name=f"{group}: q{high_q:g}"))
        fig.add_trace(go.Scatter(x=x, y=widths.values[0, r].numpy(), mode="lines", line={"color": color, "width": 1},
                                 fill="tonexty", opacity=0.5, legendgroup=group,
                                 name=f"l2 radius {radius:g}: q{low_q:g}–q{high_q:g}"))
    fig.update_layout(title=_plotly_title(title, caption), height=480, margin={"t": 110}, xaxis_title=position_label,
                      yaxis={"title": f"source-class confidence ({widths.samples} samples)", "range": [0, 1.02]})
    return fig


# -- files ---------------------------------------------------------------------------
def save_figure(fig, path, include_plotlyjs=True) -> Path:
    """Write a figure: plotly as .html (self-contained by default, so it opens
    offline), matplotlib as .png, a matplotlib animation as .gif or .mp4."""
    from matplotlib.animation import Animation, writers
    from matplotlib.figure import Figure
    from plotly.basedatatypes import BaseFigure

    path = Path(path)
    kinds = {BaseFigure: (".html",), Figure: (".png",), Animation: (".gif", ".mp4")}
    allowed = next((suffixes for kind, suffixes in kinds.items() if isinstance(fig, kind)), None)
    if allowed is None:
        raise TypeError(f"cannot save a {type(fig).__name__}: expected a plotly figure, a matplotlib "
                        "figure or a matplotlib animation")
    if path.suffix.lower() not in allowed:
        raise ValueError(f"a {type(fig).__name__} is written as {' or '.join(allowed)}, not {path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4" and not writers.is_available("ffmpeg"):
        raise RuntimeError("writing .mp4 needs ffmpeg on the PATH (e.g. apt-get install ffmpeg); "
                           "write a .gif instead")
    if isinstance(fig, BaseFigure):
        fig.write_html(path, include_plotlyjs=include_plotlyjs)
    elif isinstance(fig, Figure):
        fig.savefig(path, dpi=120, bbox_inches="tight")
    else:
        fig.save(path, writer="pillow" if path.suffix.lower() == ".gif" else "ffmpeg")
    return path


# -- the reproduction's report ------------------------------------------------------------
def report_examples_figure(report, cell: float = 1.9):
    """Rows of (source, blind spot, target) from a :class:`~blindspots_nb.protocol.report.ModelReport`,
    with the source-class confidence under the source and the blind spot."""
    import matplotlib.pyplot as plt

    k = len(report.sources)
    fig, axes = plt.subplots(k, 3, figsize=(3 * cell + 0.6, k * cell + 1.2), squeeze=False)
    for n in range(k):
        source_class = report.source_classes[n][:22]
        for ax, image, label in (
                (axes[n, 0], report.sources[n], f"{source_class}: {report.initial_confidence[n]:.3f}"),
                (axes[n, 1], report.blind_spots[n], f"{source_class}: {report.confidence[n]:.3f}"),
                (axes[n, 2], report.targets[n], f"target: {report.target_classes[n][:22]}")):
            _show(ax, image)
            ax.set_xlabel(label, fontsize=8)
    for ax, title in zip(axes[0], ("source", "blind spot", "target")):
        ax.set_title(title, fontsize=9)
    _matplotlib_caption(fig, f"{report.model}: blind spots of round 0", report.caption)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig


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
    _matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.08, 1, 0.93))
    return fig


# -- path widths, the authors' surface -------------------------------------------------
def path_widths_surface(widths, quantile: float = 0.05, position_label: str = "LST iteration", caption: str = "",
                        title: str = "Width of the high-confidence path") -> go.Figure:
    """The authors' path-width figure: the ``quantile`` of source-class confidence under
    orthogonal perturbations as a 3-D surface over (position along the path, l2
    distance), mirrored in ±distance (a random orthogonal perturbation has no side,
    so -d shows the values of +d), with the confidence on the path itself at distance 0.

    ``widths``: a :class:`~blindspots_nb.analysis.paths.PathWidths` holding ``quantile``, e.g.
    from :func:`~blindspots_nb.analysis.paths.traversal_path_widths`.
    """
    match = torch.isclose(widths.quantiles.double(), torch.tensor(float(quantile), dtype=torch.float64))
    if not bool(match.any()):
        raise ValueError(f"the widths hold the quantiles {widths.quantiles.tolist()}, not {quantile:g}")
    radii = widths.radii.double().numpy()
    if not bool((radii > 0).all()):
        raise ValueError(f"radii must be positive (distance 0 is the path itself); got {radii.tolist()}")
    order = np.argsort(radii)
    half = widths.values[int(match.nonzero()[0, 0])].double().numpy()[order]  # (R, P), nearest first
    distance = np.concatenate([-radii[order][::-1], [0.0], radii[order]])
    z = np.concatenate([half[::-1], widths.center.double().numpy()[None], half])
    fig = go.Figure(go.Surface(x=widths.positions.double().numpy(), y=distance, z=z, colorscale="Viridis",
                               cmin=0, cmax=1, colorbar={"title": "confidence"},
                               hovertemplate="position %{x}<br>l2 distance %{y:g}<br>confidence %{z:.3f}"
                                             "<extra></extra>"))
    fig.update_layout(title=_plotly_title(title, caption), height=620, margin={"t": 110, "l": 10, "r": 10, "b": 10},
                      scene={"xaxis_title": position_label, "yaxis_title": "± l2 distance orthogonal to the path",
                             "zaxis": {"range": [0, 1.01],
                                       "title": f"q{quantile:g} of confidence ({widths.samples} samples)"},
                             "camera": {"eye": {"x": 0.55, "y": -0.95, "z": 1.9}}})  # their view: 60° up, -60° round
    return fig


# -- attribution maps along the path -------------------------------------------------
def _show_overlay(ax, image, heat, alpha: float = 0.5):
    """An image with a non-negative map in [0, 1] over it (jet colours, as the released code draws Grad-CAM)."""
    _show(ax, image)
    ax.imshow(torch.as_tensor(heat).detach().float().cpu().numpy(), cmap="jet", vmin=0, vmax=1, alpha=alpha,
              interpolation="bilinear")


def saliency_strip(path, class_names=None, caption: str = "", title: str | None = None, max_frames: int = 6,
                   cell: float = 1.7):
    """Images along an LST path (a :class:`~blindspots_nb.analysis.saliency.PathSaliency`) with the
    attribution map for the source class over each, the target class's maps in a third row
    when computed; the target with its own map in the last column. At most ``max_frames``
    evenly spaced points, the source and the blind spot included."""
    import matplotlib.pyplot as plt

    def name(label):
        return class_names[label] if class_names is not None else str(label)
    source_class, target_class = name(path.source_label)[:18], name(path.target_label)[:18]
    count = len(path.steps)
    keep = np.unique(np.round(np.linspace(0, count - 1, min(max_frames, count))).astype(int))
    rows = 2 if path.target_class_maps is None else 3
    fig, axes = plt.subplots(rows, len(keep) + 1, figsize=(cell * (len(keep) + 1), cell * rows + 1.4),
                             squeeze=False)
    for column, p in enumerate(keep):
        _show(axes[0, column], path.images[p])
        axes[0, column].set_title(path.steps[p][:26], fontsize=8)
        axes[0, column].set_xlabel(f"{source_class}: {float(path.source_confidence[p]):.3f}", fontsize=8)
        _show_overlay(axes[1, column], path.images[p], path.source_maps[p])
        axes[1, column].set_xlabel(f"ρ source {float(path.with_source[p]):.2f}, "
                                   f"target {float(path.with_target[p]):.2f}", fontsize=7)
        if rows == 3:
            _show_overlay(axes[2, column], path.images[p], path.target_class_maps[p])
            axes[2, column].set_xlabel(f"ρ source {float(path.target_class_with_source[p]):.2f}, "
                                       f"target {float(path.target_class_with_target[p]):.2f}", fontsize=7)
    _show(axes[0, -1], path.target)
    axes[0, -1].set_title("target", fontsize=8)
    axes[0, -1].set_xlabel(f"class: {target_class}", fontsize=8)
    _show_overlay(axes[1, -1], path.target, path.target_map)
    axes[1, -1].set_xlabel(f"its map for {target_class}", fontsize=7)
    if rows == 3:
        axes[2, -1].axis("off")
    axes[1, 0].set_ylabel(f"{path.method}:\n{source_class}", fontsize=8)
    if rows == 3:
        axes[2, 0].set_ylabel(f"{path.method}:\n{target_class}", fontsize=8)
    title = title or f"{path.method} along the path, for '{source_class}' (ρ: rank correlation with the maps " \
                     "of the source and of the target)"
    _matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    return fig


def saliency_correlation_figure(path, class_names=None, caption: str = "", title: str | None = None) -> go.Figure:
    """Per point of the path (x: share of the source-target distance covered), the rank
    correlation of the source-class map with the source's map and with the target's map;
    dashed, the same for the target-class map when computed."""
    def name(label):
        return class_names[label] if class_names is not None else str(label)
    source_class, target_class = name(path.source_label), name(path.target_label)
    x = path.progress.double().numpy()
    curves = [(path.with_source, f"map for '{source_class}' vs the source's map", "#1f77b4", "solid"),
              (path.with_target, f"map for '{source_class}' vs the target's map", "#ff7f0e", "solid")]
    if path.target_class_maps is not None:
        curves += [(path.target_class_with_source, f"map for '{target_class}' vs the source's map", "#1f77b4", "dash"),
                   (path.target_class_with_target, f"map for '{target_class}' vs the target's map", "#ff7f0e", "dash")]
    fig = go.Figure([go.Scatter(x=x, y=values.double().numpy(), mode="lines+markers", name=label, text=path.steps,
                                line={"color": color, "dash": dash},
                                hovertemplate="%{text}<br>covered %{x:.2f}<br>ρ %{y:.3f}")
                     for values, label, color, dash in curves])
    title = title or f"Does the model still look at the source? {path.method}, Spearman ρ along the path"
    fig.update_layout(title=_plotly_title(title, caption), height=480, margin={"t": 110},
                      xaxis_title="share of the source-target l2 distance covered (0: source)",
                      yaxis={"title": "rank correlation of the maps", "range": [-1.02, 1.02]})
    return fig


# -- adversarial examples beside blind spots ---------------------------------------------
def adversarial_vs_blindspots_figure(comparisons, caption: str = "", cell: float = 1.5,
                                     title: str = "Adversarial examples beside blind spots"):
    """Models side by side (matplotlib), one block of columns each: source, PGD
    adversarial example, LST blind spot, target, one row per pair (from
    :class:`~blindspots_nb.analysis.compare.Comparison` results), the model's class and
    confidence under every image."""
    import matplotlib.pyplot as plt

    from ..analysis.compare import KINDS

    comparisons = list(comparisons)
    k = max(c.k for c in comparisons)
    columns = len(KINDS) * len(comparisons)
    fig, axes = plt.subplots(k, columns, figsize=(cell * columns + 0.4, (cell + 0.45) * k + 1.4), squeeze=False)
    for block, c in enumerate(comparisons):
        for n in range(k):
            for column, kind in enumerate(KINDS):
                ax = axes[n, block * len(KINDS) + column]
                if n >= c.k:
                    ax.axis("off")
                    continue
                _show(ax, c.images[kind][n])
                name = c.class_names[int(c.predictions[kind][n])][:14]
                changed = kind in ("adversarial", "blind spot") and int(c.predictions[kind][n]) != int(c.labels[n])
                ax.set_xlabel(f"{name}: {float(c.confidence[kind][n]):.2f}", fontsize=7,
                              color="tab:red" if changed else "black")
                if n == 0:
                    ax.set_title(f"{c.model}\n{kind}" if column == 0 else kind, fontsize=8, loc="left" if column == 0 else "center")
    _matplotlib_caption(fig, title + " (red: the class changed)", caption)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig
