import io
import json
import os
import shutil
import sys

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from matplotlib.text import Text
from PIL import Image

from blindspots_nb import plots
from blindspots_nb.analysis.geometry import grid_coordinates, triangle_grid, triangle_shape
from blindspots_nb.lst import LSTConfig, traverse
from blindspots_nb.plots.widgets import figure_widget
from blindspots_nb.analysis.paths import PathWidths, blindspot_grid

CAPTION = "model tiny [test] | step_size=0.01 | cpu | blindspots_nb 0.1.0"


@pytest.fixture
def result(tiny_cnn):
    torch.manual_seed(0)
    sources, targets = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    config = LSTConfig(iterations=12, record_every=3, record_images=True)
    return traverse(tiny_cnn, sources, [2, 2], targets, config)


def test_confidence_figure_shows_the_history(result):
    fig = plots.confidence_figure(result, index=1, class_names=("espresso", "cat"), caption=CAPTION)
    history = result.history.as_tensors()
    source, target, bound, rmse = fig.data
    assert list(source.x) == [0, 3, 6, 9, 12]
    np.testing.assert_allclose(source.y, history["source_confidence"][:, 1].double())
    np.testing.assert_allclose(target.y, history["target_confidence"][:, 1].double())
    np.testing.assert_allclose(rmse.y, history["distance"][:, 1].double() / (3 * 16 * 16) ** 0.5)
    np.testing.assert_allclose(bound.y, float(result.initial_confidence[1]) - result.config.delta)
    assert source.name == "source class: espresso" and target.name == "target class: cat"
    assert CAPTION[:40] in fig.layout.title.text


def test_update_confidence_figure_changes_a_figure_widget_in_place(tiny_cnn, result):
    torch.manual_seed(0)
    short = traverse(tiny_cnn, torch.rand(1, 3, 16, 16), [2], torch.rand(1, 3, 16, 16),
                     LSTConfig(iterations=2, record_every=1))
    widget = go.FigureWidget(plots.confidence_figure(short))
    assert len(widget.data[0].x) == 3
    plots.update_confidence_figure(widget, result, 0)
    assert len(widget.data[0].x) == 5
    np.testing.assert_allclose(widget.data[0].y, result.history.as_tensors()["source_confidence"][:, 0].double())


def test_image_helpers():
    image = torch.rand(3, 5, 7)
    decoded = np.asarray(Image.open(io.BytesIO(plots.image_to_png(image))))
    assert decoded.shape == (5, 7, 3)
    np.testing.assert_allclose(decoded / 255, image.permute(1, 2, 0).numpy(), atol=0.5 / 255 + 1e-6)
    gray = Image.open(io.BytesIO(plots.image_to_png(torch.rand(1, 4, 4), size=64)))
    assert gray.size == (64, 64) and gray.mode == "L"
    assert plots.image_to_data_uri(image).startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match="C, H, W"):
        plots.to_array(torch.rand(2, 4, 4))
    picture, scale = plots.difference_image(torch.full((1, 2, 2), 0.7), torch.full((1, 2, 2), 0.5))
    assert scale == pytest.approx(0.2)
    torch.testing.assert_close(picture, torch.ones(1, 2, 2))
    picture, scale = plots.difference_image(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2))
    assert scale == 0 and torch.all(picture == 0.5)


def test_triangle_cells_tile_the_triangle():
    for divisions in (1, 3, 10):
        cells = plots.triangle_cells(divisions)
        assert cells.shape == (divisions ** 2, 3)
        t = triangle_grid(divisions)[:, 1:].numpy()
        a, b, c = t[cells[:, 0]], t[cells[:, 1]], t[cells[:, 2]]
        areas = 0.5 * np.abs((b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0])
        assert np.allclose(areas, 0.5 / divisions ** 2)  # equal cells, together the whole triangle


