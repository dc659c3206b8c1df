"""A run folder is input like any other: the tool never removes or writes what it did not
write, never mixes pieces of other settings, repairs its broken reports, and answers a
damaged or unusable folder with one clear line."""

import errno
import json
import os
import re
import shutil
import stat
from pathlib import Path

import nbformat
import pytest
import torch

from blindspots_nb import protocol
from blindspots_nb.cli import main
from blindspots_nb.lst import LSTConfig
from blindspots_nb.protocol import Experiment, RunSettingsMismatch, RunStore
from blindspots_nb.protocol import layout
from blindspots_nb.protocol import pool as pool_module
from blindspots_nb.protocol import run as run_module
from blindspots_nb.tools import folders

TINY_LST = LSTConfig(iterations=3, step_size=0.05)
TINY_RUN = ["reproduce", "--models", "fonts_cnn", "--n-sources", "3", "--rounds", "2", "--iterations", "3",
            "--batch-size", "2", "--divisions", "2", "--device", "cpu"]


def _experiment(**changes):
    settings = dict(image_source="fonts:test", models=("fonts_cnn",), lst=TINY_LST, n_sources=3, rounds=2, batch_size=2,
                    divisions=2)
    return Experiment(**{**settings, **changes})


def _prepared(out_dir, experiment=None):
    store, experiment = RunStore(out_dir), experiment or _experiment()
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    return store, experiment


def _user_files(folder: Path) -> dict[str, bytes]:
    files = {"thesis/chapter1.tex": b"\\chapter{One}", "notes.txt": b"do not lose"}
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)
    return files


# ----------------------------------------------------------------- 1. --force
def test_force_never_empties_a_folder_that_is_not_a_run(tmp_path, capsys):
    folder = tmp_path / "home"
    files = _user_files(folder)
    link = tmp_path / "link"
    link.symlink_to(folder)
    for out in (folder, link):
        assert main([*TINY_RUN, "--out-dir", str(out), "--force"]) == 2
        error = capsys.readouterr().err
        assert "holds files that are not a run's (notes.txt, thesis/)" in error
        assert "--force removes only what a run wrote" in error
        assert main([*TINY_RUN, "--out-dir", str(out)]) == 2  # nor does a run start there
        assert "holds files that are not a run's" in capsys.readouterr().err
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "thesis"]  # not even a lock file


def test_force_removes_only_what_the_run_wrote(tmp_path):
    store, experiment = _prepared(tmp_path)
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "fonts_fonts_cnn_shard0of1.ipynb").write_text("{}")
    (tmp_path / "fonts" / "mine.txt").write_text("a user's file inside the run folder")
    with pytest.raises(ValueError, match=r"not a run's \(fonts/mine.txt\)"):
        store.begin([experiment], force=True)
    assert store.pool(experiment) is not None and (tmp_path / "notebooks").is_dir()  # nothing removed
    (tmp_path / "fonts" / "mine.txt").unlink()
    (tmp_path / "fonts" / "elsewhere").symlink_to(tmp_path.parent)
    with pytest.raises(ValueError, match=r"not a run's \(fonts/elsewhere\)"):  # links are never followed
        store.begin([experiment], force=True)
    (tmp_path / "fonts" / "elsewhere").unlink()
    with store.hold():
        store.begin([experiment], force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "settings.json"]


# ----------------------------------------------------------------- 2. paths read from the folder
def test_a_manifest_cannot_remove_or_read_files_outside_its_piece(tmp_path):
    victim = tmp_path / "victim" / "data.txt"
    victim.parent.mkdir()
    victim.write_text("a colleague's data")
    store, experiment = _prepared(tmp_path / "run")
    manifest = tmp_path / "run" / "fonts" / "pool.json.manifest.json"
    record = json.loads(manifest.read_text())
    record["files"]["../../victim/data.txt"] = {"size": 1, "sha256": "0" * 64}
    manifest.write_text(json.dumps(record))
    with pytest.warns(UserWarning, match="recomputing that piece"):
        assert RunStore(tmp_path / "run").pool(experiment) is None
    assert victim.read_text() == "a colleague's data"
    assert (tmp_path / "run" / "fonts" / "pool.json").is_file()  # the piece's file is rewritten, not removed


