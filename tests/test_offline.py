"""BLINDSPOTS_NB_OFFLINE=1: no code path connects (LPIPS's trunk weights here; the CIFAR-10 batch and a received
run's image source in test_run_browser.py); each missing file is one message saying what to put where."""

import pytest
import torch


def test_lpips_offline_never_connects_and_says_what_to_put_where(tmp_path, monkeypatch, no_network):
    from blindspots_nb.analysis.metrics import LPIPSDistance

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    lpips = LPIPSDistance()
    assert not lpips.available and no_network == [] and not (tmp_path / "hub").exists()
    assert lpips.missing_reason == (
        f"no AlexNet trunk weights at {tmp_path / 'hub' / 'checkpoints' / 'alexnet-owt-7be5be79.pth'} "
        "(BLINDSPOTS_NB_OFFLINE=1: not downloaded); put torchvision's alexnet-owt-7be5be79.pth "
        "(https://download.pytorch.org/models/alexnet-owt-7be5be79.pth) there or pass trunk_weights=PATH")


def _files(root) -> list[str]:
    """Every file and folder under ``root``, relative to it, sorted."""
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


def test_offline_no_download_path_connects_or_creates_a_cache_file(tmp_path, monkeypatch, no_network):
    """Each download path with BLINDSPOTS_NB_OFFLINE=1 and an empty TORCH_HOME: registry weights
    from Hugging Face (timm's), a ``timm:<name>`` model, the adversarially trained checkpoints
    (Hugging Face, Google Drive), LPIPS's AlexNet trunk (torch hub) and the CIFAR-10 batch. Each
    fails with what to put where; no connection is tried and nothing appears in any cache."""
    from blindspots_nb.analysis.metrics import LPIPSDistance
    from blindspots_nb.data.sources import open_source
    from blindspots_nb.models import load_model
    from blindspots_nb.models.hub import WeightsNotFoundError

    home = tmp_path / "home"
    for variable, folder in (("TORCH_HOME", "torch"), ("XDG_CACHE_HOME", "cache"), ("HF_HOME", "hf")):
        monkeypatch.setenv(variable, str(home / folder))
    monkeypatch.delenv("BLINDSPOTS_NB_CACHE", raising=False)
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # torch hub's folder from TORCH_HOME again
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    (home / "torch").mkdir(parents=True)
    (tmp_path / "cifar").mkdir()
    before = _files(tmp_path)
    checkpoints = home / "torch" / "hub" / "checkpoints"
    for name in ("resnet50", "timm:resnet18", "resnet50_at", "deit_small_at", "cifar10_wrn28_10_at"):
        with pytest.raises(WeightsNotFoundError, match=rf"{name}: .*{checkpoints}/\S+ \(offline\).*https://\S+"):
            load_model(name, device="cpu")
    assert not LPIPSDistance().available
    with pytest.raises(FileNotFoundError, match="BLINDSPOTS_NB_OFFLINE=1.*https://"):
        open_source(f"cifar10:{tmp_path / 'cifar'}")
    assert no_network == [] and _files(tmp_path) == before == ["cifar", "home", "home/torch"]
