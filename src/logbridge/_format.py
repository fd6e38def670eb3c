"""Rendering for the terminal: plain-text tables, durations, times and JSON."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
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
