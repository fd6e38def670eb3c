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

DEFAULT_STORE_FOLDER = "logbridge-runs"
DEFAULT_QUEUE_SIZE = 100_000
DEFAULT_FLUSH_INTERVAL = 0.5
DEFAULT_EXIT_TIMEOUT = 10.0
QUEUE_FULL_POLICIES = ("block", "drop")


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
