"""Notebook 09, many runs in one view, in a real browser: three small runs made here, the notebook
prepared with their folder by papermill (parameters only), served by Voila as an app and opened in
headless Chromium; picking a number of the tables and a setting plots that number's mean (with its
std) against the setting, one trace per model, as ``collect`` reads them. The folder is not touched.
Screenshots go to ``results/browser/``."""

from __future__ import annotations

import math

import papermill
import pytest

from browser import REPO, SCREENSHOTS, page as browser_page, voila_server
from helpers import folder_listing

pytestmark = pytest.mark.slow  # runs, a Voila server and a real browser

NOTEBOOK = REPO / "notebooks" / "09_across_runs.ipynb"
# The title and traces of the plot of the across-runs view (null until plotly has drawn it).
PLOT = """() => { const plot = document.querySelector('.across-runs-plot .js-plotly-plot');
    if (!plot || !plot.data || !plot.layout.title) return null;
    return {title: plot.layout.title.text, traces: Array.from(plot.data).map(trace => ({name: trace.name,
        x: Array.from(trace.x), y: Array.from(trace.y), std: Array.from(trace.error_y.array)}))}; }"""


def _menu(page, label: str):
    return page.locator(".widget-dropdown", has_text=label).locator("select")


def test_the_voila_app_of_notebook_09_plots_a_picked_number_against_a_picked_setting(tmp_path):
    from blindspots_nb.results import collect, example_runs

    root = example_runs(tmp_path / "runs")
    rows = collect(root)
    app = tmp_path / "across.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(app), parameters={"runs_root": str(root)}, prepare_only=True)
    before = folder_listing(root)
    with voila_server(app, tmp_path) as url, browser_page("across_runs_failure.png") as page:
        page.goto(url, timeout=180_000)  # Voila answers once it has run the notebook
        page.wait_for_function(f"({PLOT})() !== null", timeout=300_000)  # the first plot
        _menu(page, "number").select_option(label="Avg Path Conf")
        _menu(page, "against").select_option(label="lst.step_size")
        page.wait_for_function(f"(({PLOT})() || {{title: ''}}).title.startsWith('Avg Path Conf against lst.step_size')",
                               timeout=300_000)
        plot = page.evaluate(PLOT)
        assert sorted(t["name"] for t in plot["traces"]) == ["fonts_cnn, fonts", "fonts_cnn_at, fonts"]
        for trace in plot["traces"]:
            model = rows[rows["display_name"] == trace["name"].split(",")[0]].sort_values("lst.step_size")
            assert trace["x"] == list(model["lst.step_size"])
            assert all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(trace["y"], model["path_conf_mean"]))
            assert all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in zip(trace["std"],
                                                                                      model["path_conf_std"]))
        assert page.locator(".widget-html", has_text="3 sources shared").count() >= 1
        page.locator(".across-runs-plot").scroll_into_view_if_needed()
        page.wait_for_timeout(1000)  # let the plot finish drawing
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / "across_runs_plot.png"))
    assert folder_listing(root) == before
