"""The CUDA paths against the CPU: LST at each precision, compiled, channels-last and with
folded batch norms, the explorer's triangle in one pass. All marked ``gpu`` (skipped without
CUDA); ``pytest -m gpu`` or ``benchmarks/gpu_check.py`` runs them where there is a GPU.

A GPU's float32 kernels sum in other orders than the CPU's; the model here is not saturated
(sharpness 3), so a float32 difference of a few units in the last place stays that size over
the few iterations (a saturated softmax's gradient direction would amplify it: docs/algorithm.md).
"""

import pytest
import torch

from blindspots_nb.data import TensorImages
from blindspots_nb.execution import Execution
from blindspots_nb.explorer.state import Explorer
from blindspots_nb.analysis.geometry import triangle_confidence
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import wrap

from helpers import make_cnn_with_batchnorm, make_tiny_cnn

pytestmark = pytest.mark.gpu

CONFIG = LSTConfig(iterations=8, step_size=0.05, init_noise=0.0, record_every=4)
# float32 on two devices: ~100 units in the last place of values of order 1 (eps 1.2e-7), what
# reordered sums of a few hundred products and 8 steps that carry them can give
FLOAT32_ACROSS_DEVICES = 1e-5
# TF32 keeps 10 bits of mantissa (2^-11 = 4.9e-4 per product), bfloat16 7 (2^-8 = 3.9e-3)
REDUCED = {"tf32-conv": 5e-3, "tf32": 5e-3, "bf16": 2e-2}


def _batch(seed=0, size=4):
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(size, 3, 16, 16, generator=generator), torch.rand(size, 3, 16, 16, generator=generator)


def _traverse(model, device, execution=Execution()):
    sources, targets = (x.to(device) for x in _batch())
    model = model.to(device)
    labels = model(sources).argmax(1)
    return Traversal(model, sources, labels, targets, CONFIG, execution=execution).run()


@pytest.mark.parametrize("precision", ["fp32", "tf32-conv", "tf32", "bf16"])
def test_lst_on_cuda_at_each_precision_walks_where_the_cpu_walks(precision):
    model = make_tiny_cnn(sharpness=3.0)
    cpu = _traverse(model, "cpu")
    cuda = _traverse(model, "cuda", Execution(precision))
    assert cuda.images.is_cuda and cuda.images.dtype == torch.float32
    tolerance = REDUCED.get(precision, FLOAT32_ACROSS_DEVICES)
    assert (cuda.images.cpu() - cpu.images).abs().max() < tolerance
    assert (cuda.confidence.cpu() - cpu.confidence).abs().max() < tolerance
    assert bool((cuda.initial_confidence - cuda.confidence < CONFIG.delta).all())  # still on the level set


@pytest.mark.parametrize("option", [{"compile": True}, {"fold_batchnorm": True}, {"channels_last": False},
                                    {"compile": True, "fold_batchnorm": True}])
def test_compiled_folded_or_nchw_lst_on_cuda_gives_the_cpus_blind_spots(option):
    model = make_cnn_with_batchnorm(seed=1)
    cpu = _traverse(model, "cpu")
    cuda = _traverse(model, "cuda", Execution(**option))
    assert (cuda.images.cpu() - cpu.images).abs().max() < FLOAT32_ACROSS_DEVICES
    assert (cuda.confidence.cpu() - cpu.confidence).abs().max() < FLOAT32_ACROSS_DEVICES


def test_the_explorer_steps_on_cuda_and_draws_the_triangle_of_its_grid_in_one_pass():
    model = wrap(make_tiny_cnn(sharpness=3.0), mean=(0, 0, 0), std=(1, 1, 1), class_names=list("abcde"),
                 input_size=(3, 16, 16), name="tiny")
    torch.manual_seed(0)
    images = TensorImages(torch.rand(4, 3, 16, 16), torch.full((4,), -1), [], list("wxyz"))
    explorer = Explorer(model, image_source=images, source_name="w", target="x", target_b="y", device="cuda",
                        config=LSTConfig(iterations=30, record_every=1))
    explorer.step(10)
    triangle = explorer.live_triangle
    assert explorer.traversal.images.is_cuda and triangle is not None and triangle.iteration == 10
    t = explorer.traversal
    on_cpu = triangle_confidence(model.cpu(), t.sources[0].cpu(), t.images[0].cpu(), t.images[1].cpu(),
                                 int(t.labels[0]))
    assert (triangle.confidence.cpu() - on_cpu).abs().max() < FLOAT32_ACROSS_DEVICES
