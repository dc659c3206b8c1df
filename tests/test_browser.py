"""The explorer in a real browser: JupyterLab on localhost, headless Chromium.

Opens ``notebooks/01_explore_lst.ipynb``, runs all cells, clicks the explorer's Step
button and checks that the confidence plot gained points, then Run and Pause; saves
a screenshot (after Step) to ``results/browser/``. Needs Debian's ``chromium`` and the ``playwright`` package (its
own browser download is not used).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                             "(pip install playwright)")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = "01_explore_lst.ipynb"
SCREENSHOTS = REPO / "results" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# Points of the source-class curve in every plotly plot on the page.
CURVE_POINTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot'))
    .map(plot => (plot.data && plot.data[0] && plot.data[0].x) ? plot.data[0].x.length : 0)"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_server(url: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=5):
                return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"jupyter lab did not answer at {url} within {timeout:.0f} s")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server on a free localhost port, serving a copy of the notebook."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(REPO / "notebooks" / NOTEBOOK, root / NOTEBOOK)
    port = _free_port()
    log = open(root / "jupyter.log", "w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
         "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", "--notebook-dir", str(root),
         f"--LabApp.workspaces_dir={root / 'workspaces'}"],
        stdout=log, stderr=subprocess.STDOUT, cwd=root)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_server(url, process, timeout=120)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_explorer_steps_in_jupyterlab(lab):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(f"{lab}/lab/tree/{NOTEBOOK}", timeout=120_000)
            page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
            accept = page.locator(".jp-Dialog .jp-mod-accept")
            try:  # "Select Kernel", when JupyterLab asks
                accept.wait_for(timeout=15_000)
                accept.click()
            except sync_api.TimeoutError:
                pass

            page.locator(".lm-MenuBar-item", has_text="Run").first.click()
            page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

            step = page.locator(".widget-button", has_text="Step")
            step.wait_for(timeout=300_000)
            # the notebook's last cell prints where it wrote the figure: all cells have run
            page.locator(".jp-OutputArea-output", has_text="confidence.html").first.wait_for(timeout=300_000)
            status = page.locator(".widget-html", has_text="RMSE to target").first
            status.scroll_into_view_if_needed()
            page.wait_for_function(f"() => Math.max(0, ...({CURVE_POINTS})()) > 1", timeout=60_000)
            before = max(page.evaluate(CURVE_POINTS))
            iteration_before = status.inner_text()

            step.click()
            page.wait_for_function(f"() => Math.max(0, ...({CURVE_POINTS})()) > {before}", timeout=120_000)
            after = max(page.evaluate(CURVE_POINTS))
            news = page.locator(".Toastify__toast button", has_text="No")  # "Jupyter news?" toast
            if news.count():
                news.first.click()
            page.wait_for_timeout(1000)  # let the images and the plot finish drawing
            page.screenshot(path=str(SCREENSHOTS / "explorer_after_step.png"))

            assert after == before + 10  # one click: 'iterations per click' = 10 more points
            assert "iteration 10" in iteration_before
            assert "iteration 20" in status.inner_text()

            # Run steps in a background thread and redraws as it goes; Pause stops it
            page.locator(".widget-button", has_text="Run").click()
            page.wait_for_function(f"() => Math.max(0, ...({CURVE_POINTS})()) > {after + 10}", timeout=120_000)
            page.locator(".widget-button", has_text="Pause").click()
            page.wait_for_function("status => !status.innerText.includes('running')", arg=status.element_handle(),
                                   timeout=60_000)
            paused = max(page.evaluate(CURVE_POINTS))
            page.wait_for_timeout(3000)
            assert max(page.evaluate(CURVE_POINTS)) == paused < 401
            assert f"iteration {paused - 1}" in status.inner_text()
        except Exception:
            page.screenshot(path=str(SCREENSHOTS / "explorer_failure.png"))
            raise
        finally:
            browser.close()
