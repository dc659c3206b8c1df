import warnings

import numpy as np
import pytest
import torch
import torchvision
from skimage.metrics import structural_similarity

from blindspots_nb.metrics import LPIPSDistance, linf, lpips_trunk_path, rmse, ssim, target_distances


def _pair(seed=0, shape=(3, 3, 32, 32)):
    generator = torch.Generator().manual_seed(seed)
    a = torch.rand(shape, generator=generator)
    b = (a + 0.2 * torch.randn(shape, generator=generator)).clamp(0, 1)
    return a, b


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


def test_lpips_with_local_trunk_matches_the_lpips_package(hub_dir):
    import lpips as lpips_package

    torch.manual_seed(0)
    path = lpips_trunk_path()
    path.parent.mkdir(parents=True)
    torch.save(torchvision.models.alexnet().state_dict(), path)  # torchvision's format, random weights

    ours = LPIPSDistance(download=False)
    a, b = _pair(seed=3, shape=(2, 3, 64, 64))
    distance = ours(a, b)
    assert torch.isfinite(distance).all() and (distance > 0).all()
    assert torch.allclose(ours(a, a), torch.zeros(2), atol=1e-6)

    # the lpips package's own loader finds the same file in the hub cache
    reference = lpips_package.LPIPS(net="alex", version="0.1", verbose=False).eval()
    with torch.no_grad():
        expected = reference(a * 2 - 1, b * 2 - 1).flatten()
    assert torch.allclose(distance, expected, atol=1e-6)

    # an explicit path works the same, from anywhere
    moved = path.rename(hub_dir / "elsewhere.pth")
    assert torch.allclose(LPIPSDistance(trunk_weights=moved)(a, b), expected, atol=1e-6)


def test_target_distances_reports_all_columns(hub_dir):
    a, b = _pair(seed=4, shape=(2, 1, 32, 32))
    with pytest.warns(UserWarning):
        out = target_distances(a, b, LPIPSDistance(download=False))
    assert set(out) == {"rmse", "linf", "ssim", "lpips"}
    assert all(value.shape == (2,) for value in out.values())
    assert torch.isnan(out["lpips"]).all() and torch.isfinite(out["ssim"]).all()
