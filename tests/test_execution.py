"""Execution options: precision flags, bf16 autocast with float32 gradients and
acceptance, torch.compile against eager, layout, and where the options reach."""

import dataclasses

import pytest
import torch

from blindspots_nb.cli import build_parser, experiments_from_args, main
from blindspots_nb.execution import PRECISIONS, Execution, fold_batchnorm
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.protocol import Experiment, preset
from helpers import make_cnn_with_batchnorm, make_tiny_cnn
from torch import nn


def _batch(seed=0, size=4):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 3, 16, 16, generator=generator), torch.rand(size, 3, 16, 16, generator=generator)


def test_unknown_precision_and_non_boolean_options_are_refused_by_name():
    with pytest.raises(ValueError, match="precision 'fp16'.*tf32-conv"):
        Execution(precision="fp16")
    with pytest.raises(ValueError, match="Execution.compile .*got 'yes'"):
        Execution(compile="yes")
    with pytest.raises(TypeError, match="must be an Execution, got str"):
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


def test_channels_last_is_an_option():
    model = make_tiny_cnn()
    sources, targets = _batch()
    labels = model(sources).argmax(1)
    fast = Traversal(model, sources, labels, targets, LSTConfig(iterations=2))
    plain = Traversal(model, sources, labels, targets, LSTConfig(iterations=2), execution=Execution(channels_last=False))
    assert fast.images.is_contiguous(memory_format=torch.channels_last)
    assert plain.images.is_contiguous() and not plain.images.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(fast.run().images, plain.run().images, atol=1e-6)


@pytest.mark.parametrize("option", [pytest.param("compile", marks=pytest.mark.slow), "fold_batchnorm"])
def test_compiled_or_folded_model_gives_the_blind_spots_of_eager_within_1e_5(option):
    """torch.compile runs on the CPU (the compiler builds with the machine's gcc). The
    model is not saturated: a saturated softmax's gradient direction is ill-conditioned in
    float32, so any change of rounding grows over the iterations (docs/algorithm.md)."""
    model = make_cnn_with_batchnorm(seed=1)
    sources, targets = _batch(seed=1)
    labels = model(sources).argmax(1)
    config = LSTConfig(iterations=8, step_size=0.05, record_every=4)
    execution = Execution(**{option: True})
    eager = Traversal(model, sources, labels, targets, config).run()
    other = Traversal(model, sources, labels, targets, config, execution=execution).run()
    assert torch.equal(eager._accepted_total, other._accepted_total) and int(eager._accepted_total.sum()) > 0
    assert (other.images - eager.images).abs().max() < 1e-5
    assert (other.confidence - eager.confidence).abs().max() < 1e-5
    assert execution.runner(model, sources) is execution.runner(model, sources)  # made once per model


def _gradient(model, images, labels):
    x = images.detach().requires_grad_(True)
    (gradient,) = torch.autograd.grad(torch.nn.functional.cross_entropy(model(x), labels, reduction="sum"), x)
    return gradient


def test_folded_batchnorm_is_the_same_function_without_the_normalisations():
    model = make_cnn_with_batchnorm()
    images, _ = _batch()
    folded = fold_batchnorm(model, images[:1])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2  # the model is left alone
    with torch.no_grad():
        assert (folded(images) - model(images)).abs().max() < 1e-5
    labels = model(images).argmax(1)
    assert torch.allclose(_gradient(folded, images, labels), _gradient(model, images, labels), rtol=1e-4, atol=1e-6)


def test_timm_batchnorm_with_activation_keeps_its_activation():
    timm = pytest.importorskip("timm")
    model = timm.create_model("efficientnet_lite0", pretrained=False, num_classes=7).eval()
    for norm in (m for m in model.modules() if isinstance(m, nn.BatchNorm2d)):  # statistics that matter
        norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2)
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    folded = fold_batchnorm(model, images[:1])
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.ReLU6) for m in folded.modules()) == sum(
        isinstance(m, nn.ReLU6) for m in model.modules()) > 0
    with torch.no_grad():
        expected = model(images)
        assert (folded(images) - expected).abs().max() < 1e-4 * (1 + expected.abs().max())


def test_folding_refuses_a_model_in_training_mode_or_one_whose_convolution_output_is_used_twice():
    with pytest.raises(ValueError, match="eval mode.*0"):
        fold_batchnorm(make_cnn_with_batchnorm().train(), torch.rand(1, 3, 16, 16))

    class Shortcut(nn.Module):  # the convolution's output also skips its normalisation
        def __init__(self):
            super().__init__()
            self.conv, self.norm = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
            self.norm.running_mean.fill_(2.0)

        def forward(self, x):
            y = self.conv(x)
            return (self.norm(y) + y).mean((2, 3))

    with pytest.raises(ValueError, match="logits.*fold_batchnorm=False"):
        fold_batchnorm(Shortcut().eval(), torch.rand(1, 3, 16, 16))
    plain = make_tiny_cnn()
    assert fold_batchnorm(plain, torch.rand(1, 3, 16, 16)) is plain  # nothing to fold
    batch_statistics = nn.Sequential(nn.Conv2d(3, 3, 3), nn.BatchNorm2d(3, track_running_stats=False)).eval()
    assert fold_batchnorm(batch_statistics, torch.rand(2, 3, 16, 16)) is batch_statistics


def test_the_folded_model_is_made_once_and_again_when_the_weights_change():
    model = make_cnn_with_batchnorm()
    images = torch.rand(2, 3, 16, 16)
    execution = Execution(fold_batchnorm=True)
    first = execution.runner(model, images)
    assert execution.runner(model, images) is first
    with torch.no_grad():
        model[1].running_mean.add_(1.0)  # new statistics: the folded copy would be stale
    again = execution.runner(model, images)
    assert again is not first
    with torch.no_grad():
        assert (again(images) - model(images)).abs().max() < 1e-5


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
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Traversal.load(path, model)


def test_execution_options_reach_the_experiments_and_the_paper_preset_runs_tf32_convolutions_folded():
    assert preset("paper", "/data")[0].execution == Execution("tf32-conv", fold_batchnorm=True)  # new runs
    assert all(e.execution == Execution() for e in preset("offline"))
    args = build_parser().parse_args(["reproduce", "--precision", "bf16", "--compile", "--no-channels-last",
                                      "--fold-batchnorm"])
    assert {e.execution for e in experiments_from_args(args)} == {Execution("bf16", True, False, True)}
    experiment = experiments_from_args(args)[0]
    assert Experiment.from_dict(experiment.to_dict()) == experiment
    old = experiment.to_dict()
    del old["execution"]  # settings written before the option existed
    assert Experiment.from_dict(old).execution == Execution()
    assert dataclasses.replace(experiment, execution=Execution()) != experiment  # part of a run's identity


def test_the_tables_caption_names_every_option_that_differs_from_the_defaults():
    from blindspots_nb.protocol.tables import caption_notes

    plain, folded = preset("offline")[0], dataclasses.replace(
        preset("offline")[0], execution=Execution("bf16", compile=True, channels_last=False, fold_batchnorm=True))
    notes = caption_notes([plain], {})[0]
    assert ", precision fp32" in notes and not any(word in notes for word in ("compiled", "folded", "NCHW"))
    assert "precision bf16, compiled, batch norms folded, NCHW layout" in caption_notes([folded], {})[0]


def test_an_unknown_precision_on_the_command_line_is_one_clear_line(capsys):
    assert main(["reproduce", "--precision", "half", "--out-dir", "unused"]) == 2
    assert "unknown precision 'half'" in capsys.readouterr().err
