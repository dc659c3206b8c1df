"""Time you can see coming (issue 29, item 2): ``reproduce --dry-run`` prints the plan and
an estimate and writes nothing; a run's progress ticks once per LST iteration and says,
after its first batch, about how long the rest takes. How close the estimate comes to the
run's time is measured by benchmarks/dry_run_estimate.py (timings are no test)."""

import math

import pytest

from blindspots_nb.cli import main
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunStore, plan, prepare, run_model
from blindspots_nb.protocol import run as run_module

SMALL = ["--models", "fonts_cnn", "--n-sources", "6", "--rounds", "2", "--iterations", "5", "--batch-size", "4",
         "--divisions", "2", "--device", "cpu"]


def small_experiment() -> Experiment:
    return Experiment("fonts:test", ("fonts_cnn",), LSTConfig(iterations=5), n_sources=6, rounds=2, batch_size=4,
                      divisions=2)


def test_the_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reproduce", *SMALL, "--out-dir", str(out), "--dry-run"]) == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "fonts (fonts:test): fonts_cnn; pool of 6 sources" in printed
    assert "2 rounds of 5 LST iterations; 2 batches of up to 4 sources" in printed
    assert "fonts_cnn: " in printed and " s per iteration of 4 sources (timed over 3)" in printed
    assert "Estimated time: about " in printed and "Nothing was written." in printed
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_the_plans_numbers_are_the_runs(tmp_path):
    """The plan's pool is the one the run prepares; its batches and rounds are the run's
    pieces; the estimate adds up the measured costs, each batch by its number of sources."""
    experiment = small_experiment()
    planned = plan([experiment], device="cpu")
    store = RunStore(tmp_path / "run")
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    pool = prepare(experiment, store, device="cpu")
    (entry,) = planned["experiments"]
    assert (entry["pool_size"], entry["passed_rule"]) == (len(pool["labels"]), pool["passed_rule"])
    assert entry["pool_size"] == 6
    assert (entry["rounds"], entry["iterations"], entry["batch_size"]) == (2, 5, 4)
    assert entry["batches"] == math.ceil(6 / 4) == len(run_module.source_batches(6, 4))
    timing = entry["timings"]["fonts_cnn"]
    assert timing["timed_batch"] == 4 and timing["timed_iterations"] == 3
    per_batch = 2 * (timing["traversal_start_s"] + 5 * timing["iteration_s"] + timing["distances_s"]) \
        + timing["triangles_s"]
    assert timing["estimate_s"] == pytest.approx(per_batch * 6 / 4, rel=1e-12) and timing["estimate_s"] > 0
    assert planned["estimate_s"] == timing["estimate_s"]


def test_progress_ticks_per_iteration_and_says_the_rest_after_the_first_batch(tmp_path, capsys):
    experiment = small_experiment()
    store = RunStore(tmp_path / "run")
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    prepare(experiment, store, device="cpu")
    capsys.readouterr()
    run_model(experiment, "fonts_cnn", store, device="cpu", progress=True)
    out, err = capsys.readouterr()
    total = 2 * 2 * 5  # batches x rounds x iterations
    assert "fonts_cnn blind spots: 100%" in err and f"{total}/{total}" in err
    assert "batch 2/2 round 2/2" in err
    assert "fonts_cnn: the first batch of 4 sources took " in out
    assert "the 3 batch rounds left should take about " in out


def test_the_estimate_counts_every_piece_of_work_the_run_does(tmp_path, monkeypatch):
    """The plan prices a batch as rounds x (a traversal's start + iterations x an iteration
    + the distances) + the triangles, scaled by its sources: the run does exactly that work,
    counted here source by source (how close the seconds come is the benchmark's figure)."""
    experiment = small_experiment()
    planned = plan([experiment], device="cpu")["experiments"][0]
    work = {"traversals": 0, "iterations": 0, "distances": 0, "triangles": 0}

    def counted(function, *keys, per_source=lambda args, kwargs: len(args[1])):
        def count(*args, **kwargs):
            for key in keys:
                work[key] += per_source(args, kwargs)
            return function(*args, **kwargs)
        return count

    monkeypatch.setattr(run_module, "traverse", counted(run_module.traverse, "traversals"))
    monkeypatch.setattr(run_module, "target_distances", counted(
        run_module.target_distances, "distances", per_source=lambda args, kwargs: len(args[0])))
    monkeypatch.setattr(run_module, "triangles_confidence", counted(run_module.triangles_confidence, "triangles"))
    original_step = run_module.Traversal.step

    def step(self, n=1, *args, **kwargs):
        work["iterations"] += n * len(self.sources)
        return original_step(self, n, *args, **kwargs)

    monkeypatch.setattr(run_module.Traversal, "step", step)
    store = RunStore(tmp_path / "run")
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    prepare(experiment, store, device="cpu")
    run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    sources, rounds, iterations = planned["pool_size"], planned["rounds"], planned["iterations"]
    assert work == {"traversals": rounds * sources, "iterations": rounds * iterations * sources,
                    "distances": rounds * sources, "triangles": sources}
