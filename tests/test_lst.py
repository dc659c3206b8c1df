import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from blindspots_nb.data import fonts_dataset
from blindspots_nb.execution import Execution
from blindspots_nb.lst import LSTConfig, Traversal, orthogonal_step, traverse, weights_sha256
from blindspots_nb.models import load_model
from helpers import make_tiny_cnn
from reference_lst import reference_traverse, released_style_steps


def _images(batch=4, seed=1, low=0.0, high=1.0, size=16):
    generator = torch.Generator().manual_seed(seed)
    return low + (high - low) * torch.rand(batch, 3, size, size, generator=generator)


def _gradient(model, images, labels):
    x = images.detach().clone().requires_grad_(True)
    F.cross_entropy(model(x), labels, reduction="sum").backward()
    return x.grad


def test_orthogonal_step_removes_gradient_component():
    g, d = torch.randn(6, 3, 8, 8, dtype=torch.float64), torch.randn(6, 3, 8, 8, dtype=torch.float64)
    step = orthogonal_step(g, d)
    relative = (g * step).flatten(1).sum(1).abs() / (g.flatten(1).norm(dim=1) * step.flatten(1).norm(dim=1))
    assert relative.max() < 1e-12
    zero = torch.zeros_like(g)
    assert torch.equal(orthogonal_step(zero, d), d)


def test_engine_step_is_orthogonal_to_the_model_gradient(tiny_cnn):
    # interior images, no noise, no parallel part: the move is eta * dx_perp, unclipped
    sources, targets = _images(seed=1, low=0.3, high=0.7), _images(seed=2, low=0.3, high=0.7)
    labels = tiny_cnn(sources).argmax(1)
    cfg = LSTConfig(step_size=1e-2, eps=0.0, init_noise=0.0, delta=1.0)
    t = Traversal(tiny_cnn, sources, labels, targets, cfg)
    before = t.images.clone()
    gradient = _gradient(tiny_cnn, before, labels)
    move = t.step(1).images - before
    assert move.abs().sum() > 0
    relative = (gradient * move).flatten(1).sum(1).abs() / (
        gradient.flatten(1).norm(dim=1) * move.flatten(1).norm(dim=1))
    assert relative.max() < 1e-5


def test_parallel_part_stays_in_box_and_images_in_unit_range(tiny_cnn):
    sources = (_images(seed=3) > 0.5).float()  # pixels at 0 and 1: clipping matters
    targets = (_images(seed=4) > 0.5).float()
    labels = tiny_cnn(sources).argmax(1)
    cfg = LSTConfig(step_size=0.05, eps=0.01, init_noise=0.1, delta=0.5)
    t = Traversal(tiny_cnn, sources, labels, targets, cfg)
    for _ in range(10):
        t.step(5)
        assert t.parallel.abs().max() <= cfg.eps
        assert t.images.min() >= 0 and t.images.max() <= 1
    assert t.parallel.abs().max() == pytest.approx(cfg.eps)  # the box is reached and binds


class PeakedAt(nn.Module):
    """Class 0 is certain near ``center`` and fades away from it: any long step drops it."""

    def __init__(self, center, sharpness=50.0):
        super().__init__()
        self.register_buffer("center", center)
        self.sharpness = sharpness

    def forward(self, x):
        distance = (x - self.center).flatten(1).pow(2).mean(1)
        return torch.stack([3 - self.sharpness * distance, torch.zeros_like(distance)], dim=1)


def test_rejected_samples_do_not_move():
    center = torch.full((3, 8, 8), 0.5)
    model = PeakedAt(center)
    sources = center.expand(2, 3, 8, 8).clone()
    targets = torch.stack([torch.ones(3, 8, 8), center + 0.01])  # far target, near target
    labels = torch.zeros(2, dtype=torch.long)
    cfg = LSTConfig(step_size=0.5, eps=0.0, init_noise=0.0, delta=0.2, record_every=1)
    t = Traversal(model, sources, labels, targets, cfg)
    start = t.images.clone()
    t.step(5)
    history = t.history.as_tensors()
    assert torch.equal(t.images[0], start[0])  # every candidate of sample 0 was rejected
    assert not history["accepted"][1:, 0].any()
    assert history["accepted"][1:, 1].all()
    assert not torch.equal(t.images[1], start[1])
    assert (t.initial_confidence - t.confidence).max() < cfg.delta


