"""Distances between blind spots and their targets (the paper's Table 1).

All distances take batches (B, C, H, W) in [0, 1] and return one value per sample;
:func:`mean_std` summarises a column of them (the tables' mean ± std).
RMSE = l2 / sqrt(C*H*W); l_inf; SSIM (Gaussian window 11, sigma 1.5, data range 1,
from torchmetrics); LPIPS (the ``lpips`` package: AlexNet trunk, v0.1 linear heads,
inputs scaled to [-1, 1]).

LPIPS needs torchvision's ImageNet AlexNet weights (the trunk). They are looked for
at an explicit path, then in the torch hub cache, then downloaded there. Any trunk file
must have the sha256 prefix its published name carries (``alexnet-owt-7be5be79.pth``):
another AlexNet would give numbers that are not LPIPS. Without a trunk that passes,
LPIPS is reported as NaN, with one warning saying which file to put where.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import torch

from ..tools.checksums import file_sha256, hash_mismatch, published_hash_prefix


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and (population) standard deviation; NaN when any value is missing."""
    tensor = torch.tensor(values, dtype=torch.float64)
    if len(values) == 0 or torch.isnan(tensor).any():
        return (math.nan, math.nan)
    return (float(tensor.mean()), float(tensor.std(unbiased=False)))


def rmse(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Root mean squared pixel difference per sample: l2 / sqrt(C*H*W)."""
    difference = (images - targets).flatten(1)
    return difference.norm(dim=1) / math.sqrt(difference.shape[1])


def linf(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Largest absolute pixel difference per sample."""
    return (images - targets).flatten(1).abs().amax(dim=1)


def ssim(images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """SSIM per sample with a Gaussian window (11, sigma 1.5) and data range 1."""
    # imported here: torchmetrics' import takes ~4 s beyond torch's (its audio and text metrics),
    # paid by every process that imports this module (the explorer, each run's kernel, the CLI)
    from torchmetrics.functional.image import structural_similarity_index_measure

    return structural_similarity_index_measure(
        images.float().contiguous(), targets.float().contiguous(), gaussian_kernel=True, sigma=1.5,
        kernel_size=11, data_range=1.0, reduction="none")


def lpips_trunk_url() -> str:
    """Where torchvision publishes the ImageNet AlexNet weights (LPIPS's trunk)."""
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.url


def lpips_trunk_path() -> Path:
    """Where torchvision (and so LPIPS) keeps the ImageNet AlexNet weights; the file's
    name carries the prefix of its sha256 (``alexnet-owt-7be5be79.pth``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / lpips_trunk_url().rsplit("/", 1)[-1]


class _LPIPSUnavailable(RuntimeError):
    """LPIPS's AlexNet trunk weights are not on disk and could not be downloaded."""


class LPIPSDistance:
    """LPIPS (AlexNet, v0.1) between batches in [0, 1]; NaN where the trunk is missing
    or fails its hash check.

    ``trunk_weights``: a local copy of torchvision's ``alexnet-owt-7be5be79.pth`` (any
    name; its content is checked); by default the torch hub cache, downloaded there
    when a network is available.
    """

    def __init__(self, trunk_weights: str | Path | None = None, download: bool = True):
        self.trunk_weights = Path(trunk_weights) if trunk_weights else None
        self.download = download
        self._model = None
        self._missing_reason: str | None = None
        self._trunk = {"file": None, "sha256": None, "check": None}

    @property
    def available(self) -> bool:
        """Whether genuine LPIPS can be computed (loads the model on first use)."""
        if self._model is None and self._missing_reason is None:
            try:
                self._model = self._build()
            except _LPIPSUnavailable as error:
                self._missing_reason = str(error)
                warnings.warn(f"LPIPS will be reported as NaN: {error}", stacklevel=4)
        return self._model is not None

    @property
    def missing_reason(self) -> str | None:
        """Why LPIPS is unavailable, or None."""
        return None if self.available else self._missing_reason

    @property
    def trunk_verified(self) -> bool:
        """Whether LPIPS runs on a trunk file that passed its hash check (it runs on no other)."""
        return self.available

    @property
    def trunk_record(self) -> dict:
        """For run records: the trunk's ``file`` and ``sha256`` (None where there is no
        file), ``verified``, and ``check`` (what it was checked against, or why it failed)."""
        verified = self.trunk_verified
        return {**self._trunk, "verified": verified,
                "check": self._trunk["check"] if verified else self._missing_reason}

    def _trunk_state_dict(self) -> dict:
        """The trunk's weights, from a file whose sha256 has the published prefix."""
        cache_path, url = lpips_trunk_path(), lpips_trunk_url()
        prefix = published_hash_prefix(cache_path.name)
        path = self.trunk_weights or cache_path
        offline = os.environ.get("BLINDSPOTS_NB_OFFLINE") == "1"  # no connection from any code path
        if self.trunk_weights is None and not path.is_file() and self.download and not offline:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
            except Exception as error:  # offline (URLError, socket errors), or a wrong hash
                raise _LPIPSUnavailable(
                    f"its AlexNet trunk weights are not on disk and could not be downloaded ({error}). "
                    f"Put torchvision's {path.name} ({url}) at {path}, "
                    "or pass trunk_weights=PATH") from error
        if not path.is_file():
            why = " (BLINDSPOTS_NB_OFFLINE=1: not downloaded)" if offline else ""
            raise _LPIPSUnavailable(f"no AlexNet trunk weights at {path}{why}; put torchvision's {cache_path.name} "
                                   f"({url}) there or pass trunk_weights=PATH")
        sha256 = file_sha256(path)
        self._trunk.update(file=str(path), sha256=sha256)
        stated_in = f"the hash prefix in torchvision's file name {cache_path.name}"
        problem = hash_mismatch(path, sha256, prefix, stated_in)
        if problem:
            advice = (f"Delete that cache file or replace it with {url}" if path == cache_path else
                      f"Pass a copy of torchvision's {url} as trunk_weights")
            raise _LPIPSUnavailable(f"the AlexNet trunk {problem}: it is not torchvision's ImageNet "
                                   f"AlexNet, and distances with it would not be LPIPS. {advice}")
        self._trunk["check"] = f"verified against {stated_in}"
        return torch.load(path, map_location="cpu", weights_only=True)

    def _build(self):
        import lpips

        state = self._trunk_state_dict()
        model = lpips.LPIPS(net="alex", version="0.1", pretrained=True, pnet_rand=True, verbose=False)
        features = {key[len("features."):]: value for key, value in state.items()
                    if key.startswith("features.")}
        if not features:
            raise _LPIPSUnavailable("the AlexNet trunk file holds no 'features.*' weights: "
                                   "expected torchvision's alexnet state dict")
        for part in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
            for index, layer in part.named_children():
                for name, tensor in layer.named_parameters(recurse=False):
                    tensor.data.copy_(features[f"{index}.{name}"])
        return model.eval().requires_grad_(False)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if not self.available:
            return torch.full((images.shape[0],), float("nan"))
        model = self._model.to(images.device)
        if images.shape[1] == 1:  # grayscale: LPIPS's trunk expects RGB
            images, targets = images.expand(-1, 3, -1, -1), targets.expand(-1, 3, -1, -1)
        with torch.no_grad():
            distance = model(images.float() * 2 - 1, targets.float() * 2 - 1)
        return distance.flatten().cpu()


def target_distances(images: torch.Tensor, targets: torch.Tensor,
                     lpips: LPIPSDistance | None = None) -> dict[str, torch.Tensor]:
    """All Table-1 distances per sample: rmse, linf, ssim, lpips (NaN when unavailable)."""
    images, targets = images.detach(), targets.detach()
    lpips = lpips or LPIPSDistance()
    return {
        "rmse": rmse(images, targets).cpu(),
        "linf": linf(images, targets).cpu(),
        "ssim": ssim(images, targets).cpu(),
        "lpips": lpips(images, targets),
    }
