"""The CIFAR-10 test batch, read with an unpickler that builds arrays and nothing else."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from ..models import CIFAR10_CLASSES
from .images import TensorImages

class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: no other code can run."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        return super().find_class(module, name)


def _cifar_test_batch(root: Path, download: bool) -> Path:
    from torchvision.datasets import CIFAR10

    candidates = [root, root / "test_batch", root / CIFAR10.base_folder / "test_batch"]
    found = next((p for p in candidates if p.is_file()), None)
    if found:
        return found
    target = candidates[-1]
    hint = (f"download {CIFAR10.url} and extract it into {root} "
            f"(giving {target})")
    if os.environ.get("BLINDSPOTS_NB_OFFLINE") == "1":
        raise FileNotFoundError(f"no CIFAR-10 test batch at {target}, and BLINDSPOTS_NB_OFFLINE=1 forbids the "
                                f"download; {hint}")
    if not download:
        raise FileNotFoundError(f"no CIFAR-10 test batch at {target}; {hint}")
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(CIFAR10.url, str(root), filename=CIFAR10.filename,
                                     md5=CIFAR10.tgz_md5)
    except Exception as err:
        raise FileNotFoundError(f"no CIFAR-10 test batch at {target} and the download failed "
                                f"({type(err).__name__}: {err}); {hint}") from err
    return target


def cifar10(root: str | os.PathLike, download: bool = True) -> TensorImages:
    """The 10,000 CIFAR-10 test images (3 x 32 x 32, in [0, 1]) from the python-format
    ``cifar-10-batches-py/test_batch`` under ``root`` (``root`` may also be that file),
    downloaded from torchvision's URL when missing and ``download`` is true (never with
    ``BLINDSPOTS_NB_OFFLINE=1``: then, as with ``download=False``, nothing is created or
    fetched and the error says which file to put where)."""
    path = _cifar_test_batch(Path(root).expanduser(), download)
    try:
        with open(path, "rb") as f:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = torch.tensor(batch["labels"], dtype=torch.long)
    except Exception as err:
        raise ValueError(f"{path} is not a CIFAR-10 python batch file ({err})") from err
    names = [n.decode() if isinstance(n, bytes) else str(n)
             for n in batch.get("filenames", range(len(labels)))]
    return TensorImages(torch.from_numpy(data).float() / 255, labels, list(CIFAR10_CLASSES), names)
