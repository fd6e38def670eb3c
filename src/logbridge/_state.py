"""The process's global state: its current run, the runs it owns and one recorder per store.

Everything global lives here, with `reset` for tests. Hooks for exit, uncaught exceptions,
SIGTERM and fork are installed when the first run of the process starts, never at import.
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from logbridge import _report, _settings, _store
from logbridge._recorder import Recorder
from logbridge._sinks import Sink

if TYPE_CHECKING:
    from logbridge._run import Run

_lock = threading.RLock()
_recorders: dict[Path, Recorder] = {}
_owned: dict[str, Run] = {}
_current: Run | None = None
_failure: dict[str, Any] | None = None
_terminated = False
_hooks_installed = False
_exit_armed_pid = 0
_exited = False
_shutdown_thread = 0
"""The thread running `shutdown`, if one is: a SIGTERM arriving there must not re-enter it."""
_abandoned: list[object] = []
"""What a forked child inherited and must neither use nor close."""
_sink_factories: dict[str, Callable[[Recorder], Sink]] = {}
"""Name -> a function making a sink for a recorder; every recorder of the process gets one."""


def recorder(folder: Path) -> Recorder:
    """Return this process's recorder for the store in ``folder``, opening the store if needed.

    Raises:
        StoreError: the store cannot be created or opened.
    """
    found = _recorders.get(folder)
    if found is not None:
        return found
    with _lock:
        found = _recorders.get(folder)
        if found is None:
            found = Recorder(
                _store.SQLiteStore(folder),
                queue_size=_settings.queue_size(),
                full_policy=_settings.queue_full_policy(),
                flush_interval=_settings.flush_interval(),
                process_after=_settings.writer_process_after(),
            )
            _attach_sinks(found)
            _recorders[folder] = found
            _install_hooks()
            _arm_multiprocessing_exit()
            if _exited:
                # Exit handling has run (this is a late atexit handler or a __del__): no
                # close is coming for this recorder, and 3.12+ refuses new threads.
                found.close(0)
        return found


def add_sink_factory(name: str, factory: Callable[[Recorder], Sink]) -> None:
    """Give every recorder of this process, present and future, a sink made by ``factory``.

    Adding a factory under a name already known does nothing. Forked children keep the
    factories, and their recorders get sinks of their own.
    """
    with _lock:
        if name in _sink_factories:
            return
        _sink_factories[name] = factory
        recorders = list(_recorders.values())
    for rec in recorders:
        rec.add_sink(factory(rec))


def enable_otel() -> None:
    """Send this process's runs to OpenTelemetry (`logbridge.otel.enable`), importing it now.

    Raises:
        MissingExtraError: the ``otel`` extra is not installed.
    """
    from logbridge import otel  # noqa: PLC0415 - OpenTelemetry is imported only when asked

    otel.enable()


def _attach_sinks(rec: Recorder) -> None:
    if _settings.otel_enabled():
        enable_otel()
    for factory in _sink_factories.values():
        rec.add_sink(factory(rec))


def existing_recorder(folder: Path) -> Recorder | None:
    """Return this process's recorder for ``folder`` if it has one."""
    return _recorders.get(folder)


def current_run() -> Run | None:
    """Return the process's current run, if any."""
    return _current


def set_current(run: Run) -> bool:
    """Make ``run`` the current run unless one is already current; return whether it is now.

    The run's id and store are put in the environment, so processes started from here belong
    to the same run.
    """
    global _current  # noqa: PLW0603
    with _lock:
        if _current is not None:
            return _current is run
        _current = run
        os.environ[_settings.RUN_ID] = run.id
        os.environ[_settings.HOME] = str(run.store)
        return True


def own(run: Run) -> None:
    """Record that this process started ``run`` and must finish it."""
    with _lock:
        _owned[run.id] = run
    _install_hooks()


def finished(run: Run) -> None:
    """Forget a finished run: it is no longer owned, nor current (unless the process exits)."""
    global _current  # noqa: PLW0603
    with _lock:
        _owned.pop(run.id, None)
        # Records logged after the exit hook (later atexit handlers, __del__, daemon threads)
        # belong to the run that just finished, not to a new one nobody would finish.
        if _current is run and not _exited:
            _current = None
            if os.environ.get(_settings.RUN_ID) == run.id:
                del os.environ[_settings.RUN_ID]


def owned_runs() -> list[Run]:
    """Return the runs this process started and has not finished."""
    with _lock:
        return list(_owned.values())


def outcome() -> tuple[str, dict[str, Any] | None]:
    """Return the status and error the process's unfinished runs get if it exits now."""
    if _terminated:
        return "Canceled", {"type": "SIGTERM", "message": "the process received SIGTERM"}
    if _failure is not None:
        if _failure["type"] == "KeyboardInterrupt":
            return "Canceled", _failure
        return "Failed", _failure
    return "Completed", None


def error_details(
    exc_type: type[BaseException] | None,
    exc: BaseException | None,
    tb: TracebackType | None,
) -> dict[str, Any]:
    """Return the error record of an exception: type, message and traceback."""
    name = exc_type.__name__ if exc_type is not None else "Error"
    try:
        message = str(exc) if exc is not None else ""
    except Exception:
        message = "<exception message could not be rendered>"
    text = "".join(traceback.format_exception(exc_type, exc, tb)) if exc_type is not None else ""
    return {"type": name, "message": message, "traceback": text}


