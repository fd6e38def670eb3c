"""Cost of a tagged ``log.info(...)`` call with `logbridge.RunHandler` against a no-op handler.

The call is ``log.info("epoch %d done", i, extra={"metrics": {"loss": ..., "acc": ...},
"step": i})`` on a logger whose only handler is the subject. Each round runs, in an order that
rotates from round to round so that load from other processes falls on all of them alike:

* ``baseline``: a handler whose ``emit`` does nothing (the reference of every ratio);
* ``RunHandler``: logbridge, into a fresh temporary store (its recorder hands the writing to a
  writer process after its first 10,000 events, as by default);
* ``RunHandler, thread writer``: the same with ``LOGBRIDGE_WRITER_PROCESS_AFTER=never``, every
  batch written by the recorder's thread in the training process;
* ``RunHandler, Python capture``: ``RunHandler`` with the capture in Python
  (`logbridge._handler.capture_python`) instead of compiled (``logbridge._speedups``), when
  the compiled one is built;
* reference handlers, for context: the standard library's ``FileHandler`` and ``QueueHandler``
  (with a ``QueueListener`` feeding a do-nothing handler), python-json-logger's
  ``JsonFormatter`` on a ``FileHandler``, structlog rendering JSON to a file, and structlog
  with `logbridge.structlog.RunProcessor` in its chain, OpenTelemetry's ``LoggingHandler``
  batching into an exporter that drops everything; and the baseline itself while another
  thread of the process runs Python code (what any thread beside the caller costs it).

Per call it reports the calling thread's CPU (``time.thread_time``) spent in the loop; the whole
pipeline: wall time from the first call until the record is where it belongs (in the run's log
and its metrics in the store: ``run.flush()`` has returned; a file handler flushed; the queue
listener stopped); and the process's CPU time (all its threads) over that span against the
baseline's CPU, the pipeline's cost in a form that load from other processes changes less.
Targets: caller CPU <= 1.3x the baseline, pipeline <= 3x the baseline's wall time. Every figure
is the median of ``--repeat`` rounds; ratios are medians of the ratios of each round (each
subject against the baseline of the same round).

With ``--one-cpu`` the whole process runs on one CPU, so the writer thread works on the caller's
core: what is left of the caller's figure is logbridge's own work, without the cost of the two
threads' Python work on two cores (the objects, reference counts and allocator pools they
share move between the cores' caches at every GIL hand-off).

The figures above come from one unbroken burst of calls, which the writer cannot keep up
with. It also measures:

* ``paced``: the caller's CPU when the calls come in bursts of 500, 10 ms apart, so that the
  writer catches up in the pauses, as it can in a training loop that logs between steps;
* a call below the handler's level (RunHandler at WARNING against the do-nothing handler at
  WARNING);
* with ``tracemalloc``, the memory each queued record holds while the writer thread is held
  back.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import logging.handlers
import os
import queue
import resource
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import logbridge
from logbridge import _handler, _state
from logbridge.testing import temporary_store

LOGGER = "bench.handler"
CALL = 'log.info("epoch %d done", i, extra={"metrics": {"loss": .., "acc": ..}, "step": i})'


class NoopHandler(logging.Handler):
    """The baseline: a handler that does nothing with the record."""

    def emit(self, record: logging.LogRecord) -> None:
        """Do nothing."""


class Figures(dict[str, float]):
    """Per-call seconds of one subject in one round: ``caller`` CPU, ``pipeline`` wall, and
    ``process`` CPU (all threads) until the pipeline is done."""


def logger_with(handler: logging.Handler) -> logging.Logger:
    log = logging.getLogger(LOGGER)
    for old in list(log.handlers):
        log.removeHandler(old)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    return log


def tagged_calls(log: logging.Logger, records: int, start: int = 0) -> tuple[float, float]:
    """Make ``records`` tagged calls; return (caller thread CPU, wall) in seconds."""
    info = log.info
    wall0 = time.perf_counter()
    cpu0 = time.thread_time()
    for i in range(start, start + records):
        info(
            "epoch %d done",
            i,
            extra={"metrics": {"loss": 1.0 / (i + 1000), "acc": 0.9}, "step": i},
        )
    cpu1 = time.thread_time()
    return cpu1 - cpu0, time.perf_counter() - wall0


def minor_faults() -> int:
    """Minor page faults of the calling thread so far (0 where Linux's RUSAGE_THREAD is missing)."""
    who = getattr(resource, "RUSAGE_THREAD", None)
    return resource.getrusage(who).ru_minflt if who is not None else 0


def timed(
    records: int, calls: Callable[[], tuple[float, float]], done: Callable[[], Any]
) -> Figures:
    wall0 = time.perf_counter()
    process0 = time.process_time()
    faults0 = minor_faults()
    cpu, _ = calls()
    faults = minor_faults() - faults0
    done()
    process = time.process_time() - process0
    wall = time.perf_counter() - wall0
    return Figures(
        caller=cpu / records,
        pipeline=wall / records,
        process=process / records,
        faults=faults / records,
    )


# -- subjects: each makes ``records`` tagged calls and waits until they are delivered ----------


def baseline(records: int, level: int = logging.NOTSET) -> Figures:
    log = logger_with(NoopHandler(level))
    return timed(records, lambda: tagged_calls(log, records), lambda: None)


def run_handler(records: int, level: int = logging.NOTSET) -> Figures:
    with temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="handler")
        log = logger_with(logbridge.RunHandler(level))
        tagged_calls(log, 100, start=-100)  # start the writer, open the store, name metrics
        run.flush()
        figures = timed(records, lambda: tagged_calls(log, records), run.flush)
        run.complete()
        logger_with(NoopHandler())
        if level == logging.NOTSET:
            check_stored(store, run.id, records + 100)
    return figures


