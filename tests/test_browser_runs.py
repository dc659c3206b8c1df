"""Notebook 07, the browser of a finished run, in a real browser: a small run made here, the
notebook prepared with its folder by papermill (parameters only, nothing run), served by Voila as
an app and by JupyterLab, opened in headless Chromium; picking a source shows its stored triangle
as a plotly surface. The folder is not touched. Screenshots go to ``results/browser/``."""

from __future__ import annotations

from pathlib import Path

import papermill
import pytest

from browser import REPO, SCREENSHOTS, lab_server, page as browser_page, run_all_cells, voila_server
from helpers import folder_listing

pytestmark = pytest.mark.slow  # a run, a Voila server and a real browser

NOTEBOOK = REPO / "notebooks" / "07_browse_run.ipynb"
# The z values of the 3-D surface on the page (null until plotly has drawn one).
SURFACE_Z = """() => { for (const plot of document.querySelectorAll('.js-plotly-plot')) {
    const mesh = (plot.data || []).find(trace => trace.type === 'mesh3d');
    if (mesh) return Array.from(mesh.z); } return null; }"""


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
    from blindspots_nb.explorer.runs import StoredRun

    run = StoredRun(run_dir)
    picked = run.sorted_sources("fonts/fonts_cnn", "path_conf")[2]["source"]  # the app's order: by path confidence
    expected = run.triangle("fonts/fonts_cnn", picked).grid.tolist()
    sources = page.locator(".run-sources select")
    sources.wait_for(timeout=300_000)
    page.wait_for_function(f"({SURFACE_Z})() !== null", timeout=60_000)  # the first source's triangle
    first = page.evaluate(SURFACE_Z)
    assert page.locator(".widget-html", has_text=f"Run {run_dir}").count() == 1

    sources.select_option(index=2)
    page.wait_for_function(f"expected => JSON.stringify(({SURFACE_Z})()) === JSON.stringify(expected)",
                           arg=expected, timeout=60_000)
    assert page.locator(".widget-html", has_text=f"Source #{picked}").count() >= 1
    assert len(expected) == 15 and page.evaluate(SURFACE_Z) != first
    title = page.locator(".js-plotly-plot .gtitle").first.text_content()
    assert f"Source #{picked}: stored triangle" in title
    assert page.locator(".js-plotly-plot").count() == 2  # the surface and the contour
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
    app = _prepared(run_dir, tmp_path)
    before = folder_listing(run_dir)
    with lab_server(tmp_path) as url, browser_page("browse_run_lab_failure.png") as page:
        run_all_cells(page, url, app.name)
        _pick_a_source_and_see_its_triangle(page, run_dir, "browse_run_lab.png")
    assert folder_listing(run_dir) == before
