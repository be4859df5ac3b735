"""CI never goes green without the browser test: under CI=true a missing browser fails the run
(.ci/run and tests/browser), elsewhere the browser test skips."""
import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def browser_conftest():
    spec = importlib.util.spec_from_file_location("browser_conftest", REPO / "tests" / "browser" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("1", pytest.fail.Exception),
                                         (None, pytest.skip.Exception), ("false", pytest.skip.Exception)])
def test_a_missing_browser_fails_under_ci_and_skips_elsewhere(monkeypatch, ci, outcome):
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="chromium is missing"):
        browser_conftest().unavailable("/usr/bin/chromium is missing")


@pytest.mark.parametrize("ci, code, makes", [("true", 1, [".venv/bin/cqlearn"]),
                                             ("", 0, [".venv/bin/cqlearn", "test"])])
def test_ci_run_fails_when_the_browser_cannot_be_installed_under_ci(tmp_path, ci, code, makes):
    """.ci/run in a copy with no .venv (so the browser install fails at once) and a `make` that only
    writes down its arguments."""
    shutil.copytree(REPO / ".ci", tmp_path / ".ci")
    bin_folder = tmp_path / "bin"
    bin_folder.mkdir()
    (bin_folder / "make").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "made"}\n')
    (bin_folder / "make").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_folder}{os.pathsep}{os.environ['PATH']}", "CI": ci}
    result = subprocess.run(["bash", str(tmp_path / ".ci" / "run")], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == code, result.stderr
    assert (tmp_path / "made").read_text().split("\n")[:-1] == makes
    assert ("needs the browser test" in result.stderr) == (code != 0)
