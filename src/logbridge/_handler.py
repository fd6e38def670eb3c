"""`RunHandler`, the bridge from the standard library's `logging` to the run record.

``emit`` does the least it can in the caller's thread: it finds the run, copies what could
still change (message arguments, extras and tagged metrics that are not immutable) and queues
the record. Formatting, JSON rendering, validation of metrics and all I/O happen on the
recorder's writer thread (`_logrecords`).
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Iterable, Mapping
from types import FrameType
from typing import Any, Final, Protocol

from logbridge import _jsonsafe, _logrecords, _report, _settings, _state, _values
from logbridge._errors import InvalidMetricTypeError
from logbridge._logrecords import Frozen
from logbridge._recorder import Recorder
from logbridge._run import Run, start_run

_RETRY_RUN_AFTER: Final = 30.0


class ThreadState:
    """What logbridge remembers per thread (`thread_state`)."""

    __slots__ = ("busy", "last", "structlog_call")

    def __init__(self) -> None:
        self.last: object = None
        """The last record (or structlog event) recorded in this thread: one record, one entry."""
        self.busy = threading.current_thread().name.startswith("logbridge-")
        """True while this thread is inside logbridge, so logging done there is not recorded
        (always, in logbridge's own threads: no feedback, no waiting on itself)."""
        self.structlog_call: Any = None
        """The frame of a structlog call to a stdlib logger whose event `RunProcessor` recorded."""


class _PerThread(threading.local):
    # One attribute: reading a thread-local attribute costs several times a plain one's.
    def __init__(self) -> None:
        self.state = ThreadState()


_per_thread = _PerThread()


def thread_state() -> ThreadState:
    """This thread's `ThreadState`."""
    return _per_thread.state


class RunHandler(logging.Handler):
    """A logging handler that records every log record into a run.

    Tagged records (``extra={"metrics": {...}, "step": n, "tags": {...}}``) also become metrics
    and tags. Without ``run`` the handler records into the process's run
    (`Run.get_context`), started at the first record if there is none. Works with
    ``basicConfig(handlers=...)``, ``addHandler``, ``dictConfig`` (``"class":
    "logbridge.RunHandler"`` with these keyword arguments) and ``fileConfig``.

    Args:
        level: the handler's level (records below it cost nothing).
        run: a `Run` or a run id to record into, instead of the process's run.
        experiment: experiment of the run the handler starts if there is none yet.
        name: display name of that run.
        tags: tags of that run.
        store: store folder of that run (default ``$LOGBRIDGE_HOME``, else ``./logbridge-runs``).
        otel: also send the process's runs to an OpenTelemetry collector (`logbridge.otel`).
    """

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        run: Run | str | None = None,
        experiment: str | None = None,
        name: str | None = None,
        tags: Mapping[str, Any] | None = None,
        store: str | os.PathLike[str] | None = None,
        otel: bool = False,
    ) -> None:
        """Check the options now, so mistakes surface at configuration time."""
        super().__init__(level)
        if otel:
            _state.enable_otel()
        if run is not None and not isinstance(run, (Run, str)):
            raise InvalidMetricTypeError(f"run= takes a Run or a run id, not {type(run).__name__}")
        if experiment is not None:
            _values.check_name(experiment, "experiment")
        if tags is not None and not isinstance(tags, Mapping):
            raise InvalidMetricTypeError(f"tags= takes a mapping, not {type(tags).__name__}")
        self._run_option = run
        self._run: Run | None = run if isinstance(run, Run) else None
        self._experiment = experiment
        self._run_name = name  # not _name: that is logging.Handler.name
        self._tags = dict(tags) if tags is not None else None
        self._store = store
        self._failed_at = 0.0
        if run is None:
            _unbound.add(self)

    def __repr__(self) -> str:
        """Show the level and the run, if bound."""
        level = logging.getLevelName(self.level)
        return f"<RunHandler ({level}) run={self._run.id if self._run else None}>"

    def handle(self, record: logging.LogRecord) -> bool:
        """Filter ``record`` and `emit` it, without the handler's lock, which emit does not need."""
        if self.filters:
            passed = self.filter(record)
            if not passed:
                return False
            if isinstance(passed, logging.LogRecord):  # a filter's replacement (Python 3.12+)
                record = passed
        self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        """Queue ``record`` for the run; never raises, never does I/O in the common case."""
        try:
            state = _per_thread.state
            last = state.last
            if last is record or state.busy or (last is not None and record.msg is last):
                return
            if state.structlog_call is not None and _rendered_by_structlog(state):
                return
            if record.name not in _outside_names and _internal(record):
                return
            state.last = record
            run = self._run
            if run is None:
                run = _state._current if self._run_option is None else None  # noqa: SLF001
                if run is None:
                    run = self._resolve()
                    if run is None:
                        return
            capture(run, record)
        except RecursionError:
            _report.once(
                "handler_recursion", "RunHandler: recursion while recording; record dropped"
            )
        except Exception:
            self.handleError(record)

    def _resolve(self) -> Run | None:
        """Find or start the run to record into (the slow path of the first record).

        One thread at a time: threads whose first records race here all get the one run the
        first of them starts.
        """
        if self._failed_at and time.monotonic() - self._failed_at < _RETRY_RUN_AFTER:
            return None
        state = _per_thread.state
        was_busy, state.busy = state.busy, True
        try:
            with _resolving:
                if self._run is not None:
                    return self._run
                if isinstance(self._run_option, str):
                    from logbridge._run import get_run  # noqa: PLC0415

                    self._run = get_run(self._run_option, store=self._store)
                    return self._run
                current = _state.current_run()
                if current is not None:
                    return current
                if _settings.run_id() is None and (
                    self._experiment or self._run_name or self._tags or self._store
                ):
                    return start_run(self._experiment, self._run_name, self._tags, self._store)
                return Run.get_context()
        except Exception as err:
            self._failed_at = time.monotonic()
            _report.once(
                "handler_run",
                f"RunHandler cannot start or find its run ({err}); log records are not recorded "
                f"(retrying every {_RETRY_RUN_AFTER:.0f} s)",
            )
            return None
        finally:
            state.busy = was_busy

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 - logging's API
        """Report a failure to record once per kind on stderr; never print a traceback."""
        err = sys.exc_info()[1]
        kind = type(err).__name__ if err is not None else "Error"
        _report.once(
            f"handler_error:{kind}",
            f"RunHandler could not record a log record of {record.name!r} ({kind}: "
            f"{_jsonsafe.describe(err)[:200]}); further errors of this kind are not printed",
        )

    def flush(self) -> None:
        """Wait (boundedly) until the records so far are in the store."""
        run = self._run or _state._current  # noqa: SLF001
        recorder = _state.existing_recorder(run.store) if run is not None else None
        if recorder is not None:
            recorder.flush(_settings.exit_timeout())

    def close(self) -> None:
        """Flush and detach; idempotent. Records emitted afterwards are still recorded."""
        try:
            self.flush()
        finally:
            super().close()


