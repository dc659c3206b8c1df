"""The tables' protocol as a library: pool, derangements, resumable and sharded runs,
the run store, the tables, and the settings check."""

import ast
import csv
import dataclasses
import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

from blindspots_nb import protocol
from blindspots_nb.tools.checksums import file_sha256
from blindspots_nb.lst import LSTConfig
from blindspots_nb.models import CHECKPOINT_DIR
from blindspots_nb.protocol import Experiment, RunSettingsMismatch, RunStore
from blindspots_nb.protocol import pool as pool_module
from blindspots_nb.protocol import run as run_module

SMALL_LST = LSTConfig(iterations=10, step_size=0.05)
PACKAGE = Path(protocol.__file__).resolve().parent.parent


def _fonts_experiment(**changes):
    settings = dict(image_source="fonts:test", models=("fonts_cnn", "fonts_cnn_at"), lst=SMALL_LST, n_sources=5,
                    rounds=3, batch_size=2)
    settings.update(changes)
    return Experiment(**settings)


def _begin(store, experiment):
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))


def _run(experiment, store, shards=((0, 1),)):
    """Prepare, run every model and shard, assemble; the files a user compares."""
    _begin(store, experiment)
    protocol.prepare(experiment, store, device="cpu")
    for shard in shards:
        for name in experiment.models:
            protocol.run_model(experiment, name, store, shard=shard, device="cpu", progress=False)
    protocol.assemble(store, [experiment])
    folder = store.out_dir / "fonts"
    return {name: (folder / name / "per_blindspot.csv").read_text() + (folder / name / "per_source.csv").read_text()
            for name in experiment.models} | {table: (store.out_dir / table).read_text()
                                              for table in ("table1.csv", "table2.csv")}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    store = RunStore(tmp_path_factory.mktemp("uninterrupted"))
    return store, _run(_fonts_experiment(), store)


def test_derangements_have_no_fixed_points():
    rounds = protocol.derangements(7, 5, seed=3)
    assert rounds.shape == (5, 7)
    for permutation in rounds:
        assert sorted(permutation.tolist()) == list(range(7))
        assert not (permutation == torch.arange(7)).any()
    assert torch.equal(rounds, protocol.derangements(7, 5, seed=3))
    with pytest.raises(ValueError, match="at least 2"):
        protocol.derangements(1, 5, seed=0)


def test_an_experiment_holds_its_lst_config_and_round_trips():
    experiment = _fonts_experiment()
    assert isinstance(experiment.lst, LSTConfig) and experiment.name == "fonts"
    assert Experiment.from_dict(json.loads(json.dumps(experiment.to_dict()))) == experiment
    with pytest.raises(dataclasses.FrozenInstanceError):
        experiment.rounds = 4
    with pytest.raises(TypeError, match="LSTConfig"):
        Experiment("photos", ("efficientnet_lite0",), lst={"iterations": 3})
    for bad, message in ((dict(rounds=1), "rounds must be >= 2"), (dict(n_sources=1), "n_sources must be >= 2"),
                         (dict(batch_size=0), "batch_size"), (dict(models=()), "at least one model"),
                         (dict(image_source="mnist"), "unknown image source")):
        with pytest.raises(ValueError, match=message):
            _fonts_experiment(**bad)


def test_protocol_files_and_rules(uninterrupted):
    store, _ = uninterrupted
    pool = json.loads((store.out_dir / "fonts" / "pool.json").read_text())
    assert len(pool["labels"]) == 5 and len(set(pool["labels"])) == 5  # one image per class
    for confidences in pool["confidence"].values():
        assert min(confidences) > 0.6
    rows = list(csv.DictReader(open(store.out_dir / "fonts" / "fonts_cnn" / "per_blindspot.csv")))
    assert len(rows) == 5 * 3
    for row in rows:
        assert row["source"] != row["target"]
        assert float(row["initial_confidence"]) - float(row["confidence"]) < 0.2  # LST kept the confidence within delta
        assert 0 <= float(row["rmse"]) <= float(row["linf"]) <= 1 and -1 <= float(row["ssim"]) <= 1
    sources = list(csv.DictReader(open(store.out_dir / "fonts" / "fonts_cnn" / "per_source.csv")))
    assert len(sources) == 5 and all(row["pairs"] == "3" for row in sources)
    for row in sources:
        fractions = [float(row[f"frac_{d:g}"]) for d in (0.0, 0.1, 0.2, 0.3)]
        assert fractions == sorted(fractions) and 0 <= fractions[0] and fractions[-1] <= 1
    grid = store.mean_triangle_grid(_fonts_experiment(), "fonts_cnn")  # the report's triangle figure
    assert grid.shape == (5, 66)
    assert torch.allclose(grid.double().mean(1), torch.tensor([float(r["avg_conf"]) for r in sources],
                                                              dtype=torch.float64), atol=1e-6)
    assert not list(store.out_dir.rglob("*.tmp"))


