"""Output folders: which a tool may write into, and who writes there now.

One policy for every tool's output folder: a folder is written into when it is new or
empty, or when it holds this tool's settings file with the same settings (a rerun then
resumes); anything else is refused with one line (:func:`claim`), so nothing a tool did
not write is overwritten. The run store (:mod:`blindspots_nb.protocol.store`) applies the
same rule with the run's own names and settings, and holds its folder with :func:`held`:
one process at a time.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import socket
import sys
from pathlib import Path

from . import atomic
from .deprecation import renamed_keys
from .json_files import UnreadableJSON, read_json


class FolderTaken(ValueError):
    """An output folder that holds something else than this tool's results of these settings."""


class HeldElsewhere(RuntimeError):
    """Another process holds a lock file; the message is what its file says of the holder."""


def claim(folder, settings: dict, label: str = "--out-dir", settings_file: str = "settings.json",
          renamed: dict[str, str] | None = None) -> Path:
    """``folder``, once it is new or empty (``settings`` are then written into
    ``settings_file``) or holds the same settings (a key written under an older name is read
    under its new one, ``renamed``: old -> new); :class:`FolderTaken` naming what differs
    otherwise."""
    folder = atomic.check_folder(folder, label)
    path = folder / settings_file
    if path.exists():
        try:
            stored = read_json(path)
        except UnreadableJSON as error:
            raise FolderTaken(f"{error}: use another {label}") from None
        if isinstance(stored, dict):
            stored = renamed_keys(stored, str(path), **(renamed or {}))
        if stored != settings:
            changed = sorted(k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k)) \
                if isinstance(stored, dict) else [settings_file]
            raise FolderTaken(f"{folder} holds results of other settings ({', '.join(changed)} differ): "
                              f"use another {label}")
    elif folder.exists() and any(folder.iterdir()):
        raise FolderTaken(f"{folder} is not empty and holds no {settings_file}: name a new or empty folder")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, settings)
    return folder


@contextlib.contextmanager
def held(lock: Path):
    """Hold the lock file ``lock`` (made if missing) while the block runs, its text saying
    who holds it; :class:`HeldElsewhere` when another process does. The OS releases the
    lock when its process ends, so a lock left by a killed process is recognised (its file
    still names it) and taken over, with a line saying so."""
    handle = open(lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "a process that has not said who it is"
        handle.close()
        raise HeldElsewhere(holder) from None
    try:
        handle.seek(0)
        stale = handle.read().strip()
        if stale:
            print(f"{lock.parent}: taking over the lock of a run that ended without releasing it ({stale})")
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                     f"{datetime.datetime.now().isoformat(timespec='seconds')}: {' '.join(sys.argv)}")
        handle.flush()
        yield
    finally:
        handle.seek(0)
        handle.truncate()
        handle.flush()
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()
