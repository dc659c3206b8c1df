"""Runs as DataFrames (:mod:`blindspots_nb.results`): the frames of ``load_run`` and ``collect`` are
the run's CSVs, pool and summaries read independently here; a damaged run is skipped with its line;
nothing is written to the folders read."""

import csv
import json
import math
import shutil
from pathlib import Path

import pytest

from blindspots_nb import protocol
from blindspots_nb.protocol.tables import TABLE_COLUMNS
from blindspots_nb.results import SkippedRun, collect, load_run
from blindspots_nb.results.examples import STEP_SIZES, example_runs, make_run, small
from helpers import folder_listing


@pytest.fixture(scope="session")
def offline_run(tmp_path_factory) -> Path:
    """The offline preset's two experiments (FONTS CNNs, EfficientNet-Lite0 on the photos), made small."""
    experiments = [small(e) for e in protocol.preset("offline")]
    return make_run(tmp_path_factory.mktemp("offline") / "run", experiments, preset="offline")


@pytest.fixture(scope="session")
def three_runs(tmp_path_factory) -> Path:
    """Notebook 09's example: three small runs of both FONTS CNNs, one per step size, the last on a larger
    pool (4 sources, the first 3 those of the others)."""
    return example_runs(tmp_path_factory.mktemp("three_runs"))


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _close(a, b) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)


def test_the_frames_are_the_runs_files(offline_run):
    run = load_run(offline_run)
    settings = json.loads((offline_run / "settings.json").read_text())
    summaries = json.loads((offline_run / "summaries.json").read_text())
    assert run.problems == [] and all("no whole report" in line for line in run.missing)  # made as a library
    assert len(run.rows) == len(run.settings) == 3
    # the tables' rows: table1.csv and table2.csv (ours) and summaries.json
    for table, columns in TABLE_COLUMNS:
        ours = [row for row in _csv(offline_run / f"{table}.csv") if row["source"] == "ours"]
        assert sorted(r["model"] for r in ours) == sorted(run.rows["display_name"])
        for row in ours:
            frame_row = run.rows.set_index("display_name").loc[row["model"]]
            assert frame_row["dataset"] == row["dataset"]
            for key in columns:
                for part in ("mean", "std"):
                    assert _close(frame_row[f"{key}_{part}"], float(row[f"{key}_{part}"]))
    for _, row in run.rows.iterrows():
        summary = summaries[row["experiment"]][row["model"]]
        assert (row["n"], row["n_blind_spots"]) == (summary["n_sources"], summary["n_blind_spots"])
        assert row["weights_sha256"] == settings["weights"][row["model"]]["sha256"]
        assert row["preset"] == "offline" and row["run"] == "run"
    # the settings, flattened
    for experiment in settings["experiments"]:
        for _, row in run.settings[run.settings["experiment"] == experiment["name"]].iterrows():
            assert row["image_source"] == experiment["image_source"] and row["rounds"] == experiment["rounds"]
            assert row["lst.step_size"] == experiment["lst"]["step_size"]
            assert row["execution.precision"] == experiment["execution"]["precision"]
        assert "lst.seed" not in run.settings  # replaced per batch and round: no setting of the tables


