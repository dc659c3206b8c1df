"""benchmarks/gpu_check.py where there is no GPU: one line, exit 0, nothing written."""

import subprocess
import sys

import pytest
import torch

from helpers import load_benchmark

gpu_check = load_benchmark("gpu_check")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path, capsys, monkeypatch):
    assert gpu_check.main(["--out-dir", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert printed.count("\n") == 1 and printed.startswith("gpu_check: no CUDA device here")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_the_script_itself_exits_0_without_cuda():
    run = subprocess.run([sys.executable, str(gpu_check.__file__)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.count("\n") == 1 and run.stderr == ""


def test_the_markdown_table_has_a_row_per_check_and_precision():
    figures = {"image_iterations_per_second": 1000.0, "ms_per_image_iteration": 1.0, "peak_memory_gib": 3.0,
               "finite": True, "on_level_set": True}
    report = {"device": "cuda:0 (NVIDIA H100 80GB HBM3)", "versions": {"torch": "2.14.1", "blindspots_nb": "0.1.0"},
              "created": "2026-12-06 14:00 UTC",
              "gpu_tests": {"summary": "9 passed in 20.0s", "seconds": 20.0},
              "lst": {name: {p: figures for p in ("fp32", "bf16")} for name in gpu_check.MODELS},
              "explorer": {"points": 66, "drawn_iterations": [10, 10], "passed": True, "redraw_seconds": 0.1,
                           "step_10_seconds": 0.5},
              "protocol": {"passed": False, "seconds": 60.0}}
    table = gpu_check.markdown(report)
    assert table.startswith("cuda:0 (NVIDIA H100 80GB HBM3), torch 2.14.1")
    rows = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 1 + 2 * 2 + 2
    assert "| LST resnet50, batch 196, bf16 | 1000 image-iterations/s (1.00 ms each), peak 3.0 GiB, ok | |" in rows
    assert rows[-1].endswith("| FAILED | 60 |")
