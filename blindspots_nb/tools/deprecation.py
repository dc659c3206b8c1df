"""Old spellings that users type, still accepted for a while with a DeprecationWarning.

Issue 17 gave each concept one name (``image_source``, ``radius``, ``out_dir``,
``initial_confidence``, ``points_per_pass``, ...). Keyword arguments of public functions
and keys of files written before keep their old spelling as an alias, through the
helpers here, so that the renaming is stated once per function or file; old command-line
options likewise through :func:`add_renamed_option`.
"""

from __future__ import annotations

import argparse
import functools
import sys
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


class _RenamedOption(argparse.Action):
    """Stores an old option's value under its new option's name, with a warning line."""

    def __init__(self, option_strings, dest, new: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.new = new

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated, use {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_renamed_option(parser, old: str, new: str, **kwargs) -> None:
    """Accept the command-line option ``old`` as the option ``new`` (added to ``parser``
    before, with its own help), with a warning line on stderr; ``old`` is not listed by
    ``--help``. ``kwargs``: what ``new`` takes (``type=`` ...)."""
    parser.add_argument(old, action=_RenamedOption, new=new, dest=new.lstrip("-").replace("-", "_"),
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)
