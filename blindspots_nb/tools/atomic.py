"""Files written whole or not at all, with the permissions a plain ``open`` would give.

A writer puts its bytes into a temporary file of its own beside the destination, then
renames it over the destination: a reader (or a second process) sees the old file or
the new one, never a part, and a killed writer leaves at most its own temporary file.
Temporary files are named ``.<name>.<random>`` + :data:`TEMPORARY_SUFFIX`, so that a
clean-up can recognise this package's leftovers and leave everything else alone.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Callable

TEMPORARY_SUFFIX = ".blindspots_nb.tmp"
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}" + re.escape(TEMPORARY_SUFFIX) + "$")


class NotAFolderError(ValueError):
    """A folder to write to that is a file, a link to nothing, or lies under a file."""


def check_folder(folder, label: str = "the folder") -> Path:
    """``folder``, once it is known to be a folder or makable as one: the nearest of it and
    its parents that exists must be a folder (a file or a dangling link there would make
    the first write fail only after the work)."""
    folder = Path(folder)
    path = next(path for path in (folder, *folder.parents) if path.exists() or path.is_symlink())
    if not path.is_dir():
        what = f"a link to {os.readlink(path)}, which does not exist" if path.is_symlink() and not path.exists() \
            else "a file, not a folder"
        raise NotAFolderError(f"{label} {folder}{'' if path == folder else f': {path}'} is {what}; "
                              "name a folder to write to (it is made if missing)")
    return folder


def current_umask() -> int:
    """The process's umask, read without changing it (``os.umask`` can only swap it,
    which races with other threads) where Linux says it; else by a swap."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomically(path, write: Callable[[Path], object]) -> Path:
    """``write(temporary_path)``, then rename it to ``path``; the file gets mode
    ``0o666 & ~umask`` as ``open`` would give it (``mkstemp`` alone makes it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, 0o666 & ~current_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path, data: bytes) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_bytes(data))


def write_text(path, text: str) -> Path:
    return write_atomically(path, lambda temporary: temporary.write_text(text, encoding="utf-8"))


def csv_text(rows: list[dict], digits: int | None = None) -> str:
    """``rows`` as CSV text, headed by the first row's keys; ``digits``: floats written with
    that many significant digits (None: in full)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows if digits is None else ({key: f"{value:.{digits}g}" if isinstance(value, float) else value
                                                   for key, value in row.items()} for row in rows))
    return text.getvalue()


def write_csv(path, rows: list[dict], digits: int | None = None) -> Path:
    return write_text(path, csv_text(rows, digits))


def write_json(path, value, indent: int = 2) -> Path:
    return write_text(path, json.dumps(value, indent=indent))


def temporary_of(path) -> str | None:
    """The name of the file whose temporary ``path`` is (``x.csv`` for
    ``.x.csv.<random>`` + :data:`TEMPORARY_SUFFIX`), None for any other file."""
    name = Path(path).name
    return name[1:-len(TEMPORARY_SUFFIX)].rsplit(".", 1)[0] if _TEMPORARY.match(name) else None
