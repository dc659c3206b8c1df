"""The explorer's state driven from code, no widgets: stepping, the background run,
restarts, uploads, image sources, models, export and its record."""

import csv
import dataclasses
import io
import json
import math
import os
import re
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb import __version__
from blindspots_nb.data import TensorImages
from blindspots_nb.explorer.catalogue import GIVEN_IMAGES
from blindspots_nb.explorer.state import Explorer
from blindspots_nb.explorer.triangle import RedrawThrottle
from blindspots_nb.lst import LSTConfig, Traversal
from blindspots_nb.analysis.geometry import (segment_confidence, stats_from_confidence, triangle_confidence,
                                             triangle_grid, triangle_shape)
from blindspots_nb.analysis.metrics import rmse
from blindspots_nb.models import wrap

from helpers import make_tiny_cnn

NAMES = ["w", "x", "y", "z"]
CONFIG = LSTConfig(iterations=30, record_every=1)


class Breakable(torch.nn.Module):
    """A tiny CNN whose forward pass raises once ``broken`` is set."""

    def __init__(self):
        super().__init__()
        self.net = make_tiny_cnn()
        self.broken = False

    def forward(self, x):
        if self.broken:
            raise RuntimeError("the model broke")
        return self.net(x)


def tiny(name="tiny", size=16, module=None):
    return wrap(module or make_tiny_cnn(), mean=(0, 0, 0), std=(1, 1, 1), class_names=list("abcde"),
                input_size=(3, size, size), name=name)


@pytest.fixture
def model():
    return tiny()


@pytest.fixture
def images():
    torch.manual_seed(0)
    return TensorImages(torch.rand(4, 3, 16, 16), torch.full((4,), -1), [], NAMES)


@pytest.fixture
def explorer(model, images):
    return Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG, iterations_per_click=5)


def listen(explorer):
    """The (event, message, thread name) of each change the explorer tells of, as a list that grows."""
    events = []
    explorer.on_change(lambda event, message: events.append((event, message, threading.current_thread().name)))
    return events


def image_file(mode, size, colour) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.slow  # a fresh interpreter
def test_the_explorer_needs_no_widgets():
    code = "import sys, blindspots_nb.explorer.state; print(sorted(m for m in sys.modules if 'ipywidgets' in m))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_step_runs_iterations_and_tells_listeners(explorer):
    events = listen(explorer)
    explorer.step()
    explorer.step(3)
    t = explorer.traversal
    assert t.iteration == 8
    assert [event for event, _, _ in events] == ["progress", "triangle"] * 2  # the live triangle after each step
    snap = explorer.snapshot()
    assert (snap.source_name, snap.a.target, snap.iteration) == ("w", "x", 8)
    assert list(snap.result.history.iteration) == list(range(9))
    assert snap.a.confidence == pytest.approx(float(t.confidence[0]))
    assert snap.a.rmse_to_target == pytest.approx(float(rmse(t.images, t.targets)[0]))
    torch.testing.assert_close(snap.a.current_image, t.images[0])
    explorer.step(2)  # the snapshot keeps its own history
    assert len(snap.result.history.iteration) == 9 and len(explorer.traversal.history.iteration) == 11


def test_run_steps_in_the_background_and_pause_stops_it(explorer):
    events = listen(explorer)
    explorer.run()
    assert explorer.wait(60)
    assert explorer.traversal.iteration == 30 and not explorer.running
    assert [event for event, _, _ in events] == ["running"] + ["progress"] * 6 + ["running"]
    assert {thread for event, _, thread in events if event == "progress"} == {"lst-explorer"}
    with pytest.raises(RuntimeError, match="already at iteration 30"):
        explorer.run()

    explorer.set_config(dataclasses.replace(explorer.config, iterations=10 ** 5))  # only Pause ends this run
    assert explorer.traversal.iteration == 30 and explorer.traversal.config.iterations == 10 ** 5
    explorer.run()
    deadline = time.monotonic() + 30
    while explorer.traversal.iteration < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert explorer.running
    with pytest.raises(RuntimeError, match="pause it first"):
        explorer.step()
    explorer.pause()
    assert not explorer.running
    reached = explorer.traversal.iteration
    time.sleep(0.2)
    assert 40 <= explorer.traversal.iteration == reached < 10 ** 5
    assert explorer.snapshot().iteration == reached and not explorer.snapshot().running


def test_an_error_in_the_background_is_kept_and_told(images):
    module = Breakable()
    explorer = Explorer(tiny(module=module), image_source=images, config=CONFIG)
    events = listen(explorer)
    module.broken = True
    explorer.run()
    assert explorer.wait(60)
    assert isinstance(explorer.error, RuntimeError) and str(explorer.error) == "the model broke"
    assert ("error", "Run stopped: RuntimeError: the model broke", "lst-explorer") in events
    assert events[-1][0] == "running" and not explorer.running
    assert explorer.traversal.iteration == 0
    module.broken = False
    explorer.reset()
    assert explorer.error is None
    explorer.run()
    assert explorer.wait(60) and explorer.traversal.iteration == 30 and explorer.error is None


