"""The run viewer without a browser: JSON API, downsampling, security, notebook HTML, CLI.

The browser tests (test_ui_browser.py) use `fill_store` from here to record the same runs.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logbridge
from logbridge import cli
from logbridge._store import SQLiteStore
from logbridge.ui import _data, _notebook, create_app, is_loopback, serve
from logbridge.ui._downsample import lttb

XSS = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'


def png(width: int = 4, height: int = 3) -> bytes:
    """Return a small valid RGB PNG (a gradient), made without any imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in (x * 6 % 256, y * 8 % 256, 200))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def fill_store(store: Path, tmp: Path) -> dict[str, logbridge.Run]:
    """Record a few runs of every kind through the public API; return them by role."""
    image = tmp / "curve.png"
    image.write_bytes(png(40, 30))
    notes = tmp / "notes.txt"
    notes.write_text("hello from a file\n")
    with logbridge.start_run(experiment="mnist", name="baseline", store=store) as run:
        run.tag("model", "cnn")
        run.tag("note", XSS)
        run.add_properties({"seed": "42"})
        handler = logbridge.RunHandler(run=run)
        log = logging.getLogger("train")
        log.setLevel(logging.DEBUG)
        for logger in (log, logging.getLogger("data")):
            logger.addHandler(handler)
        try:
            for epoch in range(60):
                loss = 2.0 * math.exp(-epoch / 15) + 0.05 * math.sin(epoch)
                run.log("loss", loss, step=epoch)
                run.log("val/loss", loss * 1.1 + 0.02, step=epoch)
                run.log("accuracy", 1 - loss / 2.2, step=epoch)
                log.debug("batch stats for epoch %d", epoch)
            log.info("training done")
            log.warning("learning rate %s looks high", 0.1)
            logging.getLogger("data.loader").error("could not read shard 3")
            log.info(XSS)
        finally:
            for logger in (log, logging.getLogger("data")):
                logger.removeHandler(handler)
            handler.close()
        _log_other_kinds(run, image, notes)
        for i in range(2):
            with run.child_run(f"trial-{i}") as child:
                for step in range(20):
                    child.log("loss", 1.0 / (step + 1 + i), step=step)
    baseline = run
    with logbridge.start_run(experiment="mnist", name="wider", store=store) as run:
        run.tag("model", "wide-cnn")
        for epoch in range(60):
            run.log("loss", 1.8 * math.exp(-epoch / 10) + 0.1, step=epoch)
    wider = run
    run = logbridge.start_run(experiment="other", name="broken", store=store)
    run.log("loss", 1.0)
    try:
        _ = 1 / 0
    except ZeroDivisionError as err:
        run.fail(err)
    return {"baseline": baseline, "wider": wider, "broken": run}


def _log_other_kinds(run: logbridge.Run, image: Path, notes: Path) -> None:
    """NaN and inf, strings, a list, rows, a table, an image and files."""
    run.log("odd", 1.0)
    run.log("odd", math.nan)
    run.log("odd", math.inf)
    run.log("odd", 2.0)
    run.log("phase", "warmup")
    run.log("phase", XSS)
    run.log_list("lr", [0.1 * 0.9**i for i in range(30)])
    for threshold in range(11):
        t = threshold / 10
        run.log_row("pr", recall=1 - t**2, precision=0.5 + t / 2, threshold=t)
    run.log_table("confusion", {"class": ["cat", "dog"], "cat": [40, 3], "dog": [5, 52]})
    run.log_image("curve", path=str(image))
    run.upload_file("notes/readme.txt", str(notes))
    run.upload_file(XSS.replace("/", "_"), str(notes))


def corrupt(store: Path, run_id: str, message: str) -> None:
    """Overwrite the stored JSON of a run's log record holding ``message`` with garbage."""
    with sqlite3.connect(store / "store.db") as conn:
        changed = conn.execute(
            "UPDATE logs SET record = ? WHERE run_id = ? AND message = ?",
            ('{"time": 1.5, "message": "cut sh', run_id, message),
        ).rowcount
    assert changed == 1


@pytest.fixture
def runs(store: Path, tmp_path: Path) -> dict[str, logbridge.Run]:
    return fill_store(store, tmp_path)