def test_tables_hold_ours_and_the_papers(uninterrupted):
    store, _ = uninterrupted
    table1 = list(csv.DictReader(open(store.out_dir / "table1.csv")))
    assert [row["model"] for row in table1 if row["source"] == "ours"] == ["fonts_cnn", "fonts_cnn_at"]
    assert {row["model"] for row in table1 if row["source"] == "paper"} == set(protocol.PAPER_TABLE1)
    resnet = next(row for row in table1 if row["model"] == "resnet50")
    assert float(resnet["rmse_mean"]) == 0.008 and float(resnet["linf_std"]) == 0.020
    ours = next(row for row in table1 if row["model"] == "fonts_cnn")
    rows = list(csv.DictReader(open(store.out_dir / "fonts" / "fonts_cnn" / "per_blindspot.csv")))
    rmse = torch.tensor([float(row["rmse"]) for row in rows], dtype=torch.float64)
    assert float(ours["rmse_mean"]) == pytest.approx(float(rmse.mean()), abs=1e-12)
    assert float(ours["rmse_std"]) == pytest.approx(float(rmse.std(unbiased=False)), abs=1e-12)
    markdown = (store.out_dir / "table2.md").read_text()
    assert "| fonts_cnn_at (ours, fonts, n=5) |" in markdown and "Avg Path Conf" in markdown
    assert "iterations=10" in markdown and "rounds=3" in markdown  # says what produced it
    digest = file_sha256(CHECKPOINT_DIR / "fonts_cnn.pt")
    assert f"fonts_cnn fonts_cnn.pt sha256 {digest[:16]}, verified" in markdown
    assert r"\begin{tabular}" in (store.out_dir / "table1.tex").read_text()
    run = json.loads((store.out_dir / "run.json").read_text())
    assert run["models_and_shards"]["fonts_cnn/record_shard0of1"]["model"]["name"] == "fonts_cnn"


def test_resumed_run_gives_the_same_tables(uninterrupted, tmp_path, monkeypatch):
    _, expected = uninterrupted
    experiment, store = _fonts_experiment(), RunStore(tmp_path)
    _begin(store, experiment)
    protocol.prepare(experiment, store, device="cpu")
    calls = {"n": 0}
    real_traverse = run_module.traverse

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 4:
            raise KeyboardInterrupt  # the run is stopped part way
        return real_traverse(*args, **kwargs)

    monkeypatch.setattr(run_module, "traverse", crashing)
    with pytest.raises(KeyboardInterrupt):
        protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    monkeypatch.setattr(run_module, "traverse", real_traverse)
    assert len(list((tmp_path / "fonts" / "fonts_cnn" / "blind_spots").glob("*.csv"))) == 4
    assert _run(experiment, store) == expected


def test_sharded_run_gives_the_same_tables(uninterrupted, tmp_path):
    _, expected = uninterrupted
    experiment, store = _fonts_experiment(), RunStore(tmp_path)
    _begin(store, experiment)
    protocol.prepare(experiment, store, device="cpu")
    for name in experiment.models:
        protocol.run_model(experiment, name, store, shard=(1, 2), device="cpu", progress=False)
    assert not store.model_finished(experiment, "fonts_cnn")
    with pytest.raises(RuntimeError, match="not finished"):
        protocol.assemble(store, [experiment])
    assert _run(experiment, store, shards=[(0, 2)]) == expected


