"""Turning run events into OpenTelemetry log records, gauge points and spans.

Used by the live export (`logbridge.otel`) and by the replay of stored runs, so both send
the same thing. Ids are derived from run ids: a run's span id is the low 64 bits of its id,
the trace id is the id of the root run of its family. A replay therefore sends the ids the
live export sent, and records logged in other processes of the run join the same span.

When the application installed its own tracer provider, the converter is given its tracer
(`Converter.use_tracer`): a run's span is then started by that tracer when the run starts, with
the ids the application's SDK gives it, and the run's records carry that span's context.
The mapping is documented in docs/opentelemetry.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

from logbridge import _events as ev
from logbridge._store import RunInfo
from logbridge._version import __version__

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer

METRIC_EVENT: Final = "logbridge.metric"
"""Event name of the log record sent for every metric point."""

_SCOPE: Final = InstrumentationScope("logbridge", __version__)
_SAMPLED: Final = TraceFlags(TraceFlags.SAMPLED)
_NO_SPAN: Final = set_span_in_context(INVALID_SPAN)
_PRIMITIVE: Final = (str, bool, int, float)
_INT64: Final = 2**63
_RECORD_FIELDS: Final = {
    "time": None,
    "level": None,
    "levelno": None,
    "logger": None,
    "message": None,
    "file": "code.file.path",
    "line": "code.line.number",
    "function": "code.function.name",
    "process": "process.pid",
    "process_name": None,
    "thread": "thread.id",
    "thread_name": "thread.name",
    "exception": None,
    "stack": "code.stacktrace",
    "taskName": None,
}
_RETRYABLE_GRPC: Final = frozenset(
    {"CANCELLED", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED", "UNAVAILABLE"}
)

Lookup = Callable[[str], "RunInfo | None"]


@dataclass
class RunMeta:
    """What the conversion knows of a run: names, ids, its resource and tags so far."""

    run_id: str
    experiment: str
    name: str
    parent_id: str | None
    start: float
    host: str
    pid: int
    trace_id: int = 0
    span_id: int = 0
    parent_span_id: int | None = None
    resource: Resource = field(default_factory=Resource.get_empty)
    tags: dict[str, str | None] = field(default_factory=dict)
    span: Span | None = None
    """The run's live span, when the application's tracer made it."""
    flags: TraceFlags = _SAMPLED


@dataclass(frozen=True)
class EndingSpan:
    """A live span of the application's tracer, to be ended at ``end`` (ns) when exported."""

    span: Span
    end: int
    run_id: str


@dataclass
class Batch:
    """One batch in OpenTelemetry form, with the run each item belongs to (for counting)."""

    logs: list[ReadableLogRecord] = field(default_factory=list)
    log_runs: list[str] = field(default_factory=list)
    points: list[tuple[RunMeta, str, float, float]] = field(default_factory=list)
    spans: list[ReadableSpan | EndingSpan] = field(default_factory=list)
    span_runs: list[str] = field(default_factory=list)

    def metrics(self) -> MetricsData:
        """Return the gauge points as OTLP metrics data: one gauge per run and name."""
        by_run: dict[str, tuple[RunMeta, dict[str, list[NumberDataPoint]]]] = {}
        for meta, name, value, when in self.points:
            _, names = by_run.setdefault(meta.run_id, (meta, {}))
            names.setdefault(name, []).append(
                NumberDataPoint(
                    attributes=_run_attributes(meta),
                    start_time_unix_nano=_ns(meta.start),
                    time_unix_nano=_ns(when),
                    value=value,
                )
            )
        return MetricsData(
            resource_metrics=[
                ResourceMetrics(
                    resource=meta.resource,
                    scope_metrics=[
                        ScopeMetrics(
                            scope=_SCOPE,
                            metrics=[
                                Metric(name=n, description="", unit="", data=Gauge(points))
                                for n, points in names.items()
                            ],
                            schema_url="",
                        )
                    ],
                    schema_url="",
                )
                for meta, names in by_run.values()
            ]
        )

    def point_runs(self) -> list[str]:
        """Return the run of each gauge point."""
        return [meta.run_id for meta, *_ in self.points]


