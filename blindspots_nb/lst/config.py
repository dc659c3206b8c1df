"""LST's hyperparameters: :class:`LSTConfig`, their defaults, ranges and checks.

Light to import (no torch): the command line builds its options from these fields, and
its ``--help`` must not wait for torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..tools.validation import MAX_SEED, plain_number

# The range of each real hyperparameter: (low, low included, high) and why.
_RANGES = {
    "step_size": (0.0, False, 1.0, "a fraction of the step towards the target; above 1 it overshoots"),
    "delta": (0.0, False, 1.0, "a drop of confidence, a probability"),
    "eps": (0.0, True, 1.0, "a box on changes of pixels in [0, 1]"),
    "init_noise": (0.0, True, 1.0, "a width of noise on pixels in [0, 1]"),
}


@dataclass(frozen=True)
class LSTConfig:
    """Hyperparameters of LST. Defaults are those behind the paper's ImageNet tables.

    step_size: eta in (0, 1], fraction of the orthogonal step towards the target per iteration.
    iterations: T, number of iterations a full traversal runs.
    delta: in (0, 1]; a candidate is rejected when it drops source-class confidence by delta or more.
    eps: in [0, 1], l_inf box of the accumulated parallel (confidence-raising) part.
    init_noise: in [0, 1], width a of the uniform noise added to the source at the start.
    record_every: history is recorded every this many iterations (0: start and end only).
    record_images: also keep the images at each recorded step (memory grows).
    seed: seed of the initial noise, in [0, 2**64 - 1].

    Numbers may be numpy scalars: they are kept as Python ones (the config goes into JSON).
    """

    step_size: float = 1e-2
    iterations: int = 400
    delta: float = 0.2
    eps: float = 2e-3
    init_noise: float = 4 / 255
    record_every: int = 20
    record_images: bool = False
    seed: int = 0

    def __post_init__(self):
        for name, (low, closed, high, meaning) in _RANGES.items():
            value = plain_number(f"LSTConfig.{name}", getattr(self, name))
            if not ((low <= value if closed else low < value) and value <= high):
                interval = f"{'[' if closed else '('}{low:g}, {high:g}]"
                raise ValueError(f"LSTConfig.{name} must lie in {interval} ({meaning}), got {getattr(self, name)!r}")
            object.__setattr__(self, name, value)
        for name, high in (("iterations", None), ("record_every", None), ("seed", MAX_SEED)):
            value = plain_number(f"LSTConfig.{name}", getattr(self, name), integral=True)
            if value < 0 or (high is not None and value > high):
                accepted = (">= 0" if high is None else
                            "in [0, 2**64 - 1] (the seeds torch.Generator.manual_seed takes)")
                raise ValueError(f"LSTConfig.{name} must be an integer {accepted}, got {value!r}")
            object.__setattr__(self, name, value)
        if not isinstance(self.record_images, bool):
            raise ValueError(f"LSTConfig.record_images must be True or False, got {self.record_images!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
