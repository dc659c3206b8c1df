"""Geometry of blind spots: confidence over the triangle (source, blind spot A,
blind spot B), along straight segments from a source, and the triangle's true shape
for plotting (the paper's Table 2 and Figures 3 and 5).

Points are images in [0, 1]; every model evaluation runs in large batches.
"""

from __future__ import annotations

import math

import torch

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


def source_class_confidence(model, images: torch.Tensor, labels, batch_size: int = 256) -> torch.Tensor:
    """Softmax confidence of ``labels`` (one per image, or one for all) at ``images`` (N,)."""
    single = images.new_ones(images.shape[0], 1)
    return _confidence_at_combinations(model, single, [images], labels, batch_size)[:, 0]


def _confidence_at_combinations(model, weights: torch.Tensor, vertices: list[torch.Tensor], labels,
                                batch_size: int) -> torch.Tensor:
    """Source-class confidence at the points sum_k weights[n, k] * vertices[k][b].

    ``vertices``: K tensors (B, C, H, W); ``weights``: (N, K). Returns (B, N). Points
    are built chunk by chunk, so B * N images never sit in memory at once.
    """
    batch, num_points = vertices[0].shape[0], weights.shape[0]
    stacked = torch.stack([v.flatten(1) for v in vertices], dim=1)  # (B, K, D)
    weights = weights.to(device=stacked.device, dtype=stacked.dtype)
    labels = torch.as_tensor(labels, device=stacked.device).long().reshape(-1).expand(batch)
    flat_index = torch.arange(batch * num_points, device=stacked.device)
    out = []
    with torch.no_grad():
        for chunk in flat_index.split(batch_size):
            b, n = chunk // num_points, chunk % num_points
            points = torch.einsum("pk,pkd->pd", weights[n], stacked[b]).clamp(0, 1)
            probs = model(points.view(-1, *vertices[0].shape[1:])).softmax(1)
            out.append(probs.gather(1, labels[b, None])[:, 0])
    return torch.cat(out).view(batch, num_points).cpu()


def _batched(*images: torch.Tensor) -> tuple[bool, list[torch.Tensor]]:
    single = images[0].dim() == 3
    return single, [image.unsqueeze(0) if single else image for image in images]


def triangle_confidence(model, source, blind_spot_a, blind_spot_b, label, divisions: int = 10,
                        batch_size: int = 256) -> torch.Tensor:
    """Source-class confidence at each point of ``triangle_grid(divisions)``.

    Images (C, H, W) give (N,); batches (B, C, H, W) with B labels give (B, N).
    """
    single, vertices = _batched(source, blind_spot_a, blind_spot_b)
    confidence = _confidence_at_combinations(model, triangle_grid(divisions), vertices, label, batch_size)
    return confidence[0] if single else confidence


def segment_confidence(model, source, blind_spot, label, steps: int = 11,
                       batch_size: int = 256) -> torch.Tensor:
    """Source-class confidence along the straight segment from ``source`` to ``blind_spot``
    at ``steps`` equally spaced points, both ends included ((steps,) or (B, steps))."""
    single, vertices = _batched(source, blind_spot)
    t = torch.linspace(0, 1, steps, dtype=torch.float64)[:, None]
    confidence = _confidence_at_combinations(model, torch.cat([1 - t, t], dim=1), vertices, label, batch_size)
    return confidence[0] if single else confidence


def stats_from_confidence(confidence: torch.Tensor, divisions: int = 10) -> dict[str, torch.Tensor]:
    """Table-2 statistics of triangles from their grid confidences (``docs/reproduction.md``).

    ``confidence``: (N,) for one triangle or (B, N) for many; each statistic is a
    0-d or (B,) tensor.

    p_src: confidence at the source vertex; avg_conf: mean over the grid;
    frac_{d}: fraction of grid points with confidence > p_src - d;
    path_conf: mean confidence along the two edges leaving the source, averaged.
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
    broken = confidence.isnan().any(-1)
    return {name: value.masked_fill(broken, math.nan) for name, value in stats.items()}


def triangle_stats(model, source, blind_spot_a, blind_spot_b, label, divisions: int = 10,
                   batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Table-2 statistics of the triangle (source, blind spot A, blind spot B): p_src,
    avg_conf, frac_0 .. frac_0.3, path_conf; batches give one value per triangle."""
    confidence = triangle_confidence(model, source, blind_spot_a, blind_spot_b, label, divisions, batch_size)
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
