"""Metric values and names through the real store: exact round-trips and clear refusals.

Every value is logged with the Run API and read back with ``get_metrics`` from SQLite, so the
encoding (type codes, JSON for lists, rows and tables) is tested end to end.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import struct
import unicodedata
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import logbridge
from logbridge import _state

# Each example starts a run and reads it back through SQLite: a few ms, so no deadline. The
# autouse store fixture is shared by the examples of a test on purpose (each uses its own run).
STORE_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

INT_LIMIT_BITS = 12_900
"""Integers of more bits than this are refused (they are kept exactly up to it)."""

scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True),
    st.integers(),
    st.integers(min_value=-(2**INT_LIMIT_BITS - 1), max_value=2**INT_LIMIT_BITS - 1),
    st.booleans(),
    st.text(max_size=200),
)
"""Every kind of value a metric point may hold."""

surrogate_text = st.tuples(
    st.text(max_size=5), st.characters(categories=["Cs"]), st.text(max_size=5)
).map("".join)
"""Strings holding at least one lone surrogate (not encodable as UTF-8)."""


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def same(got: Any, expected: Any) -> bool:
    """Exactly equal: same type, same float bits (-0.0 is not 0.0), any NaN matches a NaN."""
    if type(got) is not type(expected):
        return False
    if isinstance(expected, float):
        return (math.isnan(got) and math.isnan(expected)) or _bits(got) == _bits(expected)
    if isinstance(expected, (list, tuple)):
        return len(got) == len(expected) and all(map(same, got, expected))
    if isinstance(expected, dict):
        return list(got) == list(expected) and all(same(got[k], expected[k]) for k in expected)
    return bool(got == expected)


def test_same_tells_signed_zeros_and_types_apart() -> None:
    """The comparison the round-trip tests rely on is strict about what they promise."""
    assert same([math.nan, 1.0], [math.nan, 1.0])
    assert not same(-0.0, 0.0)
    assert not same(1, 1.0)
    assert not same(True, 1)
    assert not same({"a": 1, "b": 2}, {"b": 2, "a": 1})


# -- exact round-trips ------------------------------------------------------------------------


@STORE_SETTINGS
@given(values=st.lists(scalars, min_size=1, max_size=6))
@example(values=[math.nan, math.inf, -math.inf, -0.0, 0.0])
@example(values=[5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1])
@example(values=[2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, -(2**1000)])
@example(values=[True, False, 1, 0, 1.0])
@example(values=["\x00", "a\x00b", "\r\n", "\r", "\x1b[31mred\x1b[0m", "", "\U0010ffff"])
@example(values=["0.5", "NaN", "true", "null", '{"a": [1]}', "\ufeff\u2028\u200b"])
def test_scalars_round_trip_exactly(values: list[Any]) -> None:
    """run.log: every float (NaN, infinities, -0.0, subnormals), int, bool and str reads back
    with its exact type and value; several points of one name read back as their list.
    """
    run = logbridge.start_run(experiment="values")
    for value in values:
        run.log("m", value)
    got = run.get_metrics()["m"]
    assert same(got, values[0] if len(values) == 1 else values)


@STORE_SETTINGS
@given(values=st.lists(scalars, min_size=1, max_size=6))
@example(values=[math.nan, -0.0, math.inf, 2**100, True, "a\x00\r\n\x1b[0m"])
def test_lists_rows_and_tables_round_trip_exactly(values: list[Any]) -> None:
    """log_list, log_row and log_table keep every value exactly, through their JSON encoding."""
    run = logbridge.start_run(experiment="values")
    run.log_list("list", values)
    run.log_row("row", **{f"c{i}": v for i, v in enumerate(values)})
    run.log_table("table", {"a": values, "b": values[::-1]})
    got = run.get_metrics()
    assert same(got["list"], values)
    assert same(got["row"], {f"c{i}": v for i, v in enumerate(values)})
    assert same(got["table"], {"a": values, "b": values[::-1]})


def test_integers_are_kept_exactly_up_to_12900_bits() -> None:
    """A 12,900-bit integer reads back exactly; one bit more is refused, naming the metric."""
    run = logbridge.start_run()
    largest = 2**INT_LIMIT_BITS - 1
    run.log("big", largest)
    run.log("big", -largest)
    assert run.get_metrics()["big"] == [largest, -largest]
    with pytest.raises(logbridge.InvalidMetricError) as err:
        run.log("huge", 2**INT_LIMIT_BITS)
    assert str(err.value) == "metric 'huge': integer of 12901 bits is too large to record"


NUMPY_SCALARS = [
    (np.float16(0.1), 0.0999755859375),
    (np.float32(0.1), 0.10000000149011612),
    (np.float64(0.1), 0.1),
    (np.float64(-0.0), -0.0),
    (np.float32("nan"), math.nan),
    (np.float16("-inf"), -math.inf),
    (np.int8(-128), -128),
    (np.int16(-32768), -32768),
    (np.int32(-(2**31)), -(2**31)),
    (np.int64(-(2**63)), -(2**63)),
    (np.uint8(255), 255),
    (np.uint16(65535), 65535),
    (np.uint32(2**32 - 1), 4294967295),
    (np.uint64(2**64 - 1), 18446744073709551615),
    (np.bool_(True), True),
    (np.bool_(False), False),
    (np.array(2.5), 2.5),
    (np.str_("hi"), "hi"),
]


@pytest.mark.parametrize(
    ("value", "expected"), NUMPY_SCALARS, ids=[repr(v) for v, _ in NUMPY_SCALARS]
)
def test_numpy_scalars_become_the_plain_python_value(value: Any, expected: Any) -> None:
    """numpy scalars are stored as the Python value .item() gives: never as a BLOB."""
    run = logbridge.start_run()
    run.log("np", value)
    run.log_list("np_list", [value])
    got = run.get_metrics()
    assert same(got["np"], expected)
    assert same(got["np_list"], [expected])


def test_numpy_arrays_log_as_lists_of_plain_values() -> None:
    """log_list and log_table take numpy arrays and store their plain values."""
    run = logbridge.start_run()
    run.log_list("f32", np.array([1.5, -0.0, np.inf], dtype=np.float32))
    run.log_table("t", {"u64": np.array([0, 2**64 - 1], dtype=np.uint64)})
    got = run.get_metrics()
    assert same(got["f32"], [1.5, -0.0, math.inf])
    assert same(got["t"], {"u64": [0, 18446744073709551615]})


class Color(str, enum.Enum):
    """A str Enum: its value is the string, whatever its __str__ says."""

    RED = "red"


class Phase(enum.IntEnum):
    """An int Enum: its value is the int."""

    TRAIN = 3


def test_str_and_int_subclasses_are_stored_as_their_plain_value() -> None:
    """A (str, Enum) name or value is its string, not 'Color.RED'; an IntEnum its int."""
    run = logbridge.start_run()
    run.log(Color.RED, Color.RED)
    run.log("phase", Phase.TRAIN)
    got = run.get_metrics()
    assert same(got, {"red": "red", "phase": 3})


# -- refusals -----------------------------------------------------------------------------------

REFUSED_TYPES = [
    Decimal("0.1"),
    Fraction(1, 3),
    complex(1, 2),
    b"bytes",
    bytearray(b"x"),
    None,
    object(),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    np.longdouble(1.5),
    np.complex64(1),
    np.datetime64("2024-01-01"),
    np.bytes_(b"x"),
    np.array([1.0]),
]


@pytest.mark.parametrize("value", REFUSED_TYPES, ids=[type(v).__name__ for v in REFUSED_TYPES])
@pytest.mark.parametrize("method", ["log", "log_list", "log_row", "log_table"])
def test_values_of_other_types_are_a_type_error_naming_the_metric(value: Any, method: str) -> None:
    """Decimal, Fraction, complex, bytes, None, objects and numpy values with no plain
    equivalent are refused by every logging method with a TypeError naming the metric;
    nothing is recorded.
    """
    run = logbridge.start_run()
    calls = {
        "log": lambda: run.log("bad_metric", value),
        "log_list": lambda: run.log_list("bad_metric", [1.0, value]),
        "log_row": lambda: run.log_row("bad_metric", ok=1, bad=value),
        "log_table": lambda: run.log_table("bad_metric", {"c": [1, value]}),
    }
    with pytest.raises(logbridge.InvalidMetricTypeError, match="metric 'bad_metric'") as err:
        calls[method]()
    assert isinstance(err.value, TypeError)
    assert run.get_metrics() == {}


@settings(max_examples=50, deadline=None)
@given(value=surrogate_text)
def test_strings_with_lone_surrogates_are_a_value_error(value: str) -> None:
    """A string that cannot be encoded as UTF-8 is refused with a ValueError naming the metric."""
    run = _state.current_run() or logbridge.start_run()
    with pytest.raises(logbridge.InvalidMetricError, match="metric 's': string value is not"):
        run.log("s", value)
    with pytest.raises(ValueError, match="not valid Unicode"):
        run.log_list("s_list", ["fine", value])


def test_string_values_are_capped_at_65536_characters() -> None:
    """65,536 characters are kept; one more, or 10 MB, is a clear error (also for tags)."""
    run = logbridge.start_run()
    longest = "é" * 65_536
    run.log("text", longest)
    run.log_row("row", text=longest)
    assert run.get_metrics() == {"text": longest, "row": {"text": longest}}
    with pytest.raises(logbridge.InvalidMetricError) as err:
        run.log("text", "x" * 65_537)
    assert str(err.value) == "metric 'text': string of 65537 characters; the limit is 65536"
    ten_mb = "x" * 10_000_000
    with pytest.raises(logbridge.InvalidMetricError) as err:
        run.log("big", ten_mb)
    assert str(err.value) == "metric 'big': string of 10000000 characters; the limit is 65536"
    with pytest.raises(logbridge.InvalidMetricError, match="10000000 characters"):
        run.log_list("big", ["ok", ten_mb])
    with pytest.raises(logbridge.InvalidMetricError, match="longer than 65536"):
        run.tag("big", ten_mb)
    assert run.get_metrics() == {"text": longest, "row": {"text": longest}}
    assert run.get_tags() == {}


# -- names --------------------------------------------------------------------------------------


def name_is_valid(name: str) -> bool:
    """The documented policy: 1 to 250 characters, no control character, no lone surrogate."""
    return 0 < len(name) <= 250 and not any(unicodedata.category(c) in ("Cc", "Cs") for c in name)


names = st.one_of(
    st.text(max_size=20),
    st.text(min_size=245, max_size=255),
    st.text(alphabet=st.characters(codec=None), max_size=10),
    surrogate_text,
)


@STORE_SETTINGS
@given(name=names)
@example(name="")
@example(name="x" * 250)
@example(name="x" * 251)
@example(name="nul\x00")
@example(name="tab\t")
@example(name="del\x7f")
@example(name="c1\x85")
@example(name="\ud800")
@example(name="../../etc/passwd")
@example(name="a/b/c")
@example(name="%2e%2e%2f")
@example(name="\u2028line separator")
def test_name_policy(name: str) -> None:
    """A name is accepted exactly when it has 1 to 250 characters and no control character
    (C0, DEL, C1) or lone surrogate; an accepted name reads back unchanged, a refused one is
    a ValueError and records nothing.
    """
    run = logbridge.start_run(experiment="names")
    if name_is_valid(name):
        run.log(name, 1)
        assert run.get_metrics() == {name: 1}
    else:
        with pytest.raises(logbridge.InvalidMetricError) as err:
            run.log(name, 1)
        assert isinstance(err.value, ValueError)
        assert run.get_metrics() == {}


@pytest.mark.parametrize("name", [123, 1.5, None, b"loss", ["loss"], Path("loss")], ids=repr)
def test_names_that_are_not_strings_are_a_type_error(name: Any) -> None:
    """Only str names: numbers, None, bytes, lists and paths are refused with a TypeError."""
    run = logbridge.start_run()
    with pytest.raises(logbridge.InvalidMetricTypeError, match="metric name must be a str") as e:
        run.log(name, 1)
    assert isinstance(e.value, TypeError)


def test_case_and_unicode_variants_are_distinct_names() -> None:
    """Names are compared as exact strings: no case folding, no Unicode normalisation."""
    variants = ["loss", "Loss", "LOSS", "ǆ", "ǅ", "Ǆ", "\u00e9", "e\u0301", "ß", "SS", "ﬁ", "fi"]
    run = logbridge.start_run()
    for i, name in enumerate(variants):
        run.log(name, i)
    assert run.get_metrics() == {name: i for i, name in enumerate(variants)}


def test_names_with_slashes_and_dots_never_touch_the_filesystem(
    store: Path, tmp_path: Path
) -> None:
    """Path-like names are just names: no file or folder appears for them anywhere."""
    path_like = ["../../escaped", "/abs/path", "a/b/c", "..", "C:\\x", "%2e%2e%2f", "x/../../y"]
    run = logbridge.start_run()
    for name in path_like:
        run.log(name, 1.0)
    run.log_row("../row", a=1)
    run.log_table("/table", {"a": [1]})
    run.log_list("..\\list", [1])
    assert set(run.get_metrics()) == {*path_like, "../row", "/table", "..\\list"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"]
    assert {p.name for p in store.iterdir()} <= {"store.db", "store.db-wal", "store.db-shm"}


# -- steps --------------------------------------------------------------------------------------


def _steps(run: logbridge.Run, name: str) -> list[int | None]:
    run.flush()
    recorder = _state.existing_recorder(run.store)
    assert recorder is not None
    return [p.step for p in recorder.store.metric_points(run.id, name)]


def test_integer_steps_of_any_integer_type_are_plain_ints() -> None:
    """Steps may be ints or numpy integers within 64 bits; they are stored as plain ints."""
    run = logbridge.start_run()
    steps = [np.int64(5), np.int8(-3), np.uint32(7), 2**63 - 1, -(2**63), None, Phase.TRAIN]
    for step in steps:
        run.log("loss", 0.5, step=step)
    stored = _steps(run, "loss")
    assert stored == [5, -3, 7, 2**63 - 1, -(2**63), None, 3]
    assert {type(s) for s in stored} == {int, type(None)}


@pytest.mark.parametrize(
    ("step", "error"),
    [
        (1.5, logbridge.InvalidMetricTypeError),
        (np.float64(2.0), logbridge.InvalidMetricTypeError),
        (True, logbridge.InvalidMetricTypeError),
        (np.bool_(True), logbridge.InvalidMetricTypeError),
        ("3", logbridge.InvalidMetricTypeError),
        (2**63, logbridge.InvalidMetricError),
        (np.uint64(2**64 - 1), logbridge.InvalidMetricError),
    ],
    ids=repr,
)
def test_steps_that_are_not_64_bit_integers_are_refused(step: Any, error: type[Exception]) -> None:
    """Floats (even whole ones), bools and strings are a TypeError; ints beyond 64 bits a
    ValueError; both name the metric and nothing is recorded.
    """
    run = logbridge.start_run()
    with pytest.raises(error, match="metric 'loss': step"):
        run.log("loss", 0.5, step=step)
    assert run.get_metrics() == {}
