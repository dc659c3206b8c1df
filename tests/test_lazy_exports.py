"""Each package's re-exports are written once, as imports under ``if TYPE_CHECKING:`` that
IDEs and type checkers follow; at run time ``tools.lazy`` reads those lines and imports
each module on first use."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import blindspots_nb
from blindspots_nb.tools.lazy import lazy_exports, type_checking_imports

PACKAGES = sorted(f"blindspots_nb.{init.parent.name}" for init in Path(blindspots_nb.__file__).parent.glob("*/__init__.py")
                  if "lazy_exports(__name__, __file__)" in init.read_text())


def test_every_package_that_re_exports_names_them_under_type_checking():
    assert {"blindspots_nb.lst", "blindspots_nb.models", "blindspots_nb.protocol", "blindspots_nb.plots"} <= set(PACKAGES)
    for init in Path(blindspots_nb.__file__).parent.glob("*/__init__.py"):
        assert "lazy_exports(__name__, {" not in init.read_text(), init  # no second table beside the imports


@pytest.mark.parametrize("package", PACKAGES)
def test_the_exports_are_the_type_checking_imports_and_each_is_its_modules_object(package):
    module = importlib.import_module(package)
    imports = type_checking_imports(module.__file__)
    assert module.__all__ == sorted(name for names in imports.values() for name in names) == dir(module)
    for submodule, names in imports.items():
        for name in names:
            assert getattr(module, name) is getattr(importlib.import_module(f"{package}.{submodule}"), name)
    with pytest.raises(AttributeError, match=f"'{package}' has no attribute 'no_such_name'"):
        getattr(module, "no_such_name")


def test_importing_a_package_imports_none_of_its_modules():
    code = ("import sys, blindspots_nb.models, blindspots_nb.protocol; "
            "print(sorted(m for m in sys.modules if m.startswith(('blindspots_nb.models.', 'blindspots_nb.protocol.'))))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert run.stdout.strip() == "[]"


def test_only_relative_imports_go_under_type_checking(tmp_path):
    init = tmp_path / "__init__.py"
    init.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import torch\n")
    with pytest.raises(ValueError, match="'from .module import names'"):
        lazy_exports("somewhere", init)
