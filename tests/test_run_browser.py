"""The browser of a run, headless (:mod:`blindspots_nb.browser.runs`) and its widgets: its numbers
are the run's CSV and .pt files read independently; it never writes to the folder; it says what an
unfinished run lacks; a damaged or hostile file is one line naming it, and the rest still shows."""

import csv
import hashlib
import html
import json
import math
import os
import pickle
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb import protocol
from blindspots_nb.browser.findings import CONTRADICTIONS
from blindspots_nb.browser.runs import SOURCE_COLUMNS, StoredRun
from blindspots_nb.browser.view import RunBrowser
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunFolderError, RunStore
from blindspots_nb.protocol import run as run_module
from helpers import HOSTILE_CLASS, HOSTILE_FILE, HOSTILE_MODEL, folder_listing, make_hostile_run

MODELS = ("fonts_cnn", "fonts_cnn_at")
BATCH = 2


def _experiment():
    return Experiment("fonts:test", MODELS, LSTConfig(iterations=5, step_size=0.05), n_sources=5, rounds=3,
                      batch_size=BATCH, divisions=3)


def _start(folder: Path) -> tuple[RunStore, Experiment]:
    store, experiment = RunStore(folder), _experiment()
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    return store, experiment


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished run of both FONTS CNNs (tables assembled; no executed reports: made as a library)."""
    store, experiment = _start(tmp_path_factory.mktemp("runs") / "finished")
    for model in MODELS:
        protocol.run_model(experiment, model, store, device="cpu", progress=False)
    protocol.assemble(store, [experiment])
    return store.out_dir


@pytest.fixture(scope="module")
def unfinished(tmp_path_factory) -> Path:
    """A run stopped part-way (read only by the tests): fonts_cnn's first of two shards run (batches 0
    and 2 of 0-2), fonts_cnn_at not started, the tables not assembled."""
    store, experiment = _start(tmp_path_factory.mktemp("runs") / "unfinished")
    protocol.run_model(experiment, "fonts_cnn", store, shard=(0, 2), device="cpu", progress=False)
    return store.out_dir


@pytest.fixture
def copy(finished, tmp_path) -> Path:
    """A copy of the finished run to damage."""
    return Path(shutil.copytree(finished, tmp_path / "copy"))


def _csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _seal_again(piece: Path):
    """Write the manifest of ``piece``'s files as they are now (a folder made by someone else may be
    consistent and still hostile)."""
    manifest = piece.with_name(piece.name + ".manifest.json")
    record = json.loads(manifest.read_text())
    for name in record["files"]:
        data = (piece.parent / name).read_bytes()
        record["files"][name] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    manifest.write_text(json.dumps(record))


def _browse_everything(run: StoredRun):
    """Every view the browser has, for every model, source and pair."""
    for key in run.models():
        run.missing(), run.caption(key), run.pool_images(key)
        for column in SOURCE_COLUMNS:
            run.sorted_sources(key, column)
        for contradiction in CONTRADICTIONS:
            run.contradicting(key, contradiction)
        for row in run.source_rows(key):
            run.blind_spot_rows(key, row["source"]), run.blind_spot_images(key, row["source"])
            for pair in ((0, 1), (0, 2), (1, 2)):
                run.triangle(key, row["source"], pair)


def test_the_numbers_are_those_of_the_run_files(finished):
    run = StoredRun(finished)
    assert run.models() == ["fonts/fonts_cnn", "fonts/fonts_cnn_at"]
    pool = json.loads((finished / "fonts" / "pool.json").read_text())
    for model in MODELS:
        folder = finished / "fonts" / model
        per_source = {int(r["source"]): r for r in _csv(folder / "per_source.csv")}
        per_blind_spot = _csv(folder / "per_blindspot.csv")
        rows = run.source_rows(f"fonts/{model}")
        assert [r["source"] for r in rows] == sorted(per_source) == list(range(5))
        for row in rows:
            source = row["source"]
            assert row["name"] == pool["names"][source] and row["class"] == pool["class_names"][source]
            for column in ("p_src", "avg_conf", "frac_0", "frac_0.1", "path_conf", "edge_min"):
                assert row[column] == float(per_source[source][column])
            spots = [r for r in per_blind_spot if int(r["source"]) == source]
            assert row["rmse_max"] == max(float(r["rmse"]) for r in spots)
            assert row["drop_max"] == max(float(r["initial_confidence"]) - float(r["confidence"]) for r in spots)
            shown = run.blind_spot_rows(f"fonts/{model}", source)
            assert [(s["round"], s["target"], s["confidence"], s["rmse"], s["ssim"]) for s in shown] == [
                (int(r["round"]), int(r["target"]), float(r["confidence"]), float(r["rmse"]), float(r["ssim"]))
                for r in spots]
            assert [s["target"] for s in shown] == [pool["targets"][r][source] for r in range(3)]
            images = run.blind_spot_images(f"fonts/{model}", source)
            for round_, image in images.items():
                stored = torch.load(folder / "blind_spots" / f"b{source // BATCH:04d}_r{round_}.pt", weights_only=True)
                assert torch.equal(image, stored[source % BATCH])
            grids = torch.load(folder / "triangles" / f"b{source // BATCH:04d}.pt", weights_only=True)[source % BATCH]
            triangle = run.triangle(f"fonts/{model}", source, (0, 2))  # the second of the pairs (0, 1), (0, 2), (1, 2)
            assert torch.equal(triangle.grid, grids[1].double()) and triangle.grid.shape == (10,)  # 3 divisions
            assert triangle.grid[0] == pytest.approx(row["p_src"], abs=1e-6)  # the source corner is p_src
    assert run.problems == []


def test_the_triangle_has_the_true_shape_of_the_picked_pair(finished):
    from blindspots_nb.analysis.geometry import triangle_shape
    from blindspots_nb.data.sources import open_source

    run = StoredRun(finished)
    images, where = run.pool_images("fonts/fonts_cnn")
    assert "reopened from fonts:test" in where
    glyphs = open_source("fonts:test", (1, 32, 32), seed=0)
    source = 3
    source_image = glyphs[json.loads((finished / "fonts" / "pool.json").read_text())["indices"][source]][0]
    assert torch.equal(images[source], source_image)
    spots = run.blind_spot_images("fonts/fonts_cnn", source)
    triangle = run.triangle("fonts/fonts_cnn", source, (1, 2))
    assert torch.allclose(triangle.shape, triangle_shape(source_image, spots[1], spots[2]))
    assert triangle.own and "the triangle of the blind spots of rounds 1 and 2" in triangle.note
    edges = [(spot - source_image).double().norm() for spot in (spots[1], spots[2])]
    cosine = ((spots[1] - source_image).flatten().double() @ (spots[2] - source_image).flatten().double()) / (
        edges[0] * edges[1])
    assert (f"distances to the source {edges[0]:.3g} and {edges[1]:.3g}, angle "
            f"{math.degrees(math.acos(cosine)):.1f} deg") in triangle.note
    with pytest.raises(ValueError, match="two rounds i < j below 3"):
        run.triangle("fonts/fonts_cnn", source, (2, 1))


def test_sorting_and_the_contradictions(finished):
    run = StoredRun(finished)
    per_blind_spot = _csv(finished / "fonts" / "fonts_cnn_at" / "per_blindspot.csv")
    largest = {}
    for row in per_blind_spot:
        largest[int(row["source"])] = max(largest.get(int(row["source"]), 0.0), float(row["rmse"]))
    rmse = next(c for c in CONTRADICTIONS if c.column == "rmse_max")
    assert [r["source"] for r in run.contradicting("fonts/fonts_cnn_at", rmse, 5)] == sorted(
        largest, key=largest.get, reverse=True)
    path = {int(r["source"]): float(r["path_conf"]) for r in _csv(finished / "fonts" / "fonts_cnn_at" / "per_source.csv")}
    assert [r["source"] for r in run.sorted_sources("fonts/fonts_cnn_at", "path_conf")] == sorted(path, key=path.get)
    assert len({c.name for c in CONTRADICTIONS}) == len(CONTRADICTIONS) and all(c.column in SOURCE_COLUMNS
                                                                               for c in CONTRADICTIONS)
    with pytest.raises(ValueError, match="no column 'speed' to sort by"):
        run.sorted_sources("fonts/fonts_cnn_at", "speed")
    with pytest.raises(KeyError, match="has no model 'fonts/resnet50'"):
        run.source_rows("fonts/resnet50")
    with pytest.raises(KeyError, match="'fonts/resnet50'.*fonts/fonts_cnn, fonts/fonts_cnn_at"):
        RunBrowser(finished, model_name="fonts/resnet50")
    with pytest.raises(ValueError, match="'speed'.*p_src, avg_conf"):
        RunBrowser(finished, sort_by="speed")


def test_every_view_says_what_produced_it(finished):
    run = StoredRun(finished)
    settings = json.loads((finished / "settings.json").read_text())
    record = json.loads((finished / "fonts" / "fonts_cnn_at" / "record_shard0of1.json").read_text())
    caption = run.caption("fonts/fonts_cnn_at")
    for fact in ("fonts_cnn_at", settings["weights"]["fonts_cnn_at"]["sha256"][:12], "fonts:test", "iterations=5",
                 "step_size=0.05", "rounds=3", "divisions=3", "precision=fp32", record["device"],
                 f"blindspots_nb {record['versions']['blindspots_nb']}"):
        assert fact in caption
    browser = RunBrowser(finished, model_name="fonts/fonts_cnn_at")
    assert browser.caption.value.count(record["device"]) == 1
    assert all(any("fonts_cnn_at [weights sha256" in a.text for a in figure.layout.annotations if a.name == "caption")
               for figure in browser.triangle_view.children)
    contour = browser.triangle_view.children[1]
    z = contour.get_state(["_widget_data"])["_widget_data"][0]["z"]  # as the widget sends it
    assert contour.data[0].type == "contour" and any(None in row for row in z)  # outside the triangle: null
    json.dumps(z, allow_nan=False)  # a widget's state travels as JSON, which has no NaN


def test_browsing_never_writes_to_the_folder(finished):
    before = folder_listing(finished)
    os.utime(finished, ns=(before["."], before["."]))
    run = StoredRun(finished)
    _browse_everything(run)
    browser = RunBrowser(finished)
    for key in run.models():
        browser.model_menu.value = key
        for contradiction in CONTRADICTIONS:
            browser.contradiction_menu.value = contradiction.name
    assert folder_listing(finished) == before  # no file, lock or manifest written, removed or touched


def test_a_read_only_folder_opens(copy):
    for path in [*copy.rglob("*"), copy]:
        path.chmod(0o555 if path.is_dir() else 0o444)
    run = StoredRun(copy)
    _browse_everything(run)
    assert run.problems == [] and len(run.source_rows("fonts/fonts_cnn")) == 5


def test_an_unfinished_run_says_what_is_missing(unfinished):
    run = StoredRun(unfinished)
    missing = "\n".join(run.missing())
    assert "fonts/fonts_cnn_at: not started" in missing
    assert "fonts/fonts_cnn: blind spots missing for 3 of 9 batch rounds (b0001_r0, b0001_r1, b0001_r2)" in missing
    assert "fonts/fonts_cnn: triangles missing for 1 of 3 batches (b0001)" in missing
    assert "fonts/fonts_cnn: no whole report" in missing and "tables were not assembled" in missing
    rows = {r["source"]: r for r in run.source_rows("fonts/fonts_cnn")}
    assert rows[2]["p_src"] is None and rows[2]["blind_spots"] == 0 and rows[0]["blind_spots"] == 3
    assert run.triangle("fonts/fonts_cnn", 2) is None and run.triangle("fonts/fonts_cnn", 4) is not None
    assert [r["source"] for r in run.sorted_sources("fonts/fonts_cnn", "p_src")][-2:] == [2, 3]  # no numbers: last
    assert run.source_rows("fonts/fonts_cnn_at")[0]["p_src"] is None and run.problems == []
    browser = RunBrowser(unfinished, source_index=2)
    assert "not started" in browser.header.value and "No stored triangle" in browser.triangle_view.children[0].value


def test_a_run_stopped_before_its_pool(tmp_path):
    store, experiment = RunStore(tmp_path / "early"), _experiment()
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    run = StoredRun(store.out_dir)
    assert run.missing()[0].startswith("fonts: no pool yet") and run.source_rows("fonts/fonts_cnn") == []
    assert "No source of this model is stored yet" in RunBrowser(store.out_dir).source_view.children[0].value


def test_a_folder_that_holds_no_run_is_one_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="holds no run"):
        StoredRun(tmp_path)
    (tmp_path / "settings.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="settings.json is not valid JSON"):
        StoredRun(tmp_path)
    assert "settings.json is not valid JSON" in RunBrowser(tmp_path).header.value


def test_names_in_the_settings_that_lead_out_of_the_folder_are_refused(copy, tmp_path):
    outside = tmp_path / "outside" / "fonts_cnn"
    shutil.copytree(copy / "fonts" / "fonts_cnn", outside)  # a model folder the run does not hold
    settings = json.loads((copy / "settings.json").read_text())
    settings["experiments"][0]["name"] = "../outside"
    (copy / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(RunFolderError, match=r"experiment name '\.\./outside'"):
        StoredRun(copy)


def test_damaged_files_are_named_and_the_rest_shows(copy):
    model = copy / "fonts" / "fonts_cnn"
    cut = model / "blind_spots" / "b0001_r1.pt"
    cut.write_bytes(cut.read_bytes()[:200])  # cut: its size no longer matches its manifest
    table = model / "triangles" / "b0000.csv"
    header, first, *rest = table.read_bytes().split(b"\n")
    table.write_bytes(b"\n".join([header, first.replace(b"0.", b"x.", 1), *rest]))  # the same size, not a number
    other = copy / "fonts" / "fonts_cnn_at" / "blind_spots" / "b0002_r0.pt"
    other.write_bytes(b"not a zip" + other.read_bytes()[9:])  # the same size, not a tensor file
    (copy / "fonts" / "fonts_cnn_at" / "record_shard0of1.json").write_text("{cut")
    run = StoredRun(copy)
    _browse_everything(run)
    assert sorted(run.problems) == sorted([
        "fonts/fonts_cnn/blind_spots/b0001_r1.pt: is missing or not the size its manifest names; its piece is left out",
        f"fonts/fonts_cnn/triangles/b0000.csv: holds a value that is not a number ({_float_error(table)}); left out",
        next(p for p in run.problems if p.startswith("fonts/fonts_cnn_at/blind_spots/b0002_r0.pt: cannot be loaded")),
        next(p for p in run.problems if p.startswith("fonts/fonts_cnn_at/record_shard0of1.json: is not valid JSON")),
    ])
    assert all("\n" not in p for p in run.problems)
    rows = {r["source"]: r for r in run.source_rows("fonts/fonts_cnn")}
    assert rows[0]["p_src"] is None and rows[2]["p_src"] is not None  # batch 0's triangles out, the rest shows
    assert rows[2]["blind_spots"] == 2 and sorted(run.blind_spot_images("fonts/fonts_cnn", 3)) == [0, 2]
    assert sorted(run.blind_spot_images("fonts/fonts_cnn_at", 4)) == [1, 2]
    assert "not recorded" in run.caption("fonts/fonts_cnn_at")
    browser = RunBrowser(copy, source_index=2)
    assert "b0001_r1.pt" in browser.header.value and len(browser.triangle_view.children) == 2


def _float_error(table: Path) -> str:
    value = next(v for row in _csv(table) for v in row.values() if v.startswith("x."))
    try:
        float(value)
    except ValueError as error:
        return str(error)


class _Pwned:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_a_run_folder",))


def test_a_hostile_tensor_file_runs_no_code(copy, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    piece = copy / "fonts" / "fonts_cnn" / "triangles" / "b0001"
    torch.save({"grid": _Pwned()}, piece.with_suffix(".pt"), pickle_protocol=pickle.HIGHEST_PROTOCOL)
    _seal_again(piece)  # its manifest agrees: only the load can refuse it
    os.mkfifo(copy / "fonts" / "fonts_cnn" / "record_shard1of2.json")  # reading it would wait forever
    run = StoredRun(copy)
    assert run.triangle("fonts/fonts_cnn", 2) is None
    assert not (tmp_path / "pwned_by_a_run_folder").exists()
    assert run.caption("fonts/fonts_cnn").startswith("fonts_cnn [weights sha256")  # the other record still read
    assert "| cpu (" in run.caption("fonts/fonts_cnn")
    assert len(run.problems) == 2 and run.problems[0].startswith(
        "fonts/fonts_cnn/triangles/b0001.pt: cannot be loaded (UnpicklingError")
    assert run.problems[1] == "fonts/fonts_cnn/record_shard1of2.json: is not a regular file; left out"


def test_an_older_runs_column_name_is_read(copy):
    piece = copy / "fonts" / "fonts_cnn" / "blind_spots" / "b0001_r2"
    table = piece.with_suffix(".csv")
    rows = _csv(table)
    table.write_text(table.read_text().replace("initial_confidence", "p0"))  # as runs wrote it before the renaming
    _seal_again(piece)
    with pytest.warns(DeprecationWarning, match="old key.s. p0 read as initial_confidence"):
        shown = StoredRun(copy).blind_spot_rows("fonts/fonts_cnn", 3)
    assert shown[2]["initial_confidence"] == float(next(r for r in rows if r["source"] == "3")["initial_confidence"])


def test_rows_and_grids_that_do_not_fit_the_run_are_named(copy):
    spots = copy / "fonts" / "fonts_cnn" / "blind_spots" / "b0000_r1"
    lines = spots.with_suffix(".csv").read_bytes().split(b"\r\n")
    cells = lines[1].split(b",")
    cells[lines[0].split(b",").index(b"target")] = b"97"  # a target no source of the pool is
    lines[1] = b",".join(cells)
    spots.with_suffix(".csv").write_bytes(b"\r\n".join(lines))
    triangles = copy / "fonts" / "fonts_cnn" / "triangles" / "b0001"
    torch.save(torch.rand(2, 7), triangles.with_suffix(".pt"))  # 7 points: no grid of 3 divisions (10)
    _seal_again(spots), _seal_again(triangles)
    run = StoredRun(copy)
    assert [r["round"] for r in run.blind_spot_rows("fonts/fonts_cnn", 0)] == [0, 2]
    assert [r["round"] for r in run.blind_spot_rows("fonts/fonts_cnn", 1)] == [0, 1, 2]
    assert run.triangle("fonts/fonts_cnn", 2) is None and run.triangle("fonts/fonts_cnn", 0) is not None
    assert run.problems == [
        "fonts/fonts_cnn/blind_spots/b0000_r1.csv: names target 97, not a source of the pool; that row is left out",
        "fonts/fonts_cnn/triangles/b0001.pt: holds grids of shape (7,), neither (3, 10) (each of 3 pairs) nor (10,) "
        "(their mean) for 3 divisions; left out"]


def test_each_pair_has_its_own_stored_triangle_the_grid_recomputed_from_its_blind_spots(finished):
    """Format version 2: a triangles piece holds each pair's grid, (sources, pairs, points); the
    triangle of the pair picked is that grid, as the model gives it again over the source and
    those two stored blind spots."""
    from blindspots_nb.analysis.geometry import triangles_confidence
    from blindspots_nb.models import load_model

    assert json.loads((finished / "settings.json").read_text())["version"] == 2
    stored = torch.load(finished / "fonts" / "fonts_cnn" / "triangles" / "b0001.pt", weights_only=True)
    assert stored.shape == (BATCH, 3, 10)  # 3 rounds: 3 pairs; 3 divisions: 10 points
    run, source = StoredRun(finished), 3  # batch 1, row 1
    images, _ = run.pool_images("fonts/fonts_cnn")
    spots = run.blind_spot_images("fonts/fonts_cnn", source)
    label = json.loads((finished / "fonts" / "pool.json").read_text())["labels"][source]
    again = triangles_confidence(load_model("fonts_cnn", device="cpu"), images[source][None],
                                 [spots[r][None] for r in range(3)], torch.tensor([label]), divisions=3)
    for k, pair in enumerate([(0, 1), (0, 2), (1, 2)]):  # itertools.combinations' order
        triangle = run.triangle("fonts/fonts_cnn", source, pair)
        assert triangle.own and f"blind spots of rounds {pair[0]} and {pair[1]}" in triangle.note
        torch.testing.assert_close(triangle.grid, stored[1, k].double())
        torch.testing.assert_close(triangle.grid, again[k, 0].double(), atol=1e-5, rtol=0)
    store, experiment = RunStore(finished), _experiment()
    torch.testing.assert_close(store.mean_triangle_grid(experiment, "fonts_cnn")[source], stored[1].mean(0))


def test_a_run_from_before_each_pairs_grid_shows_the_mean_and_says_so(copy):
    """A run of format version 1 stored each source's grid averaged over its pairs: every pair
    shows that mean, said in the note; a run resumed since (pieces of both formats) reads too."""
    triangles = copy / "fonts" / "fonts_cnn" / "triangles" / "b0001"
    grids = torch.load(triangles.with_suffix(".pt"), weights_only=True)
    torch.save(grids.mean(1), triangles.with_suffix(".pt"))  # (sources, points), as version 1 wrote it
    _seal_again(triangles)
    settings = json.loads((copy / "settings.json").read_text())
    del settings["version"]
    (copy / "settings.json").write_text(json.dumps(settings))
    run = StoredRun(copy)
    for pair in [(0, 1), (1, 2)]:
        triangle = run.triangle("fonts/fonts_cnn", 3, pair)
        assert not triangle.own and "averaged over the source's 3 pairs" in triangle.note
        assert "stores only their mean" in triangle.note and f"rounds {pair[0]} and {pair[1]}" in triangle.note
        torch.testing.assert_close(triangle.grid, grids[1].mean(0).double())
    assert run.triangle("fonts/fonts_cnn", 0, (1, 2)).own and run.problems == []  # batch 0: each pair's grid
    browser = RunBrowser(copy, model_name="fonts/fonts_cnn", source_index=3)
    assert "mean of its 3 pairs' triangles" in browser.triangle_view.children[0].layout.title.text
    torch.testing.assert_close(RunStore(copy).mean_triangle_grid(_experiment(), "fonts_cnn")[3], grids[1].mean(0))


def test_images_not_on_this_machine_leave_the_blind_spots_and_triangles(copy, tmp_path):
    settings = json.loads((copy / "settings.json").read_text())
    settings["experiments"][0]["image_source"] = f"folder:{tmp_path / 'gone'}"  # as on the machine that ran it
    (copy / "settings.json").write_text(json.dumps(settings))
    run = StoredRun(copy)
    images, where = run.pool_images("fonts/fonts_cnn")
    assert images is None and where.startswith(f"sources and targets not shown: the images of folder:{tmp_path}")
    assert len(run.blind_spot_images("fonts/fonts_cnn", 1)) == 3
    triangle = run.triangle("fonts/fonts_cnn", 1)
    assert "equilateral" in triangle.note and triangle.corners[0] is None and triangle.shape[1].tolist() == [1, 0]
    browser = RunBrowser(copy, source_index=1)
    assert "not at hand" in str([c.value for c in browser.source_view.children[1].children[0].children])
    assert len(browser.triangle_view.children) == 2 and run.problems == []


def test_the_view_follows_the_menus(finished):
    browser = RunBrowser(finished, model_name="fonts/fonts_cnn", sort_by="rmse_max")
    run = browser.run
    assert [value for _, value in browser.source_list.options] == [
        r["source"] for r in run.sorted_sources("fonts/fonts_cnn", "rmse_max")]
    path = next(c for c in CONTRADICTIONS if c.column == "path_conf")
    browser.contradiction_menu.value = path.name
    worst = run.contradicting("fonts/fonts_cnn", path, 1)[0]["source"]
    assert browser.source_list.value == worst and path.sentence in browser.contradiction_text.value
    browser.pair_menu.value = (1, 2)
    surface = browser.triangle_view.children[0]
    assert f"Source #{worst}: the triangle of blind spots r1 and r2" in surface.layout.title.text
    assert list(surface.data[0].z) == run.triangle("fonts/fonts_cnn", worst, (1, 2)).grid.tolist()
    browser.model_menu.value = "fonts/fonts_cnn_at"
    assert browser.pair_menu.value == (0, 1) and list(browser.triangle_view.children[0].data[0].z) == run.triangle(
        "fonts/fonts_cnn_at", browser.source_list.value, (0, 1)).grid.tolist()


def test_numbers_as_the_browser_prints_them():
    from blindspots_nb.browser.view import number

    assert [number(v) for v in (None, math.nan, 0.99999, 0.268, -1.121e-05, 0.0)] == [
        "–", "n/a", "1.0000", "0.2680", "-1.12e-05", "0.0000"]



# -- hostile names, a user's model on a labelled folder ------------------------------------------------------------
@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A finished run of a user's model on a labelled folder, its file, class and model names made to inject HTML."""
    return make_hostile_run(tmp_path_factory.mktemp("hostile"))


