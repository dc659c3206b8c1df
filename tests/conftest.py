import pytest

from helpers import make_tiny_cnn


@pytest.fixture
def tiny_cnn():
    return make_tiny_cnn()