def test_a_run_in_process_stores_what_the_step_by_step_run_stores_and_resumes(uninterrupted, tmp_path, monkeypatch):
    store, expected = uninterrupted
    experiment, here = _fonts_experiment(), RunStore(tmp_path)
    pool = protocol.run_in_process(experiment, here, device="cpu", progress=False)
    assert pool == store.pool(experiment) == here.pool(experiment)
    assert all(here.model_finished(experiment, name) for name in experiment.models)
    monkeypatch.setattr(run_module, "traverse", lambda *args, **kwargs: pytest.fail("a finished piece ran again"))
    protocol.run_in_process(experiment, here, device="cpu", progress=False)
    monkeypatch.undo()
    assert _run(experiment, here) == expected


def test_a_model_run_needs_a_prepared_pool(tmp_path):
    store = RunStore(tmp_path)
    store.begin([_fonts_experiment()])
    with pytest.raises(RuntimeError, match="no pool for fonts.*blindspots-nb reproduce"):
        protocol.run_model(_fonts_experiment(), "fonts_cnn", store, device="cpu", progress=False)


def test_output_folder_with_other_settings_is_refused(tmp_path):
    store, experiment = RunStore(tmp_path), _fonts_experiment()
    store.begin([experiment])
    protocol.prepare(experiment, store, device="cpu")  # a result: from now on the settings are the run's
    other = _fonts_experiment(lst=dataclasses.replace(SMALL_LST, iterations=11))
    with pytest.raises(RunSettingsMismatch, match="iterations: 10 there, 11 now"):
        store.begin([other])
    assert store.pool(experiment) is not None  # nothing overwritten
    assert store.experiment("fonts") == experiment
    for name in ("table1.md", "run.json"):
        (tmp_path / name).write_text("old")
    (tmp_path / "notebooks").mkdir()
    store.begin([other], force=True)  # --force clears everything first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]
    assert store.experiments() == [other]
    with pytest.raises(ValueError, match="share a name"):
        store.begin([experiment, experiment], force=True)
    with pytest.raises(ValueError, match="no experiment 'photos'"):
        store.experiment("photos")


def test_a_start_that_failed_does_not_block_the_corrected_rerun(tmp_path):
    store = RunStore(tmp_path)
    store.begin([_fonts_experiment(image_source="imagenet:/wrong/folder")])  # then failed before any result
    store.begin([_fonts_experiment()])
    assert store.experiments() == [_fonts_experiment()]


def test_other_weights_are_part_of_the_settings(tmp_path):
    store, experiment = RunStore(tmp_path), _fonts_experiment()
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    assert store.weights()["fonts_cnn"]["sha256"] == file_sha256(CHECKPOINT_DIR / "fonts_cnn.pt")
    other = run_module.weights_identity([experiment], {"fonts_cnn": str(CHECKPOINT_DIR / "fonts_cnn_at.pt")})
    normal, robust = (file_sha256(CHECKPOINT_DIR / f"{name}.pt") for name in ("fonts_cnn", "fonts_cnn_at"))
    with pytest.raises(RunSettingsMismatch, match=f"weights.fonts_cnn: '{normal}' there, '{robust}' now"):
        store.begin([experiment], weights=other)
    moved = {name: {**w, "file": f"/elsewhere/{name}.pt"} for name, w in store.weights().items()}
    store.begin([experiment], weights=moved)  # the same files at other paths: the same run
    # a weights file that changed under a running run is refused by the model's run itself
    settings = json.loads((tmp_path / "settings.json").read_text())
    settings["weights"]["fonts_cnn"]["sha256"] = "0" * 64
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(RunSettingsMismatch, match="fonts_cnn's weights file .*not the one"):
        protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)


def test_a_piece_that_fails_its_check_is_recomputed(uninterrupted, tmp_path):
    """Cut bytes off a finished triangles file, cut a blind-spot file to its header, delete the
    tables: the rerun notices, says so, recomputes those pieces and gives the same tables."""
    finished, expected = uninterrupted
    shutil.copytree(finished.out_dir, tmp_path, dirs_exist_ok=True)  # the finished run, its files' times kept
    store = RunStore(tmp_path)
    triangles = tmp_path / "fonts" / "fonts_cnn" / "triangles" / "b0001.csv"
    triangles.write_bytes(triangles.read_bytes()[:-16])
    blind_spots = tmp_path / "fonts" / "fonts_cnn_at" / "blind_spots" / "b0000_r1.csv"
    blind_spots.write_text(blind_spots.read_text().splitlines()[0] + "\n")
    for table in ("table1.csv", "table2.csv"):
        (tmp_path / table).unlink()
    with pytest.warns(UserWarning, match="no longer match the piece's manifest"):
        assert not store.model_finished(_fonts_experiment(), "fonts_cnn")
    assert _run(_fonts_experiment(), store) == expected


