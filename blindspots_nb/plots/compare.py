"""Adversarial examples beside blind spots, from ``analysis.compare``'s ``Comparison``
results."""

from __future__ import annotations

from .figures import matplotlib_caption
from .images import show_image


def adversarial_vs_blindspots_figure(comparisons, caption: str = "", cell: float = 1.5,
                                     title: str = "Adversarial examples beside blind spots"):
    """Models side by side (matplotlib), one block of columns each: source, PGD
    adversarial example, LST blind spot, target, one row per pair (from
    :class:`~blindspots_nb.analysis.compare.Comparison` results), the model's class and
    confidence under every image. The columns follow the kinds of image the first
    comparison holds, in its order."""
    import matplotlib.pyplot as plt

    comparisons = list(comparisons)
    kinds = list(comparisons[0].images)
    k = max(c.k for c in comparisons)
    columns = len(kinds) * len(comparisons)
    fig, axes = plt.subplots(k, columns, figsize=(cell * columns + 0.4, (cell + 0.45) * k + 1.4), squeeze=False)
    for block, c in enumerate(comparisons):
        for n in range(k):
            for column, kind in enumerate(kinds):
                ax = axes[n, block * len(kinds) + column]
                if n >= c.k:
                    ax.axis("off")
                    continue
                show_image(ax, c.images[kind][n])
                name = c.class_names[int(c.predictions[kind][n])][:14]
                changed = kind in ("adversarial", "blind spot") and int(c.predictions[kind][n]) != int(c.labels[n])
                ax.set_xlabel(f"{name}: {float(c.confidence[kind][n]):.2f}", fontsize=7,
                              color="tab:red" if changed else "black")
                if n == 0:
                    ax.set_title(f"{c.model}\n{kind}" if column == 0 else kind, fontsize=8,
                                 loc="left" if column == 0 else "center")
    matplotlib_caption(fig, title + " (red: the class changed)", caption)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return fig
