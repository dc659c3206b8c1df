"""Attribution maps with Captum: where a classifier looks when it names a class.

:func:`attribution_maps` turns Captum's attributions into one non-negative map per image,
at the image's resolution, normalised to maximum 1 (a map that is zero everywhere stays
zero), so that maps of different images and methods can be compared by their ranks:

- ``"saliency"``: Captum's ``Saliency``, the absolute gradient of the class logit, its
  largest value over the colour channels (Simonyan et al. 2014);
- ``"integrated_gradients"``: Captum's ``IntegratedGradients`` from a black image
  (option ``baseline``, a number or an image batch; ``n_steps``, default 32;
  ``internal_batch_size``, default 16), summed over the channels, absolute value;
- ``"gradcam"``: Captum's ``LayerGradCam`` (positive part), upsampled bilinearly with
  ``LayerAttribution.interpolate``. The layer (option ``layer``: a module of the model
  or its dotted name) is by default the model's *last* ``nn.Conv2d`` in registration
  order (``model.modules()``), the last convolution before the pooling head in the
  registry's CNNs. A model with no convolution, or whose last convolution is followed by
  attention blocks (a ViT, whose only convolution cuts the image into patches), has no
  such layer: pass ``layer=`` there;
- ``"occlusion"``: Captum's ``Occlusion`` (Zeiler & Fergus 2014), the black-box map: a square
  patch of every channel (option ``window``, default an eighth of the image's height) is set
  to ``baseline`` (default 0, black) at every ``stride`` (default half the window), and each
  pixel gets the mean drop of the class logit over the patches that covered it; its positive
  part (where hiding the pixel lowers the class). Gradient-free: one forward pass per patch
  position (about 15 x 15 by default, ``perturbations_per_eval`` of them per batch).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam, Occlusion, Saliency

from ..lst import LSTResult, Traversal
from ..execution import Execution
from ..models import class_confidence, module_device, predict
from ..tools.tensors import check_images, class_indices, l2_distance

METHODS = ("saliency", "integrated_gradients", "gradcam", "occlusion")


def _is_attention(module: nn.Module) -> bool:
    return isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention")


def gradcam_layer(model: nn.Module, layer: nn.Module | str | None = None) -> nn.Module:
    """The layer Grad-CAM reads: ``layer`` (a module or its dotted name in ``model``), or by
    default the last ``nn.Conv2d`` of ``model.modules()`` unless attention blocks follow it."""
    if isinstance(layer, nn.Module):
        return layer
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as error:
            raise ValueError(f"the model has no layer {layer!r} for Grad-CAM ({error})") from error
    if layer is not None:
        raise TypeError(f"layer must be a module of the model or its dotted name, got {type(layer).__name__}")
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    convolutions = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not convolutions:
        raise ValueError("Grad-CAM needs a convolutional layer and the model has none; pass "
                         "layer=<a module or its dotted name> whose output is a (B, C, h, w) map")
    last = convolutions[-1]
    if any(_is_attention(m) for m in modules[last + 1:]):
        raise ValueError(f"the model's last convolution ({type(modules[last]).__name__}) is followed by "
                         "attention blocks (a vision transformer): its Grad-CAM says nothing about the "
                         "class. Pass layer=<a module or its dotted name> to choose one, or use "
                         "method='saliency' or 'integrated_gradients'")
    return modules[last]


def check_method(method: str) -> None:
    """A ValueError naming the known methods unless ``method`` is one of :data:`METHODS`."""
    if method not in METHODS:
        raise ValueError(f"unknown attribution method {method!r}; known methods: {', '.join(METHODS)}")


def _normalise(maps: torch.Tensor) -> torch.Tensor:
    """Each map divided by its maximum; an all-zero map stays zero."""
    peak = maps.flatten(1).amax(1).view(-1, 1, 1)
    return maps / torch.where(peak > 0, peak, torch.ones_like(peak))


def occlusion_window(images_or_size, window=None, stride=None) -> tuple[tuple[int, int], tuple[int, int]]:
    """The occlusion patch (h, w) and stride (h, w) for images of height and width
    ``images_or_size`` ((H, W), (C, H, W), or a batch): ``window`` (an int or (h, w); default
    H // 8, at least 1) and ``stride`` (default half the window, at least 1; at most the window,
    so that every pixel is hidden by some patch)."""
    height, width = tuple(getattr(images_or_size, "shape", images_or_size))[-2:]
    window = _pair(max(1, height // 8) if window is None else window)
    stride = _pair(max(1, window[0] // 2) if stride is None else stride)
    if None in window + stride or min(window + stride) < 1 or window[0] > height or window[1] > width:
        raise ValueError(f"occlusion needs a window of 1 to ({height}, {width}) pixels and a stride of at least 1 "
                         f"(integers or pairs of them), got window {window}, stride {stride}")
    if any(step > side < full for step, side, full in zip(stride, window, (height, width))):
        raise ValueError(f"occlusion's stride {stride} is longer than its window {window}: pixels between the "
                         "patches would never be hidden")
    return window, stride


def _pair(value) -> tuple:
    """An int as (value, value), a pair of ints as it is; anything else as (None,)."""
    values = (value, value) if not isinstance(value, (tuple, list)) else tuple(value)
    ok = len(values) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in values)
    return values if ok else (None,)


def attributions(model, images: torch.Tensor, labels, method: str = "saliency", **options) -> torch.Tensor:
    """Captum's raw attributions for each image's label, on the model's device:
    (B, C, H, W) absolute gradients (``"saliency"``), (B, C, H, W) signed integrated
    gradients, whose sum is f(x) - f(baseline) of the label's logit, (B, 1, h, w)
    Grad-CAM at the layer's resolution, or (B, C, H, W) occlusion, the mean drop of the label's
    logit over the patches that covered each pixel (the same in every channel: a patch covers
    them all). Arguments as :func:`attribution_maps`."""
    check_method(method)
    allowed = {"saliency": set(), "integrated_gradients": {"baseline", "n_steps", "internal_batch_size"},
               "gradcam": {"layer"},
               "occlusion": {"window", "stride", "baseline", "perturbations_per_eval"}}[method]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"method {method!r} takes no option(s) {unknown}; it takes {sorted(allowed) or 'none'}")
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a non-empty batch (B, C, H, W) in [0, 1], got {shape}")
    check_images("images", images)
    device = module_device(model)
    images = images.detach().to(device).requires_grad_(True)  # Captum warns otherwise
    targets = class_indices(labels, "labels", images.shape[0], device)
    if hasattr(model, "eval"):
        model.eval()
    if method == "saliency":
        return Saliency(model).attribute(images, target=targets, abs=True).detach()
    if method == "integrated_gradients":
        baseline = options.get("baseline", 0.0)
        if isinstance(baseline, torch.Tensor):
            baseline = baseline.to(device)
        return IntegratedGradients(model).attribute(
            images, baselines=baseline, target=targets, n_steps=options.get("n_steps", 32),
            internal_batch_size=options.get("internal_batch_size", 16)).detach()
    if method == "occlusion":
        window, stride = occlusion_window(images, options.get("window"), options.get("stride"))
        baseline, channels = options.get("baseline", 0.0), images.shape[1]
        if isinstance(baseline, bool) or not isinstance(baseline, (int, float)):
            raise ValueError(f"occlusion's baseline is a number (the value of a hidden pixel), got {baseline!r}")
        with torch.no_grad():
            return Occlusion(model).attribute(
                images.detach(), sliding_window_shapes=(channels, *window), strides=(channels, *stride),
                baselines=float(baseline), target=targets,
                perturbations_per_eval=options.get("perturbations_per_eval", 16)).detach()
    layer = gradcam_layer(model, options.get("layer"))
    cam = LayerGradCam(model, layer).attribute(images, target=targets, relu_attributions=True)
    if cam.dim() != 4:
        raise ValueError(f"Grad-CAM needs a layer with (B, C, h, w) output; {type(layer).__name__} "
                         f"gives {tuple(cam.shape)}: pass another layer=")
    return cam.detach()


def attribution_maps(model, images: torch.Tensor, labels, method: str = "saliency",
                     **options) -> torch.Tensor:
    """One attribution map per image for its label: (B, H, W) float on the CPU, >= 0,
    each with maximum 1 (or zero everywhere). ``images`` are (B, C, H, W) in [0, 1].

    ``method`` is one of :data:`METHODS`; ``options`` go to it (module docstring):
    ``baseline``, ``n_steps``, ``internal_batch_size`` for integrated gradients,
    ``layer`` for Grad-CAM, ``window``, ``stride``, ``baseline``, ``perturbations_per_eval``
    for occlusion.
    """
    raw = attributions(model, images, labels, method, **options)
    if method == "saliency":
        maps = raw.amax(1)
    elif method == "integrated_gradients":
        maps = raw.sum(1).abs()
    elif method == "occlusion":
        maps = raw.mean(1).clamp_min(0)
    else:
        maps = LayerAttribution.interpolate(raw, tuple(images.shape[2:]), "bilinear")[:, 0].clamp_min(0)
    return _normalise(maps.float().cpu())


def rank_correlation(maps: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Spearman rank correlation of each map (P, H, W) with ``reference`` (H, W) or with
    its own reference (P, H, W), over the pixels (ties share their mean rank), (P,)
    float64. A constant map has no ranks to correlate: its value is NaN."""
    from torchmetrics.functional import spearman_corrcoef

    maps = maps.detach().double().cpu().flatten(1)
    reference = reference.detach().double().cpu()
    reference = reference.flatten().expand_as(maps) if reference.dim() == 2 else reference.flatten(1)
    if reference.shape != maps.shape:
        raise ValueError(f"maps {tuple(maps.shape)} and reference {tuple(reference.shape)} differ in size")
    varying = (maps.amax(1) > maps.amin(1)) & (reference.amax(1) > reference.amin(1))
    out = torch.full((maps.shape[0],), float("nan"), dtype=torch.float64)
    if bool(varying.any()):
        out[varying] = spearman_corrcoef(maps[varying].T, reference[varying].T).reshape(-1).double()
    return out


