"""Two runs compared source by source: paired by each image's sha256 over the sources both
measured (the rest counted and left out), the settings that differ named, too few shared
refused or warned of, and two checkpoints of one model with different pools compared so."""

import csv
import json
import math
import statistics

import pytest
import torch

from blindspots_nb import protocol
from blindspots_nb.cli import main
from blindspots_nb.execution import Execution
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunStore
from blindspots_nb.protocol import run as run_module
from blindspots_nb.protocol.compare import FEW_SHARED, SHARED_POOL_HINT

TINY_LST = LSTConfig(iterations=5, step_size=0.05)
COLUMNS = [*protocol.TABLE1_COLUMNS, *protocol.TABLE2_COLUMNS]


def _finished_run(folder, experiment, digests, numbers, weights=None):
    """A run folder as a finished run leaves it, as far as compare reads it: a pool of images
    with sha256 ``digests``; ``numbers[model][k]`` is source k's number in every Table-2 column,
    and its two blind spots hold it and three times it in every Table-1 column (mean: twice it)."""
    store = RunStore(folder)
    store.begin([experiment], weights={model: {"file": f"/w/{model}.pt", "sha256": digest, "verified": False,
                                               "check": "none"} for model, digest in (weights or {}).items()})
    n = len(digests)
    store.save_pool(experiment, {"image_source": str(experiment.image_source),
                                 "names": [f"{d[:6]}.png" for d in digests], "sha256": digests, "sha256_of": "files", "labels": [0] * n,
                                 "targets": [[(k + 1) % n for k in range(n)]] * experiment.rounds})
    summaries = {}
    for model, values in numbers.items():
        for round_ in range(experiment.rounds):
            store.save_blind_spots(experiment, model, 0, round_, torch.zeros(n, 1, 1, 1), [
                {"source": k, "round": round_, "initial_confidence": 1.0, "confidence": 0.9,
                 **{key: value * (1 + 2 * round_) for key in protocol.TABLE1_COLUMNS}} for k, value in enumerate(values)])
        store.save_triangles(experiment, model, 0, [{"source": k, "label": 0, "pairs": 1, "edge_min": 0.0,
                                                     **dict.fromkeys(protocol.TABLE2_COLUMNS, value)}
                                                    for k, value in enumerate(values)], torch.zeros(n, 3))
        summaries[model] = protocol.summarize_model(store, experiment, model)
    store.save_tables({}, {experiment.name: summaries})
    return folder


