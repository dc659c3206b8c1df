"""Package re-exports that import their module on first use (PEP 562).

A package's ``__init__`` re-exports its public names from its submodules; done eagerly,
importing one light submodule (a dataclass of options, say) would import torch through
its siblings, and ``blindspots-nb --help`` would wait seconds for it. So each ``__init__``
writes its re-exports once, as imports under ``if TYPE_CHECKING:`` (which IDEs and type
checkers follow, and which never run), and :func:`lazy_exports` reads them from there::

    if TYPE_CHECKING:
        from .config import LSTConfig

    __getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path


def type_checking_imports(init_file) -> dict[str, tuple[str, ...]]:
    """``{submodule: names}`` of the ``from .submodule import names`` lines under the
    top-level ``if TYPE_CHECKING:`` of the file ``init_file``."""
    exports = {}
    for node in ast.parse(Path(init_file).read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if not (isinstance(statement, ast.ImportFrom) and statement.level == 1 and statement.module):
                    raise ValueError(f"{init_file}: only 'from .module import names' lines go under TYPE_CHECKING")
                exports[statement.module] = tuple(alias.name for alias in statement.names)
    return exports


def lazy_exports(package: str, init_file):
    """``(__getattr__, __dir__, __all__)`` for the package ``package`` (its ``__name__``),
    whose ``__init__`` (its ``__file__``) imports its exports under ``if TYPE_CHECKING:``."""
    where = {name: module for module, names in type_checking_imports(init_file).items() for name in names}

    def __getattr__(name: str):
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f".{where[name]}", package), name)

    def __dir__():
        return sorted(where)

    return __getattr__, __dir__, sorted(where)
