"""Time of the viewer's chart data for a metric of ``--points`` points (default 1,000,000).

Fills one run through the public API with a series logged with steps and one without (drawn
over the point index), then times ``GET /api/runs/<id>/metric`` through Flask's test client,
with a fresh application each time so the cache of finished runs does not answer. The
baseline is what a viewer without server-side downsampling would at least pay: reading every
point of the metric with ``SQLiteStore.metric_points``. Figures are medians of ``--repeat``
reads, wall clock and CPU time (the machine may be busy); the temporary store is removed.

With ``--browser`` (Playwright and ``/usr/bin/chromium``), it also serves the store on
127.0.0.1 and times, in headless Chromium, navigation to the run page until the chart's canvas
is drawn, against the same page for a 1,000-point run (printed, not asserted).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import logbridge
from logbridge._store import SQLiteStore
from logbridge.testing import temporary_store
from logbridge.ui import create_app


def timed(work: Callable[[], Any], repeat: int) -> tuple[float, float, Any]:
    walls, cpus = [], []
    result = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = work()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def fill(points: int) -> str:
    run = logbridge.start_run(experiment="bench-ui", name="million")
    for i in range(points):
        value = math.sin(i / 20_000) + (i % 1000) * 1e-4
        run.log("stepped", value, step=i)
        run.log("indexed", value)
    run.complete()
    return run.id


def chart(store: Path, run_id: str, name: str) -> dict[str, Any]:
    app = create_app(store)
    with app.test_client() as client:
        response = client.get(f"/api/runs/{run_id}/metric", query_string={"name": name})
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_data()
    data: dict[str, Any] = json.loads(body)
    data["bytes"] = len(body)
    return data


def browser_times(store: Path, pages: dict[str, str], repeat: int) -> dict[str, float]:
    """Return the median seconds from navigation to the drawn chart, per metric in ``pages``.

    Each navigation gets a fresh server, so the cache of finished runs' charts never answers.
    """
    import logging
    import threading

    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    result = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        for name, run_id in pages.items():
            times = []
            for _ in range(repeat):
                server = make_server("127.0.0.1", 0, create_app(store), threaded=True)
                thread = threading.Thread(target=server.serve_forever, daemon=True)
                thread.start()
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                try:
                    started = time.perf_counter()
                    page.goto(f"http://127.0.0.1:{server.server_port}/#/run/{run_id}")
                    page.wait_for_selector(
                        f'.card[data-metric="{name}"][data-state="ready"] canvas', timeout=60_000
                    )
                    times.append(time.perf_counter() - started)
                finally:
                    page.context.close()
                    server.shutdown()
                    server.server_close()
            result[name] = statistics.median(times)
        browser.close()
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--browser", action="store_true", help="also time the page in Chromium")
    args = parser.parse_args(argv)
    with temporary_store() as store:
        started = time.perf_counter()
        run_id = fill(args.points)
        print(f"filled 2 metrics x {args.points:,} points in {time.perf_counter() - started:.1f} s")
        reader = SQLiteStore(store, create=False)
        for name in ("stepped", "indexed"):
            raw_wall, raw_cpu, raw = timed(lambda n=name: reader.metric_points(run_id, n), 1)
            assert len(raw) == args.points
            del raw
            wall, cpu, data = timed(lambda n=name: chart(store, run_id, n), args.repeat)
            assert data["chart"] == "line"
            assert data["drawable"] == args.points
            print(
                f"{name:>8} (x={data['x']}): chart data {wall * 1000:7.0f} ms wall "
                f"{cpu * 1000:7.0f} ms cpu, {len(data['xs']):,} points, "
                f"{data['bytes'] / 1024:.0f} KiB JSON | raw read of every point "
                f"{raw_wall * 1000:7.0f} ms wall {raw_cpu * 1000:7.0f} ms cpu | "
                f"ratio {wall / raw_wall:.2f}"
            )
        if args.browser:
            small = logbridge.start_run(experiment="bench-ui", name="small")
            for i in range(1000):
                small.log("small", math.sin(i / 20), step=i)
            small.complete()
            ids = {"stepped": run_id, "indexed": run_id, "small": small.id}
            times = {n: browser_times(store, {n: r}, args.repeat)[n] for n, r in ids.items()}
            for name in ("stepped", "indexed"):
                print(
                    f"{name:>8}: browser, navigation to drawn chart {times[name] * 1000:7.0f} ms | "
                    f"1,000-point chart {times['small'] * 1000:7.0f} ms | "
                    f"ratio {times[name] / times['small']:.2f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