@pytest.mark.parametrize("dtype, step_size, atol", [
    (torch.float64, 0.3, 1e-9),   # large steps: some candidates are rejected
    (torch.float32, 0.05, 1e-5),  # the usual precision
])
def test_fused_engine_matches_two_forward_reference(dtype, step_size, atol):
    model = make_tiny_cnn(sharpness=300.0).to(dtype)
    sources, targets = _images(seed=5).to(dtype), _images(seed=6).to(dtype)
    labels = model(sources).argmax(1)
    cfg = LSTConfig(step_size=step_size, iterations=40, delta=0.05, eps=5e-3, init_noise=4 / 255, seed=3,
                    record_every=1)
    expected = reference_traverse(model, sources, labels, targets, cfg)
    result = traverse(model, sources, labels, targets, cfg)
    assert (result.images - expected).abs().max() < atol
    if step_size == 0.3:  # the acceptance test did bite, so the comparison covers rejections
        assert not result.history.as_tensors()["accepted"].all()


def test_the_released_style_baseline_walks_where_the_engine_walks():
    """Same algorithm, two forward passes per step (the speed benchmark's baseline): its
    ratio compares like with like."""
    model = make_tiny_cnn(sharpness=3.0)
    generator = torch.Generator().manual_seed(0)
    sources, targets = torch.rand(2, 4, 3, 16, 16, generator=generator)
    labels = model(sources).argmax(1)
    config = LSTConfig(iterations=6, step_size=0.05, init_noise=0.0)
    engine = Traversal(model, sources, labels, targets, config).run()
    baseline = released_style_steps(model, sources, labels, targets, engine.initial_confidence, config, 6)
    assert (baseline - engine.images).abs().max() < 1e-5


@pytest.mark.parametrize("format_1", [False, True], ids=["current format", "format 1"])
def test_save_load_resume_is_identical_to_uninterrupted(tmp_path, tiny_cnn, format_1):
    sources, targets = _images(seed=7), _images(seed=8)
    labels = tiny_cnn(sources).argmax(1)
    cfg = LSTConfig(step_size=0.05, iterations=30, delta=0.1, eps=5e-3, record_every=5, seed=11)
    uninterrupted = Traversal(tiny_cnn, sources, labels, targets, cfg).run()

    paused = Traversal(tiny_cnn, sources, labels, targets, cfg).step(12)
    path = paused.save(tmp_path / "run.pt")
    if format_1:  # a file saved before the model's sha256 and logits were kept
        state = torch.load(path, weights_only=True)
        torch.save({**{k: v for k, v in state.items() if k not in ("weights_sha256", "source_logits")},
                    "format_version": 1}, path)
    resumed = Traversal.load(path, make_tiny_cnn()).run()

    assert resumed.iteration == uninterrupted.iteration == 30
    assert torch.equal(resumed.images, uninterrupted.images)
    assert torch.equal(resumed.parallel, uninterrupted.parallel)
    for key, value in uninterrupted.history.as_tensors().items():
        assert torch.equal(resumed.history.as_tensors()[key], value), key


def test_load_rejects_other_models_and_foreign_files(tmp_path, tiny_cnn):
    sources, targets = _images(seed=9), _images(seed=10)
    labels = tiny_cnn(sources).argmax(1)
    path = Traversal(tiny_cnn, sources, labels, targets, LSTConfig(iterations=3)).step(2).save(tmp_path / "t.pt")
    with pytest.raises(ValueError, match="does not match"):
        Traversal.load(path, make_tiny_cnn(seed=1))
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a saved blindspots_nb Traversal"):
        Traversal.load(tmp_path / "other.pt", tiny_cnn)
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a saved blindspots_nb Traversal"):
        Traversal.load(tmp_path / "text.pt", tiny_cnn)
    with pytest.raises(FileNotFoundError):
        Traversal.load(tmp_path / "missing.pt", tiny_cnn)