def test_reset_starts_anew_from_the_same_point(explorer):
    start = explorer.traversal.images.clone()
    explorer.step(7)
    assert not torch.equal(explorer.traversal.images, start)
    events = listen(explorer)
    assert explorer.reset() is explorer
    assert explorer.traversal.iteration == 0
    torch.testing.assert_close(explorer.traversal.images, start)
    assert [event for event, _, _ in events] == ["restart", "triangle"]


def test_a_new_config_source_or_target_starts_anew_but_iterations_alone_do_not(explorer):
    events = listen(explorer)

    def restarted():
        told = [event for event, _, _ in events].count("restart")
        events.clear()
        return told == 1 and explorer.traversal.iteration == 0

    explorer.step(5)
    explorer.set_config(dataclasses.replace(explorer.config, delta=0.5))
    assert restarted() and explorer.traversal.config.delta == 0.5
    explorer.step(5)
    explorer.choose(source_name="y")
    assert restarted() and (explorer.source_name, explorer.target) == ("y", "x")
    torch.testing.assert_close(explorer.traversal.sources[0], explorer.catalog["y"])
    explorer.step(5)
    explorer.choose(target="z")
    assert restarted()
    torch.testing.assert_close(explorer.traversal.targets[0], explorer.catalog["z"])

    explorer.step(5)
    events.clear()
    explorer.choose("y", "z")  # the same choice, e.g. echoed back by a front end
    explorer.set_config(explorer.config)
    explorer.set_config(dataclasses.replace(explorer.config, iterations=99))
    assert explorer.traversal.iteration == 5 and explorer.traversal.config.iterations == 99
    assert explorer.config.iterations == 99 and events == []

    explorer.choose(target="y")
    assert ("warning", "Source and target are the same image: the traversal has nowhere to go.",
            "MainThread") in events


def test_an_unknown_image_name_is_a_clear_error(explorer, model, images):
    explorer.step(2)
    with pytest.raises(ValueError, match="no image 'nope'"):
        explorer.choose(source_name="nope")
    assert (explorer.source_name, explorer.traversal.iteration) == ("w", 2)
    with pytest.raises(ValueError, match="no image 'nope'"):
        Explorer(model, image_source=images, target="nope")


def test_export_writes_the_point_the_traversal_and_its_record(explorer, model, tmp_path):
    explorer.step(10)
    paths = explorer.export(tmp_path / "out")
    t = explorer.traversal
    stem = re.fullmatch(r"(tiny_w_to_x_and_z_it10_[0-9a-f]{10})\.png", paths["image"].name).group(1)
    assert {key: path.name for key, path in paths.items()} == {
        "image": f"{stem}.png", "image_b": f"{stem}_b.png", "traversal": f"{stem}.pt",
        "triangle": f"{stem}_triangle.csv", "record": f"{stem}.json"}
    assert all(path.parent == tmp_path / "out" for path in paths.values())
    for key, index in (("image", 0), ("image_b", 1)):  # both blind spots
        image = np.asarray(Image.open(paths[key])) / 255
        np.testing.assert_allclose(image, t.images[index].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)

    record = json.loads(paths["record"].read_text())
    assert record["model"]["name"] == "tiny"
    assert record["config"] == dataclasses.asdict(CONFIG)
    assert (record["source_name"], record["iteration"]) == ("w", 10)
    assert record["image_source"] == GIVEN_IMAGES
    assert record["source_class"] == "abcde"[int(t.labels[0])] and record["source_label"] is None
    assert record["initial_confidence"] == pytest.approx(float(t.initial_confidence[0]))
    assert sorted(record["targets"]) == ["A", "B"]
    for (role, name), index in zip((("A", "x"), ("B", "z")), (0, 1)):  # each target's numbers, once
        towards = record["targets"][role]
        assert (towards["target"], towards["target_label"]) == (name, None)
        assert towards["target_class"] == "abcde"[int(t.target_labels[index])]
        assert towards["accepted_steps"] == int(t.history.accepted_total[-1][index])
        assert towards["confidence"] == pytest.approx(float(t.confidence[index]))
        assert towards["target_confidence"] == pytest.approx(float(t.target_confidence[index]))
        distance = float((t.targets[index] - t.images[index]).norm())
        assert towards["distance_l2"] == pytest.approx(distance, rel=1e-5)
        assert towards["rmse_to_target"] == pytest.approx(distance / math.sqrt(3 * 16 * 16), rel=1e-5)
    # the triangle (source, A, B) at this iteration, as analysis.geometry computes it
    expected = triangle_confidence(model, t.sources[0], t.images[0], t.images[1], t.labels[0])
    stats = stats_from_confidence(expected)
    assert record["triangle"]["points"] == 66 and record["triangle"]["iteration"] == 10
    assert record["triangle"]["stats"] == pytest.approx({name: float(value) for name, value in stats.items()})
    torch.testing.assert_close(torch.tensor(record["triangle"]["shape"], dtype=torch.float64),
                               triangle_shape(t.sources[0], t.images[0], t.images[1]))
    with open(paths["triangle"]) as table:
        rows = list(csv.DictReader(table))
    torch.testing.assert_close(torch.tensor([float(row["confidence"]) for row in rows]), expected)
    torch.testing.assert_close(torch.tensor([[float(row[k]) for k in ("weight_source", "a", "b")] for row in rows],
                                            dtype=torch.float64),
                               triangle_grid(10))
    assert record["versions"]["blindspots_nb"] == __version__
    assert record["device"].startswith("cpu")
    assert record["files"] == {key: path.name for key, path in paths.items()}

    resumed = Traversal.load(paths["traversal"], model)
    assert resumed.iteration == 10
    torch.testing.assert_close(resumed.images, t.images)
    resumed.step(3)
    explorer.step(3)
    torch.testing.assert_close(resumed.images, explorer.traversal.images)



