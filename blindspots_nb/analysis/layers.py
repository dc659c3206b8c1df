"""The layer where the target disappears: along an LST path, how similar each layer's
representation of the iterate is to its representation of the source and of the target.

The pixels of a blind spot show (nearly) the target; the model still calls it the
source. Somewhere between the input and the logits the representation of the iterate
stops resembling the target's and resembles the source's: :func:`layer_similarity`
measures, for every recorded iterate and every chosen layer (forward hooks), the cosine
of the flattened activations per path and the linear CKA over the batch of paths, plain
and debiased (:func:`linear_cka`); :func:`disappearance` names the first depth at which
the target is no longer the nearer one, and the depth from which on it never is again. The question is that of model metamers (Feather et
al., NeurIPS 2019): which stages of a network still tell apart inputs it treats alike.

Computing only: :mod:`blindspots_nb.plots.layers` draws the results.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .geometry import default_points_per_pass
from ..execution import Execution
from ..tools import provenance
from ..tools.tensors import check_images, module_device

PIXELS = "pixels"  # row 0 of every result: the images themselves, before the model
# measures over the batch of paths: whether the HSIC estimator is unbiased, the fewest paths it needs
BATCH_MEASURES = {"cka": (False, 3), "debiased-cka": (True, 4)}
MEASURES = ("cosine", *BATCH_MEASURES)
# modules whose output is their input, reshaped at most (in eval mode): not measured by default
_UNCHANGING = (torch.nn.Flatten, torch.nn.Identity, torch.nn.Dropout)


def available_layers(model) -> list[str]:
    """The names of every submodule of ``model`` (``model.named_modules()``), in the
    order they were defined: the names :func:`layer_similarity` accepts."""
    return [name for name, _ in model.named_modules() if name]


def default_layers(model) -> list[str]:
    """The layers measured unless chosen: the children of the network (of ``model.net`` for
    a :class:`~blindspots_nb.models.Classifier`, whose own forward only normalises), each
    ``nn.Sequential`` child replaced by its own children, leaving out the modules that do
    not change a representation (``Flatten``, ``Identity``, ``Dropout``: their rows would
    repeat the one before). For the FONTS CNN: the nine conv/ReLU/pool modules of
    ``features`` and the three linear/ReLU modules of ``head``; for timm's EfficientNet:
    the stem, each of the seven stages of ``blocks``, the head, the pooling and the
    classifier."""
    net, prefix = (model.net, "net.") if isinstance(getattr(model, "net", None), torch.nn.Module) else (model, "")
    names = []
    for name, child in net.named_children():
        inner = child.named_children() if isinstance(child, torch.nn.Sequential) and len(child) else [("", child)]
        names += [f"{prefix}{name}.{part}".rstrip(".") for part, module in inner if not isinstance(module, _UNCHANGING)]
    if not names:
        raise ValueError(f"{type(model).__name__} has no submodules to hook: layer similarity measures the "
                         "outputs of a model's modules")
    return names


def _check_layers(model, layers) -> list[str]:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"layer similarity hooks the model's modules: need a torch.nn.Module, got {type(model).__name__}")
    layers = default_layers(model) if layers is None else list(layers)
    known = set(available_layers(model))
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"no layer named {', '.join(map(repr, unknown))} in {type(model).__name__}; "
                         f"its layers: {', '.join(available_layers(model))}")
    if PIXELS in layers or len(set(layers)) != len(layers):
        raise ValueError(f"layers must be distinct module names (row {PIXELS!r} is always added): got {layers}")
    if not layers:
        raise ValueError("layers is empty: name at least one module, or pass None for the default layers")
    return layers


def layer_activations(model, images: torch.Tensor, layers, execution: Execution | None = None) -> dict:
    """The outputs of the modules named ``layers`` when ``model`` runs on ``images``
    (N, C, H, W), each flattened to (N, D) and cast to at least float32, on the model's
    device, without a graph; the hooks are removed afterwards, whatever happens.

    Runs the model itself, in the precision and layout ``execution`` says: compilation and
    batch-norm folding run a copy whose modules are not the model's, so they do not apply.
    A module that does not run, runs twice in one pass (a shared module) or gives something
    other than a tensor is refused, naming it.
    """
    execution = execution or Execution()
    modules = dict(model.named_modules())
    outputs: dict[str, list] = {name: [] for name in layers}

    def keep(name):
        def hook(module, inputs, output):
            outputs[name].append(output)
        return hook

    handles = []
    try:
        for name in layers:
            handles.append(modules[name].register_forward_hook(keep(name)))
        device = module_device(model)
        with torch.no_grad(), execution.scope(device):
            model(execution.layout(images.to(device)))
    finally:
        for handle in handles:
            handle.remove()
    activations = {}
    for name, seen in outputs.items():
        if len(seen) != 1:
            raise ValueError(f"layer {name!r} ran {len(seen)} times in one forward pass; measure a module that "
                             "runs exactly once (not a shared or unused one)")
        if not isinstance(seen[0], torch.Tensor):
            raise ValueError(f"layer {name!r} gives a {type(seen[0]).__name__}, not a tensor: choose a module "
                             "whose output is one tensor")
        output = seen[0].flatten(1)
        activations[name] = output.to(torch.promote_types(output.dtype, torch.float32))
    return activations


def _centred_gram(x: torch.Tensor) -> torch.Tensor:
    """The N x N Gram matrix of the N examples of ``x`` (N, ...), flattened and
    column-centred, in float64: the linear kernel CKA compares."""
    features = x.flatten(1).double()
    features = features - features.mean(0)
    return features @ features.T


def _hsic(k: torch.Tensor, l: torch.Tensor, debiased: bool) -> torch.Tensor:
    """HSIC of two centred Gram matrices up to a constant factor: ``<K, L>_F``, or the
    unbiased estimator of Song et al. (JMLR 2012), which sets the diagonals to zero."""
    if not debiased:
        return (k * l).sum()
    n = len(k)
    k, l = k - torch.diag(torch.diag(k)), l - torch.diag(torch.diag(l))
    return ((k * l).sum() + k.sum() * l.sum() / ((n - 1) * (n - 2)) - 2 / (n - 2) * (k.sum(0) @ l.sum(0))) / (
        n * (n - 3))


def _cka_of_grams(k: torch.Tensor, l: torch.Tensor, debiased: bool = False) -> torch.Tensor:
    """CKA of two centred Gram matrices (:func:`_centred_gram`), see :func:`linear_cka`."""
    return _hsic(k, l, debiased) / (_hsic(k, k, debiased) * _hsic(l, l, debiased)).sqrt()


def linear_cka(x: torch.Tensor, y: torch.Tensor, debiased: bool = False) -> torch.Tensor:
    """Linear centred kernel alignment of two representations of the same N examples
    (Kornblith, Norouzi, Lee and Hinton, "Similarity of Neural Network Representations
    Revisited", ICML 2019): with X, Y the (N, D) flattened, column-centred features,
    ``<XX^T, YY^T>_F / (||XX^T||_F ||YY^T||_F)``, which equals
    ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``. In [0, 1]; 1 for representations equal
    up to an orthogonal transform and an isotropic scaling. Computed in float64 through
    the N x N Gram matrices (cheap for wide layers). NaN when every example has the same
    representation in x or y.

    With few examples in many dimensions it is biased towards 1 (two independent Gaussian
    representations of 10 examples in 2000 dimensions give about 0.995): ``debiased=True``
    uses the unbiased HSIC estimator of Song et al. (JMLR 2012), as Nguyen, Raghu and
    Kornblith (ICLR 2021) do, which is about 0 for independent representations, may be
    negative, and needs N >= 4. The plain form needs N >= 3 (with two examples the
    centred Gram matrices are always proportional and CKA is 1).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"CKA compares representations of the same examples: got {x.shape[0]} and {y.shape[0]}")
    fewest = 4 if debiased else 3
    if x.shape[0] < fewest:
        raise ValueError(f"{'debiased' if debiased else 'linear'} CKA needs at least {fewest} examples; "
                         f"got {x.shape[0]}")
    return _cka_of_grams(_centred_gram(x), _centred_gram(y), debiased)