class _Markup(HTMLParser):
    """The tags and attributes of an HTML text."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.attributes = set(), set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.attributes |= {name for name, _ in attrs}


def _markup_shown(widget) -> list[str]:
    """Every text a widget tree shows as HTML: W.HTML values, and plotly titles (plotly reads them as markup)."""
    import ipywidgets as W
    import plotly.graph_objects as go

    if isinstance(widget, go.FigureWidget):
        return [widget.layout.title.text or "", *(a.text for a in widget.layout.annotations)]
    found = [widget.value] if isinstance(widget, W.HTML) else []
    for child in getattr(widget, "children", ()):
        found += _markup_shown(child)
    return found


def _assert_no_live_tag(texts: list[str]):
    for text in texts:
        markup = _Markup(text)
        assert markup.tags <= {"b", "i", "small", "br", "div", "ul", "li", "style", "span", "sup", "table", "tr", "th",
                               "td"}, text
        assert not any(name.startswith("on") for name in markup.attributes), text


def test_names_from_the_run_are_shown_escaped_never_as_markup(hostile):
    browser = RunBrowser(hostile)
    seen = []
    for _, source in browser.source_list.options:
        browser.source_list.value = source  # drawn with the pair picked last: seen first, each view drawn once
        pairs = [value for _, value in browser.pair_menu.options]
        first = pairs.index(browser.pair_menu.value)
        for pair in pairs[first:] + pairs[:first]:
            browser.pair_menu.value = pair
            seen += _markup_shown(browser.widget)
    _assert_no_live_tag(seen)
    shown = " ".join(seen)
    for name in (HOSTILE_FILE, HOSTILE_CLASS, HOSTILE_MODEL):  # shown, as text
        assert html.escape(name, quote=False) in shown.replace("&#x27;", "'").replace("&quot;", '"')
    assert browser.caption.value.count(html.escape(HOSTILE_MODEL)) == 1  # the model's spec, in the caption


def test_a_folder_named_with_markup_that_holds_no_run_is_shown_escaped(tmp_path):
    folder = tmp_path / HOSTILE_FILE
    folder.mkdir()
    header = RunBrowser(folder).header.value
    _assert_no_live_tag([header])
    assert f"Cannot browse {html.escape(str(folder))}" in header and "holds no run" in header


def test_a_labelled_folder_run_of_a_users_model_shows_from_its_own_records(hostile, monkeypatch):
    from blindspots_nb.analysis.geometry import triangle_shape
    from blindspots_nb.browser import runs

    def never(*args, **kwargs):
        raise AssertionError("the browser reopened the image source")
    monkeypatch.setattr(runs, "open_source", never)  # no folder listed or labelled again, no model's classes
    run = StoredRun(hostile)
    key, = run.models()
    pool = json.loads((hostile / "folder" / "pool.json").read_text())
    rows = run.source_rows(key)
    assert [(r["name"], r["class"]) for r in rows] == list(zip(pool["names"], pool["class_names"]))
    assert HOSTILE_CLASS in pool["class_names"] and all(Path(name).is_file() for name in pool["names"])
    images, where = run.pool_images(key)
    assert "checked by sha256" in where
    for source, name in enumerate(pool["names"]):  # the file as it is, at the model's 32 x 32 (no resize, no crop)
        pixels = torch.from_numpy(np.asarray(Image.open(name), dtype=np.float32) / 255)[None]
        assert torch.allclose(images[source], pixels, atol=1e-6)
    spots = run.blind_spot_images(key, 1)
    triangle = run.triangle(key, 1, (0, 2))
    assert "true shape" in triangle.note and torch.allclose(triangle.shape, triangle_shape(images[1], spots[0],
                                                                                            spots[2]))
    assert run.problems == []
    browser = RunBrowser(hostile, source_index=1)
    assert "tench" not in str(_markup_shown(browser.widget)) and len(browser.triangle_view.children) == 2


def test_a_changed_image_is_one_line_and_the_rest_shows(hostile):
    pool = json.loads((hostile / "folder" / "pool.json").read_text())
    changed = Path(pool["names"][0])
    original = changed.read_bytes()
    try:
        Image.new("L", (32, 32), 128).save(changed)
        run = StoredRun(hostile)
        images, _ = run.pool_images(run.models()[0])
        assert images[0] is None and images[1] is not None
        assert run.problems == [f"{changed}: pool image 0 cannot be shown ({run.problems[0].split('(', 1)[1]}"]
        assert "changed (sha256)" in run.problems[0] and "\n" not in run.problems[0]
        assert "equilateral" in run.triangle(run.models()[0], 0).note
    finally:
        changed.write_bytes(original)


def test_a_pool_naming_a_fifo_or_a_device_never_reads_it(copy, tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)  # reading it would wait forever; /dev/zero would never end
    pool = json.loads((copy / "fonts" / "pool.json").read_text())
    names = [str(fifo), "/dev/zero", *pool["names"][2:]]
    _reseal_pool(copy, {**pool, "names": names, "sha256": ["0" * 64] * len(names), "sha256_of": "files"})
    run = StoredRun(copy)
    images, where = run.pool_images("fonts/fonts_cnn")
    assert "checked by sha256" in where and images[0] is None and images[1] is None
    assert run.problems == [f"{name}: pool image {i} cannot be shown (not an image file (a regular file of 1 to "
                            f"268435456 bytes))" for i, name in enumerate(names[:2])]


# -- the browser never writes and never downloads ------------------------------------------------------------------
@pytest.mark.parametrize("offline", [False, True])
def test_a_received_cifar_source_is_never_created_or_downloaded(copy, tmp_path, monkeypatch, no_network, offline):
    if offline:
        monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    else:
        monkeypatch.delenv("BLINDSPOTS_NB_OFFLINE", raising=False)
    made = tmp_path / "some" / "path" / "made_by_browser"
    settings = json.loads((copy / "settings.json").read_text())
    settings["experiments"][0]["image_source"] = f"cifar10:{made}"
    (copy / "settings.json").write_text(json.dumps(settings))
    run = StoredRun(copy)
    images, where = run.pool_images("fonts/fonts_cnn")
    assert images is None and "\n" not in where
    assert where.startswith(f"sources and targets not shown: the images of cifar10:{made} are not at hand")
    browser = RunBrowser(copy)
    for key in run.models():
        browser.model_menu.value = key
    assert not (tmp_path / "some").exists() and no_network == []


def test_cifar_offline_is_a_message_saying_what_to_put_where(tmp_path, monkeypatch, no_network):
    from blindspots_nb.data import cifar10

    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="BLINDSPOTS_NB_OFFLINE=1.*https://"):
        cifar10(tmp_path / "cifar")  # download=True, the default: still no connection
    assert not (tmp_path / "cifar").exists() and no_network == []


# -- run files that cannot be read: one line each -------------------------------------------------------------------
UNREADABLE = {"deep": (b"[" * 200_000, "is not valid JSON (nested deeper than it can be read)"),
              "not UTF-8": (b'{"experiments": "\xff\xfe"}', "is not UTF-8 text (invalid start byte at byte 17)"),
              "huge": (None, "more than the 268435456 a JSON record of a run may be")}


def _spoil(path: Path, kind: str):
    content, _ = UNREADABLE[kind]
    if content is None:  # a sparse file of 300 MiB: no disk used, but too large to read
        with open(path, "wb") as handle:
            handle.truncate(300 * 2**20)
    else:
        path.write_bytes(content)


@pytest.mark.parametrize("kind", UNREADABLE)
def test_unreadable_settings_are_one_line_naming_the_file(copy, kind, capsys):
    from blindspots_nb.cli import main

    _spoil(copy / "settings.json", kind)
    with pytest.raises(RunFolderError) as refused:
        StoredRun(copy)
    assert str(refused.value).startswith(f"{copy / 'settings.json'} ") and UNREADABLE[kind][1] in str(refused.value)
    assert "\n" not in str(refused.value)
    assert UNREADABLE[kind][1] in RunBrowser(copy).header.value
    assert main(["merge", "--out-dir", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{copy / 'settings.json'} " in error and UNREADABLE[kind][1] in error


@pytest.mark.parametrize("kind", UNREADABLE)
def test_an_unreadable_manifest_or_record_is_one_line_and_the_rest_shows(copy, kind, capsys):
    from blindspots_nb.cli import main

    manifest = copy / "fonts" / "fonts_cnn" / "blind_spots" / "b0001_r1.manifest.json"
    record = copy / "fonts" / "fonts_cnn_at" / "record_shard0of1.json"
    _spoil(manifest, kind), _spoil(record, kind)
    run = StoredRun(copy)
    _browse_everything(run)
    assert sorted(run.problems) == sorted([f"fonts/fonts_cnn/blind_spots/b0001_r1.manifest.json: "
                                           f"{run.problems[0].split(': ', 1)[1]}",
                                           f"fonts/fonts_cnn_at/record_shard0of1.json: "
                                           f"{run.problems[1].split(': ', 1)[1]}"])
    assert all(UNREADABLE[kind][1] in p and p.endswith("; left out") for p in run.problems)
    assert sorted(run.blind_spot_images("fonts/fonts_cnn", 3)) == [0, 2]
    assert main(["merge", "--out-dir", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and (str(manifest) in error or str(record) in error)


# -- a damaged pool ------------------------------------------------------------------------------------------------
def _reseal_pool(copy: Path, pool):
    path = copy / "fonts" / "pool.json"
    path.write_text(json.dumps(pool))
    _seal_again(path)


@pytest.mark.parametrize("damage", ["labels cut", "not a list", "a list", "cut file"])
def test_a_damaged_pool_is_one_line_and_never_an_index_error(copy, damage):
    path = copy / "fonts" / "pool.json"
    pool = json.loads(path.read_text())
    if damage == "labels cut":
        _reseal_pool(copy, {**pool, "labels": pool["labels"][:2]})
    elif damage == "not a list":
        _reseal_pool(copy, {**pool, "class_names": "A"})
    elif damage == "a list":
        _reseal_pool(copy, [pool])
    else:
        path.write_bytes(path.read_bytes()[:100])
    run = StoredRun(copy)
    _browse_everything(run)
    for source in range(5):
        assert run.triangle("fonts/fonts_cnn", source) is None
        assert run.blind_spot_images("fonts/fonts_cnn", source) == {}
        assert run.blind_spot_rows("fonts/fonts_cnn", source) == []
    assert len(run.problems) == 1 and run.problems[0].startswith("fonts/pool.json: ")
    missing = run.missing()
    assert not any("not started" in line for line in missing)
    assert missing[0].startswith("fonts: its pool is damaged (see the damaged files)")
    assert "fonts/pool.json" in RunBrowser(copy).header.value


def test_a_source_not_in_the_pool_is_a_value_error_naming_it(finished):
    run = StoredRun(finished)
    for ask in (lambda: run.triangle("fonts/fonts_cnn", 99), lambda: run.blind_spot_images("fonts/fonts_cnn", 5),
                lambda: run.blind_spot_rows("fonts/fonts_cnn", -1)):
        with pytest.raises(ValueError, match=r"fonts/pool\.json holds sources 0 to 4\)"):
            ask()


def test_the_source_list_shows_whole_names_last_and_the_sort_column_once():
    """Files of one name in two class folders of a deep folder: each line ends with its whole name;
    the column sorted by is shown once, beside the others of the list."""
    from blindspots_nb.browser.view import LISTED, common_folder, number

    row = {"source": 0, "class": "red", **{column: 0.1 + k / 100 for k, column in enumerate(SOURCE_COLUMNS)}}
    names = [f"/home/someone/datasets/a/very/deep/folder/of/colours/{colour}/img0.png" for colour in ("red", "blue")]
    for column in SOURCE_COLUMNS:
        labels = [RunBrowser._label({**row, "name": name}, column) for name in names]
        assert all(label.endswith(f"red            {name}") for label, name in zip(labels, names))
        assert labels[0].startswith(f"#0    {SOURCE_COLUMNS[column]} ")
        for key in {column, *LISTED}:
            assert labels[0].count(number(row[key])) == 1, (column, key)
    folder = common_folder(names)  # said once above the list; each line names its file below it
    assert folder == "/home/someone/datasets/a/very/deep/folder/of/colours"
    labels = [RunBrowser._label({**row, "name": name}, "p_src", folder) for name in names]
    assert labels[0].endswith("red            red/img0.png") and labels[1].endswith("red            blue/img0.png")
    assert common_folder(["A13 (cmss10)", "B2 (cmss10)"]) == "" == common_folder(["/a.png", "b/c.png"])


def test_the_browser_opens_on_the_runs_own_table_rows_of_the_model_picked(finished):
    from blindspots_nb.browser.view import number

    browser = RunBrowser(finished)
    assert browser.widget.children.index(browser.tables) == browser.widget.children.index(browser.model_menu) + 1
    for key, model in (("fonts/fonts_cnn", "fonts_cnn"), ("fonts/fonts_cnn_at", "fonts_cnn_at")):
        browser.model_menu.value = key
        shown = browser.tables.value
        for table, columns in (("table1", protocol.TABLE1_COLUMNS), ("table2", protocol.TABLE2_COLUMNS)):
            row, = [r for r in _csv(finished / f"{table}.csv") if r["model"] == model and r["source"] == "ours"]
            cells = [number(float(row[f"{k}_mean"])) if math.isnan(float(row[f"{k}_mean"])) else
                     f"{number(float(row[f'{k}_mean']))} ± {number(float(row[f'{k}_std'])) }" for k in columns]
            assert "".join(f"<td style='padding:0 8px'>{cell}</td>" for cell in cells) in shown
            assert f"{model} (ours, fonts, {table}.csv)" in shown
    assert browser.run.problems == []


def test_the_tables_of_an_unassembled_run_are_said_missing(unfinished):
    browser = RunBrowser(unfinished, model_name="fonts/fonts_cnn")
    assert "Table 1 (blind spot vs target): not in this run's table1.csv" in browser.tables.value


def test_the_triangles_caption_lies_above_the_plot_under_a_one_line_title(hostile):
    """However long the caption (a labelled folder's path, a factory spec), its lines are an annotation on
    the plot's top edge, growing upwards, in a top margin that holds them and the title: never over the
    corner names, which lie inside the plot."""
    import textwrap

    from blindspots_nb.plots.figures import CAPTION_LINE, CAPTION_WIDTH, TITLE_HEIGHT

    browser = RunBrowser(hostile)
    for figure in browser.triangle_view.children:
        caption, = [a for a in figure.layout.annotations if a.name == "caption"]
        assert (caption.yref, caption.y, caption.yanchor, caption.xref) == ("paper", 1, "bottom", "paper")
        assert caption.yshift > 0 and "<br>" not in figure.layout.title.text
        lines = caption.text.split("<br>")
        assert len(lines) >= 6 and lines == [html.escape(line, quote=False) for line in textwrap.wrap(
            html.unescape(caption.text.replace("<br>", " ")), CAPTION_WIDTH)]
        assert figure.layout.margin.t >= TITLE_HEIGHT + caption.yshift + len(lines) * CAPTION_LINE
        assert (figure.layout.title.yref, figure.layout.title.y, figure.layout.title.yanchor) == (
            "container", 1, "top")
    contour = browser.triangle_view.children[1]
    low, high = contour.layout.yaxis.range
    corners = [a for a in contour.layout.annotations if a.name != "caption"]
    assert len(corners) == 3 and all(a.yref in (None, "y") and low <= a.y < high for a in corners)  # data: inside


def test_panels_show_each_images_whole_name_wrapped(hostile):
    browser = RunBrowser(hostile)
    run = browser.run
    key, = run.models()
    for row in run.source_rows(key):
        browser.source_list.value = row["source"]
        panels = browser.source_view.children[1].children
        text = panels[0].children[1].value
        assert html.escape(row["name"]) in text and "overflow-wrap:anywhere" in text
        for spot, panel in zip(run.blind_spot_rows(key, row["source"]), panels[1:]):
            assert html.escape(spot["target_name"]) in panel.children[1].children[1].value