@pytest.mark.parametrize("field, value, message", [  # a model name is refused already as an Experiment's
    ("name", "../../outside", "cannot name a folder of a run"), ("models", ["../escape"], "unknown model '../escape'"),
    ("models", [".hidden"], "unknown model '.hidden'")])
def test_names_in_the_settings_never_lead_outside_the_folder(tmp_path, capsys, field, value, message):
    store, _ = _prepared(tmp_path / "run")
    settings = json.loads((tmp_path / "run" / "settings.json").read_text())
    settings["experiments"][0][field] = value
    (tmp_path / "run" / "settings.json").write_text(json.dumps(settings))
    assert main(["merge", "--out-dir", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_linked_folder_inside_the_run_is_not_written_through(tmp_path):
    store, experiment = _prepared(tmp_path / "run")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "run" / "fonts" / "fonts_cnn").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ValueError, match="leads outside the output folder"):
        protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    assert list((tmp_path / "elsewhere").iterdir()) == []


# ----------------------------------------------------------------- 3. temporary files
def test_starting_a_run_removes_only_its_own_temporary_files(tmp_path):
    store, experiment = _prepared(tmp_path)
    ours = [tmp_path / ".table1.csv.abcd1234.blindspots_nb.tmp",
            tmp_path / "fonts" / ".pool.json.x_y12345.blindspots_nb.tmp"]
    users = [tmp_path / ".draft.tmp", tmp_path / "fonts" / ".cache.tmp", tmp_path / "inner" / ".vim.swp.tmp",
             tmp_path / "inner" / ".table1.csv.abcd1234.blindspots_nb.tmp"]  # a run of its own in a subfolder
    for path in ours + users:
        path.parent.mkdir(exist_ok=True)
        path.write_text("x")
    with store.hold():
        pass
    assert [p.exists() for p in ours] == [False, False]
    assert all(p.read_text() == "x" for p in users)


# ----------------------------------------------------------------- 4. shards of other settings
def test_merge_refuses_pieces_made_with_other_settings(tmp_path, capsys):
    three, four = _experiment(), _experiment(lst=LSTConfig(iterations=4, step_size=0.05))
    store, _ = _prepared(tmp_path / "a", three)
    protocol.run_model(three, "fonts_cnn", store, shard=(0, 2), device="cpu", progress=False)
    other, _ = _prepared(tmp_path / "b", four)
    protocol.run_model(four, "fonts_cnn", other, shard=(1, 2), device="cpu", progress=False)
    for kind in ("blind_spots", "triangles"):  # shard 1's pieces copied beside shard 0's
        for path in (tmp_path / "b" / "fonts" / "fonts_cnn" / kind).iterdir():
            shutil.copy(path, tmp_path / "a" / "fonts" / "fonts_cnn" / kind / path.name)
    assert main(["merge", "--out-dir", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "fonts/fonts_cnn/blind_spots/b0001_r0, fonts/fonts_cnn/blind_spots/b0001_r1, " \
           "fonts/fonts_cnn/triangles/b0001 were made with other settings" in error
    assert not (tmp_path / "a" / "table1.csv").exists()
    with pytest.raises(RunSettingsMismatch, match="b0001_r0"):  # a resumed run does not take them either
        protocol.run_model(three, "fonts_cnn", store, shard=(1, 2), device="cpu", progress=False)


# ----------------------------------------------------------------- 6. reports
def _notebook(path: Path, outputs: list[dict], executed: bool = True):
    cell = nbformat.v4.new_code_cell("x", execution_count=1 if executed else None)
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nbformat.v4.new_notebook(cells=[cell]), path)


FIGURE = {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo="}, "metadata": {}}


def test_a_finished_model_with_a_broken_report_runs_its_notebook_again(tmp_path, monkeypatch, capsys):
    store, experiment = _prepared(tmp_path)
    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    report = tmp_path / "notebooks" / "fonts_fonts_cnn_shard0of1.ipynb"
    assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (0, 1)) == [
        ((0, 1), ": finished, but its report is missing, made again")]
    _notebook(report, [FIGURE])
    assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (0, 1)) == []
    assert "finished in" in capsys.readouterr().out
    interrupted = {"output_type": "error", "ename": "KeyboardInterrupt", "evalue": "", "traceback": []}
    for outputs, executed, why in (([FIGURE, interrupted], True, "stopped with KeyboardInterrupt"),
                                   ([], False, "not run to its end"), ([], True, "without its figures")):
        _notebook(report, outputs, executed)
        assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (0, 1)) == [
            ((0, 1), f": its report {why}, made again")]
    report.write_text(report.read_text()[:40])  # cut by a full disk
    assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (0, 1))[0][1].startswith(
        ": its report not a notebook")
    _notebook(report, [FIGURE])
    _notebook(tmp_path / "notebooks" / "fonts_fonts_cnn_shard1of2.ipynb", [], executed=False)  # a shard's, broken
    assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (0, 1)) == [
        ((1, 2), ": its report not run to its end, made again")]
    assert run_module.notebooks_to_run(store, experiment, "fonts_cnn", (1, 2), rank=1) == []  # rank 0 repairs


