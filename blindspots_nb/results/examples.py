"""Small runs to look at many runs with before one has made any (notebook 09, the tests): the two
FONTS CNNs at three LST step sizes, at about the smallest settings a run takes, each made once."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .. import protocol
from ..protocol.run import weights_identity
from ..protocol.layout import SUMMARIES
from ..protocol.store import RunStore

STEP_SIZES = (0.02, 0.05, 0.1)  # what tells the example runs apart


def small(experiment, step_size: float | None = None, n_sources: int = 3):
    """``experiment`` made small: ``n_sources`` sources, 2 rounds, 5 LST steps of ``step_size`` (None: its
    own), triangles of 2 divisions."""
    lst = dataclasses.replace(experiment.lst, iterations=5, step_size=step_size or experiment.lst.step_size)
    return dataclasses.replace(experiment, n_sources=n_sources, rounds=2, divisions=2, lst=lst)


def make_run(folder, experiments, preset: str | None = None) -> Path:
    """A finished run of ``experiments`` in ``folder`` on the CPU, made as a library (no executed reports);
    a folder that already holds the tables is left as it is."""
    store = RunStore(folder)
    if (store.out_dir / SUMMARIES).is_file():
        return store.out_dir
    store.begin(experiments, weights=weights_identity(experiments, {}))
    for experiment in experiments:
        protocol.prepare(experiment, store, device="cpu")
        for model in experiment.models:
            protocol.run_model(experiment, model, store, device="cpu", progress=False)
    protocol.assemble(store, experiments, preset=preset)
    return store.out_dir


def example_runs(root) -> Path:
    """``root`` holding three small runs of both FONTS CNNs, ``step_<size>`` for each of :data:`STEP_SIZES`,
    the last on a pool of 4 sources (the first 3 those of the others): about 20 s on a CPU, once."""
    fonts = protocol.preset("offline")[0]
    for k, step_size in enumerate(STEP_SIZES):
        make_run(Path(root) / f"step_{step_size:g}", [small(fonts, step_size, n_sources=4 if k == 2 else 3)])
    return Path(root)
