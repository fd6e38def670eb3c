"""What the viewer shows, read from the store and shaped as JSON-ready values (no Flask here).

Every value that leaves this module is valid JSON once `dumps` has encoded it: NaN and the
infinities become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``, integers beyond
what a JavaScript number holds exactly become strings.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from typing import Any, Final

from logbridge._store import FINAL_STATUSES, MetricInfo, RunInfo, SQLiteStore
from logbridge.ui._downsample import lttb, lttb_indices

DEFAULT_POINTS: Final = 2000
"""Points a chart asks for: about two per pixel of a wide chart."""
MAX_POINTS: Final = 20_000
TABLE_ROWS: Final = 500
"""Rows of a string metric, a row metric or a table shown at most (the latest ones)."""
MAX_LOGS: Final = 5000
CHART_KINDS: Final = {
    "scalar": "line",
    "list": "line",
    "row": "xy",
    "table": "xy",
    "image": "image",
}
_JS_INT: Final = 2**53


def dumps(value: Any) -> str:
    """Return ``value`` as JSON that every browser parses (see the module's rules)."""
    return json.dumps(jsonable(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def jsonable(value: Any) -> Any:
    """Return a copy of ``value`` with only JSON-safe numbers in it."""
    kind = type(value)
    if kind is float:
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if kind is int:
        return value if -_JS_INT <= value <= _JS_INT else str(value)
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind in (list, tuple):
        return [jsonable(v) for v in value]
    if value is None or kind in (str, bool):
        return value
    return str(value)


def run_summary(info: RunInfo, now: float | None = None) -> dict[str, Any]:
    """Return the fields of a run that every view shows."""
    end = info.end_time
    if end is None and info.status in FINAL_STATUSES:
        end = info.heartbeat
    return {
        "id": info.id,
        "name": info.name,
        "experiment": info.experiment,
        "status": info.status,
        "parent": info.parent_id,
        "start": info.start_time,
        "end": end,
        "duration": (end if end is not None else (now or time.time())) - info.start_time,
        "running": info.status == "Running",
    }


def runs_table(store: SQLiteStore, experiment: str | None) -> dict[str, Any]:
    """Return the runs (newest first) with their tags and the latest value of each scalar."""
    now = time.time()
    runs = store.list_runs(experiment=experiment)
    latest = store.latest_scalars([info.id for info in runs])
    rows = []
    names: dict[str, None] = {}
    for info in runs:
        row = run_summary(info, now)
        row["tags"] = store.get_tags(info.id)
        numbers = {k: v for k, v in latest[info.id].items() if isinstance(v, (int, float))}
        names.update(dict.fromkeys(numbers))
        row["metrics"] = numbers
        rows.append(row)
    return {"runs": rows, "metrics": list(names)}


def run_page(store: SQLiteStore, info: RunInfo) -> dict[str, Any]:
    """Return everything the run page shows but the charts' points and the log."""
    page = run_summary(info)
    page.update(
        host=info.host,
        pid=info.pid,
        environment=info.environment,
        error=info.error,
        tags=store.get_tags(info.id),
        properties=store.get_properties(info.id),
        drops=store.get_drops(info.id),
        metrics=[
            {
                "name": m.name,
                "kind": m.kind,
                "chart": CHART_KINDS.get(m.kind, "table"),
                "description": m.description,
                "count": m.count,
                "last": m.last if m.kind in ("scalar", "image") else None,
            }
            for m in store.list_metrics(info.id)
        ],
        files=[{"name": f.name, "size": f.size, "time": f.time} for f in store.list_files(info.id)],
        children=[run_summary(child) for child in reversed(store.list_runs(parent_id=info.id))],
    )
    return page


def metric_chart(
    store: SQLiteStore,
    run_id: str,
    metric: MetricInfo,
    *,
    x: str = "auto",
    lo: float | None = None,
    hi: float | None = None,
    points: int = DEFAULT_POINTS,
    columns: Sequence[str] = (),
) -> dict[str, Any]:
    """Return what the chart (or table) of one metric needs, downsampled to about ``points``."""
    base = {"name": metric.name, "kind": metric.kind, "count": metric.count}
    if metric.kind == "scalar":
        return base | _scalar_chart(store, run_id, metric.name, x=x, lo=lo, hi=hi, points=points)
    values = store.metric_values(run_id, metric.name).get(metric.name, ("", []))[1]
    if metric.kind == "image":
        return base | {"chart": "image", "files": [str(v) for v in values[-20:]]}
    if metric.kind == "list":
        return base | _list_chart(values, points)
    table = _table(values) if metric.kind == "table" else _rows(values)
    return base | _xy_chart(table, columns, points)


def _scalar_chart(
    store: SQLiteStore,
    run_id: str,
    name: str,
    *,
    x: str,
    lo: float | None,
    hi: float | None,
    points: int,
) -> dict[str, Any]:
    series = store.metric_series(run_id, name, x=x, lo=lo, hi=hi, buckets=2 * points)
    if series is None:
        return {"chart": "table", "columns": [], "rows": []}
    if series.drawable == 0 and series.count > 0 and lo is None and hi is None:
        rows = store.metric_points(run_id, name)[-TABLE_ROWS:]
        return {
            "chart": "table",
            "columns": ["step", "time", "value"],
            "rows": [[p.step, p.time, p.value] for p in rows],
            "shown": len(rows),
        }
    chosen = lttb(series.points, points)
    return {
        "chart": "line",
        "x": series.x,
        "xs": [p[0] for p in chosen],
        "ys": [p[1] for p in chosen],
        "drawable": series.drawable,
        "skipped": series.count - series.drawable if lo is None and hi is None else None,
        "downsampled": len(chosen) < series.drawable,
        "range": series.x_range,
    }


def _list_chart(values: list[Any], points: int) -> dict[str, Any]:
    latest = values[-1] if values else []
    pairs = [(float(i), float(v)) for i, v in enumerate(latest) if _finite(v)]
    chosen = lttb(pairs, points)
    return {
        "chart": "line",
        "x": "index",
        "xs": [p[0] for p in chosen],
        "ys": [p[1] for p in chosen],
        "drawable": len(pairs),
        "skipped": len(latest) - len(pairs),
        "downsampled": len(chosen) < len(pairs),
        "lists": len(values),
    }


def _rows(values: list[Any]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    for i, row in enumerate(values):
        for col in row if isinstance(row, dict) else {}:
            columns.setdefault(col, [None] * i)
        for col, cells in columns.items():
            cells.append(row.get(col) if isinstance(row, dict) else None)
    return columns


def _table(values: list[Any]) -> dict[str, list[Any]]:
    columns: dict[str, list[Any]] = {}
    length = 0
    for table in values:
        if not isinstance(table, dict):
            continue
        rows = max((len(v) for v in table.values() if isinstance(v, list)), default=0)
        for col in table:
            columns.setdefault(col, [None] * length)
        for col, cells in columns.items():
            given = table.get(col)
            cells.extend(given if isinstance(given, list) else [None] * rows)
        length += rows
    return columns


def _xy_chart(table: dict[str, list[Any]], chosen: Sequence[str], points: int) -> dict[str, Any]:
    numeric = [
        col
        for col, cells in table.items()
        if any(_finite(v) for v in cells) and all(v is None or _number(v) for v in cells)
    ]
    length = max((len(c) for c in table.values()), default=0)
    first = max(0, length - TABLE_ROWS)
    result: dict[str, Any] = {
        "chart": "xy" if len(numeric) >= 2 else "table",
        "columns": list(table),
        "numeric": numeric,
        "rows": [[table[c][i] for c in table] for i in range(first, length)],
        "shown": length - first,
        "length": length,
    }
    if result["chart"] == "table":
        return result
    x_col = chosen[0] if chosen and chosen[0] in numeric else numeric[0]
    y_cols = [c for c in chosen[1:] if c in numeric and c != x_col] or [
        next(c for c in numeric if c != x_col)
    ]
    # One x for all y columns: rows where x is finite, sorted by x (what a line chart needs).
    order = sorted(
        (i for i in range(length) if _finite(table[x_col][i])), key=lambda i: table[x_col][i]
    )
    if len(order) > points:
        ys = table[y_cols[0]]
        pairs = [(float(table[x_col][i]), float(ys[i]) if _finite(ys[i]) else 0.0) for i in order]
        order = [order[k] for k in lttb_indices(pairs, points)]
    result.update(
        x=x_col,
        y=y_cols,
        xs=[table[x_col][i] for i in order],
        ys=[[_cell(table[c][i]) for i in order] for c in y_cols],
        downsampled=len(order) < length,
    )
    return result


def _cell(value: Any) -> float | None:
    return float(value) if _finite(value) else None


def _number(value: Any) -> bool:
    return type(value) in (int, float, bool)


def _finite(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def logs(
    store: SQLiteStore,
    run_id: str,
    *,
    after: int,
    level: int | None,
    logger: str | None,
    contains: str | None,
    limit: int,
) -> dict[str, Any]:
    """Return log records after sequence number ``after``, oldest first."""
    records = store.get_logs(
        run_id,
        level=level,
        logger=logger,
        contains=contains,
        after=after,
        limit=min(max(limit, 1), MAX_LOGS),
    )
    return {
        "records": [
            {
                "seq": seq,
                "time": r.get("time"),
                "level": r.get("level"),
                "levelno": r.get("levelno"),
                "logger": r.get("logger"),
                "message": r.get("message"),
                "exception": r.get("exception"),
                "record_error": r.get("record_error"),
            }
            for seq, r in records
        ],
        "last": records[-1][0] if records else after,
    }


def csv_cell(value: Any) -> str:
    """Return a cell for CSV export; text a spreadsheet would run as a formula is quoted."""
    if value is None:
        return ""
    text = str(jsonable(value))
    if isinstance(value, str) and text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text
