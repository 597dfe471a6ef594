"""End to end in a real browser: the dashboard served by ``streamlit run``, driven by headless
Chromium through Playwright. Two browser contexts start jobs at once (both must finish, one
after the other on the one device); the first then inspects its result and exports the audit
report. Screenshots go to $UNSIR_E2E_SHOTS (default: the test's temporary directory).

Skipped when the ``playwright`` package or a Chromium binary is missing (Debian:
``apt-get install -y chromium``; the browser is never downloaded by Playwright), except where
``UNSIR_REQUIRE_BROWSER=1`` (CI sets it): there a missing browser fails the run.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from .browser import LAUNCH_ARGS, chromium, serve

CHROMIUM = chromium()
if os.environ.get("UNSIR_REQUIRE_BROWSER") == "1":  # CI: a browser test that does not run is a failure
    import playwright.sync_api  # noqa: F401

    assert CHROMIUM is not None, "UNSIR_REQUIRE_BROWSER=1 but there is no Chromium (apt-get install -y chromium)"
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (apt-get install -y chromium)"),
    pytest.mark.browser,
    pytest.mark.slow,
]
JOB_TIMEOUT_MS = 600_000


@pytest.fixture
def server(tmp_path):
    with serve({"UNSIR_RUNS_DIR": str(tmp_path / "runs")}, tmp_path / "streamlit.log") as url:
        yield url


@pytest.fixture
def shots(tmp_path) -> Path:
    out = Path(os.environ.get("UNSIR_E2E_SHOTS", tmp_path / "shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


def open_page(browser, url: str, name: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    page.get_by_role("heading", name="Models").wait_for(timeout=60_000)
    page.get_by_text("Device in use").wait_for()
    page.get_by_role("link", name=name).click()
    page.get_by_role("heading", name=name).wait_for(timeout=60_000)
    return page


def test_pick_unlearn_inspect_export_with_two_sessions_at_once(server, shots):
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        first = open_page(browser, server, "Unlearn")
        second = open_page(browser, server, "Unlearn")
        expect(first.get_by_text("3: 3").first).to_be_visible()  # class 3 is preselected
        first.screenshot(path=shots / "1-unlearn.png", full_page=True)

        started = time.monotonic()
        first.get_by_role("button", name="Unlearn", exact=True).click()
        second.get_by_role("button", name="Unlearn", exact=True).click()
        expect(second.get_by_text("waiting: 1 job(s) ahead").or_(second.get_by_text("running"))).to_be_visible(
            timeout=30_000
        )
        second.screenshot(path=shots / "2-queued.png", full_page=True)
        for page in (first, second):
            expect(page.get_by_text("Finished. The comparison is on the Inspect page.")).to_be_visible(
                timeout=JOB_TIMEOUT_MS
            )
        both = time.monotonic() - started
        first.screenshot(path=shots / "3-finished.png", full_page=True)

        first.get_by_role("link", name="Inspect the result").click()
        first.get_by_role("heading", name="GradCAM").wait_for(timeout=60_000)
        expect(first.locator(".js-plotly-plot")).to_have_count(2, timeout=60_000)
        expect(first.get_by_text("Per-layer L2 distance to the original model")).to_be_visible()
        expect(first.get_by_text("What the models predict for forget-class test images")).to_be_visible()
        captions = first.get_by_text(re.compile(r"^pred \S+$"))  # under each GradCAM heatmap
        expect(captions).to_have_count(2 * 4 * 3, timeout=60_000)  # two groups x four images x three models
        first.screenshot(path=shots / "4-inspect.png", full_page=True)

        first.get_by_role("link", name="Runs").click()
        first.get_by_role("heading", name="Export").wait_for(timeout=60_000)
        with first.expect_download() as download:
            first.get_by_role("button", name="Audit report (HTML)").click()
        report = Path(download.value.path()).read_text()
        first.screenshot(path=shots / "5-runs.png", full_page=True)
        browser.close()

    assert report.startswith("<!doctype html>") and "Plotly" in report and "git_commit" in report
    print(f"two sessions' jobs finished {both:.1f} s after the first click")


def test_every_page_works_when_a_fresh_server_opens_it_first(tmp_path):
    """A deep link is the first request of a new server. app.py must still run and route it
    (the pages live in views/, which Streamlit does not run on its own): each page shows the
    sidebar (the links to the four pages, nothing else, and the settings) and its content."""
    from playwright.sync_api import expect, sync_playwright

    from ui.layout import PAGES

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        for info in PAGES:
            env = {"UNSIR_RUNS_DIR": str(tmp_path / "runs"), "UNSIR_CACHE_DIR": str(tmp_path / "cache")}
            with serve(env, tmp_path / f"{Path(info.path).stem}.log") as url:
                page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                page.goto(f"{url}/{Path(info.path).stem}")
                page.get_by_role("heading", name=info.title, exact=True).wait_for(timeout=60_000)
                sidebar = page.get_by_test_id("stSidebar")
                expect(sidebar.get_by_text("Device in use")).to_be_visible()
                expect(sidebar.get_by_text("Data set", exact=True)).to_be_visible()
                links = sidebar.get_by_role("link")
                expect(links).to_have_count(len(PAGES))
                for i, other in enumerate(PAGES):
                    expect(links.nth(i)).to_contain_text(other.title)
                expect(page.get_by_text("What am I looking at?")).to_be_visible()
                # the users are not the app's developers: no Deploy button (client.toolbarMode)
                expect(page.get_by_test_id("stAppDeployButton")).to_have_count(0)
                expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
                page.screenshot(path=tmp_path / f"deep-link-{Path(info.path).stem}.png", full_page=True)
                page.context.close()
        browser.close()


def test_inspect_shows_what_lies_inside_the_models(tmp_path, shots):
    """A run measured with every metric: the Inspect page draws the probe, CKA, feature maps and
    confusion matrices of original, unlearned and retrained models in a real browser."""
    from playwright.sync_api import expect, sync_playwright

    from .conftest import make_run_with_every_metric

    runs = tmp_path / "runs"
    make_run_with_every_metric(runs)
    with serve({"UNSIR_RUNS_DIR": str(runs)}, tmp_path / "streamlit.log") as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        page = open_page(browser, url, "Inspect")
        page.get_by_role("heading", name="Inside the model").wait_for(timeout=60_000)
        for title in ("still decodable", "Representation similarity", "Penultimate features", "Confusion matrices"):
            expect(page.get_by_text(title).first).to_be_visible(timeout=60_000)
        # one chart per charted metric: predictions, layer distance, confusion, probe, CKA on the
        # forget and on the retained classes, features; each drawn once
        expect(page.locator(".js-plotly-plot")).to_have_count(7, timeout=60_000)
        for i, title in enumerate(
            ("still decodable", "Representation similarity", "Penultimate features", "Confusion matrices")
        ):
            page.get_by_text(title).first.scroll_into_view_if_needed()
            page.screenshot(path=shots / f"6-inside-{i}.png")
        browser.close()
