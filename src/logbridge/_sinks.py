"""The sink seam: where the recorder hands what it wrote to other destinations.

A sink follows the shape of OpenTelemetry's exporters: it takes a batch, flushes with a
timeout it really enforces, and shuts down idempotently. The recorder calls `Sink.export` on
its writer thread right after the batch is in the local store, so a sink must only hand the
batch on (to its own thread, say) and return: it must never block on the network there.
A run's flush and completion do not wait for sinks; `Sink.force_flush` is called only by an
explicit flush of the sinks (``Recorder.flush(sinks=True)``, `logbridge.otel.flush`), and
`Sink.shutdown` when the recorder closes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from logbridge import _events as ev

DropCounter = Callable[[str, str, int], None]
"""``(run id, reason, count)``: how a sink reports events it accepted but could not deliver."""


class Sink(Protocol):
    """A destination for the events the recorder wrote to the local store."""

    def export(self, events: Sequence[ev.Event]) -> None:
        """Take a batch already written to the store; return at once, never raise."""

    def force_flush(self, timeout: float | None = None) -> bool:
        """Deliver what was taken so far; return False if that did not finish in ``timeout``."""

    def shutdown(self, timeout: float | None = None) -> None:
        """Deliver what it can within ``timeout`` and stop; idempotent."""


class MemorySink:
    """A sink that keeps every event it is given, for tests."""

    def __init__(self) -> None:
        """Start empty."""
        self.events: list[ev.Event] = []
        self.flushes = 0
        self.shut_down = False
        self._lock = threading.Lock()

    def export(self, events: Sequence[ev.Event]) -> None:
        """Keep ``events`` (ignored after shutdown)."""
        with self._lock:
            if not self.shut_down:
                self.events.extend(events)

    def force_flush(self, timeout: float | None = None) -> bool:  # noqa: ARG002 - the protocol
        """Count the call; everything is delivered already."""
        self.flushes += 1
        return True

    def shutdown(self, timeout: float | None = None) -> None:  # noqa: ARG002 - the protocol
        """Stop taking events."""
        with self._lock:
            self.shut_down = True
