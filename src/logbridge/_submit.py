"""`submit`: a script run in the background, and waiting for a run to finish.

`submit` starts ``logbridge run`` as a detached process (its own session: Ctrl-C in the
caller does not stop it, as a submitted azureml run goes on when the notebook is
interrupted) and returns the run as soon as it exists.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Final

from logbridge import _format, _settings
from logbridge._errors import LogbridgeError, RunFailedError, RunStateError
from logbridge._run import Run, get_run
from logbridge._store import FINAL_STATUSES, SQLiteStore

POLL_INTERVAL: Final = 0.5
"""Seconds between two looks at a run that is being waited for."""
_START_TIMEOUT: Final = 60.0
_OUTPUT_LOGGERS: Final = ("stdout", "stderr")


class SubmittedRun(Run):
    """A run that `submit` started: `cancel` stops its script."""

    _process: subprocess.Popen[bytes] | None = None

    def cancel(self) -> None:
        """Stop the script (SIGTERM to its ``logbridge run``); the run ends as Canceled."""
        process = self._process
        if process is None or process.poll() is not None:
            super().cancel()
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_settings.exit_timeout() + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            super().cancel()

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,
        raise_on_error: bool = True,
    ) -> dict[str, Any]:
        """Wait as `Run.wait_for_completion` does, then reap the ``logbridge run`` process."""
        try:
            return super().wait_for_completion(show_output, wait_post_processing, raise_on_error)
        finally:
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._process.wait(_settings.exit_timeout())


def submit(
    script: str | os.PathLike[str],
    arguments: Sequence[Any] = (),
    experiment: str | None = None,
    source_directory: str | os.PathLike[str] = ".",
    *,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    python: str | None = None,
    module: bool = False,
    environment: Mapping[str, str] | None = None,
) -> SubmittedRun:
    """Run a script as a tracked run in the background; return the run at once.

    The script runs as ``logbridge run`` runs it, in ``source_directory`` (its snapshot is
    stored and its ``outputs/`` folder captured). Follow it with
    ``run.wait_for_completion(show_output=True)``; stop it with ``run.cancel()``.

    Args:
        script: the script's path, relative to ``source_directory`` (or a module name with
            ``module=True``).
        arguments: the script's command-line arguments (each turned into a string).
        experiment: the run's experiment (default ``$LOGBRIDGE_EXPERIMENT``, else the
            script's name).
        source_directory: the folder the script runs in.
        name: the run's display name.
        tags: the run's tags.
        store: the store folder (default ``$LOGBRIDGE_HOME``, else ``./logbridge-runs`` of
            the caller's working directory).
        python: the interpreter that runs the script (it needs logbridge installed).
        module: ``script`` names a module, run as ``python -m``.
        environment: environment variables to set for the script.

    Raises:
        LogbridgeError: the run could not be started (the message says why).
    """
    folder = Path(source_directory).expanduser().absolute()
    if not folder.is_dir():
        raise LogbridgeError(f"source_directory {str(folder)!r} is not a folder")
    command = [sys.executable, "-m", "logbridge", "--store", str(_settings.store_path(store))]
    command += ["run", "--quiet", "--print-run-id"]
    if experiment is not None:
        command += ["--experiment", experiment]
    if name is not None:
        command += ["--name", name]
    for key, value in (tags or {}).items():
        command += ["--tag", key if value is None else f"{key}={value}"]
    if python is not None:
        command += ["--python", python]
    command += ["-m", str(script)] if module else ["--", str(script)]
    command += [str(a) for a in arguments]
    with tempfile.TemporaryFile() as errors:
        process = subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            start_new_session=True,
            env={**os.environ, **(environment or {})},
        )
        run_id = _read_run_id(process, errors)
    run = get_run(run_id, store=_settings.store_path(store))
    submitted = SubmittedRun(
        run.id, run.store, experiment=run.experiment, name=run.name, parent_id=None
    )
    submitted._process = process  # noqa: SLF001
    return submitted


def _read_run_id(process: subprocess.Popen[bytes], errors: IO[bytes]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().decode("utf-8", "replace").strip()
    process.stdout.close()
    if line:
        return line
    try:
        process.wait(_START_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    errors.seek(0)
    said = errors.read().decode("utf-8", "replace").strip().splitlines()
    reason = said[-1] if said else f"exit status {process.returncode}"
    raise LogbridgeError(f"the script run could not be started: {reason}")


def wait_for_completion(
    run: Run,
    *,
    show_output: bool = False,
    raise_on_error: bool = True,
    out: IO[str] | None = None,
    poll: float = POLL_INTERVAL,
) -> dict[str, Any]:
    """Wait until ``run`` ends; return its details (see `Run.wait_for_completion`)."""
    if run.get_status() not in FINAL_STATUSES and _settings.run_id() == run.id:
        raise RunStateError(f"run {run.id} is this process's run: it cannot wait for itself")
    stream = out if out is not None else sys.stdout
    reader = SQLiteStore(run.store, create=False)
    script_output = run.get_properties().get("logbridge.source") == "script"
    after = 0
    while True:
        status = run.get_status()
        if show_output:
            after = _show_logs(reader, run.id, after, stream, script_output=script_output)
        if status in FINAL_STATUSES:
            break
        time.sleep(poll)
    details = run.get_details()
    if show_output:
        print(_format.run_end(details), file=stream, flush=True)
    if raise_on_error and details["status"] == "Failed":
        error = details.get("error") or {}
        raise RunFailedError(
            f"run {run.id} failed: {error.get('type', 'Error')}: {error.get('message', '')}",
            details,
        )
    return details


def _show_logs(
    reader: SQLiteStore, run_id: str, after: int, stream: IO[str], *, script_output: bool
) -> int:
    for seq, record in reader.get_logs(run_id, after=after):
        after = seq
        if not script_output:
            print(_format.log_line(record), file=stream)
        elif record.get("logger") in _OUTPUT_LOGGERS:
            print(record.get("message", ""), file=stream)
    stream.flush()
    return after


def portal_url(run: Run) -> str:
    """Return the address of the run's page in the viewer (`logbridge ui`)."""
    return f"{_settings.viewer_url()}/#/run/{run.id}"