@pytest.fixture
def client(store: Path, runs: dict[str, logbridge.Run]) -> Iterator[Any]:
    app = create_app(store)
    app.testing = True
    with app.test_client() as test_client:
        yield test_client


def get(client: Any, url: str, **kwargs: Any) -> Any:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    return json.loads(response.get_data(as_text=True))


# -- downsampling -------------------------------------------------------------------------------


def test_lttb_keeps_ends_peaks_and_order() -> None:
    """LTTB keeps the first and last points and a lone spike, in ascending x."""
    points = [(float(i), 0.0) for i in range(1000)]
    points[500] = (500.0, 10.0)
    kept = lttb(points, 50)
    assert len(kept) == 50
    assert kept[0] == (0.0, 0.0)
    assert kept[-1] == (999.0, 0.0)
    assert (500.0, 10.0) in kept
    assert [p[0] for p in kept] == sorted(p[0] for p in kept)


def test_lttb_returns_short_input_whole() -> None:
    """Fewer points than asked for, or a threshold under 3: everything is kept."""
    points = [(0.0, 1.0), (1.0, 2.0), (2.0, 0.0)]
    assert lttb(points, 10) == points
    assert lttb(points * 5, 2) == points * 5
    assert lttb([], 10) == []


def test_store_series_buckets_a_long_series_keeping_its_extremes(store: Path) -> None:
    """metric_series with buckets returns each bucket's min and max, sorted, extremes kept."""
    run = logbridge.start_run(experiment="big")
    for i in range(20_000):
        run.log("signal", math.sin(i / 300), step=i)
    run.log("signal", 5.0, step=12_345)
    run.log("signal", math.nan, step=20_001)
    run.complete()
    reader = SQLiteStore(store, create=False)
    series = reader.metric_series(run.id, "signal", buckets=500)
    assert series is not None
    assert series.x == "step"
    assert series.bucketed
    assert series.count == 20_002
    assert series.drawable == 20_001
    assert len(series.points) <= 1000
    assert (12_345, 5.0) in series.points
    assert min(p[1] for p in series.points) == pytest.approx(-1.0, abs=1e-4)
    assert [p[0] for p in series.points] == sorted(p[0] for p in series.points)
    ranged = reader.metric_series(run.id, "signal", lo=100, hi=199, buckets=500)
    assert ranged is not None
    assert not ranged.bucketed
    assert [p[0] for p in ranged.points] == list(range(100, 200))


def test_store_series_without_steps_uses_the_index(store: Path) -> None:
    """A series logged without steps is drawn over its position; NaN and inf are skipped."""
    run = logbridge.start_run(experiment="idx")
    for v in (3.0, math.nan, 1.0, math.inf, 2.0):
        run.log("v", v)
    run.complete()
    series = SQLiteStore(store, create=False).metric_series(run.id, "v")
    assert series is not None
    assert series.x == "index"
    assert series.points == [(0, 3.0), (2, 1.0), (4, 2.0)]
    assert series.drawable == 3
    assert SQLiteStore(store, create=False).metric_series(run.id, "nope") is None


def test_store_series_buckets_by_position_exactly(store: Path) -> None:
    """Without steps a long series is bucketed over its position, interleaved with others.

    Every point returned sits at its true position, the spike survives, and a zoomed range
    comes back whole and in place.
    """
    run = logbridge.start_run(experiment="big")
    for i in range(30_000):
        run.log("signal", math.sin(i / 500))
        if i % 3 == 0:
            run.log("other", float(i))
        if i == 17_777:
            run.log("signal", 9.0)
    run.log("signal", math.nan)
    run.complete()
    expected = [math.sin(i / 500) for i in range(30_000)]
    expected.insert(17_778, 9.0)
    reader = SQLiteStore(store, create=False)
    series = reader.metric_series(run.id, "signal", buckets=400)
    assert series is not None
    assert (series.x, series.bucketed, series.count, series.drawable) == (
        "index",
        True,
        30_002,
        30_001,
    )
    assert series.x_range == (0, 30_001)
    assert len(series.points) <= 800
    assert all(expected[int(x)] == v for x, v in series.points)
    assert (17_778, 9.0) in series.points
    assert [p[0] for p in series.points] == sorted({p[0] for p in series.points})
    zoomed = reader.metric_series(run.id, "signal", lo=100.5, hi=300, buckets=400)
    assert zoomed is not None
    assert not zoomed.bucketed
    assert zoomed.points == [(i, expected[i]) for i in range(101, 301)]