_resolving = threading.RLock()
"""Held while a handler finds or starts its run (`RunHandler._resolve`)."""
_unbound: weakref.WeakSet[RunHandler] = weakref.WeakSet()
"""Handlers recording into the process's run, which they start at their first record."""


def _start_run_before_fork() -> None:
    # Workers forked before the first record (a DataLoader, a fork Pool) would each start a
    # run of their own at their first record: start the process's run now, so they inherit it.
    if _state._current is not None or _settings.run_id() is not None:  # noqa: SLF001
        return
    try:
        for handler in list(_unbound):
            if handler._resolve() is not None:  # noqa: SLF001
                return
    except Exception as err:
        _report.once("handler_fork", f"RunHandler could not start its run before fork: {err}")


os.register_at_fork(before=_start_run_before_fork)

_outside_names: set[str] = set()
"""Logger names known not to be logbridge's (so `emit` checks them with one set lookup)."""
_MAX_KNOWN_NAMES: Final = 10_000


def _rendered_by_structlog(state: ThreadState) -> bool:
    """Whether this record is the one a structlog call, recorded already, renders to stdlib."""
    call = state.structlog_call
    frame: FrameType | None = sys._getframe(2)  # noqa: SLF001 - emit's caller's caller
    while frame is not None:
        if frame is call:
            return True
        frame = frame.f_back
    state.structlog_call = None  # that call has returned: forget it
    return False


def _internal(record: logging.LogRecord) -> bool:
    """Whether ``record`` comes from one of logbridge's own loggers.

    (Records of logbridge's own threads are not recorded either: they are always `busy`.)
    """
    name = record.name
    if isinstance(name, str):
        if name.startswith("logbridge") and (len(name) == 9 or name[9] == "."):
            return True
        if len(_outside_names) < _MAX_KNOWN_NAMES:
            _outside_names.add(name)
    return False


