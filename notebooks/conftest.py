"""Every notebook under nbval is a slow test: each starts a kernel and runs a model."""

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