def test_store_series_auto_step_needs_a_step_on_every_drawable_point(store: Path) -> None:
    """A NaN logged without a step does not turn a stepped series into an index series."""
    run = logbridge.start_run(experiment="mixed")
    run.log("v", 1.0, step=10)
    run.log("v", math.nan)
    run.log("v", 2.0, step=20)
    run.log("w", 1.0, step=10)
    run.log("w", 2.0)
    run.complete()
    reader = SQLiteStore(store, create=False)
    v = reader.metric_series(run.id, "v")
    w = reader.metric_series(run.id, "w")
    assert v is not None
    assert w is not None
    assert (v.x, v.points, v.x_range) == ("step", [(10, 1.0), (20, 2.0)], (10, 20))
    assert (w.x, w.points, w.x_range) == ("index", [(0, 1.0), (1, 2.0)], (0, 1))
    stepped = reader.metric_series(run.id, "w", x="step")
    assert stepped is not None
    assert (stepped.points, stepped.drawable) == ([(10, 1.0)], 1)


def test_latest_scalars_of_hundreds_of_runs_in_one_read(store: Path) -> None:
    """latest_scalars: the last value of each scalar of every run asked for, in a few queries."""
    ids = []
    for i in range(300):
        run = logbridge.start_run(experiment="many", name=f"r{i}")
        run.log("loss", 1.0)
        run.log("loss", float(i))
        run.log("note", "text")
        if i % 2:
            run.log("acc", i / 1000)
        run.log_list("curve", [1, 2])
        run.complete()
        ids.append(run.id)
    reader = SQLiteStore(store, create=False)
    statements: list[str] = []
    real_reader = reader._reader

    def counting_reader() -> Any:
        context = real_reader()
        conn = context.__enter__()
        conn.set_trace_callback(statements.append)
        return _Entered(context, conn)

    reader._reader = counting_reader  # type: ignore[method-assign]
    latest = reader.latest_scalars([*ids, "no-such-run"])
    assert len([s for s in statements if "FROM metrics m" in s]) == 1
    assert latest["no-such-run"] == {}
    assert latest[ids[0]] == {"loss": 0.0, "note": "text"}
    assert latest[ids[7]] == {"loss": 7.0, "note": "text", "acc": 0.007}
    assert list(latest[ids[7]]) == ["loss", "note", "acc"]
    assert len(latest) == 301


class _Entered:
    def __init__(self, context: Any, conn: sqlite3.Connection) -> None:
        self._context, self._conn = context, conn

    def __enter__(self) -> sqlite3.Connection:
        return self._conn

    def __exit__(self, *exc: object) -> None:
        self._context.__exit__(*exc)


def test_a_corrupt_log_record_comes_back_rebuilt(store: Path) -> None:
    """get_logs: a row whose JSON is damaged is rebuilt from its columns, with a marker."""
    run = logbridge.start_run(experiment="logs")
    handler = logbridge.RunHandler(run=run)
    log = logging.getLogger("corrupt.test")
    log.setLevel(logging.INFO)
    log.addHandler(handler)
    try:
        log.info("first")
        log.warning("second")
        log.info("third")
    finally:
        log.removeHandler(handler)
        handler.close()
    run.complete()
    corrupt(store, run.id, "second")
    with sqlite3.connect(store / "store.db") as conn:
        conn.execute(
            "UPDATE logs SET record = '[1, 2]' WHERE run_id = ? AND message = 'third'", (run.id,)
        )
    records = [r for _, r in SQLiteStore(store, create=False).get_logs(run.id)]
    assert [r["message"] for r in records] == ["first", "second", "third"]
    assert "record_error" not in records[0]
    damaged = records[1]
    assert (damaged["level"], damaged["levelno"], damaged["logger"]) == (
        "WARNING",
        30,
        "corrupt.test",
    )
    assert isinstance(damaged["time"], float)
    assert damaged["record_error"].startswith("the stored record is not valid JSON")
    assert records[2]["record_error"] == "the stored record is a JSON list, not an object"


