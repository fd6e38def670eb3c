"""logbridge configured through ``logging.config.dictConfig``, as an application would.

``"class": "logbridge.RunHandler"`` with its options as keys: the run's experiment, name and
tags come from the configuration, the console shows WARNING and above, and the run records
everything from DEBUG up.
"""

from __future__ import annotations

import logging
import logging.config

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"short": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "level": "WARNING", "formatter": "short"},
        "run": {
            "class": "logbridge.RunHandler",
            "level": "DEBUG",
            "experiment": "dict-config",
            "name": "from-dict-config",
            "tags": {"config": "dictConfig"},
        },
    },
    "root": {"level": "DEBUG", "handlers": ["console", "run"]},
}


def main() -> None:
    """Configure logging from the dict, then log as usual."""
    logging.config.dictConfig(LOGGING)
    log = logging.getLogger("app")
    log.debug("configuration loaded")
    for step in range(3):
        log.info("step %d", step, extra={"metrics": {"accuracy": 0.5 + step / 10}, "step": step})
    log.warning("validation set is small", extra={"tags": {"warning": "small-validation"}})


if __name__ == "__main__":
    main()
