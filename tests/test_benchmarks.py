"""The paper-scale benchmark runs end to end (tiny settings; its timings are not checked)."""

import torch

from blindspots_nb.lst import LSTConfig, Traversal
from helpers import load_benchmark, make_tiny_cnn

paper_scale = load_benchmark("paper_scale")


def test_the_released_style_baseline_walks_where_the_engine_walks():
    """Same algorithm, two forward passes per step: the ratio compares like with like."""
    model = make_tiny_cnn(sharpness=3.0)
    generator = torch.Generator().manual_seed(0)
    sources, targets = torch.rand(2, 4, 3, 16, 16, generator=generator)
    labels = model(sources).argmax(1)
    config = LSTConfig(iterations=6, step_size=0.05, init_noise=0.0)
    engine = Traversal(model, sources, labels, targets, config).run()
    baseline = paper_scale.released_style_steps(model, sources, labels, targets, engine.initial_confidence,
                                                config, 6)
    assert (baseline - engine.images).abs().max() < 1e-5


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
