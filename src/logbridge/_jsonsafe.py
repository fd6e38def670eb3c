r"""Turning anything a log record carries into JSON that is valid, bounded and never raises.

Used on the writer thread for every log record, and in the caller's thread for mutable extras
(so what is recorded is what was true at the call). The rules, documented in the docs:

- ``str``, ``int``, ``bool`` and ``None`` are kept; floats too, except NaN and infinities,
  which become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``.
- Strings longer than `MAX_STRING` characters are cut, with a marker giving the full length;
  lone surrogates (from ``surrogateescape``) become ``\\udcxx`` escapes.
- ``bytes`` are decoded as UTF-8 with backslash escapes for invalid bytes.
- Mappings become objects (keys turned into strings); lists, tuples, sets become arrays;
  containers deeper than `MAX_DEPTH` or longer than `MAX_ITEMS` are cut with a marker, and a
  container met again inside itself becomes ``"<cycle>"``.
- numpy and torch scalars become numbers (``.item()``); arrays their ``tolist()``; anything
  else its ``repr``, and if even that fails, ``"<unrepresentable TYPE>"``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Final

MAX_STRING: Final = 1_000_000
"""Longest string kept whole, in characters; a longer one is cut with a marker."""
MAX_DEPTH: Final = 20
"""Deepest nesting of containers kept."""
MAX_ITEMS: Final = 10_000
"""Most items kept of one container."""

_MARKER_ROOM: Final = 100
"""A string cut once (with its marker) is not cut again."""
_PLAIN: Final = frozenset({int, bool, type(None)})


def safe(value: Any) -> Any:
    """Return a JSON-safe copy of ``value`` (see the module's rules)."""
    return _safe(value, 0, set())


def safe_dict(data: dict[str, Any]) -> dict[str, Any]:
    """Return ``data`` with every value made JSON-safe, copying only what needs it."""
    out = data
    for key, value in data.items():
        kind = type(value)
        if kind in _PLAIN or (kind is str and len(value) <= MAX_STRING and value.isascii()):
            continue
        if out is data:
            out = dict(data)
        out[key] = _safe(value, 0, set())
    return out


def text(value: str) -> str:
    """Return ``value`` cut to `MAX_STRING` characters and with lone surrogates escaped."""
    if len(value) > MAX_STRING + _MARKER_ROOM:
        value = f"{value[:MAX_STRING]}...[logbridge: cut, {len(value)} characters in all]"
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def describe(value: Any) -> str:
    """Return ``repr(value)``, or a placeholder if ``repr`` raises or returns a non-string."""
    try:
        result = repr(value)
    except Exception:
        return f"<unrepresentable {type(value).__qualname__}>"
    if not isinstance(result, str):
        return f"<unrepresentable {type(value).__qualname__}>"
    return text(result)


def _safe(value: Any, depth: int, seen: set[int]) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is str:
        return text(value)
    if kind is float:
        return value if math.isfinite(value) else _float_name(value)
    if isinstance(value, (str, int, float)) and not hasattr(value, "item"):
        return _safe(_base(value), depth, seen)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return text(bytes(value).decode("utf-8", "backslashreplace"))
    if depth >= MAX_DEPTH:
        return f"<cut: nested deeper than {MAX_DEPTH}>"
    if isinstance(value, (Mapping, list, tuple, set, frozenset)):
        marker = id(value)
        if marker in seen:
            return "<cycle>"
        seen.add(marker)
        try:
            return _container(value, depth, seen)
        finally:
            seen.discard(marker)
    return _other(value, depth, seen)


def _container(value: Any, depth: int, seen: set[int]) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (key, item) in enumerate(value.items()):
            if i >= MAX_ITEMS:
                out["<cut>"] = f"{len(value) - MAX_ITEMS} more items"
                break
            name = key if isinstance(key, str) else describe(key)
            out[text(name)] = _safe(item, depth + 1, seen)
        return out
    items = []
    for i, item in enumerate(value):
        if i >= MAX_ITEMS:
            items.append(f"<cut: {len(value) - MAX_ITEMS} more items>")
            break
        items.append(_safe(item, depth + 1, seen))
    return items


def _other(value: Any, depth: int, seen: set[int]) -> Any:
    item = getattr(value, "item", None)
    if callable(item) and getattr(value, "shape", None) in ((), None):
        try:
            plain = item()
        except Exception:  # noqa: S110 - fall through to the repr
            pass
        else:
            if isinstance(plain, (int, float, bool, str)):
                return _safe(plain, depth, seen)
    tolist = getattr(value, "tolist", None)
    if callable(tolist) and getattr(value, "size", MAX_ITEMS + 1) <= MAX_ITEMS:
        try:
            return _safe(tolist(), depth, seen)
        except Exception:  # noqa: S110 - fall through to the repr
            pass
    return describe(value)


def _base(value: str | float) -> str | int | float:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int(value)
    return float(value)


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"
