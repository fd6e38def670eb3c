"""Send runs to an OpenTelemetry collector: logs, metrics and a span per run, over OTLP.

Enable it with ``LOGBRIDGE_OTEL=1``, with ``otel=True`` on `logbridge.start_run`,
`logbridge.basicConfig` or `logbridge.RunHandler`, or with `enable`. The destination comes
from the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
headers, timeouts, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``...) unless given here.

The local store stays the record: export happens after each batch is stored, on a thread of
its own, and what cannot be sent is counted, reported once at exit and can be sent later with
`export_run` (``logbridge export RUN``). docs/opentelemetry.md describes the mapping.
Needs the ``otel`` extra: ``pip install 'logbridge[otel]'``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from logbridge._errors import MissingExtraError

try:
    from opentelemetry.sdk.resources import Resource as _Resource  # noqa: F401
except ImportError as _err:  # pragma: no cover - depends on the installation
    raise MissingExtraError(
        "logbridge.otel needs OpenTelemetry: pip install 'logbridge[otel]'"
    ) from _err

from logbridge import _events as ev
from logbridge import _settings, _state
from logbridge._otel_convert import Converter
from logbridge._otel_pipeline import Exporters, Pipeline
from logbridge._recorder import Recorder
from logbridge._store import SQLiteStore

__all__ = ["PROTOCOLS", "OtelSink", "enable", "export_run"]

PROTOCOLS: Final = ("http/protobuf", "grpc")
"""The OTLP protocols logbridge sends with."""
_SIGNALS: Final = {"logs": "v1/logs", "traces": "v1/traces", "metrics": "v1/metrics"}


@dataclass(frozen=True)
class _Config:
    endpoint: str | None
    protocol: str | None
    headers: tuple[tuple[str, str], ...] | None
    timeout: float | None


_config: _Config | None = None
_lock = threading.Lock()


def enable(
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Send every run of this process to an OpenTelemetry collector from now on.

    Calling it again does nothing (the first configuration stays). Forked children send
    their own records with their own exporter.

    Args:
        endpoint: the collector's base URL (``http://host:4318`` for http/protobuf,
            ``http://host:4317`` for grpc); default: the ``OTEL_EXPORTER_OTLP_*ENDPOINT``
            variables, else the SDK's default (localhost).
        protocol: ``http/protobuf`` or ``grpc``; default ``OTEL_EXPORTER_OTLP_PROTOCOL``,
            else ``http/protobuf``.
        headers: headers sent with every request; default ``OTEL_EXPORTER_OTLP_HEADERS``.
        timeout: seconds one export request (with the SDK's own retries) may take; default
            ``OTEL_EXPORTER_OTLP_TIMEOUT``, else 10.

    Raises:
        ValueError: an unknown protocol.
    """
    global _config  # noqa: PLW0603
    config = _make_config(endpoint, protocol, headers, timeout)
    with _lock:
        if _config is None or "otel" not in _state._sink_factories:  # noqa: SLF001
            _config = config
        config = _config
    _state.add_sink_factory("otel", lambda rec: OtelSink(rec, config))


def _make_config(
    endpoint: str | None,
    protocol: str | None,
    headers: Mapping[str, str] | None,
    timeout: float | None,
) -> _Config:
    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"OpenTelemetry protocol {protocol!r}: use one of {PROTOCOLS}")
    return _Config(
        endpoint,
        protocol,
        None if headers is None else tuple(dict(headers).items()),
        timeout,
    )


class OtelSink:
    """The sink that exports a recorder's events to a collector (see `enable`)."""

    def __init__(self, recorder: Recorder, config: _Config) -> None:
        """Export what ``recorder`` writes, as ``config`` says."""
        store = recorder.store
        self._pid = os.getpid()
        self._pipeline = Pipeline(
            lambda: make_exporters(config),
            Converter(store.get_run),
            limit=_settings.otel_buffer(),
            on_lost=lambda run_id, n: recorder.count_drop(run_id, "otel_export", n),
        )

    def export(self, events: Sequence[ev.Event]) -> None:
        """Hand ``events`` to the exporter thread (never waits on the network)."""
        if os.getpid() == self._pid:
            self._pipeline.put(events)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Wait until what was handed over is sent (at most ``LOGBRIDGE_OTEL_EXIT_TIMEOUT``)."""
        if os.getpid() != self._pid:
            return True
        return self._pipeline.force_flush(_cap(timeout))

    def shutdown(self, timeout: float | None = None) -> None:
        """Send what it can within the timeout, count and report the rest; idempotent."""
        if os.getpid() != self._pid:
            self._pipeline.abandon()
            return
        self._pipeline.shutdown(_cap(timeout))

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline (for tests: its ``sent`` and ``lost`` counts)."""
        return self._pipeline


def _cap(timeout: float | None) -> float:
    limit = _settings.otel_exit_timeout()
    return limit if timeout is None else min(timeout, limit)


