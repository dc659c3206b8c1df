"""Images beside their nearest renderings on the FONTS manifold, and the taxonomy table,
from :mod:`blindspots_nb.analysis.taxonomy`'s results."""

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


def taxonomy_markdown(summaries: dict) -> str:
    """The taxonomy as a Markdown table: per model and kind of example (``summaries``: a
    mapping "model kind" -> :func:`~blindspots_nb.analysis.taxonomy.summarize`'s dict, the
    on-manifold kind with its success rates), the share the oracle gives the source, the
    other letter (prediction or target) or neither, and the median RMSEs to the manifolds."""
    percent = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    fine = lambda v: f"{100 * v:.1f}%"  # noqa: E731  (error rates near 0)
    number = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    lines = ["| model | kind | n (of tried) | RMSE to source letter | RMSE to other letter | oracle: source | "
             "oracle: other | oracle: neither |", "|---|---|---|---|---|---|---|---|"]
    for key, s in summaries.items():
        model, kind = key.split(" ", 1)
        if kind == "renderings":
            lines.append(f"| {model} | random renderings (error: all; train fonts; test fonts) | {s['n']} | "
                         f"0 (a rendering) | - | {fine(s['error'])}; {fine(s['error_train_fonts'])}; "
                         f"{fine(s['error_test_fonts'])} | - | - |")
            continue
        if kind == "on_manifold":
            lines.append(f"| {model} | on-manifold (fooled: any font; own font) | {s['n']} | 0 (a rendering) | - | "
                         f"{percent(s['fooled'])}; {percent(s['fooled_own_font'])} | - | - |")
            continue
        if kind == "clean":  # the sources themselves: no second letter
            lines.append(f"| {model} | clean sources | {s['n']} | {number(s['median_distance_source'])} | - | "
                         f"{percent(s['oracle_source'])} | - | {percent(s['oracle_neither'])} |")
            continue
        other = "target" if kind == "lst" else "predicted"
        lines.append(f"| {model} | {kind} (other = {other}) | {s.get('n', 0)} ({s['attempts']}) | "
                     f"{number(s.get('median_distance_source'))} | {number(s.get('median_distance_other'))} | "
                     f"{percent(s.get('oracle_source'))} | {percent(s.get('oracle_other'))} | "
                     f"{percent(s.get('oracle_neither'))} |")
    return "\n".join(lines)