def _maps_in_batches(model, images, labels: torch.Tensor, method, batch_size, options):
    return torch.cat([attribution_maps(model, chunk, part, method, **options)
                      for chunk, part in zip(images.split(batch_size), labels.split(batch_size))])


@dataclass
class PathSaliency:
    """Attribution maps along one LST path, and how they compare.

    ``images[0]`` is the clean source, then the recorded steps; ``images[-1]`` is the
    blind spot. ``source_maps[p]`` explains the source class at ``images[p]``;
    ``target_map`` explains the target class at the target image. ``with_source[p]`` and
    ``with_target[p]`` are the Spearman rank correlations of ``source_maps[p]`` with
    ``source_maps[0]`` and with ``target_map``. The ``target_class_*`` fields do the
    same for the target class at each point (None when not computed).
    """

    method: str
    steps: list[str]                   # what each point is: "source", "iteration 8", ...
    progress: torch.Tensor             # (P,) share of the source-target l2 distance covered
    images: torch.Tensor               # (P, C, H, W)
    target: torch.Tensor               # (C, H, W)
    source_label: int
    target_label: int
    predicted: torch.Tensor            # (P,) the model's class at each point
    source_confidence: torch.Tensor    # (P,) source-class confidence at each point
    source_maps: torch.Tensor          # (P, H, W)
    target_map: torch.Tensor           # (H, W)
    with_source: torch.Tensor          # (P,)
    with_target: torch.Tensor          # (P,)
    target_class_maps: torch.Tensor | None = None        # (P, H, W)
    target_class_with_source: torch.Tensor | None = None  # (P,) vs source_maps[0]
    target_class_with_target: torch.Tensor | None = None  # (P,) vs target_map

    @property
    def keeps_source_class(self) -> bool:
        """Whether the model names the source class at the blind spot."""
        return int(self.predicted[-1]) == self.source_label

    @property
    def source_map_ahead(self) -> torch.Tensor:
        """(P,) booleans: the source-class map resembles the source's map more than the
        target's (by rank correlation) at each point."""
        return self.with_source > self.with_target