def make_exporters(config: _Config) -> Exporters:
    """Create the OTLP exporters for ``config`` (the standard variables fill the gaps)."""
    protocol = config.protocol or _env_protocol()
    headers = None if config.headers is None else dict(config.headers)
    status: dict[str, Any] = {}
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (  # noqa: PLC0415
            OTLPLogExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter,
        )

        options: dict[str, Any] = {"headers": headers, "timeout": config.timeout}
        if config.endpoint is not None:
            options["endpoint"] = config.endpoint
            options["insecure"] = not config.endpoint.startswith("https:")
        shown = config.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317")
        return Exporters(
            OTLPLogExporter(**options),
            OTLPSpanExporter(**options),
            OTLPMetricExporter(**options),
            "grpc",
            shown,
            status,
        )
    import requests  # noqa: PLC0415 - the http exporter's own dependency
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (  # noqa: PLC0415
        OTLPLogExporter as HTTPLogExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HTTPMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HTTPSpanExporter,
    )

    def session() -> requests.Session:
        def note(response: requests.Response, *args: Any, **kwargs: Any) -> None:  # noqa: ARG001
            status["code"] = response.status_code

        made = requests.Session()
        made.hooks["response"].append(note)
        return made

    def url(signal: str) -> str | None:
        if config.endpoint is None:
            return None
        return f"{config.endpoint.rstrip('/')}/{_SIGNALS[signal]}"

    shown = config.endpoint or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318")
    common: dict[str, Any] = {"headers": headers, "timeout": config.timeout}
    return Exporters(
        HTTPLogExporter(endpoint=url("logs"), session=session(), **common),
        HTTPSpanExporter(endpoint=url("traces"), session=session(), **common),
        HTTPMetricExporter(endpoint=url("metrics"), session=session(), **common),
        "http/protobuf",
        shown,
        status,
    )


def _env_protocol() -> str:
    raw = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or "http/protobuf"
    if raw not in PROTOCOLS:
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL={raw!r}: logbridge sends {PROTOCOLS}")
    return raw


def export_run(
    run: str,
    *,
    store: str | os.PathLike[str] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    children: bool = True,
) -> dict[str, int]:
    """Send a stored run (and its child runs) to a collector, with its original times and ids.

    Args:
        run: the run's id or a unique prefix.
        store: the store folder (default ``$LOGBRIDGE_HOME``, else ``./logbridge-runs``).
        endpoint: the collector's base URL (default: the standard variables).
        protocol: ``http/protobuf`` or ``grpc`` (default: the standard variables).
        headers: headers sent with every request.
        timeout: seconds the whole replay may take.
        children: also send the run's child runs.

    Returns:
        Counts: ``log records``, ``metric points`` and ``spans`` sent, and ``lost``.

    Raises:
        RunNotFoundError: no run matches ``run``.
    """
    reader = SQLiteStore(_settings.store_path(store), create=False)
    run_ids = _family(reader, reader.resolve_run_id(run), children=children)
    config = _make_config(endpoint, protocol, headers, None)
    converter = Converter(reader.get_run)
    pipeline = Pipeline(lambda: make_exporters(config), converter, limit=2**62, replay_hint=False)
    deadline = time.monotonic() + timeout
    for run_id in run_ids:
        _replay(reader, run_id, pipeline)
    pipeline.force_flush(max(0.0, deadline - time.monotonic()))
    pipeline.shutdown(max(0.0, deadline - time.monotonic()))
    counts = dict(pipeline.sent)
    counts["lost"] = pipeline.lost.total()
    return counts


def _family(reader: SQLiteStore, run_id: str, *, children: bool) -> list[str]:
    found = [run_id]
    if children:
        for child in reversed(reader.list_runs(parent_id=run_id)):
            found.extend(_family(reader, child.id, children=True))
    return found


def _replay(reader: SQLiteStore, run_id: str, pipeline: Pipeline) -> None:
    info = reader.get_run(run_id)
    if info is None:
        return
    events: list[ev.Event] = [
        ev.RunStarted(
            run_id=info.id,
            experiment=info.experiment,
            name=info.name,
            parent_id=info.parent_id,
            time=info.start_time,
            host=info.host,
            pid=info.pid,
            pid_start=None,
            environment=info.environment,
        )
    ]
    tags = reader.get_tags(run_id)
    if tags:
        events.append(ev.TagsSet(run_id, tuple(tags.items())))
    after = 0
    while True:
        page = reader.get_logs(run_id, after=after, limit=5_000)
        if not page:
            break
        after = page[-1][0]
        events.extend(_stored_log(run_id, record) for _, record in page)
    for metric in reader.list_metrics(run_id):
        events.extend(
            ev.MetricLogged(run_id, metric.name, metric.kind, point.value, point.step, point.time)
            for point in reader.metric_points(run_id, metric.name)
        )
    if info.end_time is not None:
        events.append(ev.RunFinished(run_id, info.status, info.end_time, info.error))
    for start in range(0, len(events), 10_000):
        pipeline.put(events[start : start + 10_000])


def _stored_log(run_id: str, record: dict[str, Any]) -> ev.LogRecorded:
    import json  # noqa: PLC0415
    import logging  # noqa: PLC0415

    level = record.get("levelno")
    if not isinstance(level, int):
        named = logging.getLevelName(str(record.get("level", "INFO")))
        level = named if isinstance(named, int) else logging.INFO
    when = record.get("time")
    return ev.LogRecorded(
        run_id=run_id,
        time=float(when) if isinstance(when, (int, float)) else 0.0,
        level=level,
        logger=str(record.get("logger", "")),
        message=str(record.get("message", "")),
        process=int(record.get("process") or 0),
        record=json.dumps(record, ensure_ascii=False, default=str),
    )
