"""A real browser for the tests: localhost Jupyter servers and headless Chromium pages.

Importing this module skips the importing test module unless Debian's ``chromium`` and the
``playwright`` package (its own browser download is not used) are installed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                                             "(pip install playwright)")

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "results" / "browser"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]
# The pixels an <img> shows, as a PNG data URL (null until it has loaded).
PIXELS = """img => {
    if (!img.complete || !img.naturalWidth) return null;
    const canvas = document.createElement('canvas');
    canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
    canvas.getContext('2d').drawImage(img, 0, 0);
    return canvas.toDataURL(); }"""
CHANGED = f"([img, before]) => {{ const now = ({PIXELS})(img); return now !== null && now !== before; }}"


@contextlib.contextmanager
def cpu_hog(processes: int = 2, seconds: float = 900):
    """``processes`` busy Python processes beside the block (a busy machine), each ending by
    itself after ``seconds`` at the latest and killed when the block ends."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    hogs = [subprocess.Popen([sys.executable, "-c", spin]) for _ in range(processes)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, name: str, timeout: float) -> None:
    """Wait until ``process`` (the server ``name``) listens on ``port``; it serves every
    request from then on (a request to a page could start a kernel, so none is made)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
            return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{name} did not listen on port {port} within {timeout:.0f} s")


@contextlib.contextmanager
def server(name: str, command: list[str], root: Path, timeout: float = 120):
    """Run the server ``command`` (it gets ``--port``) on a free localhost port in ``root``
    (its log: ``root/server.log``), as on a fresh machine: no user settings, kernels or IPython
    profile; yields its URL and stops it (and its kernels) at the end."""
    port = free_port()
    fresh = {name: str(root / folder) for name, folder in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                                                           ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython"))}
    with open(root / "server.log", "w") as log:
        process = subprocess.Popen([*command, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, cwd=root,
                                   env={**os.environ, **fresh})
        try:
            wait_for_port(port, process, name, timeout)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()  # both shut their kernels down on SIGTERM
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextlib.contextmanager
def page(failure_screenshot: str):
    """A page of headless Chromium; if the test fails, a screenshot goes to ``SCREENSHOTS`` and
    the page's console beside it (``.console.txt``)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            console = []
            page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
            page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
            try:
                yield page
            except Exception:
                page.screenshot(path=str(SCREENSHOTS / failure_screenshot))
                (SCREENSHOTS / failure_screenshot).with_suffix(".console.txt").write_text("\n".join(console) + "\n")
                raise
        finally:
            browser.close()


@contextlib.contextmanager
def lab_server(root: Path):
    """JupyterLab serving the folder ``root`` (no token), on a free localhost port; yields its URL."""
    with server("jupyter lab", [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1",
                                "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root",
                                "--notebook-dir", str(root), f"--LabApp.workspaces_dir={root / 'workspaces'}"],
                root) as url:
        yield url


@contextlib.contextmanager
def voila_server(notebook: Path, root: Path):
    """Voila serving ``notebook`` as an app (no token, tracebacks shown), on a free localhost port."""
    with server("voila", [sys.executable, "-m", "voila", str(notebook), "--no-browser", "--Voila.ip=127.0.0.1",
                          "--VoilaConfiguration.show_tracebacks=True"], root) as url:
        yield url


def run_all_cells(page, url: str, notebook: str) -> None:
    """Open ``notebook`` in the JupyterLab at ``url``, accept its kernel and run all its cells."""
    page.goto(f"{url}/lab/tree/{notebook}", timeout=120_000)
    page.locator(".jp-Notebook").first.wait_for(timeout=120_000)
    accept = page.locator(".jp-Dialog .jp-mod-accept")
    try:  # "Select Kernel", when JupyterLab asks
        accept.wait_for(timeout=15_000)
        accept.click()
    except sync_api.TimeoutError:
        pass
    page.locator(".lm-MenuBar-item", has_text="Run").first.click()
    page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()
