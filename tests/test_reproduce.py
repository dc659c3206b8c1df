import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from blindspots_nb import reproduce
from blindspots_nb.cli import main
from blindspots_nb.reproduce import Experiment, RunSettingsMismatch

SMALL_LST = dict(iterations=30, step_size=0.05)


def _fonts_experiment(**changes):
    settings = dict(dataset="fonts", models=["fonts_cnn", "fonts_cnn_at"], n_sources=5, rounds=3,
                    lst=SMALL_LST, batch_size=2)
    settings.update(changes)
    return Experiment(**settings)


def _run(experiment, out, shards=((0, 1),)):
    reproduce.check_settings(out, [experiment])
    for shard in shards:
        for name in experiment.models:
            reproduce.run_model(experiment, name, out, shard=shard, device="cpu", progress=False)
    reproduce.assemble_tables([experiment], out)
    return {name: (out / "fonts" / name / "per_blindspot.csv").read_text()
            + (out / "fonts" / name / "per_source.csv").read_text() for name in experiment.models} | {
        table: (out / table).read_text() for table in ("table1.csv", "table2.csv")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted")
    return out, _run(_fonts_experiment(), out)


def test_derangements_have_no_fixed_points():
    rounds = reproduce.derangements(7, 5, seed=3)
    assert rounds.shape == (5, 7)
    for permutation in rounds:
        assert sorted(permutation.tolist()) == list(range(7))
        assert not (permutation == torch.arange(7)).any()
    assert torch.equal(rounds, reproduce.derangements(7, 5, seed=3))
    with pytest.raises(ValueError, match="at least 2"):
        reproduce.derangements(1, 5, seed=0)


def test_protocol_files_and_rules(uninterrupted):
    out, _ = uninterrupted
    pool = json.loads((out / "fonts" / "pool.json").read_text())
    assert len(pool["labels"]) == 5 and len(set(pool["labels"])) == 5  # one image per class
    for confidences in pool["confidence"].values():
        assert min(confidences) > 0.6
    rows = list(csv.DictReader(open(out / "fonts" / "fonts_cnn" / "per_blindspot.csv")))
    assert len(rows) == 5 * 3
    for row in rows:
        assert row["source"] != row["target"]
        assert float(row["p0"]) - float(row["confidence"]) < 0.2  # LST kept the confidence within delta
        assert 0 <= float(row["rmse"]) <= float(row["linf"]) <= 1 and -1 <= float(row["ssim"]) <= 1
    sources = list(csv.DictReader(open(out / "fonts" / "fonts_cnn" / "per_source.csv")))
    assert len(sources) == 5 and all(row["pairs"] == "3" for row in sources)
    for row in sources:
        fractions = [float(row[f"frac_{d:g}"]) for d in (0.0, 0.1, 0.2, 0.3)]
        assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1


def test_tables_hold_ours_and_the_papers(uninterrupted):
    out, _ = uninterrupted
    table1 = list(csv.DictReader(open(out / "table1.csv")))
    assert [row["model"] for row in table1 if row["source"] == "ours"] == ["fonts_cnn", "fonts_cnn_at"]
    assert {row["model"] for row in table1 if row["source"] == "paper"} == set(reproduce.PAPER_TABLE1)
    resnet = next(row for row in table1 if row["model"] == "resnet50")
    assert float(resnet["rmse_mean"]) == 0.008 and float(resnet["linf_std"]) == 0.020
    ours = next(row for row in table1 if row["model"] == "fonts_cnn")
    assert 0 < float(ours["rmse_mean"]) < 1 and math.isfinite(float(ours["ssim_std"]))
    markdown = (out / "table2.md").read_text()
    assert "| fonts_cnn_at (ours, fonts, n=5) |" in markdown and "Avg Path Conf" in markdown
    assert "iterations=30" in markdown and "rounds=3" in markdown  # says what produced it
    assert r"\begin{tabular}" in (out / "table1.tex").read_text()


def test_resumed_run_gives_the_same_tables(uninterrupted, tmp_path, monkeypatch):
    _, expected = uninterrupted
    experiment = _fonts_experiment()
    reproduce.check_settings(tmp_path, [experiment])
    calls = {"n": 0}
    real_traverse = reproduce.traverse

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt  # the run is stopped part way
        return real_traverse(*args, **kwargs)

    monkeypatch.setattr(reproduce, "traverse", crashing)
    with pytest.raises(KeyboardInterrupt):
        reproduce.run_model(experiment, "fonts_cnn", tmp_path, device="cpu", progress=False)
    monkeypatch.setattr(reproduce, "traverse", real_traverse)
    done = sorted(p.name for p in (tmp_path / "fonts" / "fonts_cnn" / "blind_spots").glob("*.csv"))
    assert len(done) == 4
    assert _run(experiment, tmp_path) == expected


def test_sharded_run_gives_the_same_tables(uninterrupted, tmp_path):
    _, expected = uninterrupted
    experiment = _fonts_experiment()
    reproduce.check_settings(tmp_path, [experiment])
    for name in experiment.models:
        reproduce.run_model(experiment, name, tmp_path, shard=(1, 2), device="cpu", progress=False)
    assert not reproduce.model_finished(experiment, "fonts_cnn", tmp_path)
    with pytest.raises(RuntimeError, match="not finished"):
        reproduce.assemble_tables([experiment], tmp_path)
    assert _run(experiment, tmp_path, shards=[(0, 2)]) == expected


def test_output_folder_with_other_settings_is_refused(uninterrupted, tmp_path):
    experiment = _fonts_experiment()
    reproduce.check_settings(tmp_path, [experiment])
    (tmp_path / "fonts").mkdir()
    (tmp_path / "fonts" / "marker").write_text("old results")
    other = _fonts_experiment(lst=dict(SMALL_LST, iterations=31))
    with pytest.raises(RunSettingsMismatch, match="iterations: 30 there, 31 now"):
        reproduce.check_settings(tmp_path, [other])
    assert (tmp_path / "fonts" / "marker").exists()  # nothing overwritten
    reproduce.prepare(experiment, tmp_path, device="cpu")
    with pytest.raises(RunSettingsMismatch, match="iterations"):  # the notebook's own check, per experiment
        reproduce.prepare(other, tmp_path, device="cpu")
    reproduce.check_settings(tmp_path, [other], force=True)
    assert not (tmp_path / "fonts" / "marker").exists()
    assert json.loads((tmp_path / "settings.json").read_text())["experiments"][0]["lst"]["iterations"] == 31


@pytest.mark.parametrize("args, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "paper"], "needs ImageNet validation images"),
    (["--models", "resnet_9000"], "not in preset 'offline'"),
    (["--dataset", "fonts", "--models", "resnet_9000"], "resnet_9000"),
    (["--dataset", "imagenet", "--models", "efficientnet_lite0", "--data-root", "/no/such/folder"], "/no/such/folder"),
    (["--models", "fonts_cnn", "--weights", "fonts_cnn=/no/such.pt"], "/no/such.pt"),
    (["--shard", "3/2"], "need 0 <= i < n"),
])
def test_bad_input_gets_a_clear_message(tmp_path, capsys, args, message):
    assert main(["reproduce", "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_imagenet_root_that_is_not_imagenet_shaped(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.txt").write_text("not an image")
    assert main(["reproduce", "--out", str(tmp_path / "out"), "--dataset", "imagenet", "--models",
                 "efficientnet_lite0", "--data-root", str(tmp_path / "photos")]) == 2
    assert "ImageNet" in capsys.readouterr().err


def _check_tables(out: Path, models: list[str]):
    for table, columns in (("table1", reproduce.TABLE1_COLUMNS), ("table2", reproduce.TABLE2_COLUMNS)):
        rows = {row["model"]: row for row in csv.DictReader(open(out / f"{table}.csv")) if row["source"] == "ours"}
        assert sorted(rows) == sorted(models)
        for row in rows.values():
            for key in columns:
                mean, std = float(row[f"{key}_mean"]), float(row[f"{key}_std"])
                if key == "lpips" and math.isnan(mean):
                    continue  # no LPIPS trunk on this machine: marked n/a in the tables
                assert math.isfinite(mean) and std >= 0
                assert (-1 <= mean <= 1) if key == "ssim" else (0 <= mean <= 1)
        assert (out / f"{table}.md").exists() and (out / f"{table}.tex").exists()


def test_cli_offline_preset_shortened_through_papermill(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["reproduce", "--out", str(out), "--n-sources", "3", "--rounds", "3", "--iterations", "10",
            "--device", "cpu"]
    assert main(args) == 0
    models = ["fonts_cnn", "fonts_cnn_at", "efficientnet_lite0"]
    _check_tables(out, models)
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert executed == sorted(["fonts_fonts_cnn_shard0of1.ipynb", "fonts_fonts_cnn_at_shard0of1.ipynb",
                               "photos_efficientnet_lite0_shard0of1.ipynb"])
    run = json.loads((out / "run.json").read_text())
    assert {"versions", "experiments", "pools", "models_and_shards", "lpips", "created"} <= set(run)
    assert run["experiments"][0]["lst"]["iterations"] == 10
    assert run["models_and_shards"]["fonts_cnn/record_shard0of1"]["model"]["name"] == "fonts_cnn"
    assert "timings" in run["models_and_shards"]["fonts_cnn/record_shard0of1"]
    capsys.readouterr()
    assert main(args) == 0  # a rerun skips what is finished
    assert capsys.readouterr().out.count("skipped") == 3


@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes_match_one(tmp_path):
    common = ["-m", "blindspots_nb", "reproduce", "--models", "fonts_cnn", "--n-sources", "5", "--rounds", "3",
              "--iterations", "20", "--batch-size", "2", "--device", "cpu"]
    # torchrun gives each process one thread; the single run gets the same, so floats agree bit for bit
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", *common, "--out", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    executed = sorted(p.name for p in (tmp_path / "two" / "notebooks").glob("*.ipynb"))
    assert executed == ["fonts_fonts_cnn_shard0of2.ipynb", "fonts_fonts_cnn_shard1of2.ipynb"]
    for table in ("table1.csv", "table2.csv"):
        assert (tmp_path / "two" / table).read_text() == (tmp_path / "single" / table).read_text()


def test_paper_preset_without_weights_names_the_file(tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    Image.new("RGB", (300, 300)).save(folder / "a.JPEG")
    assert main(["reproduce", "--preset", "paper", "--data-root", str(tmp_path / "val"),
                 "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "cache" / "timm--resnet50.a1_in1k.safetensors") in error
    assert "--weights resnet50=PATH" in error
    assert main(["reproduce", "--preset", "paper", "--data-root", str(tmp_path / "nowhere"),
                 "--out", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err
