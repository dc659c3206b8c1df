import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from skimage.metrics import structural_similarity

from blindspots_nb.analysis import metrics
from blindspots_nb.tools.checksums import file_sha256
from blindspots_nb.analysis.metrics import (LPIPSDistance, linf, lpips_trunk_path, lpips_trunk_url, mean_std, rmse,
                                            ssim, target_distances)


def _pair(seed=0, shape=(3, 3, 32, 32)):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=generator)
    b = (a + 0.2 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return a, b


def test_mean_std_is_the_population_one_and_nan_when_a_value_is_missing():
    assert mean_std([1.0, 3.0]) == (2.0, 1.0)
    assert all(np.isnan(mean_std([1.0, float("nan")]))) and all(np.isnan(mean_std([])))


def test_rmse_and_linf_match_numpy():
    a, b = _pair()
    difference = (a - b).numpy().reshape(3, -1)
    assert np.allclose(rmse(a, b).numpy(), np.sqrt((difference ** 2).mean(1)), atol=1e-6)
    assert np.allclose(linf(a, b).numpy(), np.abs(difference).max(1))


@pytest.mark.parametrize("channels", [1, 3])
def test_ssim_matches_scikit_image(channels):
    # the two libraries treat the image border slightly differently; at 192 px it is negligible
    a, b = _pair(seed=1, shape=(2, channels, 192, 192))
    ours = ssim(a, b)
    for i in range(2):
        reference = structural_similarity(
            a[i].numpy(), b[i].numpy(), channel_axis=0, data_range=1.0, gaussian_weights=True,
            sigma=1.5, use_sample_covariance=False)
        assert ours[i].item() == pytest.approx(reference, abs=1e-3)
    assert torch.allclose(ssim(a, a), torch.ones(2))


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache, so no real LPIPS trunk is found."""
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    return tmp_path / "hub"


def test_lpips_missing_trunk_is_nan_with_one_clear_warning(hub_dir):
    lpips = LPIPSDistance(download=False)
    a, b = _pair(seed=2)
    with pytest.warns(UserWarning, match=str(lpips_trunk_path())):
        first = lpips(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not again
        second = lpips(a, b)
    assert torch.isnan(first).all() and torch.isnan(second).all()
    assert "alexnet-owt-7be5be79.pth" in lpips.missing_reason
    assert lpips_trunk_path().parent == hub_dir / "checkpoints"


def test_lpips_offline_download_failure_names_the_file(hub_dir, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    lpips = LPIPSDistance()
    with pytest.warns(UserWarning, match="could not be downloaded"):
        assert not lpips.available
    assert str(lpips_trunk_path()) in lpips.missing_reason


@pytest.fixture(scope="module")
def random_trunk(tmp_path_factory) -> Path:
    """torchvision's AlexNet state dict, random weights: the published format, not the file (233 MB, made once)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("trunk") / "random_alexnet.pth"
    torch.save(torchvision.models.alexnet().state_dict(), path)
    return path


def _copy(trunk: Path, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(trunk, path))


def test_lpips_trunk_download_carries_the_hash_prefix(hub_dir, monkeypatch, random_trunk):
    calls = []

    def fake_download(url, dst, **kwargs):  # a server sending another file, a client not checking
        calls.append((url, dst, kwargs))
        _copy(random_trunk, Path(dst))

    monkeypatch.setattr(torch.hub, "download_url_to_file", fake_download)
    lpips = LPIPSDistance()
    with pytest.warns(UserWarning, match="failed its hash check"):
        assert not lpips.available
    assert calls == [(lpips_trunk_url(), str(lpips_trunk_path()),
                      {"hash_prefix": "7be5be79", "progress": False})]


def test_lpips_wrong_trunk_in_the_cache_is_nan_naming_the_file(hub_dir, random_trunk):
    path = _copy(random_trunk, lpips_trunk_path())
    lpips = LPIPSDistance(download=False)
    a, b = _pair(seed=5)
    with pytest.warns(UserWarning, match=f"NaN.*{path.name}.*7be5be79"):
        assert torch.isnan(lpips(a, b)).all()
    assert "Delete that cache file or replace it with https://" in lpips.missing_reason
    assert lpips.trunk_verified is False
    assert lpips.trunk_record == {"file": str(path), "sha256": file_sha256(path), "verified": False,
                                  "check": lpips.missing_reason}
    # a wrong file passed by path is refused the same way, without advice to delete it
    mine = LPIPSDistance(trunk_weights=path.rename(hub_dir / "my_alexnet.pth"))
    with pytest.warns(UserWarning, match="my_alexnet.pth failed its hash check"):
        assert torch.isnan(mine(a, b)).all()
    assert "delete" not in mine.missing_reason.lower()


def test_lpips_with_local_trunk_matches_the_lpips_package(hub_dir, monkeypatch, random_trunk):
    import lpips as lpips_package

    official = _copy(random_trunk, lpips_trunk_path())  # where the lpips package looks; it checks nothing
    # a trunk "published" under its own sha256 prefix, so that our check passes on random weights
    named = hub_dir / "checkpoints" / f"alexnet-owt-{file_sha256(official)[:8]}.pth"
    _copy(official, named)
    monkeypatch.setattr(metrics, "lpips_trunk_path", lambda: named)

    ours = LPIPSDistance(download=False)
    a, b = _pair(seed=3, shape=(2, 3, 64, 64))
    distance = ours(a, b)
    assert torch.isfinite(distance).all() and (distance > 0).all()
    assert torch.allclose(ours(a, a), torch.zeros(2), atol=1e-6)
    assert ours.trunk_verified and ours.trunk_record == {
        "file": str(named), "sha256": file_sha256(named), "verified": True,
        "check": f"verified against the hash prefix in torchvision's file name {named.name}"}

    reference = lpips_package.LPIPS(net="alex", version="0.1", verbose=False).eval()
    with torch.no_grad():
        expected = reference(a * 2 - 1, b * 2 - 1).flatten()
    assert torch.allclose(distance, expected, atol=1e-6)

    # an explicit path is checked by its content, not its name, and works the same from anywhere
    moved = named.rename(hub_dir / "elsewhere.pth")
    assert torch.allclose(LPIPSDistance(trunk_weights=moved)(a, b), expected, atol=1e-6)


def test_target_distances_reports_all_columns(hub_dir):
    a, b = _pair(seed=4, shape=(2, 1, 32, 32))
    with pytest.warns(UserWarning):
        out = target_distances(a, b, LPIPSDistance(download=False))
    assert set(out) == {"rmse", "linf", "ssim", "lpips"}
    assert all(value.shape == (2,) for value in out.values())
    assert torch.isnan(out["lpips"]).all() and torch.isfinite(out["ssim"]).all()