# -- the JSON API -------------------------------------------------------------------------------


def test_runs_table_lists_runs_with_status_tags_and_latest_metrics(
    client: Any, runs: dict[str, logbridge.Run]
) -> None:
    """/api/runs: newest first, statuses, tags and the latest value of each scalar."""
    data = get(client, "/api/runs")
    by_name = {r["name"]: r for r in data["runs"]}
    assert {"baseline", "wider", "broken", "trial-0", "trial-1"} <= set(by_name)
    assert by_name["baseline"]["status"] == "Completed"
    assert by_name["broken"]["status"] == "Failed"
    assert by_name["baseline"]["tags"]["note"] == XSS
    assert by_name["wider"]["metrics"]["loss"] == pytest.approx(1.8 * math.exp(-5.9) + 0.1)
    assert by_name["trial-0"]["parent"] == runs["baseline"].id
    assert "loss" in data["metrics"]
    only = get(client, "/api/runs?experiment=other")
    assert [r["name"] for r in only["runs"]] == ["broken"]
    assert get(client, "/api/experiments")["experiments"] == ["mnist", "other"]


def test_run_page_has_metrics_files_children_and_error(
    client: Any, runs: dict[str, logbridge.Run]
) -> None:
    """/api/runs/<id>: every metric with its chart kind, files, children, tags, properties."""
    page = get(client, f"/api/runs/{runs['baseline'].id}")
    charts = {m["name"]: m["chart"] for m in page["metrics"]}
    assert charts["loss"] == "line"
    assert charts["lr"] == "line"
    assert charts["pr"] == "xy"
    assert charts["curve"] == "image"
    assert page["properties"] == {"seed": "42"}
    assert [c["name"] for c in page["children"]] == ["trial-0", "trial-1"]
    assert "notes/readme.txt" in [f["name"] for f in page["files"]]
    broken = get(client, f"/api/runs/{runs['broken'].id}")
    assert broken["error"]["type"] == "ZeroDivisionError"
    assert client.get("/api/runs/nope").status_code == 404


def test_metric_kinds_come_back_shaped_for_their_chart(
    client: Any, runs: dict[str, logbridge.Run]
) -> None:
    """Scalars -> line over step; rows -> x/y of the first two columns; strings -> a table."""
    base = f"/api/runs/{runs['baseline'].id}/metric"
    loss = get(client, base, query_string={"name": "loss"})
    assert loss["chart"] == "line"
    assert loss["x"] == "step"
    assert loss["xs"] == list(range(60))
    slashed = get(client, base, query_string={"name": "val/loss"})
    assert slashed["name"] == "val/loss"
    assert len(slashed["ys"]) == 60
    pr = get(client, base, query_string={"name": "pr"})
    assert pr["chart"] == "xy"
    assert pr["x"] == "recall"
    assert pr["y"] == ["precision"]
    assert pr["numeric"] == ["recall", "precision", "threshold"]
    assert pr["xs"] == sorted(pr["xs"])
    columns = [("name", "pr"), ("col", "threshold"), ("col", "recall")]
    other = get(client, base, query_string=columns)
    assert (other["x"], other["y"]) == ("threshold", ["recall"])
    phase = get(client, base, query_string={"name": "phase"})
    assert phase["chart"] == "table"
    assert phase["rows"][-1][2] == XSS
    lr = get(client, base, query_string={"name": "lr"})
    assert lr["xs"][:3] == [0, 1, 2]
    assert lr["ys"][1] == pytest.approx(0.09)
    confusion = get(client, base, query_string={"name": "confusion"})
    assert confusion["columns"] == ["class", "cat", "dog"]
    assert confusion["numeric"] == ["cat", "dog"]
    curve = get(client, base, query_string={"name": "curve"})
    assert curve["chart"] == "image"
    assert curve["files"][0].startswith("images/curve-")
    assert client.get(base, query_string={"name": "missing"}).status_code == 404
    assert client.get(base, query_string={"name": "loss", "x": "bogus"}).status_code == 400
    assert client.get(base, query_string={"name": "loss", "lo": "nan"}).status_code == 400


