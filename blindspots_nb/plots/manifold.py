"""Images beside their nearest renderings on the FONTS manifold, and the taxonomy table,
from :mod:`blindspots_nb.analysis.taxonomy`'s results."""

from __future__ import annotations

from ..tools.markup import markdown_text
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
    """The taxonomy as Markdown (``summaries``: "model kind" -> a
    :func:`~blindspots_nb.analysis.taxonomy.summarize_kind` dict). First table: images judged
    by the oracle (clean sources, regular adversarial examples, blind spots): how many
    count (of those tried), median RMSE to the source letter's and the other letter's
    manifold (other: the model's prediction, or the target), the share the oracle gives
    the source, the other letter or neither, the share of uncertain verdicts (margin
    below the slack; "-" where not measured) and the shares of firm ones (the others) that
    name the source, the other letter, neither. Second table, per model: the on-manifold
    search's success (in any font; in the source's font), the median change of the
    transform it needed (1 = a whole range), and the error on random renderings."""
    percent = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
    fine = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731  (error rates near 0)
    number = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    judged = ["| model | kind | n (of tried) | RMSE to source letter | RMSE to other letter | oracle: source | "
              "oracle: other | oracle: neither | uncertain | firm: source / other / neither |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    on_manifold = {}

    def firm(s):  # the firm verdicts' shares, source / other / neither
        return "-" if s.get("firm_source") is None else " / ".join(percent(s[f"firm_{v}"])
                                                                   for v in ("source", "other", "neither"))

    for key, s in summaries.items():
        model, kind = key.rsplit(" ", 1)
        model = markdown_text(model)
        if kind in ("on_manifold", "renderings"):
            on_manifold.setdefault(model, {})[kind] = s
            continue
        if kind == "clean":  # the sources themselves: no second letter
            judged.append(f"| {model} | clean sources | {s['n']} | {number(s['median_distance_source'])} | - | "
                          f"{percent(s['oracle_source'])} | - | {percent(s['oracle_neither'])} | "
                          f"{percent(s.get('uncertain'))} | {firm(s)} |")
            continue
        other = "target" if kind == "lst" else "predicted"
        judged.append(f"| {model} | {kind} (other = {other}) | {s.get('n', 0)} ({s['attempts']}) | "
                      f"{number(s.get('median_distance_source'))} | {number(s.get('median_distance_other'))} | "
                      f"{percent(s.get('oracle_source'))} | {percent(s.get('oracle_other'))} | "
                      f"{percent(s.get('oracle_neither'))} | {percent(s.get('uncertain'))} | {firm(s)} |")
    if not on_manifold:
        return "\n".join(judged)
    rows = ["| model | on-manifold fooled: any font | own font | median transform change | sources | "
            "random renderings' error: all | train fonts | test fonts |", "|---|---|---|---|---|---|---|---|"]
    for model, kinds in on_manifold.items():
        found, base = kinds.get("on_manifold", {}), kinds.get("renderings", {})
        rows.append(f"| {model} | {percent(found.get('fooled'))} | {percent(found.get('fooled_own_font'))} | "
                    f"{number(found.get('median_transform_change'))} | {found.get('n', '-')} | "
                    f"{fine(base.get('error'))} ({base.get('n', '-')}) | {fine(base.get('error_train_fonts'))} | "
                    f"{fine(base.get('error_test_fonts'))} |")
    return "\n".join(judged) + "\n\n" + "\n".join(rows)


def disappearance_sentence(model_name: str, found) -> str:
    """A :class:`~blindspots_nb.analysis.layers.Disappearance` as a sentence: on how many
    paths the target disappears at which layer (the first layer where the blind spot is
    nearer its source than its target), most common first."""
    from collections import Counter

    paths = len(found.layer)
    counted = Counter(found.layer).most_common()
    parts = [f"at layer {layer} on {count} of {paths} paths" if layer is not None else
             f"at no layer on {count} of {paths} paths (the blind spot stays nearer its target throughout)"
             for layer, count in counted]
    return f"{model_name}: the target disappears {'; '.join(parts)} ({found.measure}, iteration {found.iteration})."
