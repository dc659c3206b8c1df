"""The explorer's live triangle: source-class confidence over the triangle (source,
blind spot A, blind spot B) at a traversal's current points, the image at any point of
it, and when a run redraws it.

Computing only, with the functions the protocol's Table 2 uses
(:mod:`blindspots_nb.analysis.geometry`); :mod:`.view` draws the results.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from typing import Callable

import torch

from ..analysis.geometry import (grid_coordinates, stats_from_confidence, triangle_confidence, triangle_grid,
                                 triangle_shape)
from ..execution import Execution

CORNER_NAMES = ("source", "blind spot A", "blind spot B")
# The most divisions per edge of a triangle's grid: (d + 1)(d + 2) / 2 points, each an image
# through the model, so 100 are 5151 images (seconds for a small CNN on a CPU, minutes for
# an ImageNet model) and 10000 would be 50 million.
MAX_DIVISIONS = 100


def checked_divisions(divisions) -> int:
    """``divisions`` of a triangle's grid as an int from 1 to :data:`MAX_DIVISIONS`, or a
    ValueError saying what is accepted and why."""
    if isinstance(divisions, bool) or not isinstance(divisions, numbers.Real) \
            or not math.isfinite(divisions) or int(divisions) != divisions or divisions < 1:
        raise ValueError(f"the triangle's grid needs a whole number of divisions >= 1, got {divisions!r}")
    if divisions > MAX_DIVISIONS:
        raise ValueError(f"the triangle's grid takes at most {MAX_DIVISIONS} divisions per edge, got {divisions:g}: "
                         f"each of its (d + 1)(d + 2) / 2 points is an image through the model, "
                         f"{_points(MAX_DIVISIONS)} at {MAX_DIVISIONS} divisions and {_points(int(divisions)):,} at "
                         f"{divisions:g}")
    return int(divisions)


def _points(divisions: int) -> int:
    return (divisions + 1) * (divisions + 2) // 2


@dataclasses.dataclass(frozen=True)
class Triangle:
    """Source-class confidence over the triangle (source, A, B) at one iteration of a traversal."""

    iteration: int
    divisions: int
    weights: torch.Tensor      # (N, 3) barycentric weights (source, A, B) of the grid: geometry.triangle_grid
    confidence: torch.Tensor   # (N,) source-class confidence at the grid points, on the CPU
    shape: torch.Tensor        # (3, 2) the corners in the triangle's true shape: geometry.triangle_shape
    coordinates: torch.Tensor  # (N, 2) the grid points in that shape: geometry.grid_coordinates
    corners: tuple             # the three corner images (C, H, W) on the CPU: source, A, B
    source_class: str
    stats: dict                # Table-2 statistics (geometry.stats_from_confidence) as floats
    seconds: float             # what computing it took

    @property
    def points(self) -> int:
        return len(self.confidence)

    def segment(self, corner: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The straight segment from the source to ``corner`` ('A' or 'B'), a branch of the
        star: (t, confidence) at the grid points on that edge, t from 0 (source) to 1."""
        if corner not in ("A", "B"):
            raise ValueError(f"corner must be 'A' or 'B', got {corner!r}")
        along, other = (1, 2) if corner == "A" else (2, 1)
        on_edge = self.weights[:, other] == 0
        t = self.weights[on_edge, along]
        order = t.argsort()
        return t[order], self.confidence[on_edge][order]


@dataclasses.dataclass(frozen=True)
class TrianglePoint:
    """The image at source + a (A - source) + b (B - source) and what the model says of it."""

    a: float
    b: float
    image: torch.Tensor  # (C, H, W) on the CPU
    confidence: float    # source-class confidence
    label: int           # the model's class there
    class_name: str
    class_confidence: float  # the model's confidence in that class


def compute_triangle(model, source: torch.Tensor, blind_spot_a: torch.Tensor, blind_spot_b: torch.Tensor, label: int,
                     divisions: int = 10, execution: Execution | None = None, iteration: int = 0) -> Triangle:
    """The triangle (source, A, B) of images (C, H, W): grid confidences, true shape, statistics.

    On a GPU every grid point goes in one forward pass; on a CPU as many as
    :func:`~blindspots_nb.analysis.geometry.default_points_per_pass` allows. Raises ValueError
    when a blind spot coincides with the source (the triangle has no shape yet).
    """
    divisions = checked_divisions(divisions)
    start = time.perf_counter()
    shape = triangle_shape(source, blind_spot_a, blind_spot_b)
    weights = triangle_grid(divisions)
    one_pass = len(weights) if source.device.type != "cpu" else None
    confidence = triangle_confidence(model, source, blind_spot_a, blind_spot_b, label, divisions, one_pass,
                                     execution).cpu()
    stats = {name: float(value) for name, value in stats_from_confidence(confidence, divisions).items()}
    names = model.class_names
    return Triangle(iteration=iteration, divisions=divisions, weights=weights, confidence=confidence, shape=shape,
                    coordinates=grid_coordinates(shape, divisions),
                    corners=tuple(image.detach().cpu() for image in (source, blind_spot_a, blind_spot_b)),
                    source_class=names[int(label)], stats=stats, seconds=time.perf_counter() - start)


