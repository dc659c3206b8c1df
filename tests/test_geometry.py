import math
from itertools import combinations

import numpy as np
import pytest
import torch

from blindspots_nb.execution import Execution
from blindspots_nb.analysis.geometry import (grid_coordinates, segment_confidence, shared_grid_points,
                                             stats_from_confidence, triangle_confidence, triangle_grid,
                                             triangle_shape, triangle_stats, triangles_confidence)
from blindspots_nb.models import class_confidence
from helpers import make_tiny_cnn


def test_grid_has_66_exact_points_with_vertices_and_edges():
    grid = triangle_grid(10)
    assert grid.shape == (66, 3)
    assert torch.allclose(grid.sum(1), torch.ones(66, dtype=torch.float64))
    assert (grid >= 0).all()
    assert len({tuple(row) for row in (grid * 10).round().long().tolist()}) == 66
    assert grid[0].tolist() == [1.0, 0.0, 0.0]  # source vertex first
    for vertex in ([0.0, 1.0, 0.0], [0.0, 0.0, 1.0]):
        assert any(torch.allclose(row, torch.tensor(vertex, dtype=torch.float64)) for row in grid)
    assert (grid[:, 2] == 0).sum() == 11 and (grid[:, 1] == 0).sum() == 11  # edges from the source
    assert (grid[:, 0].abs() < 1e-12).sum() == 11  # the far edge keeps all 11 points
    assert triangle_grid(4).shape == (15, 3)


def _brute_force_stats(model, source, a, b, label, divisions=10):
    """Table-2 statistics by plain loops in numpy, one point at a time."""
    values, edge_a, edge_b = [], [], []
    for i in range(divisions + 1):
        for j in range(divisions + 1 - i):
            t1, t2 = i / divisions, j / divisions
            point = ((1 - t1 - t2) * source + t1 * a + t2 * b).clamp(0, 1)
            with torch.no_grad():
                c = float(model(point[None]).softmax(1)[0, label])
            values.append(c)
            if j == 0:
                edge_a.append(c)
            if i == 0:
                edge_b.append(c)
    values = np.array(values)
    p_src = values[0]
    stats = {"p_src": p_src, "avg_conf": values.mean(), "path_conf": (np.mean(edge_a) + np.mean(edge_b)) / 2,
             "edge_min": min(edge_a + edge_b) - p_src}
    for d in (0.0, 0.1, 0.2, 0.3):
        stats[f"frac_{d:g}"] = np.mean(values > p_src - d)
    return stats


def test_triangle_stats_match_brute_force():
    model = make_tiny_cnn()
    generator = torch.Generator().manual_seed(0)
    source, a, b = (torch.rand(3, 3, 16, 16, generator=generator))
    label = int(model(source[None]).argmax())
    ours = triangle_stats(model, source, a, b, label, points_per_pass=17)
    expected = _brute_force_stats(model, source, a, b, label)
    assert set(ours) == set(expected)
    for key, value in expected.items():
        assert float(ours[key]) == pytest.approx(value, abs=1e-5), key
    assert 0 < float(ours["frac_0.1"]) < 1  # the thresholds do discriminate here


def test_batched_triangles_equal_single_ones():
    model = make_tiny_cnn(sharpness=30.0)
    generator = torch.Generator().manual_seed(1)
    sources, a, b = torch.rand(3, 4, 3, 16, 16, generator=generator)
    labels = model(sources).argmax(1)
    batched = triangle_confidence(model, sources, a, b, labels, points_per_pass=50)
    assert batched.shape == (4, 66)
    for i in range(4):
        single = triangle_confidence(model, sources[i], a[i], b[i], int(labels[i]))
        assert torch.allclose(batched[i], single, atol=1e-6)
    stats = triangle_stats(model, sources, a, b, labels)
    assert stats["avg_conf"].shape == (4,)


def test_segment_confidence_endpoints():
    model = make_tiny_cnn(sharpness=30.0)
    generator = torch.Generator().manual_seed(2)
    source, end = torch.rand(2, 3, 16, 16, generator=generator)
    label = int(model(source[None]).argmax())
    values = segment_confidence(model, source, end, label, steps=11)
    assert values.shape == (11,)
    expected_ends = class_confidence(model, torch.stack([source, end]), label)
    assert torch.allclose(values[[0, -1]], expected_ends, atol=1e-6)
    middle = class_confidence(model, ((source + end) / 2)[None], label)
    assert values[5] == pytest.approx(float(middle), abs=1e-6)


