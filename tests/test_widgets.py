"""The explorer's view driven from Python, no browser: clicks, menus, figure data, text."""

import dataclasses
import datetime
import io
import re
import time
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from PIL import Image

from blindspots_nb.data import TensorImages
from blindspots_nb.explorer.state import GIVEN_IMAGES
from blindspots_nb.analysis.metrics import rmse
from blindspots_nb.models import wrap
from blindspots_nb.plots import blindspot_grid_figure, image_to_png, saliency_overlay
from blindspots_nb.explorer.view import PANEL, LSTExplorer

from helpers import make_tiny_cnn

NAMES = ["w", "x", "y", "z"]


@pytest.fixture
def model():
    return wrap(make_tiny_cnn(), mean=(0, 0, 0), std=(1, 1, 1), class_names=list("abcde"), input_size=(3, 16, 16),
                name="tiny")


@pytest.fixture
def images():
    torch.manual_seed(0)
    return TensorImages(torch.rand(4, 3, 16, 16), torch.full((4,), -1), [], NAMES)


@pytest.fixture
def explorer(model, images, tmp_path):
    return LSTExplorer(model, image_source=images, source="w", target="x", models=[], iterations_per_click=5,
                       iterations=30, out_dir=tmp_path / "export")


def _png(image_widget) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(image_widget.value)))


def _upload(name, content):
    return {"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
            "last_modified": datetime.datetime.now(datetime.timezone.utc)}


def test_initial_state(explorer):
    assert explorer.traversal.iteration == 0
    assert (explorer.source_menu.value, explorer.target_menu.value) == ("w", "x")
    assert list(explorer.source_menu.options) == NAMES
    assert explorer.image_source_menu.value == GIVEN_IMAGES
    assert list(explorer.image_source_menu.options) == ["photos", "fonts:test", GIVEN_IMAGES]
    assert explorer.model_menu.value == "tiny"
    assert (explorer.delta.value, explorer.iterations.value, explorer.per_click.value) == (0.2, 30, 5)
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
    np.testing.assert_allclose(explorer.figure.data[3].y[-1], float(rmse(t.images, t.targets)[0]), rtol=1e-5)
    assert "iteration 5" in explorer.status.value
    assert f"RMSE to target {float(rmse(t.images, t.targets)[0]):.4f}" in explorer.status.value
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
    explorer.run_button.click()
    assert "Cannot run: already at iteration 30" in explorer.message.value

    explorer.iterations.value = 10 ** 5  # long run: only Pause ends it
    assert explorer.traversal.config.iterations == 10 ** 5 and explorer.traversal.iteration == 30
    explorer.run_button.click()
    deadline = time.monotonic() + 30
    while explorer.traversal.iteration < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert explorer.running and explorer.step_button.disabled and not explorer.pause_button.disabled
    assert "running" in explorer.status.value
    explorer.step()  # refused while running, with a message
    assert "Cannot step: a run is going on; pause it first" in explorer.message.value
    explorer.pause_button.click()
    assert not explorer.running
    reached = explorer.traversal.iteration
    assert 40 <= reached < 10 ** 5
    assert explorer.figure.data[0].x[-1] == reached
    assert f"iteration {reached}" in explorer.status.value and "running" not in explorer.status.value
    assert not explorer.step_button.disabled


def test_an_error_in_the_run_shows_as_a_message(explorer):
    explorer.traversal.model = None  # the next step fails
    explorer.run()
    assert explorer.wait(60)
    assert "Run stopped: TypeError" in explorer.message.value
    assert not explorer.running and not explorer.run_button.disabled


def test_changing_a_hyperparameter_or_image_starts_anew(explorer):
    explorer.step(5)
    explorer.delta.value = 0.5
    t = explorer.traversal
    assert t.iteration == 0 and t.config.delta == 0.5
    assert "delta=0.5" in explorer.caption_line.value and "delta=0.5" in explorer.figure.layout.title.text
    explorer.step(5)
    explorer.source_menu.value = "y"
    torch.testing.assert_close(explorer.traversal.sources[0], explorer.catalog["y"])
    assert explorer.traversal.iteration == 0
    explorer.target_menu.value = "y"
    assert "same image" in explorer.message.value


