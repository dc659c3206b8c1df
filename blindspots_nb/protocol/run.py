"""The run of the tables' protocol, in one direction.

1. :func:`~.pool.prepare`, once per experiment: the pool (one image per class that every
   model classifies correctly with confidence above ``min_conf``) and ``rounds``
   random derangements of it (each source gets one target per round).
2. Per model and shard, papermill executes the packaged notebook
   ``10_reproduce_tables.ipynb`` (:mod:`.notebooks`), which calls :func:`run_model`: the pool is cut into
   source batches; for every batch and round LST makes the blind spots and Table-1
   distances are measured; once a batch has all its rounds, the Table-2 statistics
   over the triangles (source, o_i, o_j) of all pairs i < j. Each piece is a file of
   its own: a rerun skips finished pieces, and shard i of n does the batches b with
   b % n == i. Under ``torchrun`` each process is one shard.
3. :func:`assemble`: the per-model CSVs, Tables 1 and 2 and ``run.json``.

:func:`run_in_process` does steps 1 and 2 for one experiment in this process, without
papermill (for scripts that build on the protocol's blind spots).

All files go through the :class:`~blindspots_nb.protocol.store.RunStore`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from tqdm.std import tqdm  # text progress: it reaches the terminal through papermill's streams too

from ..tools import provenance
from ..analysis.geometry import stats_from_confidence, triangles_confidence
from ..lst import Traversal, traverse
from ..analysis.metrics import LPIPSDistance, target_distances
from . import distributed
from .experiment import Experiment
from .notebooks import notebooks_to_run, run_notebook
from .pool import check_pool_images, pool_images, prepare, select, source_batches, stored_pool
from .layout import RunSettingsMismatch, differences, older_run_warning
from .store import RunStore
from .tables import render_tables, summarize_model

def protocol_blind_spots(store, experiment, model_name: str, pool: dict) -> tuple[torch.Tensor, list[dict]]:
    """The blind spots of a finished protocol run (``store``) of one model, in the order of
    its source batches and rounds, and per blind spot its ``source``, ``round`` and
    ``target`` (indices into the pool)."""
    spots, rows = [], []
    for b, members in enumerate(source_batches(len(pool["labels"]), experiment.batch_size)):
        for r in range(experiment.rounds):
            spots.append(store.blind_spots(experiment, model_name, b, r))
            rows += [{"source": s, "round": r, "target": pool["targets"][r][s]} for s in members]
    return torch.cat(spots).float(), rows


def _seed(experiment: Experiment, batch: int, round_: int) -> int:
    """A seed per (batch, round): every piece of work is reproducible on its own."""
    digest = hashlib.sha256(f"{experiment.seed}/{batch}/{round_}".encode()).hexdigest()
    return int(digest[:8], 16)


def weights_identity(experiments: list[Experiment], weights: dict[str, str]) -> dict[str, dict]:
    """Each model's identity: its weights file, its sha256 and whether that matched a
    published hash (a factory spec's model: the fingerprint of its parameters and buffers),
    and ``model``, the rest of what makes its numbers (input size, mean, std, crop, class
    names: :func:`~blindspots_nb.models.factory.model_identity`). Part of a run's settings,
    so that another model is never mixed into a run; ``display_name`` (what the tables call
    it: a factory's own name) is kept beside, not part of the identity."""
    from ..models import get_entry, load_model, weights_record
    from ..models.factory import model_identity
    from ..models.spec import is_spec

    identity = {}
    for name in dict.fromkeys(m for e in experiments for m in e.models):
        if is_spec(name):  # built once: its parameters are its weights' identity
            model = load_model(name, device="cpu", weights=weights.get(name))
            record, model = model.info, model_identity(model)
        else:
            record, model = weights_record(name, weights.get(name)), model_identity(get_entry(name))
        identity[name] = {"file": str(Path(record["weights_file"]).resolve()), "sha256": record["weights_sha256"],
                          "verified": record["weights_verified"], "check": record["weights_check"], "model": model,
                          "display_name": record.get("display_name", name)}
    return identity


def _check_model(model_name: str, model, expected: dict):
    """Refuses a model that is not the one the run started with (its weights, or what its
    wrapper holds: input size, mean, std, crop, class names), naming what changed."""
    from ..models.factory import model_identity

    if model.info["weights_sha256"] != expected["sha256"]:
        what = ("parameters and buffers are not those" if model.info.get("spec")
                else f"weights file {model.info['weights_file']} is not the one")
        raise RunSettingsMismatch(f"{model_name}'s {what} this run started with "
                                  f"({expected['file']}, sha256 {expected['sha256'][:12]}...)")
    if "model" not in expected:
        warnings.warn(older_run_warning([model_name]), stacklevel=3)
        return
    changed = differences(expected["model"], model_identity(model))
    if changed:
        raise RunSettingsMismatch(f"{model_name} is not the model this run started with: {'; '.join(changed[:6])}"
                                  f"{' ...' if len(changed) > 6 else ''}. Use another output folder, or --force "
                                  "to start anew")


# ----------------------------------------------------------------- one model
def run_model(experiment: Experiment, model_name: str, store: RunStore, shard: tuple[int, int] = (0, 1),
              device=None, weights: str | None = None, progress: bool = True,
              lpips: LPIPSDistance | None = None) -> dict:
    """Blind spots, Table-1 distances and Table-2 triangle statistics of one model, for
    this shard's source batches of the prepared pool; skips finished pieces. Returns timings."""
    from ..models import load_model, module_device
    from ..models.factory import model_identity

    pool = stored_pool(store, experiment)
    model = load_model(model_name, device=device, weights=weights)
    expected = store.weights().get(model_name)
    if expected:
        _check_model(model_name, model, expected)
    device = module_device(model)
    images = pool_images(experiment, pool, model).to(device)
    labels = torch.tensor(pool["labels"], device=device)
    targets = torch.tensor(pool["targets"])
    lpips = lpips or LPIPSDistance()
    all_batches = source_batches(len(labels), experiment.batch_size)
    n_batches = len(all_batches)
    batches = [(b, sources) for b, sources in enumerate(all_batches) if b % shard[1] == shard[0]]
    timings = {"blind_spots_s": 0.0, "triangles_s": 0.0, "batches_done_now": 0}
    work = [(b, sources, r) for b, sources in batches for r in range(experiment.rounds)
            if not store.has_blind_spots(experiment, model_name, b, r)]
    bar = tqdm(total=len(work) * experiment.lst.iterations, desc=f"{model_name} blind spots", unit="it",
               disable=not progress)  # one tick per LST iteration, with tqdm's rate and ETA
    for n, (b, sources, r) in enumerate(work):
        bar.set_postfix_str(f"batch {b + 1}/{n_batches} round {r + 1}/{experiment.rounds}", refresh=False)
        start = time.perf_counter()
        index = torch.tensor(list(sources))
        target_index = targets[r, index]
        result = traverse(model, images[index], labels[index], images[target_index],
                          experiment.lst_config(_seed(experiment, b, r)), execution=experiment.execution,
                          on_iteration=bar.update)
        measured = {"initial_confidence": result.initial_confidence, "confidence": result.confidence,
                    **target_distances(result.images, images[target_index], lpips)}
        measured = {key: value.cpu().tolist() for key, value in measured.items()}  # one wait for the device
        rows = [{"source": s, "round": r, "target": t, "label": pool["labels"][s],
                 "target_label": pool["labels"][t], **{key: value[i] for key, value in measured.items()}}
                for i, (s, t) in enumerate(zip(index.tolist(), target_index.tolist()))]
        store.save_blind_spots(experiment, model_name, b, r, result.images, rows)
        elapsed = time.perf_counter() - start
        timings["blind_spots_s"] += elapsed
        timings["batches_done_now"] += 1
        if n == 0 and progress and len(work) > 1:
            left = elapsed * sum(len(s) for _, s, _ in work[1:]) / len(sources)
            bar.write(f"{model_name}: the first batch of {len(sources)} sources took {_duration(elapsed)}; "
                      f"the {len(work) - 1} batch rounds left should take about {_duration(left)}, then the "
                      "triangles")
    bar.close()

    pairs = math.comb(experiment.rounds, 2)
    todo = [(b, sources) for b, sources in batches if not store.has_triangles(experiment, model_name, b)]
    def read_blind_spots(b):
        return [store.blind_spots(experiment, model_name, b, r) for r in range(experiment.rounds)]
    with ThreadPoolExecutor(max_workers=1) as reader:  # the next batch's blind spots load while this one runs
        upcoming = reader.submit(read_blind_spots, todo[0][0]) if todo else None
        for n, (b, sources) in enumerate(tqdm(todo, desc=f"{model_name} triangles", disable=not progress)):
            start = time.perf_counter()
            spots = [spot.to(device) for spot in upcoming.result()]
            if n + 1 < len(todo):
                upcoming = reader.submit(read_blind_spots, todo[n + 1][0])
            index = torch.tensor(list(sources))
            confidence = triangles_confidence(  # (pairs, B, grid points), each distinct point once
                model, images[index], spots, labels[index], experiment.divisions, execution=experiment.execution)
            stats = stats_from_confidence(confidence, experiment.divisions)
            per_source = {key: (value.amin(0) if key == "edge_min" else value.mean(0)).tolist()  # over pairs
                          for key, value in stats.items()}
            rows = [{"source": s, "label": pool["labels"][s], "pairs": pairs,
                     **{key: value[i] for key, value in per_source.items()}} for i, s in enumerate(index.tolist())]
            store.save_triangles(experiment, model_name, b, rows, confidence.permute(1, 0, 2).float())
            timings["triangles_s"] += time.perf_counter() - start
    shard_name = f"shard{shard[0]}of{shard[1]}"
    store.save_record(experiment, model_name, shard, provenance.record(
        model, experiment.lst_config(experiment.seed), device, execution=experiment.execution.to_dict(),
        experiment=experiment.to_dict(), shard=shard_name, timings=timings, model_identity=model_identity(model)))
    return timings


# ----------------------------------------------------------------- the whole run
def _check_inputs(experiments: list[Experiment], weights: dict[str, str]):
    """Fail before any work on a missing data folder, an unknown model, a factory spec that
    does not import, or a missing weights file."""
    from ..models import get_entry
    from ..models.spec import factory, is_spec

    for experiment in experiments:
        experiment.image_source.check_exists(experiment.name)
        for name in experiment.models:
            factory(name) if is_spec(name) else get_entry(name)  # a ValueError saying what is wrong
    for name, path in weights.items():
        if not any(name in e.models for e in experiments):
            raise ValueError(f"--weights {name}=...: {name} is not a model of this run")
        if not Path(path).is_file():
            raise FileNotFoundError(f"--weights {name}={path}: no such file")


def _duration(seconds: float) -> str:
    """A duration in words: '40 s', '3.5 min', '2.1 h'."""
    if seconds < 90:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _timed_model(experiment: Experiment, pool: dict, name: str, device, weights: str | None,
                 timed_iterations: int, lpips) -> dict:
    """One model's costs on the pool's first source batch of its first round, measured: the
    start of a traversal, an LST iteration (over ``timed_iterations``, after one to warm
    up), the Table-1 distances and the Table-2 triangles; and from them the model's
    estimated time, each batch's share by its number of sources."""
    from ..models import load_model, module_device

    model = load_model(name, device=device, weights=weights)
    device = module_device(model)
    images = pool_images(experiment, pool, model).to(device)
    labels, targets = torch.tensor(pool["labels"], device=device), torch.tensor(pool["targets"])
    batches = source_batches(len(labels), experiment.batch_size)
    index = torch.tensor(list(batches[0]))
    sources, source_labels = images[index], labels[index]

    def timed(work):
        _synchronize(device)
        start = time.perf_counter()
        result = work()
        _synchronize(device)
        return time.perf_counter() - start, result

    config = experiment.lst_config(_seed(experiment, 0, 0))
    start_s, traversal = timed(lambda: Traversal(model, sources, source_labels, images[targets[0, index]], config,
                                                 execution=experiment.execution))
    traversal.step(1)  # warm-up: first calls allocate (and compile, where asked)
    steps_s, _ = timed(lambda: traversal.step(timed_iterations))
    distances_s, _ = timed(lambda: target_distances(traversal.result().images, images[targets[0, index]], lpips))
    triangles_s, _ = timed(lambda: triangles_confidence(
        model, sources, [images[targets[r, index]] for r in range(experiment.rounds)], source_labels,
        experiment.divisions, execution=experiment.execution))
    iteration_s = steps_s / timed_iterations
    per_batch = experiment.rounds * (start_s + experiment.lst.iterations * iteration_s + distances_s) + triangles_s
    return {"timed_batch": len(index), "timed_iterations": timed_iterations, "traversal_start_s": start_s,
            "iteration_s": iteration_s, "distances_s": distances_s, "triangles_s": triangles_s,
            "estimate_s": per_batch * len(labels) / len(index)}


def run_in_process(experiment: Experiment, store: RunStore, device=None, progress: bool = True) -> dict:
    """Steps 1 and 2 for every model of ``experiment`` in this process, no notebooks: the
    run begun (or resumed: finished pieces are skipped) under ``store``'s lock, the pool
    prepared, each model's blind spots and triangles stored. Returns the pool's record."""
    store.check_folder()
    with store.hold():
        store.begin([experiment], weights=weights_identity([experiment], {}))
        pool = prepare(experiment, store, device)
        for name in experiment.models:
            run_model(experiment, name, store, device=device, progress=progress)
    return pool


def plan(experiments: list[Experiment], device=None, weights: dict[str, str] | None = None,
         timed_iterations: int = 3) -> dict:
    """What :func:`reproduce` would do for ``experiments`` and about how long it would take,
    writing nothing (``reproduce --dry-run``): per experiment its models, its pool (selected
    now, as a new run selects it), rounds, iterations and source batches; per model the
    costs timed on its first batch (:func:`_timed_model`) and its estimated time. The
    estimate is the computation's (LST, distances, triangles); loading models, selecting
    the pool and each model's notebook (its start and report) come on top."""
    weights = _canonical_weights(weights or {})
    _check_inputs(experiments, weights)
    lpips = LPIPSDistance()
    planned = []
    for experiment in experiments:
        pool = select(experiment, device, weights)
        batches = source_batches(len(pool["labels"]), experiment.batch_size)
        planned.append({
            "experiment": experiment.name, "image_source": str(experiment.image_source), "models": list(experiment.models),
            "pool_size": len(pool["labels"]), "passed_rule": pool["passed_rule"], "rounds": experiment.rounds,
            "iterations": experiment.lst.iterations, "batch_size": experiment.batch_size, "batches": len(batches),
            "timings": {name: _timed_model(experiment, pool, name, device, weights.get(name), timed_iterations, lpips)
                        for name in experiment.models}})
    return {"experiments": planned,
            "estimate_s": sum(t["estimate_s"] for e in planned for t in e["timings"].values())}


def plan_text(planned: dict) -> str:
    """:func:`plan`'s plan in lines for the terminal."""
    lines = []
    for e in planned["experiments"]:
        lines.append(f"{e['experiment']} ({e['image_source']}): {', '.join(e['models'])}; pool of {e['pool_size']} "
                     f"sources ({e['passed_rule']} pass the pool rule); {e['rounds']} rounds of {e['iterations']} "
                     f"LST iterations; {e['batches']} batch{'es' if e['batches'] > 1 else ''} of up to "
                     f"{e['batch_size']} sources")
        for name, t in e["timings"].items():
            lines.append(f"  {name}: {t['iteration_s']:.3g} s per iteration of {t['timed_batch']} sources (timed over "
                         f"{t['timed_iterations']}), triangles of a batch {t['triangles_s']:.3g} s: about "
                         f"{_duration(t['estimate_s'])}")
    lines.append(f"Estimated time: about {_duration(planned['estimate_s'])} of computation (LST, distances, "
                 "triangles); not counted: loading the models, selecting the pools and each model's notebook (its "
                 "start and its report: tens of seconds on a CPU). Nothing was written.")
    return "\n".join(lines)


def as_recorded(experiments: list[Experiment], store: RunStore, given=()) -> list[Experiment]:
    """``experiments`` with each execution option not named in ``given`` as the run in the
    store's folder recorded it, for the experiments that run holds: a resumed run runs as it
    started (its settings say how), so a changed default is a default for new runs only."""
    recorded = {e.name: e.execution for e in store.experiments()} if store.holds_run() else {}
    kept = []
    for experiment in experiments:
        execution = recorded.get(experiment.name, experiment.execution)
        execution = dataclasses.replace(execution, **{name: getattr(experiment.execution, name) for name in given})
        if execution != experiment.execution:
            print(f"{experiment.name}: resuming as the run in {store.out_dir} started, {execution.in_words()} "
                  f"(a new run: {experiment.execution.in_words()})")
        kept.append(dataclasses.replace(experiment, execution=execution))
    return kept


def _canonical_weights(weights: dict[str, str]) -> dict[str, str]:
    """``--weights`` by model as the experiments name them (a factory file's path made
    absolute), each file's path made absolute too: every process of a run finds it wherever it runs."""
    from ..models.spec import canonical_spec, is_spec

    return {canonical_spec(name) if is_spec(name) else name: str(Path(path).expanduser().resolve())
            for name, path in weights.items()}


def reproduce(experiments: list[Experiment], out_dir, device=None, weights: dict[str, str] | None = None,
              shard: tuple[int, int] | None = None, force: bool = False, preset: str | None = None,
              paper_rows: bool | None = None) -> dict | None:
    """Run the protocol for every model of ``experiments`` into ``out_dir`` and assemble the
    tables once all is done. Resumes a killed run; under torchrun each process is a shard
    and rank 0 writes the tables. ``paper_rows``: show the paper's ImageNet rows (None:
    unless the images are a user's folder). Returns the run record (None on a shard that
    did not write the tables)."""
    if shard is not None and distributed.world_size() > 1:
        raise ValueError(f"--shard {shard[0]}/{shard[1]} under torchrun ({distributed.world_size()} processes): "
                         "torchrun already makes each process one shard (RANK/WORLD_SIZE), so both would do the same "
                         "work. Leave --shard out under torchrun, or run each --shard i/n without torchrun")
    weights = _canonical_weights(weights or {})
    _check_inputs(experiments, weights)
    store = RunStore(out_dir)
    store.check_folder(force)
    with distributed.launch(device) as (rank, world, device):
        shard = shard or (rank, world)
        with store.hold() if rank == 0 else contextlib.nullcontext():
            if rank == 0:
                store.begin(experiments, force=force, weights=weights_identity(experiments, weights))
                for experiment in experiments:
                    prepare(experiment, store, device, weights)
            distributed.barrier()
            for experiment in experiments:
                for name in experiment.models:
                    for notebook_shard, why in notebooks_to_run(store, experiment, name, shard, rank):
                        print(f"{name} on {experiment.name}: running the notebook (shard {notebook_shard[0]}/"
                              f"{notebook_shard[1]}){why}", flush=True)
                        run_notebook(store, experiment, name, notebook_shard, device, weights.get(name))
            distributed.barrier()
            if rank != 0:
                return None
            unfinished = [f"{name} on {e.name}" for e in experiments for name in e.models
                          if not store.model_finished(e, name)]
            if unfinished:
                print(f"shard {shard[0]}/{shard[1]} done; still missing: {', '.join(unfinished)}. "
                      f"Run the other shards, then: blindspots-nb merge --out-dir {store.out_dir}")
                return None
            return assemble(store, experiments, preset=preset, paper_rows=paper_rows)


def merge(out_dir, paper_rows: bool | None = None) -> dict:
    """Assemble the tables of a run whose shards all finished."""
    store = RunStore(out_dir)
    with store.hold():
        for experiment in store.experiments():
            pool = store.pool(experiment)
            unchecked = [] if pool is None else check_pool_images(experiment, pool)
            if unchecked:
                print(f"{experiment.name}: pool images not checked against their hashes: "
                      f"{', '.join(unchecked[:6])}{' ...' if len(unchecked) > 6 else ''}")
        return assemble(store, paper_rows=paper_rows)


def _check_shard_records(store: RunStore, experiments: list[Experiment]):
    """Refuses shards whose records name another model identity than the run's settings
    (records and settings written before identities were recorded: a warning)."""
    weights, older = store.weights(), []
    for experiment in experiments:
        for name in experiment.models:
            expected = weights.get(name, {}).get("model")
            for key, record in store.records(experiment, [name]).items():
                if expected is None or "model_identity" not in record:
                    older.append(name)
                    continue
                changed = differences(expected, record["model_identity"])
                if changed:
                    raise RunSettingsMismatch(f"{key} was made by another {name} than the one this run's settings "
                                              f"name: {'; '.join(changed[:6])}. Its pieces cannot be trusted: use "
                                              "another output folder, or --force to start anew")
    if older:
        warnings.warn(older_run_warning(sorted(set(older))), stacklevel=3)


def assemble(store: RunStore, experiments: list[Experiment] | None = None, preset: str | None = None,
             paper_rows: bool | None = None) -> dict:
    """Tables 1 and 2, the per-model CSVs and ``run.json`` of a finished run (every shard
    done); ``experiments`` default to the stored ones."""
    experiments = experiments or store.experiments()
    _check_shard_records(store, experiments)
    summaries = {e.name: {name: summarize_model(store, e, name) for name in e.models} for e in experiments}
    written = store.save_tables(render_tables(experiments, summaries, store.weights(), paper_rows), summaries)
    lpips = LPIPSDistance()
    run = provenance.record(
        command=" ".join(sys.argv), preset=preset, experiments=[e.to_dict() for e in experiments],
        pools={e.name: store.pool(e) for e in experiments},
        models_and_shards={key: record for e in experiments for key, record in store.records(e).items()},
        weights=store.weights(),
        lpips=({"status": "genuine (AlexNet trunk, v0.1)", "trunk": lpips.trunk_record} if lpips.available
               else {"status": f"missing: {lpips.missing_reason}"}),
        files=sorted(written))
    store.save_run_record(run)
    print(store.read_text("table1.md"))
    print(store.read_text("table2.md"))
    print(f"wrote {', '.join(sorted(written))}, run.json and per-model CSVs in {store.out_dir}")
    return run
