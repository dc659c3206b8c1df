"""Attacks (Captum's FGSM and PGD, pyautoattack's AutoAttack) and adversarial examples
beside blind spots (compare): checked against independent computations on small models."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blindspots_nb.analysis import attacks
from blindspots_nb.analysis.attacks import autoattack, default_radius, fgsm, pgd, threat_model
from blindspots_nb.analysis.compare import Comparison, compare, distance_table, rolled_pairs, transfer, transfer_table
from blindspots_nb.analysis.words import comparison_sentences
from blindspots_nb.lst import LSTConfig
from blindspots_nb.models import FONTS_AT_RADIUS, wrap
from helpers import make_tiny_cnn


def _tiny_model(sharpness=1.0, seed=0):
    """The conftest CNN for (3, 16, 16) images wrapped as a registry-style classifier."""
    net = make_tiny_cnn(num_classes=5, sharpness=sharpness, seed=seed)
    return wrap(net, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), [f"c{i}" for i in range(5)], (3, 16, 16),
                name="tiny", device="cpu")


def _images(n=6, seed=0, shape=(3, 16, 16)):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand((n, *shape), generator=generator)
    images[0, :, :4] = 0.0  # pixels at the edges of [0, 1], where the box clips the ball
    images[1, :, :4] = 1.0
    return images


def _reference_pgd(model, x, y, radius, step_size, steps, seed):
    """Textbook l_inf PGD, written out: the random start drawn as torch.rand_like under
    torch.manual_seed(seed), then signed gradient steps of the summed cross-entropy,
    each projected onto the radius-box around x and onto [0, 1]."""
    torch.manual_seed(seed)
    x_adv = (x + (torch.rand_like(x) * 2 - 1) * radius).clamp(0, 1)
    for _ in range(steps):
        x_adv = x_adv.detach().requires_grad_(True)
        loss = F.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x_adv)
        x_adv = x_adv.detach() + step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - radius), x + radius).clamp(0, 1)
    return x_adv.detach()


def test_pgd_stays_in_the_linf_ball_and_in_the_unit_box():
    model = _tiny_model()
    x = _images()
    y = model(x).argmax(1)
    x_adv = pgd(model, x, y, radius=0.05, steps=5)
    assert (x_adv - x).abs().max() <= 0.05 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() > 0.049  # it does move, to the edge of the ball
    assert (x_adv[0, :, :4] >= 0).all() and (x_adv[1, :, :4] <= 1).all()


def test_pgd_agrees_with_a_reference_pgd_and_is_seeded():
    model = _tiny_model()
    x = _images()
    y = model(x).argmax(1)
    ours = pgd(model, x, y, radius=0.1, step_size=0.02, steps=8, seed=3)
    reference = _reference_pgd(model, x, y, 0.1, 0.02, 8, seed=3)
    assert torch.allclose(ours, reference, atol=1e-6)
    assert (model(ours).argmax(1) != y).any()  # it is an attack: some classes change
    # the seed decides the random start; the caller's random state is left alone
    state = torch.random.get_rng_state()
    assert torch.equal(pgd(model, x, y, radius=0.1, steps=3, seed=3), pgd(model, x, y, radius=0.1, steps=3, seed=3))
    assert not torch.equal(pgd(model, x, y, radius=0.1, steps=3, seed=3), pgd(model, x, y, radius=0.1, steps=3, seed=4))
    assert torch.equal(torch.random.get_rng_state(), state)
    # a generator gives a fresh, reproducible start per call (a training loop's batches)
    first = [pgd(model, x, y, radius=0.1, steps=1, seed=generator)
             for generator in [torch.Generator().manual_seed(0)] for _ in range(2)]
    again = [pgd(model, x, y, radius=0.1, steps=1, seed=generator)
             for generator in [torch.Generator().manual_seed(0)] for _ in range(2)]
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], first[1])


def test_pgd_moves_a_confident_model_whose_gradients_are_tiny():
    # Captum by default skips gradient entries below 1e-6; a saturated model has only those
    model = _tiny_model(sharpness=100.0)
    x = _images()
    y = model(x).argmax(1)
    x_adv = pgd(model, x, y, radius=0.05, steps=3, random_start=False)
    assert (x_adv - x).abs().amax(dim=(1, 2, 3)).min() > 0.02


def test_fgsm_is_the_closed_form_sign_gradient_step_on_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Linear(2 * 3 * 3, 4)
    model = nn.Sequential(nn.Flatten(), linear)
    x = _images(5, shape=(2, 3, 3))
    y = torch.tensor([0, 1, 2, 3, 0])
    with torch.no_grad():  # d CE / d x = W^T (softmax(W x + b) - onehot(y))
        p = (x.flatten(1) @ linear.weight.T + linear.bias).softmax(1)
        gradient = (p - F.one_hot(y, 4).float()) @ linear.weight
    expected = (x + 0.1 * gradient.sign().view_as(x)).clamp(0, 1)
    assert torch.allclose(fgsm(model, x, y, radius=0.1), expected, atol=1e-7)


def _autoattack_case():
    """A 5-class linear model on six 2x4x4 images, the first two labelled wrongly."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 5))
    x = _images(6, shape=(2, 4, 4))
    y = model(x).argmax(1)
    y[:2] = (y[:2] + 1) % 5
    return model, x, y


