"""A sketch, not a feature: what bench_handler.py's figures would be with the writer in a process.

logbridge's writer is a thread of the training process. Its Python work (formatting, rendering,
the store's loop) shares the GIL, the objects and the allocator pools with the caller, so on
two cores it costs the caller more than its own work, and the pipeline's wall time is about
the two threads' CPU added up (benchmarks/README.md). This script measures the alternative
without building it: in each "process" round the recorder's ``_write`` is replaced by one that
pickles the batch of captured records and sends it down a pipe to a forked child, which
expands and writes it with logbridge's own code (`_logrecords.expanded`, `SQLiteStore.write`);
the round ends when the child acknowledges everything sent before ``run.flush()`` returned.
Rounds alternate with logbridge as it is ("thread"), against the same do-nothing baseline as
bench_handler.py, and every round checks that every record and point is in the store.

What the sketch leaves out, and a real writer process would need: the Run API's own events
(runs, tags, files: here they still go through the thread), sinks (OpenTelemetry), records
whose message arguments cannot be pickled, the child's start-up cost, forked and spawned
workers, and the exit and crash paths of ../shared/RELIABILITY.md.

    .venv/bin/python benchmarks/sketch_writer_process.py [--records 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import pickle
import statistics
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_handler as bh

import logbridge
from logbridge import _logrecords, _recorder, _store

_HEADER = struct.Struct("I")


def child(read_fd: int, ack_fd: int, folder: str, inherited: Sequence[int]) -> None:
    """Write what comes down the pipe into the store; answer an empty message with one byte."""
    for fd in inherited:
        os.close(fd)  # the parent's ends: without this the pipe never reaches its end
    store = _store.SQLiteStore(Path(folder))
    with os.fdopen(read_fd, "rb", buffering=1 << 20) as pipe:
        while head := pipe.read(_HEADER.size):
            (size,) = _HEADER.unpack(head)
            if size == 0:
                os.write(ack_fd, b"k")
                continue
            batch = pickle.loads(pipe.read(size))  # our own pipe
            store.write([event for events in _logrecords.expanded(batch) for event in events])
    store.close()


class Pipe:
    """The parent's side: ``write`` stands in for ``Recorder._write`` (a bound method, set on
    the class: it takes no recorder); ``synced`` waits for the child's acknowledgement."""

    def __init__(self, write_fd: int, ack_fd: int) -> None:
        self.write_fd = write_fd
        self.ack_fd = ack_fd

    def send(self, data: bytes) -> None:
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.write_fd, view) :]

    def write(self, queued: Sequence[Any]) -> None:
        self.send(pickle.dumps(list(queued), protocol=pickle.HIGHEST_PROTOCOL))

    def synced(self) -> None:
        self.send(b"")
        os.read(self.ack_fd, 1)


@contextlib.contextmanager
def writer_process(store: Path) -> Iterator[Pipe]:
    read_fd, write_fd = os.pipe()
    ack_read, ack_write = os.pipe()
    process = multiprocessing.get_context("fork").Process(
        target=child, args=(read_fd, ack_write, str(store), (write_fd, ack_read))
    )
    process.start()
    os.close(read_fd)
    os.close(ack_write)
    pipe = Pipe(write_fd, ack_read)
    original = _recorder.Recorder._write  # noqa: SLF001
    _recorder.Recorder._write = pipe.write  # type: ignore[assignment,method-assign] # noqa: SLF001
    try:
        yield pipe
    finally:
        _recorder.Recorder._write = original  # type: ignore[method-assign] # noqa: SLF001
        os.close(write_fd)
        process.join()
        os.close(ack_read)


def process_writer(records: int) -> bh.Figures:
    """bench_handler's RunHandler round, with the writer's work done in a child process."""
    with bh.temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="writer process")
        with writer_process(store) as pipe:
            log = bh.logger_with(logbridge.RunHandler())
            bh.tagged_calls(log, 100, start=-100)
            run.flush()
            pipe.synced()

            def done() -> None:
                run.flush()
                pipe.synced()

            figures = bh.timed(records, lambda: bh.tagged_calls(log, records), done)
        run.complete()
        bh.logger_with(bh.NoopHandler())
        bh.check_stored(store, run.id, records + 100)
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="tagged calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    args = parser.parse_args(argv)
    subjects = {"thread (as it is)": bh.run_handler, "process (sketch)": process_writer}
    base, results = bh.rounds(subjects, bh.baseline, args.records, args.repeat)
    print(f"{args.records:,} tagged calls per round, median of {args.repeat} round(s)")
    print(f"  baseline caller CPU {statistics.median(f['caller'] for f in base) * 1e6:.2f} us")
    print(f"  {'writer':<20}{'caller CPU':>12}{'pipeline':>10}{'process CPU':>13}")
    for name, figures in results.items():
        caller = bh.ratio(figures, base, "caller", "caller")
        pipeline = bh.ratio(figures, base, "pipeline", "pipeline")
        process = bh.ratio(figures, base, "process", "caller")
        print(f"  {name:<20}{caller:>11.2f}x{pipeline:>9.2f}x{process:>12.2f}x")
    print("  (process CPU: the training process's threads, not the writer process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
