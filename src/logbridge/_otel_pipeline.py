"""The OpenTelemetry export pipeline: a bounded buffer, one exporter thread, counted losses.

The recorder's writer thread hands each batch it wrote to `Pipeline.put`, which only appends
to a bounded buffer. The exporter thread (named ``logbridge-otel``, so the `RunHandler`
ignores whatever the exporters, urllib3 or grpc log while it runs) converts batches and sends
them with the SDK's OTLP exporters (or into the application's own providers, `_otel_app`).
The exporters retry a collector's "try later" (429/502/503/504, gRPC RESOURCE_EXHAUSTED)
within their timeout; a collector that cannot be reached at all (connection refused or reset,
a timeout, gRPC UNAVAILABLE) fails the export at once instead, and the pipeline acts as a
circuit breaker: it keeps the batch and tries again after a growing pause (0.5 s doubling to
30 s), and meanwhile neither waits for the collector nor lets a flush wait for it. Each try,
and the first contact, begins with a probe (an empty export request), so a collector that is
down never has batches converted and encoded for it. A batch
refused for good (400, 401, 500...) is counted. While the collector keeps up, a full buffer
makes the writer wait for room (so a healthy collector receives everything); while it is
failing, overflow is counted at once. Every item that is not delivered is counted per run,
reported once at shutdown and recorded in the run as dropped (``otel_export``).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from logbridge import _events as ev
from logbridge import _otel_app, _report
from logbridge._otel_convert import Batch, Converter, is_point, retryable_grpc

BATCH_SIZE: Final = 2_000
"""Events converted and sent in one export call."""
_SCHEDULE_DELAY: Final = 0.5
_ROOM_WAIT: Final = 1.0
_BACKOFF_FIRST: Final = 0.5
_BACKOFF_MAX: Final = 30.0
_RETRYABLE_HTTP: Final = frozenset({408, 429, 502, 503, 504})
_EXPORTED: Final = (ev.LogRecorded, ev.MetricLogged, ev.RunStarted, ev.RunFinished, ev.TagsSet)
_DROPPABLE: Final = (ev.LogRecorded, ev.MetricLogged)
_EXPORTER_LOGGERS: Final = (
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.exporter.otlp.proto.http",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.sdk.metrics._internal.export",
)
_SIGNALS: Final = ("log records", "metric points", "spans")

THREAD_PREFIX: Final = "logbridge-otel"


@dataclass
class Exporters:
    """The three OTLP exporters of one destination, and how to read why an export failed."""

    logs: Any
    spans: Any
    metrics: Any
    protocol: str
    endpoint: str
    status: dict[str, Any] = field(default_factory=dict)
    """What the last request met: ``code`` (HTTP status or gRPC status name), ``unreachable``."""
    app: _otel_app.AppProviders = field(default_factory=_otel_app.AppProviders)
    """The application's providers some signals are emitted into."""
    tracer: Any = None
    """The application's tracer, which starts the run spans (None: logbridge's ids)."""

    def shutdown(self) -> None:
        """Shut the exporters down (aborts the retry pauses of an export in progress)."""
        for exporter in (self.logs, self.spans, self.metrics):
            with contextlib.suppress(Exception):  # shutting down what may already be broken
                exporter.shutdown()


class _Quiet(logging.Filter):
    """Keeps what the exporters log on logbridge's threads off the application's handlers.

    The pipeline learns why an export failed from the requests themselves (`Exporters.status`),
    and reports that once; the exporters' own lines would only repeat it, per batch.
    """

    def filter(self, record: logging.LogRecord) -> bool:  # noqa: ARG002 - the Filter API
        return not threading.current_thread().name.startswith(THREAD_PREFIX)


_quiet = _Quiet()
for _name in _EXPORTER_LOGGERS:
    logging.getLogger(_name).addFilter(_quiet)


class Lost:
    """Counts of items not delivered, per run and per signal, and the last reason."""

    def __init__(self) -> None:
        """Start at zero."""
        self.by_run: dict[str, collections.Counter[str]] = {}
        self.reason = ""
        self._lock = threading.Lock()

    def add(self, runs: Iterable[str], what: str, reason: str) -> None:
        """Count one item of ``what`` ("log records", ...) for each run in ``runs``."""
        with self._lock:
            for run_id in runs:
                self.by_run.setdefault(run_id, collections.Counter())[what] += 1
            self.reason = reason

    def add_counts(self, counts: collections.Counter[tuple[str, str]], reason: str) -> None:
        """Count ``counts[(run id, what)]`` items at once."""
        with self._lock:
            for (run_id, what), n in counts.items():
                self.by_run.setdefault(run_id, collections.Counter())[what] += n
            self.reason = reason

    def total(self) -> int:
        """Return how many items were lost."""
        with self._lock:
            return sum(sum(c.values()) for c in self.by_run.values())