def test_load_refuses_another_model_that_the_confidence_cannot_tell_apart(tmp_path):
    normal, robust = load_model("fonts_cnn"), load_model("fonts_cnn_at")
    glyphs = fonts_dataset("test", n=20, seed=0, size=32)
    sources, labels, targets = glyphs.images[[13, 17]], glyphs.labels[[13, 17]], glyphs.images[[2, 4]]
    with torch.no_grad():
        normal_p0, robust_p0 = (m(sources).softmax(1).gather(1, labels[:, None]) for m in (normal, robust))
    assert (normal_p0 - robust_p0).abs().max() < 1e-4  # both saturated: the source confidence cannot tell
    path = Traversal(normal, sources, labels, targets, LSTConfig(iterations=4)).step(2).save(tmp_path / "t.pt")
    with pytest.raises(ValueError, match=r"t\.pt: .*parameters and buffers differ"):
        Traversal.load(path, robust)
    state = torch.load(path, weights_only=True)
    torch.save({**state, "weights_sha256": None}, tmp_path / "unhashed.pt")  # as saved with a plain function
    with pytest.raises(ValueError, match=r"logits .*differ.*more than rtol = 0.01"):
        Traversal.load(tmp_path / "unhashed.pt", robust)
    assert Traversal.load(tmp_path / "unhashed.pt", normal).iteration == 2


def test_weights_sha256_identifies_the_weights_given_not_their_place_or_execution(tmp_path):
    digest = weights_sha256(make_tiny_cnn())
    assert weights_sha256(make_tiny_cnn().to(memory_format=torch.channels_last)) == digest
    assert weights_sha256(make_tiny_cnn(seed=1)) != digest
    nudged = make_tiny_cnn()
    with torch.no_grad():
        nudged[0].bias[0] = torch.nextafter(nudged[0].bias[0], torch.tensor(1.0))  # one float step
    assert weights_sha256(nudged) != digest
    assert weights_sha256(lambda x: x) is None
    # folded: the traversal runs a copy without batch norms, but identifies the model given
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 14 * 14, 5)).eval()
    sources, targets = _images(seed=24), _images(seed=25)
    folded = Execution(fold_batchnorm=True)
    path = Traversal(model, sources, model(sources).argmax(1), targets, execution=folded).step(1).save(tmp_path / "t.pt")
    assert torch.load(path, weights_only=True)["weights_sha256"] == weights_sha256(model)
    assert Traversal.load(path, model).iteration == 1


def test_end_to_end_reaches_target_keeping_confidence(tiny_cnn):
    sources, targets = _images(seed=12), _images(seed=13)
    labels = tiny_cnn(sources).argmax(1)
    target_labels = tiny_cnn(targets).argmax(1)
    # eps small against step_size: a saturated parallel part would hold the walk at ~eps/step_size
    cfg = LSTConfig(step_size=2e-2, iterations=300, eps=5e-5, record_every=50)
    result = traverse(tiny_cnn, sources, labels, targets, cfg)
    rmse = (result.images - targets).flatten(1).norm(dim=1) / (3 * 16 * 16) ** 0.5
    start_rmse = (sources - targets).flatten(1).norm(dim=1) / (3 * 16 * 16) ** 0.5
    assert rmse.max() < 0.04 and start_rmse.min() > 0.3
    assert ((result.initial_confidence - result.confidence) < cfg.delta).all()
    assert torch.equal(result.target_labels, target_labels)
    distance = result.history.as_tensors()["distance"]
    assert result.history.iteration == [0, 50, 100, 150, 200, 250, 300]
    assert (distance[-1] < 0.1 * distance[0]).all()


def test_no_graph_or_parameter_gradients_are_kept(tiny_cnn):
    sources, targets = _images(seed=14), _images(seed=15)
    labels = tiny_cnn(sources).argmax(1)
    t = Traversal(tiny_cnn, sources, labels, targets, LSTConfig()).step(3)
    assert t.images.grad_fn is None and not t.images.requires_grad
    assert all(p.grad is None for p in tiny_cnn.parameters())
    assert not t.history.images  # images are recorded only on request