def test_nan_and_infinity_keep_the_json_valid(client: Any, runs: dict[str, logbridge.Run]) -> None:
    """A run holding NaN and inf still loads: they are skipped in charts, spelled in values."""
    base = f"/api/runs/{runs['baseline'].id}"
    odd = get(client, base + "/metric", query_string={"name": "odd"})
    assert odd["ys"] == [1.0, 2.0]
    assert odd["skipped"] == 2
    assert _data.dumps({"v": [math.nan, math.inf, -math.inf, 2**70]}) == (
        '{"v":["NaN","Infinity","-Infinity","1180591620717411303424"]}'
    )
    run = logbridge.start_run(experiment="nan", name="only-nan")
    run.log("x", math.nan)
    run.complete()
    page = get(client, f"/api/runs/{run.id}")
    assert page["metrics"][0]["last"] == "NaN"
    assert get(client, "/api/runs")["runs"]


def test_logs_filter_by_level_logger_text_and_follow(
    client: Any, runs: dict[str, logbridge.Run]
) -> None:
    """/logs: level, logger (and its children), substring, and after= for following."""
    base = f"/api/runs/{runs['baseline'].id}/logs"
    everything = get(client, base)["records"]
    assert len(everything) == 64
    warnings = get(client, base, query_string={"level": "30"})["records"]
    assert [r["message"] for r in warnings] == [
        "learning rate 0.1 looks high",
        "could not read shard 3",
    ]
    assert len(get(client, base, query_string={"logger": "data"})["records"]) == 1
    found = get(client, base, query_string={"q": "shard"})["records"]
    assert [r["logger"] for r in found] == ["data.loader"]
    page = get(client, base, query_string={"limit": "10"})
    rest = get(client, base, query_string={"after": page["last"]})
    assert len(page["records"]) + len(rest["records"]) == 64
    assert everything[-1]["message"] == XSS


def test_logs_survive_a_corrupt_record(
    client: Any, runs: dict[str, logbridge.Run], store: Path
) -> None:
    """/logs: one damaged record is shown rebuilt and marked; the others are untouched."""
    corrupt(store, runs["baseline"].id, "training done")
    records = get(client, f"/api/runs/{runs['baseline'].id}/logs")["records"]
    assert len(records) == 64
    damaged = [r for r in records if r["record_error"]]
    assert [(r["message"], r["level"], r["logger"]) for r in damaged] == [
        ("training done", "INFO", "train")
    ]


def test_metric_csv_escapes_formula_cells(client: Any, store: Path) -> None:
    """CSV export quotes text a spreadsheet would run (=, +, -, @), not numbers."""
    run = logbridge.start_run(experiment="csv")
    run.log("cmd", "=cmd|' /C calc'!A0")
    run.log("cmd", "@SUM(1)")
    run.log_row("table", a=-1, b="+x")
    run.complete()
    text = client.get(f"/api/runs/{run.id}/metric.csv", query_string={"name": "cmd"}).get_data(
        as_text=True
    )
    assert "'=cmd|" in text
    assert "'@SUM(1)" in text
    rows = client.get(f"/api/runs/{run.id}/metric.csv", query_string={"name": "table"})
    assert rows.get_data(as_text=True).splitlines() == ["a,b", "-1,'+x"]


# -- security -----------------------------------------------------------------------------------


def test_files_download_and_cannot_leave_the_store(
    client: Any, runs: dict[str, logbridge.Run], store: Path
) -> None:
    """Listed files download; traversal, absolute and unlisted names are 404."""
    run_id = runs["baseline"].id
    url = f"/api/runs/{run_id}/file"
    ok = client.get(url, query_string={"name": "notes/readme.txt"})
    assert ok.status_code == 200
    assert ok.data == b"hello from a file\n"
    assert "attachment" in ok.headers["Content-Disposition"]
    assert "sandbox" in ok.headers["Content-Security-Policy"]
    (store / "secret.txt").write_text("secret")
    for name in (
        "../../secret.txt",
        "/etc/passwd",
        "%2e%2e/%2e%2e/secret.txt",
        "notes/../../../secret.txt",
        "",
    ):
        response = client.get(url, query_string={"name": name})
        assert response.status_code == 404, name
    image = get(client, f"/api/runs/{run_id}/metric", query_string={"name": "curve"})["files"][0]
    inline = client.get(url, query_string={"name": image})
    assert inline.mimetype == "image/png"
    assert inline.data.startswith(b"\x89PNG")


