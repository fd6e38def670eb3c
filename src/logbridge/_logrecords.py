"""Turning captured stdlib log records into run events, on the recorder's writer thread.

The caller's thread only captured what could change (see `_handler`); here the message is
formatted, the record rendered as one JSON line by python-json-logger, and its tagged metrics
and tags validated. Nothing here raises: a record that cannot be rendered is stored with a
fallback and a ``logbridge_problems`` field, and each kind of problem is reported once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any, Final, NamedTuple

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from logbridge import _events as ev
from logbridge import _jsonsafe, _report, _values

_FIELDS: Final = (
    "created",
    "levelname",
    "levelno",
    "name",
    "message",
    "pathname",
    "lineno",
    "funcName",
    "process",
    "processName",
    "thread",
    "threadName",
)
_RENAMES: Final = {
    "created": "time",
    "levelname": "level",
    "name": "logger",
    "pathname": "file",
    "lineno": "line",
    "funcName": "function",
    "processName": "process_name",
    "threadName": "thread_name",
    "exc_info": "exception",
    "stack_info": "stack",
}
_RANK_VARIABLES: Final = ("RANK", "LOCAL_RANK")


class RecordFormatter(JsonFormatter):
    """python-json-logger's formatter, given a message formatted once and made JSON-safe.

    Every field of the record and every extra attribute is kept (renamed as in `_RENAMES`);
    values are made JSON-safe by `_jsonsafe` and serialised with the standard json module's
    C encoder (the data is plain by then, so its custom encoder is not needed).
    """

    def __init__(self) -> None:
        """Configure the fields and renames of the run's log."""
        super().__init__(
            list(_FIELDS),
            rename_fields=dict(_RENAMES),
            static_fields=_ranks(),
            reserved_attrs=[*RESERVED_ATTRS, "metrics", "tags"],
        )

    def render(
        self, record: logging.LogRecord, message: str, extra: dict[str, Any] | None = None
    ) -> str:
        """Return ``record`` as one JSON line, with ``message`` and the ``extra`` fields."""
        message_dict: dict[str, Any] = dict(extra) if extra else {}
        if record.exc_text:
            message_dict["exc_info"] = record.exc_text
        if record.stack_info:
            message_dict["stack_info"] = record.stack_info
        log_data: dict[str, Any] = {}
        self.add_fields(log_data, record, message_dict)
        log_data["message"] = message
        return self.serialize_log_record(self.process_log_record(log_data))

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Make every value JSON-safe (cycles, depth, size, NaN, bytes, bad Unicode)."""
        return _jsonsafe.safe_dict(log_data)

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialise with the C encoder; the data is JSON-safe already."""
        return json.dumps(log_data, ensure_ascii=False, separators=(",", ":"))


def _ranks() -> dict[str, str]:
    return {name.lower(): os.environ[name] for name in _RANK_VARIABLES if name in os.environ}


_formatter: RecordFormatter | None = None


def formatter() -> RecordFormatter:
    """Return the process's record formatter (made at first use, after any fork)."""
    global _formatter  # noqa: PLW0603
    if _formatter is None:
        _formatter = RecordFormatter()
    return _formatter


def message_of(record: logging.LogRecord) -> tuple[str, str | None]:
    """Return the record's formatted message and a problem, never raising.

    When ``msg % args`` fails (a bad ``%d``, an argument whose ``__str__`` raises), the raw
    message and the arguments' reprs are kept, with a marker.
    """
    try:
        message = record.getMessage()
        if not isinstance(message, str):
            raise TypeError("message is not a string")  # noqa: TRY301
    except Exception as err:
        msg = _jsonsafe.describe(record.msg) if not isinstance(record.msg, str) else record.msg
        args = record.args
        shown = (
            "(" + ", ".join(_jsonsafe.describe(a) for a in args) + ")"
            if isinstance(args, tuple)
            else _jsonsafe.describe(args)
        )
        problem = f"message could not be formatted ({type(err).__name__}: {_err_text(err)})"
        return f"{msg} [logbridge: {problem}; args: {shown}]", problem
    return _jsonsafe.text(message), None


def expand(batch: Iterable[ev.Event]) -> list[ev.Event]:
    """Return ``batch`` with each captured record replaced by the events it stands for."""
    out: list[ev.Event] = []
    for event in batch:
        if type(event) is ev.RecordCaptured:
            _convert(event, out)
        else:
            out.append(event)
    return out