def test_deterministic_given_seed(tiny_cnn):
    sources, targets = _images(seed=16), _images(seed=17)
    labels = tiny_cnn(sources).argmax(1)
    cfg = LSTConfig(iterations=10, seed=5)
    a = traverse(tiny_cnn, sources, labels, targets, cfg).images
    b = traverse(tiny_cnn, sources, labels, targets, cfg).images
    c = traverse(tiny_cnn, sources, labels, targets, LSTConfig(iterations=10, seed=6)).images
    assert torch.equal(a, b) and not torch.equal(a, c)


NAN_IMAGES = torch.rand(4, 3, 16, 16)
NAN_IMAGES[2, 1, 5, 5] = float("nan")


@pytest.mark.parametrize("change, message", [
    (dict(targets=torch.rand(2, 3, 16, 16)), "targets must have the sources' shape"),
    (dict(sources=torch.rand(4, 3, 16, 16) * 255), r"pixels in \[0, 1\]"),
    (dict(labels=torch.tensor([0, 1])), "one label per source"),
    (dict(labels=torch.tensor([0, 1, 2, 7])), r"labels must lie in \[0, 5\)"),
    (dict(sources=torch.rand(3, 16, 16)), "must be a batch"),
    (dict(sources=NAN_IMAGES), "sources hold 1 NaN or infinite pixels"),
    (dict(targets=torch.rand(4, 3, 16, 16).index_fill(0, torch.tensor([1]), float("inf"))),
     "targets hold 768 NaN or infinite pixels"),
    (dict(sources=torch.rand(0, 3, 16, 16), targets=torch.rand(0, 3, 16, 16), labels=torch.tensor([], dtype=torch.long)),
     "sources hold no images"),
    (dict(labels=[0, 1, 2.7, 3]), r"labels .*got torch.float32 values \[0.0, 1.0, 2.7"),
    (dict(labels=torch.tensor([True, False, True, False])), "labels must be integer.*got torch.bool"),
    (dict(target_labels=torch.tensor([1.0, 2.0, 3.0, 4.0])), "target_labels must be integer class indices"),
    (dict(target_labels=torch.tensor([1, 2, 3, 5])), r"target_labels must lie in \[0, 5\)"),
    (dict(sources=torch.rand(4, 3, 16, 16, dtype=torch.float64)),
     r"sources are torch.float64 .*\.to\(torch.float32\)"),
])
def test_bad_inputs_get_clear_errors(tiny_cnn, change, message):
    args = dict(sources=torch.rand(4, 3, 16, 16), labels=torch.tensor([0, 1, 2, 3]),
                targets=torch.rand(4, 3, 16, 16), target_labels=None)
    args.update(change)
    with pytest.raises(ValueError, match=message):
        Traversal(tiny_cnn, args["sources"], args["labels"], args["targets"], target_labels=args["target_labels"])


@pytest.mark.parametrize("change", [
    dict(delta=2), dict(delta=0), dict(init_noise=5), dict(init_noise=-0.1),
    dict(step_size=1e9), dict(step_size=0), dict(step_size=float("nan")), dict(eps=-1e-3), dict(eps=1.5),
], ids=lambda change: ",".join(f"{k}={v}" for k, v in change.items()))
def test_config_refuses_values_out_of_range(change):
    (name, value), = change.items()
    interval = r"\(0, 1\]" if name in ("delta", "step_size") else r"\[0, 1\]"
    with pytest.raises(ValueError, match=rf"LSTConfig.{name} .*{interval}.*got {re.escape(repr(value))}"):
        LSTConfig(**change)


def test_config_accepts_the_ends_of_each_range_and_refuses_other_types():
    LSTConfig(delta=1, step_size=1, eps=0, init_noise=0)
    LSTConfig(eps=1, init_noise=1.0)
    with pytest.raises(ValueError, match="iterations"):
        LSTConfig(iterations=2.5)
    with pytest.raises(ValueError, match="step_size"):
        LSTConfig(step_size="0.1")


