"""Old spellings that users type, still accepted for a while with a DeprecationWarning.

Issue 17 gave each concept one name (``image_source``, ``radius``, ``out_dir``,
``initial_confidence``, ``points_per_pass``, ...). Keyword arguments of public functions
and keys of files written before keep their old spelling as an alias, through the two
helpers here, so that the renaming is stated once per function or file.
"""

from __future__ import annotations

import functools
import warnings


def renamed_keywords(**new_by_old: str):
    """Decorator: the keyword arguments ``old=`` of the decorated function are passed as
    ``new_by_old[old]=``, with a DeprecationWarning; both at once are a TypeError."""
    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for old, new in new_by_old.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__qualname__}() got both {new}= and its old name {old}=")
                    warnings.warn(f"{function.__qualname__}(): {old}= is deprecated, use {new}=",
                                  DeprecationWarning, stacklevel=2)
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)
        return wrapper
    return decorate


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