def test_segment_confidence_runs_as_the_execution_says():
    model = make_tiny_cnn(sharpness=1.0)
    source, end = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    fp32 = segment_confidence(model, source, end, 1)
    bf16 = segment_confidence(model, source, end, 1, execution=Execution(precision="bf16"))
    assert not torch.equal(bf16, fp32)
    torch.testing.assert_close(bf16, fp32, atol=2e-2, rtol=0)


def test_triangle_shape_keeps_lengths_and_angle():
    generator = torch.Generator().manual_seed(3)
    source, a, b = torch.rand(3, 3, 8, 8, generator=generator, dtype=torch.float64)
    shape = triangle_shape(source, a, b)
    length_a, length_b = (a - source).norm(), (b - source).norm()
    assert torch.allclose(shape[0], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(shape[1], torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert float(shape[2].norm()) == pytest.approx(float(length_b / length_a))
    cosine = float(((a - source).flatten() @ (b - source).flatten()) / (length_a * length_b))
    assert math.cos(math.atan2(shape[2, 1], shape[2, 0])) == pytest.approx(cosine)
    # the far edge's length is preserved too (in units of |A - S|)
    assert float((shape[2] - shape[1]).norm()) == pytest.approx(float((b - a).norm() / length_a))
    points = grid_coordinates(shape)
    assert points.shape == (66, 2) and torch.allclose(points[0], shape[0])
    with pytest.raises(ValueError, match="degenerate"):
        triangle_shape(source, source, b)


def test_a_nan_confidence_makes_its_triangles_statistics_nan():
    confidence = torch.rand(3, 66, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    confidence[1, 30] = math.nan  # inside the triangle: not the source, not on an edge from it
    confidence[2, 0] = math.nan   # the source vertex
    stats = stats_from_confidence(confidence)
    alone = stats_from_confidence(confidence[0])
    for key, value in stats.items():
        assert float(value[0]) == float(alone[key]) and not math.isnan(float(alone[key])), key
        assert value[1:].isnan().all(), key  # never a silent 0 from comparisons with NaN


@pytest.mark.parametrize("blind_spots, divisions", [(5, 10), (2, 10), (3, 4), (6, 1)])
def test_shared_grid_points_are_the_distinct_points_of_all_triangles(blind_spots, divisions):
    weights, vertex_index, where = shared_grid_points(blind_spots, divisions)
    n = (divisions + 1) * (divisions + 2) // 2
    pairs = blind_spots * (blind_spots - 1) // 2
    inner = n - 1 - 2 * divisions  # neither the source nor an edge leaving it
    assert len(weights) == 1 + blind_spots * divisions + pairs * inner
    assert where.shape == (pairs, n) and sorted(set(where.flatten().tolist())) == list(range(len(weights)))
    vertices = torch.randn(1 + blind_spots, 7, dtype=torch.float64)  # each vertex a random vector
    distinct = torch.einsum("uk,ukd->ud", weights, vertices[vertex_index])
    grid = triangle_grid(divisions)
    for p, (i, j) in enumerate(combinations(range(blind_spots), 2)):
        points = grid @ vertices[[0, 1 + i, 1 + j]]
        assert torch.allclose(distinct[where[p]], points, atol=1e-12)
    assert len(torch.unique(distinct.round(decimals=9), dim=0)) == len(weights)
    assert len(shared_grid_points(5, 10)[0]) == 501  # instead of 10 * 66 = 660


class _Counting(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += len(x)
        return self.model(x)


def test_shared_triangles_give_the_per_pair_confidences_with_501_of_660_forward_passes():
    model = _Counting(make_tiny_cnn(sharpness=3.0))
    generator = torch.Generator().manual_seed(0)
    source, *spots = torch.rand(6, 3, 3, 16, 16, generator=generator)
    labels = model(source).argmax(1)
    model.images = 0
    shared = triangles_confidence(model, source, spots, labels, points_per_pass=1)
    assert model.images == 501 * 3
    model.images = 0
    per_pair = torch.stack([triangle_confidence(model, source, spots[i], spots[j], labels, points_per_pass=1)
                            for i, j in combinations(range(5), 2)])
    assert model.images == 660 * 3
    assert torch.equal(shared, per_pair)  # each point alone in its batch: the very same bits
    batched = triangles_confidence(model, source, spots, labels, points_per_pass=97)
    assert (batched - per_pair).abs().max() < 1e-6  # other batches: float32 kernels may round otherwise
    stats = stats_from_confidence(shared)
    assert (stats["edge_min"] <= 0).all()  # the source itself lies on both edges
    with pytest.raises(ValueError, match="at least 2 blind spots"):
        triangles_confidence(model, source, spots[:1], labels)
