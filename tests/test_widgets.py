"""The explorer driven from Python, no browser: buttons, state, figure data, files."""

import datetime
import io
import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb import __version__
from blindspots_nb.lst import Traversal
from blindspots_nb.models import wrap
from blindspots_nb.widgets import LSTExplorer

from conftest import make_tiny_cnn

NAMES = ["w", "x", "y", "z"]


@pytest.fixture
def model():
    return wrap(make_tiny_cnn(), mean=(0, 0, 0), std=(1, 1, 1), class_names=list("abcde"), input_size=(3, 16, 16),
                name="tiny")


@pytest.fixture
def explorer(model, tmp_path):
    torch.manual_seed(0)
    images = torch.rand(4, 3, 16, 16)
    return LSTExplorer(model, images=(images, NAMES), source="w", target="x", models=[], iterations_per_click=5,
                       iterations=30, output_dir=tmp_path / "export")


def _png(image_widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_widget.value)))


def _upload(name, content):
    return {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc)}


def test_initial_state(explorer):
    t = explorer.traversal
    assert t.iteration == 0
    assert (explorer.source_menu.value, explorer.target_menu.value) == ("w", "x")
    assert len(explorer.figure.data[0].x) == 1
    assert "iteration 0" in explorer.status.value
    assert "tiny" in explorer.caption_line.value and "blindspots_nb" in explorer.caption_line.value
    assert "tiny" in explorer.figure.layout.title.text
    assert explorer.pause_button.disabled and not explorer.step_button.disabled


def test_step_button_advances_the_traversal_and_the_figure(explorer):
    before = _png(explorer.panels["current"])
    explorer.step_button.click()
    t = explorer.traversal
    assert t.iteration == 5
    curve = explorer.figure.data[0]
    assert list(curve.x) == [0, 1, 2, 3, 4, 5]
    np.testing.assert_allclose(curve.y[-1], float(t.confidence[0]), rtol=1e-6)
    np.testing.assert_allclose(explorer.figure.data[3].y[-1],
                               float((t.targets - t.images).norm()) / (3 * 16 * 16) ** 0.5, rtol=1e-5)
    assert "iteration 5" in explorer.status.value
    assert not np.array_equal(before, _png(explorer.panels["current"]))
    explorer.per_click.value = 3
    explorer.step_button.click()
    assert explorer.traversal.iteration == 8 and len(explorer.figure.data[0].x) == 9


def test_reset_restores_the_start(explorer):
    start = explorer.traversal.images.clone()
    start_png = _png(explorer.panels["current"])
    explorer.step(7)
    explorer.reset_button.click()
    assert explorer.traversal.iteration == 0
    torch.testing.assert_close(explorer.traversal.images, start)
    assert list(explorer.figure.data[0].x) == [0]
    assert np.array_equal(_png(explorer.panels["current"]), start_png)


def test_run_goes_to_the_last_iteration_and_pause_stops_it(explorer):
    explorer.run_button.click()
    assert explorer.wait(60)
    assert explorer.traversal.iteration == 30
    assert len(explorer.figure.data[0].x) == 31
    assert not explorer.step_button.disabled and explorer.pause_button.disabled
    assert "iteration 30" in explorer.status.value and "running" not in explorer.status.value

    explorer.iterations.value = 10 ** 5  # long run: only Pause ends it
    assert explorer.traversal.config.iterations == 10 ** 5 and explorer.traversal.iteration == 30
    explorer.run_button.click()
    time.sleep(0.3)
    assert explorer.running and explorer.step_button.disabled and not explorer.pause_button.disabled
    assert "running" in explorer.status.value
    explorer.step_button.click()  # ignored while running, with a message
    assert "Pause" in explorer.message.value
    explorer.pause_button.click()
    assert not explorer.running
    reached = explorer.traversal.iteration
    assert 30 < reached < 10 ** 5
    assert explorer.figure.data[0].x[-1] == reached
    assert f"iteration {reached}" in explorer.status.value and "running" not in explorer.status.value
    assert not explorer.step_button.disabled


def test_changing_a_hyperparameter_or_image_starts_anew(explorer):
    explorer.step(5)
    explorer.delta.value = 0.5
    t = explorer.traversal
    assert t.iteration == 0 and t.config.delta == 0.5
    explorer.step(5)
    explorer.source_menu.value = "y"
    torch.testing.assert_close(explorer.traversal.sources[0], explorer.catalog["y"])
    assert explorer.traversal.iteration == 0
    explorer.target_menu.value = "y"
    assert "same image" in explorer.message.value


