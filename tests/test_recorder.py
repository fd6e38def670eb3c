"""The recorder in one process: many threads, a full queue, flush and close.

Every test runs against the real SQLite store of the test (the conftest fixture), and counts
what the store holds with its own connection.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import logbridge
from logbridge import _state
from logbridge._recorder import Recorder


@contextlib.contextmanager
def connect(store: Path) -> Iterator[sqlite3.Connection]:
    """A connection of the test's own to the store's database."""
    db = sqlite3.connect(store / "store.db", timeout=30, isolation_level=None)
    try:
        yield db
    finally:
        db.close()


def points(store: Path, run_id: str) -> dict[str, list[object]]:
    """Metric name -> the stored values, in stored order, read with the test's connection."""
    with connect(store) as db:
        rows = db.execute(
            "SELECT m.name, p.value FROM points p JOIN metrics m ON m.id = p.metric_id "
            "WHERE m.run_id = ? ORDER BY p.rowid",
            (run_id,),
        ).fetchall()
    found: dict[str, list[object]] = {}
    for name, value in rows:
        found.setdefault(name, []).append(value)
    return found


def recorder_of(run: logbridge.Run) -> Recorder:
    """The recorder writing ``run`` in this process."""
    found = _state.existing_recorder(run.store)
    assert found is not None
    return found


@contextlib.contextmanager
def store_locked(store: Path) -> Iterator[None]:
    """Hold the store's write lock from another connection: the writer waits meanwhile."""
    with connect(store) as db:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")


def test_32_threads_log_10k_points_each_while_a_reader_polls(store: Path) -> None:
    """320,000 points from 32 threads are all stored, each thread's in the order it logged.

    A reader thread polls ``get_metrics`` and the store meanwhile: it only ever sees an
    in-order prefix of a thread's points, and counts that never go down.
    """
    run = logbridge.start_run(experiment="threads")
    go = threading.Barrier(33)
    writers_done = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def write(i: int) -> None:
        go.wait()
        for seq in range(10_000):
            run.log(f"t{i:02d}", seq)

    def read() -> None:
        go.wait()
        while not writers_done.is_set():
            values = run.get_metrics("t00").get("t00", [])
            values = values if isinstance(values, list) else [values]
            if values != list(range(len(values))):
                problems.append(f"t00 read out of order: {values[:20]}")
            with connect(store) as db:
                seen.append(db.execute("SELECT count(*) FROM points").fetchone()[0])
            time.sleep(0.05)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(32)]
    reader = threading.Thread(target=read)
    for thread in [*threads, reader]:
        thread.start()
    for thread in threads:
        thread.join(120)
    writers_done.set()
    reader.join(60)
    run.complete()

    assert problems == []
    assert seen == sorted(seen)
    assert len(seen) >= 2
    stored = points(store, run.id)
    assert sorted(stored) == [f"t{i:02d}" for i in range(32)]
    for name, values in stored.items():
        assert values == list(range(10_000)), name
    assert "dropped" not in run.get_details()
    assert run.get_status() == "Completed"