class Converter:
    """Converts events to OpenTelemetry data, remembering what it learnt of each run."""

    def __init__(self, lookup: Lookup) -> None:
        """``lookup`` finds a run in the store when no `RunStarted` was seen for it."""
        self._lookup = lookup
        self._runs: dict[str, RunMeta] = {}
        self._scopes: dict[str, InstrumentationScope] = {}
        # Resource.create runs the resource detectors in a thread pool, which refuses work
        # once the interpreter is shutting down: done once here, never per run at exit.
        self._base = _base_resource()
        self._env_service: str | None = _env_service_name(self._base)
        self._tracer: Tracer | None = None
        self._run_attributes = False

    def use_tracer(self, tracer: Tracer | None, *, run_attributes: bool) -> None:
        """Make run spans with ``tracer`` (the application's); put run attributes on records.

        ``run_attributes``: records go to a provider whose resource is the application's, so
        the run's identity travels as attributes of each record instead.
        """
        self._tracer = tracer
        self._run_attributes = run_attributes

    def run(self, run_id: str) -> RunMeta:
        """Return what is known of ``run_id``, looking it up in the store the first time."""
        meta = self._runs.get(run_id)
        if meta is not None:
            return meta
        info = None
        with contextlib.suppress(Exception):  # a run the store cannot show is still exported
            info = self._lookup(run_id)
        if info is None:
            meta = RunMeta(run_id, "unknown", run_id, None, 0.0, "", 0)
        else:
            meta = RunMeta(
                run_id,
                info.experiment,
                info.name,
                info.parent_id,
                info.start_time,
                info.host,
                info.pid,
            )
        return self._remember(meta, started=False)

    def _remember(self, meta: RunMeta, *, started: bool) -> RunMeta:
        if self._tracer is not None:
            # The application's SDK picks the ids. A run that did not start here gets no span
            # now (nobody here would end it): its records carry no span context.
            if started:
                self._start_span(meta)
        else:
            self._derive_ids(meta)
        self._runs[meta.run_id] = meta
        meta.resource = self._base.merge(Resource(self._resource_attributes(meta)))
        return meta

    def _derive_ids(self, meta: RunMeta) -> None:
        meta.span_id = span_id_of(meta.run_id)
        if meta.parent_id is not None and meta.parent_id != meta.run_id:
            parent = self.run(meta.parent_id)
            meta.trace_id = parent.trace_id
            meta.parent_span_id = parent.span_id
        else:
            meta.trace_id = trace_id_of(meta.run_id)

    def _start_span(self, meta: RunMeta) -> None:
        if self._tracer is None:
            return
        parent = None
        if meta.parent_id is not None and meta.parent_id != meta.run_id:
            parent_span = self.run(meta.parent_id).span
            if parent_span is not None:
                parent = set_span_in_context(parent_span)
        span = self._tracer.start_span(
            meta.name,
            context=parent,
            kind=SpanKind.INTERNAL,
            attributes=_identity(meta),
            start_time=_ns(meta.start),
        )
        context = span.get_span_context()
        meta.span, meta.trace_id, meta.span_id = span, context.trace_id, context.span_id
        meta.flags = context.trace_flags

    def _resource_attributes(self, meta: RunMeta) -> dict[str, Any]:
        attributes: dict[str, Any] = _identity(meta)
        if meta.host:
            attributes["host.name"] = meta.host
        if meta.pid:
            attributes["process.pid"] = meta.pid
        if self._env_service is None:
            attributes["service.name"] = meta.experiment
        return attributes

    def convert(self, events: Iterable[ev.Event], batch: Batch | None = None) -> Batch:
        """Add ``events`` to ``batch`` (a new one if None) and return it."""
        out = Batch() if batch is None else batch
        for event in events:
            if isinstance(event, ev.LogRecorded):
                self._log(event, _parse(event.record), out)
            elif isinstance(event, ev.MetricLogged):
                self._metric(event, out)
            elif isinstance(event, ev.RunStarted):
                self._started(event)
            elif isinstance(event, ev.TagsSet):
                self.run(event.run_id).tags.update(event.tags)
            elif isinstance(event, ev.RunFinished):
                self._finished(event, out)
        return out

    def _started(self, event: ev.RunStarted) -> None:
        if event.run_id in self._runs:
            return
        self._remember(
            RunMeta(
                event.run_id,
                event.experiment,
                event.name,
                event.parent_id,
                event.time,
                event.host,
                event.pid,
            ),
            started=True,
        )

    def _scope(self, name: str) -> InstrumentationScope:
        scope = self._scopes.get(name)
        if scope is None:
            scope = self._scopes[name] = InstrumentationScope(name or "root")
        return scope

    def _log(self, event: ev.LogRecorded, record: dict[str, Any], out: Batch) -> None:
        run_id = event.run_id
        meta = self.run(run_id)
        seconds, level, logger, message = event.time, event.level, event.logger, event.message
        attributes = _log_attributes(record)
        if self._run_attributes:
            attributes = {**_identity(meta), **attributes}
        out.logs.append(
            ReadableLogRecord(
                LogRecord(
                    timestamp=_ns(seconds),
                    observed_timestamp=_ns(seconds),
                    context=_context(meta),
                    severity_text=logging.getLevelName(level),
                    severity_number=severity(level),
                    body=message,
                    attributes=attributes,
                ),
                resource=meta.resource,
                instrumentation_scope=self._scope(logger),
            )
        )
        out.log_runs.append(run_id)

    def _metric(self, event: ev.MetricLogged, out: Batch) -> None:
        meta = self.run(event.run_id)
        value = event.value
        attributes: dict[str, Any] = {
            "logbridge.metric.name": event.name,
            "logbridge.metric.kind": event.kind,
            "logbridge.metric.value": attribute_value(value),
        }
        if event.step is not None:
            attributes["logbridge.metric.step"] = event.step
        if self._run_attributes:
            attributes = {**_identity(meta), **attributes}
        out.logs.append(
            ReadableLogRecord(
                LogRecord(
                    timestamp=_ns(event.time),
                    observed_timestamp=_ns(event.time),
                    context=_context(meta),
                    severity_text="INFO",
                    severity_number=SeverityNumber.INFO,
                    body=f"{event.name}={_short(value)}",
                    attributes=attributes,
                    event_name=METRIC_EVENT,
                ),
                resource=meta.resource,
                instrumentation_scope=_SCOPE,
            )
        )
        out.log_runs.append(event.run_id)
        if is_point(event):
            number = float(value) if type(value) is bool or abs(value) >= _INT64 else value
            out.points.append((meta, event.name, number, event.time))

    def _finished(self, event: ev.RunFinished, out: Batch) -> None:
        meta = self.run(event.run_id)
        if self._tracer is not None:
            out.spans.append(self._end_live_span(meta, event.status, event.time, event.error))
        else:
            out.spans.append(self.span(meta, event.status, event.time, event.error))
        out.span_runs.append(event.run_id)

    def _end_live_span(
        self, meta: RunMeta, status: str, end: float, error: dict[str, Any] | None
    ) -> EndingSpan:
        if meta.span is None:  # the run started in another process: its span starts now
            self._start_span(meta)
        span = meta.span
        assert span is not None  # _start_span sets it when a tracer is in use
        attributes, events, code, description = _span_details(meta, status, end, error)
        span.set_attributes(attributes)
        for event in events:
            span.add_event(event.name, event.attributes, event.timestamp)
        span.set_status(Status(code, description))
        meta.span = None  # ended once; records logged after the end keep its ids
        return EndingSpan(span, _ns(max(end, meta.start)), meta.run_id)

    def span(
        self, meta: RunMeta, status: str, end: float, error: dict[str, Any] | None
    ) -> ReadableSpan:
        """Return the span of a finished run."""
        attributes, events, code, description = _span_details(meta, status, end, error)
        context = SpanContext(meta.trace_id, meta.span_id, is_remote=False, trace_flags=_SAMPLED)
        parent = (
            None
            if meta.parent_span_id is None
            else SpanContext(meta.trace_id, meta.parent_span_id, is_remote=False)
        )
        return ReadableSpan(
            name=meta.name,
            context=context,
            parent=parent,
            resource=meta.resource,
            attributes=attributes,
            events=events,
            kind=SpanKind.INTERNAL,
            status=Status(code, description),
            start_time=_ns(meta.start),
            end_time=_ns(max(end, meta.start)),
            instrumentation_scope=_SCOPE,
        )


