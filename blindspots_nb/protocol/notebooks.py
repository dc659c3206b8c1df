"""The packaged notebook that runs one model's shard of the protocol, executed by papermill:
its parameters, which shards a process runs (or repairs), and the run itself (the executed
copy is written by the run store, as that model's report)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import layout
from .experiment import Experiment
from .store import RunStore

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "10_reproduce_tables.ipynb"


def notebook_parameters(experiment: Experiment, model_name: str, store: RunStore, shard=(0, 1), device=None,
                        weights=None) -> dict:
    """The papermill parameters of the packaged notebook: what identifies the work."""
    return {"out_dir": str(store.out_dir.resolve()), "experiment": experiment.name, "model_name": model_name,
            "shard": f"{shard[0]}/{shard[1]}", "device": None if device is None else str(device),
            "weights": None if weights is None else str(weights)}


def run_notebook(store: RunStore, experiment: Experiment, model_name: str, shard=(0, 1), device=None,
                 weights=None) -> Path:
    """Execute the packaged notebook for model ``model_name`` and shard; the executed notebook is
    kept in the output folder, as the report of that model."""
    return store.execute_notebook(  # the kernel works in the caller's folder, where relative paths were meant
        NOTEBOOK, experiment, model_name, shard,
        notebook_parameters(experiment, model_name, store, shard, device, weights),
        cwd=os.getcwd(), progress_bar=False, stdout_file=sys.stdout, stderr_file=sys.stderr)


def notebooks_to_run(store: RunStore, experiment: Experiment, model_name: str, shard: tuple[int, int],
                     rank: int = 0) -> list[tuple[tuple[int, int], str]]:
    """The shards whose notebook this process runs for ``model_name``, each with why: its own
    shard while the model is unfinished; once it is finished, on rank 0, every notebook
    that is damaged (cut, stopped by an error or Ctrl-C), and its own shard if no whole
    report is left. A finished model with a whole report is skipped, with a word."""
    if not store.model_finished(experiment, model_name):
        return [(shard, "")]
    if rank != 0:
        return []
    reports = layout.reports(store.out_dir, experiment.name, model_name)
    damaged = [(s, f": its report {why}, made again") for s, why in reports.items() if why is not None]
    if not any(why is None for why in reports.values()) and not any(s == shard for s, _ in damaged):
        damaged.append((shard, ": finished, but its report is missing, made again"))
    if not damaged:
        print(f"{model_name} on {experiment.name}: finished in {store.out_dir}, skipped (--force recomputes)")
    return damaged
