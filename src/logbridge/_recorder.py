"""The recorder: takes events from any thread, and writes them to the store from one thread.

The caller's side (`Recorder.put`) appends to a queue and returns; a daemon writer thread wakes
every flush interval (sooner when the queue fills up or someone flushes), writes what is queued
in one transaction, and heartbeats the runs this process owns. A full queue blocks the caller by
default (nothing accepted is lost) or drops and counts, as configured. After `close` (process
exit) events are written synchronously, so records logged from late atexit handlers still land.
Once the recorder has written ``process_after`` events, the writer thread hands each batch to
a writer process (`_writer_process`) instead of writing it; every path that promises a batch
is in the store (a flush, a synchronous write, close) first waits for its answers.

The SIGTERM handler closes the recorder on top of whatever the main thread was doing, maybe in
the middle of `put`: what the caller's side and the exit drain share is therefore either
reentrant or free of Python-level locks (`_Signal`, the drop log), so that the drain never
waits for a lock the interrupted frame holds.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from logbridge import _events as ev
from logbridge import _liveness, _logrecords, _report
from logbridge._sinks import Sink
from logbridge._store import SQLiteStore

if TYPE_CHECKING:
    from logbridge._writer_process import WriterProcess

_OPEN: Final = 0
_CLOSING: Final = 1
_CLOSED: Final = 2

BATCH_SIZE: Final = 20_000
"""Most events written in one transaction."""
SINK_BATCH_SIZE: Final = 1_000
"""Most events written in one transaction while sinks are attached.

A sink takes the batch's events once they are in the store, so a batch is made into events
before it is written instead of as it is written (`_Stream`): smaller batches keep those events
young, out of the garbage collector's older generations (benchmarks/bench_otel.py)."""
_RETRY_FOR: Final = 5.0
"""Seconds a failing batch is retried (locked or full store) before it is dropped and counted."""
_SYNC_WRITE_WAIT: Final = 2.0
_EXIT_GRACE: Final = 1.0
"""Seconds `close` may wait, past its timeout, to record the drop counts and final statuses."""
_SINK_SWITCH_WAIT: Final = 30.0
"""Seconds the writer process gets to write what it holds when a sink is added."""
_FORK_WAIT: Final = 5.0
"""Seconds a fork waits for a write in progress to commit before it goes ahead anyway."""


class _Signal:
    """A one-way wake-up, safe to give from a signal handler that interrupted a giver.

    `threading.Event` takes a plain lock in ``set``: a SIGTERM arriving inside it runs the exit
    drain, whose own ``set`` then waits for ever on the lock the interrupted frame holds. A
    `queue.SimpleQueue` is reentrant (its ``put`` takes no Python-level lock).
    """

    __slots__ = ("_tokens", "given")

    def __init__(self) -> None:
        self._tokens: queue.SimpleQueue[None] = queue.SimpleQueue()
        self.given = False
        """Whether the signal was given since the taker last cleared it."""

    def set(self) -> None:
        """Give the signal (once until cleared: further calls are free)."""
        if not self.given:
            self.given = True
            self._tokens.put(None)

    def wait(self, timeout: float | None) -> bool:
        """Wait until the signal is given or ``timeout`` passes; return whether it was."""
        if self.given:
            return True
        try:
            self._tokens.get(timeout=timeout)
        except queue.Empty:
            return self.given
        return True

    def clear(self) -> None:
        """Take the signal (only its one waiter does): the next `set` gives it again."""
        while True:
            try:
                self._tokens.get_nowait()
            except queue.Empty:
                break
        self.given = False


