"""`logbridge run`: a script run as a tracked run, from start to final status.

This process starts (and owns) the run, stores a snapshot of the script's folder, runs the
script in a child process (`logbridge._script`) with the run in its environment, copies the
child's stdout and stderr to the terminal and into the run's log, forwards SIGTERM (and
SIGINT that the terminal did not deliver itself), and finishes the run from the child's exit
status, which is also what `run_script` returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Final

from logbridge import _events as ev
from logbridge import _output, _settings, _snapshot, _state
from logbridge._errors import LogbridgeError
from logbridge._run import Run

SOURCE_PROPERTY: Final = "logbridge.source"
"""Property marking runs of `logbridge run`: their log holds the script's stdout and stderr."""
_KILL_GRACE: Final = 5.0
"""Seconds past the exit timeout a signalled script gets before it is killed."""
_READER_GRACE: Final = 2.0
"""Seconds to wait for the output of processes the script left behind after it exits."""


@dataclass
class Script:
    """What to run: a script path or a module name, its arguments and how."""

    target: str
    args: Sequence[str] = ()
    module: bool = False
    python: str | None = None
    log_level: int | None = None

    def folder(self) -> Path:
        """Return the folder whose snapshot is stored: the script's, or here for a module."""
        return Path.cwd() if self.module else Path(self.target).resolve().parent

    def default_experiment(self) -> str:
        """Return the experiment of a run given none: the script's or module's name."""
        return self.target.rpartition(".")[2] if self.module else Path(self.target).stem

    def command(self, error_file: str) -> list[str]:
        """Return the child's command line."""
        command = [self.python or sys.executable, "-m", "logbridge._script"]
        if self.log_level is not None:
            command += ["--log-level", str(self.log_level)]
        command += ["--error-file", error_file, "--"]
        command += ["-m", self.target] if self.module else [self.target]
        return [*command, *self.args]


@dataclass
class _Signals:
    """The signals this process received while the script ran."""

    process: subprocess.Popen[bytes]
    received: int = 0
    kill_at: float | None = None
    previous: dict[int, Any] = field(default_factory=dict)

    def handle(self, signum: int, frame: FrameType | None) -> None:  # noqa: ARG002
        self.received = self.received or signum
        if signum == signal.SIGINT and _terminal_delivers_sigint():
            return  # the terminal sent Ctrl-C to the script too: sending it again would hurt
        if self.kill_at is None:
            self.kill_at = time.monotonic() + _settings.exit_timeout() + _KILL_GRACE
        with contextlib.suppress(OSError):  # the script has just ended
            self.process.send_signal(signum)

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self.handle)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


def _terminal_delivers_sigint() -> bool:
    """Whether this process runs in the foreground of a terminal (so Ctrl-C reached all)."""
    try:
        fd = sys.stdin.fileno()
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except (AttributeError, OSError, ValueError):
        return False


def run_script(
    script: Script,
    *,
    experiment: str | None = None,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    snapshot: bool = True,
    started: Callable[[Run], None] | None = None,
) -> int:
    """Run ``script`` as a tracked run; return its exit status (128 + N for signal N).

    Args:
        script: the script or module to run.
        experiment: the run's experiment (default ``$LOGBRIDGE_EXPERIMENT``, else the
            script's name).
        name: the run's display name.
        tags: the run's tags.
        store: the store folder.
        quiet: record the script's output without showing it.
        snapshot: store a snapshot of the script's folder.
        started: called with the run once it exists, before the script starts.

    Raises:
        LogbridgeError: the script does not exist, or the store cannot be written.
    """
    if not script.module and not Path(script.target).is_file():
        raise LogbridgeError(f"no script {script.target!r} (give a Python file, or -m module)")
    folder = _settings.store_path(store)
    run = Run._start(  # noqa: SLF001 - this process owns the run and finishes it
        experiment=experiment or _settings.experiment() or script.default_experiment(),
        name=name,
        tags=tags,
        store=folder,
    )
    run.add_properties({SOURCE_PROPERTY: "script"})
    if started is not None:
        run.flush(_settings.exit_timeout())  # whoever learns of the run sees its property
        started(run)
    snapshotter = _start_snapshot(run, script.folder(), folder) if snapshot else None
    with tempfile.TemporaryDirectory(prefix="logbridge-run-") as scratch:
        error_file = str(Path(scratch) / "error.json")
        try:
            returncode, received = _run_child(run, script, error_file, quiet=quiet)
        except BaseException as exc:
            run._finish(*_failure_of(exc))  # noqa: SLF001
            raise
        if snapshotter is not None:
            snapshotter.join()
        status, error, code = outcome(returncode, received, _read_error(error_file))
    run._finish(status, error)  # noqa: SLF001
    return code