def _rows(text):
    """(model, column label) -> the cells of a comparison's table line."""
    cells = [line.strip("| ").split(" | ") for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    return {(row[1], row[2]): row for row in cells[1:]}


def _glyphs(n):
    return Experiment("fonts:test", ("fonts_cnn",), TINY_LST, rounds=2, batch_size=64, name="glyphs", n_sources=n)


def test_compare_pairs_by_image_and_leaves_out_the_sources_one_run_lacks(tmp_path):
    a = [0.10, 0.20, 0.30, 0.40, 0.50, 0.60]  # images 0 to 5
    b = [0.35, 0.44, 0.52, 0.81, 0.11, 0.12]  # images 2 to 7, in another pool order: 5, 4, 3, 2, then 6, 7
    _finished_run(tmp_path / "a", _glyphs(6), [f"{k:064x}" for k in range(6)], {"fonts_cnn": a}, {"fonts_cnn": "a" * 64})
    _finished_run(tmp_path / "b", _glyphs(6), [f"{k:064x}" for k in (5, 4, 3, 2, 6, 7)], {"fonts_cnn": b},
                  {"fonts_cnn": "b" * 64})
    differences = [0.35 - 0.60, 0.44 - 0.50, 0.52 - 0.40, 0.81 - 0.30]  # images 5, 4, 3, 2
    frame = protocol.paired_comparison(tmp_path / "a", tmp_path / "b")
    assert list(frame["column"]) == COLUMNS and set(frame["n_shared"]) == {4}
    assert set(frame["n_first"]) == set(frame["n_second"]) == {6}
    frac = frame.set_index("column").loc["frac_0.2"]
    assert frac["difference_mean"] == pytest.approx(statistics.mean(differences), abs=1e-12)
    assert frac["difference_std"] == pytest.approx(statistics.stdev(differences), abs=1e-12)
    assert frac["standard_error"] == pytest.approx(statistics.stdev(differences) / 2, abs=1e-12)
    assert frac["first_mean"] == pytest.approx(statistics.mean([0.30, 0.40, 0.50, 0.60]), abs=1e-12)
    rmse = frame.set_index("column").loc["rmse"]  # Table 1: a source's mean over its blind spots
    assert rmse["difference_mean"] == pytest.approx(2 * statistics.mean(differences), abs=1e-12)

    text = protocol.compare_runs(tmp_path / "a", tmp_path / "b")
    assert "- glyphs/fonts_cnn: 4 sources shared; left out: 2 only in a, 2 only in b; fewer than " \
           f"{FEW_SHARED}: the standard errors are rough" in text.splitlines()
    assert SHARED_POOL_HINT in text.splitlines() and "std of the first" not in text
    se = statistics.stdev(differences) / 2
    assert _rows(text)[("fonts_cnn", "Frac d=0.2")] == [
        "glyphs", "fonts_cnn", "Frac d=0.2", "0.450", "0.530", f"{statistics.mean(differences):+.3f} ± {se:.3f}",
        f"{statistics.stdev(differences):.3f}", "4"]


def test_two_models_of_one_run_share_its_pool_and_every_source_pairs(tmp_path):
    experiment = Experiment("fonts:test", ("fonts_cnn", "fonts_cnn_at"), TINY_LST, rounds=2, batch_size=64)
    run = _finished_run(tmp_path / "run", experiment, [f"{k:064x}" for k in range(3)],
                        {"fonts_cnn": [0.1, 0.2, 0.3], "fonts_cnn_at": [0.2, 0.4, 0.5]})
    assert main(["compare", str(run), str(run), "--models", "fonts_cnn,fonts_cnn_at"]) == 0
    frame = protocol.paired_comparison(run, run, models=("fonts_cnn", "fonts_cnn_at"))
    assert set(frame["n_shared"]) == {3} and set(frame["model"]) == {"fonts_cnn vs fonts_cnn_at"}
    assert frame.set_index("column").loc["p_src", "difference_mean"] == pytest.approx(0.5 / 3, abs=1e-12)
    text = protocol.compare_runs(run, run, models=("fonts_cnn", "fonts_cnn_at"))
    assert "- fonts/fonts_cnn vs fonts_cnn_at: 3 sources shared; left out: 0 only in run, 0 only in run; " \
           "fewer than 10: the standard errors are rough" in text and SHARED_POOL_HINT not in text
    with pytest.raises(ValueError, match="no models fonts_cnn and resnet50 in common"):
        protocol.paired_comparison(run, run, models=("fonts_cnn", "resnet50"))


def test_too_few_shared_sources_is_one_line_and_so_is_a_models_option_that_is_not_two(tmp_path, capsys):
    _finished_run(tmp_path / "a", _glyphs(3), [f"{k:064x}" for k in range(3)], {"fonts_cnn": [0.1, 0.2, 0.3]})
    _finished_run(tmp_path / "b", _glyphs(3), [f"{k:064x}" for k in (2, 3, 4)], {"fonts_cnn": [0.1, 0.2, 0.3]})
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and "share fewer than 2 sources" in error and "--models a,b" in error
    with pytest.raises(SystemExit) as stopped:
        main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--models", "fonts_cnn"])
    assert stopped.value.code == 2 and "'fonts_cnn' is not two model names" in capsys.readouterr().err


def test_compare_names_the_settings_and_weights_that_differ(tmp_path):
    digests = [f"{k:064x}" for k in range(3)]
    fp32 = Experiment("fonts:test", ("fonts_cnn",), TINY_LST, rounds=2, batch_size=64)
    bf16 = Experiment("fonts:train", ("fonts_cnn",), TINY_LST, rounds=2, batch_size=64,
                      execution=Execution(precision="bf16"))
    _finished_run(tmp_path / "fp32", fp32, digests, {"fonts_cnn": [0.1, 0.2, 0.3]}, {"fonts_cnn": "a" * 64})
    _finished_run(tmp_path / "bf16", bf16, digests, {"fonts_cnn": [0.1, 0.2, 0.4]}, {"fonts_cnn": "b" * 64})
    head = protocol.compare_runs(tmp_path / "fp32", tmp_path / "bf16").split("\n\n")[0].splitlines()
    assert head[0] == "Settings that differ between fp32 and bf16:"
    assert sorted(head[1:4]) == sorted([
        "- fonts: image_source is fonts:test in fp32, fonts:train in bf16",
        "- fonts: execution.precision is fp32 in fp32, bf16 in bf16 (how the models ran)",
        f"- weights of fonts_cnn: sha256 {'a' * 12} in fp32, {'b' * 12} in bf16"])
    assert head[5].startswith("- fonts/fonts_cnn: 3 sources shared; left out: 0 only in fp32, 0 only in bf16")
    _finished_run(tmp_path / "again", fp32, digests, {"fonts_cnn": [0.1, 0.2, 0.3]}, {"fonts_cnn": "a" * 64})
    assert protocol.compare_runs(tmp_path / "fp32", tmp_path / "again").startswith(
        "The same settings and weights in fp32 and again.\n")
    with pytest.raises(FileNotFoundError, match="holds no finished tables"):
        protocol.compare_runs(tmp_path / "fp32", tmp_path / "nowhere")


@pytest.mark.parametrize("content", ["null", "{", "[]", '{"glyphs": null}', '{"glyphs": {"fonts_cnn": {"table1": {}}}}',
                                     json.dumps({"elsewhere": {"fonts_cnn": {}}})])
def test_compare_names_a_malformed_summaries_file_in_one_line(tmp_path, capsys, content):
    for name in ("a", "b"):
        _finished_run(tmp_path / name, _glyphs(3), [f"{k:064x}" for k in range(3)], {"fonts_cnn": [0.1, 0.2, 0.3]})
    (tmp_path / "b" / "summaries.json").write_text(content)
    for runs in (["a", "b"], ["b", "a"]):
        assert main(["compare", *(str(tmp_path / run) for run in runs)]) == 2
        error = capsys.readouterr().err
        assert len(error.splitlines()) == 1 and str(tmp_path / "b" / "summaries.json") in error
        assert f"blindspots-nb merge --out-dir {tmp_path / 'b'}" in error


@pytest.mark.parametrize("damage", ["settings", "pool without hashes", "rows"])
def test_compare_names_a_damaged_settings_pool_or_rows_file(tmp_path, capsys, damage):
    for name in ("a", "b"):
        _finished_run(tmp_path / name, _glyphs(3), [f"{k:064x}" for k in range(3)], {"fonts_cnn": [0.1, 0.2, 0.3]})
    store, experiment = RunStore(tmp_path / "b"), _glyphs(3)
    if damage == "settings":
        (tmp_path / "b" / "settings.json").write_text("null")
        expected = "settings.json"
    elif damage == "pool without hashes":
        record = store.pool(experiment)
        store.save_pool(experiment, {**record, "sha256": [None] * 3})
        expected = "pool.json records no sha256 of every image"
    else:
        store.save_blind_spots(experiment, "fonts_cnn", 0, 1, torch.zeros(3, 1, 1, 1), [{"source": "x"}] * 3)
        expected = "fonts_cnn is not as blindspots-nb writes it"
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1 and expected in error


# --------------------------------------------------------------------------- two checkpoints, real runs
def _glyph_folder(root, per_class=3, classes=5):
    """A labelled folder of FONTS test glyphs: ``per_class`` files of each of the first classes."""
    from PIL import Image

    from blindspots_nb.data.sources import open_source

    glyphs = open_source("fonts:test", (1, 32, 32))
    for label in range(classes):
        (root / "ABCDE"[label]).mkdir(parents=True)
        for k, index in enumerate([i for i, y in enumerate(glyphs.labels.tolist()) if y == label][:per_class]):
            Image.fromarray((glyphs[index][0][0] * 255).round().byte().numpy()).save(root / "ABCDE"[label] / f"g{k}.png")
    return root


def _run(folder, experiment, weights):
    store = RunStore(folder)
    store.begin([experiment], weights=run_module.weights_identity([experiment], weights))
    protocol.prepare(experiment, store, device="cpu", weights=weights)
    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False, weights=weights.get("fonts_cnn"))
    protocol.assemble(store, [experiment])
    return store


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_two_checkpoints_of_one_model_with_different_pools_pair_over_their_shared_sources(tmp_path, monkeypatch):
    from blindspots_nb.models.registry import get_entry

    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")  # LPIPS's trunk is not fetched: NaN, left out of the rows
    images = _glyph_folder(tmp_path / "images")
    at_weights = str(get_entry("fonts_cnn_at").locate())  # the AT checkpoint as fonts_cnn's weights
    runs = {}
    for name, weights, n_sources, seed in (("normal", {}, 6, 0), ("at", {"fonts_cnn": at_weights}, 5, 1)):
        experiment = Experiment(f"folder:{images}", ("fonts_cnn",), LSTConfig(iterations=3, step_size=0.05),
                                name="glyphs", n_sources=n_sources, per_class=2, rounds=2, batch_size=8,
                                divisions=2, min_conf=0.3, seed=seed)
        runs[name] = _run(tmp_path / name, experiment, weights)

    # independently of the package: each run's numbers per image, from pool.json and the CSVs
    per_image = {}
    for name, store in runs.items():
        pool = json.loads((store.out_dir / "glyphs" / "pool.json").read_text())
        spots, sources = (_csv(store.out_dir / "glyphs" / "fonts_cnn" / f"{what}.csv")
                          for what in ("per_blindspot", "per_source"))
        per_image[name] = {pool["sha256"][int(row["source"])]: {
            "rmse": statistics.mean(float(s["rmse"]) for s in spots if s["source"] == row["source"]),
            "frac_0.2": float(row["frac_0.2"])} for row in sources}
    shared = per_image["normal"].keys() & per_image["at"].keys()
    assert 2 <= len(shared) < 5  # the pools differ, and overlap

    frame = protocol.paired_comparison(tmp_path / "normal", tmp_path / "at").set_index("column")
    for column in ("rmse", "frac_0.2"):
        differences = [per_image["at"][d][column] - per_image["normal"][d][column] for d in shared]
        assert frame.loc[column, "n_shared"] == len(shared)
        assert frame.loc[column, "difference_mean"] == pytest.approx(statistics.mean(differences), abs=1e-9)
        assert frame.loc[column, "standard_error"] == pytest.approx(
            statistics.stdev(differences) / math.sqrt(len(shared)), abs=1e-9)
    text = protocol.compare_runs(tmp_path / "normal", tmp_path / "at")
    assert f"- glyphs/fonts_cnn: {len(shared)} sources shared; left out: {6 - len(shared)} only in normal, " \
           f"{5 - len(shared)} only in at" in text
    assert "- weights of fonts_cnn: sha256" in text and SHARED_POOL_HINT in text

    # over all of a run's sources, the per-source numbers average to the run's table means
    numbers = protocol.source_numbers(tmp_path / "normal", "glyphs", "fonts_cnn")
    summary = json.loads((tmp_path / "normal" / "summaries.json").read_text())["glyphs"]["fonts_cnn"]
    for table, columns in (("table1", protocol.TABLE1_COLUMNS), ("table2", protocol.TABLE2_COLUMNS)):
        for key in columns:
            if not math.isnan(summary[table][key][0]):
                assert numbers[key].mean() == pytest.approx(summary[table][key][0], abs=1e-9)
