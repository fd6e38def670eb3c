"""Metric names and values: validation and normalisation to plain Python values.

Everything here runs in the caller's thread, so it copies what it is given (the value as it is
now) and stays cheap for the common case of a plain ``float`` or ``int``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Union

from logbridge._errors import InvalidMetricError, InvalidMetricTypeError

Scalar = Union[float, int, bool, str]  # noqa: UP007 - a runtime alias
"""A value of a metric point, list element, row cell or table cell."""

MAX_NAME_LENGTH: Final = 250
"""Longest metric, tag or property name, in characters (MLflow's limit)."""
MAX_STRING_LENGTH: Final = 65_536
"""Longest string metric value, tag value or property value, in characters."""
INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MAX_BIG_INT_DIGITS: Final = 4_300
"""Longest integer kept exactly (Python's own default ``int`` to ``str`` limit)."""

KINDS: Final = ("scalar", "list", "row", "table", "image")

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_valid_names: set[str] = set()
_VALID_NAMES_CACHE: Final = 100_000


def check_name(name: object, what: str = "metric") -> str:
    """Return ``name`` if it is a valid metric, tag or property name.

    A name is a non-empty ``str`` of at most `MAX_NAME_LENGTH` characters with no control
    characters and no lone surrogates. Case matters; ``/`` and any other printable character
    are allowed (names never touch the filesystem).

    Raises:
        InvalidMetricTypeError: ``name`` is not a string.
        InvalidMetricError: ``name`` is empty, too long or holds a forbidden character.
    """
    if type(name) is str and name in _valid_names:
        return name
    if not isinstance(name, str):
        msg = f"{what} name must be a str, not {type(name).__name__}: {name!r:.80}"
        raise InvalidMetricTypeError(msg)
    name = str.__str__(name)  # a str subclass's own __str__ (a str Enum's) is not the name
    if not name:
        raise InvalidMetricError(f"{what} name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        msg = f"{what} name {name[:40]!r}... has {len(name)} characters; at most {MAX_NAME_LENGTH}"
        raise InvalidMetricError(msg)
    bad = _FORBIDDEN.search(name)
    if bad:
        msg = (
            f"{what} name {name!r} holds the forbidden character {bad.group()!r} at "
            f"{bad.start()}; control characters and lone surrogates are not allowed"
        )
        raise InvalidMetricError(msg)
    if len(_valid_names) < _VALID_NAMES_CACHE:
        _valid_names.add(name)
    return name


def scalar(value: object, name: str) -> Scalar:
    """Return ``value`` as a plain ``float``, ``int``, ``bool`` or ``str``.

    numpy and torch scalars are converted with ``.item()``; ``int`` and ``float`` subclasses to
    the base type. NaN and infinities are kept. Integers beyond 64 bits are kept exactly.

    Raises:
        InvalidMetricTypeError: the type is not a number or a string (``Decimal``, ``Fraction``
            and ``complex`` included: convert them explicitly).
        InvalidMetricError: a string is too long or cannot be encoded as UTF-8.
    """
    kind = type(value)
    if kind is float or kind is bool:
        return value  # type: ignore[return-value]
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else check_big_int(value, name)  # type: ignore[operator,arg-type,return-value]
    if isinstance(value, str):
        return _string(value, name)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return check_big_int(int(value), name)
    if isinstance(value, float):
        return float(value)
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "shape", None) in ((), None):
        try:
            plain = item()
        except Exception:
            plain = None
        if isinstance(plain, (float, int, bool, str)):
            return scalar(plain, name)
    msg = (
        f"metric {name!r}: values of type {kind.__module__}.{kind.__qualname__} are not "
        f"recorded; log a float, int, bool or str (convert with float() or str())"
    )
    raise InvalidMetricTypeError(msg)


def _string(value: str, name: str) -> str:
    value = str.__str__(value)
    if len(value) > MAX_STRING_LENGTH:
        msg = (
            f"metric {name!r}: string of {len(value)} characters; the limit is {MAX_STRING_LENGTH}"
        )
        raise InvalidMetricError(msg)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        msg = f"metric {name!r}: string value is not valid Unicode ({err.reason} at {err.start})"
        raise InvalidMetricError(msg) from None
    return value


def check_big_int(value: int, name: str) -> int:
    """Return ``value`` if it can be kept exactly; refuse integers of absurd size."""
    if INT64_MIN <= value <= INT64_MAX:
        return value
    if value.bit_length() > MAX_BIG_INT_DIGITS * 3:
        msg = f"metric {name!r}: integer of {value.bit_length()} bits is too large to record"
        raise InvalidMetricError(msg)
    return value


def scalars(values: object, name: str) -> tuple[Scalar, ...]:
    """Return a copy of a sequence (list, tuple, numpy array, ...) as a tuple of scalars."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
        tolist = getattr(values, "tolist", None)
        if tolist is None or isinstance(values, (str, bytes, Mapping)):
            msg = f"metric {name!r}: expected a sequence of values, not {type(values).__name__}"
            raise InvalidMetricTypeError(msg)
        values = tolist()
        if not isinstance(values, list):
            values = [values]
    tolist = getattr(values, "tolist", None)
    if tolist is not None and not isinstance(values, (list, tuple)):
        values = tolist()
    return tuple(scalar(v, name) for v in values)  # type: ignore[attr-defined]


def columns(mapping: object, name: str) -> dict[str, tuple[Scalar, ...]]:
    """Return a copy of a table given as a mapping of column name to a sequence of values."""
    if not isinstance(mapping, Mapping):
        kind = type(mapping).__name__
        msg = f"metric {name!r}: a table is a mapping of column name to values, not {kind}"
        raise InvalidMetricTypeError(msg)
    table = {check_name(col, "column"): scalars(vals, name) for col, vals in mapping.items()}
    lengths = {len(col) for col in table.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{col}={len(vals)}" for col, vals in table.items())
        raise InvalidMetricError(f"metric {name!r}: table columns differ in length ({sizes})")
    return table


def row(cells: Mapping[str, object], name: str) -> dict[str, Scalar]:
    """Return a copy of one table row given as column name to value."""
    if not cells:
        raise InvalidMetricError(f"metric {name!r}: a row needs at least one column")
    return {check_name(col, "column"): scalar(val, name) for col, val in cells.items()}


def is_nan(value: object) -> bool:
    """Return whether ``value`` is a float NaN."""
    return type(value) is float and math.isnan(value)


@dataclass(frozen=True, slots=True, init=False)
class Row:
    """A table row for tagged log records: ``{"metrics": {"pr": Row(recall=0.1, prec=0.9)}}``."""

    cells: dict[str, Any]

    def __init__(self, **cells: Any) -> None:
        """Hold the row's cells, column name to value."""
        object.__setattr__(self, "cells", dict(cells))


@dataclass(frozen=True, slots=True)
class Table:
    """A whole table, for tagged log records: ``Table({"epoch": [1, 2], "loss": [0.5, 0.4]})``."""

    columns: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class List:
    """A list of values, for tagged log records: ``List([0.1, 0.2, 0.3])``."""

    values: Any


@dataclass(frozen=True, slots=True)
class Image:
    """An image for tagged log records: ``Image(path="cm.png")`` or ``Image(plot=figure)``."""

    path: Any = None
    plot: Any = None
