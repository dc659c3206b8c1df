"""Attribution maps drawn over images, the same picture in the figures and in the live
explorer: :func:`saliency_overlay` colours a map and lays it over its image. From
``analysis.saliency``'s ``PathSaliency``: the maps along an LST path, and how they
correlate with the source's and the target's maps."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import torch
from matplotlib import colormaps

from .figures import matplotlib_caption, plotly_title
from .images import show_image

SALIENCY_COLOURS = "jet"  # matplotlib colour map of the maps, as the authors' released code draws Grad-CAM
SALIENCY_TOP = 0.98  # the map's quantile from which on it shows in the brightest colour


def saliency_overlay(image, saliency, opacity: float = 0.5) -> torch.Tensor:
    """``image`` (C, H, W) in [0, 1] under its ``saliency`` map (H, W) >= 0 as a heat map,
    (3, H, W) in [0, 1]: ``opacity`` of the map's colour (``SALIENCY_COLOURS``) over the
    rest of the image. Gradient maps are sparse (a few pixels near the maximum), so the map
    is divided by its ``SALIENCY_TOP`` quantile (its maximum where that quantile is 0) and
    clipped at 1, as Captum's own visualisations clip outliers; otherwise nearly all of it
    would show as 0. An all-zero map shows in the lowest colour."""
    image = torch.as_tensor(image).detach().float().cpu()
    saliency = torch.as_tensor(saliency).detach().float().cpu()
    top = float(torch.quantile(saliency, SALIENCY_TOP)) or float(saliency.max())
    levels = (saliency / top).clamp(0, 1) if top > 0 else torch.zeros_like(saliency)
    colours = torch.from_numpy(colormaps[SALIENCY_COLOURS](levels.numpy())[..., :3]).permute(2, 0, 1)
    return (1 - opacity) * image.expand(3, -1, -1) + opacity * colours.float()


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
        show_image(axes[0, column], path.images[p])
        axes[0, column].set_title(path.steps[p][:26], fontsize=8)
        axes[0, column].set_xlabel(f"{source_class}: {float(path.source_confidence[p]):.3f}", fontsize=8)
        show_image(axes[1, column], saliency_overlay(path.images[p], path.source_maps[p]))
        axes[1, column].set_xlabel(f"ρ source {float(path.with_source[p]):.2f}, "
                                   f"target {float(path.with_target[p]):.2f}", fontsize=7)
        if rows == 3:
            show_image(axes[2, column], saliency_overlay(path.images[p], path.target_class_maps[p]))
            axes[2, column].set_xlabel(f"ρ source {float(path.target_class_with_source[p]):.2f}, "
                                       f"target {float(path.target_class_with_target[p]):.2f}", fontsize=7)
    show_image(axes[0, -1], path.target)
    axes[0, -1].set_title("target", fontsize=8)
    axes[0, -1].set_xlabel(f"class: {target_class}", fontsize=8)
    show_image(axes[1, -1], saliency_overlay(path.target, path.target_map))
    axes[1, -1].set_xlabel(f"its map for {target_class}", fontsize=7)
    if rows == 3:
        axes[2, -1].axis("off")
    axes[1, 0].set_ylabel(f"{path.method}:\n{source_class}", fontsize=8)
    if rows == 3:
        axes[2, 0].set_ylabel(f"{path.method}:\n{target_class}", fontsize=8)
    title = title or f"{path.method} along the path, for '{source_class}' (ρ: rank correlation with the maps " \
                     "of the source and of the target)"
    matplotlib_caption(fig, title, caption)
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
    fig.update_layout(title=plotly_title(title, caption), height=480, margin={"t": 110},
                      xaxis_title="share of the source-target l2 distance covered (0: source)",
                      yaxis={"title": "rank correlation of the maps", "range": [-1.02, 1.02]})
    return fig
