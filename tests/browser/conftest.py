"""Fixtures for the real-browser test: a throwaway JupyterLab server and Debian's headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "book"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives JupyterLab in headless Chromium (slow)")


def book_dir() -> Path:
    """The folder the cases are relative to: book/, or the folder of $CQ_BROWSER_NOTEBOOK."""
    one = os.environ.get("CQ_BROWSER_NOTEBOOK")
    return Path(one).resolve().parent if one else BOOK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (a clean shutdown also stops its kernels), then SIGKILL."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            pass


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory):
    """JupyterLab on 127.0.0.1, serving a temporary COPY of the book, so no outputs reach the repo.

    Yields (base_url, token, served_dir)."""
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed in this environment")
    tmp = tmp_path_factory.mktemp("jupyter")
    served = tmp / "book"
    shutil.copytree(book_dir(), served, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_build"))
    config = tmp / "config"
    # Quiet first start: no "receive Jupyter news?" toast.
    settings = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))

    port, token = _free_port(), uuid.uuid4().hex
    env = dict(
        os.environ,
        CQ_QUICK="1",
        JUPYTER_CONFIG_DIR=str(config),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_PLATFORM_DIRS="1",
        IPYTHONDIR=str(tmp / "ipython"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    )
    log_path = tmp / "server.log"
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--no-browser",
        "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None",
        # window.jupyterapp: lets the test ask the notebook's kernel whether it is really idle.
        "--LabApp.expose_app_in_browser=True",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # containers and CI often run as root
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=served, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not answer in 90 s:\n{log_path.read_text()}")
                time.sleep(0.3)
        yield base, token, served
    finally:
        _stop(proc)


@pytest.fixture
def page(tmp_path):
    """A page in a fresh headless Chromium (its own temporary profile), with its console collected
    in page.console_errors."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (run .ci/install-browser.sh)")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not importable (run .ci/install-browser.sh)"
    )
    with sync_api.sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(60_000)
            page.console_errors = []
            page.on(
                "console",
                lambda m: m.type == "error"
                and page.console_errors.append(f"{m.text}  [at {m.location.get('url') or '?'}]"),
            )
            page.on("pageerror", lambda e: page.console_errors.append(f"uncaught: {e}"))
            yield page
        finally:
            context.close()
