"""structlog and the standard library together, through ``ProcessorFormatter``.

structlog events and records of stdlib libraries both go through the root logger, where a
`logbridge.RunHandler` and a console handler rendering JSON with ``ProcessorFormatter`` sit
side by side. `RunProcessor` is in the structlog chain (so tagged events keep their metrics)
and in ``foreign_pre_chain``: each record is still stored exactly once.
"""

from __future__ import annotations

import logging

import structlog

import logbridge
import logbridge.structlog


def configure() -> None:
    """One root logger for both worlds: the console renders JSON, the run records."""
    shared = [structlog.stdlib.add_log_level, structlog.stdlib.add_logger_name]
    console = logging.StreamHandler()
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, logbridge.structlog.RunProcessor()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    logging.basicConfig(level=logging.INFO, handlers=[console, logbridge.RunHandler()])
    structlog.configure(
        processors=[
            *shared,
            logbridge.structlog.RunProcessor(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )


def main() -> None:
    """Log from structlog and from a stdlib logger."""
    logbridge.start_run(experiment="structlog-stdlib")
    configure()
    log = structlog.get_logger("trainer")
    library = logging.getLogger("library")
    library.info("library loaded %d shards", 4)
    for epoch in range(2):
        log.info("epoch", metrics={"loss": 0.5 / (epoch + 1)}, step=epoch, lr=0.01)
    library.warning("cache is cold")


if __name__ == "__main__":
    main()
