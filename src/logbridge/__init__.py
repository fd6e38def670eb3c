"""logbridge: turn Python logging and structlog into an ML experiment tracker.

The public API is what this module exports; everything in ``_``-prefixed modules is private.
"""

from __future__ import annotations

import importlib

from logbridge._errors import (
    ArtifactNameError,
    InvalidMetricError,
    InvalidMetricTypeError,
    LogbridgeError,
    MissingExtraError,
    RunFailedError,
    RunNotFoundError,
    RunStateError,
    StoreCorruptError,
    StoreError,
)
from logbridge._version import __version__

TYPE_CHECKING = False  # not typing's: importing typing alone costs a few ms
if TYPE_CHECKING:
    from typing import Any

    from logbridge._handler import RunHandler, basicConfig
    from logbridge._run import Experiment, Run, get_run, list_runs, start_run
    from logbridge._submit import submit
    from logbridge._values import Image, List, Row, Table

# `import logbridge` stays cheap (benchmarks/bench_import.py): the modules behind these names
# (and sqlite3, json, logging, ... behind them) load when a name is first used.
_LAZY = {
    "RunHandler": "logbridge._handler",
    "basicConfig": "logbridge._handler",
    "Experiment": "logbridge._run",
    "Run": "logbridge._run",
    "get_run": "logbridge._run",
    "list_runs": "logbridge._run",
    "start_run": "logbridge._run",
    "submit": "logbridge._submit",
    "Image": "logbridge._values",
    "List": "logbridge._values",
    "Row": "logbridge._values",
    "Table": "logbridge._values",
}


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on its first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'logbridge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """List the public API with the module's own names."""
    return sorted({*globals(), *__all__})


__all__ = [
    "ArtifactNameError",
    "Experiment",
    "Image",
    "InvalidMetricError",
    "InvalidMetricTypeError",
    "List",
    "LogbridgeError",
    "MissingExtraError",
    "Row",
    "Run",
    "RunFailedError",
    "RunHandler",
    "RunNotFoundError",
    "RunStateError",
    "StoreCorruptError",
    "StoreError",
    "Table",
    "__version__",
    "basicConfig",
    "get_run",
    "list_runs",
    "start_run",
    "submit",
]
