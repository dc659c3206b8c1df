"""Results in words: the sentences, captions and Markdown that notebooks and scripts show
beside the figures, each computed from a result's numbers (never written by hand), with
class and model names escaped as Markdown text.

:func:`method_caption` says what produced attribution maps; :func:`saliency_sentences`
what a :class:`~blindspots_nb.analysis.saliency.PathSaliency` shows; :func:`comparison_sentences`
what the tables of :mod:`blindspots_nb.analysis.compare` show; :func:`taxonomy_markdown` the
taxonomy of :mod:`blindspots_nb.analysis.taxonomy` as tables; :func:`disappearance_sentence`
where the target disappears along the layers (:mod:`blindspots_nb.analysis.layers`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..tools.markup import markdown_text
from .saliency import check_method, gradcam_layer, occlusion_window

if TYPE_CHECKING:
    from .compare import Transfer
    from .saliency import PathSaliency


def method_caption(model, method: str, **options) -> str:
    """What produced the maps, for a figure's caption: the method, its options (Grad-CAM's
    layer by its name in the model, occlusion's window and stride for the model's input size)
    and Captum's version."""
    from importlib.metadata import version

    check_method(method)
    if method == "gradcam":
        layer = gradcam_layer(model, options.get("layer"))
        names = [name for name, module in model.named_modules() if module is layer]
        options = {**options, "layer": names[0] if names else type(layer).__name__}
    elif method == "integrated_gradients":
        options = {"n_steps": 32, "baseline": 0.0, **options}
        if isinstance(options["baseline"], torch.Tensor):
            options["baseline"] = f"tensor {tuple(options['baseline'].shape)}"
        options.pop("internal_batch_size", None)  # memory, not the result
    elif method == "occlusion":
        window, stride = occlusion_window(model.input_size, options.get("window"), options.get("stride"))
        options = {"window": window, "stride": stride, "baseline": options.get("baseline", 0.0)}
    settings = ", ".join(f"{key}={value}" for key, value in options.items())
    return f"attribution: {method}{f' ({settings})' if settings else ''}, captum {version('captum')}"


def saliency_sentences(path: PathSaliency, class_names=None) -> str:
    """One sentence on the result, from its numbers: at the blind spot, does the map for the
    source class resemble the source's map or the target's? Markdown (class names escaped)."""
    def name(label):
        return markdown_text(class_names[label]) if class_names is not None else f"class {label}"
    source, target = float(path.with_source[-1]), float(path.with_target[-1])
    keeps = (f"the model still names '{name(path.source_label)}' ({float(path.source_confidence[-1]):.3f})"
             if path.keeps_source_class else
             f"the model no longer names '{name(path.source_label)}' but '{name(int(path.predicted[-1]))}'")
    if max(source, target) <= 0:  # a rank correlation that is not positive is no resemblance
        verdict = "it resembles neither the source's map nor the target's"
    elif source > target:
        verdict = "it still looks where the source's content was, though that content is no longer visible"
    elif target > float(path.with_target[0]):
        verdict = "it looks where the target's content is, not where the source's was"
    else:  # no closer to the target's map than the source's own map was
        verdict = ("it has left the source's map, yet it is no closer to the target's map than the source's own "
                   "map was")
    where = path.steps[-1].removeprefix("blind spot").strip(" ()")
    sentence = (f"At the blind spot{f' ({where})' if where else ''}, {keeps}; its "
                f"{path.method} map for that class ranks the pixels like the source's map with ρ = {source:.2f} and "
                f"like the target's map with ρ = {target:.2f}: {verdict} (at the source, the two maps correlate "
                f"with ρ = {float(path.with_target[0]):.2f}).")
    crossing = next((p for p in range(len(path.steps)) if not bool(path.source_map_ahead[p])), None)
    if crossing is not None and 0 < crossing < len(path.steps) - 1:
        sentence += f" The target's map takes the lead at {path.steps[crossing]}."
    if path.target_class_maps is not None:
        sentence += (f" The map for the target class '{name(path.target_label)}' at the blind spot correlates with "
                     f"the target's map at ρ = {float(path.target_class_with_target[-1]):.2f} and with the source's "
                     f"at ρ = {float(path.target_class_with_source[-1]):.2f}.")
    return sentence


def comparison_sentences(comparisons, result: Transfer | None = None) -> str:
    """Sentences that say what :func:`~blindspots_nb.analysis.compare.distance_table` and
    :func:`~blindspots_nb.analysis.compare.transfer_table` show, computed from their numbers
    (``comparisons``: :class:`~blindspots_nb.analysis.compare.Comparison` objects)."""
    sentences = []
    for c in comparisons:
        adv, blind = c.distances["adversarial to source"], c.distances["blind spot to target"]
        spots = c.other_class
        where = (f", which lie at RMSE {float(blind['rmse'][spots].mean()):.3f} (l_inf "
                 f"{float(blind['linf'][spots].mean()):.2f}, SSIM {float(blind['ssim'][spots].mean()):.2f}) from "
                 "their targets" if spots.any() else "")
        sentences.append(
            f"{c.model}: {c.attack} at {c.threat.norm} {c.threat.radius:.4g} changes the class of "
            f"{int(c.fooled.sum())} of {c.k} sources while staying at RMSE {float(adv['rmse'].mean()):.3f} "
            f"(SSIM {float(adv['ssim'].mean()):.2f}) "
            f"from them; LST keeps the source class within delta on {c.blind_spot_words()}{where}.")
    if result is not None and len(result.models) > 1:
        for a, name_a in enumerate(result.models):
            for b, name_b in enumerate(result.models):
                if a != b:
                    spots = int(result.pairs()[a])
                    sentences.append(
                        f"{name_b} is fooled by {int(result.fooled[a, b])}/{result.k} of {name_a}'s adversarial "
                        f"examples, keeps {name_a}'s source class on {int(result.keeps_source[a, b])}/{spots} of "
                        f"its blind spots and sees the target in {int(result.sees_target[a, b])}/{spots}.")
    return " ".join(sentences)


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
