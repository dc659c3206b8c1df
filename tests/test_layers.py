import pytest
import torch
from torch import nn

from blindspots_nb.analysis.layers import (PIXELS, LayerSimilarity, default_layers, disappearance, layer_activations,
                                           layer_similarity, linear_cka, traversal_layer_similarity)
from blindspots_nb.execution import Execution
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import predict, wrap
from blindspots_nb.plots.layers import layer_similarity_figure
from helpers import make_tiny_cnn


def plain_cosine(a, b):
    """Cosine of two flattened tensors, written out."""
    a, b = a.reshape(-1).double(), b.reshape(-1).double()
    return float((a * b).sum() / (a.pow(2).sum().sqrt() * b.pow(2).sum().sqrt()))


def random_orthogonal(size, seed=0):
    q, r = torch.linalg.qr(torch.randn(size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


class Scale(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return self.factor * x


def known_model(pixels=12, seed=0):
    """Layers whose similarities are known: identity, an orthogonal map, a scaling by -3,
    a projection to one number, and a layer that outputs zeros."""
    orthogonal = nn.Linear(pixels, pixels, bias=False, dtype=torch.float64)
    projection = nn.Linear(pixels, 1, bias=False, dtype=torch.float64)
    zeros = nn.Linear(1, 4, bias=False, dtype=torch.float64)
    with torch.no_grad():
        orthogonal.weight.copy_(random_orthogonal(pixels, seed))
        projection.weight.copy_(torch.randn(1, pixels, generator=torch.Generator().manual_seed(seed + 1)))
        zeros.weight.zero_()
    return nn.Sequential(nn.Flatten(), nn.Identity(), orthogonal, Scale(-3.0), projection, zeros).eval()


def images(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_identity_layer_gives_the_input_space_cosine_and_1_on_identical_inputs():
    model = known_model()
    iterates, sources, targets = images(4, 3, 1, 3, 4), images(3, 1, 3, 4, seed=1), images(3, 1, 3, 4, seed=2)
    iterates[0] = sources  # the first iterate is the source itself, the last the target
    iterates[-1] = targets
    result = layer_similarity(model, iterates, sources, targets, layers=["1"])
    assert result.layers == (PIXELS, "1") and result.iterations == (0, 1, 2, 3)
    assert result.to_source.shape == result.to_target.shape == (3, 2, 4)
    for b in range(3):
        for r in range(4):
            for row in range(2):
                assert result.to_source[b, row, r] == pytest.approx(plain_cosine(iterates[r, b], sources[b]), abs=1e-12)
                assert result.to_target[b, row, r] == pytest.approx(plain_cosine(iterates[r, b], targets[b]), abs=1e-12)
    torch.testing.assert_close(result.to_source[:, :, 0], torch.ones(3, 2, dtype=torch.float64))
    torch.testing.assert_close(result.to_target[:, :, -1], torch.ones(3, 2, dtype=torch.float64))


def test_layers_of_known_maps_give_the_analytic_similarities():
    model = known_model()
    iterates, sources, targets = images(3, 4, 1, 3, 4), images(4, 1, 3, 4, seed=1), images(4, 1, 3, 4, seed=2)
    result = layer_similarity(model, iterates, sources, targets, layers=["2", "3", "4", "5"])
    weights = model[4].weight.reshape(-1)
    for b in range(4):
        for r in range(3):
            for side, reference in (("to_source", sources[b]), ("to_target", targets[b])):
                values = getattr(result, side)[b, :, r]
                pixel_cosine = plain_cosine(iterates[r, b], reference)
                # an orthogonal map and a scaling by -3 keep the cosine
                assert values[1] == pytest.approx(pixel_cosine, abs=1e-12)
                assert values[2] == pytest.approx(pixel_cosine, abs=1e-12)
                # one number: the cosine is the product of the signs of the projections
                sign = torch.sign((weights @ iterates[r, b].reshape(-1)) * (weights @ reference.reshape(-1)))
                assert values[3] == pytest.approx(float(sign), abs=1e-12)
                assert values[4] == 0  # all-zero activations: cosine 0, as documented
    # CKA over the batch: invariant under the orthogonal map and the scaling
    torch.testing.assert_close(result.cka_to_source[1], result.cka_to_source[0])
    torch.testing.assert_close(result.cka_to_target[2], result.cka_to_target[0])


def test_linear_cka_is_invariant_to_orthogonal_maps_and_isotropic_scaling_and_1_on_identical_representations():
    x = torch.randn(20, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randn(20, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert float(linear_cka(x, x)) == pytest.approx(1.0, abs=1e-12)
    base = float(linear_cka(x, y))
    assert 0 < base < 0.9
    assert float(linear_cka(x @ random_orthogonal(8), 7.5 * y)) == pytest.approx(base, abs=1e-12)
    assert float(linear_cka(x + 3.0, y)) == pytest.approx(base, abs=1e-12)  # centring: a shift changes nothing
    # the feature-space form of Kornblith et al. (their eq. 5)
    xc, yc = x - x.mean(0), y - y.mean(0)
    expected = (yc.T @ xc).norm() ** 2 / ((xc.T @ xc).norm() * (yc.T @ yc).norm())
    assert float(linear_cka(x, y)) == pytest.approx(float(expected), abs=1e-12)
    # not invariant to an anisotropic scaling: the invariances above are real
    assert float(linear_cka(x * torch.linspace(0.1, 10, 8, dtype=torch.float64), y)) != pytest.approx(base, abs=1e-3)
    # images (N, C, H, W) are flattened
    assert float(linear_cka(x.view(20, 2, 2, 2), y)) == pytest.approx(base, abs=1e-12)
    with pytest.raises(ValueError, match="linear CKA needs at least 3 examples"):
        linear_cka(x[:2], y[:2])
    with pytest.raises(ValueError, match="same examples"):
        linear_cka(x, y[:5])


def test_debiased_cka_is_about_0_for_independent_representations_and_keeps_the_invariances():
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randn(2, 10, 2000, generator=generator, dtype=torch.float64))
    # the plain estimator is near 1 for 10 independent examples in 2000 dimensions, the debiased one near 0
    assert float(linear_cka(x, y)) > 0.99
    assert abs(float(linear_cka(x, y, debiased=True))) < 0.1
    assert float(linear_cka(x, x, debiased=True)) == pytest.approx(1.0, abs=1e-12)
    mixed = x + 0.5 * y  # correlated with x, debiased CKA strictly between 0 and 1
    base = float(linear_cka(mixed, x, debiased=True))
    assert 0.5 < base < 0.95
    scaled = 3.0 * mixed @ random_orthogonal(2000) + 1.0
    assert float(linear_cka(scaled, x, debiased=True)) == pytest.approx(base, abs=1e-10)
    # the unbiased centring of Kornblith et al.'s reference code (its center_gram(unbiased=True)), then the plain form
    def unbiased_centring(gram):
        gram, n = gram.clone().fill_diagonal_(0), len(gram)
        means = gram.sum(0) / (n - 2)
        means = means - means.sum() / (2 * (n - 1))
        return (gram - means[:, None] - means[None, :]).fill_diagonal_(0)
    k, l = unbiased_centring(mixed @ mixed.T), unbiased_centring(x @ x.T)
    assert base == pytest.approx(float((k * l).sum() / (k.norm() * l.norm())), abs=1e-10)
    with pytest.raises(ValueError, match="debiased CKA needs at least 4 examples"):
        linear_cka(x[:3], y[:3], debiased=True)


def no_hooks(model):
    return all(not module._forward_hooks for module in model.modules())


class Failing(nn.Module):
    def forward(self, x):
        raise RuntimeError("this layer fails")


def test_hooks_are_removed_and_the_model_is_unchanged_even_on_error():
    model = make_tiny_cnn(channels=1)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    iterates, sources, targets = torch.rand(2, 3, 1, 16, 16), torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16)
    layer_similarity(model, iterates, sources, targets)
    assert no_hooks(model) and not model.training
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())
    failing = nn.Sequential(*model, Failing())
    with pytest.raises(RuntimeError, match="this layer fails"):
        layer_similarity(failing, iterates, sources, targets, layers=["0", "6"])
    assert no_hooks(failing)


def test_bad_layers_are_refused_with_the_names_there_are():
    model = make_tiny_cnn(channels=1)
    iterates, sources, targets = torch.rand(2, 1, 1, 16, 16), torch.rand(1, 1, 16, 16), torch.rand(1, 1, 16, 16)
    with pytest.raises(ValueError, match=r"'conv9'.*: 0, 1, 2, 3, 4, 5$"):
        layer_similarity(model, iterates, sources, targets, layers=["0", "conv9"])
    with pytest.raises(ValueError, match=r"distinct module names.*\['0', '0'\]"):
        layer_similarity(model, iterates, sources, targets, layers=["0", "0"])
    with pytest.raises(ValueError, match="layers is empty"):
        layer_similarity(model, iterates, sources, targets, layers=[])
    shared = nn.ReLU()
    twice = nn.Sequential(nn.Flatten(), shared, nn.Linear(256, 4), shared)
    with pytest.raises(ValueError, match="'1' ran 2 times"):
        layer_activations(twice, sources, ["1"])
    assert no_hooks(twice)
    with pytest.raises(ValueError, match=r"one image per path, \(1, 1, 16, 16\)"):
        layer_similarity(model, iterates, torch.rand(2, 1, 16, 16), targets)
    with pytest.raises(ValueError, match="iterates must be"):
        layer_similarity(model, iterates[0], sources, targets)
    with pytest.raises(TypeError, match="need a torch.nn.Module, got function"):
        layer_similarity(lambda x: model(x), iterates, sources, targets)


def test_default_layers_look_inside_a_classifier_and_expand_sequentials():
    tiny = make_tiny_cnn(channels=1)
    assert default_layers(tiny) == ["0", "1", "2", "3", "5"]  # not the Flatten "4"
    classifier = wrap(nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU()), nn.Flatten(), nn.Linear(392, 3)),
                      mean=[0.5], std=[0.5], class_names=["a", "b", "c"], input_size=(1, 16, 16))
    assert default_layers(classifier) == ["net.0.0", "net.0.1", "net.2"]


def test_along_a_real_traversal_the_last_column_is_the_blind_spots_own_activations():
    torch.manual_seed(0)
    model = make_tiny_cnn(channels=1)
    sources, targets = torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    labels = predict(model, sources)[0]
    traversal = Traversal(model, sources, labels, targets,
                          LSTConfig(iterations=6, record_every=2, record_images=True, step_size=0.2)).run()
    result = traversal_layer_similarity(model, traversal, layers=["1", "3", "5"])
    assert result.iterations == (0, 2, 4, 6)
    assert result.provenance["config"]["record_every"] == 2 and result.provenance["layers"] == [PIXELS, "1", "3", "5"]
    blind_spots = traversal.images
    for row, end in ((1, 2), (2, 4), (3, 6)):  # layer model[end - 1]: the output of model[:end]
        prefix = model[:end]
        with torch.no_grad():
            at_blind_spots, at_targets, at_sources = prefix(blind_spots), prefix(targets), prefix(sources)
        for b in range(4):
            assert result.to_target[b, row, -1] == pytest.approx(plain_cosine(at_blind_spots[b], at_targets[b]), abs=1e-6)
            assert result.to_source[b, row, -1] == pytest.approx(plain_cosine(at_blind_spots[b], at_sources[b]), abs=1e-6)
        expected = linear_cka(at_blind_spots, at_targets)
        assert float(result.cka_to_target[row, -1]) == pytest.approx(float(expected), abs=1e-6)
        expected = linear_cka(at_blind_spots, at_sources, debiased=True)
        assert float(result.debiased_cka_to_source[row, -1]) == pytest.approx(float(expected), abs=1e-6)
    # an LSTResult keeps neither sources nor targets: they must be given, and give the same numbers
    with pytest.raises(ValueError, match="pass sources= and targets="):
        traversal_layer_similarity(model, traversal.result(), layers=["1", "3", "5"])
    again = traversal_layer_similarity(model, traversal.result(), ["1", "3", "5"], sources, targets, points_per_pass=5)
    # Another batch size (5 points per pass): the float32 activations come from another kernel
    # blocking and move by a few units in their last place (eps 1.2e-7); cosines and CKA, taken in
    # float64 from them, move as much, CKA's products of Gram matrices a little more (measured: up
    # to 4e-7 with AVX-512 kernels, 0 with AVX2 ones): 1e-6, not float64's default 1e-7
    torch.testing.assert_close(again.to_target, result.to_target, atol=1e-6, rtol=0)
    torch.testing.assert_close(again.cka_to_source, result.cka_to_source, atol=1e-6, rtol=0)
    torch.testing.assert_close(again.debiased_cka_to_source, result.debiased_cka_to_source, atol=1e-6, rtol=0)


def test_execution_precision_and_layout_give_the_same_similarities_within_rounding():
    model = make_tiny_cnn(channels=1)
    iterates, sources, targets = torch.rand(3, 4, 1, 16, 16), torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16)
    exact = layer_similarity(model, iterates, sources, targets, execution=Execution(channels_last=False))
    for execution in (Execution(), Execution(precision="bf16"), Execution(fold_batchnorm=True)):
        other = layer_similarity(model, iterates, sources, targets, execution=execution, points_per_pass=5)
        torch.testing.assert_close(other.to_source, exact.to_source, atol=3e-2 if execution.precision == "bf16" else 1e-6,
                                   rtol=0)
        assert other.provenance["execution"]["fold_batchnorm"] is False  # the model's own modules ran


