"""Telling the user about logbridge's own trouble without going through `logging`.

Messages go to stderr, once per kind of problem: a failing store must not print a line per
record, and logbridge must never log into the handler it is serving.
"""

from __future__ import annotations

import os
import sys
import threading

_reported: set[str] = set()
_lock = threading.RLock()  # reentrant: a SIGTERM handler may report on top of a report


def once(kind: str, message: str) -> None:
    """Print ``message`` to stderr the first time a problem of ``kind`` occurs in this process."""
    with _lock:
        if kind in _reported:
            return
        _reported.add(kind)
    always(message)


def always(message: str) -> None:
    """Print ``message`` to stderr, whatever state the interpreter is in."""
    stream = sys.stderr or sys.__stderr__
    if stream is None:
        return
    try:
        stream.write(f"logbridge: {message}\n")
        stream.flush()
    except Exception:  # noqa: S110 - a closed or broken stderr leaves nowhere else to say it
        pass


def reported() -> list[str]:
    """The kinds of problem reported so far (handed to the writer process, which skips them)."""
    with _lock:
        return sorted(_reported)


def mark_reported(kinds: list[str]) -> None:
    """Take ``kinds`` as reported already: `once` stays silent about them."""
    with _lock:
        _reported.update(kinds)


def reset() -> None:
    """Forget which problems were reported (for tests and forked children)."""
    with _lock:
        _reported.clear()


def _after_fork_in_child() -> None:
    # Another thread of the parent may have held the lock at the fork; the child's copy would
    # stay locked for ever.
    global _lock  # noqa: PLW0603
    _lock = threading.RLock()


os.register_at_fork(after_in_child=_after_fork_in_child)
