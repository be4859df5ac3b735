"""Fixtures for the real-browser test: a throwaway JupyterLab server, Debian's headless Chromium."""

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
from urllib.parse import quote

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


def in_ci() -> bool:
    """Whether this runs in CI (CI=true, as GitHub Actions and most services set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def unavailable(reason: str) -> None:
    """Skip the browser test for a missing piece, except in CI, where it fails the run: CI must never go
    green without the browser test having run."""
    if in_ci():
        pytest.fail(f"{reason}; CI={os.environ['CI']} needs the browser test", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


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
    """SIGTERM the server's process group (a clean shutdown stops its kernels too), then SIGKILL."""
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


class Lab:
    """A running JupyterLab: where to open a notebook, and how to stop the kernels it started."""

    def __init__(self, base: str, token: str):
        self.base, self.token = base, token

    def _api(self, path: str, method: str = "GET"):
        auth = {"Authorization": f"token {self.token}"}
        req = urllib.request.Request(f"{self.base}/api/{path}", method=method, headers=auth)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read() or b"null")

    def url(self, notebook: str) -> str:
        # A new workspace each time, or JupyterLab reopens the tabs of the previous test.
        workspace = f"test-{uuid.uuid4().hex[:8]}"
        return f"{self.base}/lab/workspaces/{workspace}/tree/{quote(notebook)}?token={self.token}"

    def stop_kernels(self) -> None:
        for session in self._api("sessions"):
            self._api(f"sessions/{session['id']}", method="DELETE")


@pytest.fixture(scope="session")
def jupyter_server(tmp_path_factory):
    """JupyterLab on 127.0.0.1 serving a temporary COPY of the book: no outputs reach the repo."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        unavailable("jupyterlab is not installed in this environment")
    tmp = tmp_path_factory.mktemp("jupyter")
    served = tmp / "book"
    skip = shutil.ignore_patterns(".ipynb_checkpoints", "_build")
    shutil.copytree(book_dir(), served, ignore=skip)
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
        yield Lab(base, token)
    finally:
        _stop(proc)


@pytest.fixture
def lab(jupyter_server):
    """The session's JupyterLab; the kernels a test started are stopped after it."""
    yield jupyter_server
    jupyter_server.stop_kernels()


@pytest.fixture
def page(tmp_path):
    """A page in a fresh headless Chromium (its own temporary profile), with its console collected
    in page.console_errors."""
    from playwright.sync_api import sync_playwright  # the test module skips when it is missing

    with sync_playwright() as pw:
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
