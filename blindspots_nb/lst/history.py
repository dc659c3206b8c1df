"""What a traversal gives back: :class:`History`, the quantities recorded along the way,
and :class:`LSTResult`, the blind spots with what the model says of them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .config import LSTConfig


@dataclass
class History:
    """What a traversal recorded, one row per recorded iteration.

    Every tensor has shape (R, B) (images: (R, B, C, H, W)), on the CPU.
    ``accepted`` is whether each sample's step *at* that iteration was accepted
    (True at iteration 0); ``accepted_total`` counts accepted steps so far.
    """

    iteration: list[int] = field(default_factory=list)
    source_confidence: list[torch.Tensor] = field(default_factory=list)
    target_confidence: list[torch.Tensor] = field(default_factory=list)
    distance: list[torch.Tensor] = field(default_factory=list)
    accepted: list[torch.Tensor] = field(default_factory=list)
    accepted_total: list[torch.Tensor] = field(default_factory=list)
    images: list[torch.Tensor] = field(default_factory=list)

    # the recorded quantities, one tensor per row (what a saved state's history holds)
    TENSOR_FIELDS = ("source_confidence", "target_confidence", "distance", "accepted",
                     "accepted_total", "images")

    def as_tensors(self) -> dict[str, torch.Tensor]:
        """Stacked view: ``iteration`` (R,) and each recorded quantity (R, B, ...)."""
        out = {"iteration": torch.tensor(self.iteration, dtype=torch.long)}
        for name in self.TENSOR_FIELDS:
            values = getattr(self, name)
            if values:
                out[name] = torch.stack(values)
        return out

    def state_dict(self) -> dict:
        return {"iteration": list(self.iteration),
                **{name: list(getattr(self, name)) for name in self.TENSOR_FIELDS}}

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls(**{name: list(state[name]) for name in ("iteration", *cls.TENSOR_FIELDS)})


@dataclass
class LSTResult:
    """Outcome of a traversal: blind spots and what the model says of them."""

    images: torch.Tensor              # (B, C, H, W) blind spots in [0, 1]
    confidence: torch.Tensor          # (B,) source-class confidence at the blind spots
    initial_confidence: torch.Tensor  # (B,) source-class confidence of the clean sources (p0 in the paper)
    target_confidence: torch.Tensor   # (B,) target-class confidence at the blind spots
    labels: torch.Tensor              # (B,) source classes
    target_labels: torch.Tensor       # (B,) target classes
    history: History
    config: LSTConfig
    iterations: int                   # iterations run
