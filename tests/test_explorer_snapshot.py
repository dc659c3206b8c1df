"""The explorer's snapshot of one moment on its own, from a traversal (no explorer, no
threads): each target's numbers, the copy of the history, the record's summary."""

import json
import math

import pytest
import torch

from blindspots_nb.explorer.snapshot import TARGET_ROLES, take_snapshot
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.models import wrap

from helpers import make_tiny_cnn

CLASSES = list("abcde")


@pytest.fixture
def traversal():
    torch.manual_seed(0)
    model = wrap(make_tiny_cnn(), mean=(0, 0, 0), std=(1, 1, 1), class_names=CLASSES, input_size=(3, 16, 16),
                 name="tiny")
    images = torch.rand(3, 3, 16, 16)
    sources = images[:1].expand(2, -1, -1, -1)
    labels = model(sources[:1]).argmax(1).expand(2)
    return Traversal(model, sources, labels, images[1:], LSTConfig(iterations=20, record_every=1)).step(6)


def test_each_target_holds_its_own_row_of_the_traversal(traversal):
    t = traversal
    snap = take_snapshot(t, CLASSES, ("s", "x", "y"), ("a", None, "c"), running=True)
    assert (snap.source_name, snap.source_class, snap.source_label, snap.iteration) == ("s", CLASSES[int(t.labels[0])],
                                                                                   "a", 6)
    assert snap.initial_confidence == pytest.approx(float(t.initial_confidence[0])) and snap.running
    torch.testing.assert_close(snap.source_image, t.sources[0])
    assert (snap.a, snap.b) == snap.targets
    for index, (state, name, label) in enumerate(zip(snap.targets, ("x", "y"), (None, "c"))):
        assert (state.target, state.target_label) == (name, label)
        assert state.target_class == CLASSES[int(t.target_labels[index])]
        torch.testing.assert_close(state.target_image, t.targets[index])
        torch.testing.assert_close(state.current_image, t.images[index])
        steps = torch.stack(t.history.accepted[1:])[:, index]  # each iteration's step (iteration 0 has none)
        assert state.accepted_steps == int(steps.sum())
        assert state.confidence == pytest.approx(float(t.confidence[index]))
        assert state.target_confidence == pytest.approx(float(t.target_confidence[index]))
        distance = float((t.targets[index] - t.images[index]).double().norm())
        assert state.distance_l2 == pytest.approx(distance, rel=1e-5)
        assert state.rmse_to_target == pytest.approx(distance / math.sqrt(3 * 16 * 16), rel=1e-5)


def test_the_snapshot_keeps_its_own_history(traversal):
    snap = take_snapshot(traversal, CLASSES, ("s", "x", "y"), (None, None, None))
    traversal.step(2)
    assert list(snap.result.history.iteration) == list(range(7))
    assert len(traversal.history.iteration) == 9


def test_the_summary_is_json_with_each_targets_numbers_under_its_role(traversal):
    snap = take_snapshot(traversal, CLASSES, ("s", "x", "y"), (None, None, "c"), running=True,
                         saliency=torch.ones(16, 16), saliency_method="saliency")
    summary = json.loads(json.dumps(snap.summary()))
    assert set(summary) == {"source_name", "source_class", "source_label", "iteration", "initial_confidence", "targets"}
    assert list(summary["targets"]) == list(TARGET_ROLES) == ["A", "B"]
    for role, state in zip(TARGET_ROLES, snap.targets):
        assert summary["targets"][role] == {
            "target": state.target, "target_class": state.target_class, "target_label": state.target_label,
            "accepted_steps": state.accepted_steps, "confidence": pytest.approx(state.confidence),
            "target_confidence": pytest.approx(state.target_confidence),
            "distance_l2": pytest.approx(state.distance_l2), "rmse_to_target": pytest.approx(state.rmse_to_target)}