def test_sources_blind_spots_and_pairs_are_the_pools_and_per_model_csvs(offline_run):
    run = load_run(offline_run)
    for (experiment, model), sources in run.sources.groupby(["experiment", "model"]):
        pool = json.loads((offline_run / experiment / "pool.json").read_text())
        per_source = _csv(offline_run / experiment / model / "per_source.csv")
        assert list(sources["source"]) == list(range(len(pool["names"]))) == [int(r["source"]) for r in per_source]
        assert list(sources["name"]) == pool["names"] and list(sources["sha256"]) == pool["sha256"]
        assert list(sources["class"]) == pool["class_names"] and list(sources["label"]) == pool["labels"]
        for row, written in zip(sources.to_dict("records"), per_source):
            assert all(_close(row[c], float(written[c])) for c in ("p_src", "avg_conf", "frac_0.1", "path_conf",
                                                                    "edge_min"))
        spots = run.blind_spots[(run.blind_spots["experiment"] == experiment) & (run.blind_spots["model"] == model)]
        per_blind_spot = _csv(offline_run / experiment / model / "per_blindspot.csv")
        assert len(spots) == len(per_blind_spot) == len(pool["names"]) * 2
        for row, written in zip(spots.sort_values(["source", "round"]).to_dict("records"), per_blind_spot):
            assert (row["source"], row["round"], row["target"]) == tuple(int(written[c]) for c in ("source", "round",
                                                                                                    "target"))
            assert (row["target_name"], row["target_sha256"], row["target_class"]) == (
                pool["names"][row["target"]], pool["sha256"][row["target"]], pool["class_names"][row["target"]])
            assert all(_close(row[c], float(written[c])) for c in ("confidence", "rmse", "linf", "ssim", "lpips"))
        pairs = run.pairs[(run.pairs["experiment"] == experiment) & (run.pairs["model"] == model)]
        assert len(pairs) == len(pool["names"])  # one pair (0, 1) of two rounds per source
        assert (pairs["round_a"] < pairs["round_b"]).all()
    assert set(run.sources["display_name"]) == {"fonts_cnn", "fonts_cnn_at", "efficientnet_lite0"}
    assert (run.sources["lst.iterations"] == 5).all()


def test_collect_gives_a_row_per_run_experiment_and_model(three_runs):
    rows = collect(three_runs)
    assert rows.attrs["skipped"] == []
    assert len(rows) == 6 and sorted(set(rows["run"])) == sorted(f"step_{s:g}" for s in STEP_SIZES)
    assert sorted(set(rows["lst.step_size"])) == list(STEP_SIZES)
    for _, row in rows.iterrows():
        summary = json.loads((three_runs / row["run"] / "summaries.json").read_text())[row["experiment"]][row["model"]]
        assert row["n"] == summary["n_sources"]
        assert _close(row["rmse_mean"], summary["table1"]["rmse"][0])
        assert _close(row["frac_0.1_std"], summary["table2"]["frac_0.1"][1])
    assert list(rows.groupby("run")["n"].first()) == [3, 3, 4]


def test_a_damaged_run_is_skipped_with_its_line(three_runs, tmp_path):
    root = Path(shutil.copytree(three_runs, tmp_path / "runs"))
    (root / "step_0.05" / "summaries.json").write_text("{")  # cut
    (root / "step_0.1" / "settings.json").write_text("[]")
    with pytest.warns(SkippedRun) as caught:
        rows = collect(root)
    assert set(rows["run"]) == {"step_0.02"}
    lines = rows.attrs["skipped"]
    assert [str(w.message) for w in caught] == lines and len(lines) == 2
    assert lines[0].startswith(f"{root / 'step_0.05'}: summaries.json") and "not valid JSON" in lines[0]
    assert lines[1].startswith(str(root / "step_0.1" / "settings.json")) and "damaged" in lines[1]
    assert all("\n" not in line and line.endswith("(skipped)") for line in lines)
    broken = load_run(root / "step_0.05")  # the run itself still reads: its tables are said to be damaged
    assert broken.rows.empty and len(broken.sources) == 6 and any("summaries.json" in p for p in broken.problems)


def test_an_unfinished_run_is_skipped_and_an_empty_folder_gives_no_rows(three_runs, tmp_path):
    root = Path(shutil.copytree(three_runs, tmp_path / "runs"))
    (root / "step_0.02" / "summaries.json").unlink()
    with pytest.warns(SkippedRun, match="not finished"):
        assert len(collect(root)) == 4
    (tmp_path / "empty").mkdir()
    assert collect(tmp_path / "empty").empty
    with pytest.raises(FileNotFoundError, match="not a folder of runs"):
        collect(tmp_path / "nowhere")


def test_reading_writes_nothing(offline_run, three_runs):
    before = folder_listing(offline_run), folder_listing(three_runs)
    load_run(offline_run)
    collect(three_runs)
    for run in sorted(three_runs.iterdir()):
        load_run(run)
    assert (folder_listing(offline_run), folder_listing(three_runs)) == before


