"""Notebook 07, the browser of a finished run, in a real browser: a small run made here, the
notebook prepared with its folder by papermill (parameters only, nothing run), served by Voila as
an app and by JupyterLab, opened in headless Chromium; picking a source shows its stored triangle
as a plotly surface. The folder is not touched. A run whose file, class and model names carry HTML
with handlers shows them as text: no element of theirs reaches the page, no handler runs.
Screenshots go to ``results/browser/``."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from browser import REPO, SCREENSHOTS, cpu_hog, lab_server, page as browser_page, run_all_cells, voila_server
from helpers import HOSTILE_FILE, HOSTILE_MODEL, folder_listing, make_hostile_run

pytestmark = pytest.mark.slow  # a run, a Voila server and a real browser

NOTEBOOK = REPO / "notebooks" / "07_browse_run.ipynb"
# The elements and flags an injected name would leave on the page: the <img src=x|y|z onerror=...> of the hostile
# run's names (in the DOM as soon as markup is set, whether or not its handler has run yet) and their handlers' flag.
INJECTED = """() => ({elements: document.querySelectorAll('img[onerror], img[src="x"], img[src="y"], img[src="z"]').length,
                 flag: window.__pwned === undefined ? null : String(window.__pwned)})"""
# The z values of the 3-D surface on the page (null until plotly has drawn one).
SURFACE_Z = """() => { for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const mesh = (plot.data || []).find(trace => trace.type === 'mesh3d');
    if (mesh) return Array.from(mesh.z); } return null; }"""
# Where the contour's title, caption and corner names are drawn on the page: their boxes and the plot area's.
CONTOUR_BOXES = """() => { const contour = document.querySelectorAll('.js-plotly-plot')[1];
    const box = element => { const r = element.getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; };
    return {title: box(contour.querySelector('.gtitle')), plot: box(contour.querySelector('.nsewdrag')),
            annotations: Array.from(contour.querySelectorAll('.annotation')).map(
                a => ({text: a.textContent, ...box(a)}))}; }"""


@pytest.fixture
def run_dir(tmp_path):
    """A finished run of one FONTS CNN: 4 sources, 3 rounds, LST of a few iterations."""
    from blindspots_nb import protocol
    from blindspots_nb.lst import LSTConfig
    from blindspots_nb.protocol import Experiment, RunStore
    from blindspots_nb.protocol import run as run_module

    store = RunStore(tmp_path / "run")
    experiment = Experiment("fonts:test", ("fonts_cnn",), LSTConfig(iterations=5, step_size=0.05), n_sources=4,
                            rounds=3, batch_size=2, divisions=4)
    store.begin([experiment], weights=run_module.weights_identity([experiment], {}))
    protocol.prepare(experiment, store, device="cpu")
    protocol.run_model(experiment, "fonts_cnn", store, device="cpu", progress=False)
    protocol.assemble(store, [experiment])
    return store.out_dir


def _prepared(run_dir: Path, folder: Path) -> Path:
    """A copy of notebook 07 with ``run_dir`` as its parameter (papermill injects it; nothing is run)."""
    app = folder / "browse.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(app), parameters={"run_dir": str(run_dir)}, prepare_only=True)
    return app


def _pick_a_source_and_see_its_triangle(page, run_dir: Path, screenshot: str):
    """On a page where notebook 07 runs: the first source's triangle is drawn; picking the third
    source of the list draws that source's stored grid as the surface's z values."""
    from blindspots_nb.browser.runs import StoredRun

    run = StoredRun(run_dir)
    picked = run.sorted_sources("fonts/fonts_cnn", "path_conf")[2]["source"]  # the app's order: by path confidence
    expected = run.triangle("fonts/fonts_cnn", picked).grid.tolist()
    sources = page.locator(".run-sources select")
    sources.wait_for(timeout=300_000)
    page.wait_for_function(f"({SURFACE_Z})() !== null", timeout=300_000)  # the first source's triangle
    first = page.evaluate(SURFACE_Z)
    assert page.locator(".widget-html", has_text=f"Run {run_dir}").count() == 1

    sources.select_option(index=2)
    page.wait_for_function(f"expected => JSON.stringify(({SURFACE_Z})()) === JSON.stringify(expected)",
                           arg=expected, timeout=300_000)
    assert page.locator(".widget-html", has_text=f"Source #{picked}").count() >= 1
    assert len(expected) == 15 and page.evaluate(SURFACE_Z) != first
    title = page.locator(".js-plotly-plot .gtitle").first.text_content()
    assert f"Source #{picked}: the triangle of blind spots r0 and r1" in title  # the pair menu opens on (0, 1)
    assert page.locator(".js-plotly-plot").count() == 2  # the surface and the contour
    boxes = page.evaluate(CONTOUR_BOXES)  # the caption between the title and the plot; the corner names in the plot
    caption, = [a for a in boxes["annotations"] if "blindspots_nb" in a["text"]]
    corners = [a for a in boxes["annotations"] if a is not caption]
    assert len(corners) == 3 and boxes["title"]["bottom"] <= caption["top"] + 1
    assert caption["bottom"] <= min(boxes["plot"]["top"], *(a["top"] for a in corners)) + 1  # 1 pixel of rounding
    assert page.locator(".widget-html", has_text="Table 1 (blind spot vs target)").count() == 1  # the run's rows
    assert "Message serialization failed" not in page.inner_text("body")
    page.locator(".js-plotly-plot").first.scroll_into_view_if_needed()
    page.wait_for_timeout(1000)  # let the surface finish drawing
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot))


def test_the_voila_app_of_notebook_07_shows_a_picked_sources_triangle(run_dir, tmp_path):
    app = _prepared(run_dir, tmp_path)
    before = folder_listing(run_dir)
    with voila_server(app, tmp_path) as url, \
            browser_page("browse_run_failure.png") as page:
        page.goto(url, timeout=180_000)  # Voila answers once it has run the notebook
        _pick_a_source_and_see_its_triangle(page, run_dir, "browse_run_triangle.png")
    assert folder_listing(run_dir) == before


def test_notebook_07_in_jupyterlab_shows_a_picked_sources_triangle(run_dir, tmp_path):
    """On a busy machine (two processes spin beside it): the figures show their data (see
    plots.widgets.FigureWidget)."""
    app = _prepared(run_dir, tmp_path)
    before = folder_listing(run_dir)
    with cpu_hog(2), lab_server(tmp_path) as url, browser_page("browse_run_lab_failure.png") as page:
        run_all_cells(page, url, app.name)
        _pick_a_source_and_see_its_triangle(page, run_dir, "browse_run_lab.png")
    assert folder_listing(run_dir) == before


@pytest.fixture
def hostile_run(tmp_path):
    """A finished run of a factory model on a labelled folder whose file, class and model names carry HTML."""
    return make_hostile_run(tmp_path / "hostile")


def _names_are_text(page, run_dir: Path, screenshot: str):
    """Each source of the hostile run, picked in turn: its panels show the file's name as text (the source's
    and its targets'), the caption the model's spec, and no injected element or handler's flag is on the page."""
    from blindspots_nb.browser.runs import StoredRun

    run = StoredRun(run_dir)
    key, = run.models()
    sources = page.locator(".run-sources select")
    sources.wait_for(timeout=300_000)
    for index, row in enumerate(run.sorted_sources(key, "path_conf")):
        sources.select_option(index=index)
        shown = f"source #{row['source']} {Path(row['name']).parent}/"  # on the page, escaped or not
        page.wait_for_function("text => Array.from(document.querySelectorAll('.widget-html')).some("
                               "html => html.textContent.includes(text))", arg=shown, timeout=60_000)
        assert page.evaluate(INJECTED) == {"elements": 0, "flag": None}
        assert HOSTILE_FILE in row["name"] and page.locator(".widget-html", has_text=row["name"]).count() >= 1
    assert page.locator(".widget-html", has_text=f"{HOSTILE_MODEL}.py:build").count() >= 1  # the caption
    assert "Message serialization failed" not in page.inner_text("body")
    page.screenshot(path=str(SCREENSHOTS / screenshot))


def test_the_voila_app_of_notebook_07_shows_hostile_names_as_text(hostile_run, tmp_path):
    app = _prepared(hostile_run, tmp_path)
    with voila_server(app, tmp_path) as url, browser_page("browse_run_hostile_failure.png") as page:
        page.goto(url, timeout=180_000)
        _names_are_text(page, hostile_run, "browse_run_hostile.png")


def test_notebook_07_in_jupyterlab_shows_hostile_names_as_text(hostile_run, tmp_path):
    app = _prepared(hostile_run, tmp_path)
    with lab_server(tmp_path) as url, browser_page("browse_run_hostile_lab_failure.png") as page:
        run_all_cells(page, url, app.name)
        _names_are_text(page, hostile_run, "browse_run_hostile_lab.png")
