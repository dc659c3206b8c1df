import gc
import os
import shutil
import socket
import tempfile

import pytest

# torch.compile's kernels go to a folder of this session's own, inherited by the notebooks'
# kernels and subprocesses: a machine's shared cache (/tmp/torchinductor_$USER) written by
# another process, build or instruction set aborted the compiled-model tests here
# ("Fatal Python error: Aborted" while loading a cached kernel), which no test should depend on.
_INDUCTOR_CACHE = tempfile.mkdtemp(prefix="blindspots-nb-inductor-")
os.environ["TORCHINDUCTOR_CACHE_DIR"] = _INDUCTOR_CACHE
# pytest-xdist's workers share the cores: each, and the kernels and subprocesses it starts, gets
# its share of threads (two workers of two threads each on two cores took 2.7x as long as one).
# The cores this process may run on, as xdist counts them for -n auto: a container's os.cpu_count()
# can be the whole host's.
if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    os.environ["OMP_NUM_THREADS"] = str(max(1, _CORES // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` need CUDA: skipped, saying so, where there is none. (torch is imported
    here, after the cache folder is chosen, and only where tests are collected: not by
    pytest-xdist's controller, which then starts its workers ~2 s sooner.)"""
    import torch

    if torch.cuda.is_available():
        return
    no_cuda = pytest.mark.skip(reason="needs a CUDA device (torch.cuda.is_available() is False)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(no_cuda)


@pytest.fixture
def no_network(monkeypatch) -> list:
    """Every connection or name look-up tried, refused and listed."""
    tried = []

    def refuse(*args, **kwargs):
        tried.append(args)
        raise OSError("no network in this test")
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return tried


@pytest.fixture
def tiny_cnn():
    from helpers import make_tiny_cnn

    return make_tiny_cnn()


def pytest_unconfigure(config):
    shutil.rmtree(_INDUCTOR_CACHE, ignore_errors=True)


def pytest_collection_finish(session):
    """What collection imported (torch, plotly, ...) stays for the session: moved out of the
    garbage collector's sight, so that its passes do not walk it again and again."""
    gc.freeze()