def _path_of(path, index, source, target, source_label, target_label):
    """(images, step names, source label, target label, target image) of any accepted path."""
    if isinstance(path, Traversal):
        return _path_of(path.result(), index, path.sources[index] if source is None else source,
                        path.targets[index] if target is None else target, source_label, target_label)
    if isinstance(path, LSTResult):
        history = path.history
        if not history.images:
            raise ValueError("the traversal recorded no images along its path: run it with "
                             "LSTConfig(record_images=True), or pass the path's images")
        if source is None or target is None:
            raise ValueError("an LSTResult keeps neither its source nor its target image: pass "
                             "source= and target= (or pass the Traversal)")
        if not 0 <= index < path.images.shape[0]:
            raise IndexError(f"index {index} is outside the traversal's {path.images.shape[0]} samples")
        steps = [history_images[index] for history_images in history.images]
        names = [f"iteration {i}" for i in history.iteration]
        if history.iteration[-1] != path.iterations:
            steps.append(path.images[index].detach().cpu())
            names.append(f"iteration {path.iterations}")
        names[-1] = f"blind spot ({names[-1]})"
        images = torch.stack([source.detach().cpu(), *steps])
        return (images, ["source", *names], int(path.labels[index]) if source_label is None else source_label,
                int(path.target_labels[index]) if target_label is None else target_label, target)
    images = torch.stack(list(path)) if not isinstance(path, torch.Tensor) else path
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"a path needs at least 2 images (P, C, H, W), source first, blind spot last; "
                         f"got shape {tuple(images.shape)}")
    if target is None:
        raise ValueError("pass target= (the target image, (C, H, W)) with a path given as images")
    names = ["source", *(f"step {p}" for p in range(1, images.shape[0] - 1)), "blind spot"]
    return images, names, source_label, target_label, target