def test_pieces_are_hashed_as_written_and_read_again_only_when_their_time_changed(uninterrupted, monkeypatch):
    """Each manifest holds the size and sha256 of its files' bytes (taken as they were written);
    a fresh store trusts files of the recorded size and modification time without reading
    them, and hashes a file whose time changed (touched: still the same bytes, so finished)."""
    from blindspots_nb.protocol import store as store_module

    store, _ = uninterrupted
    manifests = sorted(store.out_dir.glob("fonts/**/*.manifest.json"))
    assert len(manifests) == 1 + 2 * (3 * 3 + 3)  # the pool; per model 3 batches x 3 rounds, 3 batches of triangles
    for manifest in manifests:
        for name, entry in json.loads(manifest.read_text())["files"].items():
            path = manifest.parent / name
            assert (entry["size"], entry["sha256"]) == (path.stat().st_size, file_sha256(path))
    hashed = []
    monkeypatch.setattr(store_module, "file_sha256", lambda path: hashed.append(path) or file_sha256(path))
    assert RunStore(store.out_dir).model_finished(_fonts_experiment(), "fonts_cnn") and hashed == []
    touched = store.out_dir / "fonts" / "fonts_cnn" / "blind_spots" / "b0001_r2.pt"
    times = touched.stat()
    os.utime(touched, ns=(times.st_atime_ns, times.st_mtime_ns + 10**9))
    try:
        assert RunStore(store.out_dir).model_finished(_fonts_experiment(), "fonts_cnn") and hashed == [touched]
    finally:
        os.utime(touched, ns=(times.st_atime_ns, times.st_mtime_ns))
    manifest = touched.with_name("b0000_r0.manifest.json")  # as manifests were before they recorded the time
    written = manifest.read_text()
    record = json.loads(written)
    manifest.write_text(json.dumps({**record, "files": {name: {key: value for key, value in entry.items()
                                                               if key != "mtime_ns"}
                                                        for name, entry in record["files"].items()}}))
    try:
        hashed.clear()
        assert RunStore(store.out_dir).model_finished(_fonts_experiment(), "fonts_cnn")
        assert sorted(path.name for path in hashed) == ["b0000_r0.csv", "b0000_r0.pt"]
    finally:
        manifest.write_text(written)