@pytest.mark.parametrize("field, typed, message", [
    ("step_size", float("nan"), r"LSTConfig.step_size must lie in (0, 1] (a fraction of the step towards the target; "
                                r"above 1 it overshoots), got nan"),
    ("step_size", -1.0, "LSTConfig.step_size must lie in (0, 1]"),
    ("step_size", 1e9, "LSTConfig.step_size must lie in (0, 1]"),
    ("delta", 2.0, "LSTConfig.delta must lie in (0, 1]"),
    ("eps", -0.5, "LSTConfig.eps must lie in [0, 1]"),
    ("iterations", -3, "LSTConfig.iterations must be an integer &gt;= 0"),
])
def test_a_bad_hyperparameter_gives_a_message_and_changes_nothing(explorer, field, typed, message):
    explorer.step(3)
    traversal, config = explorer.traversal, explorer.state.config
    getattr(explorer, field).value = typed
    assert f"Cannot use these settings: {message}" in explorer.message.value
    assert explorer.traversal is traversal and traversal.iteration == 3 and explorer.state.config == config
    assert getattr(explorer, field).value == getattr(config, field)  # the field shows what is used again
    explorer.step_size.value = 0.02  # a good value still works
    assert explorer.traversal.config.step_size == 0.02 and explorer.traversal.iteration == 0


def test_changes_made_from_code_show_in_the_widgets(explorer):
    explorer.state.set_config(dataclasses.replace(explorer.state.config, eps=0.01))
    explorer.state.choose(source="z")
    assert explorer.eps.value == 0.01 and explorer.source_menu.value == "z"
    assert "<b>source</b>: z" in explorer.panel_labels["source"].value
    assert explorer.traversal.iteration == 0


def test_export_button_writes_the_files_and_says_where(explorer, tmp_path):
    explorer.step(10)
    explorer.export_button.click()
    written = sorted(path.name for path in (tmp_path / "export").iterdir())
    stem = re.fullmatch(r"(tiny_w_to_x_and_z_it10_[0-9a-f]{10})\.json", written[0]).group(1)
    assert written == [f"{stem}.json", f"{stem}.png", f"{stem}.pt", f"{stem}_b.png", f"{stem}_triangle.csv"]
    assert f"{stem}.png" in explorer.message.value
    paths = explorer.export(tmp_path / "elsewhere")
    assert paths["record"].parent == tmp_path / "elsewhere" and paths["record"].is_file()


@pytest.mark.parametrize("folder", ["", "   "])
def test_export_with_an_empty_field_says_so_and_writes_nothing(explorer, tmp_path, monkeypatch, folder):
    monkeypatch.chdir(tmp_path)
    explorer.out_dir.value = folder
    explorer.export_button.click()
    assert "Export failed: no export folder given (an empty name would mean the working folder): name a folder" \
        in explorer.message.value
    assert list(tmp_path.iterdir()) == []


def test_upload_adds_an_image_and_bad_files_give_a_message(explorer):
    buffer = io.BytesIO()
    Image.new("RGBA", (40, 24), (255, 0, 0, 255)).save(buffer, "PNG")
    explorer.upload.value = (_upload("red.png", buffer.getvalue()),)
    assert explorer.target_menu.value == "upload: red.png"
    red = explorer.catalog["upload: red.png"]
    torch.testing.assert_close(explorer.traversal.targets[0], red)
    assert "upload: red.png" in explorer.source_menu.options
    assert "Added upload: red.png" in explorer.message.value
    assert explorer.upload.value == ()

    explorer.upload.value = (_upload("notes.txt", b"not an image"),)
    assert "Upload failed: cannot use the upload &#x27;notes.txt&#x27;: not a recognised image format" \
        in explorer.message.value
    assert "upload: notes.txt" not in explorer.catalog
    assert explorer.target_menu.value == "upload: red.png"


def test_a_model_that_cannot_be_loaded_keeps_the_current_one(model, images, tmp_path):
    explorer = LSTExplorer(model, image_source=images, models=["no_such_model"], out_dir=tmp_path)
    assert list(explorer.model_menu.options) == ["tiny", "no_such_model"]
    explorer.model_menu.value = "no_such_model"
    assert "Could not load no_such_model: unknown model" in explorer.message.value
    assert explorer.model is model and explorer.model_menu.value == "tiny"
    explorer.step(2)
    assert explorer.traversal.iteration == 2