def test_export_writes_the_blind_spot_its_state_and_record(explorer, model):
    explorer.step(10)
    paths = explorer.export()
    t = explorer.traversal
    assert {p.name for p in paths.values()} == {"tiny_w_to_x_it10.png", "tiny_w_to_x_it10.pt",
                                                 "tiny_w_to_x_it10.json"}
    image = np.asarray(Image.open(paths["image"])) / 255
    np.testing.assert_allclose(image, t.images[0].permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    record = json.loads(paths["record"].read_text())
    assert record["model"]["name"] == "tiny"
    assert record["config"]["step_size"] == pytest.approx(explorer.step_size.value)
    assert record["config"]["delta"] == pytest.approx(explorer.delta.value)
    assert record["config"]["eps"] == pytest.approx(explorer.eps.value)
    assert (record["source"], record["target"], record["iteration"]) == ("w", "x", 10)
    assert record["source_class_confidence"] == pytest.approx(float(t.confidence[0]))
    assert record["initial_confidence"] == pytest.approx(float(t.initial_confidence[0]))
    assert record["target_class_confidence"] == pytest.approx(float(t.target_confidence[0]))
    assert record["distance_l2"] == pytest.approx(float((t.targets - t.images).norm()), rel=1e-5)
    assert record["versions"]["blindspots_nb"] == __version__
    assert record["device"].startswith("cpu")
    assert record["files"]["image"] == paths["image"].name
    resumed = Traversal.load(paths["traversal"], model)
    assert resumed.iteration == 10
    torch.testing.assert_close(resumed.images, t.images)
    assert paths["image"].name in explorer.message.value


def test_upload_adds_an_image_and_bad_files_give_a_message(explorer):
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 24), (255, 0, 0, 255)).save(buffer, "PNG")
    explorer.upload.value = (_upload("red.png", buffer.getvalue()),)
    assert explorer.target_menu.value == "upload: red.png"
    red = explorer.catalog["upload: red.png"]
    assert red.shape == (3, 16, 16)
    torch.testing.assert_close(red[0], torch.ones(16, 16))
    assert red[1:].max() == 0
    torch.testing.assert_close(explorer.traversal.targets[0], red)
    assert "upload: red.png" in explorer.source_menu.options
    assert explorer.upload.value == ()

    explorer.upload.value = (_upload("notes.txt", b"not an image"),)
    assert "Could not read notes.txt" in explorer.message.value
    assert "upload: notes.txt" not in explorer.catalog
    assert explorer.target_menu.value == "upload: red.png"


def test_a_model_that_cannot_be_loaded_keeps_the_current_one(model, tmp_path):
    explorer = LSTExplorer(model, images=(torch.rand(2, 3, 16, 16), ["p", "q"]), models=["no_such_model"],
                           output_dir=tmp_path)
    explorer.model_menu.value = "no_such_model"
    assert "Could not load no_such_model" in explorer.message.value
    assert explorer.model is model and explorer.model_menu.value == "tiny"
    explorer.step(2)
    assert explorer.traversal.iteration == 2


def test_unknown_image_name_is_a_clear_error(model):
    with pytest.raises(ValueError, match="no image 'nope'"):
        LSTExplorer(model, images=(torch.rand(2, 3, 16, 16), ["p", "q"]), models=[], source="nope")


class BrightestChannel(torch.nn.Module):
    """Class = the image's brightest colour channel."""

    def forward(self, x):
        return x.mean((2, 3)) * 50


def test_default_target_is_of_another_class(tmp_path):
    model = wrap(BrightestChannel(), mean=(0, 0, 0), std=(1, 1, 1), class_names=["red", "green", "blue"],
                 input_size=(3, 8, 8), name="channels")
    images = torch.zeros(3, 3, 8, 8)
    images[0, 0] = images[1, 0] = images[2, 1] = 0.8  # red, red, green
    explorer = LSTExplorer(model, images=(images, ["r1", "r2", "g"]), models=[], output_dir=tmp_path)
    assert (explorer.source_menu.value, explorer.target_menu.value) == ("r1", "g")
    assert "green" in explorer.panel_labels["target"].value


def test_switching_collections_and_models(model, tmp_path):
    from blindspots_nb.gallery import GLYPHS, PHOTOS

    folder = tmp_path / "mine"
    folder.mkdir()
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (20, 20), colour).save(folder / name)
    explorer = LSTExplorer(model, images=folder, models=["fonts_cnn"], output_dir=tmp_path / "out")
    assert explorer.collection_menu.value == f"folder: {folder}"
    assert sorted(explorer.catalog) == ["blue.png", "red.png"]

    explorer.collection_menu.value = PHOTOS
    assert "coffee" in explorer.catalog and explorer.traversal.sources.shape == (1, 3, 16, 16)
    for file in folder.iterdir():
        file.unlink()
    explorer.collection_menu.value = f"folder: {folder}"  # now empty: a message, the photos stay
    assert "Could not load" in explorer.message.value
    assert explorer.collection_menu.value == PHOTOS and "coffee" in explorer.catalog

    explorer.model_menu.value = "fonts_cnn"  # a shipped FONTS model: glyphs, one channel, 32 x 32
    assert explorer.model.info["name"] == "fonts_cnn" and explorer.collection_menu.value == GLYPHS
    assert explorer.traversal.sources.shape == (1, 1, 32, 32)
    source_class, target_class = explorer._class_names()
    assert source_class != target_class
    explorer.step(3)
    assert explorer.traversal.iteration == 3
