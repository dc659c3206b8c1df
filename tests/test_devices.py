"""The device from what a user writes: one resolver (tools.devices.resolve_device) behind
the command line, the notebooks, the app and the explorer; a device this machine lacks is
one clear line, not torch's "Found no NVIDIA driver"."""

import subprocess
import sys

import pytest
import torch

from blindspots_nb.explorer.state import Explorer
from blindspots_nb.models import load_model
from blindspots_nb.notebook import set_up
from blindspots_nb.tools.devices import resolve_device

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="the message for a machine without CUDA")
MISSING = r"device 'cuda' asked for, but .*no CUDA GPU.*--device cpu"


def test_no_device_means_cuda_when_available_and_names_are_checked():
    assert resolve_device(None) == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(" cpu ") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="'gpu'.*cpu, cuda, cuda:1"):
        resolve_device("gpu")


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_line_for_models_the_explorer_and_the_notebooks(tmp_path):
    factory = tmp_path / "my_models.py"
    factory.write_text("import torch\nfrom blindspots_nb.models import wrap\n\n\ndef build():\n"
                       "    return wrap(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)), (0,) * 3,"
                       " (1,) * 3, list('abc'), (3, 2, 2))\n")
    with pytest.raises(ValueError, match=MISSING):
        resolve_device("cuda")
    with pytest.raises(ValueError, match=MISSING):
        load_model("fonts_cnn", device="cuda")
    with pytest.raises(ValueError, match=MISSING):
        Explorer("fonts_cnn", device="cuda")
    with pytest.raises(ValueError, match=MISSING):
        set_up("fonts_cnn", device="cuda")
    with pytest.raises(ValueError, match=MISSING.replace("'cuda'", "'cuda:1'")):
        load_model(f"{factory}:build", device="cuda:1")


@no_cuda
@pytest.mark.slow
def test_the_command_line_says_it_in_one_line():
    done = subprocess.run([sys.executable, "-m", "blindspots_nb", "demo", "--model", "fonts_cnn", "--device", "cuda",
                           "--iterations", "1"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "NVIDIA" not in done.stderr
    assert done.stderr.startswith("blindspots-nb demo: error: device 'cuda' asked for, but torch finds no CUDA GPU")
