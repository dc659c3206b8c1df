"""The examples of the reproduction's report, from a ``protocol.report.ModelReport``."""

from __future__ import annotations

from .figures import matplotlib_caption
from .images import show_image


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
            show_image(ax, image)
            ax.set_xlabel(label, fontsize=8)
    for ax, title in zip(axes[0], ("source", "blind spot", "target")):
        ax.set_title(title, fontsize=9)
    matplotlib_caption(fig, f"{report.model}: blind spots of round 0", report.caption)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    return fig