LONG = "a-photo-whose-name-goes-on-" * 6  # 162 characters: past any length a file name part keeps


def _two_exports(case, model, images, folder):
    """Export two points that differ only in what ``case`` names, at the same iteration."""
    if case == "long names":
        long_names = TensorImages(images.images, images.labels, [], [LONG + "1", LONG + "2", "y", "z"])
        explorer = Explorer(model, image_source=long_names, source_name=LONG + "1", target="y", config=CONFIG)
        changes = [lambda: None, lambda: explorer.choose(source_name=LONG + "2")]
    else:
        explorer = Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG)
        changes = {
            "uploads": [lambda: explorer.add_upload("cat (1).png", image_file("RGB", (16, 16), (255, 0, 0))),
                        lambda: explorer.add_upload("cat [1].png", image_file("RGB", (16, 16), (0, 0, 255)))],
            "step sizes": [lambda: explorer.set_config(step_size=0.02), lambda: explorer.set_config(step_size=0.5)],
            "weights": [lambda: None, lambda: explorer.set_model(tiny(module=make_tiny_cnn(seed=1)))],
        }[case]
    exported = []
    for change in changes:
        change()
        explorer.step(3)
        exported.append((explorer.export(folder), explorer.record(), explorer.traversal.images.clone()))
    return exported


@pytest.mark.parametrize("case", ["long names", "uploads", "step sizes", "weights"])
def test_exports_of_different_points_never_share_a_name(model, images, tmp_path, case):
    exported = _two_exports(case, model, images, tmp_path)
    names = [path.name for paths, _, _ in exported for path in paths.values()]
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(names) and len(set(names)) == 10
    for paths, record, point in exported:  # each export still holds its own point, none overwrote another
        assert all(re.fullmatch(r"tiny_[\w.-]{1,90}_to_[\w.-]{1,40}_and_[\w.-]{1,40}_it3_[0-9a-f]{10}"
                                r"(_b\.png|_triangle\.csv|\.png|\.pt|\.json)", path.name)
                   for path in paths.values())
        written = json.loads(paths["record"].read_text())
        assert {key: written[key] for key in ("source_name", "targets", "config", "model")} == \
            {key: record[key] for key in ("source_name", "targets", "config", "model")}
        saved = torch.load(paths["traversal"], weights_only=True)
        torch.testing.assert_close(saved["images"], point)


def test_the_same_point_exported_again_has_the_same_names(explorer, tmp_path):
    explorer.step(3)
    first = explorer.export(tmp_path)
    record, pt = json.loads(first["record"].read_text()), torch.load(first["traversal"], weights_only=True)
    assert explorer.export(tmp_path) == first  # the same content written over itself, whole
    again = json.loads(first["record"].read_text())
    assert {**again, "created": None} == {**record, "created": None}
    torch.testing.assert_close(torch.load(first["traversal"], weights_only=True)["images"], pt["images"])
    explorer.step(1)
    assert explorer.export(tmp_path)["record"] != first["record"]
    assert len(list(tmp_path.iterdir())) == 10


def test_exports_are_whole_while_others_write_the_same_files(model, images, tmp_path):
    """Two explorers at the same point export over each other while a reader opens every
    file it finds: it never sees a part of one."""
    explorers = [Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG).step(5) for _ in range(2)]
    done, problems, loaded = threading.Event(), [], []

    def export_repeatedly(explorer):
        for _ in range(10):  # 10 each: files written in place instead were caught in 10 runs out of 10
            explorer.export(tmp_path)

    def read():
        while not done.is_set():
            for path in tmp_path.iterdir():
                try:
                    if path.suffix == ".pt":
                        loaded.append(torch.load(path, weights_only=True)["iteration"])
                    elif path.suffix == ".json":
                        loaded.append(json.loads(path.read_text())["iteration"])
                except FileNotFoundError:
                    pass
                except Exception as error:
                    problems.append(f"{path.name}: {type(error).__name__}: {error}")

    writers = [threading.Thread(target=export_repeatedly, args=(explorer,)) for explorer in explorers]
    reader = threading.Thread(target=read)
    for thread in (reader, *writers):
        thread.start()
    for writer in writers:
        writer.join()
    done.set()
    reader.join()
    assert problems == [] and loaded and set(loaded) == {5}
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".csv", ".json", ".png", ".png", ".pt"]  # whole


