"""Checks of values that a user gives and that go into JSON records and run settings."""

from __future__ import annotations

import numbers

# torch.Generator.manual_seed takes [-2**63, 2**64 - 1]; a negative seed is the same as seed + 2**64.
MAX_SEED = 2**64 - 1


def plain_number(label: str, value, integral: bool = False):
    """``value`` as a Python float (or int, with ``integral``): any real number that is not
    a bool, numpy scalars included, since settings and records go into JSON; Python ints
    and floats are kept as given. ``label`` names the value in the error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{label} must be a number, got {value!r} (a {type(value).__name__})")
    if integral and not isinstance(value, numbers.Integral):
        raise ValueError(f"{label} must be an integer, got {value!r}")
    if type(value) in (int, float):
        return value
    return int(value) if integral else float(value)
