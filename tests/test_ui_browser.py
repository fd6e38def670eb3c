"""The run viewer in a real browser: headless Chromium driven by Playwright.

The server runs in a thread on a free loopback port, reading a store filled through the public
API. Needs Debian's ``chromium`` (``/usr/bin/chromium``; ``.ci/run`` installs it) and the
``playwright`` package (the ``dev`` extra); without them these tests fail, unless
``LOGBRIDGE_SKIP_BROWSER=1`` is set, which skips them with that reason.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logbridge
from logbridge.ui import create_app
from test_ui import XSS, corrupt, fill_store

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("LOGBRIDGE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = Path(__file__).parent.parent / "docs" / "images" / "run-page.png"
"""Rewritten only with ``LOGBRIDGE_UPDATE_SCREENSHOT=1``: a test run leaves the work tree clean."""
TIMEOUT_MS = 15_000


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium; .ci/run does)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[dev]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _missing()
    if problem is not None:
        if os.environ.get("LOGBRIDGE_SKIP_BROWSER") == "1":
            pytest.skip(f"browser tests skipped (LOGBRIDGE_SKIP_BROWSER=1): {problem}")
        pytest.fail(f"{problem}; set LOGBRIDGE_SKIP_BROWSER=1 to skip the browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A store with the runs of `fill_store` and the viewer serving it on 127.0.0.1."""
    from werkzeug.serving import make_server

    folder = tmp_path_factory.mktemp("ui-browser")
    store = folder / "store"
    runs = fill_store(store, folder)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = make_server("127.0.0.1", 0, create_app(store), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {"url": f"http://127.0.0.1:{server.server_port}/", "store": store, "runs": runs}
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    tab.on("pageerror", lambda err: errors.append(str(err)))
    tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    tab.errors = errors
    yield tab
    context.close()
    assert errors == [], errors


def not_pwned(page: Any) -> None:
    """No markup from the record ran: the XSS payloads never set their flag."""
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate("document.querySelectorAll('script').length") == 2


def card(page: Any, name: str) -> Any:
    return page.locator(f'.card[data-metric="{name}"]')


def wait_ready(page: Any, name: str) -> Any:
    found = card(page, name)
    found.scroll_into_view_if_needed()
    page.wait_for_selector(f'.card[data-metric="{name}"][data-state="ready"]')
    return found


def test_runs_list_sorts_filters_and_shows_tags_as_text(site: dict[str, Any], page: Any) -> None:
    """The runs table lists every run with status and tags; filter and sort work."""
    page.goto(site["url"])
    page.wait_for_selector("#runs-table tbody tr")
    names = page.locator("#runs-table tbody tr td:nth-child(2) a").all_text_contents()
    assert {"baseline", "wider", "broken", "trial-0", "trial-1"} <= set(names)
    assert page.locator(".tag", has_text=f"note={XSS}").count() == 1
    page.fill("#run-filter", "wide")
    assert page.locator("#runs-table tbody tr").count() == 1
    page.fill("#run-filter", "")
    page.select_option("#status-filter", "Failed")
    assert page.locator("#runs-table tbody tr td:nth-child(2) a").all_text_contents() == ["broken"]
    page.select_option("#status-filter", "")
    page.get_by_role("columnheader", name="Name").click()
    names = page.locator("#runs-table tbody tr td:nth-child(2) a").all_text_contents()
    assert names == sorted(names)
    not_pwned(page)


def test_run_page_draws_a_chart_for_every_kind(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    """Scalars, lists and rows become charts, strings a table, images show; then a screenshot.

    The screenshot goes to docs/images only when LOGBRIDGE_UPDATE_SCREENSHOT=1 is set.
    """
    run = site["runs"]["baseline"]
    page.goto(site["url"] + f"#/run/{run.id}")
    page.wait_for_selector("h1 .badge")
    assert page.locator("h1 .badge").text_content() == "Completed"
    for name in ("loss", "val/loss", "accuracy", "lr", "pr"):
        found = wait_ready(page, name)
        assert found.locator("canvas").count() >= 1, name
        assert int(found.get_attribute("data-points")) > 10, name
    phase = wait_ready(page, "phase")
    assert phase.locator("td", has_text=XSS).count() == 1
    odd = wait_ready(page, "odd")
    assert "2 not drawn" in odd.locator(".note").text_content()
    curve = wait_ready(page, "curve")
    curve.locator("img").first.wait_for()
    page.wait_for_function(
        "() => document.querySelector('.card[data-metric=\"curve\"] img').naturalWidth === 40"
    )
    assert page.locator("table.files a", has_text="notes/readme.txt").count() == 1
    assert page.locator("table.files a", has_text=XSS.replace("/", "_")).count() == 1
    assert page.get_by_role("link", name="trial-1").count() == 1
    assert page.locator("table.kv td", has_text=XSS).count() == 1
    with page.expect_download() as download:
        page.locator("table.files a", has_text="notes/readme.txt").click()
    assert Path(download.value.path()).read_text() == "hello from a file\n"
    not_pwned(page)
    page.evaluate("window.scrollTo(0, 0)")
    for name in ("loss", "val/loss", "accuracy", "lr", "pr", "confusion"):
        wait_ready(page, name)
    page.evaluate("window.scrollTo(0, 0)")
    update = os.environ.get("LOGBRIDGE_UPDATE_SCREENSHOT") == "1"
    shot = SCREENSHOT if update else tmp_path / SCREENSHOT.name
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(
        path=str(shot), full_page=True, clip={"x": 0, "y": 0, "width": 1280, "height": 1400}
    )
    assert shot.read_bytes().startswith(b"\x89PNG")
    assert shot.stat().st_size > 10_000


def test_logs_filter_by_level_and_text(site: dict[str, Any], page: Any) -> None:
    """Level and text filters narrow the log; markup in a message shows as text."""
    run = site["runs"]["baseline"]
    page.goto(site["url"] + f"#/run/{run.id}")
    rows = page.locator("#logs tbody tr")
    page.wait_for_function("() => document.querySelectorAll('#logs tbody tr').length === 64")
    assert page.locator("#logs td.message", has_text=XSS).count() == 1
    page.fill("#log-search", "shard")
    page.wait_for_function("() => document.querySelectorAll('#logs tbody tr').length === 1")
    assert rows.first.locator("td.logger").text_content() == "data.loader"
    page.fill("#log-search", "")
    page.select_option("#log-level", "30")
    page.wait_for_function("() => document.querySelectorAll('#logs tbody tr').length === 2")
    page.fill("#log-logger", "train")
    page.wait_for_function("() => document.querySelectorAll('#logs tbody tr').length === 1")
    not_pwned(page)


def test_running_run_updates_without_reload(site: dict[str, Any], page: Any) -> None:
    """While a run is written, its page shows new points, log lines and the final status."""
    run = logbridge.start_run(experiment="live", name="live-run", store=site["store"])
    handler = logbridge.RunHandler(run=run)
    log = logging.getLogger("live")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        for step in range(3):
            run.log("loss", 1.0 / (step + 1), step=step)
        log.info("first line")
        run.flush()
        page.goto(site["url"] + f"#/run/{run.id}")
        wait_ready(page, "loss")
        assert page.locator("h1 .badge").text_content() == "Running"
        assert card(page, "loss").get_attribute("data-points") == "3"
        page.wait_for_selector("#logs td.message >> text=first line")
        for step in range(3, 12):
            run.log("loss", 1.0 / (step + 1), step=step)
        run.log("new/metric", 1.5, step=0)
        log.info("second line <b>not bold</b>")
        run.flush()
        page.wait_for_selector('.card[data-metric="loss"][data-points="12"]')
        page.wait_for_selector("#logs td.message >> text=second line <b>not bold</b>")
        wait_ready(page, "new/metric")
    finally:
        log.removeHandler(handler)
        handler.close()
        run.complete()
    page.wait_for_selector("h1 .badge >> text=Completed")
    not_pwned(page)


def test_compare_overlays_one_metric_of_several_runs(site: dict[str, Any], page: Any) -> None:
    """Select two runs in the table, compare: one chart with a series per run."""
    page.goto(site["url"])
    page.wait_for_selector("#runs-table tbody tr")
    for name in ("baseline", "wider"):
        page.locator("#runs-table tbody tr", has_text=name).first.locator(
            "input[type=checkbox]"
        ).check()
    page.click("#compare")
    page.wait_for_selector('#compare-chart[data-state="ready"]')
    assert page.locator("#compare-chart").get_attribute("data-series") == "2"
    assert page.locator("#compare-chart canvas").count() >= 1
    page.select_option("#compare-metric", "val/loss")
    page.wait_for_selector('#compare-chart[data-series="1"][data-state="ready"]')


def test_a_million_points_draw_downsampled(site: dict[str, Any], page: Any) -> None:
    """A 1,000,000-point series arrives as a few thousand points, is drawn, and zooms in."""
    run = logbridge.start_run(experiment="big", name="million", store=site["store"])
    for i in range(1_000_000):
        run.log("signal", math.sin(i / 20_000) + (1.0 if i == 765_432 else 0.0), step=i)
    run.complete()
    started = time.perf_counter()
    page.goto(site["url"] + f"#/run/{run.id}")
    found = wait_ready(page, "signal")
    elapsed = time.perf_counter() - started
    points = int(found.get_attribute("data-points"))
    assert 100 < points <= 4000
    assert found.locator("canvas").count() >= 1
    assert "1,000,000 points" in found.locator(".note").text_content()
    print(f"1,000,000-point chart ready in the browser in {elapsed:.2f} s ({points} drawn)")
    # Drag across a tenth of the chart: the server sends the detail of that range.
    box = found.locator(".u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.4, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function(
        """() => {
            const note = document.querySelector('.card[data-metric="signal"] .note').textContent;
            return !note.startsWith("1,000,000 points") && note.includes("points");
        }"""
    )


def test_a_corrupt_log_record_and_nan_values_do_not_break_the_page(
    site: dict[str, Any], page: Any
) -> None:
    """A run holding NaN and infinities and a log row whose JSON is damaged still opens whole."""
    run = logbridge.start_run(experiment="damaged", name="nan-and-corrupt", store=site["store"])
    for step, value in enumerate([1.0, math.nan, math.inf, -math.inf, 2.0]):
        run.log("odd", value, step=step)
    run.log("only-nan", math.nan)
    handler = logbridge.RunHandler(run=run)
    log = logging.getLogger("damaged")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("readable before")
        log.warning("this one gets damaged")
        log.info("readable after")
    finally:
        log.removeHandler(handler)
        handler.close()
    run.complete()
    corrupt(site["store"], run.id, "this one gets damaged")
    page.goto(site["url"] + f"#/run/{run.id}")
    odd = wait_ready(page, "odd")
    assert odd.get_attribute("data-points") == "2"
    assert "3 not drawn" in odd.locator(".note").text_content()
    wait_ready(page, "only-nan")
    page.wait_for_function("() => document.querySelectorAll('#logs tbody tr').length === 3")
    messages = page.locator("#logs td.message").all_text_contents()
    assert [m for m in messages if "readable" in m or "damaged" in m] == [
        "readable before",
        "this one gets damaged",
        "readable after",
    ]
    assert page.locator("h1 .badge").text_content() == "Completed"
