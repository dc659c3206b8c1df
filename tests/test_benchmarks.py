"""The benchmarks run end to end (tiny settings; their timings are not checked)."""

import pytest
import torch

from helpers import load_benchmark

paper_scale = load_benchmark("paper_scale")


def test_the_benchmark_reports_every_option_the_baseline_and_both_triangle_passes(capsys):
    rate, triangles = paper_scale.main(["--model", "fonts_cnn", "--device", "cpu", "--batch", "2",
                                        "--iterations", "1", "--runs", "1", "--options", "fp32,bf16,fp32-folded"])
    assert set(rate) == {"fp32", "bf16", "fp32-folded", "released-style"} and all(v > 0 for v in rate.values())
    assert {"per pair", "shared, fp32"} <= set(triangles) <= {"per pair", "shared, fp32", "shared, fp32-folded",
                                                              "shared, bf16"}
    printed = capsys.readouterr().out
    assert "random initialisation (seed 0): for timing only" in printed
    assert "660 forward passes per source" in printed and "501 forward passes per source" in printed
    assert "one paper row" in printed


protocol_overheads = load_benchmark("protocol_overheads")


def test_the_tiny_model_names_every_synthetic_class_surely_so_the_pool_rule_passes(tmp_path):
    """Files of the benchmark's ImageNet-shaped folder, decoded as the protocol decodes them:
    the tiny model gives each its folder's class with confidence above the pool rule's 0.6."""
    from blindspots_nb.data import imagenet_val
    from blindspots_nb.models import load_model, predict

    assert protocol_overheads.build_folder(tmp_path / "val", 2) == 2000
    dataset = imagenet_val(tmp_path / "val")
    assert len(dataset) == 2000 and dataset.labels[::2].tolist() == list(range(1000))
    picked = list(range(0, 2000, 97))
    model = load_model(protocol_overheads.MODEL_SPEC, device="cpu")
    predicted, confidence = predict(model, torch.stack([dataset[i][0] for i in picked]))
    assert predicted.tolist() == dataset.labels[picked].tolist() and bool((confidence > 0.6).all())


def test_stages_are_timed_exclusively():
    """Time spent in a timed function called from another counts for the inner one only."""
    import time
    from types import SimpleNamespace

    work = SimpleNamespace(inner=lambda: time.sleep(0.5))
    work.outer = lambda: (time.sleep(0.1), work.inner())
    clock = protocol_overheads.StageClock()
    clock.wrap(work, "inner", "inner stage")
    clock.wrap(work, "outer", "outer stage")
    work.outer()
    seconds = clock.take()
    assert seconds["inner stage"] >= 0.5 and 0.1 <= seconds["outer stage"] < 0.5  # not 0.6: the inner's excluded
    assert clock.take() == {}


@pytest.mark.slow
def test_the_protocol_overheads_benchmark_runs_every_stage(capsys):
    results = protocol_overheads.main(["--files-per-class", "1", "--n-sources", "2"])
    stages = results[1000]
    assert set(stages) == {"shared", "model"}
    assert all(stages["shared"][stage] > 0 for stage in protocol_overheads.SHARED)
    assert all(stages["model"][stage] > 0 for stage in protocol_overheads.PER_MODEL)
    printed = capsys.readouterr().out
    assert "random convolution weights" in printed and "for timing only" in printed and "peak memory" in printed


@pytest.mark.slow
def test_the_dry_run_estimate_benchmark_compares_the_plan_with_the_run(capsys):
    """The figure for issue 29's 'estimate within a factor of 2': the benchmark plans and runs
    the same small run and prints both; its ratio is its own output (exit 1 outside [1/2, 2])."""
    dry_run_estimate = load_benchmark("dry_run_estimate")
    ratio = dry_run_estimate.main(["--models", "fonts_cnn", "--n-sources", "4", "--rounds", "2",
                                   "--iterations", "3", "--batch-size", "2", "--divisions", "2"])
    printed = capsys.readouterr().out
    assert f"estimate / measured = {ratio:.2f}" in printed and ratio > 0
    assert "fonts_cnn: estimated " in printed and " s, measured " in printed