def capture_python(  # noqa: C901, PLR0912, PLR0915 - hot path
    run: Run, record: logging.LogRecord, extras: dict[str, Any] | None = None
) -> None:
    """Queue ``record`` for ``run``, copying now whatever could still change after the call.

    The reference implementation of `capture`, which is its common path compiled
    (``_speedups.c``) when that is built.

    ``extras``: the record's extras, made final, when they are not in its ``__dict__`` (a
    structlog event's).

    The common record (a ``str`` message with arguments of immutable types, no traceback, no
    extras but the tagging ones, tagged metrics of plain values) costs one flat tuple of its
    fields, metrics and arguments (`_logrecords.CAPTURED`), which the garbage collector stops
    tracking at its first pass. Any other record is made final by `_logrecords.snapshot`. This
    runs on every logging call without the compiled capture: it is written for speed.
    """
    data = record.__dict__
    metrics = data.get("metrics")
    tags = data.get("tags")
    step = data.get("step")
    args: Any = record.args
    problems: tuple[str, ...] = ()
    # A LogRecord's own attributes plus the tagging keys it carries: a longer __dict__ holds
    # other extras, which snapshot copies.
    if metrics is None:
        known = _BASE_SIZE
        count = None
        names: Iterable[Any] = ()
        values: tuple[Any, ...] = ()
    else:
        known = _BASE_SIZE + 1
        if type(metrics) is dict:
            # One copy (a single step, which no other thread can split) for names and values.
            names = metrics = metrics.copy()
            values = (*metrics.values(),)
            for value in values:
                if type(value) not in _PLAIN_METRICS:
                    names, values, problems = _capture_metrics(run, metrics)
                    break
        else:
            names, values, problems = _capture_metrics(run, metrics)
        count = len(values)
    if tags is not None:
        known += 1
        if type(tags) is dict:
            tags = tags.copy()
    if step is not None:
        known += 1
    fields: tuple[Any, ...] | None = None
    if (
        len(data) == known
        and type(record) is _LogRecord
        and not record.exc_info
        and type(record.msg) is str
        and (
            not args
            or (type(args) is tuple and len(args) == 1 and type(args[0]) in _PLAIN)
            or _immutable(args)
        )
    ):
        try:
            fields = _fields_of(data)
        except KeyError:
            fields = None
        if not args:
            args = ()
    if fields is None:
        fields, args, found, problem = _snapshot(record)
        if found is not None:
            extras = found if extras is None else {**found, **extras}
        if problem:
            problems = (*problems, problem)
    lane = _lane
    if lane is None or lane[0] is not run:
        lane = _remember(run)
    _, run_id, recorder, queue, mark = lane
    # One flat tuple (`_events.Captured`), with nothing the garbage collector must follow.
    captured = (run_id, *fields, step, tags, problems, extras, count, *names, *values, *args)
    # `Recorder.put`'s common case, inlined (`Recorder.fast_lane`).
    if len(queue) < mark and recorder.accepting:
        queue.append(captured)
        if not recorder.accepting:
            recorder.drain_queued()
    else:
        recorder.put(captured)


_LogRecord: Final = logging.LogRecord
_BASE_SIZE: Final = len(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
_fields_of: Final = _logrecords.fields_of
_immutable: Final = _logrecords.immutable
_PLAIN: Final = frozenset({str, int, float})
_PLAIN_METRICS: Final = frozenset({float, int, str, bool})
"""Metric value types taken as they are (anything else is frozen by `_capture_metrics`)."""
_snapshot: Final = _logrecords.snapshot
_lane: tuple[Run, str, Recorder, collections.deque[Any], int] | None = None
"""The last run recorded into, its id, its recorder and the recorder's `fast_lane`
(forgotten in a forked child)."""


class Capture(Protocol):
    """The signature of `capture`."""

    def __call__(
        self, run: Run, record: logging.LogRecord, extras: dict[str, Any] | None = None, /
    ) -> None:
        """Queue ``record`` for ``run``."""


def compiled_capture() -> Capture | None:
    """The compiled capture (``logbridge._speedups``), ready to use; None if it is not built."""
    try:
        from logbridge import _speedups  # noqa: PLC0415

        _speedups.install(_LogRecord, globals(), capture_python, _logrecords.CAPTURED, _BASE_SIZE)
    except ImportError:  # not built, or not the main interpreter
        return None
    return _speedups.capture


def _chosen_capture() -> Capture:
    """The compiled capture, unless it is not built or LOGBRIDGE_PURE_PYTHON is set."""
    try:
        if _settings.pure_python():
            return capture_python
    except ValueError as err:
        _report.once("pure_python", f"{err}; the compiled capture is used")
    return compiled_capture() or capture_python


capture = _chosen_capture()
"""Queue a log record for a run (`capture_python`, or its compiled common path)."""
COMPILED: Final = capture is not capture_python
"""Whether `capture` is compiled (``logbridge._speedups``, docs/performance.md)."""


def _remember(run: Run) -> tuple[Run, str, Recorder, collections.deque[Any], int]:
    global _lane  # noqa: PLW0603
    recorder = _state.recorder(run.store)
    _lane = (run, run.id, recorder, *recorder.fast_lane())
    return _lane


def forget_recorders() -> None:
    """Forget the recorder remembered for the last run (after fork and after `_state.reset`)."""
    global _lane  # noqa: PLW0603
    _lane = None


def _after_fork_in_child() -> None:
    global _resolving  # noqa: PLW0603
    _resolving = threading.RLock()  # a parent's thread may have held it; it is not here
    forget_recorders()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _capture_metrics(
    run: Run, metrics: Any
) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, ...]]:
    """Return the metrics' names, their values (copied now) and a problem if any."""
    if not isinstance(metrics, Mapping):
        what = type(metrics).__name__
        return (), (), (f"metrics must be a mapping of name to value, not {what}; ignored",)
    copied: dict[Any, Any] = {}
    for name, value in metrics.items():
        if type(value) in _PLAIN_METRICS:
            copied[name] = value
        else:
            frozen = _freeze(run, name, value)
            if frozen is not None:
                copied[name] = frozen
    return (*copied,), (*copied.values(),), ()