class Pipeline:
    """A bounded buffer of events and the thread that exports them."""

    def __init__(
        self,
        make_exporters: Callable[[], Exporters],
        converter: Converter,
        *,
        limit: int,
        on_lost: Callable[[str, int], None] | None = None,
        replay_hint: bool = True,
    ) -> None:
        """Export with ``make_exporters()`` (called on the exporter thread)."""
        self._make_exporters = make_exporters
        self._exporters: Exporters | None = None
        self._converter = converter
        self._limit = max(1, limit)
        self._on_lost = on_lost
        self._replay_hint = replay_hint
        self._buffer: collections.deque[ev.Event] = collections.deque()
        self._cond = threading.Condition(threading.Lock())
        self._pending: Batch | None = None
        self._inflight = 0
        self._flight: list[ev.Event] | tuple[Batch, list[str]] | None = None
        """What the exporter thread holds: events to convert, or a batch and its unsent signals."""
        self._retry_at = 0.0
        self._backoff = 0.0
        self._answered = False
        """The collector answered since the breaker last opened (else: probe before sending)."""
        self._gave_up = False
        """A try after shutdown began failed: no more tries."""
        self._progress = 0
        self._stopping = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._exporting = threading.Lock()
        """Held around each request: fork waits for the one in flight (`hold_for_fork`)."""
        self._held_for_fork = False
        self.lost = Lost()
        self.sent: collections.Counter[str] = collections.Counter()

    # -- the writer's side -----------------------------------------------------------------

    def put(self, events: Sequence[ev.Event]) -> None:
        """Take the events worth exporting; wait for room only while the collector keeps up."""
        wanted: list[ev.Event] = [e for e in events if isinstance(e, _EXPORTED)]
        if not wanted:
            return
        overflow: list[ev.Event] = []
        with self._cond:
            if self._closed:
                overflow = wanted
            else:
                self._wait_for_room(len(wanted))
                room = self._limit - len(self._buffer)
                for event in wanted:
                    if room > 0 or not isinstance(event, _DROPPABLE):
                        self._buffer.append(event)
                        room -= 1
                    else:
                        overflow.append(event)
                if len(self._buffer) >= BATCH_SIZE:
                    self._cond.notify_all()
        if self._thread is None and not self._closed:
            self._start()
        if overflow:
            self._count_events(overflow, "the export buffer was full (LOGBRIDGE_OTEL_BUFFER)")

    def _wait_for_room(self, n: int) -> None:
        while len(self._buffer) + n > self._limit and self._healthy() and not self._stopping:
            before = self._progress
            self._cond.notify_all()
            self._cond.wait(_ROOM_WAIT)
            if self._progress == before:
                return

    def _healthy(self) -> bool:
        return self._backoff == 0.0

    def _start(self) -> None:
        with self._cond:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._loop, name=THREAD_PREFIX, daemon=True)
            try:
                thread.start()
            except RuntimeError:  # the interpreter is finalising: nothing can be sent now
                return
            self._thread = thread

    def force_flush(self, timeout: float | None) -> bool:
        """Wait until everything taken is sent; False on timeout or while the collector fails.

        Records emitted into the application's providers are flushed by them, in what is left
        of ``timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._cond.notify_all()
            while self._buffer or self._pending is not None or self._inflight:
                if self._thread is None or not self._thread.is_alive():
                    return False
                if not self._healthy() and (deadline is None or self._retry_at > deadline):
                    return False  # the breaker is open past the deadline: do not wait
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left if left is not None else 1.0)
        return self._flush_app(deadline)

    def _flush_app(self, deadline: float | None) -> bool:
        exporters = self._exporters
        if exporters is None or not exporters.app.any():
            return True
        left = 30.0 if deadline is None else max(0.0, deadline - time.monotonic())
        return _otel_app.force_flush(exporters.app, left)

    def shutdown(self, timeout: float | None) -> None:
        """Send what can be sent within ``timeout``, count the rest, report it once."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            if self._closed:
                return
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            self._closed = True
            left = list(self._buffer)
            self._buffer.clear()
            pending, self._pending = self._pending, None
            abandoned = thread is not None and thread.is_alive()
            flight = self._flight if abandoned else None
        reason = self.lost.reason or "not sent before the exit deadline"
        if abandoned:
            reason = "the export did not finish within the exit deadline"
        self._count_events(left, reason)
        if isinstance(flight, list):
            self._count_events(flight, reason)
        elif flight is not None:
            self._count_batch(flight[0], reason, flight[1])
            if flight[0] is pending:
                pending = None
        if pending is not None:
            self._count_batch(pending, reason, _SIGNALS)
        if self._exporters is not None:
            self._exporters.shutdown()  # also cuts short an abandoned export's retries
            if not abandoned and not self._flush_app(deadline):
                _report.once(
                    "otel_app_flush",
                    "OpenTelemetry: the application's providers did not confirm delivery of "
                    "logbridge's records before the exit deadline (LOGBRIDGE_OTEL_EXIT_TIMEOUT)",
                )
        self._report()

    def hold_for_fork(self, timeout: float) -> None:
        """Let a request in flight finish, and start none until `release_after_fork`.

        gRPC skips its fork handlers while another thread is inside a call ("Other threads
        are currently calling into gRPC"), and a child forked then can crash when it exports.
        """
        self._held_for_fork = self._exporting.acquire(timeout=timeout)

    def release_after_fork(self) -> None:
        """Undo `hold_for_fork` (in the parent, and in the child)."""
        if self._held_for_fork:
            self._held_for_fork = False
            self._exporting.release()

    def abandon(self) -> None:
        """Forget everything without sending or reporting (a forked child's inheritance)."""
        self._closed = True
        self._stopping = True

    # -- counting ----------------------------------------------------------------------------

    def _count_events(self, events: Iterable[ev.Event], reason: str) -> None:
        counts: collections.Counter[tuple[str, str]] = collections.Counter()
        for event in events:
            kind = type(event)
            if kind is ev.LogRecorded:
                counts[event.run_id, "log records"] += 1
            elif kind is ev.MetricLogged:
                # As converted: a log record event, and a gauge point when numeric.
                counts[event.run_id, "log records"] += 1
                if is_point(event):  # type: ignore[arg-type]
                    counts[event.run_id, "metric points"] += 1
            elif kind is ev.RunFinished:
                counts[event.run_id, "spans"] += 1
        if counts:
            self.lost.add_counts(counts, reason)

    def _count_batch(self, batch: Batch, reason: str, signals: Iterable[str]) -> None:
        for what in signals:
            if what == "log records":
                self.lost.add(batch.log_runs, what, reason)
            elif what == "metric points":
                self.lost.add(batch.point_runs(), what, reason)
            else:
                self.lost.add(batch.span_runs, what, reason)

    def _report(self) -> None:
        if not self.lost.by_run:
            return
        where = self._exporters.endpoint if self._exporters is not None else "the collector"
        for run_id, counts in sorted(self.lost.by_run.items()):
            parts = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
            hint = f"; replay with: logbridge export {run_id}" if self._replay_hint else ""
            _report.always(
                f"OpenTelemetry: {parts} of run {run_id} could not be sent to {where} "
                f"({self.lost.reason}); the local store has them all{hint}"
            )
            if self._on_lost is not None:
                self._on_lost(run_id, sum(counts.values()))

    # -- the exporter thread -----------------------------------------------------------------

    def _loop(self) -> None:
        try:
            with self._exporting:  # opening a gRPC channel is a call into gRPC too
                self._exporters = self._make_exporters()
        except Exception as err:
            self.lost.reason = f"the exporters could not be created: {err}"
            _report.once("otel_setup", f"OpenTelemetry export is off: {err}")
            with self._cond:
                self._backoff = _BACKOFF_MAX
                self._closed = True
                self._cond.notify_all()
            return
        self._converter.use_tracer(
            self._exporters.tracer, run_attributes=self._exporters.app.logs is not None
        )
        while True:
            with self._cond:
                taken = self._next()
                if taken is None:
                    return
            self._send(taken)

    def _next(self) -> list[ev.Event] | None:
        """Wait for work; return events to convert ([] to retry or probe), None to stop."""
        while True:
            if self._stopping and self._gave_up:
                return None  # the last try failed: shutdown counts what is left
            if not self._healthy() and not self._stopping:
                wait = self._retry_at - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            if self._pending is not None or (self._buffer and not self._answered):
                self._inflight = 1
                return []
            if self._buffer:
                if not self._stopping and len(self._buffer) < BATCH_SIZE:
                    self._cond.wait(_SCHEDULE_DELAY)  # gather a fuller batch, or a flush
                taken = [self._buffer.popleft() for _ in range(min(BATCH_SIZE, len(self._buffer)))]
                self._inflight = len(taken)
                return taken
            if self._stopping:
                return None
            self._cond.wait(_SCHEDULE_DELAY)

    def _send(self, taken: list[ev.Event]) -> None:
        exporters = self._exporters
        if not taken and not self._answered:
            if exporters is not None and not self._probe(exporters):
                self._done(self._pending, progress=False, failed=True)
                return
            with self._cond:
                self._answered = True
            if self._pending is None:
                self._done(None, progress=False)
                return
        self._flight = taken
        try:
            batch = self._pending if not taken else self._converter.convert(taken)
        except Exception as err:
            _report.once("otel_convert", f"OpenTelemetry: could not convert events: {err}")
            self._count_events(taken, f"conversion failed: {err}")
            self._done(None, progress=True)
            return
        if batch is None:
            self._done(None, progress=False)
            return
        retry = Batch()
        unsent = list(_SIGNALS)
        self._flight = (batch, unsent)
        for what in _SIGNALS:
            # After a transient failure the collector is not asked again in this round: one
            # try of the circuit breaker costs one request timeout at most.
            failing = bool(retry.logs or retry.points or retry.spans)
            self._send_signal(batch, what, retry, attempt=not failing)
            unsent.remove(what)
        transient = bool(retry.logs or retry.points or retry.spans)
        if transient and self._stopping:
            self._count_batch(retry, self.lost.reason, _SIGNALS)
            self._done(None, progress=True, failed=True)
            return
        self._done(retry if transient else None, progress=not transient)

    def _probe(self, exporters: Exporters) -> bool:
        """Whether the collector answers an empty export request (or is not asked: False).

        The circuit breaker's test while it is open, and before the first batch: a request
        with nothing in it costs the same whatever is buffered, where sending a batch to a
        collector that is down would convert and encode it for nothing, on every try, with
        the training's thread waiting for the interpreter lock meanwhile. An answer other than
        "try later" (even a refusal) counts as an answer: the batches themselves find out.
        """
        for exporter in (exporters.logs, exporters.spans):
            if not getattr(exporter, "app", False):
                ok, again, _ = self._export(exporters, exporter, [])
                return ok or not again
        return True  # every signal goes into the application's providers: nothing to ask

    def _send_signal(self, batch: Batch, what: str, retry: Batch, *, attempt: bool) -> None:
        exporters = self._exporters
        if exporters is None:
            return
        if what == "log records":
            count, exporter = len(batch.logs), exporters.logs
            data: Any = batch.logs
        elif what == "metric points":
            count, exporter = len(batch.points), exporters.metrics
            data = batch.metrics() if count else None
        else:
            count, exporter, data = len(batch.spans), exporters.spans, batch.spans
        if not count:
            return
        ok, again, why = self._export(exporters, exporter, data) if attempt else (False, True, "")
        refused: list[str] = getattr(exporter, "refused_runs", [])
        if ok:
            self.sent[what] += count - len(refused)
            if refused:
                why = getattr(exporter, "refused_reason", "the OpenTelemetry SDK refused them")
                self.lost.add(refused, what, why)
        elif not again:
            self._count_batch(batch, why, (what,))
        elif what == "log records":
            retry.logs, retry.log_runs = batch.logs, batch.log_runs
        elif what == "metric points":
            retry.points = batch.points
        else:
            retry.spans, retry.span_runs = batch.spans, batch.span_runs

    def _done(self, pending: Batch | None, *, progress: bool, failed: bool = False) -> None:
        with self._cond:
            self._pending = pending
            self._inflight = 0
            self._flight = None
            if pending is None and not failed:
                self._backoff = 0.0
            else:
                self._backoff = min(_BACKOFF_MAX, max(_BACKOFF_FIRST, self._backoff * 2))
                self._retry_at = time.monotonic() + self._backoff
                self._answered = False
                self._gave_up = self._stopping
            if progress:
                self._progress += 1
            self._cond.notify_all()

    def _export(self, exporters: Exporters, exporter: Any, data: Any) -> tuple[bool, bool, str]:
        """Export ``data``; return (delivered, worth retrying, reason)."""
        exporters.status.clear()
        app = getattr(exporter, "app", False)
        try:
            with self._exporting:
                result = exporter.export(data)
        except Exception as err:
            reason = f"{type(err).__name__}: {err}"
            if app:
                reason = f"the application's OpenTelemetry SDK failed: {reason}"
            self.lost.reason = reason
            return False, not app, reason  # never emit twice into the application's SDK
        if getattr(result, "name", "") == "SUCCESS" or getattr(result, "value", None) == 0:
            return True, False, ""
        code = exporters.status.get("code")
        unreachable = exporters.status.get("unreachable")
        if unreachable is not None:
            again, reason = True, f"the collector could not be reached: {unreachable}"
        elif exporters.protocol == "grpc":
            again = code is not None and retryable_grpc(code)
            reason = f"gRPC {code}" if code else "the export failed before a gRPC call was made"
        else:
            again = code in _RETRYABLE_HTTP
            reason = f"HTTP {code}" if code else "the export failed before a request was sent"
        self.lost.reason = reason
        return False, again, reason