def run_handler_python_capture(records: int) -> Figures:
    """`run_handler` with the capture in Python, as without the compiled ``_speedups``."""
    compiled = _handler.capture
    _handler.capture = _handler.capture_python
    try:
        return run_handler(records)
    finally:
        _handler.capture = compiled


def run_handler_thread_writer(records: int) -> Figures:
    """`run_handler` with the recorder's thread writing every batch (no writer process)."""
    os.environ["LOGBRIDGE_WRITER_PROCESS_AFTER"] = "never"
    try:
        return run_handler(records)
    finally:
        del os.environ["LOGBRIDGE_WRITER_PROCESS_AFTER"]


def check_stored(store: Path, run_id: str, records: int, metrics: int = 2) -> None:
    """Every record is in the run's log, and its ``metrics`` points in the store."""
    with contextlib.closing(sqlite3.connect(store / "store.db")) as conn:
        logs = conn.execute("SELECT count(*) FROM logs WHERE run_id = ?", (run_id,)).fetchone()[0]
        points = conn.execute(
            "SELECT count(*) FROM points JOIN metrics ON metrics.id = points.metric_id "
            "WHERE metrics.run_id = ?",
            (run_id,),
        ).fetchone()[0]
    if logs != records or points != metrics * records:
        raise SystemExit(f"lost records: {records} logged, {logs} in the log, {points} points")


@contextlib.contextmanager
def scratch_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="bench-handler-") as folder:
        yield str(Path(folder) / "out.log")


def file_handler(records: int) -> Figures:
    with scratch_file() as path:
        handler = logging.FileHandler(path)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log = logger_with(handler)
        figures = timed(records, lambda: tagged_calls(log, records), handler.flush)
        logger_with(NoopHandler())
        handler.close()
    return figures


def json_file_handler(records: int) -> Figures:
    from pythonjsonlogger.json import JsonFormatter

    with scratch_file() as path:
        handler = logging.FileHandler(path)
        handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        log = logger_with(handler)
        figures = timed(records, lambda: tagged_calls(log, records), handler.flush)
        logger_with(NoopHandler())
        handler.close()
    return figures


def queue_handler(records: int) -> Figures:
    q: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(q, NoopHandler())
    listener.start()
    log = logger_with(logging.handlers.QueueHandler(q))
    figures = timed(records, lambda: tagged_calls(log, records), listener.stop)
    logger_with(NoopHandler())
    return figures