def test_exported_files_have_the_umasks_mode(explorer, tmp_path):
    before = os.umask(0o027)
    try:
        paths = explorer.step(2).export(tmp_path)
    finally:
        os.umask(before)
    assert len(paths) == 5 and {path.stat().st_mode & 0o777 for path in paths.values()} == {0o640}


@pytest.mark.parametrize("folder", ["", "   "])
def test_an_empty_export_folder_is_refused(explorer, tmp_path, monkeypatch, folder):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="no export folder given"):
        explorer.export(folder)
    assert list(tmp_path.iterdir()) == []


def test_an_export_folder_that_is_a_file_is_refused(explorer, tmp_path):
    mine = tmp_path / "notes.txt"
    mine.write_text("mine")
    with pytest.raises(ValueError, match=f"{re.escape(str(mine))} is a file"):
        explorer.export(mine)
    assert mine.read_text() == "mine" and [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_uploads_become_the_target_and_follow_the_model(model, tmp_path):
    explorer = Explorer(model, image_source="fonts:test", config=CONFIG)
    events = listen(explorer)
    key = explorer.add_upload("red.png", image_file("RGBA", (40, 24), (255, 0, 0, 255)))
    assert key == "upload: red.png" and explorer.target == key
    assert [event for event, _, _ in events] == ["restart", "triangle"]
    red = explorer.catalog[key]
    assert red.shape == (3, 16, 16)
    torch.testing.assert_close(red[0], torch.ones(16, 16))
    assert red[1:].max() == 0
    torch.testing.assert_close(explorer.traversal.targets[0], red)

    explorer.step(3)
    explorer.add_upload("red.png", image_file("RGBA", (20, 20), (0, 0, 0, 0)))  # same name, transparent
    assert explorer.traversal.iteration == 0
    torch.testing.assert_close(explorer.traversal.targets[0], torch.ones(3, 16, 16))  # alpha drops onto white

    catalog = dict(explorer.catalog)
    with pytest.raises(ValueError, match=r"'notes\.txt': not a recognised image"):
        explorer.add_upload("notes.txt", b"not an image")
    assert explorer.catalog == catalog and explorer.target == key

    upsampling = torch.nn.Sequential(torch.nn.Upsample(size=(16, 16)), make_tiny_cnn())
    explorer.set_model(tiny("tiny8", size=8, module=upsampling))  # the upload is preprocessed anew for it
    assert explorer.image_source == "fonts:test" and explorer.target == key
    assert explorer.catalog[key].shape == (3, 8, 8)
    assert explorer.traversal.targets.shape == (2, 3, 8, 8)


def test_uploads_are_read_as_they_are(explorer, monkeypatch):
    ramp = np.linspace(0, 65535, 16 * 16).round().astype(np.uint16).reshape(16, 16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")  # 16-bit grayscale
    key = explorer.add_upload("ramp.png", buffer.getvalue())
    expected = torch.from_numpy(ramp / 65535).float().expand(3, -1, -1)
    torch.testing.assert_close(explorer.catalog[key], expected, atol=1 / 255, rtol=0)

    catalog = dict(explorer.catalog)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow refuses more than twice as many pixels
    with pytest.raises(ValueError, match=r"'big\.png': .*decompression bomb.*1200 pixels"):
        explorer.add_upload("big.png", image_file("RGB", (40, 30), (0, 0, 0)))
    assert explorer.catalog == catalog and explorer.target == key


def test_an_upload_too_large_for_the_memory_is_a_value_error(explorer, monkeypatch):
    catalog, target = dict(explorer.catalog), explorer.target

    def preprocess_for(model):
        def preprocess(picture):
            raise MemoryError()
        return preprocess

    monkeypatch.setattr("blindspots_nb.explorer.catalogue.preprocess_for", preprocess_for)
    with pytest.raises(ValueError, match=r"'huge\.png': .*more memory.*smaller image"):
        explorer.add_upload("huge.png", image_file("RGB", (16, 16), (0, 0, 0)))
    assert explorer.catalog == catalog and explorer.target == target


@pytest.mark.parametrize("change, message", [
    (dict(step_size=math.nan), r"LSTConfig.step_size must lie in \(0, 1\] .*got nan"),
    (dict(step_size=1e9), r"LSTConfig.step_size must lie in \(0, 1\] .*got 1000000000.0"),
    (dict(delta=2.0), r"LSTConfig.delta must lie in \(0, 1\]"),
    (dict(eps=-1.0), r"LSTConfig.eps must lie in \[0, 1\]"),
])
def test_a_bad_hyperparameter_changes_nothing(explorer, change, message):
    explorer.step(3)
    traversal, config = explorer.traversal, explorer.config
    with pytest.raises(ValueError, match=message):
        explorer.set_config(**change)
    with pytest.raises(ValueError, match=message):
        explorer.set_config(dataclasses.replace(config, iterations=99), **change)
    assert explorer.traversal is traversal and traversal.iteration == 3 and explorer.config == config
    with pytest.raises(TypeError, match="config must be an LSTConfig, got dict"):
        explorer.set_config(dict(step_size=0.02))


def test_a_model_or_source_that_fails_changes_nothing(explorer, model, tmp_path):
    explorer.step(3)
    state = (explorer.model, explorer.image_source, explorer.catalog, explorer.traversal)

    def unchanged():
        return all(now is before for now, before in zip(
            (explorer.model, explorer.image_source, explorer.catalog, explorer.traversal), state))

    with pytest.raises(ValueError, match="unknown model 'no_such_model'"):
        explorer.set_model("no_such_model")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no readable images"):
        explorer.set_image_source(f"folder:{empty}")
    with pytest.raises(ValueError, match="unknown image source"):
        explorer.set_image_source("nowhere")
    wrong_size = TensorImages(torch.rand(2, 3, 8, 8), torch.full((2,), -1), [], ["p", "q"])
    with pytest.raises(ValueError, match="the model expects"):
        explorer.set_image_source(wrong_size)
    assert unchanged() and explorer.traversal.iteration == 3
    assert list(explorer.image_sources) == ["photos", "fonts:test", "digits:test", GIVEN_IMAGES]

    folder = tmp_path / "mine"
    folder.mkdir()
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (20, 20), colour).save(folder / name)
    explorer.set_image_source(f"folder:{folder}")
    assert explorer.image_source == f"folder:{folder}" and sorted(explorer.catalog) == ["blue.png", "red.png"]
    assert explorer.traversal.iteration == 0 and explorer.source_name == "blue.png"  # w: gone
    explorer.set_image_source(GIVEN_IMAGES)  # the given images stay on offer
    assert list(explorer.catalog) == NAMES and explorer.image_source == GIVEN_IMAGES and explorer.source_name == "w"


def test_files_of_one_name_in_several_class_folders_are_all_in_the_catalogue(tmp_path):
    """red/, green/, blue/ each holding img0.png ... img5.png: 18 images under 18 names, each its own
    folder's image, as the catalogue, the traversal, its record and its export name them."""
    colours = ("red", "green", "blue")
    for c, colour in enumerate(colours):
        for i in range(6):
            (tmp_path / "images" / colour).mkdir(parents=True, exist_ok=True)
            pixel = tuple(40 * i + 20 if k == c else 0 for k in range(3))
            Image.new("RGB", (16, 16), pixel).save(tmp_path / "images" / colour / f"img{i}.png")
    model = wrap(make_tiny_cnn(num_classes=3), mean=(0, 0, 0), std=(1, 1, 1), class_names=list(colours),
                 input_size=(3, 16, 16), name="colours")
    explorer = Explorer(model, image_source=f"folder:{tmp_path / 'images'}", source_name="red/img3.png",
                        target="green/img3.png", target_b="blue/img3.png", config=CONFIG)
    assert sorted(explorer.catalog) == sorted(f"{colour}/img{i}.png" for colour in colours for i in range(6))
    for name, image in explorer.catalog.items():
        colour, i = name.split("/")[0], int(name[-5])
        expected = torch.zeros(3, 16, 16)
        expected[colours.index(colour)] = (40 * i + 20) / 255
        torch.testing.assert_close(image, expected)
    torch.testing.assert_close(explorer.traversal.sources[0], explorer.catalog["red/img3.png"])
    torch.testing.assert_close(explorer.traversal.targets[1], explorer.catalog["blue/img3.png"])
    explorer.step(2)
    record = json.loads(explorer.export(tmp_path / "out")["record"].read_text())
    assert (record["source_name"], record["targets"]["A"]["target"], record["targets"]["B"]["target"]) == (
        "red/img3.png", "green/img3.png", "blue/img3.png")


def test_a_model_switch_takes_the_new_models_default_source(model):
    explorer = Explorer(model, image_source="photos", config=CONFIG, live=False)  # no triangle: not what this tests
    assert "coffee" in explorer.catalog
    explorer.set_model("fonts_cnn")  # shipped with the package: glyphs, one channel, 32 x 32
    assert explorer.model_name == "fonts_cnn" and explorer.image_source == "fonts:test"
    assert explorer.traversal.sources.shape == (2, 1, 32, 32)
    snap = explorer.snapshot()
    assert snap.source_class != snap.a.target_class
    explorer.step(3)
    assert explorer.traversal.iteration == 3
    explorer.set_model("tiny")  # the given model, kept under its name
    assert explorer.model is model and explorer.image_source == "photos"


class BrightestChannel(torch.nn.Module):
    """Class = the image's brightest colour channel."""

    def forward(self, x):
        return x.mean((2, 3)) * 50


def test_the_default_target_is_the_first_image_of_another_class():
    model = wrap(BrightestChannel(), mean=(0, 0, 0), std=(1, 1, 1), class_names=["red", "green", "blue"],
                 input_size=(3, 8, 8), name="channels")
    images = torch.zeros(4, 3, 8, 8)
    images[0, 0] = images[1, 0] = images[2, 1] = images[3, 2] = 0.8  # red, red, green, blue
    given = TensorImages(images, torch.full((4,), -1), [], ["r1", "r2", "g", "b"])
    explorer = Explorer(model, image_source=given, config=CONFIG)
    assert (explorer.source_name, explorer.target) == ("r1", "g")
    assert (explorer.snapshot().source_class, explorer.snapshot().a.target_class) == ("red", "green")
    assert Explorer(model, image_source=given, source_name="g", config=CONFIG).target == "r1"


def test_labelled_images_whose_first_are_one_class_give_a_right_source_and_targets_of_other_classes():
    """Labels red, red, red, green, blue, in that order; the first red looks blue to the model.
    The default source is the first red the model calls red, the targets green and blue, and
    each carries its label; a misclassified source or a target of its class is warned of."""
    model = wrap(BrightestChannel(), mean=(0, 0, 0), std=(1, 1, 1), class_names=["red", "green", "blue"],
                 input_size=(3, 8, 8), name="channels")
    images = torch.zeros(5, 3, 8, 8)
    images[0, 2] = images[1, 0] = images[2, 0] = images[3, 1] = images[4, 2] = 0.8
    given = TensorImages(images, torch.tensor([0, 0, 0, 1, 2]), ["red", "green", "blue"], ["r0", "r1", "r2", "g", "b"])
    explorer = Explorer(model, image_source=given, config=CONFIG)
    assert (explorer.source_name, explorer.target, explorer.target_b) == ("r1", "g", "b")
    snap = explorer.snapshot()
    assert (snap.source_class, snap.source_label, snap.a.target_label, snap.b.target_label) == (
        "red", "red", "green", "blue")
    events = listen(explorer)
    explorer.choose(source_name="r0", target="r2")
    assert [message for event, message, _ in events if event == "warning"] == [
        "The source r0 is labelled 'red', but the model classifies it as 'blue'; "
        "the target r2 is labelled 'red', the source's class: LST towards it finds no blind spot."]


@pytest.mark.parametrize("photos_model", ["tiny", pytest.param("efficientnet_lite0", marks=pytest.mark.slow)])
def test_each_model_starts_on_its_image_sources_default_images(photos_model):
    """Photos for a model of neither FONTS nor digits (coffee towards chelsea, as the notebooks
    and the demo take them): a tiny wrapped model in the quick loop, the registry's ImageNet
    model in the full suite; glyphs A towards B for a FONTS model."""
    photos = Explorer(tiny() if photos_model == "tiny" else photos_model, config=CONFIG, live=False)  # no triangles:
    assert (photos.source_name, photos.target) == ("coffee", "chelsea")  # not what this tests
    glyphs = Explorer("fonts_cnn", config=CONFIG, live=False)
    assert (glyphs.source_name[0], glyphs.target[0]) == ("A", "B")


def _source_class_saliency(model, traversal) -> torch.Tensor:
    """The saliency map by hand: |d logit_label / d pixel|, largest over the channels, over its maximum."""
    images = traversal.images.detach().clone().requires_grad_(True)
    logit = model(images)[0, int(traversal.labels[0])]
    (gradient,) = torch.autograd.grad(logit, images)
    saliency = gradient.abs().amax(1)[0]
    return saliency / saliency.max()


def test_saliency_is_the_source_class_map_at_the_current_point(explorer, model):
    assert explorer.snapshot().saliency is None  # only computed when asked for
    start = explorer.saliency()
    assert start.shape == (16, 16) and start.min() >= 0 and start.max() == 1
    torch.testing.assert_close(start, _source_class_saliency(model, explorer.traversal))
    assert explorer.saliency() is start  # kept while the point stays

    explorer.step(5)
    moved = explorer.snapshot(saliency=True)
    torch.testing.assert_close(moved.saliency, _source_class_saliency(model, explorer.traversal))
    assert not torch.allclose(moved.saliency, start)
    explorer.reset()  # a new traversal from the same point: the first map again
    torch.testing.assert_close(explorer.saliency(), start)


def test_execution_options_reach_the_explorers_traversal_record_and_caption(model, images):
    from blindspots_nb.execution import Execution

    plain = Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG)
    fast = Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG, execution=Execution("bf16"))
    assert plain.traversal.execution == Execution() and fast.traversal.execution == Execution("bf16")
    fast.step(3)
    assert fast.traversal._gradient.dtype == torch.float32
    assert fast.record()["execution"]["precision"] == "bf16" and "bf16" in fast.caption()
    assert "execution" not in plain.caption()
    fast.reset()
    assert fast.traversal.execution == Execution("bf16")  # a new traversal keeps the options


