"""A run as HTML for Jupyter (`Run._repr_html_`): status, a metric table, small charts.

Plain HTML and inline SVG, no script and no Flask: notebooks show it as it is, and every
text from the record is escaped.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any, Final

from logbridge._store import SQLiteStore
from logbridge.ui._data import run_summary
from logbridge.ui._downsample import lttb

if TYPE_CHECKING:
    from logbridge._run import Run

SPARK_WIDTH: Final = 160
SPARK_HEIGHT: Final = 32
MAX_ROWS: Final = 100
_COLORS: Final = {"Running": "#1d4ed8", "Completed": "#15803d", "Failed": "#b91c1c"}


def run_html(run: Run) -> str:
    """Return the HTML a notebook shows for ``run``."""
    try:
        run.flush()
        store = SQLiteStore(run.store, create=False)
        info = store.get_run(run.id)
    except Exception as err:
        return f"<p>logbridge run {_e(run.id)}: cannot read the store ({_e(err)})</p>"
    if info is None:
        return f"<p>logbridge run {_e(run.id)}: not in the store {_e(run.store)}</p>"
    summary = run_summary(info)
    color = _COLORS.get(info.status, "#b45309")
    parts = [
        '<div class="logbridge-run">',
        (
            f"<p><b>{_e(info.name)}</b> &middot; {_e(info.experiment)} &middot; "
            f'<span style="color:{color};font-weight:bold">{_e(info.status)}</span> &middot; '
            f"{_duration(summary['duration'])} &middot; <code>{_e(info.id)}</code></p>"
        ),
    ]
    if info.error is not None:
        parts.append(
            f'<p style="color:#b91c1c">{_e(info.error.get("type", "Error"))}: '
            f"{_e(info.error.get('message', ''))}</p>"
        )
    metrics = store.list_metrics(info.id)
    if metrics:
        parts.append(
            '<table><thead><tr><th style="text-align:left">metric</th><th>kind</th>'
            "<th>points</th><th>latest</th><th></th></tr></thead><tbody>"
        )
        parts.extend(
            f'<tr><td style="text-align:left">{_e(m.name)}</td><td>{_e(m.kind)}</td>'
            f"<td>{m.count}</td><td>{_e(_value(m.last))}</td>"
            f"<td>{_spark(store, info.id, m.name) if m.kind == 'scalar' else ''}</td></tr>"
            for m in metrics[:MAX_ROWS]
        )
        parts.append("</tbody></table>")
        if len(metrics) > MAX_ROWS:
            parts.append(f"<p>and {len(metrics) - MAX_ROWS} more metrics</p>")
    else:
        parts.append("<p>No metrics yet.</p>")
    parts.append("</div>")
    return "".join(parts)


def _spark(store: SQLiteStore, run_id: str, name: str) -> str:
    series = store.metric_series(run_id, name, buckets=SPARK_WIDTH)
    if series is None or len(series.points) < 2:
        return ""
    points = lttb(series.points, SPARK_WIDTH)
    x0, x1 = points[0][0], points[-1][0]
    y0 = min(p[1] for p in points)
    y1 = max(p[1] for p in points)
    sx = (SPARK_WIDTH - 2) / ((x1 - x0) or 1)
    sy = (SPARK_HEIGHT - 2) / ((y1 - y0) or 1)
    path = " ".join(
        f"{1 + (x - x0) * sx:.1f},{SPARK_HEIGHT - 1 - (y - y0) * sy:.1f}" for x, y in points
    )
    return (
        f'<svg width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'viewBox="0 0 {SPARK_WIDTH} {SPARK_HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="#2563eb" stroke-width="1.2" points="{path}"/></svg>'
    )


def _value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if not math.isfinite(value) else f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return ""
    return "" if value is None else str(value)[:80]


def _duration(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)