def similarity(to_source, to_target, iterations=(0, 5)):
    to_source, to_target = torch.tensor(to_source, dtype=torch.float64), torch.tensor(to_target, dtype=torch.float64)
    return LayerSimilarity((PIXELS, "a", "b", "c"), iterations, to_source, to_target, None, None, None, None, {})


def test_disappearance_is_the_first_row_nearer_the_source_at_the_last_iterate():
    # two paths, 4 rows, 2 recorded iterates; path 0 turns at row 2, path 1 never does
    to_source = [[[0.1, 0.5], [0.2, 0.6], [0.3, 0.9], [0.4, 0.3]],
                 [[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]]]
    to_target = [[[0.9, 0.8], [0.9, 0.7], [0.9, 0.2], [0.9, 0.4]],
                 [[0.9, 0.9], [0.9, 0.9], [0.9, 0.9], [0.9, 0.9]]]
    found = disappearance(similarity(to_source, to_target))
    assert found.depth == (2, None) and found.layer == ("b", None) and found.iteration == 5
    assert found.regained == (True, False)  # path 0's row c is nearer the target again
    assert found.settled_depth == (None, None) and found.settled_layer == (None, None)
    to_target[0][3][1] = 0.2  # now path 0 stays nearer its source from row 2 on
    found = disappearance(similarity(to_source, to_target))
    assert found.settled_depth == (2, None) and found.settled_layer == ("b", None) and found.regained == (False, False)
    to_target[0][2][1] = 0.95  # row 2 nearer the target, row 3 not: first and settled both row 3
    assert disappearance(similarity(to_source, to_target)).depth == (3, None)
    to_source[0][0][1] = 0.99  # the pixels nearer the source: depth 0, settled at row 3
    found = disappearance(similarity(to_source, to_target))
    assert found.depth == (0, None) and found.settled_depth == (3, None) and found.regained == (True, False)
    to_target[0][3][1] = 0.9  # the last row nearer the target again: a first row, none settled; the figure marks the star
    result = similarity(to_source, to_target)
    found = disappearance(result)
    assert found.depth == (0, None) and found.settled_depth == (None, None) and found.regained == (True, False)
    marks = [(trace.marker.symbol, list(trace.y)) for trace in layer_similarity_figure(result).data if trace.type == "scatter"]
    assert marks == [("star", [PIXELS])]
    assert disappearance(similarity(to_source, to_target), iteration=0).depth == (None, None)
    with pytest.raises(ValueError, match="at least 3 paths"):
        disappearance(similarity(to_source, to_target), measure="cka")
    with pytest.raises(IndexError, match="column 2 is outside the 2 recorded"):
        disappearance(similarity(to_source, to_target), iteration=2)


