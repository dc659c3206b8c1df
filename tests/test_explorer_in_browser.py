"""The explorer in a real browser: JupyterLab and the Voila app on localhost, headless Chromium.

JupyterLab: opens ``notebooks/01_explore_lst.ipynb``, runs all cells, clicks the
explorer's Step button and checks that the confidence plot gained points, then Run
and Pause. Voila: serves ``notebooks/app_explorer.ipynb`` as the app, checks that it
opens at iteration 0 with nothing but the widgets, steps, and lays the saliency map
over the current point. Screenshots go to ``results/browser/``. Needs Debian's
``chromium`` and the ``playwright`` package (its own browser download is not used).
"""

from __future__ import annotations

import re
import shutil

import pytest

from browser import (CHANGED, PIXELS, REPO, SCREENSHOTS, cpu_hog, lab_server, page as browser_page, run_all_cells,
                     voila_server)

pytestmark = pytest.mark.slow  # a JupyterLab or Voila server and a real browser

NOTEBOOK = "01_explore_lst.ipynb"
APP = REPO / "notebooks" / "app_explorer.ipynb"
# Points of the source-class curve in every plot of the confidence curves on the page (not the triangle's).
CURVE_POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .filter(plot => plot.layout && plot.layout.title && String(plot.layout.title.text).startsWith('Confidence along'))
    .map(plot => (plot.data && plot.data[0] && plot.data[0].x) ? plot.data[0].x.length : 0)"""
MORE_CURVE_POINTS = f"least => Math.max(0, ...({CURVE_POINTS})()) > least"  # a wait_for_function body
# The iteration the status line reports (as text), once no run is going on and the confidence curves
# show it: their layout's meta names it and the source-class curve has its points 0..iteration;
# null until then. What the kernel did and what the page drew, with no guess at how long either takes.
CURVE_SHOWS_STATUS = """() => {
    const status = Array.from(document.querySelectorAll('.widget-html'))
        .find(element => element.innerText.includes('RMSE to target'));
    const match = status && /iteration (\\d+) /.exec(status.innerText);
    if (!match || status.innerText.includes('running')) return null;
    const iteration = Number(match[1]);
    const drawn = Array.from(document.querySelectorAll('.js-plotly-plot')).some(plot =>
        plot.layout && plot.layout.meta && plot.layout.meta.iteration === iteration && plot.layout.title &&
        String(plot.layout.title.text).startsWith('Confidence along') && plot.data[0].x.length === iteration + 1);
    return drawn ? String(iteration) : null; }"""
SETTLED = 300_000  # ms: the outer bound of a wait on the kernel and the page, generous for a busy machine


def settled_iteration(page) -> int:
    """The iteration the status line reports, once the confidence figure shows it too."""
    return int(page.wait_for_function(CURVE_SHOWS_STATUS, timeout=SETTLED).json_value())


def _curve_points(page) -> int:
    return max(page.evaluate(CURVE_POINTS), default=0)


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free localhost port, serving a copy of the notebook."""
    shutil.copy(REPO / "notebooks" / NOTEBOOK, tmp_path / NOTEBOOK)
    with lab_server(tmp_path) as url:
        yield url


@pytest.fixture
def voila(tmp_path):
    """The app as ``voila notebooks/app_explorer.ipynb`` serves it (no token), on a free localhost port."""
    with voila_server(APP, tmp_path) as url:
        yield url


def test_explorer_steps_in_jupyterlab(lab):
    """On a busy machine (two processes spin beside it), where anywidget's front end once dropped
    the data of figures whose module loaded slowly: every figure shows the state the kernel reports."""
    with cpu_hog(2), browser_page("explorer_failure.png") as page:
        run_all_cells(page, lab, NOTEBOOK)

        step = page.locator(".widget-button", has_text="Step")
        step.wait_for(timeout=300_000)
        # the notebook's last cell prints where it wrote the figure: all cells have run
        page.locator(".jp-OutputArea-output", has_text="confidence.html").first.wait_for(timeout=300_000)
        status = page.locator(".widget-html", has_text="RMSE to target").first
        status.scroll_into_view_if_needed()
        assert settled_iteration(page) == 10  # the notebook's reset().step(10), drawn
        before = _curve_points(page)

        step.click()
        page.wait_for_function("status => status.innerText.includes('iteration 20 ')", arg=status.element_handle(),
                               timeout=SETTLED)
        assert settled_iteration(page) == 20
        after = _curve_points(page)
        news = page.locator(".Toastify__toast button", has_text="No")  # "Jupyter news?" toast
        if news.count():
            news.first.click()
        page.wait_for_timeout(1000)  # let the images and the plot finish drawing
        page.screenshot(path=str(SCREENSHOTS / "explorer_after_step.png"))

        assert (before, after) == (11, 21)  # one click: 'iterations per click' = 10 more points

        # Run steps in a background thread and redraws as it goes; Pause stops it, and the
        # iteration where it stopped is drawn
        page.locator(".widget-button", has_text="Run").click()
        page.wait_for_function("status => { const m = /iteration (\\d+) /.exec(status.innerText); "
                               "return m !== null && Number(m[1]) >= 30; }", arg=status.element_handle(),
                               timeout=SETTLED)
        page.locator(".widget-button", has_text="Pause").click()
        paused = settled_iteration(page)
        assert 30 <= paused <= 400 and _curve_points(page) == paused + 1


