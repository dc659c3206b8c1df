"""Images beside their nearest renderings on the FONTS manifold, from
:mod:`blindspots_nb.analysis.taxonomy`'s results (its table and the layer finding in words:
:mod:`blindspots_nb.analysis.words`)."""

from __future__ import annotations

from .figures import matplotlib_caption
from .images import show_image


def nearest_renderings_figure(columns: dict, row_labels: list[str], caption: str = "", cell: float = 1.3,
                              title: str = "Blind spots beside their nearest renderings"):
    """One row per image (matplotlib): the columns given (name -> (N, 1, H, W) images, e.g.
    source, blind spot, nearest rendering of the source letter, of the target letter,
    target), under each row's first image its label (e.g. the distances and the oracle's verdict)."""
    import matplotlib.pyplot as plt

    names = list(columns)
    rows = len(row_labels)
    fig, axes = plt.subplots(rows, len(names), figsize=(cell * len(names) + 0.4, (cell + 0.5) * rows + 1.2),
                             squeeze=False)
    for n in range(rows):
        for column, name in enumerate(names):
            ax = axes[n, column]
            show_image(ax, columns[name][n])
            if n == 0:
                ax.set_title(name, fontsize=8)
        axes[n, 0].set_ylabel(row_labels[n], fontsize=7, rotation=0, ha="right", va="center")
    matplotlib_caption(fig, title, caption)
    fig.tight_layout(rect=(0, 0.06, 1, 0.94))
    return fig