def test_foreign_host_header_is_refused(client: Any) -> None:
    """DNS rebinding: a request naming another host is refused; loopback names are served."""
    assert client.get("/api/runs", headers={"Host": "evil.example:5055"}).status_code == 403
    assert client.get("/", headers={"Host": "evil.example"}).status_code == 403
    assert client.get("/api/runs", headers={"Host": "10.1.2.3:5055"}).status_code == 403
    for host in ("127.0.0.1:5055", "localhost:5055", "[::1]:5055", "localhost"):
        assert client.get("/api/runs", headers={"Host": host}).status_code == 200, host


def test_no_write_endpoints_and_hardening_headers(client: Any) -> None:
    """Only GET: POST, PUT and DELETE are refused; every page carries a strict CSP."""
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/api/runs").status_code == 405
    page = client.get("/")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert b'<script src="static/app.js"' in page.data


def test_assets_are_served_from_the_package(client: Any) -> None:
    """uPlot and the app come from the package: no CDN, works offline."""
    index = client.get("/").get_data(as_text=True)
    assert "http://" not in index
    assert "https://" not in index
    for asset in ("app.js", "style.css", "vendor/uPlot.iife.min.js", "vendor/uPlot.min.css"):
        response = client.get(f"/static/{asset}")
        assert response.status_code == 200, asset
        response.close()
    app_js = client.get("/static/app.js").get_data(as_text=True)
    assert "innerHTML" not in app_js


def test_empty_store_shows_no_runs(tmp_path: Path) -> None:
    """The viewer starts before any run exists."""
    app = create_app(tmp_path / "nothing-yet")
    with app.test_client() as test_client:
        assert get(test_client, "/api/runs") == {"runs": [], "metrics": []}
        assert get(test_client, "/api/experiments")["experiments"] == []


def test_non_loopback_bind_needs_the_explicit_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """serve() refuses 0.0.0.0 without allow_remote; the CLI says why and exits 1."""
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("example.org")
    with pytest.raises(logbridge.LogbridgeError, match="--allow-remote"):
        serve(host="0.0.0.0")
    assert cli.main(["ui", "--host", "0.0.0.0"]) == 1
    assert "--allow-remote" in capsys.readouterr().err


def test_cli_ui_without_flask_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without Flask, `logbridge ui` fails with the pip command to run."""
    import sys

    monkeypatch.setitem(sys.modules, "flask", None)
    monkeypatch.delitem(sys.modules, "logbridge.ui._app", raising=False)
    assert cli.main(["ui", "--port", "0"]) == 1
    assert "pip install 'logbridge[ui]'" in capsys.readouterr().err


def test_import_logbridge_does_not_import_flask() -> None:
    """The viewer's dependency is imported only when the viewer is used."""
    import subprocess
    import sys

    code = "import sys, logbridge, logbridge.ui._notebook; print('flask' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- notebook -----------------------------------------------------------------------------------


def test_repr_html_shows_status_metrics_and_escapes(runs: dict[str, logbridge.Run]) -> None:
    """Run._repr_html_: status, a metric table with sparklines, record text escaped."""
    html = runs["baseline"]._repr_html_()
    assert "Completed" in html
    assert "val/loss" in html
    assert "<svg" in html
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert _notebook.run_html(runs["broken"]).count("ZeroDivisionError") >= 1


def test_cli_ui_serves_on_loopback(store: Path, runs: dict[str, logbridge.Run]) -> None:
    """`logbridge ui --port 0` prints its URL on 127.0.0.1 and serves the runs there."""
    import subprocess
    import sys
    import urllib.request

    process = subprocess.Popen(
        [sys.executable, "-m", "logbridge", "--store", str(store), "ui", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("logbridge viewer: http://127.0.0.1:"), line
        url = line.split()[2]
        with urllib.request.urlopen(url + "api/runs", timeout=10) as response:
            names = {r["name"] for r in json.loads(response.read())["runs"]}
        assert "baseline" in names
    finally:
        process.terminate()
        process.wait(10)