def structlog_calls(processors: list[Any], path: str, records: int) -> tuple[float, float]:
    import structlog

    with Path(path).open("w") as out:
        slog = structlog.wrap_logger(
            structlog.WriteLogger(out), processors=processors, cache_logger_on_first_use=True
        )
        info = slog.info
        wall0 = time.perf_counter()
        cpu0 = time.thread_time()
        for i in range(records):
            info("epoch done", metrics={"loss": 1.0 / (i + 1000), "acc": 0.9}, step=i)
        cpu1 = time.thread_time()
        wall = time.perf_counter() - wall0
    return cpu1 - cpu0, wall


def structlog_json(records: int) -> Figures:
    import structlog

    processors = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ]
    with scratch_file() as path:
        return timed(records, lambda: structlog_calls(processors, path, records), lambda: None)


def structlog_run_processor(records: int) -> Figures:
    import structlog

    from logbridge.structlog import RunProcessor

    with temporary_store(), scratch_file() as path:
        run = logbridge.start_run(experiment="bench", name="structlog")
        processors = [
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            RunProcessor(),
            structlog.processors.JSONRenderer(),
        ]
        structlog_calls(processors, path, 100)
        run.flush()
        figures = timed(records, lambda: structlog_calls(processors, path, records), run.flush)
        run.complete()
    return figures


def otel_logging_handler(records: int) -> Figures:
    """OpenTelemetry's ``LoggingHandler``, batching into an exporter that drops everything."""
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )

    class NullExporter(LogRecordExporter):
        def export(self, batch: Sequence[Any]) -> LogRecordExportResult:  # noqa: ARG002
            return LogRecordExportResult.SUCCESS

        def shutdown(self) -> None:
            """Nothing to release."""

        def force_flush(self, timeout_millis: int = 30_000) -> bool:  # noqa: ARG002
            return True

    provider = LoggerProvider()
    provider.add_log_record_processor(BatchLogRecordProcessor(NullExporter()))
    log = logger_with(LoggingHandler(logging.NOTSET, logger_provider=provider))
    figures = timed(records, lambda: tagged_calls(log, records), provider.force_flush)
    logger_with(NoopHandler())
    provider.shutdown()
    return figures


def beside_a_busy_thread(records: int) -> Figures:
    """The baseline while another thread of the process runs Python code that allocates.

    Not a handler: what any thread doing Python work beside the logging thread costs it (the
    GIL hand-offs, the objects and allocator pools the two threads share across two cores),
    the part of RunHandler's caller figure that its writer thread brings whatever it does.
    """
    stop = threading.Event()

    def busy() -> None:
        while not stop.is_set():
            words = [f"{i}:{i * 0.5}" for i in range(200)]
            json.loads(json.dumps({word: (word, 1.5, None) for word in words}))

    thread = threading.Thread(target=busy, name="bench-busy", daemon=True)
    thread.start()
    try:
        return baseline(records)
    finally:
        stop.set()
        thread.join()


def has(module: str) -> bool:
    try:
        __import__(module)
    except ImportError:
        return False
    return True


OURS: dict[str, Callable[[int], Figures]] = {
    "RunHandler": run_handler,
    "RunHandler, thread writer": run_handler_thread_writer,
}
if _handler.COMPILED:
    OURS["RunHandler, Python capture"] = run_handler_python_capture
SUBJECTS: dict[str, Callable[[int], Figures]] = {
    **OURS,
    "stdlib FileHandler": file_handler,
    "stdlib QueueHandler": queue_handler,
    "python-json-logger file": json_file_handler,
    "no-op beside busy thread": beside_a_busy_thread,
}
if has("opentelemetry.sdk"):
    SUBJECTS["OpenTelemetry handler"] = otel_logging_handler
if has("structlog"):
    SUBJECTS["structlog JSON file"] = structlog_json
    SUBJECTS["structlog + RunProcessor"] = structlog_run_processor