# -- two targets and the live triangle ------------------------------------------------
def _single(model, source, target, config, iterations):
    """One traversal of one pair, on its own."""
    labels = model(source[None]).argmax(1)
    return Traversal(model, source[None], labels, target[None], config).step(iterations)


@pytest.mark.parametrize("noise", [0.0, 4 / 255])
def test_two_targets_step_in_one_batch_as_two_separate_traversals(model, images, noise):
    config = LSTConfig(iterations=30, record_every=1, init_noise=noise)
    explorer = Explorer(model, image_source=images, source_name="w", target="x", target_b="y", config=config)
    explorer.step(7)
    catalog, t = explorer.catalog, explorer.traversal
    alone_a = _single(model, catalog["w"], catalog["x"], config, 7)
    torch.testing.assert_close(t.images[0], alone_a.images[0], atol=1e-5, rtol=0)
    if noise == 0:  # towards B: the batch's noise for its second row is not a lone run's first draw
        alone_b = _single(model, catalog["w"], catalog["y"], config, 7)
        torch.testing.assert_close(t.images[1], alone_b.images[0], atol=1e-5, rtol=0)
    snap = explorer.snapshot()
    assert (snap.a.target, snap.b.target) == ("x", "y")
    assert snap.b.confidence == pytest.approx(float(t.confidence[1]))
    torch.testing.assert_close(snap.b.current_image, t.images[1])
    torch.testing.assert_close(snap.b.target_image, catalog["y"])


