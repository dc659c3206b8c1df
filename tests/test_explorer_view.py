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
from blindspots_nb.explorer.catalogue import GIVEN_IMAGES
from blindspots_nb.analysis.metrics import rmse
from blindspots_nb.analysis.saliency import attribution_maps
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
    return LSTExplorer(model, image_source=images, source_name="w", target="x", model_names=[], iterations_per_click=5,
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
    assert list(explorer.image_source_menu.options) == ["photos", "fonts:test", "digits:test", GIVEN_IMAGES]
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
    explorer.triangle.live_toggle.value = False  # no triangle redrawn at each step and restart: not what this tests
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
    explorer.state.choose(source_name="z")
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
    explorer = LSTExplorer(model, image_source=images, model_names=["no_such_model"], out_dir=tmp_path)
    assert list(explorer.model_menu.options) == [("tiny", "tiny"), ("no_such_model", "no_such_model")]
    explorer.model_menu.value = "no_such_model"
    assert "Could not load no_such_model: unknown model" in explorer.message.value
    assert explorer.model is model and explorer.model_menu.value == "tiny"
    explorer.step(2)
    assert explorer.traversal.iteration == 2


def test_unknown_image_name_is_a_clear_error(model, images):
    with pytest.raises(ValueError, match="no image 'nope'"):
        LSTExplorer(model, image_source=images, model_names=[], source_name="nope")


@pytest.mark.slow  # loads a shipped model and renders its glyphs: several seconds
def test_switching_image_sources_and_models(model, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for name, colour in (("red.png", (255, 0, 0)), ("blue.png", (0, 0, 255))):
        Image.new("RGB", (20, 20), colour).save(folder / name)
    explorer = LSTExplorer(model, image_source=f"folder:{folder}", model_names=["fonts_cnn"], out_dir=tmp_path / "out")
    assert explorer.image_source_menu.value == f"folder:{folder}"
    assert list(explorer.image_source_menu.options) == ["photos", "fonts:test", "digits:test", f"folder:{folder}"]
    assert sorted(explorer.source_menu.options) == ["blue.png", "red.png"]

    explorer.image_source_menu.value = "photos"
    # one batch: the source twice, towards target A and target B
    assert "coffee" in explorer.source_menu.options and explorer.traversal.sources.shape == (2, 3, 16, 16)
    for file in folder.iterdir():
        file.unlink()
    explorer.image_source_menu.value = f"folder:{folder}"  # now empty: a message, the photos stay
    assert f"Could not load folder:{folder}: no readable images" in explorer.message.value
    assert explorer.image_source_menu.value == "photos" and "coffee" in explorer.catalog

    explorer.model_menu.value = "fonts_cnn"  # a shipped FONTS model: glyphs, one channel, 32 x 32
    assert "Loaded model fonts_cnn" in explorer.message.value
    assert explorer.model.info["name"] == "fonts_cnn" and explorer.image_source_menu.value == "fonts:test"
    assert explorer.traversal.sources.shape == (2, 1, 32, 32)
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


def test_the_map_menu_lays_the_occlusion_map_over_the_current_point(explorer):
    explorer.saliency_toggle.value = True
    assert explorer.saliency_method.value == "saliency" and list(explorer.saliency_method.options) == [
        "saliency", "occlusion"]
    gradient = explorer.state.saliency()
    explorer.saliency_method.value = "occlusion"
    current = explorer.traversal.images[0]
    occlusion = explorer.state.saliency("occlusion")
    expected = attribution_maps(explorer.model, current[None], explorer.traversal.labels[:1], "occlusion")[0]
    torch.testing.assert_close(occlusion, expected)
    assert not torch.equal(occlusion, gradient)
    shown = _png(explorer.panels["current"])
    assert np.array_equal(shown, np.asarray(Image.open(io.BytesIO(image_to_png(saliency_overlay(current, occlusion),
                                                                               PANEL)))))
    assert "<b>occlusion</b>, iteration 0" in explorer.panel_labels["current"].value
    assert explorer.state.snapshot(saliency="occlusion").saliency_method == "occlusion"


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


# -- the live triangle ------------------------------------------------------------------
def test_the_second_target_has_its_menu_and_panels(explorer):
    state = explorer.state
    assert explorer.target_b_menu.value == state.target_b and list(explorer.target_b_menu.options) == NAMES
    explorer.target_b_menu.value = "y"
    assert state.target_b == "y" and state.traversal.iteration == 0
    explorer.step(5)
    t = explorer.traversal
    np.testing.assert_array_equal(_png(explorer.panels["current_b"]), _png_of(image_to_png(t.images[1], PANEL)))
    np.testing.assert_array_equal(_png(explorer.panels["target_b"]), _png_of(image_to_png(t.targets[1], PANEL)))
    assert f"{float(t.confidence[1]):.3f}" in explorer.panel_labels["current_b"].value


def _png_of(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_the_triangle_follows_each_step_in_its_figures_and_numbers(explorer):
    panel = explorer.triangle
    explorer.step_button.click()
    triangle = explorer.state.live_triangle
    assert triangle.iteration == 5 and panel.shown is triangle
    np.testing.assert_allclose(panel.surface.data[0].z, triangle.confidence.numpy())
    np.testing.assert_allclose(panel.surface.data[0].x, triangle.coordinates[:, 0].numpy())
    np.testing.assert_allclose(panel.contour.data[1].customdata, triangle.confidence.numpy())  # the grid
    assert len(panel.contour.layout.images) == 3 and len(panel.surface.layout.images) == 3  # corner thumbnails
    np.testing.assert_allclose(panel.star.data[0].y, triangle.segment("A")[1].numpy())
    np.testing.assert_allclose(panel.star.data[1].y, triangle.segment("B")[1].numpy())
    assert "iteration 5 (66 points)" in panel.surface.layout.title.text and "tiny" in panel.surface.layout.title.text
    for key in ("avg_conf", "frac_0.1", "path_conf"):
        assert f"{triangle.stats[key]:.3f}" in panel.stats.value
    assert "Avg Delta Conf" in panel.stats.value and "Frac d=0.3" in panel.stats.value
    before = list(panel.surface.data[0].z)
    explorer.step_button.click()
    assert explorer.state.live_triangle.iteration == 10 and list(panel.surface.data[0].z) != before


def test_a_restart_draws_its_new_triangle_once(explorer, monkeypatch):
    """A restart comes with its live triangle: the panel makes its three figures once, no placeholder first."""
    from blindspots_nb.explorer import triangle_view

    made = []
    monkeypatch.setattr(triangle_view, "figure_widget",
                        lambda figure, build=triangle_view.figure_widget: made.append(figure) or build(figure))
    explorer.step(5)
    made.clear()
    explorer.reset_button.click()
    assert explorer.triangle.shown is explorer.state.live_triangle and explorer.triangle.shown.iteration == 0
    assert [figure.layout.meta["iteration"] for figure in made] == [0, 0, 0]
    assert _drawn(explorer.triangle.surface)[0] == 0


def test_live_off_keeps_the_triangle_until_redraw_and_divisions_set_the_grid(explorer):
    panel = explorer.triangle
    panel.live_toggle.value = False
    explorer.step(5)
    assert panel.shown.iteration == 0
    panel.redraw_button.click()
    assert panel.shown.iteration == 5
    np.testing.assert_allclose(panel.surface.data[0].z, explorer.state.triangle().confidence.numpy())
    panel.divisions.value = 4
    assert explorer.state.divisions == 4 and len(panel.surface.data[0].z) == 15
    assert "15 grid points" in panel.grid_points.value
    panel.live_toggle.value = True
    explorer.step(5)
    assert panel.shown.iteration == 10 and panel.shown.points == 15


def _click(figure, trace, x, y):
    """What plotly's FigureWidget does on a click at (x, y) of ``trace``."""
    from plotly.callbacks import Points
    figure.data[trace]._dispatch_on_click(Points(point_inds=[0], xs=[x], ys=[y], trace_name="", trace_index=trace),
                                          None)


@pytest.mark.parametrize("figure, trace", [("surface", 0), ("contour", 0), ("contour", 1)])
def test_a_click_shows_the_image_its_confidence_and_class(explorer, figure, trace):
    panel = explorer.triangle
    explorer.step(5)
    triangle = explorer.state.live_triangle
    row = 40  # a grid point inside the triangle
    x, y = triangle.coordinates[row].tolist()
    _click(getattr(panel, figure), trace, x, y)
    a, b = triangle.weights[row, 1:].tolist()
    point = explorer.state.image_at(a, b)
    np.testing.assert_array_equal(_png(panel.point_image), _png_of(image_to_png(point.image, 160)))
    assert f"a = {a:.3f}, b = {b:.3f}" in panel.point_label.value
    assert f"{float(triangle.confidence[row]):.4f}" in panel.point_label.value
    assert f"model's class: {point.class_name} ({point.class_confidence:.3f})" in panel.point_label.value


def test_a_click_outside_the_triangle_says_so(explorer):
    panel = explorer.triangle
    explorer.step(5)
    label = panel.point_label.value
    _click(panel.contour, 0, -5.0, -5.0)
    assert "lies outside the triangle" in explorer.message.value and panel.point_label.value == label


def _drawn(figure) -> tuple[int, int]:
    """The iteration in a FigureWidget's own state (what a frontend that renders it now gets:
    its layout's meta) and the points of its first curve there."""
    state = figure.get_state(["_widget_data", "_widget_layout"])
    return state["_widget_layout"]["meta"]["iteration"], len(state["_widget_data"][0]["x"])


def test_a_step_leaves_its_state_in_a_new_figure_that_a_late_frontend_still_gets(explorer):
    """In-place updates of a FigureWidget are messages a frontend can miss (a view not ready yet,
    a busy machine); the state a widget is made with it cannot."""
    shown = explorer.figure
    explorer.step_button.click()
    assert explorer.figure is not shown and explorer.figure_box.children == (explorer.figure,)
    assert _drawn(explorer.figure) == (5, 6)
    assert all(_drawn(figure)[0] == 5 for figure in (explorer.triangle.surface, explorer.triangle.contour,
                                                     explorer.triangle.star))
    explorer.reset_button.click()
    assert _drawn(explorer.figure) == (0, 1)


def test_the_end_of_a_run_is_drawn_though_the_throttle_drew_no_triangle_during_it(explorer):
    from blindspots_nb.explorer.triangle import RedrawThrottle

    explorer.state.throttle = RedrawThrottle(every=10 ** 6)  # no triangle while it runs
    explorer.run_button.click()
    assert explorer.wait(60) and explorer.traversal.iteration == 30
    shown = explorer.triangle.shown
    assert shown is not None and shown.iteration == 30 and "iteration 30" in explorer.triangle.stats.value
    assert _drawn(explorer.triangle.surface)[0] == 30
    assert _drawn(explorer.figure) == (30, 31)


def test_each_figure_opens_its_comm_with_its_data(explorer, monkeypatch):
    """A front end may drop every message after a widget's comm opens (anywidget 0.11 does for a model
    whose module loads in over 2 s, as on a busy machine): the state the comm opens with is what
    it draws, so each figure a Step makes must open its comm with its data, layout and iteration."""
    import comm
    from ipywidgets.widgets.widget import _put_buffers

    opened = []

    def recording(**kwargs):
        state = kwargs["data"]["state"]
        _put_buffers(state, kwargs["data"]["buffer_paths"], kwargs["buffers"])  # arrays travel as buffers
        opened.append(state)
        return create_comm(**kwargs)

    create_comm = comm.create_comm
    monkeypatch.setattr(comm, "create_comm", recording)
    explorer.step_button.click()
    figures = {state["_widget_layout"]["title"]["text"].split("<br>")[0]: state
               for state in opened if state.get("_widget_layout", {}).get("title")}
    curves = next(state for title, state in figures.items() if title.startswith("Confidence along"))
    assert curves["_widget_layout"]["meta"]["iteration"] == 5 and list(curves["_widget_data"][0]["x"]) == list(range(6))
    surface = next(state for title, state in figures.items() if "iteration 5 (66 points)" in title)
    z = surface["_widget_data"][0]["z"]
    np.testing.assert_allclose(np.frombuffer(z["buffer"], dtype=z["dtype"]), explorer.state.live_triangle.confidence)