def rounds(
    subjects: dict[str, Callable[[int], Figures]],
    base: Callable[[int], Figures],
    records: int,
    repeat: int,
) -> tuple[list[Figures], dict[str, list[Figures]]]:
    """Run the baseline and every subject ``repeat`` times, in a rotating order."""
    names = ["baseline", *subjects]
    runs: dict[str, Callable[[int], Figures]] = {"baseline": base, **subjects}
    results: dict[str, list[Figures]] = {name: [] for name in names}
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            results[name].append(runs[name](records))
    return results.pop("baseline"), results


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ratio(subject: list[Figures], base: list[Figures], key: str, base_key: str) -> float:
    return median([s[key] / b[base_key] for s, b in zip(subject, base, strict=True)])


def report(records: int, repeat: int, *, references: bool) -> None:
    subjects = SUBJECTS if references else OURS
    base, results = rounds(subjects, baseline, records, repeat)
    b_cpu = median([f["caller"] for f in base]) * 1e6
    b_wall = median([f["pipeline"] for f in base]) * 1e6
    print(f"\n{records:,} tagged calls per round, median of {repeat} round(s)")
    print(f"  baseline (do-nothing handler): caller CPU {b_cpu:.2f} us, wall {b_wall:.2f} us")
    print(
        f"  {'per call':<26}{'caller CPU':>12}{'ratio':>8}{'pipeline':>12}{'ratio':>8}"
        f"{'process CPU':>13}{'ratio':>8}"
    )
    for name, figures in results.items():
        cpu = median([f["caller"] for f in figures]) * 1e6
        wall = median([f["pipeline"] for f in figures]) * 1e6
        process = median([f["process"] for f in figures]) * 1e6
        cpu_ratio = ratio(figures, base, "caller", "caller")
        wall_ratio = ratio(figures, base, "pipeline", "pipeline")
        process_ratio = ratio(figures, base, "process", "caller")
        print(
            f"  {name:<28}{cpu:>9.2f} us{cpu_ratio:>7.2f}x{wall:>9.2f} us{wall_ratio:>7.2f}x"
            f"{process:>10.2f} us{process_ratio:>7.2f}x"
        )
    faults = ", ".join(
        f"{name} {median([f['faults'] for f in figures]):.3f}"
        for name, figures in {"baseline": base, **results}.items()
    )
    print(f"  the caller's minor page faults per call: {faults}")
    ours = results["RunHandler"]
    cpu_ratio = ratio(ours, base, "caller", "caller")
    wall_ratio = ratio(ours, base, "pipeline", "pipeline")
    print(
        f"  RunHandler caller CPU: {cpu_ratio:.2f}x the baseline (target <= 1.3x) "
        f"{'met' if cpu_ratio <= 1.3 else 'NOT met'}"
    )
    print(
        f"  RunHandler pipeline to flush: {wall_ratio:.2f}x the baseline (target <= 3x) "
        f"{'met' if wall_ratio <= 3.0 else 'NOT met'}"
    )


BURST = 500
PAUSE = 0.01


def paced_calls(log: logging.Logger, records: int) -> tuple[float, float]:
    """Tagged calls in bursts of `BURST`, `PAUSE` seconds apart, as a training loop logs
    between steps; return the caller thread's CPU in the bursts and the wall time in all."""
    cpu = 0.0
    wall0 = time.perf_counter()
    for start in range(0, records, BURST):
        cpu += tagged_calls(log, min(BURST, records - start), start)[0]
        time.sleep(PAUSE)
    return cpu, time.perf_counter() - wall0


def paced_baseline(records: int) -> Figures:
    log = logger_with(NoopHandler())
    return timed(records, lambda: paced_calls(log, records), lambda: None)


def paced_run_handler(records: int) -> Figures:
    with temporary_store() as store:
        run = logbridge.start_run(experiment="bench", name="paced")
        log = logger_with(logbridge.RunHandler())
        tagged_calls(log, 100, start=-100)
        run.flush()
        figures = timed(records, lambda: paced_calls(log, records), run.flush)
        run.complete()
        logger_with(NoopHandler())
        check_stored(store, run.id, records + 100)
    return figures