def _run_child(run: Run, script: Script, error_file: str, *, quiet: bool) -> tuple[int, int]:
    env = dict(os.environ)
    env[_settings.RUN_ID] = run.id
    env[_settings.HOME] = str(run.store)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the terminal and the record as printed
    try:
        process = subprocess.Popen(
            script.command(error_file),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as err:
        raise LogbridgeError(f"could not start {script.python or sys.executable}: {err}") from err
    assert process.stdout is not None
    assert process.stderr is not None
    readers = [
        _output.Capture(
            stream,
            stream_name,
            run,
            terminal=None if quiet else _output.terminal_writer(terminal),
            pid=process.pid,
        )
        for stream, stream_name, terminal in (
            (process.stdout, "stdout", sys.stdout),
            (process.stderr, "stderr", sys.stderr),
        )
    ]
    for reader in readers:
        reader.start()
    signals = _Signals(process)
    signals.install()
    try:
        returncode = _wait(process, signals)
    finally:
        signals.restore()
    deadline = time.monotonic() + _READER_GRACE
    for reader in readers:
        reader.join(max(0.0, deadline - time.monotonic()))
    return returncode, signals.received


def _wait(process: subprocess.Popen[bytes], signals: _Signals) -> int:
    while True:
        try:
            return process.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            if signals.kill_at is not None and time.monotonic() > signals.kill_at:
                process.kill()


def outcome(
    returncode: int, received: int, error: dict[str, Any] | None
) -> tuple[str, dict[str, Any] | None, int]:
    """Return the run's status, its error and the exit status of a finished script.

    Args:
        returncode: the child's return code (negative: killed by that signal).
        received: the signal this process received while the script ran, or 0.
        error: the script's uncaught exception, as the child reported it.
    """
    if received:
        name = signal.Signals(received).name
        return "Canceled", error or _signal_error(name, "stopped"), 128 + received
    if returncode == 0:
        return "Completed", None, 0
    if returncode < 0:
        name = signal.Signals(-returncode).name
        status = "Canceled" if -returncode in (signal.SIGTERM, signal.SIGINT) else "Failed"
        return (
            status,
            _signal_error(name, "stopped" if status == "Canceled" else "killed"),
            (128 - returncode),
        )
    if error is not None and error.get("type") == "KeyboardInterrupt":
        return "Canceled", error, returncode
    return (
        "Failed",
        error
        or {
            "type": "ExitStatus",
            "message": f"the script exited with status {returncode}",
        },
        returncode,
    )


def _signal_error(name: str, verb: str) -> dict[str, Any]:
    return {"type": name, "message": f"the script was {verb} by {name}"}


def _failure_of(exc: BaseException) -> tuple[str, dict[str, Any]]:
    details = _state.error_details(type(exc), exc, exc.__traceback__)
    return ("Canceled" if isinstance(exc, KeyboardInterrupt) else "Failed"), details


def _read_error(path: str) -> dict[str, Any] | None:
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _start_snapshot(run: Run, source: Path, store: Path) -> threading.Thread:
    thread = threading.Thread(
        target=_store_snapshot, args=(run, source, store), name="logbridge-snapshot", daemon=True
    )
    thread.start()
    return thread


def _store_snapshot(run: Run, source: Path, store: Path) -> None:
    try:
        taken = _snapshot.make(source, _settings.snapshot_limit(), exclude=(store,))
        if taken.path is None:
            _note(run, taken.skipped or "no snapshot was stored")
            return
        try:
            run.upload_file(_snapshot.SNAPSHOT_FILE, taken.path)
        finally:
            taken.path.unlink(missing_ok=True)
    except Exception as err:
        _note(run, f"no snapshot of {source} was stored: {err}")


def _note(run: Run, message: str) -> None:
    """Say something about the run on stderr and in its log (logger ``logbridge.run``)."""
    from logbridge import _report  # noqa: PLC0415

    _report.always(message)
    record = logging.LogRecord("logbridge.run", logging.WARNING, "", 0, message, None, None)
    _state.recorder(run.store).put(ev.RecordCaptured(run.id, record, None, None, None, ()))
