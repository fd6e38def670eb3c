"""The OTLP/gRPC exporters, with a client interceptor that notes each call's status code.

The SDK's gRPC exporter reports only success or failure; the status code that ended the
export appears nowhere but in its log messages. The interceptor reads it from the call itself
(``grpc.Call.code()``), so the pipeline can tell a final refusal (INVALID_ARGUMENT...) from a
transient one. The exporter is also told not to retry UNAVAILABLE (collector down or
restarting) itself: it would pause 1, 2, 4... seconds per batch until its timeout; the
pipeline retries on its own schedule instead (a circuit breaker). RESOURCE_EXHAUSTED and the
other "try later" codes are still retried by the exporter, honouring the server's RetryInfo.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import grpc  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

_SDK_RETRIES: Final = (
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.OUT_OF_RANGE,
    grpc.StatusCode.DATA_LOSS,
)
"""The SDK's retryable codes, less UNAVAILABLE."""


class StatusInterceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Notes the status code of every export call in a shared dict (``code``: its name)."""

    def __init__(self, status: dict[str, Any]) -> None:
        """Note into ``status``."""
        self._status = status

    def intercept_unary_unary(
        self,
        continuation: Callable[[Any, Any], Any],
        client_call_details: Any,
        request: Any,
    ) -> Any:
        """Make the call, note its code, hand its outcome back unchanged."""
        outcome = continuation(client_call_details, request)
        try:
            code = outcome.code()
        except Exception:  # an outcome without a code: nothing learnt
            return outcome
        if code is not None:
            self._status["code"] = code.name
        return outcome


def _intercepted(base: type[Any], interceptor: StatusInterceptor) -> type[Any]:
    class Intercepted(base):  # type: ignore[misc]
        # The SDK (re)creates its channel here, on start and after UNAVAILABLE.
        def _initialize_channel_and_stub(self) -> None:
            super()._initialize_channel_and_stub()
            channel: Any = self._channel  # type: ignore[has-type]
            self._channel = grpc.intercept_channel(channel, interceptor)
            self._client = self._stub(self._channel)

    Intercepted.__name__ = base.__name__
    return Intercepted


def exporters(
    endpoint: str | None,
    headers: dict[str, str] | None,
    timeout: float | None,
    status: dict[str, Any],
) -> dict[str, Any]:
    """Return the three OTLP/gRPC exporters, by signal, noting status codes in ``status``."""
    interceptor = StatusInterceptor(status)
    options: dict[str, Any] = {
        "headers": headers,
        "timeout": timeout,
        "retryable_error_codes": _SDK_RETRIES,
    }
    if endpoint is not None:
        options["endpoint"] = endpoint
        options["insecure"] = not endpoint.startswith("https:")
    return {
        "logs": _intercepted(OTLPLogExporter, interceptor)(**options),
        "traces": _intercepted(OTLPSpanExporter, interceptor)(**options),
        "metrics": _intercepted(OTLPMetricExporter, interceptor)(**options),
    }