def paced(records: int, repeat: int) -> None:
    """The caller's CPU when the calls come in bursts with pauses in which the writer catches up."""
    base, results = rounds({"RunHandler": paced_run_handler}, paced_baseline, records, repeat)
    b = median([f["caller"] for f in base]) * 1e6
    r = median([f["caller"] for f in results["RunHandler"]]) * 1e6
    rel = ratio(results["RunHandler"], base, "caller", "caller")
    print(
        f"\npaced: bursts of {BURST} tagged calls, {PAUSE * 1000:.0f} ms apart (the writer catches "
        "up in the pauses), caller CPU per call"
    )
    print(f"  baseline {b:.2f} us, RunHandler {r:.2f} us: {rel:.2f}x")


def below_level(records: int, repeat: int) -> None:
    """A tagged INFO call reaching a handler at WARNING: RunHandler against the baseline."""
    base, results = rounds(
        {"RunHandler": lambda n: run_handler(n, logging.WARNING)},
        lambda n: baseline(n, logging.WARNING),
        records,
        repeat,
    )
    b = median([f["caller"] for f in base]) * 1e6
    r = median([f["caller"] for f in results["RunHandler"]]) * 1e6
    rel = ratio(results["RunHandler"], base, "caller", "caller")
    print("\nbelow the handler's level (INFO call, handler at WARNING), caller CPU per call")
    print(f"  baseline {b:.2f} us, RunHandler {r:.2f} us: {rel:.2f}x ({r - b:+.2f} us)")


def queued_memory(records: int) -> None:
    """Bytes each queued record holds while the writer thread is held back."""
    with temporary_store():
        os.environ["LOGBRIDGE_QUEUE_SIZE"] = str(records + 1_000)
        try:
            run = logbridge.start_run(experiment="bench", name="memory")
            log = logger_with(logbridge.RunHandler())
            tagged_calls(log, 10, start=-10)
            run.flush()
        finally:
            del os.environ["LOGBRIDGE_QUEUE_SIZE"]
        recorder = _state.existing_recorder(run.store)
        # The writer takes a batch off the queue and then waits for this lock to write it; the
        # batch's events are still captured records, unexpanded, so they count as queued.
        lock = getattr(recorder, "_write_lock", None)
        if lock is None:
            print("\nmemory per queued record: n/a (the recorder has no write lock to hold)")
            return
        gc.collect()
        with lock:
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            tagged_calls(log, records)
            gc.collect()
            held = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
        run.flush()
        run.complete()
        logger_with(NoopHandler())
    plain = plain_record_memory(records)
    print(f"\nmemory while the writer is held back ({records:,} queued records, tracemalloc)")
    print(
        f"  {held / records:,.0f} bytes per queued record ({held / 2**20:.1f} MiB in all); "
        f"the LogRecord alone holds {plain / records:,.0f} bytes"
    )


def plain_record_memory(records: int) -> int:
    """Bytes the same calls' LogRecords hold when a handler just keeps them."""
    kept: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            kept.append(record)

    log = logger_with(Keep())
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    tagged_calls(log, records)
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    logger_with(NoopHandler())
    return held


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="tagged calls per round")
    parser.add_argument("--repeat", type=int, default=5, help="rounds per figure")
    parser.add_argument(
        "--no-references", action="store_true", help="measure only the baseline and RunHandler"
    )
    parser.add_argument(
        "--memory-records", type=int, default=50_000, help="records queued for the memory figure"
    )
    parser.add_argument(
        "--json-backend",
        choices=["orjson", "json"],
        default="orjson",
        help="JSON backend of the run's log (orjson falls back to json when not installed)",
    )
    parser.add_argument(
        "--one-cpu",
        action="store_true",
        help="run the whole process on one CPU (Linux): the writer thread shares the caller's core",
    )
    args = parser.parse_args(argv)
    if args.one_cpu:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})  # before any thread starts: they all inherit it
        print(f"pinned to CPU {cpu}")
    from logbridge import _logrecords

    backend = _logrecords.use_backend(args.json_backend)
    print(
        f"logbridge {logbridge.__version__}, Python {sys.version.split()[0]}, "
        f"JSON backend {backend}, {os.cpu_count()} CPUs, "
        f"capture {'compiled' if _handler.COMPILED else 'in Python'}"
    )
    print(f"call: {CALL}")
    report(args.records, args.repeat, references=not args.no_references)
    paced(args.records, args.repeat)
    below_level(args.records, args.repeat)
    queued_memory(min(args.memory_records, args.records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
