"""Rendering for the terminal: plain-text tables, CSV, JSON, durations, times and log lines."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as a left-aligned text table with a header line."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)


def plain(value: Any) -> str:
    """Return ``value`` as one line of text: line breaks and control characters escaped."""
    return _cell(value)


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # One row per line: a value holding line breaks or control characters must not break it.
    return text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text


def timestamp(seconds: float | None) -> str:
    """Return a local time as ``YYYY-MM-DD HH:MM:SS``, or an empty string."""
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")  # noqa: DTZ006


def duration(start: float, end: float | None) -> str:
    """Return the time between two timestamps (or until now) as ``1h02m03s``."""
    total = int((time.time() if end is None else end) - start)
    hours, rest = divmod(max(total, 0), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m{seconds:02d}s"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def to_json(value: Any) -> str:
    """Return ``value`` as indented JSON (NaN and infinities as strings, so it stays valid)."""
    return json.dumps(_json_safe(value), indent=2, ensure_ascii=False, default=str)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):  # noqa: PLR0124
        return str(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_STATUS_COLOURS = {"Completed": "32", "Failed": "31", "Canceled": "33", "Running": "36"}


def csv_text(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Return rows as CSV; text cells a spreadsheet would run as a formula are quoted with '."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(headers)
    writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    return out.getvalue().rstrip("\n")


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        value = json.dumps(_json_safe(value), ensure_ascii=False)
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def json_lines(values: Iterable[Any]) -> str:
    """Return one compact JSON document per line."""
    return "\n".join(
        json.dumps(_json_safe(v), ensure_ascii=False, default=str, separators=(",", ":"))
        for v in values
    )


def status(text: str, *, colour: bool) -> str:
    """Return a run status, coloured for a terminal when ``colour`` is true."""
    code = _STATUS_COLOURS.get(text)
    return f"\x1b[{code}m{text}\x1b[0m" if colour and code else text


def value(item: Any, width: int = 40) -> str:
    """Return a metric value short enough for a table cell."""
    if isinstance(item, float):
        text = f"{item:.6g}"
    elif isinstance(item, (dict, list)):
        text = json.dumps(_json_safe(item), ensure_ascii=False, default=str)
    else:
        text = str(item)
    return text if len(text) <= width else text[: width - 1] + "…"


def log_line(record: dict[str, Any]) -> str:
    """Return a stored log record as ``time level logger: message`` (and its traceback)."""
    when = record.get("time")
    stamp = (
        datetime.fromtimestamp(when).strftime("%H:%M:%S.%f")[:-3]  # noqa: DTZ006
        if isinstance(when, (int, float))
        else ""
    )
    line = (
        f"{stamp} {record.get('level', ''):<8} {record.get('logger', '')}: "
        f"{record.get('message', '')}"
    )
    exception = record.get("exception")
    return f"{line}\n{exception}" if exception else line


def run_end(details: dict[str, Any]) -> str:
    """Return the line that ends the output of a run that was waited for."""
    line = f"run {details['runId']} {details['status']}"
    error = details.get("error")
    if error:
        line += f": {error.get('type', 'Error')}: {error.get('message', '')}"
    return line
