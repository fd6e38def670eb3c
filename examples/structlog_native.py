"""A structlog-native application: `RunProcessor` in the chain, JSON lines on stdout.

Bound and context-variable context is kept with each event in the run's log; events tagged
with ``metrics=`` and ``step=`` also become metrics; the event goes on unchanged to the
renderer, so stdout looks exactly as it did before logbridge.
"""

from __future__ import annotations

import structlog

import logbridge
import logbridge.structlog


def main() -> None:
    """Configure structlog with the processor, then log a small training loop."""
    logbridge.start_run(experiment="structlog-native")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            logbridge.structlog.RunProcessor(),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(sort_keys=True),
        ],
        logger_factory=structlog.PrintLoggerFactory(),
    )
    structlog.contextvars.bind_contextvars(job="demo")
    log = structlog.get_logger().bind(model="mlp")
    for epoch in range(3):
        log.info("epoch", metrics={"loss": round(1 / (epoch + 1), 3)}, step=epoch)
    try:
        raise ValueError("bad batch")  # noqa: TRY301
    except ValueError:
        log.exception("batch skipped")
    log.info("finished", tags={"outcome": "ok"})


if __name__ == "__main__":
    main()