def _in_ball(x_adv, x, radius):
    return bool((x_adv - x).abs().max() <= radius + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1)


def test_autoattack_fools_every_image_at_a_large_radius_and_leaves_wrong_ones_alone():
    model, x, y = _autoattack_case()
    state = torch.random.get_rng_state()
    x_adv = autoattack(model, x, y, radius=0.5, seed=0)  # APGD-CE alone fools them all
    assert torch.equal(torch.random.get_rng_state(), state)
    assert _in_ball(x_adv, x, 0.5) and attacks.accuracy(model, x_adv, y) == 0.0
    assert torch.equal(x_adv[:2], x[:2])  # already wrong: not attacked
    with pytest.raises(ValueError, match="at least 4 classes"):
        autoattack(nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3)), x, y % 3, radius=0.5)


@pytest.mark.slow
def test_autoattack_runs_all_four_attacks_deterministically_with_fewer_than_ten_classes():
    # at this radius some images survive APGD-CE, so APGD-T and FAB-T (on the 4 other
    # classes there are) and Square run too, about a minute on a CPU core
    model, x, y = _autoattack_case()
    x_adv = autoattack(model, x, y, radius=0.03, seed=0)
    assert _in_ball(x_adv, x, 0.03)
    assert 0 < attacks.accuracy(model, x_adv, y) <= attacks.accuracy(model, x, y)
    assert torch.equal(x_adv[:2], x[:2])
    assert torch.equal(autoattack(model, x, y, radius=0.03, seed=0), x_adv)


def test_threat_model_comes_from_model_info_or_the_dataset_standard():
    at = SimpleNamespace(info={"name": "a", "threat_model": "linf", "radius": 4 / 255, "dataset": "imagenet"})
    assert threat_model(at) == attacks.ThreatModel("Linf", 4 / 255, "a's adversarial training")
    assert default_radius(SimpleNamespace(info={"name": "n", "threat_model": None, "radius": None,
                                             "dataset": "fonts"})) == FONTS_AT_RADIUS
    assert default_radius(SimpleNamespace(info={"dataset": "imagenet-1k"})) == 4 / 255
    assert default_radius(SimpleNamespace(info={"dataset": "cifar10"})) == 8 / 255
    user = threat_model(_tiny_model())  # a user's module: no dataset, no threat model
    assert user == attacks.ThreatModel("Linf", 8 / 255, "the default 8/255 for an unknown dataset, which has no "
                                                        "standard radius; set radius to choose another")
    assert threat_model(SimpleNamespace(info={"dataset": "my_digits"})).origin.startswith(
        "the default 8/255 for dataset 'my_digits', which has no standard radius")


