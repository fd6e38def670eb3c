"""The writer's side of RunHandler: captured records rendered as python-json-logger would."""

from __future__ import annotations

import gc
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest

import logbridge
from logbridge import _handler, _logrecords
from logbridge._events import RecordCaptured

BACKENDS = ["json", "orjson"]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Each JSON backend in turn (orjson is installed with the dev extras)."""
    assert _logrecords.use_backend(request.param) == request.param
    yield request.param
    _logrecords.use_backend("orjson")


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("test.logrecords")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    log.handlers = [logbridge.RunHandler()]
    yield log
    log.handlers = []


def record(**extras: object) -> logging.LogRecord:
    rec = logging.LogRecord("app.train", logging.INFO, "/src/train.py", 12, "epoch %d", (3,), None)
    rec.funcName = "fit"
    rec.__dict__.update(extras)
    return rec


@pytest.mark.parametrize(
    "extras",
    [{}, {"step": 3}, {"step": 3, "user": "ann", "_private": 1, "config": {"lr": 0.1}}],
)
def test_render_matches_python_json_loggers_own_format(backend: str, extras: dict) -> None:
    """The fast path writes the fields python-json-logger's format() writes, in its order."""
    rec = record(**extras)
    snapshot = _logrecords.snapshot(rec)
    assert snapshot.problem is None
    assert snapshot.args == (3,)
    formatter = _logrecords.formatter()
    fast = formatter.render(_captured(rec), "epoch 3")
    own = formatter.format(rec)
    assert json.loads(fast) == json.loads(own)
    assert list(json.loads(fast)) == list(json.loads(own))
    assert formatter.backend == backend


@pytest.mark.parametrize(
    ("name", "message", "created"),
    [
        ("app.train", "epoch 3", 1795437808.8399181),
        ("app.train", 'quotes " and \\ and \n and \u2028 and é', 1e-05),
        (_logrecords._MESSAGE_MARK, "a logger named like the marker", 1e16),
        ("app.train", "float time", 0.0),
    ],
)
@pytest.mark.parametrize("tagged", [None, ({"loss": 0.25, "acc": 1, "big": 2**70}, 2**70)])
def test_a_call_sites_text_gives_the_json_of_the_general_path(
    backend: str, name: str, message: str, created: float, tagged: tuple[dict, int] | None
) -> None:
    """The common record, written from its call site's text, is what the dict path writes."""
    rec = record()
    rec.name = name
    metrics, step = tagged or (None, None)
    captured = _captured(rec, step)
    fields = (captured[0], created, *captured[2:])
    formatter = _logrecords.formatter()
    line = formatter.render(fields, message, metrics)
    general = formatter._render_dict(fields, message, metrics, None, plain=False)
    assert json.loads(line) == json.loads(general)
    assert list(json.loads(line)) == list(json.loads(general))
    assert formatter.backend == backend
    # The line came from the site's text, unless the site's fields hold a marker.
    site_text = formatter._sites[fields[_logrecords._CALL_SITE]]
    assert (site_text is None) == (name == _logrecords._MESSAGE_MARK)


def test_the_caller_captures_a_tuple_of_immutable_fields() -> None:
    """A plain tagged record is queued as a tuple of its fields, not as the LogRecord."""
    rec = record(metrics={"loss": 0.5}, step=3)
    fields = _logrecords.fields_of(rec.__dict__)
    assert fields[: len(_logrecords.CAPTURED)] == tuple(
        rec.__dict__[name] for name in _logrecords.CAPTURED
    )
    assert all(type(value) in _logrecords.IMMUTABLE | {tuple} for value in fields)


@pytest.mark.parametrize(
    ("extras", "from_text"),
    [
        ({"user": "ann", "n": 3, "ratio": 0.5, "ok": True, "none": None, "step": 7}, True),
        ({"_private": 1, "quote": 'a " \\ \n \u2028 é', "big": 2**70}, True),
        ({"long": "x" * 2_000_000}, True),
        ({"nan": math.nan}, False),
        ({"items": [1, {"a": 2}]}, False),
        ({"time": "an extra named like a field"}, False),
        ({"clé": "a key that is not ASCII"}, False),
    ],
)
def test_a_record_with_extras_from_its_call_sites_text_is_what_the_dict_gives(
    backend: str, extras: dict[str, Any], from_text: bool
) -> None:
    """Extras of plain values are put after the call site's text, as `_render_dict` puts
    them; any other extra sends the record through the dict."""
    rec = record(**extras)
    captured = _captured(rec, None)
    formatter = _logrecords.formatter()
    metrics = {"loss": 0.25}
    line = formatter.render(captured, "epoch 3", metrics)
    general = formatter._render_dict(captured, "epoch 3", metrics, None, plain=False)
    assert json.loads(line) == json.loads(general)
    assert list(json.loads(line)) == list(json.loads(general))
    assert (formatter._extras_text(captured[_logrecords._EXTRAS]) is not None) == from_text
    assert formatter.backend == backend


