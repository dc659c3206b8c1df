"""FONTS CNNs: the shipped checkpoints are accurate / robust; training is deterministic."""

import pytest
import torch

from blindspots_nb.data import fonts_dataset
from blindspots_nb.models import FONTS_AT_RADIUS, load_model
from blindspots_nb.analysis.attacks import pgd
from blindspots_nb.train import TrainConfig, evaluate, main, train


@pytest.fixture(scope="module")
def test_split():
    return fonts_dataset("test", 400, seed=0)


@pytest.fixture(scope="module")
def scores(test_split):
    return {name: evaluate(load_model(name, device="cpu"), test_split, FONTS_AT_RADIUS, steps=10)
            for name in ("fonts_cnn", "fonts_cnn_at")}


@pytest.mark.slow  # the scores fixture: PGD on 400 glyphs for both models
def test_fonts_cnn_is_accurate_on_unseen_fonts(scores):
    assert scores["fonts_cnn"]["clean_acc"] > 0.95
    assert scores["fonts_cnn_at"]["clean_acc"] > 0.9


@pytest.mark.slow  # the scores fixture: PGD on 400 glyphs for both models
def test_adversarial_training_makes_fonts_cnn_at_robust(scores):
    assert scores["fonts_cnn"]["pgd_acc"] < 0.2
    assert scores["fonts_cnn_at"]["pgd_acc"] > scores["fonts_cnn"]["pgd_acc"] + 0.5


def test_shipped_models_describe_their_training():
    info = load_model("fonts_cnn_at", device="cpu").info
    assert (info["training"], info["threat_model"], info["radius"]) == ("adversarial", "linf",
                                                                     FONTS_AT_RADIUS)
    assert info["checkpoint_meta"]["eps"] == FONTS_AT_RADIUS  # the shipped files' meta, written before radius
    assert load_model("fonts_cnn", device="cpu").info["checkpoint_meta"]["eps"] == 0.0


def test_pgd_stays_in_the_box(test_split):
    model = load_model("fonts_cnn", device="cpu")
    x, y = test_split.images[:16], test_split.labels[:16]
    x_adv = pgd(model, x, y, radius=0.1, steps=3)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and 0 <= x_adv.min() and x_adv.max() <= 1


def test_training_is_deterministic():
    config = TrainConfig.for_model("fonts_cnn_at", epochs=1, n_train=192, batch_size=64, steps=2)
    first, meta = train(config, progress=False)
    second, _ = train(config, progress=False)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert meta["radius"] == FONTS_AT_RADIUS and meta["n_train"] == 192


def test_command_line_trains_saves_and_evaluates(tmp_path, capsys):
    out = tmp_path / "tiny.pt"
    main(["--model", "fonts_cnn", "--out", str(out), "--epochs", "1", "--n-train", "64",
          "--n-test", "20", "--eval-steps", "1"])
    assert '"clean_acc"' in capsys.readouterr().out
    model = load_model("fonts_cnn", device="cpu", weights=out)
    assert model.info["checkpoint_meta"]["n_train"] == 64
    main(["--eval", str(out), "--n-test", "20", "--eval-steps", "1"])
    assert str(out) in capsys.readouterr().out