@pytest.mark.slow
def test_a_rerun_repairs_a_cut_report(tmp_path, capsys):
    out = tmp_path / "run"
    assert main([*TINY_RUN, "--out-dir", str(out)]) == 0
    report = out / "notebooks" / "fonts_fonts_cnn_shard0of1.ipynb"
    tables = (out / "table1.csv").read_bytes()
    report.write_bytes(report.read_bytes()[:65536 // 8])
    capsys.readouterr()
    assert main([*TINY_RUN, "--out-dir", str(out)]) == 0
    assert "its report not a notebook" in capsys.readouterr().out
    assert layout.reports(out, _experiment().name, "fonts_cnn") == {(0, 1): None}
    assert (out / "table1.csv").read_bytes() == tables
    shutil.rmtree(out / "notebooks")
    assert main([*TINY_RUN, "--out-dir", str(out)]) == 0
    assert "its report is missing, made again" in capsys.readouterr().out and report.is_file()


# ----------------------------------------------------------------- 12. permissions
def test_result_files_follow_the_umask(tmp_path):
    from blindspots_nb.tools import atomic

    previous = os.umask(0o027)
    try:
        store, experiment = _prepared(tmp_path)
    finally:
        os.umask(previous)
    for path in (tmp_path / "settings.json", tmp_path / "fonts" / "pool.json",
                 tmp_path / "fonts" / "pool.json.manifest.json"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    assert atomic.current_umask() == previous


# ----------------------------------------------------------------- one clear line each
def test_an_output_folder_that_is_a_file_or_a_dangling_link(tmp_path, capsys):
    (tmp_path / "file").write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert main([*TINY_RUN, "--out-dir", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert main([*TINY_RUN, "--out-dir", str(tmp_path / "dangling")]) == 2
    assert "which does not exist" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine" and not (tmp_path / "nowhere").exists()


@pytest.mark.parametrize("content, message", [
    ("[]", "holds a JSON list, not the run's settings"),
    ('{"experiments": []}', "its fields are ['experiments']"),
    ("{not json", "is not valid JSON"),
    ("EXTRA", "an experiment cannot be read"),
    ("MISSING", "an experiment cannot be read"),
])
def test_a_damaged_settings_file_is_named(tmp_path, capsys, content, message):
    store, experiment = _prepared(tmp_path)
    settings = json.loads((tmp_path / "settings.json").read_text())
    if content == "EXTRA":
        settings["experiments"][0]["colour"] = "blue"
    elif content == "MISSING":
        del settings["experiments"][0]["models"]
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings) if content in ("EXTRA", "MISSING") else content)
    for command in (["merge", "--out-dir", str(tmp_path)], [*TINY_RUN, "--out-dir", str(tmp_path)]):
        assert main(command) == 2
        error = capsys.readouterr().err
        assert str(path) in error and message in error and error.count("\n") == 1


def test_a_damaged_pool_record_is_named(tmp_path, capsys):
    store, experiment = _prepared(tmp_path)
    (tmp_path / "fonts" / "fonts_cnn").mkdir()
    (tmp_path / "fonts" / "fonts_cnn" / "record_shard0of1.json").write_text("{cut")
    with pytest.raises(ValueError, match="record_shard0of1.json is not valid JSON"):
        store.records(experiment)


@pytest.mark.slow
def test_a_full_disk_stops_with_one_line_and_the_rerun_gives_the_same_tables(tmp_path, capsys, monkeypatch):
    from blindspots_nb.tools import atomic

    assert main([*TINY_RUN, "--out-dir", str(tmp_path / "whole")]) == 0
    real, calls = atomic.write_atomically, {"n": 0}

    def full_disk(path, write):
        calls["n"] += 1
        if calls["n"] == 4:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, write)

    monkeypatch.setattr(atomic, "write_atomically", full_disk)
    assert main([*TINY_RUN, "--out-dir", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err  # the notebook's progress bars, then one line
    last = error.strip().splitlines()[-1]
    assert last.startswith("blindspots-nb reproduce: error: No space left on device") and "Traceback" not in error
    assert "run the same command again: finished pieces are kept" in last
    monkeypatch.setattr(atomic, "write_atomically", real)
    assert main([*TINY_RUN, "--out-dir", str(tmp_path / "run")]) == 0
    for table in ("table1.csv", "table2.csv"):
        assert (tmp_path / "run" / table).read_bytes() == (tmp_path / "whole" / table).read_bytes()
    assert not [p for p in (tmp_path / "run").rglob("*") if atomic.temporary_of(p)]


def test_a_read_only_folder_is_one_line_even_for_a_finished_run(tmp_path, capsys, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    store, experiment = _prepared(tmp_path)
    monkeypatch.setattr(folders, "open", read_only, raising=False)  # the lock file, first thing a run opens
    assert main(["merge", "--out-dir", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert f"cannot use the output folder {tmp_path}: Read-only file system" in error and error.count("\n") == 1


def test_an_output_folder_that_is_not_utf8_is_refused_before_anything_is_made(tmp_path, capsys):
    out = os.fsdecode(bytes(tmp_path) + b"/r\xe9sultats")
    assert main([*TINY_RUN, "--out-dir", out]) == 2
    assert "is not valid UTF-8" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_seeds_beyond_the_generator_and_numpy_numbers(tmp_path, capsys):
    import numpy as np

    assert main([*TINY_RUN, "--seed", str(2**64), "--out-dir", str(tmp_path / "run")]) == 2
    assert "Experiment.seed must be an integer in [0, 2**64 - 1]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    experiment = _experiment(rounds=np.int64(2), min_conf=np.float32(0.5), seed=np.uint64(2**64 - 1),
                             lst=LSTConfig(step_size=np.float32(0.05), iterations=np.int64(3)))
    assert Experiment.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment
    assert type(experiment.seed) is int and experiment.seed == 2**64 - 1 and type(experiment.min_conf) is float
    with pytest.raises(ValueError, match="rounds must be an integer, got 2.5"):
        _experiment(rounds=2.5)
    with pytest.raises(ValueError, match="min_conf must be a number, got '0.5'"):
        _experiment(min_conf="0.5")


# ----------------------------------------------------------------- 7. images and models that changed under a run
def _glyph_files(folder: Path, count: int = 40):
    """FONTS glyphs as PNG files in one folder, no class folders: read unlabelled."""
    from torchvision.utils import save_image

    from blindspots_nb.data import fonts_dataset

    folder.mkdir(parents=True)
    glyphs = fonts_dataset("test", n=count, seed=0, size=32)
    for i, image in enumerate(glyphs.images):
        save_image(image, folder / f"g{i:02d}.png")
    return glyphs


def test_an_unlabelled_folder_records_its_files_hashes_and_a_changed_file_is_refused(tmp_path, capsys):
    """Each pool file's sha256 is recorded; a file overwritten between shard 0/2 and shard 1/2
    is refused by shard 1 and, changed after every shard finished, by merge: each naming it."""
    from torchvision.utils import save_image

    from blindspots_nb.tools.checksums import file_sha256

    glyphs = _glyph_files(tmp_path / "glyphs")
    experiment = _experiment(image_source=f"folder:{tmp_path / 'glyphs'}", n_sources=4)
    store, _ = _prepared(tmp_path / "out", experiment)
    pool = store.pool(experiment)
    protocol.run_model(experiment, "fonts_cnn", store, shard=(0, 2), device="cpu", progress=False)
    changed = Path(pool["names"][2])  # a source of batch 1: shard 1/2's
    original = changed.read_bytes()
    save_image(glyphs.images[-1], changed)
    with pytest.raises(RunSettingsMismatch, match=f"{changed.name} changed"):
        protocol.run_model(experiment, "fonts_cnn", store, shard=(1, 2), device="cpu", progress=False)
    changed.write_bytes(original)
    protocol.run_model(experiment, "fonts_cnn", store, shard=(1, 2), device="cpu", progress=False)
    save_image(glyphs.images[-1], changed)
    assert main(["merge", "--out-dir", str(tmp_path / "out")]) == 2
    assert f"{changed} changed (sha256)" in capsys.readouterr().err
    assert not (tmp_path / "out" / "table1.csv").exists()
    changed.write_bytes(original)
    assert main(["merge", "--out-dir", str(tmp_path / "out")]) == 0
    assert pool["sha256_of"] == "files" and pool["sha256"] == [file_sha256(name) for name in pool["names"]]


def test_images_made_in_memory_are_checked_by_their_pixels(tmp_path, monkeypatch):
    """Glyphs have no files: the pool records the sha256 of each one's 8-bit pixels, so a glyph
    drawn otherwise (another font file, another Pillow) is refused before a resume uses it."""
    from blindspots_nb.models import load_model
    from blindspots_nb.protocol.report import model_report

    store, experiment = _prepared(tmp_path / "out")
    pool = store.pool(experiment)
    assert pool["sha256_of"] == "pixels" and pool["pixel_size"] == [1, 32, 32]
    assert len(set(pool["sha256"])) == len(pool["names"]) and all(len(d) == 64 for d in pool["sha256"])
    drawn = pool_module.open_source

    def drawn_otherwise(*args, **kwargs):
        glyphs = drawn(*args, **kwargs)
        glyphs.images = glyphs.images.clone()
        glyphs.images[pool["indices"][1]] += 0.5 / 255 + 1e-4  # half a level and a bit: another 8-bit image
        return glyphs

    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)  # as drawn: accepted
    model = load_model("fonts_cnn", device="cpu")
    report = model_report(store, experiment, "fonts_cnn")  # the report checks the images it shows too
    assert torch.equal(report.sources, protocol.pool_images(experiment, pool, model)[:len(report.sources)])
    monkeypatch.setattr(pool_module, "open_source", drawn_otherwise)
    with pytest.raises(RunSettingsMismatch, match=re.escape(pool['names'][1]) + ".*sha256"):
        protocol.pool_images(experiment, pool, model)


SIZED_MODEL = """
import os
import torch
from torch import nn
from blindspots_nb.models import wrap

class Colour(nn.Module):  # "red" when red, "green" when green, sure of it, at any input size
    def forward(self, x):
        red_minus_green = (x[:, 0] - x[:, 1]).mean((1, 2))
        return torch.stack([20 * red_minus_green, -20 * red_minus_green], 1)

def build():
    size = int(os.environ.get("COLOUR_SIZE", "16"))
    return wrap(Colour(), mean=(0.0,) * 3, std=(1.0,) * 3, class_names=["red", "green"], input_size=(3, size, size))
"""


def _colour_run(tmp_path: Path) -> tuple[list[str], Path]:
    """A factory whose input size comes from COLOUR_SIZE, four red or green images, and the
    command line of a run of it (two sources, one per batch: two shards)."""
    from PIL import Image

    (tmp_path / "colour.py").write_text(SIZED_MODEL)
    (tmp_path / "colours").mkdir()
    for name, colour in (("a", (220, 20, 20)), ("b", (20, 220, 20)), ("c", (200, 40, 30)), ("d", (30, 200, 40))):
        Image.new("RGB", (20, 20), colour).save(tmp_path / "colours" / f"{name}.png")
    return (["reproduce", "--models", f"{tmp_path / 'colour.py'}:build", "--image-source",
             f"folder:{tmp_path / 'colours'}", "--rounds", "2", "--iterations", "3", "--step-size", "0.05",
             "--batch-size", "1", "--divisions", "2", "--device", "cpu", "--out-dir", str(tmp_path / "out")],
            tmp_path / "out")


def test_a_model_of_another_input_size_is_refused_at_the_shard_and_at_merge(tmp_path, monkeypatch, capsys):
    """The same parameters with input size 16 for shard 0/2 and 32 for shard 1/2: shard 1 is
    refused when it starts and in its kernel, naming the input size; merge refuses a shard
    record of another model."""
    from blindspots_nb.cli import build_parser, experiments_from_args

    command, out = _colour_run(tmp_path)
    experiment, = experiments_from_args(build_parser().parse_args(command))
    monkeypatch.setenv("COLOUR_SIZE", "16")
    store, _ = _prepared(out, experiment)
    spec = experiment.models[0]
    protocol.run_model(experiment, spec, store, shard=(0, 2), device="cpu", progress=False)
    monkeypatch.setenv("COLOUR_SIZE", "32")
    assert main([*command, "--shard", "1/2"]) == 2
    assert "input_size.1: 16 there, 32 now" in capsys.readouterr().err
    assert store.weights()[spec]["model"] == {"input_size": [3, 16, 16], "mean": [0.0] * 3, "std": [1.0] * 3,
                                              "crop_pct": None, "class_names": ["red", "green"]}
    with pytest.raises(RunSettingsMismatch, match="input_size.1: 16 there, 32 now"):
        protocol.run_model(experiment, spec, store, shard=(1, 2), device="cpu", progress=False)
    monkeypatch.setenv("COLOUR_SIZE", "16")
    protocol.run_model(experiment, spec, store, shard=(1, 2), device="cpu", progress=False)
    record = next((out / experiment.name).glob("*/record_shard1of2.json"))
    recorded = json.loads(record.read_text())
    assert recorded["model_identity"] == store.weights()[spec]["model"]
    recorded["model_identity"]["class_names"] = ["green", "red"]  # a record of a shard made by another model
    record.write_text(json.dumps(recorded))
    assert main(["merge", "--out-dir", str(out)]) == 2
    assert "record_shard1of2 was made by another" in capsys.readouterr().err
    assert not (out / "table1.csv").exists()


def test_a_run_recorded_before_model_identities_is_resumed_and_merged_with_a_warning(tmp_path, monkeypatch):
    """A run folder whose settings hold only the weights' sha256 (as earlier versions wrote
    them): its pieces are kept, its settings are not rewritten, and resuming or merging it says
    that input size, mean, std, crop and class names are not checked for it."""
    full = run_module.weights_identity
    monkeypatch.setattr(run_module, "weights_identity", lambda *args: {
        name: {key: value for key, value in record.items() if key != "model"} for name, record in full(*args).items()})
    store, experiment = _prepared(tmp_path)
    with pytest.warns(UserWarning, match="before runs held a model's input size"):
        protocol.run_model(experiment, "fonts_cnn", store, shard=(0, 2), device="cpu", progress=False)
    settings = (tmp_path / "settings.json").read_text()
    monkeypatch.setattr(run_module, "weights_identity", full)
    with pytest.warns(UserWarning, match="fonts_cnn .*sha256 alone"):
        store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
        protocol.run_model(experiment, "fonts_cnn", store, shard=(1, 2), device="cpu", progress=False)
    assert (tmp_path / "settings.json").read_text() == settings
    assert store.model_finished(experiment, "fonts_cnn")
    with pytest.warns(UserWarning, match="sha256 alone"):
        protocol.merge(tmp_path)
    assert (tmp_path / "table1.csv").is_file()


def test_a_folder_named_relatively_or_absolutely_is_the_same_run(tmp_path, monkeypatch):
    """The experiment holds the folder's absolute path: the kernels (and any process) open it
    wherever they run, and retrying with the absolute path resumes the same run."""
    _glyph_files(tmp_path / "my_images")
    monkeypatch.chdir(tmp_path)
    relative, absolute = (_experiment(image_source=source, n_sources=4)
                          for source in ("folder:my_images", f"folder:{tmp_path / 'my_images'}"))
    assert relative == absolute and str(relative.image_source) == f"folder:{tmp_path / 'my_images'}"
    store, _ = _prepared(tmp_path / "out", relative)
    store.begin([absolute], weights=run_module.weights_identity([absolute], {}))  # not "other settings"
    monkeypatch.chdir(tmp_path / "out")  # where the report's kernel used to run
    protocol.run_model(relative, "fonts_cnn", store, device="cpu", progress=False)
    assert store.model_finished(absolute, "fonts_cnn")
