"""The plain, immutable events that producers hand to the recorder and sinks write.

Producers (the Run API, the logging handler, the structlog processor) build these in the
caller's thread with values already copied; sinks never see the caller's objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, Union

if TYPE_CHECKING:
    import logging


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


class MetricLogged(NamedTuple):
    """One metric point: a scalar, a list, a row, a table or an image reference.

    A named tuple rather than a frozen dataclass: ``run.log`` builds one per point on the
    caller's thread, and a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per
    field) costs about 0.8 µs against 0.2 µs here (benchmarks/bench_run_log.py). It is as
    immutable, and the garbage collector stops tracking it once it holds only atoms.
    """

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


class LogRecorded(NamedTuple):
    """One record of the run's log: the indexed fields, and the whole record as a JSON line.

    A named tuple, as `MetricLogged`: the writer thread builds one per log record, and a frozen
    dataclass costs about 0.75 µs against 0.2 µs here (benchmarks/bench_handler.py).
    """

    run_id: str
    time: float
    level: int
    logger: str
    message: str
    process: int
    record: str


class RecordCaptured(NamedTuple):
    """A stdlib log record as the handler captured it, turned into events on the writer thread.

    A named tuple rather than a dataclass: it is built on the caller's hot path, where a
    frozen dataclass costs several times more. ``record`` is a `LogRecord` nobody else holds;
    ``metrics`` is a copy, made at the call, of the tagged metrics as (name, value) pairs.
    """

    run_id: str
    record: logging.LogRecord
    metrics: tuple[tuple[Any, Any], ...] | None
    step: Any
    tags: dict[str, Any] | None
    problems: tuple[str, ...]


Captured = tuple[Any, ...]
"""A record as `RunHandler` queues it on its hot path: one exact, flat tuple.

``(run_id, *fields, step, tags, problems, extras, count, *names, *values, *args)``: the layout
is `_logrecords.CAPTURED`'s. The garbage collector stops tracking an exact tuple of atoms at its
first pass, but not a tuple holding a tracked tuple (not until a pass later), nor a named tuple,
nor a tuple holding a dict (even an untracked one): a queued `RecordCaptured` is traversed by
every collection, promoted, and makes full collections more frequent and longer until the
writer gets to it (measured with benchmarks/bench_handler.py and ``gc.callbacks``).
"""


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
    RecordCaptured,
    Dropped,
]
