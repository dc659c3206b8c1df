"""Geometry of blind spots: confidence over the triangle (source, blind spot A,
blind spot B), along straight segments from a source, and the triangle's true shape
for plotting (the paper's Table 2 and Figures 3 and 5).

Points are images in [0, 1]; every model evaluation runs in large batches.
"""

from __future__ import annotations

import math
from itertools import combinations

import torch

from ..execution import Execution
from ..models import class_confidence

DROPS = (0.0, 0.1, 0.2, 0.3)


def triangle_grid(divisions: int = 10) -> torch.Tensor:
    """Barycentric weights (w_source, t1, t2) of the exact triangle grid, (N, 3).

    t1, t2 in {0, 1/divisions, ..., 1} with t1 + t2 <= 1, built from integers so no
    point is lost to rounding: N = (divisions + 1)(divisions + 2) / 2 (66 for 10).
    Row 0 is the source vertex.
    """
    if divisions < 1:
        raise ValueError(f"divisions must be >= 1, got {divisions}")
    steps = [(i, j) for i in range(divisions + 1) for j in range(divisions + 1 - i)]
    t = torch.tensor(steps, dtype=torch.float64) / divisions
    return torch.cat([1 - t.sum(1, keepdim=True), t], dim=1)


def default_points_per_pass(image_shape, device: torch.device | str) -> int:
    """Points (images) per forward pass for evaluating many of them, when not given: 256 on a GPU; on a CPU as
    many as make about 4 million input values (27 at 3x224x224, 256 at 3x32x32), since
    there large batches of large images run slower per image (they leave the caches)."""
    if torch.device(device).type != "cpu":
        return 256
    return max(1, min(256, 2**22 // math.prod(image_shape)))


def _confidence_at_combinations(model, weights: torch.Tensor, vertices: list[torch.Tensor], labels,
                                points_per_pass: int | None, vertex_index: torch.Tensor | None = None,
                                execution: Execution | None = None) -> torch.Tensor:
    """Source-class confidence at the points sum_k weights[n, k] * vertices[vertex_index[n, k]][b].

    ``vertices``: V tensors (B, C, H, W); ``weights``: (N, K); ``vertex_index``: (N, K)
    indices into ``vertices`` (default: vertex k for column k). Returns (B, N) on the
    CPU. Points are built chunk by chunk across sources (``points_per_pass`` points per
    forward pass, default :func:`default_points_per_pass`), so B * N images never sit in memory
    at once; each chunk's confidence is :func:`~blindspots_nb.models.class_confidence`.
    """
    execution = execution or Execution()
    batch, num_points = vertices[0].shape[0], weights.shape[0]
    points_per_pass = points_per_pass or default_points_per_pass(vertices[0].shape[1:], vertices[0].device)
    stacked = torch.stack([v.flatten(1) for v in vertices], dim=1)  # (B, V, D)
    weights = weights.to(device=stacked.device, dtype=stacked.dtype)
    if vertex_index is None:
        vertex_index = torch.arange(weights.shape[1]).expand(num_points, -1)
    vertex_index = vertex_index.to(stacked.device)
    labels = torch.as_tensor(labels, device=stacked.device).long().reshape(-1).expand(batch)
    flat_index = torch.arange(batch * num_points, device=stacked.device)
    out = []
    with torch.inference_mode(), execution.scope(stacked.device):
        for chunk in flat_index.split(points_per_pass):
            b, n = chunk // num_points, chunk % num_points
            points = torch.einsum("pk,pkd->pd", weights[n], stacked[b[:, None], vertex_index[n]]).clamp(0, 1)
            out.append(class_confidence(model, points.view(-1, *vertices[0].shape[1:]), labels[b], execution,
                                        points_per_pass))
    return torch.cat(out).view(batch, num_points)


def _batched(*images: torch.Tensor) -> tuple[bool, list[torch.Tensor]]:
    single = images[0].dim() == 3
    return single, [image.unsqueeze(0) if single else image for image in images]


def triangle_confidence(model, source, blind_spot_a, blind_spot_b, label, divisions: int = 10,
                        points_per_pass: int | None = None, execution: Execution | None = None) -> torch.Tensor:
    """Source-class confidence at each point of ``triangle_grid(divisions)``.

    Images (C, H, W) give (N,); batches (B, C, H, W) with B labels give (B, N).
    ``points_per_pass``: grid points per forward pass (default
    :func:`default_points_per_pass`).
    """
    single, vertices = _batched(source, blind_spot_a, blind_spot_b)
    confidence = _confidence_at_combinations(model, triangle_grid(divisions), vertices, label, points_per_pass,
                                             execution=execution)
    return confidence[0] if single else confidence


def shared_grid_points(blind_spots: int, divisions: int = 10) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The distinct points of the triangles (source, o_i, o_j), i < j, over ``blind_spots`` blind spots.

    The triangles share the source, each blind spot and each edge (source, o_i), so of
    their pairs * N grid points only ``1 + m * divisions + C(m, 2) * (N - 1 - 2 * divisions)``
    differ (501 of 660 for m = 5, divisions = 10). Returns, for the U distinct points,
    ``weights`` (U, 3) and ``vertex_index`` (U, 3), the barycentric weights on vertices
    (0: source, 1 + i: blind spot i) as their first triangle writes them, and ``where``
    (pairs, N): the distinct point behind each triangle's grid point.
    """
    pairs = list(combinations(range(blind_spots), 2))
    if not pairs:
        raise ValueError(f"triangles need at least 2 blind spots per source, got {blind_spots}")
    grid = triangle_grid(divisions)
    steps = torch.round(grid * divisions).long()  # exact integer coordinates
    keys, weights, vertex_index, where = {}, [], [], torch.empty(len(pairs), len(grid), dtype=torch.long)
    for p, (i, j) in enumerate(pairs):
        vertices = (0, 1 + i, 1 + j)
        for n, step in enumerate(steps.tolist()):
            key = tuple(sorted((v, s) for v, s in zip(vertices, step) if s))  # the point, whatever its triangle
            if key not in keys:
                keys[key] = len(weights)
                weights.append(grid[n])
                vertex_index.append(vertices)
            where[p, n] = keys[key]
    return torch.stack(weights), torch.tensor(vertex_index), where


def triangles_confidence(model, source, blind_spots, label, divisions: int = 10, points_per_pass: int | None = None,
                         execution: Execution | None = None) -> torch.Tensor:
    """Source-class confidence over the triangles (source, o_i, o_j) of every pair i < j
    of ``blind_spots`` (m tensors (B, C, H, W)), each distinct point evaluated once.

    Returns (pairs, B, N), pairs in ``itertools.combinations`` order: what
    :func:`triangle_confidence` gives pair by pair, at 501 forward passes per source
    instead of 660 for 5 blind spots.
    """
    weights, vertex_index, where = shared_grid_points(len(blind_spots), divisions)
    confidence = _confidence_at_combinations(model, weights, [source, *blind_spots], label, points_per_pass,
                                             vertex_index=vertex_index, execution=execution)
    return confidence[:, where].permute(1, 0, 2)


def segment_confidence(model, source, blind_spot, label, steps: int = 11, points_per_pass: int | None = None,
                       execution: Execution | None = None) -> torch.Tensor:
    """Source-class confidence along the straight segment from ``source`` to ``blind_spot``
    at ``steps`` equally spaced points, both ends included ((steps,) or (B, steps))."""
    single, vertices = _batched(source, blind_spot)
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    confidence = _confidence_at_combinations(model, torch.cat([1 - t, t], dim=1), vertices, label, points_per_pass,
                                             execution=execution)
    return confidence[0] if single else confidence


def stats_from_confidence(confidence: torch.Tensor, divisions: int = 10) -> dict[str, torch.Tensor]:
    """Table-2 statistics of triangles from their grid confidences (``docs/reproduction.md``).

    ``confidence``: (N,) for one triangle or (B, N) for many; each statistic is a
    0-d or (B,) tensor.

    p_src: confidence at the source vertex; avg_conf: mean over the grid;
    frac_{d}: fraction of grid points with confidence > p_src - d;
    path_conf: mean confidence along the two edges leaving the source, averaged;
    edge_min: the least confidence minus p_src on those two edges (negative: the path dips).
    Every statistic of a triangle with a NaN confidence anywhere is NaN (a comparison
    with NaN is False: its fractions would otherwise read as plain numbers).
    """
    weights = triangle_grid(divisions)
    confidence = confidence.double()
    p_src = confidence[..., 0]
    edge_a = confidence[..., weights[:, 2] == 0]  # t2 = 0: from source to blind spot A
    edge_b = confidence[..., weights[:, 1] == 0]  # t1 = 0: from source to blind spot B
    stats = {"p_src": p_src, "avg_conf": confidence.mean(-1)}
    for drop in DROPS:
        stats[f"frac_{drop:g}"] = (confidence > p_src[..., None] - drop).double().mean(-1)
    stats["path_conf"] = (edge_a.mean(-1) + edge_b.mean(-1)) / 2
    stats["edge_min"] = torch.minimum(edge_a.amin(-1), edge_b.amin(-1)) - p_src
    broken = confidence.isnan().any(-1)
    return {name: value.masked_fill(broken, math.nan) for name, value in stats.items()}


def triangle_stats(model, source, blind_spot_a, blind_spot_b, label, divisions: int = 10,
                   points_per_pass: int | None = None, execution: Execution | None = None) -> dict[str, torch.Tensor]:
    """Table-2 statistics of the triangle (source, blind spot A, blind spot B): p_src,
    avg_conf, frac_0 .. frac_0.3, path_conf, edge_min; batches give one value per triangle."""
    confidence = triangle_confidence(model, source, blind_spot_a, blind_spot_b, label, divisions, points_per_pass,
                                     execution)
    return stats_from_confidence(confidence, divisions)


def triangle_shape(source, blind_spot_a, blind_spot_b) -> torch.Tensor:
    """2-D coordinates (3, 2) of the triangle in its true shape.

    The source at the origin, blind spot A at (1, 0), blind spot B at the ratio of the
    edge lengths |B - S| / |A - S| and the angle between the two edges.
    """
    edge_a = (blind_spot_a - source).flatten().double()
    edge_b = (blind_spot_b - source).flatten().double()
    length_a, length_b = edge_a.norm(), edge_b.norm()
    if length_a == 0 or length_b == 0:
        raise ValueError("a blind spot coincides with the source: the triangle is degenerate")
    cosine = float((edge_a @ edge_b) / (length_a * length_b))
    ratio = float(length_b / length_a)
    angle = math.acos(max(-1.0, min(1.0, cosine)))
    return torch.tensor([[0.0, 0.0], [1.0, 0.0], [ratio * math.cos(angle), ratio * math.sin(angle)]],
                        dtype=torch.float64)


def grid_coordinates(shape: torch.Tensor, divisions: int = 10) -> torch.Tensor:
    """2-D coordinates (N, 2) of the grid points inside a triangle of ``triangle_shape``."""
    return triangle_grid(divisions) @ shape


def barycentric_from_coordinates(shape: torch.Tensor, x: float, y: float) -> tuple[float, float]:
    """The weights (t1, t2) of blind spots A and B at the 2-D point (x, y) of a triangle of
    ``triangle_shape``: the inverse of :func:`grid_coordinates` (the point is source + t1 (A - source)
    + t2 (B - source)); a point outside the triangle gives a negative weight or t1 + t2 > 1."""
    shape = torch.as_tensor(shape, dtype=torch.float64)
    edges = torch.stack([shape[1] - shape[0], shape[2] - shape[0]], dim=1)  # (2, 2): columns A - S, B - S
    t1, t2 = torch.linalg.solve(edges, torch.tensor([x, y], dtype=torch.float64) - shape[0]).tolist()
    return t1, t2
