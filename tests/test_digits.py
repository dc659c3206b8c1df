"""Real handwriting offline: scikit-learn's digits as an image source, the shipped LeNets trained on them,
their preset, and the notebooks' and the explorer's default images for them."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from blindspots_nb.analysis.attacks import default_radius
from blindspots_nb.data import digits_dataset
from blindspots_nb.data.sources import ImageSource, default_source, open_source, pick_images
from blindspots_nb.explorer.state import Explorer
from blindspots_nb.models import DIGITS_AT_RADIUS, load_model
from blindspots_nb.protocol import preset
from blindspots_nb.train import TrainConfig, dataset_of, evaluate, train


@pytest.fixture(scope="module")
def digits():
    return load_digits()


@pytest.fixture(scope="module")
def models():
    return {name: load_model(name, device="cpu") for name in ("digits_lenet", "digits_lenet_at")}


def _rows(dataset) -> list[int]:
    return [int(name.split("-")[1]) for name in dataset.names]


def test_the_splits_are_fixed_disjoint_stratified_and_cover_every_digit(digits):
    test, train = digits_dataset("test"), digits_dataset("train")
    assert (len(test), len(train)) == (360, 1437)
    assert sorted(_rows(test) + _rows(train)) == list(range(1797))  # disjoint, and together all of them
    assert _rows(test) == _rows(digits_dataset("test"))  # the same split every time
    counts = np.bincount(test.labels.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37  # a fifth of each digit's ~180 images
    assert test.class_names == list("0123456789")


def test_images_are_load_digits_scaled_to_one_and_labelled_by_it(digits):
    native = digits_dataset("test", size=(1, 8, 8))  # no resampling at the native size
    rows = _rows(native)
    torch.testing.assert_close(native.images[:, 0], torch.from_numpy(digits.images[rows]).float() / 16)
    assert native.labels.tolist() == digits.target[rows].tolist()
    assert all(name.startswith(str(int(label))) for name, label in zip(native.names, native.labels))


def _ink_centre(images: torch.Tensor) -> torch.Tensor:
    """(N, 2) centre of mass of the ink (row, column) in units of the image's side."""
    side = images.shape[-1]
    centres, ink = (torch.arange(side) + 0.5) / side, images[:, 0]
    return torch.stack([(ink.sum(2) * centres).sum(1), (ink.sum(1) * centres).sum(1)], 1) / ink.sum((1, 2))[:, None]


def test_upsampled_images_keep_the_ink_where_it_was():
    big = digits_dataset("test", size=(1, 32, 32)).images
    native = digits_dataset("test", size=(1, 8, 8)).images
    assert big.shape == (360, 1, 32, 32) and 0 <= float(big.min()) and float(big.max()) <= 1
    torch.testing.assert_close(big.mean((1, 2, 3)), native.mean((1, 2, 3)), atol=1e-4, rtol=0)  # as much ink
    torch.testing.assert_close(_ink_centre(big), _ink_centre(native), atol=0.005, rtol=0)  # in the same place
    rgb = digits_dataset("test", size=224)  # an ImageNet model's input: three equal channels
    assert rgb.images.shape == (360, 3, 224, 224) and torch.equal(rgb.images[:, 0], rgb.images[:, 2])


def test_the_digits_image_source_is_spelled_like_the_fonts_one():
    assert str(ImageSource.of("digits")) == "digits:test" and str(ImageSource.of("Digits: train")) == "digits:train"
    assert len(open_source("digits", (1, 32, 32))) == 360 and len(open_source("digits:train", (1, 32, 32))) == 1437
    with pytest.raises(ValueError, match="digits:test or digits:train"):
        ImageSource.of("digits:validation")
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        digits_dataset("validation")


def test_the_shipped_models_are_verified_accurate_and_describe_their_training(models):
    test = digits_dataset("test")
    for name, model in models.items():
        assert model.info["weights_verified"] and model.info["dataset"] == "digits"
        assert tuple(model.input_size) == (1, 32, 32) and list(model.class_names) == list("0123456789")
        with torch.no_grad():
            accuracy = float((model(test.images).argmax(1) == test.labels).float().mean())
        assert accuracy > 0.95, name
    info = models["digits_lenet_at"].info
    assert (info["training"], info["threat_model"], info["radius"]) == ("adversarial", "linf", DIGITS_AT_RADIUS)
    assert info["checkpoint_meta"]["radius"] == DIGITS_AT_RADIUS
    assert models["digits_lenet"].info["checkpoint_meta"]["radius"] == 0.0
    assert default_radius(models["digits_lenet"]) == default_radius(models["digits_lenet_at"]) == DIGITS_AT_RADIUS


