"""Telling a run whose process is gone from a run still being written."""

from __future__ import annotations

import os
import socket
import time
from functools import cache
from pathlib import Path

HEARTBEAT_INTERVAL = 10.0
"""Seconds between the heartbeats a run's process writes while the run is running."""
HEARTBEAT_TIMEOUT = 60.0
"""A running run on another host whose heartbeat is older than this is taken as dead."""


@cache
def host() -> str:
    """Return this machine's host name."""
    return socket.gethostname()


def _proc_stat(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields if len(fields) > 19 else None


def process_start(pid: int) -> str | None:
    """Return the start time of process ``pid`` as the kernel counts it, or None if unknown.

    Together with the pid it names one process, even after the pid is reused.
    """
    fields = _proc_stat(pid)
    return fields[19] if fields else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def writer_alive(
    run_host: str, pid: int, pid_start: str | None, heartbeat: float, now: float | None = None
) -> bool:
    """Return whether the process that owns a running run may still be writing it.

    On this host the process is looked up directly (and its start time compared, so a reused
    pid does not count); on another host the heartbeat decides.
    """
    if run_host == host():
        if not _pid_alive(pid):
            return False
        fields = _proc_stat(pid)
        if fields is None:
            return True
        # A zombie has exited (its parent has not reaped it yet); a new start time is a new process.
        return fields[0] != "Z" and (pid_start is None or fields[19] == pid_start)
    now = time.time() if now is None else now
    return now - heartbeat <= HEARTBEAT_TIMEOUT
