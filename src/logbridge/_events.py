"""The plain, immutable events that producers hand to the recorder and sinks write.

Producers (the Run API, the logging handler, the structlog processor) build these in the
caller's thread with values already copied; sinks never see the caller's objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union


@dataclass(frozen=True, slots=True)
class RunStarted:
    """A run began (written synchronously by `start_run`, so it is never lost)."""

    run_id: str
    experiment: str
    name: str
    parent_id: str | None
    time: float
    host: str
    pid: int
    pid_start: str | None
    environment: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RunFinished:
    """A run reached a final status."""

    run_id: str
    status: str
    time: float
    error: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class MetricLogged:
    """One metric point: a scalar, a list, a row, a table or an image reference."""

    run_id: str
    name: str
    kind: str
    value: Any
    step: int | None
    time: float
    description: str = ""


@dataclass(frozen=True, slots=True)
class TagsSet:
    """Tags set on a run (a value of ``None`` is a tag with no value)."""

    run_id: str
    tags: tuple[tuple[str, str | None], ...]


@dataclass(frozen=True, slots=True)
class PropertiesAdded:
    """Write-once properties added to a run."""

    run_id: str
    properties: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FileUploaded:
    """A file that now lies in the run's artifact folder."""

    run_id: str
    name: str
    size: int
    time: float


@dataclass(frozen=True, slots=True)
class LogRecorded:
    """One log record of the run's log."""

    run_id: str
    time: float
    level: int
    level_name: str
    logger: str
    message: str
    process: int
    thread: int
    thread_name: str
    exception: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dropped:
    """Events that were accepted by a producer but could not be recorded, counted by reason."""

    run_id: str
    reason: str
    count: int


Event = Union[  # noqa: UP007 - a runtime alias, also on Python 3.10
    RunStarted,
    RunFinished,
    MetricLogged,
    TagsSet,
    PropertiesAdded,
    FileUploaded,
    LogRecorded,
    Dropped,
]