def test_the_voila_app_opens_clean_steps_and_shows_the_saliency(voila):
    """On a busy machine: two processes spin beside the server, the kernel and the browser,
    and every update still reaches the page."""
    with cpu_hog(2), browser_page("app_failure.png") as page:
        page.goto(voila, timeout=SETTLED)  # Voila answers once it has run the notebook
        step = page.locator(".widget-button", has_text="Step")
        step.wait_for(timeout=SETTLED)
        status = page.locator(".widget-html", has_text="RMSE to target").first
        status.wait_for(timeout=SETTLED)
        assert settled_iteration(page) == 0
        # a fresh explorer and nothing else: no code, no printed text, no message of a scripted export
        assert _curve_points(page) == 1
        text = page.inner_text("body")
        assert "Exported" not in text and "model_name" not in text and "LSTExplorer" not in text
        assert page.locator(".jp-OutputArea-output[data-mime-type^='application/vnd.jupyter.std']").count() == 0

        current = page.locator("img.lst-current").element_handle()
        page.wait_for_function(f"img => ({PIXELS})(img) !== null", arg=current, timeout=SETTLED)
        start = page.evaluate(PIXELS, current)
        label = page.locator(".widget-html", has_text=re.compile(r"^(current|saliency), iteration"))
        step.click()
        page.wait_for_function("status => status.innerText.includes('iteration 10 ')", arg=status.element_handle(),
                               timeout=SETTLED)
        assert settled_iteration(page) == 10 and _curve_points(page) == 11  # 'iterations per click' = 10 more
        # an <img> shows its new picture a little after it gets it: wait for the pixels to change
        page.wait_for_function(CHANGED, arg=[current, start], timeout=SETTLED)
        plain = page.evaluate(PIXELS, current)
        assert label.inner_text().startswith("current, iteration 10")

        toggle = page.locator(".widget-toggle-button", has_text="saliency")
        toggle.click()
        page.wait_for_function("label => label.innerText.startsWith('saliency, iteration 10')",
                               arg=label.element_handle(), timeout=SETTLED)
        page.wait_for_function(CHANGED, arg=[current, plain], timeout=SETTLED)
        page.wait_for_timeout(500)  # let the plot finish drawing
        page.screenshot(path=str(SCREENSHOTS / "app_saliency.png"))

        toggle.click()  # off again: the current point as it is
        page.wait_for_function(f"([img, plain]) => ({PIXELS})(img) === plain", arg=[current, plain], timeout=SETTLED)


# The z values of the live triangle's 3-D surface (a mesh3d plot), null until it is drawn.
SURFACE_Z = """() => { const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(plot => plot.data && plot.data[0] && plot.data[0].type === 'mesh3d');
    return plot ? Array.from(plot.data[0].z) : null; }"""
# Whether the surface, the contour and the star all show iteration 10.
TRIANGLE_AT_ITERATION_10 = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).filter(plot =>
    plot.layout && plot.layout.title && /iteration 10( |<|$)/.test(plot.layout.title.text)).length === 3"""
# The page pixel of the centre of the triangle's contour (from the plot's axes), after scrolling to it.
CONTOUR_CENTRE = """() => { const plot = Array.from(document.querySelectorAll('.js-plotly-plot'))
    .find(plot => plot.data && plot.data[0] && plot.data[0].type === 'contour');
    plot.scrollIntoView({block: 'center'});
    const corners = plot.data[2], xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
    const x = (corners.x[0] + corners.x[1] + corners.x[2]) / 3, y = (corners.y[0] + corners.y[1] + corners.y[2]) / 3;
    const box = plot.getBoundingClientRect();
    return [box.left + xa._offset + xa.l2p(x), box.top + ya._offset + ya.l2p(y)]; }"""


def test_the_voila_app_draws_the_live_triangle_and_shows_a_clicked_point(voila):
    with browser_page("app_triangle_failure.png") as page:
        page.goto(voila, timeout=SETTLED)
        step = page.locator(".widget-button", has_text="Step")
        step.wait_for(timeout=SETTLED)
        page.wait_for_function(f"() => {{ const z = ({SURFACE_Z})(); return z !== null && z.length === 66; }}",
                               timeout=SETTLED)
        before = page.evaluate(SURFACE_Z)
        assert all(0 <= z <= 1 for z in before)

        step.click()  # the triangle follows the step: new z values on the surface
        page.wait_for_function(f"before => {{ const z = ({SURFACE_Z})(); return z !== null && z.length === 66 && "
                               "z.some((value, i) => value !== before[i]); }", arg=before, timeout=SETTLED)
        stats = page.locator(".lst-triangle-stats")
        page.wait_for_function("stats => stats.innerText.includes('iteration 10')", arg=stats.element_handle(),
                               timeout=SETTLED)

        page.wait_for_function(TRIANGLE_AT_ITERATION_10, timeout=SETTLED)  # all drawn anew, the contour's axes too
        page.wait_for_timeout(500)
        x, y = page.evaluate(CONTOUR_CENTRE)  # a real click in the middle of the contour
        page.mouse.move(x, y)
        page.mouse.click(x, y)
        label = page.locator(".lst-point-label")
        page.wait_for_function("label => label.innerText.startsWith('point a =')", arg=label.element_handle(),
                               timeout=SETTLED)
        point = page.locator("img.lst-point").element_handle()
        page.wait_for_function(f"img => ({PIXELS})(img) !== null", arg=point, timeout=SETTLED)
        text = label.inner_text()
        weights = re.search(r"a = (\d\.\d+), b = (\d\.\d+)", text)
        assert weights and 0.2 < float(weights.group(1)) < 0.45 and 0.2 < float(weights.group(2)) < 0.45
        assert re.search(r"iteration 10\n.+: \d\.\d{4}\nmodel's class: .+ \(\d\.\d{3}\)", text), text
        page.wait_for_timeout(500)
        page.screenshot(path=str(SCREENSHOTS / "app_triangle.png"), full_page=True)