def path_saliency(model, path, method: str = "saliency", index: int = 0, source: torch.Tensor | None = None,
                  target: torch.Tensor | None = None, source_label: int | None = None,
                  target_label: int | None = None, target_class: bool = True, batch_size: int = 16,
                  execution: Execution | None = None, **options) -> PathSaliency:
    """Attribution maps for the source class along an LST path, compared with the
    source's map and the target's map (does the model still look at the source's
    content once that content has become invisible?).

    ``path`` is a :class:`~blindspots_nb.lst.Traversal` (sample ``index``), an
    :class:`~blindspots_nb.lst.LSTResult` with ``source=`` and ``target=`` images, or the
    path's images (P, C, H, W), source first and blind spot last, with ``target=``. The
    history must hold images (``LSTConfig(record_images=True)``). Labels default to the
    traversal's, or to the model's classes of the source and the target. With
    ``target_class`` the maps for the target class at each point are computed too (as
    many backward passes again). ``method`` and ``options``: :func:`attribution_maps`.
    ``execution`` runs the source-class confidences (default
    :class:`~blindspots_nb.execution.Execution`); the attributions run the model itself,
    whose layers Captum hooks.
    """
    check_method(method)  # before any work
    images, names, source_label, target_label, target = _path_of(path, index, source, target,
                                                                 source_label, target_label)
    images, target = images.detach().cpu(), target.detach().cpu()
    if target.shape != images.shape[1:]:
        raise ValueError(f"the target image must have the path's shape {tuple(images.shape[1:])}, "
                         f"got {tuple(target.shape)}")
    predicted = predict(model, images, batch_size)[0]
    source_label = int(predicted[0]) if source_label is None else int(source_label)
    target_label = int(predict(model, target[None])[0][0]) if target_label is None else int(target_label)
    source_maps = _maps_in_batches(model, images, torch.full((len(images),), source_label), method, batch_size,
                                   options)
    target_map = attribution_maps(model, target[None], [target_label], method, **options)[0]
    distance = l2_distance(target[None], images, torch.float64)
    extra = {}
    if target_class:
        maps = _maps_in_batches(model, images, torch.full((len(images),), target_label), method, batch_size, options)
        extra = {"target_class_maps": maps, "target_class_with_source": rank_correlation(maps, source_maps[0]),
                 "target_class_with_target": rank_correlation(maps, target_map)}
    return PathSaliency(
        method=method, steps=names, progress=1 - distance / distance[0], images=images, target=target,
        source_label=source_label, target_label=target_label, predicted=predicted,
        source_confidence=class_confidence(model, images, source_label, execution, batch_size),
        source_maps=source_maps, target_map=target_map,
        with_source=rank_correlation(source_maps, source_maps[0]),
        with_target=rank_correlation(source_maps, target_map), **extra)


def grid_attribution_maps(model, grid, method: str = "gradcam", batch_size: int = 16, **options) -> torch.Tensor:
    """Attribution maps (k, k, H, W) of a :class:`~blindspots_nb.analysis.paths.BlindSpotGrid`: entry
    (i, j) explains the class of source j at the grid's image (i, j), for
    ``plots.blindspot_grid_figure(..., overlay=maps)``."""
    k = grid.images.shape[0]
    maps = _maps_in_batches(model, grid.images.flatten(0, 1), grid.labels.repeat(k),  # (i, j) -> label of j
                            method, batch_size, options)
    return maps.view(k, k, *maps.shape[1:])


def method_options(method: str, layer=None, n_steps: int | None = None, window=None) -> dict:
    """The options of ``method`` among those given (None: the method's default):
    Grad-CAM's ``layer``, integrated gradients' ``n_steps``, occlusion's ``window``; saliency
    takes none."""
    check_method(method)
    given = {"gradcam": {"layer": layer}, "integrated_gradients": {"n_steps": n_steps},
             "occlusion": {"window": window}}.get(method, {})
    return {key: value for key, value in given.items() if value is not None}


def saliency_record(path: PathSaliency, class_names) -> dict:
    """``path``'s correlations as JSON values, with the class names: what a record beside
    the figures holds (:func:`~blindspots_nb.tools.provenance.write_record`), with the
    sentence of :func:`blindspots_nb.analysis.words.saliency_sentences`."""
    return {"method": path.method, "source_class": class_names[path.source_label],
            "target_class": class_names[path.target_label], "steps": path.steps,
            "progress": path.progress.tolist(), "with_source": path.with_source.tolist(),
            "with_target": path.with_target.tolist()}
