"""The viewer's Flask application: a static page and read-only JSON endpoints under /api."""

from __future__ import annotations

import csv
import io
import ipaddress
import math
import mimetypes
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from flask import Flask, Response, abort, current_app, request, send_file
from werkzeug.exceptions import HTTPException, NotFound

from logbridge import _artifacts
from logbridge._errors import LogbridgeError
from logbridge._store import FINAL_STATUSES, MetricInfo, RunInfo, SQLiteStore
from logbridge.ui import _data

STATIC: Final = Path(__file__).parent / "static"
_LOCAL_NAMES: Final = frozenset({"localhost", "127.0.0.1", "::1"})
_INLINE_IMAGES: Final = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"})
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_CACHE_SIZE: Final = 64


@dataclass(frozen=True, slots=True)
class _Context:
    store: SQLiteStore
    hosts: frozenset[str]
    cache: _ChartCache


def build(store: SQLiteStore, *, allowed_hosts: tuple[str, ...] = ()) -> Flask:
    """Return the application reading ``store``."""
    app = Flask("logbridge.ui", static_folder=str(STATIC), static_url_path="/static")
    app.config["MAX_CONTENT_LENGTH"] = 0
    hosts = _LOCAL_NAMES | {h.strip("[]").lower() for h in allowed_hosts}
    app.extensions["logbridge.ui"] = _Context(store, hosts, _ChartCache())
    app.before_request(_refuse_foreign_hosts)
    app.after_request(_harden)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(LogbridgeError, _store_error)
    app.register_error_handler(Exception, _unexpected)
    for rule, view in (
        ("/", _index),
        ("/api/experiments", _experiments),
        ("/api/runs", _runs),
        ("/api/runs/<run_id>", _run_page),
        ("/api/runs/<run_id>/metric", _metric),
        ("/api/runs/<run_id>/metric.csv", _metric_csv),
        ("/api/runs/<run_id>/logs", _logs),
        ("/api/runs/<run_id>/file", _file),
    ):
        app.add_url_rule(rule, view_func=view, methods=["GET"])
    return app


def _ctx() -> _Context:
    context: _Context = current_app.extensions["logbridge.ui"]
    return context


def _refuse_foreign_hosts() -> Response | None:
    if not _host_allowed(request.host, _ctx().hosts):
        return _json({"error": "this Host is not served (DNS rebinding protection)"}, 403)
    return None