@pytest.mark.parametrize("change, message", [
    (dict(delta=True), r"LSTConfig.delta .*number, got True \(a bool\)"),
    (dict(step_size="0.1"), r"LSTConfig.step_size .*number, got '0.1' \(a str\)"),
    (dict(iterations="100"), r"LSTConfig.iterations .*number, got '100' \(a str\)"),
    (dict(record_every=False), r"LSTConfig.record_every .*number, got False \(a bool\)"),
    (dict(iterations=np.float64(100)), r"LSTConfig.iterations .*integer, got np.float64\(100.0\)"),
    (dict(seed=2**64), r"LSTConfig.seed .*\[0, 2\*\*64 - 1\].*got 18446744073709551616"),
    (dict(seed=-1), r"LSTConfig.seed .*\[0, 2\*\*64 - 1\].*got -1"),
], ids=lambda value: ",".join(f"{k}={v!r}" for k, v in value.items()) if isinstance(value, dict) else "")
def test_config_refuses_non_numbers_and_seeds_the_generator_cannot_take(change, message):
    with pytest.raises(ValueError, match=message):
        LSTConfig(**change)


def test_config_takes_numpy_numbers_as_python_ones():
    config = LSTConfig(step_size=np.float32(0.01), iterations=np.int64(100), delta=np.float64(0.5),
                       seed=np.uint64(2**64 - 1))
    values = config.to_dict()
    assert [type(values[k]) for k in ("step_size", "iterations", "delta", "seed")] == [float, int, float, int]
    assert (values["step_size"], values["iterations"], values["seed"]) == (pytest.approx(0.01), 100, 2**64 - 1)
    assert json.loads(json.dumps(values)) == values
    torch.Generator().manual_seed(config.seed)  # the largest seed the config takes seeds the generator



def test_the_config_imports_without_torch():
    """The command line builds its options from LSTConfig; its --help must not wait for torch."""
    code = "import sys, blindspots_nb.lst.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

class NaNAt(nn.Module):
    """The tiny CNN, but sample 1 gets NaN logits at the ``at``-th call to forward
    (counting from 0) and finite ones again afterwards."""

    def __init__(self, at):
        super().__init__()
        self.net, self.at, self.calls = make_tiny_cnn(), at, 0

    def forward(self, x):
        logits = self.net(x)
        if self.calls == self.at:
            logits = logits.index_fill(0, torch.tensor([1]), float("nan"))
        self.calls += 1
        return logits


# Traversal's forward calls: the clean sources, the targets (for their labels), the noisy start
# (iteration 0), then one per iteration: the call 2 + k is iteration k.
@pytest.mark.parametrize("record_every, stops_at", [(0, 10), (3, 6)])
def test_nan_logits_stop_the_traversal_naming_the_first_iteration(record_every, stops_at):
    model = NaNAt(at=2 + 4)
    sources, targets = _images(seed=18), _images(seed=19)
    labels = model.net(sources).argmax(1)
    t = Traversal(model, sources, labels, targets, LSTConfig(record_every=record_every))
    with pytest.raises(RuntimeError, match="NaN or infinite logits at iteration 4 "):
        t.step(10)  # checked at the recorded iterations and at the end of step()
    assert t.iteration == stops_at
    with pytest.raises(RuntimeError, match="at iteration 4 "):
        t.step(1)  # the traversal stays stopped


def test_nan_logits_at_the_start_are_refused():
    sources, targets = _images(seed=18), _images(seed=19)
    labels = make_tiny_cnn()(sources).argmax(1)
    with pytest.raises(ValueError, match="NaN or infinite logits for the sources"):
        Traversal(NaNAt(at=0), sources, labels, targets)
    with pytest.raises(RuntimeError, match="NaN or infinite logits at iteration 0 "):
        Traversal(NaNAt(at=2), sources, labels, targets)  # at the noisy start


def _edited(state, key, value):
    state = dict(state)
    state[key] = value(state[key]) if callable(value) else value
    return state


