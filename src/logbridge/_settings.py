"""Every environment variable logbridge reads, named and read here and nowhere else."""

from __future__ import annotations

import os
from pathlib import Path

HOME = "LOGBRIDGE_HOME"
"""Folder of the local store; default ``./logbridge-runs`` in the working directory."""
RUN_ID = "LOGBRIDGE_RUN_ID"
"""Id of the run this process belongs to; set for the processes a run's process starts."""
EXPERIMENT = "LOGBRIDGE_EXPERIMENT"
"""Experiment of runs started without one; default: the script's name."""
QUEUE_SIZE = "LOGBRIDGE_QUEUE_SIZE"
"""Events the recorder holds before `LOGBRIDGE_QUEUE_FULL` applies; default 100000."""
QUEUE_FULL = "LOGBRIDGE_QUEUE_FULL"
"""What a full queue does: ``block`` (default, loses nothing) or ``drop`` (counted)."""
FLUSH_INTERVAL = "LOGBRIDGE_FLUSH_INTERVAL"
"""Seconds between writes of the recorder; default 0.5."""
EXIT_TIMEOUT = "LOGBRIDGE_EXIT_TIMEOUT"
"""Seconds the recorder may take to drain at process exit; default 10."""
WRITER_PROCESS_AFTER = "LOGBRIDGE_WRITER_PROCESS_AFTER"
"""Events a recorder writes from its thread before a writer process takes over; default 10000.

``0``: from the first batch; ``never``: always from the thread (docs/performance.md)."""
PURE_PYTHON = "LOGBRIDGE_PURE_PYTHON"
"""``1`` (or ``true``, ``yes``, ``on``): the logging handler's capture runs in Python even when
its compiled version (``logbridge._speedups``) is built (docs/performance.md)."""
OTEL = "LOGBRIDGE_OTEL"
"""``1`` (or ``true``, ``yes``, ``on``) sends runs to an OpenTelemetry collector."""
OTEL_EXIT_TIMEOUT = "LOGBRIDGE_OTEL_EXIT_TIMEOUT"
"""Seconds the OpenTelemetry export may add to the process's exit; default 5."""
OTEL_BUFFER = "LOGBRIDGE_OTEL_BUFFER"
"""Events held for export while the collector is slow or away; default 50000 (more are counted)."""
SNAPSHOT_LIMIT = "LOGBRIDGE_SNAPSHOT_LIMIT"
"""Megabytes of a script's folder `logbridge run` stores as the run's snapshot; default 300."""
VIEWER_URL = "LOGBRIDGE_VIEWER_URL"
"""Address of the run viewer (`logbridge ui`) in `Run.get_portal_url`; default below."""
NO_COLOR = "NO_COLOR"
"""Set (to anything but empty): the command line prints no colour, even on a terminal."""

DEFAULT_STORE_FOLDER = "logbridge-runs"
DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_EXIT_TIMEOUT = 10.0
DEFAULT_WRITER_PROCESS_AFTER = 10_000
QUEUE_FULL_POLICIES = ("block", "drop")
DEFAULT_SNAPSHOT_LIMIT_MB = 300.0
DEFAULT_VIEWER_URL = "http://127.0.0.1:5055"
DEFAULT_OTEL_EXIT_TIMEOUT = 5.0
DEFAULT_OTEL_BUFFER = 50_000
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def store_path(store: str | os.PathLike[str] | None = None) -> Path:
    """Return the absolute store folder: ``store``, else $LOGBRIDGE_HOME, else ./logbridge-runs."""
    if store is not None:
        return Path(store).expanduser().absolute()
    env = os.environ.get(HOME)
    if env:
        return Path(env).expanduser().absolute()
    return Path.cwd() / DEFAULT_STORE_FOLDER


def run_id() -> str | None:
    """Return the run id handed down by a parent process, if any."""
    return os.environ.get(RUN_ID) or None


def experiment() -> str | None:
    """Return the default experiment name from the environment, if set."""
    return os.environ.get(EXPERIMENT) or None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        msg = f"environment variable {name}={raw!r} is not a number"
        raise ValueError(msg) from None
    if not value > 0:
        msg = f"environment variable {name}={raw!r} must be a positive number"
        raise ValueError(msg)
    return value


def queue_size() -> int:
    """Return the recorder's queue bound."""
    return int(_float(QUEUE_SIZE, DEFAULT_QUEUE_SIZE))


def queue_full_policy() -> str:
    """Return the recorder's policy for a full queue."""
    raw = os.environ.get(QUEUE_FULL) or "block"
    if raw not in QUEUE_FULL_POLICIES:
        msg = f"environment variable {QUEUE_FULL}={raw!r} must be one of {QUEUE_FULL_POLICIES}"
        raise ValueError(msg)
    return raw


def flush_interval() -> float:
    """Return the seconds between the recorder's writes."""
    return _float(FLUSH_INTERVAL, DEFAULT_FLUSH_INTERVAL)


def exit_timeout() -> float:
    """Return the seconds the recorder may spend draining at exit."""
    return _float(EXIT_TIMEOUT, DEFAULT_EXIT_TIMEOUT)


def writer_process_after() -> int | None:
    """Return the events written from the thread before the writer process starts, or None."""
    raw = (os.environ.get(WRITER_PROCESS_AFTER) or "").strip().lower()
    if not raw:
        return DEFAULT_WRITER_PROCESS_AFTER
    if raw == "never":
        return None
    if raw.isdigit():
        return int(raw)
    msg = f"environment variable {WRITER_PROCESS_AFTER}={raw!r} must be a whole number or never"
    raise ValueError(msg)


def pure_python() -> bool:
    """Return whether ``LOGBRIDGE_PURE_PYTHON`` turns the compiled capture off."""
    return _flag(PURE_PYTHON)


def otel_enabled() -> bool:
    """Return whether ``LOGBRIDGE_OTEL`` asks for the OpenTelemetry export."""
    return _flag(OTEL)


def _flag(name: str) -> bool:
    raw = (os.environ.get(name) or "").strip().lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    msg = f"environment variable {name}={raw!r} must be 1 or 0 (true/false, yes/no, on/off)"
    raise ValueError(msg)


def otel_exit_timeout() -> float:
    """Return the seconds the OpenTelemetry export may take at exit."""
    return _float(OTEL_EXIT_TIMEOUT, DEFAULT_OTEL_EXIT_TIMEOUT)


def otel_buffer() -> int:
    """Return how many events the OpenTelemetry export holds before counting overflow."""
    return int(_float(OTEL_BUFFER, DEFAULT_OTEL_BUFFER))


def snapshot_limit() -> int:
    """Return the largest snapshot of a script's folder, in bytes."""
    return int(_float(SNAPSHOT_LIMIT, DEFAULT_SNAPSHOT_LIMIT_MB) * 1024 * 1024)


def no_color() -> bool:
    """Return whether ``NO_COLOR`` asks for output without colour (https://no-color.org)."""
    return bool(os.environ.get(NO_COLOR))


def viewer_url() -> str:
    """Return the run viewer's base address, without a trailing slash."""
    return (os.environ.get(VIEWER_URL) or DEFAULT_VIEWER_URL).rstrip("/")