def test_target_b_defaults_to_a_third_class_and_can_be_chosen(model, images):
    predicted = dict(zip(NAMES, model(images.images).argmax(1).tolist()))
    explorer = Explorer(model, image_source=images, source_name="w", target="x", config=CONFIG)
    third = [name for name in NAMES if predicted[name] not in (predicted["w"], predicted["x"])]
    assert explorer.target_b == (third[0] if third else next(n for n in NAMES if n not in ("w", "x")))
    explorer.choose(target_b="z")
    assert explorer.target_b == "z" and explorer.traversal.iteration == 0
    torch.testing.assert_close(explorer.traversal.targets[1], explorer.catalog["z"])
    with pytest.raises(ValueError, match="no image 'nope'"):
        explorer.choose(target_b="nope")


def test_the_triangle_is_analysis_geometry_on_the_current_points(explorer, model):
    explorer.step(6)
    t = explorer.traversal
    source, a, b, label = t.sources[0], t.images[0], t.images[1], int(t.labels[0])
    triangle = explorer.triangle()
    expected = triangle_confidence(model, source, a, b, label)
    assert triangle.points == 66 and triangle.iteration == 6
    torch.testing.assert_close(triangle.confidence, expected)
    assert triangle.stats == pytest.approx({name: float(v) for name, v in stats_from_confidence(expected).items()})
    shape = triangle_shape(source, a, b)
    torch.testing.assert_close(triangle.shape, shape)
    torch.testing.assert_close(triangle.coordinates, triangle_grid(10) @ shape)
    for corner, end in (("A", a), ("B", b)):  # the star: the straight segments from the source
        steps, along = triangle.segment(corner)
        torch.testing.assert_close(steps, torch.linspace(0, 1, 11, dtype=torch.float64))
        torch.testing.assert_close(along, segment_confidence(model, source, end, label, steps=11), atol=1e-6, rtol=0)
    assert explorer.triangle(divisions=4).points == 15
    explorer.divisions = 3
    assert explorer.triangle().points == 10
    for bad in (0, 2.5, True, None, math.nan, "10"):
        with pytest.raises(ValueError, match="whole number of divisions >= 1"):
            explorer.divisions = bad


