"""logbridge: turn Python logging and structlog into an ML experiment tracker.

The public API is what this module exports; everything in ``_``-prefixed modules is private.
"""

from __future__ import annotations

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
from logbridge._handler import RunHandler, basicConfig
from logbridge._run import Experiment, Run, get_run, list_runs, start_run
from logbridge._submit import submit
from logbridge._values import Image, List, Row, Table
from logbridge._version import __version__

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