@pytest.mark.parametrize("key, value, message", [
    ("iteration", -1, r"iteration must be an integer >= 0, got -1"),
    ("iteration", 2.0, r"iteration must be an integer >= 0, got 2.0"),
    ("images", lambda x: x.index_fill(0, torch.tensor([0]), float("nan")), "images are not all finite"),
    ("images", lambda x: x[:2], r"images have shape \(2, 3, 16, 16\)"),
    ("gradient", lambda x: x[..., :8], "gradient have shape"),
    ("labels", lambda x: x[:3], r"labels have shape \(3,\)"),
    ("labels", lambda x: x.float(), "labels must be integers"),
    ("target_labels", lambda x: x + 5, r"target_labels must be integers in \[0, 4\]"),
    ("probs", lambda x: x[:2], r"probs have shape \(2, 5\), not \(4, classes\)"),
    ("initial_confidence", lambda x: x * 3, "initial_confidence leave"),
    ("accepted_total", lambda x: x + 100, r"accepted_total must be integers in \[0, 2\]"),
    ("config", lambda c: {**c, "delta": 2}, r"config is invalid \(LSTConfig.delta"),
    ("history", lambda h: {**h, "iteration": h["iteration"][:1]}, "history fields disagree in length"),
    ("rng_state", torch.zeros(3, dtype=torch.uint8), "rng_state is not a random generator's state"),
    ("sources", None, r"\['sources'\] are not tensors"),
    ("parallel", lambda x: torch.full_like(x, 0.5),
     r"parallel part leaves its box.*reaches 0.5"),
    ("gradient", lambda x: x * 1e30, r"gradient is not the model's gradient .*\(sample 0: "),
    ("gradient", lambda x: -x, "gradient is not the model's gradient"),
    ("probs", lambda x: x.roll(1, 1), "probs are not the model's probabilities"),
    ("accepted", lambda x: torch.full_like(x, 7, dtype=torch.long), "accepted flags are torch.int64"),
    ("accepted_total", lambda x: (x + 1) % 3, r"accepted_total, .*cannot follow \[2, 2, 2, 2\] at iteration 2"),
    ("iteration", 10**9, "iteration 1000000000 does not fit its history"),
    ("history", lambda h: {**h, "accepted_total": [t + 1 for t in h["accepted_total"]]},
     r"history's accepted_total at iteration 0, \[1, 1, 1, 1\]"),
    ("history", lambda h: {**h, "iteration": [0, 2, 1]}, r"history's iterations must rise from 0"),
    ("history", lambda h: {**h, "distance": [d.long() for d in h["distance"]]},
     "history's distance are not all floating"),
    ("source_logits", lambda x: x[:, :3], r"source_logits have shape \(4, 3\)"),
    ("weights_sha256", "abc", "its weights_sha256 is not a sha256"),
])
def test_load_refuses_inconsistent_states(tmp_path, tiny_cnn, key, value, message):
    sources, targets = _images(seed=20), _images(seed=21)
    labels = tiny_cnn(sources).argmax(1)
    path = Traversal(tiny_cnn, sources, labels, targets, LSTConfig(record_every=1)).step(2).save(tmp_path / "t.pt")
    state = torch.load(path, weights_only=True)
    torch.save(_edited(state, key, value), tmp_path / "edited.pt")
    with pytest.raises(ValueError, match=f"edited.pt .*inconsistent.*{message}"):
        Traversal.load(tmp_path / "edited.pt", tiny_cnn)
    del state[key]
    torch.save(state, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=rf"missing.pt .*lacks \['{key}'\]"):
        Traversal.load(tmp_path / "missing.pt", tiny_cnn)


def test_steps_read_nothing_back_from_the_device_but_the_nan_check(tiny_cnn, monkeypatch):
    """On a GPU, reading a tensor's value on the host (int(), .item(), .cpu(), ...) waits for
    the device; between recorded iterations, a step() call does so once, whatever its n."""
    sources, targets = _images(seed=22), _images(seed=23)
    t = Traversal(tiny_cnn, sources, tiny_cnn(sources).argmax(1), targets, LSTConfig(record_every=0))
    reads = []
    for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist", "cpu", "numpy"):
        def counted(self, *args, _original=getattr(torch.Tensor, name), _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(torch.Tensor, name, counted)
    t.step(7)
    assert reads == ["__int__"]