def test_the_triangles_grid_is_bounded_saying_the_limit_and_why(explorer, monkeypatch):
    """10000 divisions would be 50 million images through the model: refused before any is computed."""
    import blindspots_nb.explorer.triangle as triangle_module

    explorer.step(2)
    computed = []
    monkeypatch.setattr(triangle_module, "triangle_confidence", lambda *args, **kw: computed.append(args))
    message = (r"at most 100 divisions per edge, got 10000: each of its \(d \+ 1\)\(d \+ 2\) / 2 points is an "
               r"image through the model, 5151 at 100 divisions and 50,015,001 at 10000")
    with pytest.raises(ValueError, match=message):
        explorer.triangle(10000)
    with pytest.raises(ValueError, match="at most 100 divisions"):
        explorer.divisions = 101
    with pytest.raises(ValueError, match="whole number of divisions >= 1"):
        explorer.triangle(0)
    assert computed == [] and explorer.divisions == 10


def test_image_at_is_the_convex_combination_and_the_models_confidence_there(explorer, model):
    explorer.step(6)
    t = explorer.traversal
    source, a, b, label = t.sources[0], t.images[0], t.images[1], int(t.labels[0])
    point = explorer.image_at(0.25, 0.5)
    image = (0.25 * source + 0.25 * a + 0.5 * b).clamp(0, 1)
    torch.testing.assert_close(point.image, image)
    probs = model(image[None]).softmax(1)[0]
    assert point.confidence == pytest.approx(float(probs[label]), abs=1e-6)
    assert (point.label, point.class_name) == (int(probs.argmax()), "abcde"[int(probs.argmax())])
    assert point.class_confidence == pytest.approx(float(probs.max()), abs=1e-6)
    for weights, corner in (((0, 0), source), ((1, 0), a), ((0, 1), b)):  # the corners are the corner images
        torch.testing.assert_close(explorer.image_at(*weights).image, corner)
    triangle = explorer.triangle()  # at a grid point, the grid's confidence
    row = 23
    grid_point = explorer.image_at(*triangle.weights[row, 1:].tolist())
    assert grid_point.confidence == pytest.approx(float(triangle.confidence[row]), abs=1e-5)
    for bad in ((-0.1, 0.2), (0.7, 0.6), (math.nan, 0.1)):
        with pytest.raises(ValueError, match=r"a >= 0, b >= 0 and a \+ b <= 1"):
            explorer.image_at(*bad)
    for bad in ((None, 0), (0.1, "a half"), ([0.1], 0.2)):
        with pytest.raises(ValueError, match=r"two numbers a and b .*, got a = "):
            explorer.image_at(*bad)