def trace_id_of(run_id: str) -> int:
    """Return the trace id of a root run: its 128-bit id (hashed if it is not hex)."""
    try:
        value = int(run_id, 16) & (2**128 - 1)
    except ValueError:
        value = hash_id(run_id, 128)
    return value or 1


def span_id_of(run_id: str) -> int:
    """Return the span id of a run: the low 64 bits of its id (hashed if it is not hex)."""
    try:
        value = int(run_id, 16) & (2**64 - 1)
    except ValueError:
        value = hash_id(run_id, 64)
    return value or 1


def hash_id(text: str, bits: int) -> int:
    """Return a stable id of ``bits`` bits for ``text``."""
    import hashlib  # noqa: PLC0415 - only for run ids that are not hex

    return int.from_bytes(hashlib.sha256(text.encode()).digest()[: bits // 8], "big")


def severity(level: int) -> SeverityNumber:
    """Map a stdlib level to an OpenTelemetry severity (levels between names keep an offset)."""
    if level <= 0:
        return SeverityNumber.UNSPECIFIED
    if level < logging.DEBUG:
        return SeverityNumber(1 + min(3, level * 4 // logging.DEBUG))
    base = min(level // 10, 5)  # 1 DEBUG .. 5 CRITICAL
    return SeverityNumber(1 + base * 4 + min(3, (level - base * 10) * 4 // 10))


def attribute_value(value: Any) -> Any:
    """Return ``value`` as an attribute value OpenTelemetry accepts.

    Primitives and lists of one primitive type stay as they are; anything else becomes JSON
    text (the SDK would drop it with a warning).
    """
    if isinstance(value, _PRIMITIVE):
        if type(value) is int and not -_INT64 <= value < _INT64:
            return str(value)
        return value
    if isinstance(value, (list, tuple)) and value:
        kinds = {type(v) for v in value}
        if len(kinds) == 1 and kinds <= {str, bool, float} | (
            {int} if all(-_INT64 <= v < _INT64 for v in value) else set()
        ):
            return list(value)
    try:
        return json.dumps(value, ensure_ascii=False, default=repr, allow_nan=True)
    except Exception:
        return repr(value)


def _log_attributes(record: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        if key in _RECORD_FIELDS:
            name = _RECORD_FIELDS[key]
            if name is not None:
                attributes[name] = attribute_value(value)
        else:
            attributes[key] = attribute_value(value)
    exception = record.get("exception")
    if exception:
        text = str(exception)
        last = text.rstrip().rsplit("\n", 1)[-1]
        kind, _, message = last.partition(": ")
        attributes["exception.type"] = kind.strip() or "Exception"
        attributes["exception.message"] = message
        attributes["exception.stacktrace"] = text
    return attributes


def _span_details(
    meta: RunMeta, status: str, end: float, error: dict[str, Any] | None
) -> tuple[dict[str, Any], list[Event], StatusCode, str | None]:
    """Return a finished run's span attributes, events, status code and description."""
    attributes: dict[str, Any] = {**_identity(meta), "logbridge.run.status": status}
    if meta.parent_id:
        attributes["logbridge.parent_run.id"] = meta.parent_id
    for key, value in meta.tags.items():
        attributes[f"logbridge.tag.{key}"] = "" if value is None else value
    events = []
    code = StatusCode.UNSET
    description = None
    if status == "Failed":
        code = StatusCode.ERROR
        error = error or {}
        kind, text = str(error.get("type", "Error")), str(error.get("message", ""))
        description = f"{kind}: {text}" if text else kind
        exception = {"exception.type": kind, "exception.message": text}
        if error.get("traceback"):
            exception["exception.stacktrace"] = str(error["traceback"])
        events.append(Event("exception", exception, timestamp=_ns(end)))
    return attributes, events, code, description


def _identity(meta: RunMeta) -> dict[str, Any]:
    return {
        "logbridge.run.id": meta.run_id,
        "logbridge.run.name": meta.name,
        "logbridge.experiment": meta.experiment,
    }


def _run_attributes(meta: RunMeta) -> dict[str, Any]:
    return {"logbridge.run.id": meta.run_id, "logbridge.experiment": meta.experiment}


def _context(meta: RunMeta) -> Any:
    if meta.trace_id == 0:
        return _NO_SPAN
    span = NonRecordingSpan(SpanContext(meta.trace_id, meta.span_id, False, meta.flags))
    return set_span_in_context(span)


def _parse(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except ValueError:
        return {"message": line}
    return value if isinstance(value, dict) else {"message": line}


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _base_resource() -> Resource:
    """Return the SDK's resource: its defaults and what ``OTEL_RESOURCE_ATTRIBUTES`` adds."""
    try:
        return Resource.create({})
    except Exception:  # at interpreter shutdown, say: the runs' own attributes remain
        return Resource.get_empty()


def _env_service_name(base: Resource) -> str | None:
    """Return the service name the standard variables set, or None."""
    name = base.attributes.get("service.name")
    if not isinstance(name, str) or name.startswith("unknown_service"):
        return None
    return name


def is_point(event: ev.MetricLogged) -> bool:
    """Whether a metric event is also sent as a gauge point (numeric scalars are)."""
    return event.kind == "scalar" and type(event.value) in (int, float, bool)


def retryable_grpc(code: str | None) -> bool:
    """Whether a gRPC status code (its name) is worth another try."""
    return code is None or code in _RETRYABLE_GRPC
