"""Reading a JSON file that may be damaged or hostile (a run folder from someone else):
every way it can fail is one :class:`UnreadableJSON` naming the file, never a
``RecursionError``, a hang on a FIFO or a file read whole into memory."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

_MAX_JSON_BYTES = 256 * 2**20  # far above any run's records (a 50,000-image pool is a few MB)


class UnreadableJSON(ValueError):
    """A JSON file that cannot be read; ``reason`` says why, the message names the file too."""

    def __init__(self, path, reason: str):
        self.path, self.reason = Path(path), reason
        super().__init__(f"{path} {reason}")


def read_json(path, limit: int = _MAX_JSON_BYTES):
    """The value of the JSON file ``path``. Refuses, as one :class:`UnreadableJSON`: a name that
    is not a regular file (a FIFO is never opened), a file over ``limit`` bytes, bytes that are
    not UTF-8, text that is not JSON, and JSON nested deeper than Python's parser goes.
    A missing file is the usual FileNotFoundError."""
    path = Path(path)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens without waiting for a writer
    except FileNotFoundError:
        raise
    except OSError as error:
        raise UnreadableJSON(path, f"cannot be opened ({error.strerror or error})") from None
    with open(descriptor, "rb") as handle:
        status = os.fstat(handle.fileno())
        if not stat.S_ISREG(status.st_mode):
            raise UnreadableJSON(path, "is not a regular file")
        if status.st_size > limit:
            raise UnreadableJSON(path, f"is {status.st_size} bytes, more than the {limit} a JSON record of a run "
                                       "may be")
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise UnreadableJSON(path, f"grew past the {limit} bytes a JSON record of a run may be while it was read")
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnreadableJSON(path, f"is not UTF-8 text ({error.reason} at byte {error.start})") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise UnreadableJSON(path, "is not valid JSON (nested deeper than it can be read)") from None
    except ValueError as error:
        raise UnreadableJSON(path, f"is not valid JSON ({error})") from None