class FakeClock:
    """Seconds that pass only when the test says so."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Costly(torch.nn.Module):
    """A model whose every image costs ``seconds`` of the fake clock."""

    def __init__(self, clock, seconds):
        super().__init__()
        self.net, self.clock, self.seconds = make_tiny_cnn(), clock, seconds

    def forward(self, x):
        self.clock.now += self.seconds * len(x)
        return self.net(x)


def test_the_throttle_keeps_redraws_within_their_share_of_a_run(images):
    clock = FakeClock()
    throttle = RedrawThrottle(every=1.0, share=0.4, clock=clock)  # a share of 0.4: a few redraws in 400 steps
    model = tiny(module=Costly(clock, seconds=0.01))  # a step 0.02 s, a triangle of 66 points 0.66 s
    explorer = Explorer(model, image_source=images, source_name="w", target="x", iterations_per_click=100,
                        config=LSTConfig(iterations=400, record_every=0), throttle=throttle)
    redraws = []

    def draw(event, message):  # the view's drawing: 0.3 s more
        if event == "triangle":
            clock.now += 0.3
            redraws.append(clock.now)

    explorer.on_change(draw)
    spent, start, first_wait = throttle.spent, clock.now, throttle.wait()  # after the first triangle's 0.66 s
    explorer.run()
    assert explorer.wait(120) and explorer.error is None and explorer.traversal.iteration == 400
    elapsed, spent = clock.now - start, throttle.spent - spent
    assert throttle.cost == pytest.approx(0.96)
    assert len(redraws) >= 2  # it does redraw during the run
    assert spent <= 0.4 * elapsed
    gaps = torch.diff(torch.tensor([start, *redraws], dtype=torch.float64))
    assert first_wait == pytest.approx(0.66 / 0.4) and gaps[0] >= first_wait
    assert bool((gaps[1:] >= 0.96 / 0.4).all())  # each after cost / share seconds of stepping


def test_the_throttle_waits_every_seconds_and_cost_over_share_seconds():
    clock = FakeClock()
    throttle = RedrawThrottle(every=3.0, share=0.05, clock=clock)
    throttle.start()
    clock.now = 2.9
    assert not throttle.due()
    clock.now = 3.0
    assert throttle.due()
    throttle.timed(lambda: setattr(clock, "now", clock.now + 1.0))  # a redraw of 1 s
    assert (throttle.cost, throttle.wait(), throttle.redraws) == (1.0, 20.0, 1)
    clock.now += 19.9
    assert not throttle.due()
    clock.now += 0.1
    assert throttle.due()
    with pytest.raises(ValueError, match="0 < share <= 1"):
        RedrawThrottle(share=0)


def test_with_live_off_a_run_and_steps_compute_no_triangle(explorer, monkeypatch):
    explorer.live = False
    before = explorer.live_triangle
    computed = []
    monkeypatch.setattr(explorer, "triangle", lambda *args, **kwargs: computed.append(args))
    explorer.throttle.every, explorer.throttle.cost = 0.0, 0.0  # were it live, every step would redraw
    events = listen(explorer)
    explorer.step(3)
    explorer.run()
    assert explorer.wait(60)
    assert computed == [] and "triangle" not in [event for event, _, _ in events]
    assert explorer.live_triangle is before and explorer.live_triangle.iteration == 0


def test_without_noise_the_start_has_no_triangle_until_a_step(model, images, tmp_path):
    explorer = Explorer(model, image_source=images, source_name="w", target="x",
                        config=LSTConfig(iterations=30, record_every=1, init_noise=0.0))
    assert explorer.live_triangle is None and explorer.redraw_triangle() is None
    with pytest.raises(ValueError, match="a blind spot coincides with the source"):
        explorer.triangle()
    paths = explorer.export(tmp_path)
    assert "triangle" not in paths and json.loads(paths["record"].read_text())["triangle"] is None
    explorer.step(2)
    assert explorer.live_triangle.iteration == 2
