"""Computations behind the paper's figures that are not triangle geometry: the k x k
grid of blind spots (Figure 2) and the widths of high-confidence paths (Figure 4), both
along a path's own direction (:func:`path_widths`) and the authors' way, orthogonal to
LST's step at each recorded iterate (:func:`traversal_path_widths`), by kind of path
(:func:`widths_along`); and the path one traversal recorded (:func:`recorded_path`).

Images are tensors in [0, 1]; drawing lives in :mod:`blindspots_nb.plots`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .geometry import default_points_per_pass
from ..execution import Execution
from ..lst import LSTConfig, LSTResult, forward_backward, orthogonal_step, traverse
from ..models import class_confidence, module_device, predict


@dataclass
class BlindSpotGrid:
    """Blind spots of every ordered pair of k images (the paper's Figure 2).

    ``images[i, j]`` is the blind spot with image j as source and image i as target
    (the diagonal holds image j itself); ``confidence[i, j]`` is the confidence of
    ``images[i, j]`` in the class of image j. ``result`` is the batched traversal of
    the k(k-1) off-diagonal pairs, in the order of ``pairs`` ((target i, source j)).
    """

    images: torch.Tensor       # (k, k, C, H, W)
    confidence: torch.Tensor   # (k, k)
    labels: torch.Tensor       # (k,) the model's class of each image
    pairs: list[tuple[int, int]]
    result: LSTResult

    def path(self, source_index: int, target_index: int) -> RecordedPath:
        """The recorded path from image ``source_index`` towards image ``target_index`` (the
        grid's traversals must have run with ``LSTConfig(record_images=True)``)."""
        if source_index == target_index:
            raise ValueError(f"no traversal from image {source_index} to itself: the diagonal holds the images")
        return recorded_path(self.result, self.pairs.index((target_index, source_index)))


def blindspot_grid(model, images: torch.Tensor, config: LSTConfig | None = None, progress: bool = False,
                   execution: Execution | None = None) -> BlindSpotGrid:
    """Run LST from each of k images towards each other one, in one batch, as ``execution``
    says (default :class:`~blindspots_nb.execution.Execution`).

    The labels are the model's own predictions on the images.
    """
    if images.dim() != 4 or images.shape[0] < 2:
        raise ValueError(f"need a batch of at least 2 images (k, C, H, W); got {tuple(images.shape)}")
    k = images.shape[0]
    labels = predict(model, images)[0]
    pairs = [(i, j) for i in range(k) for j in range(k) if i != j]
    target_index = torch.tensor([i for i, _ in pairs])
    source_index = torch.tensor([j for _, j in pairs])
    device = images.device
    result = traverse(model, images[source_index], labels[source_index].to(device), images[target_index],
                      config, target_labels=labels[target_index].to(device), progress=progress, execution=execution)
    grid = images.detach().cpu()[None].repeat(k, 1, 1, 1, 1)  # [i, j] = image j
    confidence = torch.diag(class_confidence(model, images, labels, execution))
    blind_spots, reached = result.images.detach().cpu(), result.confidence.detach().cpu()
    for n, (i, j) in enumerate(pairs):
        grid[i, j] = blind_spots[n]
        confidence[i, j] = reached[n]
    return BlindSpotGrid(grid, confidence, labels, pairs, result)


@dataclass
class RecordedPath:
    """What one traversal of a batch recorded along its path: the images, their
    source-class confidence and the iterations they were recorded at."""

    index: int                # the traversal's place in its batch
    images: torch.Tensor      # (R, C, H, W) on the CPU
    confidence: torch.Tensor  # (R,)
    iterations: torch.Tensor  # (R,)


def recorded_path(result, index: int = 0) -> RecordedPath:
    """The path traversal ``index`` of ``result`` (an ``LSTResult`` or a
    :class:`~blindspots_nb.lst.Traversal`, run with ``LSTConfig(record_images=True)``) recorded."""
    if not result.history.images:
        raise ValueError("the traversal did not record its images: run it with LSTConfig(record_images=True)")
    history = result.history.as_tensors()
    if not 0 <= index < history["images"].shape[1]:
        raise IndexError(f"index {index} is outside the traversal's batch of {history['images'].shape[1]}")
    return RecordedPath(index, history["images"][:, index], history["source_confidence"][:, index],
                        history["iteration"])


def segment_points(start: torch.Tensor, end: torch.Tensor, steps: int = 11) -> torch.Tensor:
    """``steps`` equally spaced points (steps, C, H, W) on the straight segment, ends included."""
    if steps < 2:
        raise ValueError(f"a segment needs at least 2 points, got steps={steps}")
    t = torch.linspace(0, 1, steps, dtype=start.dtype, device=start.device).view(-1, 1, 1, 1)
    return (1 - t) * start + t * end


def path_directions(points: torch.Tensor) -> torch.Tensor:
    """Direction of a polygonal path at each of its points: central differences
    (one-sided at the ends), (P, C, H, W)."""
    if points.shape[0] < 2:
        raise ValueError("a path needs at least 2 points")
    padded = torch.cat([points[:1], points, points[-1:]])
    return padded[2:] - padded[:-2]


def orthogonal_perturbations(directions: torch.Tensor, radius: float, samples: int,
                             generator: torch.Generator | None = None) -> torch.Tensor:
    """Random perturbations of l2 norm ``radius`` orthogonal to each direction.

    ``directions``: (P, C, H, W), nonzero; returns (P, samples, C, H, W). Gaussian
    noise with its component along the direction removed, then scaled: the
    perturbation's direction is uniform on the sphere of the orthogonal complement.
    """
    flat = directions.flatten(1).double()
    norms = flat.norm(dim=1, keepdim=True)
    if bool((norms == 0).any()):
        raise ValueError("a path direction is zero (two consecutive path points coincide, or an LST "
                         "iterate stands on its target)")
    unit = flat / norms
    noise = torch.randn((flat.shape[0], samples, flat.shape[1]), generator=generator, dtype=torch.float64)
    noise = noise.to(flat.device)
    noise = noise - (noise @ unit[:, :, None]) * unit[:, None, :]
    noise = noise * (radius / noise.norm(dim=2, keepdim=True))
    return noise.to(directions.dtype).view(flat.shape[0], samples, *directions.shape[1:])


@dataclass
class PathWidths:
    """Source-class confidence under random perturbations orthogonal to a path.

    ``values[q, r, p]``: the ``quantiles[q]`` quantile over the samples at radius
    ``radii[r]`` around path point ``p``; ``center[p]``: confidence on the path itself.
    """

    positions: torch.Tensor   # (P,) where the points lie along the path
    radii: torch.Tensor       # (R,)
    quantiles: torch.Tensor   # (Q,)
    values: torch.Tensor      # (Q, R, P)
    center: torch.Tensor      # (P,)
    samples: int


def path_widths(model, points: torch.Tensor, label: int, radii=(1.0, 2.0, 4.0), samples: int = 32,
                quantiles=(0.05, 0.95), directions: torch.Tensor | None = None,
                positions: torch.Tensor | None = None, seed: int = 0,
                points_per_pass: int | None = None, execution: Execution | None = None) -> PathWidths:
    """How wide the high-confidence path is: at each path point and each l2 radius, the
    quantiles of class-``label`` confidence at ``samples`` random points at that
    distance, orthogonal to the path direction (the paper's Figure 4).

    ``points``: (P, C, H, W) points of the path (e.g. :func:`segment_points`, or a
    traversal's recorded images); ``directions`` default to :func:`path_directions`;
    ``positions`` (x axis of the figure) default to t in [0, 1]. Perturbed points are
    clipped to [0, 1], since only they are images. ``points_per_pass``: images per forward
    pass (default :func:`~blindspots_nb.analysis.geometry.default_points_per_pass`);
    ``execution``: how they run (default :class:`~blindspots_nb.execution.Execution`).
    """
    if points.dim() != 4:
        raise ValueError(f"points must be a path (P, C, H, W); got {tuple(points.shape)}")
    if samples < 1 or not len(radii):
        raise ValueError("need at least one sample and one radius")
    directions = path_directions(points) if directions is None else directions.expand_as(points)
    points_per_pass = points_per_pass or default_points_per_pass(points.shape[1:], points.device)
    generator = torch.Generator().manual_seed(seed)
    quantiles = torch.tensor(quantiles, dtype=torch.float64)
    center = class_confidence(model, points, label, execution, points_per_pass)
    values = []
    for radius in radii:
        perturbed = (points[:, None] + orthogonal_perturbations(directions, radius, samples, generator))
        confidence = class_confidence(model, perturbed.clamp(0, 1).flatten(0, 1), label, execution, points_per_pass)
        values.append(torch.quantile(confidence.view(len(points), samples).double(), quantiles, dim=1))
    if positions is None:
        positions = torch.linspace(0, 1, len(points), dtype=torch.float64)
    return PathWidths(positions=torch.as_tensor(positions), radii=torch.tensor(radii, dtype=torch.float64),
                      quantiles=quantiles, values=torch.stack(values, dim=1), center=center, samples=samples)


# The authors' path-width measurement: l2 distances and samples of their run command.
AUTHORS_RADII = (0.5, 1.0, 1.5, 2.0)
AUTHORS_SAMPLES = 256


def _lst_step_directions(model, images: torch.Tensor, label: int, target: torch.Tensor,
                        points_per_pass: int | None = None, execution: Execution | None = None) -> torch.Tensor:
    """LST's step direction at each image x (P, C, H, W): the part of ``target - x``
    orthogonal to the gradient of CE(f(x), label) at x (:func:`lst.orthogonal_step`),
    with one forward and one backward pass per image, run as ``execution`` says.
    Returns (P, C, H, W)."""
    chunks = images.split(points_per_pass or default_points_per_pass(images.shape[1:], images.device))
    labels = torch.full((len(chunks[0]),), label, dtype=torch.long, device=images.device)
    gradients = [forward_backward(model, chunk, labels[:len(chunk)], execution)[1] for chunk in chunks]
    return orthogonal_step(torch.cat(gradients), target - images)


def traversal_path_widths(model, traversal, targets: torch.Tensor | None = None, index: int = 0,
                          radii=AUTHORS_RADII, samples: int = AUTHORS_SAMPLES, quantiles=(0.05,), seed: int = 0,
                          points_per_pass: int | None = None, execution: Execution | None = None) -> PathWidths:
    """Path widths the way of the authors' released code: at each iterate a traversal
    recorded (every ``record_every`` iterations), ``samples`` random perturbations of
    each l2 radius orthogonal to LST's step direction at that iterate
    (:func:`_lst_step_directions`), and the quantiles of source-class confidence.

    ``traversal``: a :class:`~blindspots_nb.lst.Traversal` or an ``LSTResult`` run with
    ``LSTConfig(record_images=True)``; ``targets`` (B, C, H, W): its targets, needed for
    an ``LSTResult``, which does not keep them; ``index``: which sample of the batch.
    The positions of the result are the recorded iterations. ``execution``: how the
    passes run (default :class:`~blindspots_nb.execution.Execution`, whatever the
    traversal ran with).
    """
    history = getattr(traversal, "history", None)
    if history is None or not hasattr(traversal, "labels"):
        raise TypeError(f"need a Traversal or an LSTResult, got {type(traversal).__name__}")
    if not history.images:
        raise ValueError("the traversal did not record its images: run it with "
                         "LSTConfig(record_images=True) to measure widths along its iterates")
    targets = getattr(traversal, "targets", None) if targets is None else targets
    if targets is None:
        raise ValueError("an LSTResult does not keep its targets: pass targets=, the (B, C, H, W) "
                         "targets it was run towards")
    images = torch.stack(history.images)  # (R, B, C, H, W)
    if tuple(targets.shape) != tuple(images.shape[1:]):
        raise ValueError(f"targets must have the shape {tuple(images.shape[1:])} of the recorded batch; "
                         f"got {tuple(targets.shape)}")
    if not 0 <= index < images.shape[1]:
        raise IndexError(f"index {index} is outside the traversal's batch of {images.shape[1]}")
    device = module_device(model)
    points, label = images[:, index].to(device), int(traversal.labels[index])
    directions = _lst_step_directions(model, points, label, targets[index].to(device), points_per_pass, execution)
    return path_widths(model, points, label, radii, samples, quantiles, directions=directions,
                       positions=torch.tensor(history.iteration), seed=seed, points_per_pass=points_per_pass,
                       execution=execution)


# The paths whose widths widths_along measures, and what a position along each is.
PATH_KINDS = {"segment": "t: (1 − t) source + t blind spot", "traversal": "LST iteration",
              "traversal-authors": "LST iteration"}


def width_settings(kind: str, radii=None, samples: int | None = None) -> tuple[list[float], int]:
    """The l2 radii and the samples per radius :func:`widths_along` measures a kind of
    path with, unless given: the authors' (:data:`AUTHORS_RADII`, :data:`AUTHORS_SAMPLES`)
    for ``"traversal-authors"``, else 1, 2, 5 and 10 with 16 samples."""
    if kind not in PATH_KINDS:
        raise ValueError(f"the path must be one of {', '.join(map(repr, PATH_KINDS))}, not {kind!r}")
    authors = kind == "traversal-authors"
    return list(radii or (AUTHORS_RADII if authors else (1.0, 2.0, 5.0, 10.0))), samples or (
        AUTHORS_SAMPLES if authors else 16)


def widths_along(model, traversal, kind: str = "segment", points: int = 6, radii=None, samples: int | None = None,
                 quantiles=(0.05, 0.95), index: int = 0, execution: Execution | None = None) -> PathWidths:
    """The widths of one path of a :class:`~blindspots_nb.lst.Traversal` (sample
    ``index``), by kind of path (:data:`PATH_KINDS`): ``"segment"``, ``points`` points on
    the straight segment from the source to the blind spot; ``"traversal"``, the
    iterates LST recorded; both perturbed orthogonally to the path's own direction
    (:func:`path_widths`). ``"traversal-authors"``: the recorded iterates perturbed
    orthogonally to LST's step there (:func:`traversal_path_widths`). The traversal
    kinds need ``LSTConfig(record_images=True)``. ``radii`` and ``samples``:
    :func:`width_settings`; ``execution``: how the passes run."""
    radii, samples = width_settings(kind, radii, samples)
    if kind == "traversal-authors":
        return traversal_path_widths(model, traversal, index=index, radii=radii, samples=samples,
                                     quantiles=quantiles, execution=execution)
    label = int(traversal.labels[index])
    if kind == "segment":
        path, positions = segment_points(traversal.sources[index], traversal.result().images[index], points), None
    else:
        recorded = recorded_path(traversal, index)
        path, positions = recorded.images.to(traversal.sources.device), recorded.iterations
    return path_widths(model, path, label, radii, samples, quantiles, positions=positions, execution=execution)