def _triangle(divisions=4):
    torch.manual_seed(0)
    source, a, b = torch.rand(3, 3, 8, 8).unbind(0)
    shape = triangle_shape(source, a, b)
    confidence = torch.linspace(0, 1, (divisions + 1) * (divisions + 2) // 2)
    return shape, confidence, (source, a, b)


def test_triangle_surface_puts_the_confidences_on_the_true_shape():
    shape, confidence, thumbnails = _triangle()
    fig = plots.triangle_surface(shape, confidence, 4, thumbnails, CAPTION)
    mesh, corners = fig.data
    xy = grid_coordinates(shape, 4).numpy()
    np.testing.assert_allclose(mesh.x, xy[:, 0])
    np.testing.assert_allclose(mesh.y, xy[:, 1])
    np.testing.assert_allclose(mesh.z, confidence.double())
    assert len(mesh.i) == 16
    np.testing.assert_allclose(np.c_[corners.x, corners.y], shape.numpy())
    # corners: source = first grid point, A = (t1 = 1), B = (t2 = 1)
    assert list(corners.z) == pytest.approx([0.0, 1.0, float(confidence[4])])
    assert len(fig.layout.images) == 3
    assert CAPTION[:30] in fig.layout.title.text


def test_triangle_contour_is_blank_outside_and_interpolates_inside():
    shape, confidence, thumbnails = _triangle()
    fig = plots.triangle_contour(shape, confidence, 4, thumbnails, CAPTION, resolution=60)
    contour = fig.data[0]
    z = np.array(contour.z, dtype=float)
    assert z.shape == (60, 60)
    assert np.isnan(z).any() and np.isfinite(z).any()
    assert np.nanmin(z) >= -1e-9 and np.nanmax(z) <= 1 + 1e-9
    # the lower-left pixel is the source corner (at the origin): value = confidence there
    assert contour.x[0] == pytest.approx(min(0.0, float(shape[2, 0])))
    np.testing.assert_allclose(fig.data[1].customdata, confidence.double())
    assert len(fig.layout.images) == 3
    with pytest.raises(ValueError, match="grid confidences"):
        plots.triangle_contour(shape, confidence[:-1], 4)


def test_star_figure():
    confidence = torch.tensor([[0.9, 0.8, 0.95], [0.9, 0.5, 0.7]])
    fig = plots.star_figure(confidence, ["a", "b"], CAPTION)
    assert [trace.name for trace in fig.data] == ["a", "b", "mean"]
    np.testing.assert_allclose(fig.data[1].y, [0.9, 0.5, 0.7])
    np.testing.assert_allclose(fig.data[2].y, confidence.double().mean(0))
    np.testing.assert_allclose(fig.data[0].x, [0, 0.5, 1])
    with pytest.raises(ValueError, match="2 segments but 1 names"):
        plots.star_figure(confidence, ["a"])


def test_blindspot_grid_figure(tiny_cnn):
    torch.manual_seed(0)
    grid = blindspot_grid(tiny_cnn, torch.rand(3, 3, 16, 16), LSTConfig(iterations=2, record_every=0))
    fig = plots.blindspot_grid_figure(grid, list("abcde"), ["x", "y", "z"], CAPTION)
    axes = np.array(fig.axes).reshape(3, 3)
    for i in range(3):
        for j in range(3):
            label = axes[i, j].get_xlabel()
            assert label.endswith(f"{float(grid.confidence[i, j]):.3f}")
            np.testing.assert_allclose(axes[i, j].images[0].get_array(), plots.to_array(grid.images[i, j]))
    assert [ax.get_title() for ax in axes[0]] == ["source: x", "source: y", "source: z"]
    assert [ax.get_ylabel() for ax in axes[:, 0]] == ["target: x", "target: y", "target: z"]
    assert any(CAPTION in text.get_text() for text in fig.texts)


def _strip_iterations(fig):
    return [int(ax.get_xlabel().splitlines()[0].removeprefix("iteration ")) for ax in fig.axes]


def test_path_strip_keeps_first_and_last_frames(result):
    history = result.history.as_tensors()
    fig = plots.path_strip(history["images"][:, 0], history["source_confidence"][:, 0], history["iteration"],
                           "espresso", CAPTION, max_frames=3)
    assert _strip_iterations(fig) == [0, 6, 12]
    assert fig.axes[-1].get_xlabel().endswith(f"{float(history['source_confidence'][-1, 0]):.3f}")
    with pytest.raises(ValueError, match="one confidence"):
        plots.path_strip(history["images"][:, 0], history["source_confidence"][:2, 0], history["iteration"])
    with pytest.raises(ValueError, match="at least 2"):
        plots.path_strip(history["images"][:, 0], history["source_confidence"][:, 0], history["iteration"], max_frames=1)


@pytest.mark.parametrize("iterations, max_frames, expected", [
    (range(0, 41, 4), 8, [0, 8, 16, 24, 32, 40]),  # 11 records: rounding indices gave 0, 4, 12, 16, 24, ...
    (range(0, 401, 20), 8, [0, 80, 160, 240, 320, 400]),
    (range(0, 29, 4), 8, list(range(0, 29, 4))),  # all 8 records fit
    (range(0, 49, 4), 5, [0, 12, 24, 36, 48]),
])
def test_path_strip_frames_are_evenly_spaced_where_the_record_allows(iterations, max_frames, expected):
    import matplotlib.pyplot as plt

    iterations = list(iterations)
    fig = plots.path_strip(torch.rand(len(iterations), 1, 4, 4), torch.rand(len(iterations)), iterations,
                           max_frames=max_frames)
    assert _strip_iterations(fig) == expected
    plt.close(fig)


def test_path_strip_frames_fall_back_to_the_nearest_when_no_even_grid_fits():
    import matplotlib.pyplot as plt

    iterations = [*range(0, 49, 4), 50]  # stopped at 50, off the record grid: no even spacing but the ends
    fig = plots.path_strip(torch.rand(len(iterations), 1, 4, 4), torch.rand(len(iterations)), iterations)
    chosen = _strip_iterations(fig)
    plt.close(fig)
    assert len(chosen) == 8 and chosen[0] == 0 and chosen[-1] == 50
    step = 50 / 7
    assert all(abs(value - n * step) <= 2 for n, value in enumerate(chosen))  # within half a record of the grid


def test_path_strip_title_sits_just_above_the_images(result):
    history = result.history.as_tensors()
    fig = plots.path_strip(history["images"][:, 0], history["source_confidence"][:, 0], history["iteration"],
                           "espresso", CAPTION, title="the path")
    renderer = fig.canvas.get_renderer()
    (title,) = [text.get_window_extent(renderer) for text in fig.findobj(Text) if text.get_text() == "the path"]
    images_top = max(ax.get_window_extent(renderer).y1 for ax in fig.axes)
    gap_inches = (title.y0 - images_top) / fig.dpi
    assert 0 < gap_inches < 0.2  # the strip's empty band above the images is gone
def test_path_animation_writes_a_gif_with_one_frame_per_record(result, tmp_path):
    history = result.history.as_tensors()
    animation = plots.path_animation(history["images"][:, 0], history["source_confidence"][:, 0],
                                     history["iteration"], "espresso", CAPTION)
    path = plots.save_figure(animation, tmp_path / "path.gif")
    with Image.open(path) as gif:
        assert gif.n_frames == len(history["iteration"])


def test_path_widths_figure_bands_match_the_quantiles():
    widths = PathWidths(positions=torch.linspace(0, 1, 3, dtype=torch.float64),
                        radii=torch.tensor([1.0, 2.0], dtype=torch.float64),
                        quantiles=torch.tensor([0.05, 0.95], dtype=torch.float64),
                        values=torch.rand(2, 2, 3, dtype=torch.float64), center=torch.rand(3), samples=8)
    fig = plots.path_widths_figure(widths, caption=CAPTION)
    assert len(fig.data) == 1 + 2 * 2
    np.testing.assert_allclose(fig.data[0].y, widths.center.double())
    for r in range(2):
        high, low = fig.data[1 + 2 * r], fig.data[2 + 2 * r]
        np.testing.assert_allclose(high.y, widths.values[1, r])
        np.testing.assert_allclose(low.y, widths.values[0, r])
        assert low.fill == "tonexty"


MAGIC = {".png": (b"\x89PNG\r\n\x1a\n",), ".svg": (b"<svg", b"<?xml"), ".pdf": (b"%PDF",)}


def test_save_figure_writes_matplotlib_as_png_svg_and_pdf(tmp_path):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    for suffix, magic in MAGIC.items():
        path = plots.save_figure(fig, tmp_path / f"figure{suffix}")
        assert path.read_bytes().lstrip().startswith(magic), suffix
    dense = plots.save_figure(fig, tmp_path / "dense.png", dpi=240)
    with Image.open(tmp_path / "figure.png") as low, Image.open(dense) as high:
        assert high.width == pytest.approx(2 * low.width, abs=2)
    with pytest.raises(ValueError, match=r"\.png, \.svg or \.pdf, not figure\.jpg"):
        plots.save_figure(fig, tmp_path / "figure.jpg")
    plt.close(fig)


def test_save_figure_writes_plotly_as_html_and_refuses_other_suffixes(tmp_path):
    html = plots.save_figure(plots.star_figure(torch.rand(2, 3)), tmp_path / "sub" / "star.html", include_plotlyjs="cdn")
    assert "plotly" in html.read_text()
    with pytest.raises(ValueError, match=r"\.pdf, not figure\.gif"):
        plots.save_figure(go.Figure(), tmp_path / "figure.gif")
    with pytest.raises(TypeError, match="cannot save"):
        plots.save_figure("not a figure", tmp_path / "x.html")


def test_plotly_pictures_without_kaleido_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "kaleido", None)  # import kaleido fails
    with pytest.raises(plots.RendererMissingError, match="'kaleido>=1'.*apt-get install chromium"):
        plots.save_figure(go.Figure(), tmp_path / "figure.pdf")
    assert not (tmp_path / "figure.pdf").exists()