@dataclass(frozen=True)
class LayerSimilarity:
    """Similarity of each layer's representation of each recorded iterate to its
    representation of the source and of the target.

    Rows are ``layers``: ``"pixels"`` (the images themselves) then the modules in the order
    given (for the default layers, the order they run); columns are ``iterations``.
    ``to_source[b, l, r]``: cosine of the flattened activations of layer l at iterate r of
    path b and at that path's source (0 where either is all zeros); ``to_target`` likewise
    with its target. ``cka_to_source[l, r]``: linear CKA (:func:`linear_cka`) between the B
    iterates' and the B sources' activations, None for fewer than 3 paths;
    ``debiased_cka_to_source``: the same with the unbiased estimator
    (``linear_cka(debiased=True)``), None for fewer than 4 paths. ``provenance``: what produced it (:func:`blindspots_nb.tools.provenance.record`).
    """

    layers: tuple[str, ...]
    iterations: tuple[int, ...]
    to_source: torch.Tensor               # (B, L, R) float64
    to_target: torch.Tensor               # (B, L, R) float64
    cka_to_source: torch.Tensor | None    # (L, R) float64
    cka_to_target: torch.Tensor | None    # (L, R) float64
    debiased_cka_to_source: torch.Tensor | None  # (L, R) float64
    debiased_cka_to_target: torch.Tensor | None  # (L, R) float64
    provenance: dict

    def similarities(self, measure: str = "cosine", index: int | None = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(to source, to target), each (L, R): the cosine of path ``index`` (None: the mean
        over the paths), or the CKA over the batch (``measure="cka"`` or ``"debiased-cka"``;
        ``index`` unused)."""
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {', '.join(map(repr, MEASURES))}, not {measure!r}")
        if measure in BATCH_MEASURES:
            field = measure.replace("-", "_")
            if getattr(self, f"{field}_to_source") is None:
                raise ValueError(f"{measure} over the batch needs at least {BATCH_MEASURES[measure][1]} paths; "
                                 f"this result has {len(self.to_source)}")
            return getattr(self, f"{field}_to_source"), getattr(self, f"{field}_to_target")
        if index is None:
            return self.to_source.mean(0), self.to_target.mean(0)
        if not -len(self.to_source) <= index < len(self.to_source):
            raise IndexError(f"path {index} is outside the result's {len(self.to_source)} paths")
        return self.to_source[index], self.to_target[index]

    def rows(self) -> list[dict]:
        """One row per (path, layer, iteration) for a CSV: the cosine of each path, then
        each CKA over the batch (path ``"batch"``) there is."""
        rows = []
        paths = [(str(b), "cosine", b) for b in range(len(self.to_source))]
        paths += [("batch", measure, None) for measure, (_, fewest) in BATCH_MEASURES.items()
                  if len(self.to_source) >= fewest]
        for path, measure, index in paths:
            to_source, to_target = self.similarities(measure, index)
            for depth, layer in enumerate(self.layers):
                for column, iteration in enumerate(self.iterations):
                    rows.append({"path": path, "measure": measure, "depth": depth, "layer": layer,
                                 "iteration": iteration, "to_source": float(to_source[depth, column]),
                                 "to_target": float(to_target[depth, column])})
        return rows


def _cosine(activations: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Cosine of each row of (K, B, D) ``activations`` with row b of (B, D) ``reference``, (K, B)."""
    return F.cosine_similarity(activations.double(), reference.double()[None], dim=-1, eps=1e-300)


def layer_similarity(model, iterates: torch.Tensor, sources: torch.Tensor, targets: torch.Tensor, layers=None,
                     iterations=None, points_per_pass: int | None = None, execution: Execution | None = None,
                     progress: bool = False, **record) -> LayerSimilarity:
    """Similarity of each layer's representation of each iterate to the source's and the
    target's (:class:`LayerSimilarity`).

    ``iterates``: (R, B, C, H, W), R recorded points of B paths (e.g. a traversal's
    ``history.images``); ``sources``, ``targets``: (B, C, H, W), the ends of each path;
    ``layers``: module names (:func:`available_layers`; default :func:`default_layers`);
    ``iterations``: the R column labels (default 0 .. R-1). Whole iterates (all B paths)
    run together, as many per forward pass as fit in ``points_per_pass`` images (default
    :func:`~blindspots_nb.analysis.geometry.default_points_per_pass`), as ``execution`` says
    (:func:`layer_activations`). ``record``: more provenance (e.g. ``config=`` the LST
    configuration, ``image_source=`` the image source).
    """
    if iterates.dim() != 5:
        raise ValueError(f"iterates must be (R, B, C, H, W), R recorded points of B paths; got {tuple(iterates.shape)}")
    for name, ends in (("sources", sources), ("targets", targets)):
        if tuple(ends.shape) != tuple(iterates.shape[1:]):
            raise ValueError(f"{name} must be one image per path, {tuple(iterates.shape[1:])}; got {tuple(ends.shape)}")
        check_images(name, ends)
    check_images("iterates", iterates)
    iterations = tuple(int(i) for i in (range(len(iterates)) if iterations is None else iterations))
    if len(iterations) != len(iterates):
        raise ValueError(f"need one iteration per recorded point: {len(iterates)} points, {len(iterations)} iterations")
    layers = _check_layers(model, layers)
    execution = dataclasses.replace(execution or Execution(), compile=False, fold_batchnorm=False)
    device, paths = module_device(model), iterates.shape[1]
    ends = layer_activations(model, torch.cat([sources, targets]), layers, execution)
    ends = {PIXELS: torch.cat([sources, targets]).flatten(1).to(device), **ends}
    per_pass = max(1, (points_per_pass or default_points_per_pass(iterates.shape[2:], device)) // paths)
    batch = {measure: debiased for measure, (debiased, fewest) in BATCH_MEASURES.items() if paths >= fewest}
    grams = {name: (_centred_gram(values[:paths]), _centred_gram(values[paths:])) for name, values in ends.items()}
    keys = [f"{prefix}to_{side}" for prefix in ("", *(f"{m.replace('-', '_')}_" for m in BATCH_MEASURES))
            for side in ("source", "target")]
    measured = {key: [] for key in keys}
    for chunk in tqdm(iterates.split(per_pass), desc="layer similarity", disable=not progress, leave=False):
        images = chunk.flatten(0, 1).to(device)
        activations = {PIXELS: images.flatten(1), **layer_activations(model, images, layers, execution)}
        rows = {key: [] for key in keys}
        for name, flat in activations.items():
            flat = flat.view(len(chunk), paths, -1)
            point_grams = [_centred_gram(point) for point in flat] if batch else []
            for side, reference, reference_gram in zip(("source", "target"), ends[name].split(paths), grams[name]):
                rows[f"to_{side}"].append(_cosine(flat, reference))
                for measure, debiased in batch.items():
                    rows[f"{measure.replace('-', '_')}_to_{side}"].append(
                        torch.stack([_cka_of_grams(gram, reference_gram, debiased) for gram in point_grams]))
        for key, values in rows.items():
            if values:
                measured[key].append(torch.stack(values).cpu())  # (L, K, B) cosines, (L, K) CKA
    to_source, to_target = (torch.cat(measured[key], 1).permute(2, 0, 1).contiguous() for key in keys[:2])
    ckas = [torch.cat(measured[key], 1) if measured[key] else None for key in keys[2:]]
    record = provenance.record(model, device=device, layers=[PIXELS, *layers], execution=execution.to_dict(),
                               paths=paths, measures="cosine of flattened activations per path; linear CKA over "
                               "the batch of paths (Kornblith et al. 2019), plain and with the unbiased HSIC "
                               "estimator (Song et al. 2012)", **record)
    return LayerSimilarity((PIXELS, *layers), iterations, to_source, to_target, *ckas, provenance=record)


def traversal_layer_similarity(model, traversal, layers=None, sources: torch.Tensor | None = None,
                               targets: torch.Tensor | None = None, points_per_pass: int | None = None,
                               execution: Execution | None = None, progress: bool = False,
                               **record) -> LayerSimilarity:
    """:func:`layer_similarity` along the iterates a traversal recorded (every
    ``record_every`` iterations; run it with ``LSTConfig(record_images=True)``).

    ``traversal``: a :class:`~blindspots_nb.lst.Traversal`, or an ``LSTResult`` with the
    ``sources`` and ``targets`` it ran from and towards (an ``LSTResult`` keeps neither).
    Its LST configuration goes into the provenance.
    """
    history = getattr(traversal, "history", None)
    if history is None or not hasattr(traversal, "config"):
        raise TypeError(f"need a Traversal or an LSTResult, got {type(traversal).__name__}")
    if not history.images:
        raise ValueError("the traversal did not record its images: run it with LSTConfig(record_images=True)")
    sources = getattr(traversal, "sources", None) if sources is None else sources
    targets = getattr(traversal, "targets", None) if targets is None else targets
    if sources is None or targets is None:
        raise ValueError("an LSTResult keeps neither its sources nor its targets: pass sources= and targets=, "
                         "the (B, C, H, W) images it ran from and towards")
    record.setdefault("config", traversal.config)
    return layer_similarity(model, torch.stack(history.images), sources.cpu(), targets.cpu(), layers,
                            history.iteration, points_per_pass, execution, progress, **record)


@dataclass(frozen=True)
class Disappearance:
    """Where the target disappears, per path (one entry for the batch under CKA), as
    :func:`disappearance` defines it: ``depth[b]``, the first row of
    :attr:`LayerSimilarity.layers` (0 = pixels) nearer the source than the target, and
    ``settled_depth[b]``, the row from which on every row is; None where there is none.
    ``layer`` and ``settled_layer`` name them."""

    measure: str
    iteration: int
    depth: tuple[int | None, ...]
    layer: tuple[str | None, ...]
    settled_depth: tuple[int | None, ...]
    settled_layer: tuple[str | None, ...]

    @property
    def regained(self) -> tuple[bool, ...]:
        """Per path: whether a row deeper than ``depth`` is again nearer the target."""
        return tuple(first != settled for first, settled in zip(self.depth, self.settled_depth))


def crossing_depths(to_source: torch.Tensor, to_target: torch.Tensor) -> tuple[int | None, int | None]:
    """For one column of similarities (L,): the first row whose similarity to the target
    is below its similarity to the source, and the first row from which on every row's
    is (None if there is none)."""
    below = (to_target < to_source).tolist()
    first = below.index(True) if True in below else None
    settled = next((row for row in range(len(below)) if all(below[row:])), None)
    return first, settled


def disappearance(result: LayerSimilarity, measure: str = "cosine", iteration: int = -1) -> Disappearance:
    """At which depth the network stops seeing the target that the pixels show.

    For each path b (under a CKA ``measure``: once, for the batch) and the recorded
    iterate x in column ``iteration`` of ``result`` (default -1: the last, the blind spot),
    ``depth`` is the smallest row index l of ``result.layers`` (0 = the pixels, then the
    layers in the order measured) with sim(f_l(x), f_l(target)) < sim(f_l(x), f_l(source)):
    the first representation in which x is nearer its source than its target. None when
    there is no such row: x stays nearer its target at every layer measured; 0 when
    already the pixels are nearer the source. ``settled_depth`` is the smallest l from
    which on every row satisfies it (the target does not come back deeper down); it
    differs from ``depth`` where the target is regained (:attr:`Disappearance.regained`).
    """
    if not -len(result.iterations) <= iteration < len(result.iterations):
        raise IndexError(f"column {iteration} is outside the {len(result.iterations)} recorded iterations")
    indices = [None] if measure in BATCH_MEASURES else range(len(result.to_source))
    found = [crossing_depths(*(values[:, iteration] for values in result.similarities(measure, index)))
             for index in indices]
    depths = [tuple(pair[n] for pair in found) for n in (0, 1)]
    names = [tuple(None if d is None else result.layers[d] for d in depth) for depth in depths]
    return Disappearance(measure, result.iterations[iteration], depths[0], names[0], depths[1], names[1])