class _Flush:
    """A marker in the queue: set once everything queued before it is written."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = _Signal()


class Recorder:
    """One per store per process: a bounded queue and the writer thread that drains it."""

    def __init__(
        self,
        store: SQLiteStore,
        *,
        queue_size: int,
        full_policy: str,
        flush_interval: float = 0.5,
        process_after: int | None = None,
    ) -> None:
        """Create a recorder for ``store``; its writer thread starts with the first event.

        ``process_after``: events written from the writer thread before a writer process
        takes the writing over (`_writer_process`); None: never.
        """
        self.store = store
        self._queue: collections.deque[ev.Event | ev.Captured | _Flush] = collections.deque()
        self._maxsize = queue_size
        self._wake_at = max(1, min(queue_size // 2, BATCH_SIZE // 2))
        self._drop_when_full = full_policy == "drop"
        self._interval = flush_interval
        self._wake = _Signal()
        # Reentrant locks where a SIGTERM handler (which runs `close` on top of whatever the
        # main thread was doing) may need a lock the interrupted code holds.
        self._room = threading.Condition(threading.RLock())
        self._waiting = 0
        self._state = _OPEN
        self.accepting = False
        """True while `put` would queue (open, writer started): what the handler's inlined
        `put` checks before its append and again after it (`fast_lane`)."""
        self._stopping = False
        self._abort = False
        self._timed_out = False
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._lifecycle = threading.RLock()
        # Held around every transaction and around taking events off the queue, so what one
        # holder takes is written before anyone takes more: order survives late writes.
        self._write_lock = threading.Lock()
        self._write_owner: int | None = None
        self._held_for_fork = False
        self._leftover: list[ev.Event] = []
        self._owned: set[str] = set()
        self._drop_log: collections.deque[tuple[str, str, int]] = collections.deque()
        """(run id, reason, count) of events dropped since the last batch: a deque, whose
        appends and poplefts need no lock (see the module's docstring)."""
        self._failing = False
        self._sinks: list[Sink] = []
        # The checkpoint thread copies the write-ahead log into the database after each batch
        # (`SQLiteStore.checkpoint`), beside the writer; the lock keeps fork out of it.
        self._checkpoints = _Signal()
        self._checkpoint_lock = threading.Lock()
        self._checkpoint_held = False
        self._checkpoint_thread: threading.Thread | None = None
        self._written = 0
        self._process: WriterProcess | None = None
        self._process_after = process_after

    # -- the caller's side ---------------------------------------------------------------

    def put(self, event: ev.Event | ev.Captured) -> None:
        """Queue ``event`` for writing; never raises, blocks only when the queue is full."""
        if self._state != _OPEN:
            self._write_late(event)
            return
        queue = self._queue
        if len(queue) >= self._maxsize and not self._make_room(event):
            return
        queue.append(event)
        if self._state != _OPEN:
            # Closed between the check above and the append: the writer may be gone already.
            self._drain_late()
        elif self._thread is None:
            self._start()
        elif len(queue) >= self._wake_at and not self._wake.given:
            self._wake.set()

    def fast_lane(self) -> tuple[collections.deque[Any], int]:
        """The queue and the length below which `put`'s common case is a bare append.

        For the logging handler's inlined `put`: while `accepting` and the queue is shorter
        than the mark, append to it; if `accepting` is false after the append (the recorder
        closed meanwhile, maybe by a signal handler), call `drain_queued`. Otherwise call `put`.
        """
        return self._queue, self._wake_at

    def drain_queued(self) -> None:
        """Write what is queued now, synchronously (after an append that raced `close`)."""
        self._drain_late()

    def _make_room(self, event: ev.Event | ev.Captured) -> bool:
        if threading.get_ident() == self._thread_id:
            return True  # the writer itself never waits for itself
        if self._drop_when_full:
            if type(event) is ev.RunFinished:
                return True  # a run's final status is worth one event over the bound
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
                self._stopping = True
                self._drain_late()
                return
            self._thread = thread
            self.accepting = True
            self.start_checkpoints()

    def start_checkpoints(self) -> None:
        """Start the thread that checkpoints the store after each batch (`_checkpoint_loop`)."""
        checkpoints = threading.Thread(
            target=self._checkpoint_loop, name="logbridge-checkpoint", daemon=True
        )
        with contextlib.suppress(RuntimeError):  # finalising: the writer checkpoints
            checkpoints.start()
            self._checkpoint_thread = checkpoints

    @property
    def written(self) -> int:
        """Events written so far, by the writer thread and the writer process (for tests)."""
        process = self._process
        return self._written + (process.written if process is not None else 0)

    def flush(self, timeout: float | None = None, *, sinks: bool = False) -> bool:
        """Wait until everything queued before this call is written; return False on timeout.

        With ``sinks``, the sinks are flushed too, within the same ``timeout``. Without (the
        default), a slow or unreachable destination never stalls a run's flush or completion;
        the sinks are flushed at close.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        written = self._flush_store(timeout)
        return (not sinks or self._flush_sinks(deadline)) and written

    def _flush_store(self, timeout: float | None) -> bool:
        if threading.get_ident() == self._thread_id:
            return False
        if self._state != _OPEN:
            self._drain_late()
            return True
        if self._thread is None and not self._queue and not self._drop_log:
            return True
        marker = _Flush()
        self._queue.append(marker)
        if self._thread is None:
            self._start()
        if self._state != _OPEN:
            self._drain_late()
            return True
        self._wake.set()
        return marker.done.wait(timeout)

    def write_now(self, events: Sequence[ev.Event]) -> None:
        """Write ``events`` synchronously, raising if the store refuses them."""
        if not self._lock_writes(-1):
            raise RuntimeError("write_now called while this thread is writing")
        try:
            self._sync_process()  # what the writer process holds goes first
            self.store.write(events)
            self._written += len(events)
            self._to_sinks(events)
        finally:
            self._unlock_writes()

    def own(self, run_id: str) -> None:
        """Heartbeat ``run_id`` while it is running in this process."""
        self._owned.add(run_id)

    def disown(self, run_id: str) -> None:
        """Stop heartbeating ``run_id``."""
        self._owned.discard(run_id)

    def close(self, timeout: float | None = None) -> bool:
        """Write everything queued and stop the writer; idempotent.

        Events put after this are written synchronously. Returns False if the writer did not
        finish within ``timeout`` (what it still held is counted as dropped; final statuses
        are still written).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lifecycle:
            if self._state == _CLOSED:
                return True
            # From here on `put` writes synchronously (after what is queued) instead of
            # queueing: a writer draining while producers keep producing would never finish.
            self._state = _CLOSING
            self.accepting = False
            self._stopping = True
            self._process_after = None  # no writer process starts from here on
            thread = self._thread
        finished = True
        if thread is not None and thread is not threading.current_thread():
            self._wake.set()
            thread.join(timeout)
            finished = not thread.is_alive()
        if finished:
            self._drain_late()
        else:
            self._give_up(timeout)
        self._end_process(deadline)
        self._stop_checkpoints(deadline)
        if self._sinks:
            self._shutdown_sinks(deadline)
            self._drain_late()  # writes the sinks' counts of what they could not deliver
        with self._lifecycle:
            self._state = _CLOSED
        with self._room:
            self._room.notify_all()
        return finished

    def before_fork(self) -> None:
        """Let a write in progress commit and close the writing connection (fork hook).

        A child that inherits an open SQLite connection, or SQLite's bookkeeping of a
        transaction in progress, can block on locks nobody will release; so the child inherits
        none (the parent reopens at its next write). Call `after_fork` on both sides.
        """
        self._held_for_fork = self._lock_writes(_FORK_WAIT)
        self._checkpoint_held = self._checkpoint_lock.acquire(timeout=_FORK_WAIT)
        try:
            if self._held_for_fork:
                self.store.close()
            if self._checkpoint_held:
                self.store.close_checkpointer()
        except Exception as err:
            _report.once("fork", f"could not close the store before fork: {err}")

    def after_fork(self) -> None:
        """Undo `before_fork` (in the parent, and in the child that abandons this recorder)."""
        if self._checkpoint_held:
            self._checkpoint_held = False
            self._checkpoint_lock.release()
        if self._held_for_fork:
            self._held_for_fork = False
            self._unlock_writes()

    # -- after close ------------------------------------------------------------------------

    def _lock_writes(self, timeout: float) -> bool:
        # A signal handler running on top of this thread's own write must not wait for itself
        # (the connection is inside that write's transaction): it gives up instead.
        me = threading.get_ident()
        if self._write_owner == me or not self._write_lock.acquire(timeout=timeout):
            return False
        self._write_owner = me
        return True

    def _unlock_writes(self) -> None:
        self._write_owner = None
        self._write_lock.release()

    def _take_queued(self) -> tuple[list[ev.Event | ev.Captured], list[_Flush]]:
        # popleft one at a time: other threads may append meanwhile (iterating would raise).
        events: list[ev.Event | ev.Captured] = []
        markers: list[_Flush] = []
        popleft = self._queue.popleft
        while True:
            try:
                item = popleft()
            except IndexError:
                return events, markers
            if type(item) is _Flush:
                markers.append(item)
            else:
                events.append(item)  # type: ignore[arg-type]

    def _write_late(self, event: ev.Event | ev.Captured) -> None:
        if not self._lock_writes(0 if self._timed_out else _SYNC_WRITE_WAIT):
            self._count_drop(_run_id(event), "exit_timeout")
            return
        try:
            queued, markers = self._take_queued()
            self._write([*queued, event])
            if markers:
                self._sync_process()
        finally:
            self._unlock_writes()
        for marker in markers:
            marker.done.set()

    def _drain_late(self) -> None:
        if not self._queue and not self._drop_log:
            return
        if not self._lock_writes(0 if self._timed_out else _SYNC_WRITE_WAIT):
            return  # left queued: the next late write takes it along
        try:
            events, markers = self._take_queued()
            if events or self._drop_log:
                self._write(events)
            if markers:
                self._sync_process()
        finally:
            self._unlock_writes()
        for marker in markers:
            marker.done.set()

    def _give_up(self, timeout: float | None) -> None:
        # The writer is still busy at the deadline: stop it after its current batch, count
        # what is left as dropped, but keep the runs' final statuses. The leftover is set
        # before the abort: a writer that sees the abort writes it at once, and may then hold
        # the lock for as long as its writer process takes (`_loop`).
        self._timed_out = True
        events, markers = self._take_queued()
        finals: list[ev.Event] = [e for e in events if type(e) is ev.RunFinished]
        for event in events:
            if type(event) is not ev.RunFinished:
                self._count_drop(_run_id(event), "exit_timeout")
        _report.always(
            f"{len(events) - len(finals)} events were not written to {self.store.folder} "
            f"within the exit timeout ({timeout} s, LOGBRIDGE_EXIT_TIMEOUT); they are counted "
            "as dropped in the run"
        )
        self._leftover = finals
        self._abort = True
        self._write_leftover(_EXIT_GRACE)
        for marker in markers:
            marker.done.set()

    def _write_leftover(self, timeout: float) -> None:
        # Called by `_give_up` and by the writer once its last batch is in: whichever gets
        # the lock first writes the final statuses and the drop counts.
        if not self._lock_writes(timeout):
            return
        try:
            leftover, self._leftover = self._leftover, []
            if leftover or self._drop_log:
                self._write(leftover)
        finally:
            self._unlock_writes()

    # -- the writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        self._thread_id = threading.get_ident()
        next_beat = 0.0
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            stopping = self._stopping
            self._drain()
            if self._abort:
                # close() gave up on this thread: after the final statuses, let the writer
                # process finish too (at exit the process ends first; in a long-lived one, not).
                self._write_leftover(-1)
                self._end_process(None)
                return
            if stopping:
                return
            now = time.monotonic()
            if now >= next_beat and self._owned:
                next_beat = now + _liveness.HEARTBEAT_INTERVAL
                self._heartbeat()

    def _stop_checkpoints(self, deadline: float | None) -> None:
        # Its connection closed too: the store's last connection, when it closes, folds the
        # write-ahead log into the database and removes it.
        thread = self._checkpoint_thread
        if thread is None or thread is threading.current_thread():
            return
        self._checkpoints.set()
        left = _EXIT_GRACE if deadline is None else max(0.0, deadline - time.monotonic())
        thread.join(min(left, _EXIT_GRACE))

    def _checkpoint_loop(self) -> None:
        # Until the recorder closes: a checkpoint after each batch the writer commits. Stopped
        # by close (not waited for: a checkpoint cut short by the exit is safe, the log keeps
        # what it did not copy). Its connection is closed by this thread, or before fork.
        while True:
            self._checkpoints.wait(None)
            self._checkpoints.clear()
            if self._stopping:
                break
            with self._checkpoint_lock:
                try:
                    self.store.checkpoint()
                except Exception as err:
                    _report.once(
                        "checkpoint",
                        f"could not checkpoint the store {self.store.folder} ({err}); the "
                        "writer checkpoints it instead",
                    )
        with self._checkpoint_lock:
            self.store.close_checkpointer()

    def _drain(self) -> None:
        queue = self._queue
        popleft = queue.popleft
        while queue and not self._abort:
            batch: list[ev.Event | ev.Captured] = []
            marker: _Flush | None = None
            self._lock_writes(-1)
            try:
                try:
                    for _ in range(SINK_BATCH_SIZE if self._sinks else BATCH_SIZE):
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
                # A flush also writes the drops counted since the last batch.
                if batch or (marker is not None and self._drop_log):
                    self._write(batch)
                if marker is not None:
                    self._sync_process()
            finally:
                self._unlock_writes()
            if marker is not None:
                marker.done.set()

    def _write(self, queued: Sequence[ev.Event | ev.Captured]) -> None:
        # With the write lock held. To the writer process once this recorder has written
        # enough to make it worth its start (never once closing), else here.
        process = self._process
        after = self._process_after
        if (
            process is None
            and after is not None
            and self._written >= after
            and not self._sinks
            and not self._stopping
        ):
            process = self._start_process()
        if process is None:
            self.write_batch(queued)
            return
        if self._sinks:  # a sink added since: it takes events here, after the store
            self._close_process(process, _SINK_SWITCH_WAIT)
            self.write_batch(queued)
            return
        batch = [*self._take_drops(), *queued] if self._drop_log else queued
        try:
            sent = process.send(batch)
        except OSError as err:
            self._lost_process(process, err)
            return
        if not sent:  # what the child may not load, and cannot be turned into events here
            self._sync_process()
            self.write_batch(batch)
        self._write_refused(process)

    def _start_process(self) -> WriterProcess | None:
        from logbridge._writer_process import WriterProcess  # noqa: PLC0415 - rarely needed

        self._process_after = None  # one attempt: on failure, the thread goes on writing
        try:
            self._process = WriterProcess(self.store.folder)
        except Exception as err:
            _report.once(
                "writer_process",
                f"could not start a writer process for {self.store.folder} ({err}); "
                "writing from the training process's thread instead",
            )
        return self._process

    def _sync_process(self) -> None:
        # With the write lock held: everything sent to the writer process is written.
        process = self._process
        if process is not None:
            try:
                process.sync()
            except OSError as err:
                self._lost_process(process, err)
            else:
                self._write_refused(process)

    def _write_refused(self, process: WriterProcess) -> None:
        # With the write lock held: what the writer process could not read is written here,
        # after what it wrote since (a refused batch is a bug of ours; its order is not kept).
        for batch in process.take_refused():
            self.write_batch(batch)

    def _lost_process(self, process: WriterProcess, err: OSError) -> None:
        # With the write lock held: the child died (or its pipe broke); what it did not
        # acknowledge is written here, once it has surely stopped.
        self._process = None
        _, lost = process.finish(0, kill=True)
        self._written += process.written
        _report.once(
            "writer_process",
            f"the writer process for {self.store.folder} ended ({err}; exit code "
            f"{process.returncode()}); writing from the training process's thread instead",
        )
        for batch in lost:
            self.write_batch(batch)

    def _end_process(self, deadline: float | None) -> None:
        # Let the writer process write what it holds and exit, within the deadline.
        if self._process is None:
            return
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        if not self._lock_writes(-1 if left is None else left):
            return  # the writer thread is still sending: the child finishes after exit
        try:
            process = self._process  # again, under the lock
            if process is not None:
                self._close_process(process, left)
        finally:
            self._unlock_writes()

    def _close_process(self, process: WriterProcess, timeout: float | None) -> None:
        # With the write lock held.
        self._process = None
        done, left = process.finish(timeout, kill=False)
        self._written += process.written
        if not done:
            # Later events are written here, maybe before what the child still holds.
            _report.always(
                f"the writer process {process.pid} is still writing to {self.store.folder}; "
                "it finishes on its own after this process exits"
            )
        elif left:
            _report.once(
                "writer_process",
                f"the writer process for {self.store.folder} ended (exit code "
                f"{process.returncode()}) before writing everything; writing the rest here",
            )
            for batch in left:
                self.write_batch(batch)

    def abandon(self) -> None:
        """Let go of the parent's writer process, in a forked child (after `after_fork`)."""
        process, self._process = self._process, None
        if process is not None:
            process.abandon()

    def write_batch(self, queued: Sequence[ev.Event | ev.Captured]) -> None:
        """Write ``queued`` to the store from this thread (the writer process's loop too).

        Retries a locked or full store for a while, then counts the batch as dropped.
        """
        # Captured log records are formatted and rendered here, off the caller's thread. With
        # no sink to hand them to, as the store consumes them (`_Stream`).
        drops: list[ev.Event] = [*self._take_drops()] if self._drop_log else []
        if not queued and not drops:
            return
        batch: list[ev.Event] | _Stream = (
            [*drops, *_logrecords.expand(queued)] if self._sinks else _Stream(drops, queued)
        )
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
                if isinstance(batch, _Stream):
                    batch = [*drops, *_logrecords.expand(queued)]
                self._failed(batch, err)
                return
            else:
                if isinstance(batch, _Stream):
                    self._written += batch.count
                else:
                    self._written += len(batch)
                    self._to_sinks(batch)
                self._checkpoints.set()
                if self._failing:
                    self._failing = False
                    _report.always(f"writing to the store {self.store.folder} works again")
                return

    def _failed(self, batch: list[ev.Event], err: Exception) -> None:
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

    # -- sinks -------------------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Hand every batch written to the store from now on to ``sink`` too."""
        with self._lifecycle:
            self._sinks = [*self._sinks, sink]

    def count_drop(self, run_id: str, reason: str, count: int = 1) -> None:
        """Count events of ``run_id`` accepted but not delivered (written with the next batch)."""
        self._count_drop(run_id, reason, count)

    def _to_sinks(self, events: Sequence[ev.Event]) -> None:
        for sink in self._sinks:
            try:
                sink.export(events)
            except Exception as err:
                _report.once(f"sink:{type(sink).__name__}", f"{type(sink).__name__} failed: {err}")

    def _flush_sinks(self, deadline: float | None) -> bool:
        done = True
        for sink in self._sinks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                done = sink.force_flush(left) and done
            except Exception as err:
                _report.once(f"sink:{type(sink).__name__}", f"{type(sink).__name__} failed: {err}")
                done = False
        return done

    def _shutdown_sinks(self, deadline: float | None) -> None:
        for sink in self._sinks:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                sink.shutdown(left)
            except Exception as err:
                _report.once(f"sink:{type(sink).__name__}", f"{type(sink).__name__} failed: {err}")

    def _heartbeat(self) -> None:
        self._lock_writes(-1)
        try:
            self.store.heartbeat(sorted(self._owned))
        except Exception as err:
            if self._process is not None:
                return  # the writer process, which writes the batches, says it once
            # The same trouble as a failing write (a full disk, say): one line for both.
            _report.once(
                "store_error",
                f"cannot write to the store {self.store.folder} ({err}); the training goes "
                "on, and events are dropped and counted until the store can be written again",
            )
        finally:
            self._unlock_writes()

    def _count_drop(self, run_id: str, reason: str, count: int = 1) -> None:
        self._drop_log.append((run_id, reason, count))

    def _take_drops(self) -> list[ev.Dropped]:
        taken: list[tuple[str, str, int]] = []
        popleft = self._drop_log.popleft
        while True:
            try:
                taken.append(popleft())
            except IndexError:
                break
        return [ev.Dropped(run_id, reason, n) for (run_id, reason), n in _tally(taken).items()]

    def dropped(self) -> dict[tuple[str, str], int]:
        """Return (run id, reason) -> count of drops not yet written to the store."""
        return _tally(list(self._drop_log))  # list() copies without running Python code


class _Stream:
    """A batch's events, captured records expanded a few at a time as the store consumes them.

    The events a captured record stands for then die young instead of living, tracked by the
    garbage collector, until the whole batch is written: with a batch expanded beforehand,
    they are promoted and trigger full collections (benchmarks/bench_handler.py).
    """

    __slots__ = ("count", "drops", "queued")

    def __init__(self, drops: list[ev.Event], queued: Sequence[ev.Event | ev.Captured]) -> None:
        self.drops = drops
        self.queued = queued
        self.count = 0
        """Events taken by the last complete pass."""

    def __iter__(self) -> Iterator[ev.Event]:
        return itertools.chain.from_iterable(self._lists())

    def _lists(self) -> Iterator[list[ev.Event]]:
        count = len(self.drops)
        yield self.drops
        for events in _logrecords.expanded(self.queued):
            count += len(events)
            yield events
        self.count = count


def _tally(drops: list[tuple[str, str, int]]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for run_id, reason, count in drops:
        counts[run_id, reason] = counts.get((run_id, reason), 0) + count
    return counts


def _run_id(event: ev.Event | ev.Captured) -> str:
    return event[0] if type(event) is tuple else event.run_id  # type: ignore[union-attr]
