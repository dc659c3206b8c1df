"""Run folders and records written before issue 17's renaming, read under today's names.

Issue 17 gave each concept one name (``image_source``, ``initial_confidence``, ...). The
old API spellings are gone, but files written before keep their old keys: they are data,
read with :func:`renamed_keys` and a DeprecationWarning saying which file is old.
"""

from __future__ import annotations

import warnings


def renamed_keys(values: dict, where: str, **new_by_old: str) -> dict:
    """``values`` (read back from a file written before the renaming) with each old key
    ``old`` under its new name ``new_by_old[old]``, with a DeprecationWarning naming
    ``where``; ``values`` itself is left unchanged."""
    old = [key for key in new_by_old if key in values and new_by_old[key] not in values]
    if not old:
        return values
    warnings.warn(f"{where}: old key(s) {', '.join(old)} read as {', '.join(new_by_old[k] for k in old)}",
                  DeprecationWarning, stacklevel=2)
    return {new_by_old.get(key, key) if key in old else key: value for key, value in values.items()}