def test_the_paired_lines_say_what_was_shared_and_left_out(three_runs):
    """The runs of 3 and 4 sources share 3 images (protocol.compare pairs them; its numbers are tested there)."""
    from blindspots_nb.protocol.compare import SHARED_POOL_HINT, paired_comparison
    from blindspots_nb.results.across_runs import paired_notes

    difference = paired_comparison(three_runs / "step_0.02", three_runs / "step_0.1")
    notes = paired_notes(difference, ("step_0.02", "step_0.1"))
    assert notes == [f"fonts/{model}: 3 sources shared (paired by image sha256); left out: 0 only in step_0.02, 1 only "
                     "in step_0.1; with fewer than 10, its standard errors are rough"
                     for model in ("fonts_cnn", "fonts_cnn_at")] + [SHARED_POOL_HINT]
    one = difference.assign(n_shared=1, n_first=1, n_second=1)
    assert paired_notes(one, ("a", "b"))[0] == "fonts/fonts_cnn: 1 sources shared (paired by image sha256); too few to " \
                                               "compare (fewer than 2)"


def test_the_across_runs_view_filters_and_plots(three_runs):
    from blindspots_nb.results.across_runs import AcrossRuns, filtered, metric_figure, settings_that_vary

    rows = collect(three_runs)
    assert {"lst.step_size", "n_sources", "run", "model", "display_name", "weights_sha256"} <= set(
        settings_that_vary(rows))
    assert "rmse_mean" not in settings_that_vary(rows) and "rounds" not in settings_that_vary(rows)
    assert set(filtered(rows, {"lst.step_size": [0.05, 0.1]})["run"]) == {"step_0.05", "step_0.1"}
    figure = metric_figure(rows, "frac_0.1", "lst.step_size")
    points = {(trace.name, x): (y, e) for trace in figure.data for x, y, e in zip(trace.x, trace.y, trace.error_y.array)}
    for _, row in rows.iterrows():
        assert points[(f"{row['display_name']}, fonts", row["lst.step_size"])] == (row["frac_0.1_mean"],
                                                                                  row["frac_0.1_std"])
    with pytest.raises(ValueError, match="no number 'accuracy'"):
        metric_figure(rows, "accuracy", "run")
    view = AcrossRuns(three_runs)
    view.filters["run"].value = ("step_0.02",)
    assert set(view.shown()["run"]) == {"step_0.02"} and "step_0.1" not in view.table.value
    assert len(view.plot.children[0].data[0].x) == 1
    assert "3 sources shared" in view.paired.value
    assert "3 runs below" in view.header.value and "made by blindspots_nb" in view.header.value
    assert set(view.rows["device"]).pop() in view.header.value


def test_a_pairs_triangle_is_the_stored_grid(offline_run):
    """Run.triangle gives the grid the run stored for the source and pair: the pair's own (a run of format
    version 2: (sources, pairs, points)) or the mean over its pairs (an older run: (sources, points))."""
    import torch

    run = load_run(offline_run)
    pair = run.pairs.iloc[-1]
    triangle = run.triangle(pair["experiment"], pair["model"], int(pair["source"]), (pair["round_a"], pair["round_b"]))
    grids = torch.load(offline_run / pair["experiment"] / pair["model"] / "triangles" / "b0000.pt", weights_only=True)
    expected = grids[int(pair["source"]), 0] if grids.ndim == 3 else grids[int(pair["source"])]  # 2 rounds: one pair
    assert torch.equal(triangle.grid, expected.double()) and triangle.divisions == 2
    assert run.triangle(pair["experiment"], pair["model"], 0, (0, 1)).pair == (0, 1)


def test_the_collect_benchmark_collects_every_linked_copy(three_runs, capsys):
    from helpers import load_benchmark

    median = load_benchmark("collect_runs").main(["--run", str(three_runs / "step_0.05"), "--runs", "3",
                                                  "--repeats", "2"])
    printed = capsys.readouterr().out
    assert median > 0 and "collect on 3 runs (6 rows" in printed and "median" in printed
