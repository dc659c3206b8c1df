"""The identity of a weights file: its sha256, and the hash its published name carries.

Files published the torch hub way (torchvision's, timm's GitHub releases) end their name
with ``-`` and the first 8 or more hex digits of their sha256, just before the extension:
``alexnet-owt-7be5be79.pth`` is a file whose sha256 starts with ``7be5be79``. Such a file
can be checked offline; any other name carries nothing to check against.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

_CHUNK = 1 << 20
_NAME_HASH = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file as 64 hex digits, read in 1 MiB chunks (checkpoints can be
    larger than the memory one wants to spend on them)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def published_hash_prefix(filename: str | os.PathLike) -> str | None:
    """The sha256 prefix a torch-hub-style file name carries
    (``alexnet-owt-7be5be79.pth`` -> ``"7be5be79"``), or None for any other name."""
    match = _NAME_HASH.search(Path(filename).name)
    return match.group(1) if match else None


def hash_mismatch(path: str | os.PathLike, sha256: str, expected: str, stated_in: str = "") -> str | None:
    """None when ``sha256`` starts with ``expected`` (a prefix or a whole digest);
    otherwise a sentence naming the file, the hash expected (and ``stated_in``: where
    that hash is stated) and the one found."""
    expected = expected.lower()
    if sha256.lower().startswith(expected):
        return None
    wanted = f"sha256 {expected}" if len(expected) == 64 else f"a sha256 starting with {expected}"
    return (f"{path} failed its hash check: expected {wanted}"
            f"{f' ({stated_in})' if stated_in else ''}, found {sha256}")


class HashingWriter:
    """A binary file that hashes the bytes written through it, and counts them: a file's
    sha256 taken on the way to it, never by reading it back."""

    def __init__(self, handle):
        self.handle, self.sha256, self.size = handle, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.handle.write(data)

    def flush(self):
        self.handle.flush()