def test_bad_inputs_get_clear_errors():
    model = _tiny_model()
    x = _images(2)
    y = torch.tensor([0, 1])
    for radius in (0.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(ValueError, match="radius must lie in"):
            pgd(model, x, y, radius=radius)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        pgd(model, x * 2, y, radius=0.1)
    with pytest.raises(ValueError, match=r"pixels in \[0, 1\]"):
        fgsm(model, x - 0.5, y, radius=0.1)
    with pytest.raises(ValueError, match="unknown norm 'L3'"):
        pgd(model, x, y, radius=0.1, norm="L3")
    with pytest.raises(ValueError, match="labels must be 2 integer"):
        pgd(model, x, y.float(), radius=0.1)
    with pytest.raises(ValueError, match="float tensor"):
        pgd(model, x[0], y, radius=0.1)
    with pytest.raises(ValueError, match="steps must be"):
        pgd(model, x, y, radius=0.1, steps=0)
    with pytest.raises(ValueError, match="random_start=False"):
        pgd(model, x, y, radius=1.0, norm="L2")
    ball = pgd(model, x, y, radius=1.0, norm="l2", random_start=False, steps=3)
    assert (ball - x).flatten(1).norm(dim=1).max() <= 1 + 1e-5


# --------------------------------------------------------------------------- compare


@pytest.fixture(scope="module")
def comparison():
    model = _tiny_model(seed=1)
    model.info.update(dataset="fonts")  # attacked at the FONTS standard radius, 0.2
    images = _images(3, seed=2)
    sources, targets, names = rolled_pairs(images, ["a", "b", "c"])
    config = LSTConfig(step_size=0.2, iterations=5, record_every=0)
    return model, compare(model, sources, targets, config, steps=5, names=names, image_source="random")


def test_compare_reports_the_models_view_and_distances_of_each_image(comparison):
    from torchmetrics.functional.image import structural_similarity_index_measure  # (its import: ~4 s)

    model, c = comparison
    assert c.threat == attacks.ThreatModel("Linf", FONTS_AT_RADIUS, "the fonts standard")
    assert c.names == [("a", "b"), ("b", "c"), ("c", "a")]
    assert torch.equal(c.images["target"], c.images["source"].roll(-1, 0))
    for kind, images in c.images.items():
        probabilities = model(images).softmax(1)
        assert torch.equal(c.predictions[kind], probabilities.argmax(1)), kind
        assert torch.allclose(c.confidence[kind], probabilities.amax(1)), kind
    assert torch.equal(c.labels, c.predictions["source"])
    at_blind_spots = model(c.images["blind spot"]).softmax(1).gather(1, c.labels[:, None])[:, 0]
    assert torch.allclose(c.blind_spot_confidence, at_blind_spots, atol=1e-6)
    assert torch.equal(c.other_class, c.predictions["target"] != c.labels)
    assert torch.equal(c.kept, c.other_class & (c.initial_confidence - at_blind_spots < 0.2))
    assert torch.equal(c.fooled, model(c.images["adversarial"]).argmax(1) != c.labels)
    for name, (image, reference) in {"adversarial to source": ("adversarial", "source"),
                                     "blind spot to target": ("blind spot", "target")}.items():
        difference = c.images[image] - c.images[reference]
        distances = c.distances[name]
        assert torch.allclose(distances["rmse"], difference.pow(2).mean(dim=(1, 2, 3)).sqrt(), atol=1e-6)
        assert torch.allclose(distances["linf"], difference.abs().amax(dim=(1, 2, 3)))
        for i in range(c.k):
            direct = structural_similarity_index_measure(
                c.images[image][i:i + 1], c.images[reference][i:i + 1], gaussian_kernel=True, sigma=1.5,
                kernel_size=11, data_range=1.0)
            assert distances["ssim"][i] == pytest.approx(float(direct), abs=1e-6)
    assert distances["linf"].max() > 0 and c.distances["adversarial to source"]["linf"].max() <= 0.2 + 1e-6
    table = distance_table([c])
    assert f"| tiny | Linf 0.2 | {int(c.fooled.sum())}/3 |" in table and "image_source=random" in table
    assert f"on {c.blind_spot_words()}" in comparison_sentences([c])


def test_compare_takes_autoattack_beside_pgd():
    model = _tiny_model(seed=1)  # a user's model: attacked at the default 8/255
    sources, targets, names = rolled_pairs(_images(2, seed=2), ["a", "b"])
    config = LSTConfig(step_size=0.2, iterations=2, record_every=0)
    c = compare(model, sources, targets, config, names=names, attack="autoattack", seed=3)
    expected = autoattack(model, sources, c.labels, 8 / 255, "Linf", 3)
    torch.testing.assert_close(c.images["adversarial"], expected, atol=0, rtol=0)
    assert c.attack == "AutoAttack" and c.settings["attack"] == "autoattack" and "pgd_steps" not in c.settings
    assert "| model | threat model | AutoAttack fools |" in distance_table([c])
    assert comparison_sentences([c]).startswith("tiny: AutoAttack at Linf 0.03137 changes the class of")
    with pytest.raises(ValueError, match="'fgsm'.*'pgd', 'autoattack'"):
        compare(model, sources, targets, config, attack="fgsm")


def _constructed(labels, adversarial_classes, blind_spot_classes, target_classes):
    """A comparison of 1x1x3 one-hot-like images: image of class c is bright in pixel c."""
    def image(classes):
        return F.one_hot(torch.tensor(classes), 3).float().view(-1, 1, 1, 3) * 0.9 + 0.05
    empty = torch.zeros(len(labels))
    return Comparison(
        model="m", class_names=["0", "1", "2"], names=[], labels=torch.tensor(labels),
        images={"source": image(labels), "target": image(target_classes), "adversarial": image(adversarial_classes),
                "blind spot": image(blind_spot_classes)},
        predictions={"target": torch.tensor(target_classes)}, confidence={}, initial_confidence=empty,
        blind_spot_confidence=empty, distances={}, threat=attacks.ThreatModel("Linf", 0.1, "given"),
        settings={"delta": 0.2}, caption="constructed")


def test_a_pair_of_one_class_is_no_blind_spot_in_any_table_or_sentence():
    """Three of four pairs walk from a class to the same class (a 0 towards another 0): only the
    fourth counts, in the distance table, the sentences and the transfer table."""
    c = _constructed(labels=[0, 0, 1, 2], adversarial_classes=[1, 1, 0, 0], blind_spot_classes=[0, 0, 1, 2],
                     target_classes=[0, 0, 1, 0])
    c.predictions["adversarial"] = torch.tensor([1, 1, 0, 0])
    distances = {key: torch.tensor([0.1, 0.2, 0.3, 0.4]) for key in ("rmse", "linf", "ssim")}
    c.distances = {"adversarial to source": distances, "blind spot to target": distances}
    assert c.other_class.tolist() == [False, False, False, True] and c.kept.tolist() == [False, False, False, True]
    sentence = comparison_sentences([c])
    assert ("keeps the source class within delta on 1 of 1 blind spot (3 pairs with a target of the source's class "
            "left out), which lie at RMSE 0.400 (l_inf 0.40, SSIM 0.40)") in sentence
    assert "| 1/1 | 0.400 ± 0.000 | 0.400 ± 0.000 | 0.400 ± 0.000 |" in distance_table([c])
    result = transfer([_PixelModel([0, 1, 2])], [c])
    assert result.blind_spots.tolist() == [1] and int(result.keeps_source[0, 0]) == 1
    assert "| m | m | 4/4 | 1/1 | 0/1 |" in transfer_table(result)


class _PixelModel(nn.Module):
    """Class = the brightest pixel, after a fixed permutation of the classes."""

    def __init__(self, permutation):
        super().__init__()
        self.permutation = permutation
        self.input_size, self.class_names = (1, 1, 3), ["0", "1", "2"]

    def forward(self, x):
        logits = 10 * x.flatten(1)
        return logits[:, self.permutation]


def test_transfer_counts_how_each_model_sees_the_others_images():
    same, swapped = _PixelModel([0, 1, 2]), _PixelModel([1, 0, 2])  # swapped: classes 0 and 1 exchanged
    # four pairs; the source of class c, its adversarial example and blind spot as images of a class
    a = _constructed(labels=[0, 1, 2, 0], adversarial_classes=[1, 1, 0, 2], blind_spot_classes=[0, 1, 2, 1],
                     target_classes=[1, 2, 0, 1])
    b = _constructed(labels=[0, 1, 2, 0], adversarial_classes=[0, 0, 2, 2], blind_spot_classes=[0, 2, 2, 0],
                     target_classes=[1, 2, 0, 1])
    result = transfer([same, swapped], [a, b])
    # entry [x, y]: model y on x's images; swapped sees class 0 as 1 and 1 as 0
    def counts(adv_classes, blind_classes, model_swaps):
        see = (lambda c: {0: 1, 1: 0}.get(c, c)) if model_swaps else (lambda c: c)
        labels, targets = [0, 1, 2, 0], [1, 2, 0, 1]
        fooled = sum(see(c) != l for c, l in zip(adv_classes, labels))
        keeps = sum(see(c) == l for c, l in zip(blind_classes, labels))
        sees = sum(see(c) == t for c, t in zip(blind_classes, targets))
        return fooled, keeps, sees
    for x, comparison_classes in enumerate([([1, 1, 0, 2], [0, 1, 2, 1]), ([0, 0, 2, 2], [0, 2, 2, 0])]):
        for y in range(2):
            expected = counts(*comparison_classes, model_swaps=y == 1)
            assert (int(result.fooled[x, y]), int(result.keeps_source[x, y]), int(result.sees_target[x, y])) == expected
    assert int(result.fooled[0, 0]) == 3 and int(result.keeps_source[0, 0]) == 3 and int(result.sees_target[0, 0]) == 1
    assert result.rate("fooled")[0, 0] == pytest.approx(0.75)
    assert "| m | m | 3/4 | 3/4 | 1/4 |" in transfer_table(result)
    with pytest.raises(ValueError, match="other sources or targets"):
        transfer([same, same], [a, _constructed([1, 1, 2, 0], [0] * 4, [0] * 4, [1, 2, 0, 1])])
    other = _PixelModel([0, 1, 2])
    other.class_names = ["x", "y", "z"]
    with pytest.raises(ValueError, match="do not share an input space"):
        transfer([same, other], [a, b])


def test_rolled_pairs_needs_two_named_images():
    with pytest.raises(ValueError, match="at least 2 images"):
        rolled_pairs(torch.rand(1, 3, 4, 4), ["a"])
    assert math.isclose(float(rolled_pairs(_images(2), ["a", "b"])[1][0].sum()), float(_images(2)[1].sum()))


def test_figure_shows_every_image_with_the_models_class_and_confidence(comparison):
    import matplotlib.pyplot as plt

    from blindspots_nb.plots import adversarial_vs_blindspots_figure

    _, c = comparison
    figure = adversarial_vs_blindspots_figure([c, c], caption="made by the test")
    axes = figure.axes
    assert len(axes) == 3 * 8  # k rows, four kinds per model
    labels = [ax.get_xlabel() for ax in axes]
    expected = f"{c.class_names[int(c.predictions['blind spot'][1])]}: {float(c.confidence['blind spot'][1]):.2f}"
    assert labels[8 + 2] == expected and labels[8 + 6] == expected  # row 1, the blind spot of each block
    colours = [ax.xaxis.label.get_color() for ax in axes[:4]]
    assert (colours[1] == "tab:red") == bool(c.fooled[0])
    plt.close(figure)
