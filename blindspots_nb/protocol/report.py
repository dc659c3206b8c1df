"""What the executed notebook of one model shows besides its numbers: a few blind
spots beside their sources and targets, and the source-class confidence averaged
over every triangle's grid. Computing only; drawing is in :mod:`blindspots_nb.plots`."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..tools import provenance
from .experiment import Experiment
from .pool import pool_images, stored_pool
from .store import RunStore


@dataclass
class ModelReport:
    """``examples`` sources of round 0 with their blind spots and targets, and the mean grid."""

    model: str
    sources: torch.Tensor        # (k, C, H, W)
    blind_spots: torch.Tensor    # (k, C, H, W)
    targets: torch.Tensor        # (k, C, H, W)
    source_classes: list[str]
    target_classes: list[str]
    initial_confidence: list[float]   # the source-class confidence of each clean source
    confidence: list[float]           # source-class confidence at each blind spot
    mean_grid: torch.Tensor      # (points,) confidence at each grid point, averaged over pairs and sources
    divisions: int
    caption: str


def model_report(store: RunStore, experiment: Experiment, model_name: str, weights=None,
                 examples: int = 4) -> ModelReport:
    """The report of a finished model, from its stored pool, blind spots and triangles."""
    from ..models import load_model

    pool = stored_pool(store, experiment)
    model = load_model(model_name, device="cpu", weights=weights)
    count = min(examples, len(pool["labels"]), experiment.batch_size)
    sources = list(range(count))
    targets = [pool["targets"][0][s] for s in sources]
    images = pool_images(experiment, {**pool, **{key: [pool[key][i] for i in sources + targets]
                                                 for key in ("names", "sha256")}}, model)
    rows = {int(row["source"]): row for row in store.blind_spot_rows(experiment, model_name)
            if int(row["round"]) == 0}
    return ModelReport(
        model=provenance.display_name(model), sources=images[:count],
        blind_spots=store.blind_spots(experiment, model_name, 0, 0)[:count],
        targets=images[count:], source_classes=[pool["class_names"][s] for s in sources],
        target_classes=[pool["class_names"][t] for t in targets],
        initial_confidence=[float(rows[s]["initial_confidence"]) for s in sources],
        confidence=[float(rows[s]["confidence"]) for s in sources],
        mean_grid=store.mean_triangle_grid(experiment, model_name).double().mean(0),
        divisions=experiment.divisions,
        caption=provenance.caption(model, experiment.lst, "cpu") + f" | {experiment.name}: "
                                                                   f"{experiment.image_source.shown}")