@pytest.mark.slow  # PGD-10 on the 360 test digits for both models
def test_pgd_training_makes_digits_lenet_at_robust(models):
    test = digits_dataset("test")
    scores = {name: evaluate(model, test, DIGITS_AT_RADIUS, steps=10) for name, model in models.items()}
    assert scores["digits_lenet"]["pgd_acc"] < 0.4
    assert scores["digits_lenet_at"]["pgd_acc"] > scores["digits_lenet"]["pgd_acc"] + 0.3


def test_training_on_digits_is_deterministic_and_uses_the_train_split():
    config = TrainConfig.for_model("digits_lenet_at", epochs=1, n_train=96, batch_size=32, steps=2)
    assert (config.radius, config.steps) == (DIGITS_AT_RADIUS, 2)
    first, meta = train(config, progress=False)
    second, _ = train(config, progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert meta["n_train"] == 96 and meta["train_cpu_seconds"] >= 0
    assert dataset_of("digits_lenet", "train", 96).names == digits_dataset("train").names[:96]
    with pytest.raises(ValueError, match="digits_lenet_at, not 'resnet50'"):
        TrainConfig.for_model("resnet50")
    with pytest.raises(ValueError, match="efficientnet_lite0 is a model of imagenet"):
        dataset_of("efficientnet_lite0", "test", 10)


def test_the_digits_models_default_to_the_first_image_of_each_digit(models):
    model = models["digits_lenet"]
    assert default_source(model) == ImageSource("digits", "test")
    images, names = pick_images(model, k=3)
    test = digits_dataset("test")
    first = [next(name for name in test.names if name.startswith(digit)) for digit in "012"]
    assert names == first and images.shape == (3, 1, 32, 32)
    torch.testing.assert_close(images[1], test.images[test.names.index(first[1])])


def test_the_explorer_opens_the_digits_models_on_digits(models):
    explorer = Explorer(models["digits_lenet_at"], iterations_per_click=1)
    assert explorer.image_source == "digits:test"
    snapshot = explorer.snapshot()
    assert snapshot.source_name.startswith("0-") and snapshot.a.target_class != snapshot.source_class


def test_the_digits_preset_runs_both_lenets_on_the_test_split():
    (experiment,) = preset("digits")
    assert str(experiment.image_source) == "digits:test" and experiment.models == ("digits_lenet", "digits_lenet_at")
    assert experiment.name == "digits"


@pytest.mark.slow  # papermill runs the packaged notebook once per model
def test_the_digits_preset_reproduces_both_tables_with_their_report_notebooks(tmp_path, monkeypatch):
    import csv
    import json

    from blindspots_nb.cli import main

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "run"
    assert main(["reproduce", "--preset", "digits", "--n-sources", "3", "--rounds", "2", "--iterations", "10",
                 "--device", "cpu", "--out-dir", str(out)]) == 0
    for table, statistic in (("table1.csv", "rmse_mean"), ("table2.csv", "p_src_mean")):
        rows = [row for row in csv.DictReader(open(out / table)) if row["source"] == "ours"]
        assert [(row["model"], row["dataset"]) for row in rows] == [("digits_lenet", "digits"),
                                                                    ("digits_lenet_at", "digits")]
        assert all(0 < float(row[statistic]) <= 1 for row in rows)
    assert "digits_lenet (ours, digits, n=3)" in (out / "table1.md").read_text()
    assert sorted(p.name for p in (out / "notebooks").glob("*.ipynb")) == [
        "digits_digits_lenet_at_shard0of1.ipynb", "digits_digits_lenet_shard0of1.ipynb"]
    record = json.loads((out / "run.json").read_text())
    assert record["preset"] == "digits" and record["experiments"][0]["image_source"] == "digits:test"
