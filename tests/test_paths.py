import math

import pytest
import torch
from torch import nn

from blindspots_nb.execution import Execution
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import predict
from helpers import make_tiny_cnn
from blindspots_nb.analysis.paths import (blindspot_grid, orthogonal_perturbations, path_directions, path_widths,
                                          segment_points, traversal_path_widths)


def test_orthogonal_perturbations_have_the_radius_and_are_orthogonal():
    directions = torch.randn(3, 3, 8, 8)
    generator = torch.Generator().manual_seed(0)
    perturbations = orthogonal_perturbations(directions, 2.5, 40, generator)
    assert perturbations.shape == (3, 40, 3, 8, 8)
    flat = perturbations.flatten(2).double()
    torch.testing.assert_close(flat.norm(dim=2), torch.full((3, 40), 2.5, dtype=torch.float64), atol=1e-5, rtol=0)
    unit = directions.flatten(1).double()
    unit = unit / unit.norm(dim=1, keepdim=True)
    cosine = (flat @ unit[:, :, None])[..., 0] / 2.5
    assert cosine.abs().max() < 1e-5
    # random directions, not one repeated: the samples spread over the sphere
    assert (flat[0] @ flat[0].T / 2.5 ** 2).fill_diagonal_(0).abs().max() < 0.7
    again = orthogonal_perturbations(directions, 2.5, 40, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again, perturbations)


def test_zero_direction_is_refused():
    with pytest.raises(ValueError, match="direction is zero"):
        orthogonal_perturbations(torch.zeros(1, 1, 4, 4), 1.0, 2)


def test_segment_points_and_their_directions():
    start, end = torch.zeros(1, 4, 4), torch.ones(1, 4, 4)
    points = segment_points(start, end, 5)
    assert points.shape == (5, 1, 4, 4)
    torch.testing.assert_close(points[0], start)
    torch.testing.assert_close(points[-1], end)
    torch.testing.assert_close(points[2], torch.full((1, 4, 4), 0.5))
    directions = path_directions(points)
    # central differences inside, one-sided at the ends: all along end - start
    torch.testing.assert_close(directions[1:-1], torch.full((3, 1, 4, 4), 0.5))
    torch.testing.assert_close(directions[[0, -1]], torch.full((2, 1, 4, 4), 0.25))
    with pytest.raises(ValueError):
        segment_points(start, end, 1)


class ProjectionModel(nn.Module):
    """Logits (0, s * <w, x - 0.5>): the confidence depends only on the component of
    x along w, so perturbations orthogonal to w cannot change it."""

    def __init__(self, w, scale=3.0):
        super().__init__()
        self.register_buffer("w", w.flatten())
        self.scale = scale

    def forward(self, x):
        along = (x - 0.5).flatten(1) @ self.w * self.scale
        return torch.stack([torch.zeros_like(along), along], dim=1)


def test_path_widths_orthogonal_perturbations_leave_a_projection_model_unchanged():
    direction = torch.randn(1, 6, 6)
    direction /= direction.norm()
    model = ProjectionModel(direction)
    start = torch.full((1, 6, 6), 0.5) - 0.1 * direction
    points = segment_points(start, start + 0.2 * direction, 4)
    widths = path_widths(model, points, 1, radii=(0.05, 0.1), samples=8, quantiles=(0.05, 0.5, 0.95))
    assert widths.values.shape == (3, 2, 4)
    expected = model(points).softmax(1)[:, 1]
    torch.testing.assert_close(widths.center, expected)
    for q in range(3):
        for r in range(2):
            torch.testing.assert_close(widths.values[q, r], expected.double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(widths.positions, torch.linspace(0, 1, 4, dtype=torch.float64))


def test_path_widths_quantiles_are_ordered_and_radius_zero_gives_the_path(tiny_cnn):
    torch.manual_seed(0)
    start, end = torch.rand(3, 16, 16), torch.rand(3, 16, 16)
    points = segment_points(start, end, 5)
    widths = path_widths(tiny_cnn, points, 2, radii=(0.0, 1.0, 3.0), samples=16, quantiles=(0.05, 0.5, 0.95),
                         positions=torch.arange(5))
    assert (widths.values[0] <= widths.values[1] + 1e-12).all()
    assert (widths.values[1] <= widths.values[2] + 1e-12).all()
    # radius 0: every perturbed point is the path point itself
    for q in range(3):
        torch.testing.assert_close(widths.values[q, 0], widths.center.double(), atol=1e-6, rtol=0)
    # a larger radius spreads the confidences
    spread = widths.values[-1] - widths.values[0]
    assert spread[2].mean() > spread[1].mean() > 0
    assert widths.positions.tolist() == [0, 1, 2, 3, 4]
    assert widths.samples == 16


def test_path_widths_run_as_the_execution_says():
    model = make_tiny_cnn(sharpness=1.0)
    points = segment_points(*torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(3)), 4)
    fp32 = path_widths(model, points, 1, radii=(1.0,), samples=8)
    bf16 = path_widths(model, points, 1, radii=(1.0,), samples=8, execution=Execution(precision="bf16"))
    for measured, reference in ((bf16.center, fp32.center), (bf16.values, fp32.values)):
        assert not torch.equal(measured, reference)
        torch.testing.assert_close(measured, reference, atol=2e-2, rtol=0)


