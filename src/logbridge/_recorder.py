"""The recorder: takes events from any thread, and writes them to the store from one thread.

The caller's side (`Recorder.put`) appends to a queue and returns; a daemon writer thread wakes
every flush interval (sooner when the queue fills up or someone flushes), writes what is queued
in one transaction, and heartbeats the runs this process owns. A full queue blocks the caller by
default (nothing accepted is lost) or drops and counts, as configured. After `close` (process
exit) events are written synchronously, so records logged from late atexit handlers still land.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Sequence
from typing import Final

from logbridge import _events as ev
from logbridge import _liveness, _logrecords, _report
from logbridge._store import SQLiteStore

_OPEN: Final = 0
_CLOSING: Final = 1
_CLOSED: Final = 2

BATCH_SIZE: Final = 20_000
"""Most events written in one transaction."""
_RETRY_FOR: Final = 5.0
"""Seconds a failing batch is retried (locked or full store) before it is dropped and counted."""
_SYNC_WRITE_WAIT: Final = 2.0


class _Flush:
    """A marker in the queue: set once everything queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Recorder:
    """One per store per process: a bounded queue and the writer thread that drains it."""

    def __init__(
        self,
        store: SQLiteStore,
        *,
        queue_size: int,
        full_policy: str,
        flush_interval: float,
    ) -> None:
        """Create a recorder for ``store``; its writer thread starts with the first event."""
        self.store = store
        self._queue: collections.deque[ev.Event | _Flush] = collections.deque()
        self._maxsize = queue_size
        self._wake_at = max(1, min(queue_size // 2, BATCH_SIZE // 2))
        self._drop_when_full = full_policy == "drop"
        self._interval = flush_interval
        self._wake = threading.Event()
        self._room = threading.Condition(threading.Lock())
        self._waiting = 0
        self._state = _OPEN
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._lifecycle = threading.Lock()
        self._write_lock = threading.Lock()
        self._owned: set[str] = set()
        self._pending_drops: dict[tuple[str, str], int] = {}
        self._failing = False
        self._drops_lock = threading.Lock()
        self.written = 0
        """Events written so far (for tests and benchmarks)."""

    # -- the caller's side ---------------------------------------------------------------

    def put(self, event: ev.Event) -> None:
        """Queue ``event`` for writing; never raises, blocks only when the queue is full."""
        if self._state != _OPEN:
            self._write_late(event)
            return
        queue = self._queue
        if len(queue) >= self._maxsize and not self._make_room(event):
            return
        queue.append(event)
        if self._thread is None:
            self._start()
        elif len(queue) >= self._wake_at and not self._wake.is_set():
            self._wake.set()

    def _make_room(self, event: ev.Event) -> bool:
        if threading.get_ident() == self._thread_id:
            return True  # the writer itself never waits for itself
        if self._drop_when_full:
            self._count_drop(_run_id(event), "queue_full")
            _report.once(
                "queue_full",
                f"the recorder's queue is full ({self._maxsize} events); with "
                "LOGBRIDGE_QUEUE_FULL=drop further events are dropped and counted in the run",
            )
            return False
        self._wake.set()
        with self._room:
            self._waiting += 1
            try:
                while len(self._queue) >= self._maxsize and self._writer_running():
                    self._room.wait(0.5)
            finally:
                self._waiting -= 1
        return True

    def _writer_running(self) -> bool:
        thread = self._thread
        return self._state == _OPEN and thread is not None and thread.is_alive()

    def _start(self) -> None:
        with self._lifecycle:
            if self._thread is not None or self._state != _OPEN:
                return
            thread = threading.Thread(target=self._loop, name="logbridge-recorder", daemon=True)
            try:
                thread.start()
            except RuntimeError:
                # The interpreter is finalising and refuses new threads: write synchronously.
                self._state = _CLOSED
                self._drain_late()
                return
            self._thread = thread

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued before this call is written; return False on timeout."""
        if self._state != _OPEN or threading.get_ident() == self._thread_id:
            return self._state != _OPEN
        if self._thread is None and not self._queue:
            return True
        marker = _Flush()
        self._queue.append(marker)
        if self._thread is None:
            self._start()
        if self._state != _OPEN:
            return True
        self._wake.set()
        return marker.done.wait(timeout)

    def write_now(self, events: Sequence[ev.Event]) -> None:
        """Write ``events`` synchronously, raising if the store refuses them."""
        with self._write_lock:
            self.store.write(events)
            self.written += len(events)

    def own(self, run_id: str) -> None:
        """Heartbeat ``run_id`` while it is running in this process."""
        self._owned.add(run_id)

    def disown(self, run_id: str) -> None:
        """Stop heartbeating ``run_id``."""
        self._owned.discard(run_id)

    def close(self, timeout: float | None = None) -> bool:
        """Write everything queued and stop the writer; idempotent.

        Events put after this are written synchronously. Returns False if the writer did not
        finish within ``timeout`` (what it still held is counted as dropped).
        """
        with self._lifecycle:
            if self._state != _OPEN:
                return True
            thread = self._thread
            self._stopping = True
        finished = True
        if thread is not None:
            self._wake.set()
            thread.join(timeout)
            finished = not thread.is_alive()
        with self._lifecycle:
            self._state = _CLOSING
        if finished:
            self._drain_late()
        else:
            left = sum(1 for e in self._queue if not isinstance(e, _Flush))
            for event in self._queue:
                if not isinstance(event, _Flush):
                    self._count_drop(_run_id(event), "exit_timeout")
            self._queue.clear()
            _report.always(
                f"{left} events were not written to {self.store.folder} within the exit timeout "
                f"({timeout} s, LOGBRIDGE_EXIT_TIMEOUT); they are counted as dropped in the run"
            )
        with self._room:
            self._room.notify_all()
        self._state = _CLOSED
        if finished and self._pending_drops:
            with self._write_lock:
                self._write([])
        return finished

    # -- after close ------------------------------------------------------------------------

    def _write_late(self, event: ev.Event) -> None:
        if not self._write_lock.acquire(timeout=_SYNC_WRITE_WAIT):
            self._count_drop(_run_id(event), "exit_timeout")
            return
        try:
            self.store.write([event])
            self.written += 1
        except Exception as err:
            self._count_drop(_run_id(event), "store_error")
            _report.once("late_write", f"cannot write to the store {self.store.folder}: {err}")
        finally:
            self._write_lock.release()

    def _drain_late(self) -> None:
        events = [e for e in self._queue if not isinstance(e, _Flush)]
        markers = [e for e in self._queue if isinstance(e, _Flush)]
        self._queue.clear()
        if events:
            with self._write_lock:
                self._write(events)
        for marker in markers:
            marker.done.set()

    # -- the writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        self._thread_id = threading.get_ident()
        next_beat = 0.0
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            now = time.monotonic()
            if now >= next_beat and self._owned:
                next_beat = now + _liveness.HEARTBEAT_INTERVAL
                self._heartbeat()
            if stopping:
                return

    def _drain(self) -> None:
        queue = self._queue
        popleft = queue.popleft
        while queue:
            batch: list[ev.Event] = []
            marker: _Flush | None = None
            try:
                for _ in range(BATCH_SIZE):
                    item = popleft()
                    if type(item) is _Flush:
                        marker = item
                        break
                    batch.append(item)  # type: ignore[arg-type]
            except IndexError:
                pass
            if self._waiting:
                with self._room:
                    self._room.notify_all()
            if batch:
                with self._write_lock:
                    self._write(batch)
            if marker is not None:
                marker.done.set()

    def _write(self, batch: list[ev.Event]) -> None:
        # Captured log records are formatted and rendered here, off the caller's thread.
        batch = _logrecords.expand(batch)
        if self._pending_drops:
            batch = [*self._take_drops(), *batch]
        delay = 0.05
        deadline = time.monotonic() + (0.0 if self._failing or self._stopping else _RETRY_FOR)
        while True:
            try:
                self.store.write(batch)
            except Exception as err:
                if time.monotonic() + delay <= deadline:
                    time.sleep(delay)
                    delay = min(delay * 2, 1.0)
                    continue
                self._failing = True
                for event in batch:
                    if type(event) is ev.Dropped:
                        self._count_drop(event.run_id, event.reason, event.count)
                    else:
                        self._count_drop(_run_id(event), "store_error")
                _report.once(
                    "store_error",
                    f"cannot write to the store {self.store.folder} ({err}); the training goes "
                    "on, and events are dropped and counted until the store can be written again",
                )
                return
            else:
                self.written += len(batch)
                if self._failing:
                    self._failing = False
                    _report.always(f"writing to the store {self.store.folder} works again")
                return

    def _heartbeat(self) -> None:
        try:
            with self._write_lock:
                self.store.heartbeat(sorted(self._owned))
        except Exception as err:
            _report.once("heartbeat", f"cannot write the run's heartbeat: {err}")

    def _count_drop(self, run_id: str, reason: str, count: int = 1) -> None:
        key = (run_id, reason)
        with self._drops_lock:
            self._pending_drops[key] = self._pending_drops.get(key, 0) + count

    def _take_drops(self) -> list[ev.Dropped]:
        with self._drops_lock:
            drops, self._pending_drops = self._pending_drops, {}
        return [ev.Dropped(run_id, reason, n) for (run_id, reason), n in drops.items()]

    def dropped(self) -> dict[tuple[str, str], int]:
        """Return (run id, reason) -> count of drops not yet written to the store."""
        with self._drops_lock:
            return dict(self._pending_drops)


def _run_id(event: ev.Event) -> str:
    return event.run_id