def test_unknown_image_name_is_a_clear_error(model, images):
    with pytest.raises(ValueError, match="no image 'nope'"):
        LSTExplorer(model, image_source=images, models=[], source="nope")


@pytest.mark.slow  # loads a shipped model and renders its glyphs: several seconds
def test_switching_image_sources_and_models(model, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (20, 20), colour).save(folder / name)
    explorer = LSTExplorer(model, image_source=f"folder:{folder}", models=["fonts_cnn"], out_dir=tmp_path / "out")
    assert explorer.image_source_menu.value == f"folder:{folder}"
    assert list(explorer.image_source_menu.options) == ["photos", "fonts:test", f"folder:{folder}"]
    assert sorted(explorer.source_menu.options) == ["blue.png", "red.png"]

    explorer.image_source_menu.value = "photos"
    assert "coffee" in explorer.source_menu.options and explorer.traversal.sources.shape == (1, 3, 16, 16)
    for file in folder.iterdir():
        file.unlink()
    explorer.image_source_menu.value = f"folder:{folder}"  # now empty: a message, the photos stay
    assert f"Could not load folder:{folder}: no readable images" in explorer.message.value
    assert explorer.image_source_menu.value == "photos" and "coffee" in explorer.catalog

    explorer.model_menu.value = "fonts_cnn"  # a shipped FONTS model: glyphs, one channel, 32 x 32
    assert "Loaded model fonts_cnn" in explorer.message.value
    assert explorer.model.info["name"] == "fonts_cnn" and explorer.image_source_menu.value == "fonts:test"
    assert explorer.traversal.sources.shape == (1, 1, 32, 32)
    assert explorer.source_menu.value in explorer.catalog and "coffee" not in explorer.source_menu.options
    explorer.step(3)
    assert explorer.traversal.iteration == 3
    explorer.model_menu.value = "tiny"  # back to the given model
    assert explorer.model is model and explorer.image_source_menu.value == "photos"


def test_the_saliency_toggle_lays_the_map_over_the_current_point(explorer):
    def shown(name):
        return _png(explorer.panels[name])

    def drawn(image):
        return np.asarray(Image.open(io.BytesIO(image_to_png(image, PANEL))))

    assert not explorer.saliency_toggle.value  # off by default: the current point as it is
    others = {name: shown(name) for name in ("source", "target", "difference")}
    current = explorer.traversal.images[0]
    assert np.array_equal(shown("current"), drawn(current))

    explorer.saliency_toggle.value = True
    saliency = explorer.state.saliency()
    assert np.array_equal(shown("current"), drawn(saliency_overlay(current, saliency)))
    assert not np.array_equal(shown("current"), drawn(current))
    assert all(np.array_equal(shown(name), picture) for name, picture in others.items())
    assert "<b>saliency</b>, iteration 0" in explorer.panel_labels["current"].value

    explorer.step_button.click()  # the overlay follows the traversal
    current = explorer.traversal.images[0]
    assert explorer.state.saliency() is not saliency
    assert np.array_equal(shown("current"), drawn(saliency_overlay(current, explorer.state.saliency())))
    assert "<b>saliency</b>, iteration 5" in explorer.panel_labels["current"].value

    explorer.saliency_toggle.value = False
    assert np.array_equal(shown("current"), drawn(current))
    assert "<b>current</b>, iteration 5" in explorer.panel_labels["current"].value


def test_the_explorer_and_the_figures_draw_a_map_alike(explorer):
    """One map, one picture: the saliency panel shows the colours of the grid figure's overlay."""
    explorer.saliency_toggle.value = True
    current, saliency = explorer.traversal.images[0], explorer.state.saliency()
    assert float(saliency.max()) > 0
    grid = SimpleNamespace(images=current[None, None], labels=torch.tensor([0]), confidence=torch.ones(1, 1))
    figure = blindspot_grid_figure(grid, overlay=saliency[None, None])
    drawn = np.asarray(figure.axes[0].images[0].get_array())  # (H, W, 3) in [0, 1]
    plt.close(figure)
    zoom = PANEL // current.shape[-1]  # the panel enlarges each pixel to zoom x zoom, without smoothing
    shown = _png(explorer.panels["current"])[::zoom, ::zoom]
    assert shown.shape == drawn.shape and np.array_equal(shown, np.round(drawn * 255).astype(np.uint8))
