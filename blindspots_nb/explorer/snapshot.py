"""The live explorer at one moment: the source, and the traversal towards each of its
targets A and B, copied out of a :class:`~blindspots_nb.lst.Traversal` into plain values
(:func:`take_snapshot`); what a view draws and an export's record holds. The saliency map
of the current point, kept while the point stays (:class:`MapAtPoint`)."""

from __future__ import annotations

import dataclasses

import torch

from ..analysis.metrics import rmse
from ..analysis.saliency import attribution_maps
from ..lst import History, LSTResult, Traversal
from ..tools.tensors import l2_distance

TARGET_ROLES = ("A", "B")  # the targets of the explorer's traversal, in its batch's order


@dataclasses.dataclass(frozen=True)
class TargetState:
    """The traversal from the source towards one target at one moment."""

    target: str  # the target's image name
    target_class: str  # the model's class of the target
    target_label: str | None  # the image source's label of the target (a class name), None where unknown
    target_image: torch.Tensor  # (C, H, W) on the CPU
    current_image: torch.Tensor  # the current point towards the target
    accepted_steps: int  # up to the last recorded iteration (every one with record_every=1)
    confidence: float  # source-class confidence at the current point
    target_confidence: float  # target-class confidence at the current point
    distance_l2: float  # from the current point to the target
    rmse_to_target: float


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """The explorer at one moment, copied under its lock."""

    source_name: str  # the source's image name
    source_class: str  # the model's class of the source, which the traversal keeps
    source_label: str | None  # the image source's label of the source, None where unknown
    source_image: torch.Tensor  # (C, H, W) on the CPU
    iteration: int
    initial_confidence: float  # the source-class confidence of the clean source
    targets: tuple[TargetState, TargetState]  # towards target A, towards target B
    result: LSTResult  # of both traversals (index 0: towards A, 1: towards B), its own copy of the history
    running: bool
    saliency: torch.Tensor | None = None  # (H, W) of the current point towards A, if asked for
    saliency_method: str | None = None  # the attribution method of that map

    @property
    def a(self) -> TargetState:
        """The traversal towards target A."""
        return self.targets[0]

    @property
    def b(self) -> TargetState:
        """The traversal towards target B."""
        return self.targets[1]

    def summary(self) -> dict:
        """The names and numbers of this moment, JSON-serialisable (no images, no history,
        nothing of a view's: the map, whether it runs); each target under its role."""
        return {**_plain_values(self, exclude=("running", "saliency", "saliency_method")),
                "targets": {role: _plain_values(state) for role, state in zip(TARGET_ROLES, self.targets)}}


def take_snapshot(traversal: Traversal, class_names, names: tuple[str, str, str],
                  labels: tuple[str | None, str | None, str | None], running: bool = False,
                  saliency: torch.Tensor | None = None, saliency_method: str | None = None) -> Snapshot:
    """``traversal`` (one source twice, towards targets A and B) now, with the image names
    and the image source's labels of its source, A and B; the caller holds whatever lock
    keeps ``traversal`` still."""
    t = traversal
    result = dataclasses.replace(t.result(), history=History.from_state_dict(t.history.state_dict()))
    current, target = t.images.cpu(), t.targets.cpu()
    distance, rmse_to_target = l2_distance(target, current), rmse(current, target)
    targets = tuple(TargetState(
        target=names[1 + i], target_class=class_names[int(t.target_labels[i])], target_label=labels[1 + i],
        target_image=target[i], current_image=current[i], accepted_steps=int(t.history.accepted_total[-1][i]),
        confidence=float(t.confidence[i]), target_confidence=float(t.target_confidence[i]),
        distance_l2=float(distance[i]), rmse_to_target=float(rmse_to_target[i])) for i in range(len(TARGET_ROLES)))
    return Snapshot(source_name=names[0], source_class=class_names[int(t.labels[0])], source_label=labels[0],
                    source_image=t.sources[0].cpu(), iteration=t.iteration,
                    initial_confidence=float(t.initial_confidence[0]), targets=targets, result=result,
                    running=running, saliency=saliency, saliency_method=saliency_method)


def _plain_values(instance, exclude: tuple[str, ...] = ()) -> dict:
    """The fields of a dataclass ``instance`` that JSON holds as they are (text, numbers, None)."""
    values = {field.name: getattr(instance, field.name) for field in dataclasses.fields(instance)
              if field.name not in exclude}
    return {name: value for name, value in values.items() if isinstance(value, (str, int, float, type(None)))}


class MapAtPoint:
    """The map of a traversal's current point towards A for its source class by one method
    (:func:`~blindspots_nb.analysis.saliency.attribution_maps`), kept until the point moves
    or another method is asked for, so that a redraw costs nothing."""

    def __init__(self):
        self._kept = (None, None, None, None)  # traversal, iteration, method, map

    def __call__(self, model, traversal: Traversal, method: str) -> torch.Tensor:
        kept, iteration, kept_method, saliency = self._kept
        if kept is not traversal or (iteration, kept_method) != (traversal.iteration, method):
            saliency = attribution_maps(model, traversal.images[:1], traversal.labels[:1], method)[0]
            self._kept = traversal, traversal.iteration, method, saliency
        return saliency