def test_plotly_pictures_without_a_browser_say_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("kaleido")
    from choreographer.browsers.chromium import Chromium

    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-chromium"))
    with pytest.raises(plots.RendererMissingError, match="no-chromium .*apt-get install chromium"):
        plots.save_figure(go.Figure(), tmp_path / "figure.png")
    monkeypatch.setenv("BROWSER_PATH", "")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(Chromium, "find_browser", classmethod(lambda cls, **options: None))
    with pytest.raises(plots.RendererMissingError, match="no Chrome or Chromium.*BROWSER_PATH"):
        plots.save_figure(go.Figure(), tmp_path / "figure.svg")


def test_plotly_renderer_points_kaleido_at_the_system_chromium(monkeypatch):
    pytest.importorskip("kaleido")
    system = shutil.which("chromium")
    if system is None:
        pytest.skip("no chromium on the PATH (apt-get install chromium)")
    monkeypatch.setenv("BROWSER_PATH", "")  # unset; restored after the test
    assert plots.plotly_renderer() == system
    assert os.environ["BROWSER_PATH"] == system


@pytest.mark.slow  # each picture starts the browser: about 3 s apiece
def test_save_figure_draws_plotly_as_png_svg_and_pdf(tmp_path, monkeypatch):
    pytest.importorskip("kaleido", reason="plotly pictures need kaleido (pip install 'kaleido>=1')")
    monkeypatch.setenv("BROWSER_PATH", os.environ.get("BROWSER_PATH", ""))  # whatever save_figure sets, undone after
    try:
        plots.plotly_renderer()
    except plots.RendererMissingError as error:
        pytest.skip(str(error))
    fig = go.Figure(go.Surface(z=[[0, 1], [1, 0.5]]))
    for suffix, magic in MAGIC.items():
        path = plots.save_figure(fig, tmp_path / f"surface{suffix}")
        assert path.read_bytes().lstrip().startswith(magic), suffix
    with Image.open(tmp_path / "surface.png") as picture:
        assert picture.width == plots.figures.PLOTLY_PICTURE_WIDTH


