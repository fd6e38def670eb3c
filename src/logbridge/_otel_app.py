"""Sending through the application's own OpenTelemetry providers, when it installed them.

An application that set up OpenTelemetry (``set_logger_provider``, ``set_meter_provider``,
``set_tracer_provider`` with the SDK's providers) has chosen its exporters, processors,
resource, sampler and destination. logbridge then emits into those providers instead of
exporting on its own: records through the logs API, gauge points through a meter, run spans
through a tracer. The adapters below take the pipeline's batches, so the pipeline (its thread,
its bounded buffer, its counts) stays the same whichever way the data leaves.

The providers' own processors decide what happens next: a batch processor drops silently when
its queue is full, so what logbridge can count is what the SDK refuses when handed (an
exception, an invalid instrument name) and whether ``force_flush`` confirmed delivery.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import _logs, metrics, trace
from opentelemetry.sdk._logs import LoggerProvider, ReadableLogRecord
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, MetricsData
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult

from logbridge._otel_convert import EndingSpan
from logbridge._version import __version__

SDK_THREAD_PREFIX: Final = "Otel"
"""Threads of the SDK's processors and readers (``OtelBatchLogRecordProcessor``...)."""
_INSTRUMENT_NAME: Final = re.compile(r"[a-zA-Z][-_./a-zA-Z0-9]{0,254}")


@dataclass(frozen=True)
class AppProviders:
    """The SDK providers the application installed globally (None: not installed)."""

    logs: LoggerProvider | None = None
    metrics: MeterProvider | None = None
    traces: TracerProvider | None = None

    def any(self) -> bool:
        """Whether the application installed at least one."""
        return self.logs is not None or self.metrics is not None or self.traces is not None


def installed() -> AppProviders:
    """Return the application's global providers that are the SDK's (not proxies or no-ops)."""
    logs = _logs.get_logger_provider()
    meters = metrics.get_meter_provider()
    tracers = trace.get_tracer_provider()
    return AppProviders(
        logs if isinstance(logs, LoggerProvider) else None,
        meters if isinstance(meters, MeterProvider) else None,
        tracers if isinstance(tracers, TracerProvider) else None,
    )


class AppLogs:
    """Emits log records into the application's logger provider."""

    app = True

    def __init__(self, provider: LoggerProvider) -> None:
        """Emit into ``provider``."""
        self._provider = provider
        self._loggers: dict[str, Any] = {}
        self.refused_runs: list[str] = []
        """The run of each record of the last batch the SDK refused."""

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        """Emit every record, except those logged on the SDK's own threads."""
        self.refused_runs = []
        for item in batch:
            record = item.log_record
            attributes = record.attributes or {}
            thread = attributes.get("thread.name")
            if isinstance(thread, str) and thread.startswith(SDK_THREAD_PREFIX):
                # What the application's exporters log while exporting must not be sent
                # through them again: each export would log, and send, more.
                continue
            scope = item.instrumentation_scope
            name = scope.name if scope is not None else "logbridge"
            try:
                logger = self._loggers.get(name)
                if logger is None:
                    version = scope.version if scope is not None else None
                    logger = self._loggers[name] = self._provider.get_logger(name, version)
                logger.emit(record)
            except Exception:
                self.refused_runs.append(str(attributes.get("logbridge.run.id", "")))
        return LogRecordExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing: the provider is the application's, it shuts it down."""


class AppMetrics:
    """Sets gauge points on instruments of a meter of the application's meter provider."""

    app = True
    refused_reason = "metric names OpenTelemetry instruments cannot take (see the mapping)"

    def __init__(self, provider: MeterProvider) -> None:
        """Create gauges on ``provider``'s ``logbridge`` meter."""
        self._meter = provider.get_meter("logbridge", __version__)
        self._gauges: dict[str, Any] = {}
        self.refused_runs: list[str] = []
        """The run of each point of the last batch the SDK refused (an invalid name...)."""

    def export(self, data: MetricsData) -> MetricExportResult:
        """Set every point of ``data`` (its time becomes the reader's collection time)."""
        self.refused_runs = []
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)  # gauges: NumberDataPoint
                        if value is None or not self._set(metric.name, value, point.attributes):
                            run_id = (point.attributes or {}).get("logbridge.run.id", "")
                            self.refused_runs.append(str(run_id))
        return MetricExportResult.SUCCESS

    def _set(self, name: str, value: Any, attributes: Any) -> bool:
        gauge = self._gauges.get(name)
        if gauge is None:
            if not _INSTRUMENT_NAME.fullmatch(name):
                return False
            try:
                gauge = self._gauges[name] = self._meter.create_gauge(name)
            except Exception:
                return False
        try:
            gauge.set(value, dict(attributes or {}))
        except Exception:
            return False
        return True

    def shutdown(self) -> None:
        """Nothing: the provider is the application's."""


class AppSpans:
    """Ends the run spans the application's tracer started (they go to its processors)."""

    app = True

    def __init__(self) -> None:
        """Start with nothing refused."""
        self.refused_runs: list[str] = []

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        """End each span at its run's end time."""
        self.refused_runs = []
        for item in spans:
            if not isinstance(item, EndingSpan):  # made while no tracer was known
                continue
            try:
                item.span.end(end_time=item.end)
            except Exception:
                self.refused_runs.append(item.run_id)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing: the provider is the application's."""


def force_flush(providers: AppProviders, timeout: float) -> bool:
    """Ask the application's providers to deliver what they hold; False if one did not."""
    millis = max(0, int(timeout * 1000))
    done = True
    for provider in (providers.logs, providers.metrics, providers.traces):
        if provider is None:
            continue
        try:
            flushed = provider.force_flush(millis)
        except Exception:
            flushed = False
        done = done and flushed is not False
    return done
