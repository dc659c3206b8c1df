"""Execution options: precision flags, bf16 autocast with float32 gradients and
acceptance, torch.compile against eager, layout, and where the options reach."""

import dataclasses

import pytest
import torch

from blindspots_nb.cli import build_parser, experiments_from_args, main
from blindspots_nb.execution import PRECISIONS, Execution
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.protocol import Experiment, preset
from conftest import make_tiny_cnn


def _batch(seed=0, size=4):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 3, 16, 16, generator=generator), torch.rand(size, 3, 16, 16, generator=generator)


def test_unknown_precision_and_non_boolean_options_are_refused_by_name():
    with pytest.raises(ValueError, match="unknown precision 'fp16'.*fp32.*tf32-conv.*tf32.*bf16"):
        Execution(precision="fp16")
    with pytest.raises(ValueError, match="Execution.compile must be True or False"):
        Execution(compile="yes")
    with pytest.raises(TypeError, match="execution must be an Execution"):
        Traversal(make_tiny_cnn(), *_batch()[:1], [0, 0, 0, 0], _batch()[1], execution="bf16")


@pytest.mark.parametrize("precision, conv, matmul", [("fp32", "ieee", "ieee"), ("tf32-conv", "tf32", "ieee"),
                                                     ("tf32", "tf32", "tf32"), ("bf16", "ieee", "ieee")])
def test_scope_sets_the_cuda_float32_precision_and_restores_it(precision, conv, matmul):
    flags = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = [flag.fp32_precision for flag in flags]
    with Execution(precision).scope("cpu"):
        assert [flag.fp32_precision for flag in flags] == [conv, matmul]
        assert torch.is_autocast_enabled("cpu") == (precision == "bf16")
    assert [flag.fp32_precision for flag in flags] == before
    assert set(PRECISIONS) == {"fp32", "tf32-conv", "tf32", "bf16"}


def test_bf16_runs_the_model_in_bfloat16_but_keeps_gradient_and_acceptance_in_float32():
    model = make_tiny_cnn(sharpness=3.0)
    sources, targets = _batch()
    labels = model(sources).argmax(1)
    seen = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append(output.dtype))
    config = LSTConfig(iterations=5, step_size=0.05, record_every=1)
    traversal = Traversal(model, sources, labels, targets, config, execution=Execution("bf16")).run()
    assert set(seen) == {torch.bfloat16}
    assert traversal._gradient.dtype == torch.float32 and traversal._probs.dtype == torch.float32
    assert traversal.initial_confidence.dtype == torch.float32 and traversal.images.dtype == torch.float32
    eager = Traversal(model, sources, labels, targets, config).run()
    assert (traversal.images - eager.images).abs().max() < 0.05  # close, not equal: bfloat16 has 8 bits
    assert not torch.equal(traversal.images, eager.images)


def test_the_tf32_precisions_compute_what_fp32_computes_on_a_cpu():
    model = make_tiny_cnn(sharpness=3.0)
    sources, targets = _batch()
    labels = model(sources).argmax(1)
    config = LSTConfig(iterations=5, step_size=0.05)
    runs = [Traversal(model, sources, labels, targets, config, execution=Execution(p)).run().images
            for p in ("fp32", "tf32-conv", "tf32")]
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])


def test_channels_last_is_an_option():
    model = make_tiny_cnn()
    sources, targets = _batch()
    labels = model(sources).argmax(1)
    fast = Traversal(model, sources, labels, targets, LSTConfig(iterations=2))
    plain = Traversal(model, sources, labels, targets, LSTConfig(iterations=2), execution=Execution(channels_last=False))
    assert fast.images.is_contiguous(memory_format=torch.channels_last)
    assert plain.images.is_contiguous() and not plain.images.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast.run().images, plain.run().images, atol=1e-6)


def test_compiled_model_gives_the_blind_spots_of_eager_within_1e_5():
    """torch.compile on the CPU (the compiler builds with the machine's gcc). The model is
    not saturated: a saturated softmax's gradient direction is ill-conditioned in float32,
    so any change of rounding grows over the iterations (docs/algorithm.md)."""
    model = make_tiny_cnn(sharpness=3.0)
    sources, targets = _batch(seed=1)
    labels = model(sources).argmax(1)
    config = LSTConfig(iterations=8, step_size=0.05, record_every=4)
    eager = Traversal(model, sources, labels, targets, config).run()
    compiled = Traversal(model, sources, labels, targets, config, execution=Execution(compile=True)).run()
    assert torch.equal(eager._accepted_total, compiled._accepted_total)
    assert (compiled.images - eager.images).abs().max() < 1e-5
    assert (compiled.confidence - eager.confidence).abs().max() < 1e-5
    again = Traversal(model, sources, labels, targets, config, execution=Execution(compile=True))
    assert again.execution.runner(model) is compiled.execution.runner(model)  # compiled once per model


def test_a_saved_traversal_resumes_with_its_execution_options(tmp_path):
    model = make_tiny_cnn(sharpness=3.0)
    sources, targets = _batch()
    labels = model(sources).argmax(1)
    traversal = Traversal(model, sources, labels, targets, LSTConfig(iterations=4),
                          execution=Execution("bf16", channels_last=False)).step(2)
    path = traversal.save(tmp_path / "t.pt")
    assert Traversal.load(path, model, atol=1e-2).execution == Execution("bf16", channels_last=False)
    assert Traversal.load(path, model, atol=1e-2, execution=Execution()).execution == Execution()
    state = torch.load(path, weights_only=True)
    state["execution"]["precision"] = "fp8"
    torch.save(state, path)
    with pytest.raises(ValueError, match="execution options are invalid.*unknown precision 'fp8'"):
        Traversal.load(path, model)


def test_execution_options_reach_the_experiments_and_the_paper_preset_runs_as_the_released_code():
    assert preset("paper", "/data")[0].execution == Execution("tf32-conv")
    assert all(e.execution == Execution() for e in preset("offline"))
    args = build_parser().parse_args(["reproduce", "--precision", "bf16", "--compile", "--no-channels-last"])
    assert {e.execution for e in experiments_from_args(args)} == {Execution("bf16", True, False)}
    experiment = experiments_from_args(args)[0]
    assert Experiment.from_dict(experiment.to_dict()) == experiment
    old = experiment.to_dict()
    del old["execution"]  # settings written before the option existed
    assert Experiment.from_dict(old).execution == Execution()
    assert dataclasses.replace(experiment, execution=Execution()) != experiment  # part of a run's identity


def test_an_unknown_precision_on_the_command_line_is_one_clear_line(capsys):
    assert main(["reproduce", "--precision", "half", "--out", "unused"]) == 2
    assert "unknown precision 'half'" in capsys.readouterr().err
