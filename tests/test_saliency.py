"""Attribution maps (blindspots_nb.analysis.saliency) against independent computations, and their plots."""

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from blindspots_nb.execution import Execution
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.plots import blindspot_grid_figure, saliency_correlation_figure, saliency_strip
from blindspots_nb.analysis.saliency import (METHODS, attribution_maps, attributions, gradcam_layer,
                                             grid_attribution_maps, method_options, occlusion_window, path_saliency,
                                             rank_correlation)
from blindspots_nb.analysis.words import method_caption, saliency_sentences

matplotlib.use("Agg")


def _images(count=2, channels=3, size=16, seed=0):
    return torch.rand((count, channels, size, size), generator=torch.Generator().manual_seed(seed))


def _linear(channels=3, size=16, classes=4):
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, classes)).eval()


class _LeftHalf(nn.Module):
    """Two convolutions (no bias) on the image's left half only: the right half is zeroed first."""

    def __init__(self, classes=3):
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Conv2d(3, 4, 3, padding=1, bias=False)
        self.last = nn.Conv2d(4, 6, 3, padding=1, bias=False)
        self.head = nn.Linear(6, classes)

    def forward(self, x):
        x = x * (torch.arange(x.shape[-1]) < x.shape[-1] // 2).to(x.dtype)
        return self.head(torch.relu(self.last(torch.relu(self.first(x)))).mean((2, 3)))


class _TinyViT(nn.Module):
    """A patch-embedding convolution followed by attention, as in a vision transformer."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Conv2d(3, 8, 4, stride=4)
        self.attention = nn.MultiheadAttention(8, 2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        return self.head(self.attention(tokens, tokens, tokens)[0].mean(1))


def test_saliency_of_a_linear_model_is_its_weights():
    model, images, labels = _linear(), _images(), torch.tensor([1, 3])
    maps = attribution_maps(model, images, labels, "saliency")
    weights = model[1].weight.detach().view(4, 3, 16, 16)[labels].abs().amax(1)
    assert maps.shape == (2, 16, 16) and maps.device.type == "cpu"
    torch.testing.assert_close(maps, weights / weights.amax((1, 2), keepdim=True))


def test_integrated_gradients_of_a_linear_model_is_input_times_weight():
    model, images, labels = _linear(), _images(), torch.tensor([0, 2])
    maps = attribution_maps(model, images, labels, "integrated_gradients", n_steps=4)
    contribution = (images * model[1].weight.detach().view(4, 3, 16, 16)[labels]).sum(1).abs()
    torch.testing.assert_close(maps, contribution / contribution.amax((1, 2), keepdim=True), rtol=1e-4, atol=1e-5)


def test_integrated_gradients_complete_on_a_small_cnn(tiny_cnn):
    images, labels = _images(), torch.tensor([0, 4])
    baseline = torch.full_like(images, 0.5)
    raw = attributions(tiny_cnn, images, labels, "integrated_gradients", baseline=baseline, n_steps=256)
    with torch.no_grad():
        gain = (tiny_cnn(images) - tiny_cnn(baseline)).gather(1, labels[:, None])[:, 0]
    assert gain.abs().min() > 0.1  # the check below is not trivially met
    torch.testing.assert_close(raw.flatten(1).sum(1), gain, rtol=1e-2, atol=1e-3)


def test_gradcam_is_zero_where_the_model_does_not_look():
    model, images = _LeftHalf(), _images(3)
    maps = attribution_maps(model, images, torch.tensor([0, 1, 2]), "gradcam")
    assert gradcam_layer(model) is model.last  # the last convolution by default
    assert maps.shape == (3, 16, 16) and bool((maps >= 0).all())
    assert torch.equal(maps[:, :, 10:], torch.zeros(3, 16, 6))  # right of column 8, beyond two 3x3 kernels
    assert bool((maps[:, :, :8].amax((1, 2)) > 0).all())  # the left half is seen (max 1 or an all-zero map)
    by_name = attribution_maps(model, images, torch.tensor([0, 1, 2]), "gradcam", layer="first")
    torch.testing.assert_close(by_name, attribution_maps(model, images, torch.tensor([0, 1, 2]), "gradcam",
                                                         layer=model.first))


def _occlusion_by_loops(model, image, label, window, stride):
    """Occlusion written out: patches of window x window pixels (every channel) set to 0 with their top-left
    corners at 0, stride, 2 stride, ... in each direction until a patch reaches the image's edge (the last one
    cut off there); each pixel's value is the mean drop of the label's logit over the patches covering it."""
    size = image.shape[-1]
    corners = []
    for corner in range(0, size, stride):
        corners.append(corner)
        if corner + window >= size:
            break
    with torch.no_grad():
        clean = float(model(image[None])[0, label])
        drop_sum, covered = torch.zeros(size, size), torch.zeros(size, size)
        for top in corners:
            for left in corners:
                hidden = image.clone()
                hidden[:, top:top + window, left:left + window] = 0
                drop_sum[top:top + window, left:left + window] += clean - float(model(hidden[None])[0, label])
                covered[top:top + window, left:left + window] += 1
    assert bool((covered > 0).all())
    return drop_sum / covered


def test_occlusion_matches_the_map_computed_by_hand(tiny_cnn):
    images, labels = _images(2, seed=4), torch.tensor([1, 3])
    raw = attributions(tiny_cnn, images, labels, "occlusion", window=5, stride=3)  # corners 0, 3, 6, 9, 12 (cut off)
    maps = attribution_maps(tiny_cnn, images, labels, "occlusion", window=5, stride=3)
    for n in range(2):
        expected = _occlusion_by_loops(tiny_cnn, images[n], int(labels[n]), window=5, stride=3)
        assert float(expected.max()) > 0 and float(expected.min()) < 0  # both signs: the positive part matters
        for channel in range(3):  # a patch hides every channel: one value per pixel
            torch.testing.assert_close(raw[n, channel], expected, rtol=1e-4, atol=1e-5)
        positive = expected.clamp_min(0)
        torch.testing.assert_close(maps[n], positive / positive.max(), rtol=1e-4, atol=1e-5)


def test_occlusion_default_window_and_its_errors(tiny_cnn):
    assert occlusion_window((3, 224, 224)) == ((28, 28), (14, 14))  # an eighth of the side, half of it
    assert occlusion_window((1, 32, 32), window=(4, 2)) == ((4, 2), (2, 2))
    images = _images(1)
    torch.testing.assert_close(attribution_maps(tiny_cnn, images, [2], "occlusion"),  # 16 px: window 2, stride 1
                               attribution_maps(tiny_cnn, images, [2], "occlusion", window=2, stride=1))
    with pytest.raises(ValueError, match="stride .* is longer than its window"):
        attribution_maps(tiny_cnn, images, [0], "occlusion", window=2, stride=3)
    with pytest.raises(ValueError, match=r"window of 1 to \(16, 16\)"):
        attribution_maps(tiny_cnn, images, [0], "occlusion", window=17)
    with pytest.raises(ValueError, match="baseline is a number"):
        attribution_maps(tiny_cnn, images, [0], "occlusion", baseline=torch.zeros(3))
    assert "occlusion (window=(28, 28), stride=(14, 14), baseline=0.0)" in method_caption(
        SimpleNamespace(input_size=(3, 224, 224)), "occlusion")
    assert method_options("occlusion", layer="x", n_steps=3, window=6) == {"window": 6}  # notebook 06's parameters
    assert method_options("occlusion") == {}


def test_maps_are_normalised_and_nonnegative(tiny_cnn):
    for method in METHODS:
        maps = attribution_maps(tiny_cnn, _images(), [0, 1], method,
                                **({"n_steps": 4} if method == "integrated_gradients" else {}))
        assert maps.shape == (2, 16, 16) and maps.dtype == torch.float32
        assert bool((maps >= 0).all())
        assert all(float(peak) in (0.0, 1.0) for peak in maps.amax((1, 2)))


def test_clear_errors(tiny_cnn):
    with pytest.raises(ValueError, match="'lime'; known methods: saliency"):
        attribution_maps(tiny_cnn, _images(), [0, 1], "lime")
    with pytest.raises(ValueError, match=r"takes no option\(s\) \['n_steps'\]"):
        attribution_maps(tiny_cnn, _images(), [0, 1], "saliency", n_steps=3)
    with pytest.raises(ValueError, match="has none; pass layer="):
        attribution_maps(_linear(), _images(), [0, 1], "gradcam")
    with pytest.raises(ValueError, match="attention blocks.*layer="):
        attribution_maps(_TinyViT(), _images(), [0, 1], "gradcam")
    with pytest.raises(ValueError, match="no layer 'nope'"):
        attribution_maps(tiny_cnn, _images(), [0, 1], "gradcam", layer="nope")
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        attribution_maps(tiny_cnn, _images() * 3, [0, 1])
    with pytest.raises(ValueError, match="one label per source"):
        attribution_maps(tiny_cnn, _images(), [0])


def test_rank_correlation_matches_scipy():
    generator = torch.Generator().manual_seed(1)
    maps = (torch.rand((3, 8, 8), generator=generator) * 5).round()  # many ties
    reference = (torch.rand((8, 8), generator=generator) * 5).round()
    expected = [spearmanr(m.flatten().numpy(), reference.flatten().numpy()).statistic for m in maps]
    torch.testing.assert_close(rank_correlation(maps, reference), torch.tensor(expected, dtype=torch.float64))
    torch.testing.assert_close(rank_correlation(maps, maps), torch.ones(3, dtype=torch.float64))
    constant = rank_correlation(torch.stack([torch.zeros(8, 8), maps[0]]), reference)
    assert bool(constant[0].isnan()) and not bool(constant[1].isnan())


def test_path_saliency_follows_the_recorded_steps(tiny_cnn):
    images = _images(2, seed=3)
    labels = tiny_cnn(images).argmax(1)
    traversal = Traversal(tiny_cnn, images[:1], labels[:1], images[1:],
                          LSTConfig(step_size=0.2, iterations=10, record_every=2, record_images=True))
    traversal.step(5)  # records iterations 0, 2, 4; the current point (5) is the blind spot
    path = path_saliency(tiny_cnn, traversal, "gradcam")
    assert path.steps == ["source", "iteration 0", "iteration 2", "iteration 4", "blind spot (iteration 5)"]
    assert path.source_maps.shape == path.target_class_maps.shape == (5, 16, 16)
    assert len(path.with_source) == len(path.with_target) == len(path.progress) == 5
    torch.testing.assert_close(path.images[0], images[0])
    torch.testing.assert_close(path.images[-1], traversal.images[0].cpu())
    assert float(path.with_source[0]) == pytest.approx(1.0)
    assert float(path.progress[0]) == 0.0
    assert (path.source_label, path.target_label) == (int(labels[0]), int(traversal.target_labels[0]))
    expected = rank_correlation(attribution_maps(tiny_cnn, path.images, [path.source_label] * 5, "gradcam"),
                                attribution_maps(tiny_cnn, images[1:], [path.target_label], "gradcam")[0])
    torch.testing.assert_close(path.with_target, expected, equal_nan=True)
    assert path.keeps_source_class == (int(tiny_cnn(traversal.images).argmax(1)[0]) == path.source_label)

    ran = traversal.run()  # the last record is the end: no extra point
    from_result = path_saliency(tiny_cnn, ran.result(), "saliency", source=images[0], target=images[1],
                                target_class=False)
    assert from_result.steps[-1] == "blind spot (iteration 10)" and len(from_result.steps) == 1 + 6
    assert from_result.target_class_maps is None
    from_images = path_saliency(tiny_cnn, from_result.images, target=images[1])
    torch.testing.assert_close(from_images.with_source, from_result.with_source)


def test_path_saliency_confidences_run_as_the_execution_says():
    model, images = _linear(), _images(4, seed=5)
    fp32 = path_saliency(model, images[:3], target=images[3], target_class=False)
    bf16 = path_saliency(model, images[:3], target=images[3], target_class=False,
                         execution=Execution(precision="bf16"))
    assert not torch.equal(bf16.source_confidence, fp32.source_confidence)
    torch.testing.assert_close(bf16.source_confidence, fp32.source_confidence, atol=2e-2, rtol=0)


def test_path_saliency_errors(tiny_cnn):
    images = _images(2)
    traversal = Traversal(tiny_cnn, images[:1], [0], images[1:], LSTConfig(iterations=2, record_every=1))
    with pytest.raises(ValueError, match=r"record_images=True"):
        path_saliency(tiny_cnn, traversal.run())
    with pytest.raises(ValueError, match="source= and target="):
        path_saliency(tiny_cnn, Traversal(tiny_cnn, images[:1], [0], images[1:],
                                          LSTConfig(iterations=2, record_images=True)).run().result())
    with pytest.raises(ValueError, match="pass target="):
        path_saliency(tiny_cnn, images)
    with pytest.raises(ValueError, match="known methods"):
        path_saliency(tiny_cnn, images, "lime", target=images[0])


def test_grid_maps_explain_the_column_source_class(tiny_cnn):
    images = _images(3, seed=2)
    grid = SimpleNamespace(images=images[:, None].expand(3, 3, 3, 16, 16) * torch.linspace(0.5, 1, 3)[:, None, None,
                                                                                                       None, None],
                           labels=torch.tensor([0, 2, 4]))
    maps = grid_attribution_maps(tiny_cnn, grid, "saliency", batch_size=4)
    assert maps.shape == (3, 3, 16, 16)
    torch.testing.assert_close(maps[2, 1], attribution_maps(tiny_cnn, grid.images[2, 1][None], [2])[0])


def test_plots_from_a_path_and_the_grid_overlay(tiny_cnn):
    images = _images(2, seed=3)
    traversal = Traversal(tiny_cnn, images[:1], tiny_cnn(images[:1]).argmax(1), images[1:],
                          LSTConfig(step_size=0.2, iterations=4, record_every=1, record_images=True)).run()
    path = path_saliency(tiny_cnn, traversal, "saliency")
    strip = saliency_strip(path, caption="tiny", max_frames=3)
    assert strip.axes[0].get_gridspec().get_geometry() == (3, 4)  # images, two rows of maps; 3 points + target
    curves = saliency_correlation_figure(path, caption="tiny")
    assert len(curves.data) == 4 and list(curves.data[0].y) == path.with_source.tolist()

    grid = SimpleNamespace(images=images[:, None].expand(2, 2, 3, 16, 16), labels=torch.tensor([0, 1]),
                           confidence=torch.ones(2, 2))
    plain = blindspot_grid_figure(grid)
    overlaid = blindspot_grid_figure(grid, overlay=torch.rand(2, 2, 16, 16))
    assert len(plain.axes) == len(overlaid.axes) == 4
    assert not any(np.array_equal(a.images[-1].get_array(), b.images[-1].get_array())
                   for a, b in zip(plain.axes, overlaid.axes))  # each image shows its map
    with pytest.raises(ValueError, match="one map per grid image"):
        blindspot_grid_figure(grid, overlay=torch.rand(2, 16, 16))


def test_caption_and_sentence_follow_the_numbers(tiny_cnn):
    assert method_caption(tiny_cnn, "gradcam").startswith("attribution: gradcam (layer=2), captum ")
    assert "n_steps=8" in method_caption(tiny_cnn, "integrated_gradients", n_steps=8)
    images = _images(2, seed=3)
    traversal = Traversal(tiny_cnn, images[:1], tiny_cnn(images[:1]).argmax(1), images[1:],
                          LSTConfig(step_size=0.2, iterations=4, record_every=2, record_images=True)).run()
    path = path_saliency(tiny_cnn, traversal, "saliency", target_class=False)
    sentence = saliency_sentences(path)
    assert sentence.startswith("At the blind spot (iteration 4), ")
    assert f"ρ = {float(path.with_source[-1]):.2f} and like the target's map with ρ = " \
           f"{float(path.with_target[-1]):.2f}" in sentence
    assert ("it still looks where the source's content was" in sentence) == bool(
        path.with_source[-1] > max(float(path.with_target[-1]), 0.0))
    path.with_target[0] = 0.3  # the two maps' correlation before any step: the level to beat
    for values, verdict in (((0.6, 0.1), "it still looks where the source's content was"),
                            ((0.1, 0.6), "it looks where the target's content is"),
                            ((0.1, 0.2), "no closer to the target's map than the source's own map was"),
                            # occlusion on EfficientNet-Lite0, coffee towards the cat: rho -0.002 and -0.65
                            ((-0.002, -0.65), "resembles neither the source's map nor the target's")):
        path.with_source[-1], path.with_target[-1] = values
        assert verdict in saliency_sentences(path)