def test_path_widths_surface_is_mirrored_with_the_path_at_distance_zero():
    widths = PathWidths(positions=torch.tensor([0, 20, 40]), radii=torch.tensor([1.0, 0.5], dtype=torch.float64),
                        quantiles=torch.tensor([0.05, 0.95], dtype=torch.float64),
                        values=torch.rand(2, 2, 3, dtype=torch.float64), center=torch.rand(3), samples=256)
    fig = plots.path_widths_surface(widths, caption=CAPTION)
    (surface,) = fig.data
    assert isinstance(surface, go.Surface)
    np.testing.assert_allclose(surface.x, [0, 20, 40])
    np.testing.assert_allclose(surface.y, [-1.0, -0.5, 0.0, 0.5, 1.0])  # radii sorted, mirrored
    z = np.asarray(surface.z)
    assert z.shape == (5, 3)
    np.testing.assert_allclose(z, z[::-1])  # z at -d equals z at +d
    np.testing.assert_allclose(z[2], widths.center.double())
    np.testing.assert_allclose(z[3], widths.values[0, 1])  # q0.05 at radius 0.5
    np.testing.assert_allclose(z[4], widths.values[0, 0])  # q0.05 at radius 1.0
    scene = fig.layout.scene
    assert scene.xaxis.title.text == "LST iteration"
    assert "l2 distance" in scene.yaxis.title.text
    assert "q0.05" in scene.zaxis.title.text and "256 samples" in scene.zaxis.title.text
    assert CAPTION[:40] in fig.layout.title.text
    np.testing.assert_allclose(np.asarray(plots.path_widths_surface(widths, quantile=0.95).data[0].z)[4],
                               widths.values[1, 0])
    with pytest.raises(ValueError, match="not 0.5"):
        plots.path_widths_surface(widths, quantile=0.5)
    widths.radii = torch.tensor([0.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"radii must be positive.*\[0\.0, 1\.0\]"):
        plots.path_widths_surface(widths)


def test_saliency_overlay_blends_the_clipped_map_in_colour_over_the_image():
    from matplotlib import colormaps

    image = torch.rand(1, 10, 10)  # one channel: the overlay is in colour
    saliency = torch.linspace(0, 1, 100).reshape(10, 10) ** 4  # sparse, as gradient maps are
    overlay = plots.saliency_overlay(image, saliency, opacity=0.4)
    assert overlay.shape == (3, 10, 10) and overlay.min() >= 0 and overlay.max() <= 1
    colour_map = colormaps[plots.SALIENCY_COLOURS]

    def blended(row, col, level):
        colour = torch.tensor(colour_map(level)[:3], dtype=torch.float32)
        return 0.6 * image[0, row, col] + 0.4 * colour

    top = np.quantile(saliency.numpy(), plots.SALIENCY_TOP)  # from there on: the brightest colour
    for row, col in ((0, 0), (4, 5), (9, 8), (9, 9)):
        torch.testing.assert_close(overlay[:, row, col], blended(row, col, min(float(saliency[row, col]) / top, 1.0)))
    heat = overlay - 0.6 * image  # the map's part
    torch.testing.assert_close(heat[:, 9, 8], heat[:, 9, 9])  # both in the top 2%: clipped alike
    torch.testing.assert_close(plots.saliency_overlay(image, saliency / 3), plots.saliency_overlay(image, saliency))
    blank = plots.saliency_overlay(image, torch.zeros(10, 10), opacity=0.4)  # no saliency at all: the lowest colour
    torch.testing.assert_close(blank[:, 2, 3], blended(2, 3, 0.0))
    lone = torch.zeros(10, 10)
    lone[2, 3] = 0.25  # sparser than the top 2%: scaled by its maximum instead
    torch.testing.assert_close(plots.saliency_overlay(image, lone, opacity=0.4)[:, 2, 3], blended(2, 3, 1.0))


def test_a_figure_widget_of_the_contour_holds_its_gaps_as_none_for_json():
    shape = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.3, 0.8]], dtype=torch.float64)
    figure = plots.triangle_contour(shape, torch.linspace(0, 1, 66), divisions=10, resolution=40)
    gaps = np.isnan(np.asarray(figure.data[0].z, dtype=float))
    assert gaps.any() and not gaps.all()  # outside the triangle
    widget = figure_widget(figure)
    assert isinstance(widget, go.FigureWidget)
    z = widget.get_state(["_widget_data"])["_widget_data"][0]["z"]  # as the widget sends it
    json.dumps(z, allow_nan=False)  # JSON, as a widget's state travels
    np.testing.assert_array_equal(np.isnan(np.asarray(z, dtype=float)), gaps)
    np.testing.assert_array_equal(np.asarray(z, dtype=float)[~gaps], np.asarray(figure.data[0].z, dtype=float)[~gaps])
    assert np.isnan(np.asarray(figure.data[0].z, dtype=float)).any()  # the given figure is left as it was
