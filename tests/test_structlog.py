"""The structlog bridge: RunProcessor in native chains and in the structlog-stdlib integration."""

from __future__ import annotations

import copy
import io
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
import structlog.testing

import logbridge
import logbridge.structlog as logbridge_structlog
from logbridge import _handler, _logrecords
from logbridge.structlog import RunProcessor


@pytest.fixture(autouse=True)
def clean_logging() -> Iterator[logging.Logger]:
    """structlog's defaults and the root logger's handlers and level restored after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield root
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    root.handlers = handlers
    root.setLevel(level)


def configure_native(out: Any, renderer: Any, *, factory: Any = None) -> None:
    """A structlog-native chain with RunProcessor before the renderer."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            RunProcessor(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        logger_factory=factory or structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )


def test_json_chain_records_events_with_bound_and_contextvars_context() -> None:
    """JSONRenderer + PrintLoggerFactory: the output is unchanged; context is kept as extras."""
    run = logbridge.start_run(experiment="s")
    out = io.StringIO()
    configure_native(out, structlog.processors.JSONRenderer(sort_keys=True))
    structlog.contextvars.bind_contextvars(request_id="r-1")
    log = structlog.get_logger().bind(user="ann", attempt=2)
    log.info("epoch", metrics={"loss": 0.3}, step=5)
    log.warning("slow", seconds=1.5)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {
            "attempt": 2,
            "event": "epoch",
            "level": "info",
            "metrics": {"loss": 0.3},
            "request_id": "r-1",
            "step": 5,
            "user": "ann",
        },
        {
            "attempt": 2,
            "event": "slow",
            "level": "warning",
            "request_id": "r-1",
            "seconds": 1.5,
            "user": "ann",
        },
    ]
    logs = run.get_logs()
    assert [(r["level"], r["message"]) for r in logs] == [("INFO", "epoch"), ("WARNING", "slow")]
    assert {k: logs[0][k] for k in ("user", "attempt", "request_id", "step", "metrics")} == {
        "user": "ann",
        "attempt": 2,
        "request_id": "r-1",
        "step": 5,
        "metrics": {"loss": 0.3},
    }
    assert logs[1]["seconds"] == 1.5
    assert logs[0]["thread_name"] == "MainThread"
    assert run.get_metrics() == {"loss": 0.3}


def test_tagged_events_become_metrics_steps_and_tags() -> None:
    """``metrics=``, ``step=`` and ``tags=`` on an event record metrics and tags, like extras."""
    run = logbridge.start_run(experiment="s")
    configure_native(io.StringIO(), structlog.processors.JSONRenderer())
    log = structlog.get_logger()
    for epoch in range(3):
        log.info("epoch", metrics={"loss": 1.0 / (epoch + 1), "acc": 0.5}, step=epoch)
    log.info("rows", metrics={"curve": logbridge.Row(recall=0.5, precision=0.8)})
    log.info("phase", tags={"phase": "eval"})
    assert run.get_metrics() == {
        "loss": [1.0, 0.5, 1.0 / 3],
        "acc": [0.5, 0.5, 0.5],
        "curve": {"recall": 0.5, "precision": 0.8},
    }
    assert run.get_tags() == {"phase": "eval"}
    assert [r["step"] for r in run.get_logs(contains="epoch")] == [0, 1, 2]


def test_console_renderer_output_is_the_same_with_and_without_the_processor() -> None:
    """ConsoleRenderer(colors=False) prints exactly what it prints without RunProcessor."""
    run = logbridge.start_run(experiment="s")

    def emit(with_processor: bool) -> str:
        out = io.StringIO()
        processors: list[Any] = [structlog.processors.add_log_level]
        if with_processor:
            processors.append(RunProcessor())
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
        structlog.configure(
            processors=processors,
            logger_factory=structlog.PrintLoggerFactory(out),
            cache_logger_on_first_use=False,
        )
        structlog.get_logger().bind(user="ann").info("epoch", metrics={"loss": 0.3}, step=5)
        return out.getvalue()

    assert emit(with_processor=True) == emit(with_processor=False)
    assert [r["message"] for r in run.get_logs()] == ["epoch"]


def test_bytes_logger_factory_chain() -> None:
    """With BytesLoggerFactory and a bytes-producing renderer the output is unchanged."""
    run = logbridge.start_run(experiment="s")
    out = io.BytesIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            RunProcessor(),
            structlog.processors.JSONRenderer(serializer=lambda d, **_: json.dumps(d).encode()),
        ],
        logger_factory=structlog.BytesLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    structlog.get_logger().info("bytes out", metrics={"n": 1})
    assert json.loads(out.getvalue()) == {
        "event": "bytes out",
        "level": "info",
        "metrics": {"n": 1},
    }
    assert [r["message"] for r in run.get_logs()] == ["bytes out"]
    assert run.get_metrics() == {"n": 1}