def current_triangle(model, traversal, divisions: int, execution: Execution | None = None) -> Triangle:
    """:func:`compute_triangle` of (source, current point towards A, current point towards B) of
    ``traversal`` (a batch of the pairs towards A and B) at its iteration."""
    t = traversal
    return compute_triangle(model, t.sources[0], t.images[0], t.images[1], int(t.labels[0]), divisions, execution,
                            t.iteration)


def has_shape(traversal) -> bool:
    """Whether both current points of ``traversal`` have left the source: before, its triangle has no shape."""
    return not bool((traversal.images == traversal.sources).flatten(1).all(1).any())


def current_point(model, traversal, a: float, b: float, execution: Execution | None = None,
                  triangle: Triangle | None = None) -> TrianglePoint:
    """:func:`compute_point` in the triangle of ``traversal``'s current points, or in ``triangle``'s corners."""
    t = traversal
    corners = [t.sources[0], t.images[0], t.images[1]] if triangle is None else \
        [image.to(t.sources.device) for image in triangle.corners]
    return compute_point(model, *corners, int(t.labels[0]), a, b, execution)


def _check_weights(a: float, b: float) -> tuple[float, float]:
    """(a, b) as floats, or ValueError unless they are numbers and the point lies in the
    triangle: a, b >= 0, a + b <= 1."""
    try:
        a, b = float(a), float(b)
    except (TypeError, ValueError):
        raise ValueError(f"a point of the triangle is two numbers a and b (source + a (A - source) + "
                         f"b (B - source)), got a = {a!r}, b = {b!r}") from None
    if not (math.isfinite(a) and math.isfinite(b)) or a < 0 or b < 0 or a + b > 1 + 1e-12:
        raise ValueError(f"the point (a, b) = ({a:g}, {b:g}) is not in the triangle: need a >= 0, b >= 0 and "
                         "a + b <= 1 (source + a (A - source) + b (B - source))")
    return a, b


def compute_point(model, source: torch.Tensor, blind_spot_a: torch.Tensor, blind_spot_b: torch.Tensor, label: int,
                  a: float, b: float, execution: Execution | None = None) -> TrianglePoint:
    """The image at source + a (A - source) + b (B - source) (pixels clamped to [0, 1], as the
    grid's are) with its source-class confidence and the model's class, in one forward pass."""
    a, b = _check_weights(a, b)
    execution = execution or Execution()
    weights = torch.tensor([1 - a - b, a, b], dtype=torch.float64).to(source.dtype).to(source.device)
    image = torch.einsum("k,kd->d", weights, torch.stack([source, blind_spot_a, blind_spot_b]).flatten(1))
    image = image.view_as(source).clamp(0, 1)
    with torch.inference_mode(), execution.scope(source.device):
        probs = execution.logits(model, image[None]).softmax(1)[0].cpu()
    top = int(probs.argmax())
    return TrianglePoint(a=a, b=b, image=image.cpu(), confidence=float(probs[int(label)]), label=top,
                         class_name=model.class_names[top], class_confidence=float(probs[top]))


class RedrawThrottle:
    """When a run redraws the live triangle, so that redrawing takes at most ``share`` of its time.

    A redraw is due once ``every`` seconds have passed since the last one (or since the run
    began) and also ``cost / share`` seconds, ``cost`` being what the last redraw took
    (drawing included): a redraw of 1 s waits 20 s of stepping at ``share`` = 0.05.
    ``clock``: seconds (time.monotonic; tests give a fake one).
    """

    def __init__(self, every: float = 3.0, share: float = 0.05, clock: Callable[[], float] = time.monotonic):
        if every < 0 or not 0 < share <= 1:
            raise ValueError(f"need every >= 0 and 0 < share <= 1; got every={every}, share={share}")
        self.every, self.share, self.clock = every, share, clock
        self.cost = 0.0  # seconds the last redraw took
        self.redraws = 0
        self.spent = 0.0  # seconds all redraws took
        self._last = clock()

    def start(self) -> None:
        """A run begins: its first redraw waits as long as after a redraw."""
        self._last = self.clock()

    def wait(self) -> float:
        """Seconds between redraws now: ``max(every, cost / share)``."""
        return max(self.every, self.cost / self.share)

    def due(self) -> bool:
        return self.clock() - self._last >= self.wait()

    def timed(self, redraw: Callable[[], object]):
        """Run ``redraw()``, noting what it took; returns what it returns."""
        start = self.clock()
        try:
            return redraw()
        finally:
            self._last = self.clock()
            self.cost = self._last - start
            self.spent += self.cost
            self.redraws += 1


def triangle_record(triangle: Triangle) -> dict:
    """The triangle's numbers for a JSON record: grid size, statistics, true shape, timing."""
    return {"iteration": triangle.iteration, "divisions": triangle.divisions, "points": triangle.points,
            "source_class": triangle.source_class, "stats": triangle.stats, "shape": triangle.shape.tolist(),
            "corners": list(CORNER_NAMES)}


def triangle_csv(triangle: Triangle) -> str:
    """The triangle's grid as CSV: barycentric weights (source, a, b), 2-D coordinates, confidence."""
    rows = ["weight_source,a,b,x,y,confidence"]
    for (w, a, b), (x, y), confidence in zip(triangle.weights.tolist(), triangle.coordinates.tolist(),
                                             triangle.confidence.tolist()):
        rows.append(f"{w!r},{a!r},{b!r},{x!r},{y!r},{confidence!r}")
    return "\n".join(rows) + "\n"