def shutdown(timeout: float | None = None) -> None:
    """Finish the runs this process owns and drain every recorder, within ``timeout`` seconds."""
    global _shutdown_thread  # noqa: PLW0603
    deadline = time.monotonic() + (_settings.exit_timeout() if timeout is None else timeout)
    outer, _shutdown_thread = _shutdown_thread, threading.get_ident()
    try:
        status, error = outcome()
        for run in owned_runs():
            try:
                run._finish(status, error, flush=False)  # noqa: SLF001
            except Exception as err:
                _report.always(f"could not finish run {run.id}: {err}")
        with _lock:
            recorders = list(_recorders.values())
        for rec in recorders:
            rec.close(max(0.0, deadline - time.monotonic()))
    finally:
        _shutdown_thread = outer


def _at_exit() -> None:
    global _exited  # noqa: PLW0603
    _exited = True
    try:
        shutdown()
    except Exception as err:
        _report.always(f"error while finishing runs at exit: {err}")


def _excepthook(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    _note_failure(exc_type, exc, tb)
    _previous_excepthook(exc_type, exc, tb)


def _threading_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is not SystemExit:
        _note_failure(args.exc_type, args.exc_value, args.exc_traceback)
    _previous_threading_excepthook(args)


def _note_failure(
    exc_type: type[BaseException], exc: BaseException | None, tb: TracebackType | None
) -> None:
    global _failure  # noqa: PLW0603
    try:
        details = error_details(exc_type, exc, tb)
        if _failure is None:
            _failure = details
        for run in owned_runs() or ([_current] if _current is not None else []):
            run._record_exception(details)  # noqa: SLF001
    except Exception as err:
        _report.once("excepthook", f"could not record the uncaught exception: {err}")


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _terminated  # noqa: PLW0603
    _terminated = True
    previous = _previous_sigterm
    if callable(previous):
        previous(signum, frame)
        return
    if _shutdown_thread == threading.get_ident():
        # SIGTERM interrupted this very thread while it finishes the runs (a pool worker
        # leaving through its exit hooks gets terminate()'s SIGTERM): re-entering would wait
        # forever on locks the interrupted frame holds. That drain ends the process anyway.
        return
    try:
        shutdown()
    except BaseException as err:  # the process must still end as SIGTERM asks
        _report.always(f"error while finishing runs on SIGTERM: {err!r}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


_previous_excepthook = sys.excepthook
_previous_threading_excepthook = threading.excepthook
_previous_sigterm: Any = signal.SIG_DFL


def _prepare_exit_paths() -> None:
    """Import now what the excepthook, the writer thread and the exit drain will use.

    CPython exits an uncaught KeyboardInterrupt by SIGINT (the conventional exit code 130)
    only if no code is compiled from a string between the exception and the end of
    finalisation: a first import, or a namedtuple or dataclass being defined, resets its flag.
    """
    from logbridge import _logrecords  # noqa: PLC0415

    _logrecords.formatter()


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook, _previous_threading_excepthook  # noqa: PLW0603
    global _previous_sigterm  # noqa: PLW0603
    with _lock:
        if _hooks_installed:
            return
        _hooks_installed = True
        _prepare_exit_paths()
        atexit.register(_at_exit)
        _previous_excepthook = sys.excepthook
        sys.excepthook = _excepthook
        _previous_threading_excepthook = threading.excepthook
        threading.excepthook = _threading_excepthook
        if threading.current_thread() is threading.main_thread():
            try:
                previous = signal.getsignal(signal.SIGTERM)
                if previous in (signal.SIG_DFL, None) or callable(previous):
                    _previous_sigterm = previous
                    signal.signal(signal.SIGTERM, _on_sigterm)
            except (ValueError, OSError):  # not the main interpreter, or no signals here
                pass


def _arm_multiprocessing_exit() -> None:
    # multiprocessing's fork and forkserver children leave through os._exit after running
    # multiprocessing's finalizers but not atexit: drain there too. Armed once per process,
    # after multiprocessing has cleared the finalizers the child inherited.
    global _exit_armed_pid  # noqa: PLW0603
    if _exit_armed_pid == os.getpid() or "multiprocessing" not in sys.modules:
        return
    _exit_armed_pid = os.getpid()
    from multiprocessing import util  # noqa: PLC0415

    util.Finalize(None, _at_exit, exitpriority=-100)


def _before_fork() -> None:
    # No write transaction may be open, nor any connection, when the process forks: the child
    # would inherit SQLite's record of them and wait on locks nobody will ever release.
    for rec in list(_recorders.values()):
        rec.before_fork()


def _after_fork_in_parent() -> None:
    for rec in list(_recorders.values()):
        rec.after_fork()


def _after_fork_in_child() -> None:
    # The child keeps the hooks (and the current run) it inherited, but none of the parent's
    # recorders, connections or duties: the parent finishes the runs it owns.
    global _lock, _failure, _exited  # noqa: PLW0603
    _lock = threading.RLock()
    _exited = False
    for rec in _recorders.values():
        rec.after_fork()
        rec.abandon()
    _abandoned.extend(_recorders.values())
    _recorders.clear()
    _owned.clear()
    _failure = None
    _report.reset()
    records = sys.modules.get("logbridge._logrecords")
    if records is not None:
        # The log's static fields (RANK, LOCAL_RANK) are read again: a worker may set its own.
        records.reset_after_fork()


def reset() -> None:
    """Close every recorder and forget all state (for tests)."""
    global _current, _failure, _terminated  # noqa: PLW0603
    with _lock:
        recorders = list(_recorders.values())
        _recorders.clear()
        _owned.clear()
        _sink_factories.clear()
        _current = None
        _failure = None
        _terminated = False
    for rec in recorders:
        rec.close(_settings.exit_timeout())
        rec.store.close()
    os.environ.pop(_settings.RUN_ID, None)
    _report.reset()


os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
