"""Package re-exports that import their module on first use (PEP 562).

A package's ``__init__`` re-exports its public names from its submodules; done eagerly,
importing one light submodule (a dataclass of options, say) would import torch through
its siblings, and ``blindspots-nb --help`` would wait seconds for it. ``exports`` maps
each submodule to the names it gives the package.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]):
    """``(__getattr__, __dir__, __all__)`` for the package ``package`` (its ``__name__``)."""
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{where[name]}", package), name)

    def __dir__():
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