@pytest.mark.parametrize("format_first", [False, True])
def test_log_exception_stores_the_traceback(format_first: bool) -> None:
    """``log.exception`` stores the traceback, whether format_exc_info runs before or after."""
    run = logbridge.start_run(experiment="s")
    out = io.StringIO()
    processors: list[Any] = [structlog.processors.add_log_level, RunProcessor()]
    processors.insert(1 if format_first else 2, structlog.processors.format_exc_info)
    structlog.configure(
        processors=[*processors, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        structlog.get_logger().exception("step failed", step=3)
    record = run.get_logs()[0]
    assert (record["level"], record["message"]) == ("ERROR", "step failed")
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].rstrip().endswith("ZeroDivisionError: division by zero")
    assert "ZeroDivisionError" in json.loads(out.getvalue())["exception"]


def test_event_dict_is_returned_unchanged() -> None:
    """The processor returns the very event dict it was given, with the same content."""
    logbridge.start_run(experiment="s")
    processor = RunProcessor()
    event: dict[str, Any] = {
        "event": "epoch",
        "level": "info",
        "metrics": {"loss": 0.3, "curve": logbridge.Row(x=1)},
        "step": 5,
        "tags": {"phase": "train"},
        "nested": {"a": [1, {"b": (2, 3)}]},
        "items": [1, 2, 3],
        "odd": {1: "non-str key"},
    }
    before = copy.deepcopy(event)
    assert processor(None, "info", event) is event
    assert event == before
    assert event["metrics"]["curve"] is not before["metrics"]["curve"]


def test_processor_never_raises_and_keeps_the_event_when_recording_fails(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Events the processor cannot record are passed on unchanged; one line on stderr."""
    processor = RunProcessor(run="no-such-run")
    event = {"event": "lost", "metrics": {"x": 1}}
    assert processor(None, "info", event) is event
    assert processor(None, "info", event) is event
    assert event == {"event": "lost", "metrics": {"x": 1}}
    assert capsys.readouterr().err.count("logbridge:") == 1


def _stdlib_setup(
    root: logging.Logger, *, foreign: bool, in_processors: bool, handler_first: bool
) -> io.StringIO:
    stream = io.StringIO()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level] + ([RunProcessor()] if foreign else []),
        processors=([RunProcessor()] if in_processors else [])
        + [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    console = logging.StreamHandler(stream)
    console.setFormatter(formatter)
    handlers: list[logging.Handler] = [console, logbridge.RunHandler()]
    root.handlers = handlers[::-1] if handler_first else handlers
    root.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            RunProcessor(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    return stream


@pytest.mark.parametrize("handler_first", [False, True])
@pytest.mark.parametrize(("foreign", "in_processors"), [(True, False), (False, True), (True, True)])
def test_processor_formatter_beside_a_run_handler_stores_each_record_once(
    clean_logging: logging.Logger, foreign: bool, in_processors: bool, handler_first: bool
) -> None:
    """ProcessorFormatter with RunProcessor (foreign_pre_chain and/or processors) + RunHandler.

    Whatever the order of the handlers, each stdlib and each structlog record is stored
    once, tagged metrics are recorded once, and the console output is still rendered.
    """
    run = logbridge.start_run(experiment="s")
    stream = _stdlib_setup(
        clean_logging, foreign=foreign, in_processors=in_processors, handler_first=handler_first
    )
    logging.getLogger("lib").info("plain %s", "stdlib", extra={"metrics": {"a": 1}})
    structlog.get_logger("app").info("from structlog", metrics={"b": 2}, step=1, user="ann")
    logging.getLogger("lib").warning("second plain")
    logs = run.get_logs()
    assert [(r["logger"], r["level"], r["message"]) for r in logs] == [
        ("lib", "INFO", "plain stdlib"),
        ("app", "INFO", "from structlog"),
        ("lib", "WARNING", "second plain"),
    ]
    assert logs[1]["user"] == "ann"
    assert run.get_metrics() == {"a": 1, "b": 2}
    rendered = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["event"] for line in rendered] == [
        "plain stdlib",
        "from structlog",
        "second plain",
    ]


def test_rendered_structlog_events_through_stdlib_are_stored_once(
    clean_logging: logging.Logger,
) -> None:
    """structlog.stdlib.LoggerFactory + JSONRenderer with a RunHandler on root: once each.

    The stdlib record carrying the rendered JSON string is the event RunProcessor recorded,
    so the RunHandler skips it; the next plain stdlib record is recorded as usual.
    """
    run = logbridge.start_run(experiment="s")
    stream = io.StringIO()
    clean_logging.handlers = [logbridge.RunHandler(), logging.StreamHandler(stream)]
    clean_logging.setLevel(logging.INFO)
    structlog.configure(
        processors=[
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            RunProcessor(),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    structlog.get_logger("app").info("epoch", metrics={"loss": 0.3}, step=5)
    structlog.get_logger("app").debug("filtered out by the stdlib level")
    logging.getLogger("plain").info("plain record")
    structlog.get_logger("app").info("second")
    assert [(r["logger"], r["message"]) for r in run.get_logs()] == [
        ("app", "epoch"),
        ("app", "filtered out by the stdlib level"),
        ("plain", "plain record"),
        ("app", "second"),
    ]
    assert run.get_metrics() == {"loss": 0.3}
    assert len(stream.getvalue().splitlines()) == 3


def test_capture_logs_still_works_with_the_processor_configured() -> None:
    """structlog.testing.capture_logs captures as usual; LogCapture after RunProcessor too."""
    run = logbridge.start_run(experiment="s")
    configure_native(io.StringIO(), structlog.processors.JSONRenderer())
    with structlog.testing.capture_logs() as captured:
        structlog.get_logger().info("captured", metrics={"loss": 0.1})
    assert captured == [{"event": "captured", "metrics": {"loss": 0.1}, "log_level": "info"}]
    capture = structlog.testing.LogCapture()
    structlog.configure(processors=[RunProcessor(), capture])
    structlog.get_logger().info("both", metrics={"loss": 0.2})
    assert capture.entries == [{"event": "both", "metrics": {"loss": 0.2}, "log_level": "info"}]
    assert [r["message"] for r in run.get_logs()] == ["both"]
    assert run.get_metrics() == {"loss": 0.2}


class _Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


def _native_events() -> list[dict[str, Any]]:
    failed = {"event": "failed", "level": "error", "exc_info": KeyError("k")}
    return [
        {"event": "plain"},
        {"event": "levelled", "level": "warning", "logger": "app.train"},
        {"event": 42, "level": "no-such-level"},
        {"event": None},
        {"event": "context", "user": "ann", "attempt": 2, "ratio": 0.5, "ok": True, "none": None},
        {"event": "mutable", "items": [1, {"a": (2, 3)}], "odd": {1: "non-str key"}},
        {"event": "odd values", "bad": _Unprintable(), "raw": b"\xff", "nan": math.nan},
        {"event": "tagged", "metrics": {"loss": 0.3, "acc": 1}, "step": 5, "tags": {"p": "t"}},
        {"event": "step only", "step": 7, "timestamp": "2026-11-23T10:00:00Z"},
        {"event": "_private", "_hidden": 1, "visible": 2},
        {"event": "clashes", "process": "trainer", "name": "n"},  # LogRecord attributes
        # "message" is not set on a fresh record: capture takes snapshot's path, extras given
        {"event": "slow path", "message": "m", "user": "ann", "step": 2},
        failed,
    ]


@pytest.mark.parametrize("event", _native_events(), ids=lambda event: str(event["event"]))
def test_a_native_event_is_queued_as_its_log_record_would_be(
    event: dict[str, Any], queued: tuple[Any, list[Any]]
) -> None:
    """A native event's record, with its extras apart, is queued as the record holding them
    in its ``__dict__`` (through `_logrecords.snapshot`): the same fields, the same line."""
    run, records = queued
    record, extras = logbridge_structlog._to_record(None, "info", event, None)
    _handler.capture(run, record, extras)
    record.__dict__.update(extras or {})
    _handler.capture(run, record)
    apart, held = records
    assert ("KeyError: 'k'" in (apart[_logrecords._EXC_TEXT] or "")) == (event["event"] == "failed")
    assert apart[: _logrecords._EXTRAS] == held[: _logrecords._EXTRAS]
    # What is stored: the same line (immutable extras are made JSON-safe on the writer thread).
    assert _logrecords.expand([apart]) == _logrecords.expand([held])


def test_a_copied_stdlib_record_keeps_its_logger_name_and_takes_the_other_keys() -> None:
    """In the structlog-stdlib integration an event's ``name`` key does not rename the logger;
    its other keys are extras of the copy, and ``exc_info`` is not carried over."""
    source = logging.LogRecord("app", logging.INFO, "train.py", 7, "raw", None, None)
    event = {"event": "epoch", "name": "other", "user": "ann", "step": 3, "_record": source}
    record, extras = logbridge_structlog._to_record(None, "info", event, source)
    assert extras is None  # the copy holds them
    assert (record.name, record.msg, record.lineno) == ("app", "epoch", 7)
    assert (record.__dict__["user"], record.__dict__["step"]) == ("ann", 3)
    assert record.exc_info is None
    assert record is not source