def test_a_queued_record_is_a_flat_tuple_the_collector_stops_tracking(
    queued: tuple[Any, list[Any]],
) -> None:
    """The handler queues one flat tuple: fields, metrics and message arguments side by side.

    A tuple holding a tuple (the arguments', the metrics') would stay tracked a pass longer,
    and a named tuple until written.
    """
    run, records = queued
    rec = record(metrics={"loss": 0.5, "acc": 1}, step=3)
    _handler.capture(run, rec)
    (event,) = records
    assert type(event) is tuple
    fields = _logrecords.fields_of(rec.__dict__)
    assert event == ("run-id", *fields, 3, None, (), None, 2, "loss", "acc", 0.5, 1, 3)
    gc.collect()
    assert not gc.is_tracked(event)


def _captured(rec: logging.LogRecord, step: int | None = None) -> tuple[Any, ...]:
    """``rec`` as the writer gets it from the handler (`_logrecords.CAPTURED`)."""
    return _logrecords.flat(RecordCaptured("run-id", rec, None, step, None, ()))


def test_both_backends_store_the_same_record(logger: logging.Logger, backend: str) -> None:
    """NaN, huge and non-ASCII values, ints beyond 64 bits and odd keys, with either backend."""
    run = logbridge.start_run()
    logger.info(
        "épreuve %s",
        "ü",
        extra={
            "metrics": {"loss": math.nan, "acc": 0.5, "count": 7},
            "step": 2,
            "big": 2**70,
            "surrogate": "x\udcff",
            "nested": {1: [math.inf, b"\xff"]},
        },
    )
    logger.info("odd key", extra={3: "three"})
    first, second = run.get_logs()
    assert first["message"] == "épreuve ü"
    assert first["metrics"] == {"loss": "NaN", "acc": 0.5, "count": 7}
    assert first["step"] == 2
    assert first["big"] == 2**70
    assert first["surrogate"] == "x\\udcff"
    assert first["nested"] == {"1": ["Infinity", "\\xff"]}
    assert second["3"] == "three"
    metrics = run.get_metrics()
    assert math.isnan(metrics["loss"])
    assert (metrics["acc"], metrics["count"]) == (0.5, 7)


def test_a_record_subclass_is_formatted_at_the_call(logger: logging.Logger) -> None:
    """A LogRecord subclass may format its message its own way: that happens in the caller."""

    class Shouting(logging.LogRecord):
        def getMessage(self) -> str:
            return super().getMessage().upper()

    run = logbridge.start_run()
    previous = logging.getLogRecordFactory()
    logging.setLogRecordFactory(Shouting)
    try:
        logger.info("quiet %s", "please", extra={"metrics": {"m": 1.0}})
    finally:
        logging.setLogRecordFactory(previous)
    assert run.get_logs()[0]["message"] == "QUIET PLEASE"
    assert run.get_metrics() == {"m": 1.0}


def test_mutable_arguments_and_an_explicit_none_step(logger: logging.Logger) -> None:
    """A list argument is formatted at the call; ``step=None`` is kept as null in the line."""
    run = logbridge.start_run()
    values = [1, 2]
    logger.info("values %s", values, extra={"metrics": {"m": 2.0}, "step": None})
    values.append(3)
    record = run.get_logs()[0]
    assert record["message"] == "values [1, 2]"
    assert record["step"] is None
    assert run.get_metrics() == {"m": 2.0}


def test_a_new_run_gets_the_records_after_the_last_one_is_gone(logger: logging.Logger) -> None:
    """The recorder remembered for the last run is not used for the next one."""
    first = logbridge.start_run()
    logger.info("first")
    logbridge.testing.reset()
    second = logbridge.start_run()
    logger.info("second")
    assert [r["message"] for r in second.get_logs()] == ["second"]
    assert [r["message"] for r in first.get_logs()] == ["first"]
    _handler.forget_recorders()
    logger.info("third")
    assert [r["message"] for r in second.get_logs()] == ["second", "third"]


def test_unknown_backend_is_refused() -> None:
    """use_backend names the backends it knows."""
    with pytest.raises(ValueError, match="orjson, json"):
        _logrecords.use_backend("ujson")
