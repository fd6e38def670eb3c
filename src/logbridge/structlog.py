"""The structlog bridge: a processor that records events into the run and passes them on.

Put `RunProcessor` anywhere in a structlog processor chain (after ``merge_contextvars`` and
``add_log_level`` to keep bound context and levels)::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        logbridge.structlog.RunProcessor(),
        structlog.processors.JSONRenderer(),
    ])
    structlog.get_logger().info("epoch done", metrics={"loss": 0.31}, step=5)

It also works in the structlog-stdlib integration (in ``ProcessorFormatter``'s
``foreign_pre_chain`` or ``processors``, beside a `logbridge.RunHandler`): each record is
recorded once, however many bridges see it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from types import FrameType
from typing import Any, Final

from logbridge import _jsonsafe, _report, _state
from logbridge._errors import MissingExtraError
from logbridge._handler import RunHandler, capture, thread_state
from logbridge._logrecords import IMMUTABLE, STANDARD
from logbridge._run import Run

try:
    import structlog as _structlog  # noqa: F401 - only to fail early with a clear message
except ImportError as err:  # pragma: no cover - exercised without the extra installed
    raise MissingExtraError(
        "logbridge.structlog needs structlog: pip install 'logbridge[structlog]'"
    ) from err

__all__ = ["RunProcessor"]

_LEVELS: Final = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "msg": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
    "critical": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_NOT_EXTRA: Final = frozenset(
    {"event", "level", "logger", "_record", "_from_structlog", "exc_info"}
)
"""Keys of an event that are neither extras nor tagging keys of its record."""
_TAGGING: Final = frozenset({"metrics", "step", "tags"})


class RunProcessor:
    """A structlog processor recording every event into a run; returns the event unchanged.

    Tagged events (``metrics={...}``, ``step=n``, ``tags={...}``) also become metrics and tags;
    every other key of the event (bound and contextvars context included) is kept as an extra
    of the log record.

    Args:
        run: a `Run` or run id to record into; default the process's run (`Run.get_context`).
        **run_options: options of the run started if there is none yet, as for
            `logbridge.RunHandler` (``experiment``, ``name``, ``tags``, ``store``).
    """

    def __init__(self, run: Run | str | None = None, **run_options: Any) -> None:
        """Check the options now, so mistakes surface at configuration time."""
        self._handler = RunHandler(run=run, **run_options)

    def __repr__(self) -> str:
        """Show the run, if bound."""
        return f"RunProcessor({self._handler!r})"

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        """Record ``event_dict`` (unless this very record was recorded already) and return it."""
        try:
            self._record(logger, method_name, event_dict)
        except Exception as err:
            _report.once(
                f"structlog:{type(err).__name__}",
                f"RunProcessor could not record an event ({_jsonsafe.describe(err)[:200]}); "
                "further errors of this kind are not printed",
            )
        return event_dict

    def _record(self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> None:
        state = thread_state()
        if state.busy:
            return
        source = event_dict.get("_record")
        last = state.last
        if (
            source is not None
            and last is not None
            and (last is source or source.msg is last or _same_record(last, source))
        ):
            return
        handler = self._handler
        run = handler._run or _state._current or handler._resolve()  # noqa: SLF001
        if run is None:
            return
        record, extras = _to_record(logger, method_name, event_dict, source)
        # ProcessorFormatter hands us a copy of the record: remember the original, which is
        # what a RunHandler beside the formatter's handler gets.
        state.last = event_dict if source is None else _original(source, sys._getframe(2))  # noqa: SLF001
        if source is None and isinstance(logger, logging.Logger):
            # The chain ends in this stdlib logger (structlog.stdlib.LoggerFactory): the record
            # it makes of the rendered event is this event again, for a RunHandler to skip.
            state.structlog_call = _structlog_call(sys._getframe(2))  # noqa: SLF001
        capture(run, record, extras)


def _same_record(last: object, record: logging.LogRecord) -> bool:
    """Whether ``last`` is ``record`` or the record ``record`` was copied from."""
    return (
        isinstance(last, logging.LogRecord)
        and last.msg is record.msg
        and last.created == record.created
        and last.thread == record.thread
        and last.name == record.name
    )


def _original(copy: logging.LogRecord, frame: FrameType | None) -> logging.LogRecord:
    """Return the record ``copy`` was made from (found in the logging calls up the stack)."""
    for _ in range(12):
        if frame is None:
            break
        found = frame.f_locals.get("record")
        if found is not copy and isinstance(found, logging.LogRecord) and _same_record(found, copy):
            return found
        frame = frame.f_back
    return copy


def _structlog_call(frame: FrameType | None) -> FrameType | None:
    """Return the frame of the structlog call that runs the chain and then calls the logger.

    That is the caller of structlog's ``_process_event``; processors wrapping this one only
    move it further up the stack.
    """
    found = frame
    for _ in range(8):
        if found is None:
            break
        if found.f_code.co_name == "_process_event":
            return found.f_back
        found = found.f_back
    return frame.f_back if frame is not None else None


def _to_record(
    logger: Any, method_name: str, event: Mapping[str, Any], source: logging.LogRecord | None
) -> tuple[logging.LogRecord, dict[str, Any] | None]:
    """Return the event as a `LogRecord` and its extras, for `capture`.

    A native event's extras come apart from its record (None if it has none), so that `capture`
    takes its common path rather than `_logrecords.snapshot`; they are what snapshot would take
    from a record holding them. ``source``'s copy (the structlog-stdlib integration) holds its
    extras, beside those of the stdlib call: the extras returned are None. A key that is a
    `LogRecord` attribute replaces it (a copy keeps the logger name the event gives).
    """
    level_name = str(event.get("level") or method_name).lower()
    level = _LEVELS.get(level_name, logging.INFO)
    name = event.get("logger") or (source.name if source is not None else None)
    name = name or getattr(logger, "name", None) or "structlog"
    message = event.get("event")
    if not isinstance(message, str):
        message = _jsonsafe.describe(message) if message is not None else ""
    if source is not None:
        record = logging.makeLogRecord(source.__dict__)
        record.msg, record.args = message, None
        record.exc_info = None
    else:
        record = logging.LogRecord(str(name), level, "", 0, message, None, None)
    record.exc_text = _exception_text(event.get("exc_info"), event) or record.exc_text
    data = record.__dict__
    extras = data if source is not None else {}
    for key, value in event.items():
        if key in _NOT_EXTRA:
            continue
        if key in _TAGGING:
            data[key] = value  # copied by capture; a step is an extra as well
            if key != "step" or extras is data:
                continue
        if key in STANDARD:
            data[key] = _jsonsafe.safe(value)
        else:
            extras[key] = value if type(value) in IMMUTABLE else _jsonsafe.safe(value)
    if source is not None:
        record.name = str(name)
    record.process = record.process or os.getpid()
    return record, (extras or None) if extras is not data else None


def _exception_text(exc_info: Any, event: Mapping[str, Any]) -> str | None:
    if not exc_info:
        text = event.get("exception")
        return text if isinstance(text, str) else None
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if not isinstance(exc_info, tuple) or exc_info[0] is None:
        return None
    try:
        return logging.Formatter().formatException(exc_info)
    except Exception as err:
        return f"<traceback could not be formatted: {_jsonsafe.describe(err)}>"