def _convert(captured: ev.RecordCaptured, out: list[ev.Event]) -> None:
    record = captured.record
    problems = list(captured.problems)
    message, problem = message_of(record)
    if problem:
        problems.append(problem)
    extra: dict[str, Any] = {}
    if captured.metrics is not None:
        step = _step(captured.step, problems)
        for name, value in captured.metrics:
            metric = _metric(
                captured.run_id, name, value, step=step, when=record.created, problems=problems
            )
            if metric is not None:
                out.append(metric)
        extra["metrics"] = {
            n if isinstance(n, str) else _jsonsafe.describe(n): _jsonsafe.safe(
                v.value if type(v) is Frozen else v
            )
            for n, v in captured.metrics
            if type(v) is not Frozen or v.kind != "error"
        }
    if captured.tags is not None:
        tags = _tags(captured.run_id, captured.tags, problems)
        if tags is not None:
            out.append(tags)
            extra["tags"] = dict(tags.tags)
    if problems:
        _report_problems(captured.run_id, problems, out)
    try:
        line = formatter().render(record, message, extra)
        if problems:
            line = line[:-1] + ',"logbridge_problems":' + json.dumps(problems) + "}"
    except Exception as err:
        line = json.dumps(
            {
                "time": record.created,
                "level": record.levelname,
                "logger": record.name,
                "message": message,
                "logbridge_problems": [*problems, f"record could not be rendered: {err!r}"],
            },
            default=str,
        )
    out.append(
        ev.LogRecorded(
            run_id=captured.run_id,
            time=record.created,
            level=record.levelno,
            logger=record.name,
            message=message,
            process=record.process or 0,
            record=line,
        )
    )


def _report_problems(run_id: str, problems: list[str], out: list[ev.Event]) -> None:
    for item in problems:
        _report.once(
            "record:" + item.split(" ", 1)[0],
            f"a log record was kept with a fallback: {item} "
            "(further problems of this kind are recorded in the run, not printed)",
        )
    invalid = sum(1 for p in problems if p.startswith("metric "))
    if invalid:
        out.append(ev.Dropped(run_id, "invalid_metric", invalid))


def _err_text(err: BaseException) -> str:
    try:
        return _jsonsafe.text(str(err))[:200]
    except Exception:
        return "?"


def _step(step: Any, problems: list[str]) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        plain = _plain(item) if callable(item) else None
        if isinstance(plain, bool) or not isinstance(plain, int):
            problems.append(
                f"step {_jsonsafe.describe(step)[:60]} is not an int; metrics kept without it"
            )
            return None
        step = plain
    if not _values.INT64_MIN <= step <= _values.INT64_MAX:
        problems.append(f"step {step} does not fit in 64 bits; metrics kept without it")
        return None
    return int(step)


def _plain(item: Any) -> Any:
    try:
        return item()
    except Exception:
        return None


class Frozen(NamedTuple):
    """A tagged metric value the caller's thread already copied: its kind and plain value.

    ``kind`` ``"error"`` carries the message of a value that could not be captured.
    """

    kind: str
    value: Any


def _metric(
    run_id: str, name: Any, value: Any, *, step: int | None, when: float, problems: list[str]
) -> ev.MetricLogged | None:
    shown = _jsonsafe.describe(name)[:80]
    try:
        name = _values.check_name(name)
        if type(value) is Frozen:
            kind, plain = value
            if kind == "error":
                problems.append(f"metric {shown}: {plain}")
                return None
        else:
            kind, plain = "scalar", _values.scalar(value, name)
    except (TypeError, ValueError) as err:
        text = _err_text(err)
        problems.append(text if text.startswith("metric") else f"metric {shown}: {text}")
        return None
    return ev.MetricLogged(run_id, name, kind, plain, step, when)


def _tags(run_id: str, tags: Any, problems: list[str]) -> ev.TagsSet | None:
    if not isinstance(tags, Mapping):
        problems.append(f"tags must be a mapping, not {type(tags).__name__}; ignored")
        return None
    items = []
    for key, value in tags.items():
        try:
            key = _values.check_name(key, "tag")  # noqa: PLW2901
            if value is not None and not isinstance(value, str):
                value = str(value) if isinstance(value, (int, float)) else _jsonsafe.describe(value)  # noqa: PLW2901
            items.append(
                (key, None if value is None else _jsonsafe.text(value)[: _values.MAX_STRING_LENGTH])
            )
        except (TypeError, ValueError) as err:
            problems.append(f"tag {_jsonsafe.describe(key)[:80]}: {_err_text(err)}")
    return ev.TagsSet(run_id, tuple(items)) if items else None


def reset_after_fork() -> None:
    """Forget the formatter (its static fields come from the environment)."""
    global _formatter  # noqa: PLW0603
    _formatter = None
