"""Blind spots and the paths to them: the grid of blind spots of k images (the paper's
Figure 2), the path of one traversal as a strip or an animation (Figure 1), and the
width of the high-confidence path (Figure 4 and the authors' surface), from
``analysis.paths``' results."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch

from .figures import matplotlib_caption, plotly_title
from .images import show_image, to_array
from .saliency import saliency_overlay


def blindspot_grid_figure(grid, class_names=None, image_names=None, caption: str = "",
                          title: str = "Blind spots: column = source, row = target", cell: float = 1.9,
                          overlay=None):
    """The paper's Figure 2 (matplotlib): entry (i, j) is the blind spot with image j
    as source and image i as target, the source-class confidence under it. ``overlay``:
    maps (k, k, H, W) >= 0 drawn over the images as :func:`~.saliency.saliency_overlay` draws
    them, e.g. Grad-CAM from :func:`blindspots_nb.analysis.saliency.grid_attribution_maps`
    (None: the images alone)."""
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
            show_image(ax, grid.images[i, j] if overlay is None else saliency_overlay(grid.images[i, j], overlay[i, j]))
            ax.set_xlabel(f"{class_name(j)[:18]}: {float(grid.confidence[i, j]):.3f}", fontsize=8)
            if i == j:
                for spine in ax.spines.values():
                    spine.set_edgecolor("tab:blue")
                    spine.set_linewidth(2.5)
    for n, name in enumerate(image_names):
        axes[0, n].set_title(f"source: {name}", fontsize=9)
        axes[n, 0].set_ylabel(f"target: {name}", fontsize=9)
    matplotlib_caption(fig, title, caption)
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


def _even_frames(iterations, max_frames: int) -> np.ndarray:
    """Indices of at most ``max_frames`` recorded frames, the first and the last included,
    whose iterations are evenly spaced where the record allows it: the most frames, down
    to half of ``max_frames``, that fall exactly on an even grid from the first iteration
    to the last (11 records 0, 4, ..., 40 and 8 frames at most: the 6 at 0, 8, ..., 40);
    where none do, ``max_frames`` frames nearest to an even grid. Rounding frame indices
    instead gives uneven labels (0, 4, 12, 16, 24, ...)."""
    iterations = np.asarray(iterations, dtype=float)
    if max_frames < 2:
        raise ValueError(f"max_frames must be at least 2 (the first and the last frame); got {max_frames}")
    if len(iterations) <= max_frames:
        return np.arange(len(iterations))

    def nearest(count):
        grid = np.linspace(iterations[0], iterations[-1], count)
        keep = np.unique(np.abs(iterations[None, :] - grid[:, None]).argmin(axis=1))
        return keep, len(keep) == count and np.allclose(iterations[keep], grid)

    for count in range(max_frames, max(2, (max_frames + 1) // 2) - 1, -1):
        keep, exact = nearest(count)
        if exact:
            return keep
    return nearest(max_frames)[0]


def path_strip(images, confidence, iterations, class_name: str = "source class", caption: str = "",
               title: str = "The path of one traversal", max_frames: int = 8, cell: float = 1.7):
    """The paper's Figure 1 (matplotlib): images along a traversal, the iteration and
    the source-class confidence under each; at most ``max_frames`` frames at evenly spaced
    iterations (:func:`_even_frames`), the first and the last included. The title sits just
    above the images, so a saved or displayed strip (``bbox_inches="tight"``) has no empty
    band above them."""
    import matplotlib.pyplot as plt

    images, confidence, iterations = _path_inputs(images, confidence, iterations)
    keep = _even_frames(iterations, max_frames)
    images, confidence, iterations = images[keep], confidence[keep], iterations[keep]
    fig, axes = plt.subplots(1, len(images), figsize=(cell * len(images), cell + 1.3), squeeze=False)
    for ax, image, value, iteration in zip(axes[0], images, confidence, iterations):
        show_image(ax, image)
        ax.set_xlabel(f"iteration {int(iteration)}\n{class_name[:18]}: {value:.3f}", fontsize=8)
    matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    for ax in axes[0]:
        ax.apply_aspect()  # square images are narrower than their slot: find where they really are
    fig.suptitle(title, y=max(ax.get_position().y1 for ax in axes[0]) + 0.03, va="bottom")
    return fig


def path_animation(images, confidence, iterations, class_name: str = "source class", caption: str = "",
                   title: str = "The path of one traversal", interval: int = 150):
    """The path as an animation (matplotlib ``FuncAnimation``): the image at each
    recorded iteration beside the confidence curve with the current point marked.
    Write it with :func:`~.figures.save_figure` to .gif or .mp4."""
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    images, confidence, iterations = _path_inputs(images, confidence, iterations)
    fig, (left, right) = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={"width_ratios": [1, 1.3]})
    show_image(left, images[0])
    picture = left.images[0]
    right.plot(iterations, confidence, color="tab:blue")
    marker, = right.plot(iterations[:1], confidence[:1], "o", color="tab:red")
    right.set(xlabel="iteration", ylabel=f"confidence: {class_name[:24]}", ylim=(0, 1.02))
    label = left.set_title("")
    matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))

    def draw(frame):
        picture.set_data(to_array(images[frame]))
        marker.set_data(iterations[frame:frame + 1], confidence[frame:frame + 1])
        label.set_text(f"iteration {int(iterations[frame])}: {confidence[frame]:.3f}")
        return picture, marker, label

    animation = FuncAnimation(fig, draw, frames=len(images), interval=interval, blit=False)
    plt.close(fig)  # shown through the saved file or ``animation.to_jshtml()``, not as a still
    return animation


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
    fig.update_layout(title=plotly_title(title, caption), height=480, margin={"t": 110}, xaxis_title=position_label,
                      yaxis={"title": f"source-class confidence ({widths.samples} samples)", "range": [0, 1.02]})
    return fig


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
    fig.update_layout(title=plotly_title(title, caption), height=620, margin={"t": 110, "l": 10, "r": 10, "b": 10},
                      scene={"xaxis_title": position_label, "yaxis_title": "± l2 distance orthogonal to the path",
                             "zaxis": {"range": [0, 1.01],
                                       "title": f"q{quantile:g} of confidence ({widths.samples} samples)"},
                             "camera": {"eye": {"x": 0.55, "y": -0.95, "z": 1.9}}})  # their view: 60° up, -60° round
    return fig