def _freeze(run: Run, name: Any, value: Any) -> Frozen | None:
    """Copy a non-primitive metric value now, as the kind its marker type says."""
    try:
        label = name if isinstance(name, str) else repr(name)
        if isinstance(value, _values.Row):
            return Frozen("row", _values.row(value.cells, label))
        if isinstance(value, _values.Table):
            return Frozen("table", _values.columns(value.columns, label))
        if isinstance(value, _values.List):
            return Frozen("list", _values.scalars(value.values, label))
        if isinstance(value, _values.Image):
            run.log_image(name, path=value.path, plot=value.plot)
            return None
        return Frozen("scalar", _values.scalar(value, label))
    except Exception as err:
        return Frozen("error", _jsonsafe.text(str(err))[:300] or type(err).__name__)


_configured: list[logging.Handler] = []
_configure_lock = threading.Lock()
_CONSOLE_FORMAT: Final = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def basicConfig(  # noqa: N802 - named after logging.basicConfig on purpose
    level: int | str = "DEBUG",
    console_level: int | str | None = "INFO",
    experiment: str | None = None,
    levels: Mapping[str, int | str] | None = None,
    *,
    otel: bool = False,
    **options: Any,
) -> Run:
    """Record every library's logs, down to ``level``, while the console shows less.

    Puts a `RunHandler` at ``level`` and (unless the root logger already has a console
    handler, or ``console_level`` is None) a console handler at ``console_level`` on the root
    logger, lowers the root logger to the lower of the two, applies ``levels`` (logger name ->
    level, e.g. ``{"urllib3": "INFO"}``) and captures `warnings`. Calling it again replaces
    what the previous call added instead of adding more.

    Args:
        level: the lowest level recorded into the run.
        console_level: the lowest level shown on stderr, or None for no console handler.
        experiment: the experiment of the run started if there is none yet.
        levels: per-logger levels.
        otel: also send the process's runs to an OpenTelemetry collector (`logbridge.otel`).
        **options: `RunHandler` options (``run``, ``name``, ``tags``, ``store``).

    Returns:
        The run the records go to.
    """
    record_level = _level(level)
    shown_level = None if console_level is None else _level(console_level)
    for value in (levels or {}).values():
        _level(value)
    with _configure_lock:
        root = logging.getLogger()
        for old in _configured:
            root.removeHandler(old)
        _configured.clear()
        handler = RunHandler(record_level, experiment=experiment, otel=otel, **options)
        run = handler._run or _state.current_run() or handler._resolve()  # noqa: SLF001
        if run is None:
            raise RuntimeError("logbridge.basicConfig: no run could be started (see stderr)")
        handler._run = handler._run or (None if run is _state.current_run() else run)  # noqa: SLF001
        root.addHandler(handler)
        _configured.append(handler)
        lowest = record_level
        if shown_level is not None and not _has_console(root):
            console = logging.StreamHandler()
            console.setLevel(shown_level)
            console.setFormatter(logging.Formatter(_CONSOLE_FORMAT))
            root.addHandler(console)
            _configured.append(console)
            lowest = min(lowest, shown_level)
        root.setLevel(lowest)
        for name, value in (levels or {}).items():
            logging.getLogger(name).setLevel(_level(value))
        logging.captureWarnings(True)
    return run


def _has_console(root: logging.Logger) -> bool:
    return any(
        isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler)
        for h in root.handlers
    )


def _level(value: int | str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidMetricTypeError(f"a log level is a name or a number, not {value!r}")
    if isinstance(value, int):
        return value
    number = logging.getLevelName(value.upper())
    if not isinstance(number, int):
        raise ValueError(  # noqa: TRY004 - a bad value, not a bad type
            f"unknown log level {value!r}; use DEBUG, INFO, WARNING, ERROR or a number"
        )
    return number