def test_a_burst_far_beyond_a_blocking_queue_loses_nothing(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the default policy (block) and a queue of 100, 4 x 10,000 points are all stored.

    The queue never holds more than its bound plus one event per producer.
    """
    monkeypatch.setenv("LOGBRIDGE_QUEUE_SIZE", "100")
    run = logbridge.start_run(experiment="burst")
    rec = recorder_of(run)
    producing = threading.Event()
    longest = [0]

    def watch() -> None:
        while producing.is_set():
            longest[0] = max(longest[0], len(rec._queue))

    def produce(i: int) -> None:
        for seq in range(10_000):
            run.log(f"p{i}", seq)

    producing.set()
    watcher = threading.Thread(target=watch)
    watcher.start()
    producers = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(120)
    producing.clear()
    watcher.join(10)
    run.complete()

    assert longest[0] <= 104
    stored = points(store, run.id)
    assert {name: len(values) for name, values in stored.items()} == {
        "p0": 10_000,
        "p1": 10_000,
        "p2": 10_000,
        "p3": 10_000,
    }
    assert all(values == list(range(10_000)) for values in stored.values())
    assert "dropped" not in run.get_details()


def test_drop_policy_counts_every_point_it_drops_and_keeps_the_final_status(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With LOGBRIDGE_QUEUE_FULL=drop, attempted = stored + dropped, exactly.

    The store is locked while 50,000 points are logged, so the writer is stuck and the queue
    of 100 fills: at most the queue and the batch the writer holds are stored (memory stays
    bounded), the rest is counted as ``queue_full`` in the run. ``complete()`` on a full
    queue still records the status.
    """
    monkeypatch.setenv("LOGBRIDGE_QUEUE_SIZE", "100")
    monkeypatch.setenv("LOGBRIDGE_QUEUE_FULL", "drop")
    # The writer thread's bound; a writer process also holds what fits in its pipe.
    monkeypatch.setenv("LOGBRIDGE_WRITER_PROCESS_AFTER", "never")
    run = logbridge.start_run(experiment="drop")
    with store_locked(store):
        for seq in range(50_000):
            run.log("x", seq)
        finisher = threading.Thread(target=run.complete)  # it waits for its status to land
        finisher.start()
        time.sleep(0.2)
    finisher.join(30)
    details = run.get_details()

    stored = points(store, run.id)["x"]
    assert stored == sorted(stored)
    assert len(stored) <= 200
    assert len(stored) + details["dropped"]["queue_full"] == 50_000
    assert list(details["dropped"]) == ["queue_full"]
    assert details["status"] == "Completed"


def test_a_flush_writes_drops_counted_after_the_last_batch(store: Path) -> None:
    """A drop counted when nothing else is queued reaches the store with the next flush."""
    run = logbridge.start_run(experiment="drops")
    run.log("x", 1)
    assert run.flush(10)
    recorder_of(run)._count_drop(run.id, "queue_full")
    assert run.flush(10)
    with connect(store) as db:
        rows = db.execute("SELECT reason, count FROM drops WHERE run_id = ?", (run.id,))
        assert rows.fetchall() == [("queue_full", 1)]


def test_close_twice_flush_after_close_and_points_after_close(store: Path) -> None:
    """close() is idempotent, flush() after it returns at once, later points land at once.

    A point logged after close is in the store when ``run.log`` returns (written
    synchronously), with no flush and no writer thread.
    """
    run = logbridge.start_run(experiment="close")
    run.log("x", 1)
    rec = recorder_of(run)
    started = time.monotonic()
    assert rec.close(10) is True
    assert rec.close(10) is True
    assert rec.flush(10) is True
    run.log("x", 2)
    run.log("x", 3)
    assert points(store, run.id) == {"x": [1, 2, 3]}
    assert rec.flush(10) is True
    assert time.monotonic() - started < 5
    assert rec._thread is not None
    assert not rec._thread.is_alive()


def test_close_while_threads_keep_logging_finishes_and_loses_nothing(store: Path) -> None:
    """close() returns although 4 threads go on logging; every point is stored, in order.

    Points logged after close are written synchronously behind what was queued, so each
    thread's sequence is complete and in order.
    """
    run = logbridge.start_run(experiment="close-busy")
    rec = recorder_of(run)
    stop = threading.Event()
    counts = [0, 0, 0, 0]

    def produce(i: int) -> None:
        while not stop.is_set() or counts[i] < 2_000:
            run.log(f"p{i}", counts[i])
            counts[i] += 1

    producers = [threading.Thread(target=produce, args=(i,)) for i in range(4)]
    for thread in producers:
        thread.start()
    time.sleep(0.3)
    started = time.monotonic()
    assert rec.close(10) is True
    took = time.monotonic() - started
    time.sleep(0.2)
    stop.set()
    for thread in producers:
        thread.join(60)

    assert took < 5
    stored = points(store, run.id)
    for i in range(4):
        assert stored[f"p{i}"] == list(range(counts[i]))
    assert rec.dropped() == {}


def test_close_past_its_timeout_counts_what_is_left_and_keeps_the_status(store: Path) -> None:
    """A close that times out counts the unwritten points as exit_timeout drops.

    The store is locked, so the writer is stuck on its batch when the exit deadline (0.2 s)
    passes; once the lock goes, the status and the drop count are still recorded and
    stored + dropped equals the 3,000 points logged.
    """
    run = logbridge.start_run(experiment="exit-timeout")
    rec = recorder_of(run)
    with store_locked(store):
        for seq in range(1_000):
            run.log("x", seq)
        assert run.flush(0.3) is False  # the writer has taken these and waits for the lock
        for seq in range(1_000, 3_000):
            run.log("x", seq)
        started = time.monotonic()
        _state.shutdown(0.2)
        assert time.monotonic() - started < 2.5
    assert rec._thread is not None
    rec._thread.join(30)

    details = logbridge.get_run(run.id).get_details()
    stored = points(store, run.id)["x"]
    assert stored == list(range(len(stored)))
    assert len(stored) + details["dropped"]["exit_timeout"] == 3_000
    assert details["dropped"]["exit_timeout"] >= 2_000
    assert details["status"] == "Completed"
