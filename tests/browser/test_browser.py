"""Widget chapters in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Each case opens a notebook (a temporary copy; see conftest.py), runs all cells, moves the first
slider one step to the right, and checks that the watched part of the figure changed and that the
browser console shows no errors. Screenshots go to tests/browser/screenshots/.

By default (and in `make test`) it drives a quick sample of explorers, SMOKE; with CQ_BROWSER=1
(`make browser`, several minutes) every chapter's. Needs /usr/bin/chromium and playwright
(.ci/install-browser.sh); skips without them, except under CI=true, where a missing browser fails the run.
Look at the screenshots after a change to a widget.
Try it on any notebook with:  CQ_BROWSER_NOTEBOOK=/path/to/nb.ipynb pytest tests/browser
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import NamedTuple

import pytest

from .conftest import CHROMIUM, book_dir, unavailable

INSTALL = "run .ci/install-browser.sh"
try:
    import playwright.sync_api  # noqa: F401
except ImportError:
    unavailable(f"playwright is not importable ({INSTALL})")
if not CHROMIUM.exists():
    unavailable(f"{CHROMIUM} is missing ({INSTALL})")
pytestmark = pytest.mark.browser

SCREENSHOTS = Path(__file__).parent / "screenshots"

# What changes when the slider moves: a CSS selector; the first match's text (or src, for an
# <img>) must differ after the move.
PLOTLY_TITLE = ".js-plotly-plot .gtitle"
MPL_IMAGE = ".jp-OutputArea-output img"  # the matplotlib fallback path (Colab)


class Case(NamedTuple):
    notebook: str  # relative to book/
    watch: str = PLOTLY_TITLE  # default expectation: the first plotly title changes
    known: str = ""  # a known fault, not yet fixed: the case is expected to fail for this reason


# Faults the test found in chapters other helpers are changing; remove the entry once fixed.
KNOWN = {}


CASES = [  # every chapter's explorer; the first slider moves (all redraw while dragged)
    Case(name, known=KNOWN.get(name, "")) for name in (
        "01_why_clamp.ipynb", "02_quantizing_activations.ipynb", "03_integrate_and_fire.ipynb",
        "04_cq_training.ipynb", "05_conversion.ipynb", "06_rasters_and_membranes.ipynb",
        "07_timesteps_and_accuracy.ipynb", "08_low_precision_weights.ipynb", "09_cifar10_vgg.ipynb",
        "10_energy.ipynb", "11_signed_neurons.ipynb",
    )
]
SMOKE = ("06_rasters_and_membranes.ipynb", "08_low_precision_weights.ipynb")  # a plotly raster and a bits slider
if os.environ.get("CQ_BROWSER_NOTEBOOK"):
    CASES = [Case(Path(os.environ["CQ_BROWSER_NOTEBOOK"]).name)]
elif not os.environ.get("CQ_BROWSER"):
    CASES = [case for case in CASES if case.notebook in SMOKE]

# Console errors that are not the chapter's fault: the news toast, and fetches to hosts other than
# the local server (there is no network in CI).
HARMLESS = re.compile(r"\bnews\b|Failed to load resource.*\[at https?://(?!127\.0\.0\.1[:/])", re.I)

RUN_ALL_TIMEOUT_MS = 180_000
PROMPTS = ".jp-CodeCell .jp-InputPrompt:not(.jp-Placeholder-prompt)"  # collapsed cells show a placeholder
# The execution indicator also reads "idle" for a moment before the kernel exists, so ask the
# kernel itself (window.jupyterapp: the server runs with expose_app_in_browser).
KERNEL_IDLE = """
    (() => { const k = window.jupyterapp?.shell.currentWidget?.sessionContext?.session?.kernel;
             return k?.connectionStatus === 'connected' && k.status === 'idle'
                 && !!document.querySelector(".jp-Notebook-ExecutionIndicator[data-status='idle']");
    })()"""
# Run All marks queued cells [*]; it is done when none is left, one has a number, the kernel idles.
RUN_ALL_DONE = """
    (() => { const p = [...document.querySelectorAll('%s')].map(e => e.textContent);
             return !p.some(t => t.includes('*')) && p.some(t => /[0-9]/.test(t)); })()
    && %s""" % (PROMPTS, KERNEL_IDLE)


# Layout faults a student saw: a legend entry plotly named itself ("trace 5": a trace without a name),
# and a figure wider than its output area (clipped on the right).
FIGURE_FAULTS = """
    (() => { const faults = [];
             for (const plot of document.querySelectorAll('.js-plotly-plot')) {
                 for (const t of plot.querySelectorAll('.legendtext'))
                     if (/^trace \\d+$/.test(t.textContent.trim())) faults.push('unnamed legend entry: ' + t.textContent);
                 const area = plot.closest('.jp-OutputArea-output'), svg = plot.querySelector('.main-svg');
                 if (area && svg && svg.getBoundingClientRect().right > area.getBoundingClientRect().right + 1)
                     faults.push('figure wider than its output area: ' + svg.getBoundingClientRect().width
                                 + ' px in ' + area.getBoundingClientRect().width + ' px');
             }
             return faults; })()"""


def _watched_value(page, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.tagName === 'IMG' ? e.src : e.textContent")


def _param(case: Case):
    missing = not (book_dir() / case.notebook).exists()
    reason = f"{case.notebook} is not in {book_dir()} yet"
    marks = [pytest.mark.skipif(missing, reason=reason)]
    if case.known:
        marks.append(pytest.mark.xfail(reason=case.known, strict=False))
    return pytest.param(case, id=case.notebook, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_slider_changes_figure(case, page, lab):
    shot = SCREENSHOTS / Path(case.notebook).stem
    SCREENSHOTS.mkdir(exist_ok=True)
    try:
        page.goto(lab.url(case.notebook))
        page.wait_for_function(KERNEL_IDLE, timeout=90_000)
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
        page.wait_for_function(RUN_ALL_DONE, timeout=RUN_ALL_TIMEOUT_MS)
        prompts = page.locator(PROMPTS).all_text_contents()
        not_run = [i for i, p in enumerate(prompts) if not re.search(r"\[\d+\]", p)]
        if not_run:
            errors = page.locator(".jp-OutputArea-output[data-mime-type*='stderr']")
            pytest.fail(
                f"code cells {not_run} did not run (an earlier cell failed?):\n"
                + "\n".join(errors.all_text_contents())[-3000:]
            )

        # JupyterLab 4 renders windowed: outputs far down are attached, not visible.
        handle = page.locator(".widget-slider .noUi-handle").first
        handle.wait_for(state="attached")
        handle.scroll_into_view_if_needed()
        watched = page.locator(case.watch).first
        watched.wait_for(state="attached", timeout=120_000)  # plotly renders slowly on a busy machine
        page.wait_for_function(
            "sel => { const e = document.querySelector(sel);"
            " return e && (e.tagName === 'IMG' ? e.src : e.textContent).trim() !== ''; }",
            arg=case.watch,
        )
        readout = page.locator(".widget-readout").first
        before, readout_before = _watched_value(page, case.watch), readout.text_content()
        page.screenshot(path=f"{shot}-before.png")

        handle.click()
        page.keyboard.press("ArrowRight")
        page.wait_for_function(
            """([sel, old]) => { const e = document.querySelector(sel);
                   return e && (e.tagName === 'IMG' ? e.src : e.textContent) !== old; }""",
            arg=[case.watch, before],
            timeout=30_000,
        )
        after = _watched_value(page, case.watch)
        assert readout.text_content() != readout_before, "the slider's readout did not move"
        watched.scroll_into_view_if_needed()
        page.screenshot(path=f"{shot}-after.png")
        figure = page.locator(".jp-OutputArea-output:has(.js-plotly-plot)").first
        if figure.count():
            figure.screenshot(path=f"{shot}-figure.png")  # the whole figure, whatever the viewport shows
        faults = page.evaluate(FIGURE_FAULTS)
        assert not faults, f"{case.notebook}: " + "; ".join(faults)
        print(f"{case.notebook}: slider {readout_before} -> {readout.text_content()}; "
              f"{case.watch} {before[:80]!r} -> {after[:80]!r}")  # fmt: skip
    except BaseException:  # pytest.fail too
        with contextlib.suppress(Exception):
            page.screenshot(path=f"{shot}-failure.png")
        raise

    errors = [e for e in page.console_errors if not HARMLESS.search(e)]
    print("ignored console errors:", [e for e in page.console_errors if e not in errors])
    assert not errors, "browser console errors:\n" + "\n".join(errors)
