"""The command line: demo, reproduce (through papermill, the tables byte for byte as
before the restructure), torchrun shards, a wheel install, and clear errors."""

import csv
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest
import torch
from PIL import Image

from blindspots_nb.cli import build_parser, main
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment
from blindspots_nb.results import collect, load_run

REPOSITORY = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def test_demo_writes_images_history_and_record(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--iterations", "4", "--device", "cpu", "--out-dir", str(out)]) == 0
    for name in ("source.png", "target.png", "blind_spot.png"):
        with Image.open(out / name) as image:
            assert image.size == (224, 224)
    record = json.loads((out / "record.json").read_text())
    assert record["model"]["name"] == "efficientnet_lite0"
    assert record["config"]["iterations"] == 4 and record["device"].startswith("cpu")
    assert record["source_class"] == "espresso" and record["initial_confidence"] > 0.9
    assert abs(record["initial_confidence"] - record["confidence"]) < 0.2
    rows = list(csv.DictReader(open(out / "history.csv")))
    assert [int(row["iteration"]) for row in rows] == [0, 1, 2, 3, 4]
    assert float(rows[-1]["distance_l2"]) < float(rows[0]["distance_l2"])
    assert "espresso" in capsys.readouterr().out


def test_demo_unknown_photo_and_model(tmp_path, capsys):
    assert main(["demo", "--model", "resnet_9000", "--out-dir", str(tmp_path)]) == 2
    assert "unknown model 'resnet_9000'" in capsys.readouterr().err
    assert main(["demo", "--source-name", "mona_lisa", "--out-dir", str(tmp_path)]) == 2
    assert "no images ['mona_lisa'] in 'photos'; it has ['astronaut'" in capsys.readouterr().err


def test_options_come_from_the_dataclasses():
    """Every LSTConfig field is an option of demo and reproduce, every plain Experiment field of reproduce."""
    parser = build_parser()
    lst_flags = ["--" + f.name.replace("_", "-") for f in dataclasses.fields(LSTConfig)]
    demo_help, reproduce_help = (parser._subparsers._group_actions[0].choices[name].format_help()
                                 for name in ("demo", "reproduce"))
    assert all(flag in demo_help for flag in lst_flags)
    assert all(flag in reproduce_help for flag in lst_flags if flag != "--seed")
    for field in ("n_sources", "per_class", "min_conf", "rounds", "batch_size", "divisions", "seed"):
        assert "--" + field.replace("_", "-") in reproduce_help
    args = parser.parse_args(["reproduce", "--record-every", "7", "--no-record-images", "--divisions", "4",
                              "--eps", "0"])
    from blindspots_nb.cli import experiments_from_args
    fonts, photos = experiments_from_args(args)
    assert fonts.lst == dataclasses.replace(LSTConfig(), record_every=7, eps=0.0) and fonts.divisions == 4
    assert photos.lst.iterations == 100 and photos.lst.eps == 0.0  # the preset's own values stay unless given
    assert isinstance(fonts, Experiment)


@pytest.mark.parametrize("args, message", [
    (["--preset", "nope"], "unknown preset 'nope'"),
    (["--preset", "paper"], "needs ImageNet validation images"),
    (["--models", "resnet50"], "resnet50 not in preset 'offline'"),
    (["--models", "resnet_9000"], "unknown model 'resnet_9000'; known models: efficientnet_lite0"),
    (["--image-source", "fonts:test", "--models", "resnet_9000"], "resnet_9000"),
    (["--image-source", "fonts:test"], "--image-source needs --models"),
    (["--image-source", "mnist", "--models", "fonts_cnn"], "unknown image source 'mnist'; write one of: photos"),
    (["--image-source", "imagenet:/no/such/folder", "--models", "efficientnet_lite0"], "/no/such/folder"),
    (["--models", "fonts_cnn", "--weights", "fonts_cnn=/no/such.pt"], "/no/such.pt"),
    (["--models", "fonts_cnn", "--weights", "fonts_cnn"], "--weights takes MODEL=PATH"),
    (["--shard", "3/2"], "need 0 <= i < n"),
    (["--rounds", "1"], "rounds must be >= 2"),
    (["--n-sources", "0"], "n_sources must be >= 2 (each source needs a target among the others), got 0"),
    (["--n-sources", "1"], "n_sources must be >= 2"),
    (["--n-sources", "-3"], "n_sources must be >= 2"),
    (["--delta", "2"], "LSTConfig.delta"),
    (["--init-noise", "5"], "LSTConfig.init_noise"),
    (["--step-size", "1e9"], "LSTConfig.step_size"),
])
def test_bad_input_gets_a_clear_message(tmp_path, capsys, args, message):
    assert main(["reproduce", "--out-dir", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_imagenet_root_that_is_not_imagenet_shaped(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.txt").write_text("not an image")
    assert main(["reproduce", "--out-dir", str(tmp_path / "out"), "--image-source", f"imagenet:{tmp_path / 'photos'}",
                 "--models", "efficientnet_lite0"]) == 2
    assert "ImageNet" in capsys.readouterr().err


SHORT_OFFLINE = ["--n-sources", "3", "--rounds", "3", "--iterations", "10", "--device", "cpu"]


@pytest.fixture
def one_thread(monkeypatch):
    """One CPU thread here and in papermill's kernels: the fixtures' floats do not depend on the core count."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# Tables of another machine. They hold means of float32 traversals and of the model's confidence over
# their triangles: another CPU's kernels (AVX2, AVX-512, AVX-512-FP16 paths of oneDNN and MKL) sum in
# another order, so each forward and backward pass moves in its last bits (float32: 1.2e-7 relative),
# deep models and LST's iterations carry that along. Measured against the fixture offline_short (made
# on an earlier machine): on an AVX-512 machine 2.6e-6 in Table 1 (as on one with AVX-512-FP16) and
# 1.3e-4 in Table 2 (efficientnet_lite0's confidence over its triangles); with AVX2 kernels
# (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2) 4.4e-5 and 1.6e-4.
# Every statistic of the tables lies in [0, 1]: 1e-3 is one unit of the third decimal they print.
ACROSS_MACHINES = 1e-3
# Table 2's fractions of grid points above a threshold (frac_*) count points, and a point whose
# confidence lies within rounding of the threshold may count on one machine and not on another. At
# delta = 0 on a saturated model (fonts_cnn: confidence 0.99998 over the whole triangle) many do:
# measured, 3 (AVX-512) and 4 (AVX2) of 594 points (3 sources) flipped. Tolerated: 3 per source.
FLIPS_PER_SOURCE = 3


def assert_tables_of_before(out: Path, fixture: str, rounds: int) -> None:
    """Tables 1 and 2 as the fixture (made on another machine, perhaps) within rounding.

    Floats within ``ACROSS_MACHINES``; fractions of grid points (frac_*) also within
    ``FLIPS_PER_SOURCE`` flipped points of each source's C(rounds, 2) triangles: k points move a
    source's fraction by k / points, so the mean over the sources by at most k / points and their
    (population) standard deviation, a norm over the sources / sqrt(n), by at most as much."""
    divisions = Experiment.divisions
    points = rounds * (rounds - 1) // 2 * (divisions + 1) * (divisions + 2) // 2  # a source's grid points
    for table in ("table1.csv", "table2.csv"):
        ours, before = ([row for row in csv.DictReader(open(folder / table))] for folder in (out, FIXTURES / fixture))
        assert [(row["model"], row["source"]) for row in ours] == [(row["model"], row["source"]) for row in before]
        for row, old in zip(ours, before):
            assert list(row) == list(old)
            for key, value in old.items():
                if not key.endswith(("_mean", "_std")):
                    assert row[key] == value, (table, row["model"], key)
                    continue
                flips = FLIPS_PER_SOURCE / points if key.startswith("frac_") else 0.0
                assert float(row[key]) == pytest.approx(float(value), abs=ACROSS_MACHINES + flips, nan_ok=True), \
                    (table, row["model"], key)


@pytest.mark.slow
def test_offline_preset_shortened_gives_the_tables_of_before(tmp_path, capsys, one_thread):
    """Through papermill and the packaged notebook: Tables 1 and 2 as the reproduction
    gave them before the restructure (same seed), within rounding on any machine."""
    out = tmp_path / "run"
    assert main(["reproduce", "--out-dir", str(out), *SHORT_OFFLINE]) == 0
    assert_tables_of_before(out, "offline_short", rounds=3)
    executed = sorted(p.name for p in (out / "notebooks").glob("*.ipynb"))
    assert executed == sorted(["fonts_fonts_cnn_shard0of1.ipynb", "fonts_fonts_cnn_at_shard0of1.ipynb",
                               "photos_efficientnet_lite0_shard0of1.ipynb"])
    report = nbformat.read(out / "notebooks" / "photos_efficientnet_lite0_shard0of1.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in report.cells if c.cell_type == "code" for o in c.outputs)
    assert "efficientnet_lite0 table1: RMSE" in printed
    figures = [o for c in report.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 2  # blind spots beside sources and targets; the mean triangle
    run = json.loads((out / "run.json").read_text())
    assert {"versions", "experiments", "pools", "models_and_shards", "lpips", "created"} <= set(run)
    assert run["experiments"][0]["lst"]["iterations"] == 10
    assert "timings" in run["models_and_shards"]["fonts_cnn/record_shard0of1"]
    # the finished run as tables: load_run's rows are table1.csv's, collect finds the run from its parent
    tables = load_run(out)
    assert tables.problems == [] and tables.missing == []
    ours = {row["model"]: row for row in csv.DictReader(open(out / "table1.csv")) if row["source"] == "ours"}
    assert sorted(ours) == sorted(tables.rows["display_name"])
    for _, row in tables.rows.iterrows():
        assert row["rmse_mean"] == pytest.approx(float(ours[row["display_name"]]["rmse_mean"]), rel=1e-6)
    assert len(collect(tmp_path)) == len(tables.rows) == 3
    capsys.readouterr()
    assert main(["reproduce", "--out-dir", str(out), *SHORT_OFFLINE]) == 0  # a rerun skips what is finished
    assert capsys.readouterr().out.count("skipped") == 3
    assert main(["reproduce", "--out-dir", str(out), *SHORT_OFFLINE[:-2], "--iterations", "11"]) == 2
    assert "iterations: 10 there, 11 now" in capsys.readouterr().err


INSTALLED_RUN = ["reproduce", "--models", "fonts_cnn", "--n-sources", "4", "--rounds", "2", "--iterations", "20",
                 "--batch-size", "2", "--device", "cpu"]


@pytest.mark.slow
def test_a_wheel_install_reproduces_outside_the_clone(tmp_path):
    """`pip install .` (not editable) into a fresh venv that reuses this one's packages
    for the dependencies: the command runs the packaged notebook from anywhere."""
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
                    str(wheels), str(REPOSITORY)], check=True, capture_output=True, timeout=600)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies from this environment, as a plain path: its editable install of this package stays inactive
    Path(site, "reused_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", *wheels.glob("*.whl")],
                   check=True, capture_output=True, timeout=600)
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"  # as the fixture was made
    where = subprocess.run([python, "-c", "import blindspots_nb; print(blindspots_nb.__file__)"], cwd=tmp_path,
                           env=env, check=True, capture_output=True, text=True).stdout
    assert where.startswith(site) and not where.startswith(str(REPOSITORY))
    run = subprocess.run([venv / "bin" / "blindspots-nb", *INSTALLED_RUN, "--out-dir", str(tmp_path / "out")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert_tables_of_before(tmp_path / "out", "fonts_cnn_installed", rounds=2)
    assert (tmp_path / "out" / "notebooks" / "fonts_fonts_cnn_shard0of1.ipynb").is_file()


KILLED_RUN = ["-m", "blindspots_nb", "reproduce", "--models", "fonts_cnn", "--n-sources", "6", "--rounds", "2",
              "--iterations", "20", "--batch-size", "2", "--device", "cpu"]
KILL_MOMENTS = {  # the file whose appearance marks the moment
    "pool selection": "settings.json",
    "blind spots": "fonts/fonts_cnn/blind_spots/b0000_r0.manifest.json",
    "triangles": "fonts/fonts_cnn/triangles/b0000.manifest.json",
    "between notebook and tables": "fonts/fonts_cnn/record_shard0of1.json",
    "between tables and run.json": "table2.csv",
}


@pytest.mark.slow
def test_kill_9_at_any_moment_then_rerun_gives_the_same_tables(tmp_path):
    import signal
    import time

    env = dict(os.environ, OMP_NUM_THREADS="1")
    whole = subprocess.run([sys.executable, *KILLED_RUN, "--out-dir", str(tmp_path / "whole")], env=env,
                           capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0, whole.stderr[-3000:]
    for moment, marker in KILL_MOMENTS.items():
        out = tmp_path / moment.replace(" ", "_")
        run = subprocess.Popen([sys.executable, *KILLED_RUN, "--out-dir", str(out)], env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while not (out / marker).exists() and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGKILL)  # the run and papermill's kernel, at once
        run.wait()
        rerun = subprocess.run([sys.executable, *KILLED_RUN, "--out-dir", str(out)], env=env, capture_output=True,
                               text=True, timeout=600)
        assert rerun.returncode == 0, (moment, rerun.stderr[-3000:])
        for table in ("table1.csv", "table2.csv"):
            assert (out / table).read_bytes() == (tmp_path / "whole" / table).read_bytes(), (moment, table)
        assert not [p for p in out.rglob("*.tmp")], moment
        assert json.loads((out / "run.json").read_text())["experiments"][0]["models"] == ["fonts_cnn"]


@pytest.mark.slow
def test_a_changed_image_in_an_interrupted_run_is_refused_cleanly(tmp_path, capsys):
    """An ImageNet-shaped folder whose pool file changes between a killed run and its rerun:
    the rerun stops with a message naming the file, not a traceback and not mixed tables."""
    from blindspots_nb.data import fonts_dataset
    from torchvision.utils import save_image

    glyphs = fonts_dataset("test", n=30, seed=0, size=32)
    for i, (image, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = tmp_path / "glyphs" / "ABCDEFGHIJ"[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        save_image(image, folder / f"g{i:02d}.png")
    args = ["reproduce", "--image-source", f"folder:{tmp_path / 'glyphs'}", "--models", "fonts_cnn", "--n-sources", "4",
            "--rounds", "2", "--iterations", "5", "--batch-size", "2", "--device", "cpu", "--out-dir",
            str(tmp_path / "out")]
    assert main(args) == 0
    pool = json.loads((tmp_path / "out" / "folder" / "pool.json").read_text())
    for piece in (tmp_path / "out" / "folder" / "fonts_cnn").glob("*/b0001*.manifest.json"):
        piece.unlink()  # as if the run had been killed before its second batch
    save_image(glyphs.images[-1], pool["names"][2])
    capsys.readouterr()
    assert main(args) == 2
    error = capsys.readouterr().err
    assert f"{Path(pool['names'][2]).name} changed (sha256)" in error and "Traceback" not in error


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun", path=os.path.dirname(sys.executable)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_two_processes_match_one(tmp_path):
    common = ["-m", "blindspots_nb", "reproduce", "--models", "fonts_cnn", "--n-sources", "5", "--rounds", "3",
              "--iterations", "20", "--batch-size", "2", "--device", "cpu"]
    # torchrun gives each process one thread; the single run gets the same, so floats agree bit for bit
    env = dict(os.environ, OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, *common, "--out-dir", str(tmp_path / "single")], env=env,
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-3000:]
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", *common, "--out-dir", str(tmp_path / "two")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr[-3000:]
    executed = sorted(p.name for p in (tmp_path / "two" / "notebooks").glob("*.ipynb"))
    assert executed == ["fonts_fonts_cnn_shard0of2.ipynb", "fonts_fonts_cnn_shard1of2.ipynb"]
    for table in ("table1.csv", "table2.csv"):
        assert (tmp_path / "two" / table).read_text() == (tmp_path / "single" / table).read_text()


def test_paper_preset_without_weights_names_the_file(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BLINDSPOTS_NB_OFFLINE", "1")
    monkeypatch.setenv("BLINDSPOTS_NB_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "val" / "n01440764"
    folder.mkdir(parents=True)
    Image.new("RGB", (300, 300)).save(folder / "a.JPEG")
    assert main(["reproduce", "--preset", "paper", "--data-root", str(tmp_path / "val"),
                 "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert str(tmp_path / "cache" / "timm--resnet50.a1_in1k.safetensors") in error
    assert "--weights resnet50=PATH" in error
    assert main(["reproduce", "--preset", "paper", "--data-root", str(tmp_path / "nowhere"),
                 "--out-dir", str(tmp_path / "out")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_cifar10_preset_runs_on_a_cifar_shaped_folder_with_local_checkpoints(tmp_path):
    """--preset cifar10 --data-root: the WideResNet pair from local files in RobustBench's
    format (random weights; the labels are what both nets predict, so the pool rule passes)."""
    import pickle

    import numpy as np

    from blindspots_nb.models import random_model
    from test_data import _write_cifar_batch
    from test_models import _robustbench_cifar

    nets = {name: random_model(name, "cpu", seed=seed)
            for seed, name in enumerate(("cifar10_wrn28_10", "cifar10_wrn28_10_at"))}
    batch = _write_cifar_batch(tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch", n=24)
    images = torch.from_numpy(batch[b"data"].reshape(-1, 3, 32, 32)).float() / 255
    with torch.no_grad():
        predicted = [net(images).argmax(1) for net in nets.values()]
    agree = (predicted[0] == predicted[1]).nonzero()[:, 0].tolist()
    assert len(agree) >= 2, "the random nets should agree on some images"
    kept = {b"batch_label": batch[b"batch_label"], b"labels": predicted[0][agree].tolist(),
            b"data": batch[b"data"][agree], b"filenames": [batch[b"filenames"][i] for i in agree]}
    (tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(kept, protocol=2))
    weights = []
    for name, net in nets.items():
        path = tmp_path / f"{name}.pt"
        _robustbench_cifar(net.net.state_dict(), path)
        weights += ["--weights", f"{name}={path}"]
    out = tmp_path / "run"
    assert main(["reproduce", "--preset", "cifar10", "--data-root", str(tmp_path / "cifar"), *weights,
                 "--min-conf", "0", "--n-sources", "2", "--rounds", "2", "--iterations", "2", "--divisions", "2",
                 "--batch-size", "2", "--device", "cpu", "--out-dir", str(out)]) == 0
    rows = list(csv.DictReader(open(out / "table1.csv")))
    assert [(r["model"], r["dataset"]) for r in rows if r["source"] == "ours"] == [
        ("cifar10_wrn28_10", "cifar10"), ("cifar10_wrn28_10_at", "cifar10")]
    run = json.loads((out / "run.json").read_text())
    assert {name: w["file"] for name, w in run["weights"].items()} == {
        name: str((tmp_path / f"{name}.pt").resolve()) for name in nets}
    assert run["experiments"][0]["execution"]["precision"] == "tf32-conv"
    per_source = list(csv.DictReader(open(out / "cifar10" / "cifar10_wrn28_10" / "per_source.csv")))
    assert len(per_source) == 2 and all(float(r["edge_min"]) <= 0 for r in per_source)
    assert np.isfinite([float(r["path_conf"]) for r in per_source]).all()


def test_cifar10_preset_without_data_root_says_what_to_pass(capsys):
    assert main(["reproduce", "--preset", "cifar10"]) == 2
    assert "pass --data-root, a folder holding cifar-10-batches-py/test_batch" in capsys.readouterr().err


def test_new_runs_of_the_gpu_presets_fold_batch_norms_and_a_resumed_run_keeps_what_it_recorded(tmp_path, monkeypatch,
                                                                                                capsys):
    """The paper and cifar10 presets fold for new runs; a rerun in a folder whose run recorded
    other execution options resumes with those (unless the command gives them), --force and a
    new folder take the defaults."""
    from blindspots_nb.execution import Execution
    from blindspots_nb.protocol import RunStore, preset, run as run_module

    started = []
    monkeypatch.setattr(run_module, "reproduce", lambda experiments, out_dir, **options: started.append(experiments))
    data = tmp_path / "val"
    data.mkdir()
    paper = ["reproduce", "--preset", "paper", "--data-root", str(data)]

    def folding(*args) -> bool:
        assert main([*paper, *args]) == 0
        return started.pop()[0].execution.fold_batchnorm

    assert folding("--out-dir", str(tmp_path / "new")) is True
    assert all(e.execution.fold_batchnorm for e in preset("cifar10", str(data)))
    assert not any(e.execution.fold_batchnorm for e in preset("offline"))  # the reference tables, as before
    old = RunStore(tmp_path / "old")  # a run started unfolded, as every run before folding was a default
    old.begin([Experiment(f"imagenet:{data}", ("resnet50",), execution=Execution("tf32-conv"))])
    capsys.readouterr()
    assert folding("--out-dir", str(old.out_dir)) is False
    assert "resuming as the run in" in capsys.readouterr().out
    assert folding("--out-dir", str(old.out_dir), "--fold-batchnorm") is True  # given: then the run refuses it
    assert folding("--out-dir", str(old.out_dir), "--force") is True


# ----------------------------------------------------------------- torchrun and --shard, the docs' commands
def test_an_explicit_shard_under_torchrun_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """`torchrun --nproc_per_node=2 ... --shard 0/2` would run shard 0/2 twice and never 1/2
    (torchrun's variables set here by hand, as it sets them)."""
    for name, value in {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert main(["reproduce", "--models", "fonts_cnn", "--shard", "0/2", "--out-dir", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "--shard 0/2 under torchrun (2 processes)" in error and "Leave --shard out under torchrun" in error
    assert not (tmp_path / "out").exists()


def _colour_weights() -> dict:
    """A state dict for the network of docs/your_model.md that names an image's strongest
    colour channel (red: circle, green: square, blue: triangle), confidently."""
    conv, linear = torch.zeros(16, 3, 3, 3), torch.zeros(3, 16)
    for channel in range(3):
        conv[channel, channel, 1, 1] = 1.0  # the channel itself, normalised to [-1, 1]
        linear[channel, channel] = 10.0
    return {"0.weight": conv, "0.bias": torch.zeros(16), "4.weight": linear, "4.bias": torch.zeros(3)}


@pytest.mark.slow
def test_the_commands_of_docs_your_model_work_verbatim_where_they_are_typed(tmp_path):
    """In a folder of one's own: the docs' factory file as written (its torch.load of
    my_weights.pt relative), a labelled my_images/, and the docs' reproduce command as written;
    the same command with the folder's absolute path is the same run, resumed (skipped)."""
    import re
    import shlex

    docs = (REPOSITORY / "docs" / "your_model.md").read_text()
    factory = re.search(r"```python\n(.*?)```", docs, re.S)[1]
    command = next(line for line in docs.splitlines() if line.startswith("blindspots-nb reproduce --models my_models"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "my_models.py").write_text(factory)
    torch.save(_colour_weights(), work / "my_weights.pt")
    for name, colour in (("circle", (230, 30, 30)), ("square", (30, 230, 30)), ("triangle", (30, 30, 230))):
        (work / "my_images" / name).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (40, 40), tuple(max(0, c - 15 * i) for c in colour)).save(work / "my_images" / name / f"{i}.png")
    env = dict(os.environ, OMP_NUM_THREADS="1", BLINDSPOTS_NB_OFFLINE="1")
    executable = os.path.join(os.path.dirname(sys.executable), "blindspots-nb")

    def typed(line: str) -> subprocess.CompletedProcess:
        return subprocess.run([executable, *shlex.split(line)[1:]], cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)

    first = typed(command)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (work / "results" / "mine" / "table1.md").is_file()
    settings = json.loads((work / "results" / "mine" / "settings.json").read_text())
    assert settings["experiments"][0]["image_source"] == f"folder:{work / 'my_images'}"
    again = typed(command.replace("folder:my_images", f"folder:{work / 'my_images'}"))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "finished in" in again.stdout and "skipped" in again.stdout
    explorer = re.search(r"`(Explorer\(.*?\))`", docs)[1]  # the docs' line for Python, in the same folder
    opened = subprocess.run([sys.executable, "-c", f"from blindspots_nb.explorer import Explorer; "
                             f"print(({explorer}).model.class_names)"], cwd=work, env=env, capture_output=True,
                            text=True, timeout=600)
    assert opened.returncode == 0, opened.stderr[-3000:]
    assert "['circle', 'square', 'triangle']" in opened.stdout
