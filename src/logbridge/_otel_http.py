"""The OTLP/HTTP exporters, with a session that tells the pipeline what each request met.

The SDK's HTTP client retries a connection error (refused, reset, timed out) with pauses of
1, 2, 4... seconds until its timeout: ~7 s per batch while a collector is down, during which
nothing else can be sent. The session here turns those errors into `CollectorUnreachable`,
which the client does not retry, and notes them in the shared ``status`` dict, so the
pipeline fails fast and retries on its own schedule (a circuit breaker). Answers (429, 503...)
are still retried by the client, honouring ``Retry-After``.
"""

from __future__ import annotations

from typing import Any, Final

import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

_PATHS: Final = {"logs": "v1/logs", "traces": "v1/traces", "metrics": "v1/metrics"}


class CollectorUnreachable(Exception):  # noqa: N818 - read as "the collector is unreachable"
    """No answer from the collector (deliberately not a requests.ConnectionError)."""


class _Session(requests.Session):
    """Notes each answer's status, and fails unanswered requests without the SDK's retries."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self._status = status

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response = super().request(*args, **kwargs)
        except requests.RequestException as err:
            self._status["unreachable"] = _short(err)
            raise CollectorUnreachable(str(err)) from err
        self._status["code"] = response.status_code
        return response


def exporters(
    endpoint: str | None,
    headers: dict[str, str] | None,
    timeout: float | None,
    status: dict[str, Any],
) -> dict[str, Any]:
    """Return the three OTLP/HTTP exporters, by signal, sharing ``status``."""

    def url(signal: str) -> str | None:
        return None if endpoint is None else f"{endpoint.rstrip('/')}/{_PATHS[signal]}"

    common: dict[str, Any] = {"headers": headers, "timeout": timeout}
    return {
        "logs": OTLPLogExporter(endpoint=url("logs"), session=_Session(status), **common),
        "traces": OTLPSpanExporter(endpoint=url("traces"), session=_Session(status), **common),
        "metrics": OTLPMetricExporter(endpoint=url("metrics"), session=_Session(status), **common),
    }


def _short(err: BaseException) -> str:
    """Name what went wrong without urllib3's nested reprs (the innermost reason)."""
    text = str(err)
    for marker in ("Connection refused", "timed out", "Connection reset", "Name or service"):
        if marker in text:
            return marker.lower()
    return type(err).__name__