def test_path_widths_rejects_bad_input(tiny_cnn):
    with pytest.raises(ValueError, match=r"a path \(P, C, H, W\); got \(3, 16, 16\)"):
        path_widths(tiny_cnn, torch.rand(3, 16, 16), 0)
    with pytest.raises(ValueError, match="at least one sample"):
        path_widths(tiny_cnn, torch.rand(2, 3, 16, 16), 0, samples=0)


def test_blindspot_grid_is_indexed_target_row_source_column(tiny_cnn):
    torch.manual_seed(1)
    images = torch.rand(3, 3, 16, 16)
    grid = blindspot_grid(tiny_cnn, images, LSTConfig(iterations=5, record_every=0))
    k = 3
    assert grid.images.shape == (k, k, 3, 16, 16)
    assert grid.pairs == [(i, j) for i in range(k) for j in range(k) if i != j]
    labels, clean = predict(tiny_cnn, images)
    assert grid.labels.tolist() == labels.tolist()
    for n in range(k):
        torch.testing.assert_close(grid.images[n, n], images[n])
        # the grid's batch of pairs and predict's batch of images are other batch shapes: float32
        # logits of ~100 (the tiny CNN's sharpness) move by ~1e-5 (eps 1.2e-7 relative), the
        # softmax as much (measured 1.1e-6 relative with AVX2 kernels), as for the pairs below
        assert math.isclose(float(grid.confidence[n, n]), float(clean[n]), rel_tol=1e-4)
    for n, (i, j) in enumerate(grid.pairs):
        torch.testing.assert_close(grid.images[i, j], grid.result.images[n])
        assert int(grid.result.labels[n]) == int(labels[j])
        assert int(grid.result.target_labels[n]) == int(labels[i])
        with torch.no_grad():
            reached = tiny_cnn(grid.images[i, j][None]).softmax(1)[0, labels[j]]
        assert math.isclose(float(grid.confidence[i, j]), float(reached), rel_tol=1e-4)
    with pytest.raises(ValueError, match="at least 2"):
        blindspot_grid(tiny_cnn, images[:1])


class Recorder(nn.Module):
    """Passes images to a model and keeps each batch it saw, and whether with gradient."""

    def __init__(self, model):
        super().__init__()
        self.model, self.calls = model, []

    def forward(self, x):
        self.calls.append((x.detach().clone(), torch.is_grad_enabled()))
        return self.model(x)


def _recorded_traversal(model, record_images=True):
    torch.manual_seed(3)  # pixels in [0.3, 0.7]: perturbations of these radii are never clipped
    sources, targets = 0.3 + 0.4 * torch.rand(2, 3, 16, 16), 0.3 + 0.4 * torch.rand(2, 3, 16, 16)
    config = LSTConfig(step_size=0.1, iterations=6, record_every=2, record_images=record_images)
    return Traversal(model, sources, [2, 1], targets, config).run(), targets