def test_pool_images_are_found_by_name_and_checked(tmp_path):
    """A folder source: an added file does not shift the pool; a changed pool file is refused."""
    from blindspots_nb.data import fonts_dataset
    from torchvision.utils import save_image

    glyphs = fonts_dataset("test", n=40, seed=0, size=32)
    for i, (image, label) in enumerate(zip(glyphs.images, glyphs.labels)):
        folder = tmp_path / "glyphs" / "ABCDEFGHIJ"[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        save_image(image, folder / f"g{i:02d}.png")
    experiment = Experiment(f"folder:{tmp_path / 'glyphs'}", ("fonts_cnn",), SMALL_LST, n_sources=4, rounds=2)
    store = RunStore(tmp_path / "out")
    store.begin([experiment])
    pool = protocol.prepare(experiment, store, device="cpu")
    assert len(pool["sha256"]) == 4 and all(len(digest) == 64 for digest in pool["sha256"])
    from blindspots_nb.models import load_model

    model = load_model("fonts_cnn", device="cpu")
    before = protocol.pool_images(experiment, pool, model)
    first = Path(pool["names"][0])
    save_image(torch.zeros(1, 32, 32), first.parent / "a_first.png")  # sorts before every pool image
    assert torch.equal(protocol.pool_images(experiment, pool, model), before)
    save_image(glyphs.images[-1], first)
    with pytest.raises(RunSettingsMismatch, match=f"{first.name} changed"):
        protocol.pool_images(experiment, pool, model)
    first.unlink()
    with pytest.raises(RunSettingsMismatch, match=f"{first.name} is gone"):
        protocol.pool_images(experiment, pool, model)


COLOUR_MODEL = """
import torch
from torch import nn
from blindspots_nb.models import imagenet_class_names

class Colour(nn.Module):  # tench when red, goldfish when green, sure of it
    def forward(self, x):
        red_minus_green = (x[:, 0] - x[:, 1]).mean((1, 2))
        logits = torch.full((len(x), 1000), -50.0)
        return torch.cat([20 * red_minus_green[:, None], -20 * red_minus_green[:, None], logits[:, 2:]], 1)

def build():
    return {"module": Colour(), "mean": (0.0,) * 3, "std": (1.0,) * 3,
            "class_names": list(imagenet_class_names()), "input_size": (3, 16, 16)}
"""


def test_an_imagenet_folder_is_listed_once_and_its_unreadable_files_are_skipped_when_decoded(tmp_path, monkeypatch):
    """prepare lists the folder and decodes only what the pool rule needs, skipping (and
    recording in pool.json) a file that does not decode; the model's run then reads the
    pool's files by path, without opening the folder again."""
    from PIL import Image

    from blindspots_nb.data import preprocess_for
    from blindspots_nb.models import load_model

    (tmp_path / "build.py").write_text(COLOUR_MODEL)
    root = tmp_path / "val"
    for wnid, colour in (("n01440764", (200, 20, 20)), ("n01443537", (20, 200, 20))):  # tench, goldfish
        (root / wnid).mkdir(parents=True)
        for name in ("b.JPEG", "c.JPEG"):
            Image.new("RGB", (24, 20), colour).save(root / wnid / name)
    (root / "n01440764" / "a.JPEG").write_bytes(b"\xff\xd8\xff\xe0 cut short")
    spec = f"{tmp_path / 'build.py'}:build"
    experiment = Experiment(f"imagenet:{root}", (spec,), SMALL_LST, rounds=2)
    store = RunStore(tmp_path / "out")
    store.begin([experiment])
    with pytest.warns(UserWarning, match=r"select_pool: skipped 1 file\(s\).*a.JPEG"):
        pool = protocol.prepare(experiment, store, device="cpu")
    assert [Path(name).relative_to(root).as_posix() for name in pool["names"]] == ["n01440764/b.JPEG",
                                                                                   "n01443537/b.JPEG"]
    assert [(Path(name).name, bool(reason)) for name, reason in pool["skipped"]] == [("a.JPEG", True)]
    monkeypatch.setattr(pool_module, "open_source", lambda *args, **kwargs: pytest.fail("the folder was opened again"))
    model = load_model(spec, device="cpu")
    expected = torch.stack([preprocess_for(model)(Image.open(name)) for name in pool["names"]])
    assert torch.equal(protocol.pool_images(experiment, pool, model), expected)


@pytest.mark.slow  # a holder subprocess
def test_one_run_at_a_time_and_a_killed_holder_is_recognised(tmp_path, capsys):
    import os
    import signal
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from blindspots_nb.protocol import RunStore\n"
        f"with RunStore({str(tmp_path)!r}).hold():\n    print('held', flush=True); time.sleep(120)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(protocol.RunFolderBusy, match=f"in use by another run \\(pid {holder.pid} on"):
            with RunStore(tmp_path).hold():
                pass
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    (tmp_path / ".table1.csv.x1abcdef.blindspots_nb.tmp").write_text("left by the killed run")
    with RunStore(tmp_path).hold():
        assert f"taking over the lock of a run that ended without releasing it (pid {holder.pid}" in \
            capsys.readouterr().out
        assert not list(tmp_path.glob("*.tmp"))
    with RunStore(tmp_path).hold():  # released cleanly: nothing to take over
        assert "taking over" not in capsys.readouterr().out


@pytest.mark.slow  # two writer subprocesses
def test_writers_of_one_path_never_collide_and_readers_see_whole_files(tmp_path):
    """Two processes replace one file 300 times each while this one reads it: no error,
    and every read is one whole version."""
    import subprocess
    import sys

    target = tmp_path / "table1.csv"
    texts = {n: f"writer {n}\n" + "x" * 200_000 for n in (0, 1)}
    RunStore(tmp_path)._write_text(target, texts[0])
    script = ("import sys; from pathlib import Path; from blindspots_nb.protocol import RunStore\n"
              "n = int(sys.argv[1]); text = f'writer {n}\\n' + 'x' * 200_000\n"
              f"store = RunStore({str(tmp_path)!r})\n"
              f"for _ in range(300): store._write_text(Path({str(target)!r}), text)")
    writers = [subprocess.Popen([sys.executable, "-c", script, str(n)], stderr=subprocess.PIPE, text=True)
               for n in (0, 1)]
    reads = set()
    while any(w.poll() is None for w in writers):
        reads.add(target.read_text())
    errors = [w.stderr.read() for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    assert reads <= set(texts.values()) and target.read_text() in texts.values()
    assert not list(tmp_path.glob("*.tmp"))


# ----------------------------------------------------------------- only the store writes
WRITING_CALLS = {("torch", "save"), ("atomic", "write_atomically"), ("os", "replace"), ("os", "rename"), ("os", "remove"), ("shutil", "rmtree"),
                 ("shutil", "copy"), ("shutil", "move"), ("json", "dump"), ("papermill", "execute_notebook")}
WRITING_METHODS = {"write_text", "write_bytes", "mkdir", "touch", "unlink", "rmdir", "savefig", "to_csv",
                   "execute_notebook"}


def _writes(source: str) -> list[str]:
    """The calls in ``source`` that write files (builtin open included)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        function = node.func
        if isinstance(function, ast.Name) and function.id == "open":
            found.append("open")
        elif isinstance(function, ast.Attribute):
            owner = function.value.id if isinstance(function.value, ast.Name) else None
            if (owner, function.attr) in WRITING_CALLS or (function.attr in WRITING_METHODS and owner != "store"):
                found.append(f"{owner}.{function.attr}")
    return found


def test_only_the_run_store_writes_under_the_output_folder():
    store_source = (PACKAGE / "protocol" / "store.py").read_text()
    assert {"torch.save", "atomic.write_atomically", "open", "papermill.execute_notebook"} <= set(
        _writes(store_source))  # the scan sees writes where they are
    others = {path.name: path.read_text() for path in (PACKAGE / "protocol").glob("*.py") if path.name != "store.py"}
    others["cli.py"] = (PACKAGE / "cli.py").read_text()
    notebook = nbformat.read(protocol.NOTEBOOK, as_version=4)
    others["10_reproduce_tables.ipynb"] = "\n".join(
        cell.source for cell in notebook.cells if cell.cell_type == "code")
    assert {name: _writes(source) for name, source in others.items() if _writes(source)} == {}


def test_next_class_pairs_pair_each_class_with_the_next_of_the_same_rank():
    from blindspots_nb.protocol.pool import Pool

    labels = torch.tensor([2, 0, 1, 0, 2, 1, 0])  # class 0 at 1, 3, 6; class 1 at 2, 5; class 2 at 0, 4
    pool = Pool(torch.zeros(7, 1, 2, 2), labels, list(range(7)), [f"i{n}" for n in range(7)], ["a", "b", "c"],
                torch.ones(7, 1), ["m"], 3, 0.6, [])
    order, targets = pool.next_class_pairs(5)
    assert order == [1, 2, 0, 3, 5]  # rank 0 of classes 0, 1, 2, then rank 1 of classes 0, 1
    assert targets == [2, 0, 1, 5, 4]  # rank 0 of classes 1, 2, 0, then rank 1 of classes 1, 2
    assert [int(labels[t]) for t in targets] == [(int(labels[s]) + 1) % 3 for s in order]
    with pytest.raises(ValueError, match=r"\(\[3, 2, 2\]\) for 7 sources"):
        pool.next_class_pairs(7)


def test_the_packaged_notebook_is_given_exactly_its_parameters(tmp_path):
    # papermill runs a notebook given a name its parameters cell lacks, with that cell's default:
    # each parameter the protocol passes must be one the notebook declares, and none left out
    import papermill

    from blindspots_nb.protocol.notebooks import notebook_parameters

    experiment = Experiment(name="fonts", image_source="fonts:test", models=["fonts_cnn"])
    given = notebook_parameters(experiment, "fonts_cnn", RunStore(tmp_path / "run"), (1, 2))
    assert set(given) == set(papermill.inspect_notebook(str(protocol.NOTEBOOK)))
    assert (given["model_name"], given["shard"]) == ("fonts_cnn", "1/2")