def test_rows_and_figure_hold_the_results_numbers():
    model = make_tiny_cnn(channels=1)
    result = layer_similarity(model, torch.rand(3, 4, 1, 16, 16), torch.rand(4, 1, 16, 16), torch.rand(4, 1, 16, 16),
                              iterations=[0, 10, 20])
    rows = result.rows()
    assert len(rows) == (4 + 2) * 6 * 3  # (4 paths + 2 CKAs of the batch) x (pixels + 5 default layers) x 3 iterations
    row = next(r for r in rows if r["path"] == "2" and r["layer"] == "3" and r["iteration"] == 10)
    assert row["to_target"] == float(result.to_target[2, 4, 1]) and row["depth"] == 4
    figure = layer_similarity_figure(result, index=2, caption="made by a test")
    heatmaps = [trace for trace in figure.data if trace.type == "heatmap"]
    assert [list(h.y) for h in heatmaps] == [list(result.layers)] * 3 and list(heatmaps[0].x) == [0, 10, 20]
    torch.testing.assert_close(torch.tensor(heatmaps[2].z), result.to_target[2] - result.to_source[2])
    marks = {trace.marker.symbol: list(trace.y) for trace in figure.data if trace.type == "scatter"}
    found = disappearance(result)
    depth, settled = found.depth[2], found.settled_depth[2]
    assert marks.get("star") == (None if depth is None else [result.layers[depth]])
    assert marks.get("circle") == (None if settled in (None, depth) else [result.layers[settled]])
    assert "made by a test" in figure.layout.title.text
    cka = layer_similarity_figure(result, measure="cka")
    torch.testing.assert_close(torch.tensor(cka.data[1].z), result.cka_to_target)
    debiased = layer_similarity_figure(result, measure="debiased-cka")
    torch.testing.assert_close(torch.tensor(debiased.data[0].z), result.debiased_cka_to_source)
    three = layer_similarity(model, torch.rand(2, 3, 1, 16, 16), torch.rand(3, 1, 16, 16), torch.rand(3, 1, 16, 16))
    assert three.cka_to_source is not None and three.debiased_cka_to_source is None
    with pytest.raises(ValueError, match="at least 4 paths.*has 3"):
        layer_similarity_figure(three, measure="debiased-cka")