def test_traversal_path_widths_perturb_orthogonally_to_the_lst_step(tiny_cnn):
    traversal, targets = _recorded_traversal(tiny_cnn)
    recorder = Recorder(tiny_cnn)
    radii, samples = (0.5, 0.25), 12
    widths = traversal_path_widths(recorder, traversal, index=1, radii=radii, samples=samples,
                                   quantiles=(0.05, 0.5), points_per_pass=20)
    points = torch.stack(traversal.history.images)[:, 1]
    assert widths.positions.tolist() == [0, 2, 4, 6] == traversal.history.iteration
    # independently: the raw CE gradient at each iterate, and target - x without its part along it
    gradients = []
    for x in points:
        x = x[None].clone().requires_grad_(True)
        nn.functional.cross_entropy(tiny_cnn(x), torch.tensor([1])).backward()
        gradients.append(x.grad[0].flatten().double())
    gradient = torch.stack(gradients)
    step = (targets[1] - points).flatten(1).double()
    step = step - (step * gradient).sum(1, keepdim=True) / (gradient * gradient).sum(1, keepdim=True) * gradient
    unit = step / step.norm(dim=1, keepdim=True)
    # one forward+backward per recorded iterate, then the path itself, then the perturbed points
    with_grad = torch.cat([x for x, grad in recorder.calls if grad])
    torch.testing.assert_close(with_grad, points)
    without = [x for x, grad in recorder.calls if not grad]
    torch.testing.assert_close(without[0], points)
    perturbed = torch.cat(without[1:]).reshape(len(radii), len(points), samples, -1).double()
    offsets = perturbed - points.flatten(1).double()[None, :, None]
    for r, radius in enumerate(radii):
        torch.testing.assert_close(offsets[r].norm(dim=2), torch.full((4, samples), radius, dtype=torch.float64),
                                   atol=1e-5, rtol=0)
        assert (offsets[r] @ unit[:, :, None]).abs().max() / radius < 1e-4
        # not orthogonal to everything: the gradient's direction is perturbed (random cosines ~ 1/28)
        along_gradient = offsets[r] @ (gradient / gradient.norm(dim=1, keepdim=True))[:, :, None]
        assert along_gradient.abs().max() / radius > 1e-2
    # the quantiles are those of the model's confidence on exactly these points
    with torch.no_grad():
        confidence = tiny_cnn(perturbed.flatten(0, 2).view(-1, 3, 16, 16).float()).softmax(1)[:, 1]
    expected = torch.quantile(confidence.view(len(radii), len(points), samples).double(),
                              torch.tensor([0.05, 0.5], dtype=torch.float64), dim=2)
    torch.testing.assert_close(widths.values, expected, atol=1e-6, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(widths.center, tiny_cnn(points).softmax(1)[:, 1])


def test_traversal_path_widths_from_a_result_match_the_traversal_and_are_seeded(tiny_cnn):
    traversal, targets = _recorded_traversal(tiny_cnn)
    kwargs = dict(radii=(1.0,), samples=8, seed=5)
    widths = traversal_path_widths(tiny_cnn, traversal, **kwargs)
    again = traversal_path_widths(tiny_cnn, traversal.result(), targets=targets, **kwargs)
    torch.testing.assert_close(again.values, widths.values)
    assert widths.quantiles.tolist() == [0.05] and widths.samples == 8
    other = traversal_path_widths(tiny_cnn, traversal, radii=(1.0,), samples=8, seed=6)
    assert not torch.equal(other.values, widths.values)


def test_traversal_path_widths_refuses_what_it_cannot_measure(tiny_cnn):
    unrecorded, targets = _recorded_traversal(tiny_cnn, record_images=False)
    with pytest.raises(ValueError, match="record_images=True"):
        traversal_path_widths(tiny_cnn, unrecorded)
    traversal, targets = _recorded_traversal(tiny_cnn)
    with pytest.raises(ValueError, match="targets="):
        traversal_path_widths(tiny_cnn, traversal.result())
    with pytest.raises(ValueError, match=r"recorded batch; got \(1, 3, 16, 16\)"):
        traversal_path_widths(tiny_cnn, traversal.result(), targets=targets[:1])
    with pytest.raises(IndexError, match="batch of 2"):
        traversal_path_widths(tiny_cnn, traversal, index=2)
    with pytest.raises(TypeError, match="Traversal or an LSTResult"):
        traversal_path_widths(tiny_cnn, targets)