def _harden(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _http_error(err: HTTPException) -> Response:
    return _json({"error": err.description or err.name}, err.code or 500)


def _store_error(err: LogbridgeError) -> Response:
    return _json({"error": str(err)}, 503)


def _unexpected(err: Exception) -> Response:
    current_app.logger.error("viewer request failed", exc_info=err)
    return _json({"error": f"{type(err).__name__}: {err}"}, 500)


def _index() -> Response:
    return send_file(STATIC / "index.html", mimetype="text/html", max_age=0)


def _experiments() -> Response:
    store = _ctx().store
    if not _exists(store):
        return _json({"experiments": [], "store": str(store.folder), "empty": True})
    return _json({"experiments": store.list_experiments(), "store": str(store.folder)})


def _runs() -> Response:
    store = _ctx().store
    if not _exists(store):
        return _json({"runs": [], "metrics": []})
    return _json(_data.runs_table(store, request.args.get("experiment") or None))


def _run_page(run_id: str) -> Response:
    store = _ctx().store
    return _json(_data.run_page(store, _run(store, run_id)))


def _metric_of(store: SQLiteStore, run_id: str) -> MetricInfo:
    name = request.args.get("name", "")
    for metric in store.list_metrics(run_id):
        if metric.name == name:
            return metric
    raise NotFound(f"run {run_id} has no metric {name!r}")


def _metric(run_id: str) -> Response:
    context = _ctx()
    info = _run(context.store, run_id)
    metric = _metric_of(context.store, run_id)
    args = _chart_args()
    key = (run_id, metric.name, metric.count, *args.values())
    chart = context.cache.get(
        key,
        info.status in FINAL_STATUSES,
        lambda: _data.metric_chart(context.store, run_id, metric, **args),
    )
    return _json(chart)


def _metric_csv(run_id: str) -> Response:
    store = _ctx().store
    _run(store, run_id)
    metric = _metric_of(store, run_id)
    out = io.StringIO()
    writer = csv.writer(out)
    if metric.kind in ("row", "table"):
        chart = _data.metric_chart(store, run_id, metric, points=_data.MAX_POINTS)
        writer.writerow([_data.csv_cell(c) for c in chart.get("columns", [])])
        writer.writerows([_data.csv_cell(c) for c in r] for r in chart.get("rows", []))
    else:
        writer.writerow(["step", "time", "value"])
        for p in store.metric_points(run_id, metric.name):
            writer.writerow([_data.csv_cell(p.step), repr(p.time), _data.csv_cell(p.value)])
    response = Response(out.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=metric.csv"
    return response


def _logs(run_id: str) -> Response:
    store = _ctx().store
    _run(store, run_id)
    level = request.args.get("level") or None
    return _json(
        _data.logs(
            store,
            run_id,
            after=_int_arg("after", 0),
            level=int(level) if level and level.isdigit() else None,
            logger=request.args.get("logger") or None,
            contains=request.args.get("q") or None,
            limit=_int_arg("limit", 1000),
        )
    )


def _file(run_id: str) -> Response:
    store = _ctx().store
    _run(store, run_id)
    name = request.args.get("name", "")
    if name not in {f.name for f in store.list_files(run_id)}:
        abort(404, f"run {run_id} has no file {name!r}")
    try:
        path = _artifacts.path_in(store.artifact_folder(run_id), name)
    except LogbridgeError:
        abort(404, f"run {run_id} has no file {name!r}")
    if not path.is_file():
        abort(404, f"the file {name!r} of run {run_id} is missing from the store")
    inline = Path(name).suffix.lower() in _INLINE_IMAGES and not request.args.get("download")
    mimetype = mimetypes.guess_type(name)[0] if inline else None
    response = send_file(
        path,
        mimetype=mimetype or "application/octet-stream",
        as_attachment=not inline,
        download_name=Path(name).name,
        max_age=0,
    )
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response


class _ChartCache:
    """The latest charts of finished runs: they no longer change, and a million points cost."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self, key: tuple[Any, ...], final: bool, make: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        if not final:
            return make()
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > _CACHE_SIZE:
                self._items.popitem(last=False)
        return value


def _json(value: Any, status: int = 200) -> Response:
    return Response(_data.dumps(value), status=status, mimetype="application/json")


def _exists(store: SQLiteStore) -> bool:
    return (store.folder / "store.db").exists()


def _run(store: SQLiteStore, run_id: str) -> RunInfo:
    if not _exists(store):
        abort(404, "the store is empty")
    info = store.get_run(run_id)
    if info is None:
        abort(404, f"no run {run_id!r} in the store")
    return info


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name, "")
    try:
        return int(raw) if raw else default
    except ValueError:
        abort(400, f"{name} must be an integer")


def _float_arg(name: str) -> float | None:
    raw = request.args.get(name, "")
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        abort(400, f"{name} must be a number")
    if not math.isfinite(value):
        abort(400, f"{name} must be a finite number")
    return value


def _chart_args() -> dict[str, Any]:
    x = request.args.get("x") or "auto"
    if x not in ("auto", "step", "time", "index"):
        abort(400, "x must be auto, step, time or index")
    return {
        "x": x,
        "lo": _float_arg("lo"),
        "hi": _float_arg("hi"),
        "points": min(max(_int_arg("points", _data.DEFAULT_POINTS), 10), _data.MAX_POINTS),
        "columns": tuple(request.args.getlist("col")),
    }


def _host_allowed(host: str, names: frozenset[str]) -> bool:
    """Return whether a request's ``Host`` names this server (an IP literal or a known name)."""
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    name = name.lower()
    if name in names:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    # An IP literal cannot be rebound by DNS: a server listening on every address serves it.
    return "0.0.0.0" in names or "::" in names  # noqa: S104
