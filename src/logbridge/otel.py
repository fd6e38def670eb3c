"""Send runs to an OpenTelemetry collector: logs, metrics and a span per run, over OTLP.

Enable it with ``LOGBRIDGE_OTEL=1``, with ``otel=True`` on `logbridge.start_run`,
`logbridge.basicConfig` or `logbridge.RunHandler`, or with `enable`. The destination comes
from the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``,
headers, timeouts, ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``...) unless given here.

If the application installed OpenTelemetry SDK providers globally, logbridge emits into them
instead (records through its logger provider, gauges through its meter provider, run spans
through its tracer provider), unless an endpoint is given here.

The local store stays the record: export happens after each batch is stored, on a thread of
its own, and what cannot be sent is counted, reported once at exit and can be sent later with
`export_run` (``logbridge export RUN``). A run's ``flush`` and ``complete`` never wait for the
collector; `flush` does. docs/opentelemetry.md describes the mapping.
Needs the ``otel`` extra: ``pip install 'logbridge[otel]'``.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
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
from logbridge import _otel_app, _settings, _state
from logbridge._otel_convert import Converter
from logbridge._otel_pipeline import Exporters, Pipeline
from logbridge._recorder import Recorder
from logbridge._store import SQLiteStore
from logbridge._version import __version__

__all__ = ["PROTOCOLS", "OtelSink", "enable", "export_run", "flush"]

PROTOCOLS: Final = ("http/protobuf", "grpc")
"""The OTLP protocols logbridge sends with."""


@dataclass(frozen=True)
class _Config:
    endpoint: str | None
    protocol: str | None
    headers: tuple[tuple[str, str], ...] | None
    timeout: float | None
    providers: bool = True
    """Emit into the application's global SDK providers where it installed them."""


_config: _Config | None = None
_lock = threading.Lock()
_sinks: weakref.WeakSet[OtelSink] = weakref.WeakSet()
_FORK_WAIT: Final = 5.0
"""Seconds a fork waits for an export request in flight (then it goes ahead anyway)."""


def _hold_exports() -> None:
    for sink in list(_sinks):
        sink.pipeline.hold_for_fork(_FORK_WAIT)


def _release_exports() -> None:
    for sink in list(_sinks):
        sink.pipeline.release_after_fork()


os.register_at_fork(
    before=_hold_exports, after_in_parent=_release_exports, after_in_child=_release_exports
)


def enable(
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    providers: bool | None = None,
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
        providers: emit into the OpenTelemetry SDK providers the application installed
            globally (``set_logger_provider``...), for the signals it installed one for;
            default: yes, unless ``endpoint`` is given.

    Raises:
        ValueError: an unknown protocol.
    """
    global _config  # noqa: PLW0603
    config = _make_config(endpoint, protocol, headers, timeout)
    use_app = endpoint is None if providers is None else providers
    config = _Config(config.endpoint, config.protocol, config.headers, config.timeout, use_app)
    # Imported here, on the caller's thread: an import in progress on the exporter thread
    # when the process forks would leave its module lock held forever in the child.
    _transport(config.protocol or _env_protocol())
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


def flush(timeout: float | None = None) -> bool:
    """Store what this process's runs logged so far, then wait until it is exported.

    A run's ``flush`` and ``complete`` only wait for the local store, so a slow or dead
    collector never stalls a training; call this where delivery matters (before a checkpoint
    is announced elsewhere, say). Returns False if that did not finish within ``timeout``
    (at most ``LOGBRIDGE_OTEL_EXIT_TIMEOUT``), or at once while the collector is failing.
    """
    deadline = time.monotonic() + _cap(timeout)
    done = True
    for sink in [s for s in list(_sinks) if s.pid == os.getpid()]:
        left = max(0.0, deadline - time.monotonic())
        done = sink.recorder.flush(left, sinks=True) and done
    return done


class OtelSink:
    """The sink that exports a recorder's events to a collector (see `enable`)."""

    def __init__(self, recorder: Recorder, config: _Config) -> None:
        """Export what ``recorder`` writes, as ``config`` says."""
        store = recorder.store
        self.pid = os.getpid()
        self.recorder = recorder
        self._pipeline = Pipeline(
            lambda: make_exporters(config),
            Converter(store.get_run),
            limit=_settings.otel_buffer(),
            on_lost=lambda run_id, n: recorder.count_drop(run_id, "otel_export", n),
        )
        _sinks.add(self)

    def export(self, events: Sequence[ev.Event]) -> None:
        """Hand ``events`` to the exporter thread (never waits on the network)."""
        if os.getpid() == self.pid:
            self._pipeline.put(events)

    def force_flush(self, timeout: float | None = None) -> bool:
        """Wait until what was handed over is sent (at most ``LOGBRIDGE_OTEL_EXIT_TIMEOUT``)."""
        if os.getpid() != self.pid:
            return True
        return self._pipeline.force_flush(_cap(timeout))

    def shutdown(self, timeout: float | None = None) -> None:
        """Send what it can within the timeout, count and report the rest; idempotent."""
        if os.getpid() != self.pid:
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
    """Create the exporters for ``config`` (the standard variables fill the gaps).

    A signal the application installed a global SDK provider for goes into that provider
    (when ``config.providers``); the others go to logbridge's own OTLP exporters.
    """
    app = _otel_app.installed() if config.providers else _otel_app.AppProviders()
    protocol = config.protocol or _env_protocol()
    status: dict[str, Any] = {}
    otlp = {} if app.logs and app.metrics and app.traces else _otlp(config, protocol, status)
    shown = config.endpoint or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4317" if protocol == "grpc" else "localhost:4318"
    )
    if app.any():
        mine = f" (and {shown})" if otlp else ""
        shown = f"the application's OpenTelemetry providers{mine}"
    return Exporters(
        _otel_app.AppLogs(app.logs) if app.logs else otlp["logs"],
        _otel_app.AppSpans() if app.traces else otlp["traces"],
        _otel_app.AppMetrics(app.metrics) if app.metrics else otlp["metrics"],
        protocol,
        shown,
        status,
        app,
        app.traces.get_tracer("logbridge", __version__) if app.traces else None,
    )


def _otlp(config: _Config, protocol: str, status: dict[str, Any]) -> dict[str, Any]:
    headers = None if config.headers is None else dict(config.headers)
    made: dict[str, Any] = _transport(protocol).exporters(
        config.endpoint, headers, config.timeout, status
    )
    return made


def _transport(protocol: str) -> Any:
    """Return the module that makes the OTLP exporters of ``protocol`` (imports it)."""
    if protocol == "grpc":
        from logbridge import _otel_grpc  # noqa: PLC0415 - grpc only when asked for

        return _otel_grpc
    from logbridge import _otel_http  # noqa: PLC0415 - requests only when asked for

    return _otel_http


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
