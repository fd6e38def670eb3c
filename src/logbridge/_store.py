"""The local store: runs, metrics, tags, files and logs in SQLite, artifacts as files beside it.

`Store` is the one interface producers' sinks and readers (the Run API, the CLI, the viewer)
use; `SQLiteStore` is its implementation. A new backend is a new class with the same methods.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import math
import os
import shutil
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Protocol

from logbridge import _events as ev
from logbridge import _liveness, _sqlite
from logbridge._errors import RunNotFoundError
from logbridge._values import INT64_MAX, INT64_MIN

ARTIFACTS_FOLDER: Final = "artifacts"

T_FLOAT: Final = 0
T_INT: Final = 1
T_BOOL: Final = 2
T_STR: Final = 3
T_NAN: Final = 4
T_BIG_INT: Final = 5
T_JSON: Final = 6

STATUSES: Final = ("NotStarted", "Running", "Completed", "Failed", "Canceled")
FINAL_STATUSES: Final = frozenset({"Completed", "Failed", "Canceled"})

_abandoned: list[sqlite3.Connection] = []
"""Connections inherited across fork: kept referenced so they are never closed in the child."""


@dataclass(frozen=True, slots=True)
class RunInfo:
    """What the store knows of a run, with its status as readers should see it."""

    id: str
    experiment: str
    name: str
    parent_id: str | None
    status: str
    start_time: float
    end_time: float | None
    host: str
    pid: int
    heartbeat: float
    environment: dict[str, Any]
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric of a run: its kind, how many points it holds and the latest value."""

    name: str
    kind: str
    description: str
    count: int
    last: Any


@dataclass(frozen=True, slots=True)
class Point:
    """One stored metric point."""

    step: int | None
    time: float
    value: Any


@dataclass(frozen=True, slots=True)
class FileInfo:
    """A file of a run."""

    name: str
    size: int
    time: float


@dataclass(frozen=True, slots=True)
class Series:
    """A numeric metric's points as (x, value) pairs sorted by x, for charts.

    ``x`` is what the pairs' first element is: ``step``, ``time`` or ``index`` (the point's
    position in logged order). ``count`` counts all the metric's points; ``drawable`` those
    with a finite number and an x (in the asked range; over the whole range a point with
    neither may be counted twice); ``bucketed`` says that ``points`` holds only the lowest
    and highest value of each x bucket.
    """

    x: str
    points: list[tuple[float, float]]
    count: int
    drawable: int
    bucketed: bool
    x_range: tuple[float, float] | None


class Store(Protocol):
    """The interface between logbridge and where run records live."""

    folder: Path

    def write(self, events: Iterable[ev.Event]) -> None:
        """Write a batch of events (iterated once) atomically; raise if none could be written."""

    def close(self) -> None:
        """Release the store's resources; idempotent."""

    def artifact_folder(self, run_id: str) -> Path:
        """Return the folder holding a run's files."""

    def resolve_run_id(self, prefix: str) -> str:
        """Return the id of the one run whose id is or starts with ``prefix``."""

    def get_run(self, run_id: str) -> RunInfo | None:
        """Return a run, or None."""

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        parent_id: str | None = None,
    ) -> list[RunInfo]:
        """Return runs, newest first, filtered by experiment, status, tags or parent."""

    def list_experiments(self) -> list[str]:
        """Return the experiment names, sorted."""

    def list_metrics(self, run_id: str) -> list[MetricInfo]:
        """Return a run's metrics in the order they were first logged."""

    def metric_values(
        self, run_id: str, name: str | None = None
    ) -> dict[str, tuple[str, list[Any]]]:
        """Return metric name -> (kind, values in logged order), for one metric or all."""

    def metric_points(self, run_id: str, name: str) -> list[Point]:
        """Return one metric's points in logged order."""

    def get_tags(self, run_id: str) -> dict[str, str | None]:
        """Return a run's tags."""

    def get_properties(self, run_id: str) -> dict[str, str]:
        """Return a run's properties."""

    def list_files(self, run_id: str) -> list[FileInfo]:
        """Return a run's files, sorted by name."""

    def get_logs(
        self,
        run_id: str,
        *,
        level: int | None = None,
        logger: str | None = None,
        contains: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Return (sequence number, record) pairs of a run's log, oldest first."""

    def get_drops(self, run_id: str) -> dict[str, int]:
        """Return reason -> count of events accepted for a run but not recorded."""

    def metric_series(
        self,
        run_id: str,
        name: str,
        *,
        x: str = "auto",
        lo: float | None = None,
        hi: float | None = None,
        buckets: int | None = None,
    ) -> Series | None:
        """Return a metric's numeric points for a chart, or None if the run has no such metric."""


def encode(value: Any) -> tuple[int, Any]:
    """Return the (type code, stored value) of a normalised metric value."""
    kind = type(value)
    if kind is float:
        return (T_FLOAT, value) if value == value else (T_NAN, None)  # noqa: PLR0124
    if kind is int:
        return (T_INT, value) if INT64_MIN <= value <= INT64_MAX else (T_BIG_INT, str(value))
    if kind is bool:
        return T_BOOL, int(value)
    if kind is str:
        return T_STR, value
    return T_JSON, json.dumps(value, allow_nan=True, ensure_ascii=False)


def decode(code: int, stored: Any) -> Any:
    """Return the metric value stored as (type code, stored value)."""
    if code <= T_INT or code == T_STR:
        return stored
    if code == T_BOOL:
        return bool(stored)
    if code == T_NAN:
        return math.nan
    if code == T_BIG_INT:
        return int(stored)
    return json.loads(stored)


class SQLiteStore:
    """The embedded store: one SQLite database in WAL mode, artifacts in a folder beside it.

    One instance writes through one connection of its process; reads open their own
    connection, so they never see a half-written batch. After ``fork`` the child opens a new
    connection and leaves the inherited one alone.
    """

    def __init__(self, folder: Path, *, create: bool = True) -> None:
        """Open the store in ``folder``, creating it unless ``create`` is false.

        Raises:
            StoreError: the store cannot be created or opened (with ``create``; without it,
                problems surface at the first read).
        """
        self.folder = folder
        self._pid = os.getpid()
        self._conn: sqlite3.Connection | None = _open_writer(folder) if create else None
        self._metric_ids: dict[tuple[str, str], tuple[int, str]] = {}
        self._checkpointer: sqlite3.Connection | None = None

    def __repr__(self) -> str:
        """Name the store by its folder."""
        return f"SQLiteStore({str(self.folder)!r})"

    def _writer(self) -> sqlite3.Connection:
        if self._pid != os.getpid():
            if self._conn is not None:
                _abandoned.append(self._conn)
            if self._checkpointer is not None:
                _abandoned.append(self._checkpointer)
            self._conn = self._checkpointer = None
            self._metric_ids = {}
            self._pid = os.getpid()
        if self._conn is None:
            self._conn = _open_writer(self.folder)
        return self._conn

    def close(self) -> None:
        """Close the writing connection (a later write reopens it)."""
        conn, self._conn = self._conn, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database, on a connection of its own.

        PASSIVE: it never waits for readers or writers, so another thread calls it while the
        writer goes on writing. The copy and its fsync release the GIL: done here instead of by
        the writer's commits, they run on another core beside the training and the writer.
        """
        if self._pid != os.getpid():
            return  # a forked child's copy: its next write (`_writer`) takes the store over
        if self._checkpointer is None:
            self._checkpointer = _sqlite.connect(self.folder, create=False)
        self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close_checkpointer(self) -> None:
        """Close the checkpoint's connection (the next `checkpoint` reopens it)."""
        conn, self._checkpointer = self._checkpointer, None
        if conn is not None and self._pid == os.getpid():
            conn.close()

    def artifact_folder(self, run_id: str) -> Path:
        """Return the folder holding a run's files."""
        return self.artifact_folder_of(self.folder, run_id)

    @staticmethod
    def artifact_folder_of(folder: Path, run_id: str) -> Path:
        """Return the folder holding the files of run ``run_id`` in the store ``folder``."""
        return folder / ARTIFACTS_FOLDER / run_id

    # -- writing -------------------------------------------------------------------------

    @_sqlite.translated
    def write(self, events: Iterable[ev.Event]) -> None:
        """Write a batch of events in one transaction."""
        conn = self._writer()
        known_ids = self._metric_ids
        new_ids: dict[tuple[str, str], tuple[int, str]] = {}
        points: dict[int, list[Any]] = {}  # metric id -> its rows' values, flat, in order
        logs: list[ev.LogRecorded] = []
        rejected: dict[tuple[str, str], int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                if type(event) is ev.MetricLogged:
                    run_id, name, kind, value, step, when, _ = event
                    key = (run_id, name)
                    known = (
                        known_ids.get(key)
                        or new_ids.get(key)
                        or self._new_metric(conn, event, new_ids)
                    )
                    if known[1] != kind:
                        key = (run_id, "metric_kind_conflict")
                        rejected[key] = rejected.get(key, 0) + 1
                        continue
                    metric_id = known[0]
                    rows = points.get(metric_id)
                    if rows is None:
                        rows = points[metric_id] = []
                    if type(value) is float and value == value:  # noqa: PLR0124 - not NaN
                        rows += (metric_id, step, when, T_FLOAT, value)
                    else:
                        rows += (metric_id, step, when, *encode(value))
                elif type(event) is ev.LogRecorded:
                    logs.append(event)  # a named tuple in the order of the columns
                    if len(logs) == _LOGS_PER_INSERT:
                        # Now, so that records expanded as they are written die young.
                        _insert_logs(conn, logs)
                        logs.clear()
                else:
                    self._write_other(conn, event, rejected)
            _insert_points(conn, points)
            _insert_logs(conn, logs)
            for (run_id, reason), count in rejected.items():
                _add_drops(conn, run_id, reason, count)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._metric_ids.update(new_ids)

    @staticmethod
    def _new_metric(
        conn: sqlite3.Connection,
        event: ev.MetricLogged,
        new_ids: dict[tuple[str, str], tuple[int, str]],
    ) -> tuple[int, str]:
        """Return the (id, kind) of a metric not in the cache, creating it if it is new."""
        key = (event.run_id, event.name)
        conn.execute(
            "INSERT OR IGNORE INTO metrics (run_id, name, kind, description) VALUES (?, ?, ?, ?)",
            (event.run_id, event.name, event.kind, event.description),
        )
        row = conn.execute("SELECT id, kind FROM metrics WHERE run_id = ? AND name = ?", key)
        metric_id, kind = row.fetchone()
        new_ids[key] = (metric_id, kind)
        return metric_id, kind

    def _write_other(
        self, conn: sqlite3.Connection, event: ev.Event, rejected: dict[tuple[str, str], int]
    ) -> None:
        if isinstance(event, ev.RunStarted):
            self._insert_run(conn, event)
        elif isinstance(event, ev.RunFinished):
            conn.execute(
                "UPDATE runs SET status = ?, end_time = ?, error = ? WHERE id = ? "
                "AND status NOT IN ('Completed', 'Failed', 'Canceled')",
                (
                    event.status,
                    event.time,
                    None if event.error is None else _json(event.error),
                    event.run_id,
                ),
            )
        elif isinstance(event, ev.TagsSet):
            conn.executemany(
                "INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
                [(event.run_id, key, value) for key, value in event.tags],
            )
        elif isinstance(event, ev.PropertiesAdded):
            for key, value in event.properties:
                cur = conn.execute(
                    "INSERT OR IGNORE INTO properties (run_id, key, value) VALUES (?, ?, ?)",
                    (event.run_id, key, value),
                )
                if cur.rowcount == 0:
                    old = conn.execute(
                        "SELECT value FROM properties WHERE run_id = ? AND key = ?",
                        (event.run_id, key),
                    ).fetchone()
                    if old is not None and old[0] != value:
                        k = (event.run_id, "property_conflict")
                        rejected[k] = rejected.get(k, 0) + 1
        elif isinstance(event, ev.FileUploaded):
            conn.execute(
                "INSERT INTO files (run_id, name, size, time) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (run_id, name) DO UPDATE "
                "SET size = excluded.size, time = excluded.time",
                (event.run_id, event.name, event.size, event.time),
            )
        elif isinstance(event, ev.Dropped):
            _add_drops(conn, event.run_id, event.reason, event.count)

    @staticmethod
    def _insert_run(conn: sqlite3.Connection, event: ev.RunStarted) -> None:
        conn.execute(
            "INSERT OR IGNORE INTO runs (id, experiment, name, parent_id, status, start_time, "
            "host, pid, pid_start, heartbeat, environment) "
            "VALUES (?, ?, ?, ?, 'Running', ?, ?, ?, ?, ?, ?)",
            (
                event.run_id,
                event.experiment,
                event.name,
                event.parent_id,
                event.time,
                event.host,
                event.pid,
                event.pid_start,
                event.time,
                _json(event.environment),
            ),
        )

    @_sqlite.translated
    def heartbeat(self, run_ids: Sequence[str]) -> None:
        """Mark the given running runs as still being written."""
        if not run_ids:
            return
        now = time.time()
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "UPDATE runs SET heartbeat = ? WHERE id = ?", [(now, run_id) for run_id in run_ids]
            )
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    @_sqlite.translated
    def delete_run(self, run_id: str) -> None:
        """Delete a run, its records and its files."""
        conn = self._writer()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "DELETE FROM points WHERE metric_id IN (SELECT id FROM metrics WHERE run_id = ?)",
                (run_id,),
            )
            for table in ("metrics", "tags", "properties", "files", "logs", "drops"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))  # noqa: S608
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        _remove_tree(self.artifact_folder(run_id))

    # -- reading -------------------------------------------------------------------------

    @contextlib.contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        conn = _sqlite.connect(self.folder, create=False)
        try:
            with _sqlite.store_errors(self.folder):
                yield conn
        finally:
            conn.close()

    def resolve_run_id(self, prefix: str) -> str:
        """Return the id of the one run whose id is or starts with ``prefix``."""
        with self._reader() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (prefix,)).fetchone():
                return prefix
            escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 3", (escaped + "%",)
            ).fetchall()
        if len(rows) == 1:
            return str(rows[0][0])
        if not rows:
            raise RunNotFoundError(f"no run with id {prefix!r} in the store {self.folder}")
        matches = ", ".join(str(r[0]) for r in rows)
        raise RunNotFoundError(f"run id prefix {prefix!r} matches several runs ({matches}, ...)")

    def get_run(self, run_id: str) -> RunInfo | None:
        """Return a run, or None."""
        with self._reader() as conn:
            row = conn.execute(f"{_RUN_SELECT} WHERE id = ?", (run_id,)).fetchone()
        return None if row is None else _run_info(row)

    def list_runs(
        self,
        *,
        experiment: str | None = None,
        status: str | None = None,
        tags: Mapping[str, str | None] | None = None,
        parent_id: str | None = None,
    ) -> list[RunInfo]:
        """Return runs, newest first, filtered by experiment, status, tags or parent."""
        where: list[str] = []
        params: list[Any] = []
        if experiment is not None:
            where.append("experiment = ?")
            params.append(experiment)
        if parent_id is not None:
            where.append("parent_id = ?")
            params.append(parent_id)
        for key, value in (tags or {}).items():
            if value is None:
                where.append("EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id AND t.key = ?)")
                params.append(key)
            else:
                where.append(
                    "EXISTS (SELECT 1 FROM tags t WHERE t.run_id = runs.id AND t.key = ? "
                    "AND t.value = ?)"
                )
                params.extend((key, value))
        sql = _RUN_SELECT
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY start_time DESC, id"
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        runs = [_run_info(row) for row in rows]
        return runs if status is None else [r for r in runs if r.status == status]

    def list_experiments(self) -> list[str]:
        """Return the experiment names, sorted."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT DISTINCT experiment FROM runs ORDER BY experiment"
            ).fetchall()
        return [str(r[0]) for r in rows]

    def list_metrics(self, run_id: str) -> list[MetricInfo]:
        """Return a run's metrics in the order they were first logged."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT m.name, m.kind, m.description, "  # noqa: S608 - constant fragments only
                "(SELECT count(*) FROM points p WHERE p.metric_id = m.id), "
                f"(SELECT p.type {_LAST_POINT}), (SELECT p.value {_LAST_POINT}) "
                "FROM metrics m WHERE m.run_id = ? ORDER BY m.id",
                (run_id,),
            ).fetchall()
        return [
            MetricInfo(
                name, kind, description, count, None if code is None else decode(code, value)
            )
            for name, kind, description, count, code, value in rows
        ]

    def latest_scalars(self, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return run id -> (scalar metric name -> latest value) for many runs at once.

        Metrics come in the order they were first logged; a run without scalars maps to ``{}``.
        """
        result: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
        ids = list(result)
        with self._reader() as conn:
            for start in range(0, len(ids), _IDS_PER_QUERY):
                chunk = ids[start : start + _IDS_PER_QUERY]
                rows = conn.execute(
                    "SELECT m.run_id, m.name, p.type, p.value FROM metrics m "  # noqa: S608
                    "JOIN points p ON p.rowid = "
                    "(SELECT max(rowid) FROM points WHERE metric_id = m.id) "
                    f"WHERE m.kind = 'scalar' AND m.run_id IN ({', '.join('?' * len(chunk))}) "
                    "ORDER BY m.id",
                    chunk,
                ).fetchall()
                for run_id, name, code, value in rows:
                    result[run_id][name] = decode(code, value)
        return result

    def metric_values(
        self, run_id: str, name: str | None = None
    ) -> dict[str, tuple[str, list[Any]]]:
        """Return metric name -> (kind, values in logged order), for one metric or all."""
        sql = "SELECT id, name, kind FROM metrics WHERE run_id = ?"
        params: tuple[str, ...] = (run_id,)
        if name is not None:
            sql += " AND name = ?"
            params = (run_id, name)
        result: dict[str, tuple[str, list[Any]]] = {}
        with self._reader() as conn:
            metrics = conn.execute(sql + " ORDER BY id", params).fetchall()
            for metric_id, metric_name, kind in metrics:
                rows = conn.execute(
                    "SELECT type, value FROM points WHERE metric_id = ? ORDER BY rowid",
                    (metric_id,),
                ).fetchall()
                values = [v if t <= T_INT or t == T_STR else decode(t, v) for t, v in rows]
                result[metric_name] = (kind, values)
        return result

    def metric_points(self, run_id: str, name: str) -> list[Point]:
        """Return one metric's points in logged order."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT p.step, p.time, p.type, p.value FROM points p "
                "JOIN metrics m ON m.id = p.metric_id WHERE m.run_id = ? AND m.name = ? "
                "ORDER BY p.rowid",
                (run_id, name),
            ).fetchall()
        return [Point(step, t, decode(code, value)) for step, t, code, value in rows]

    def get_tags(self, run_id: str) -> dict[str, str | None]:
        """Return a run's tags."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", (run_id,)
            ).fetchall()
        return dict(rows)

    def get_properties(self, run_id: str) -> dict[str, str]:
        """Return a run's properties."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT key, value FROM properties WHERE run_id = ? ORDER BY key", (run_id,)
            ).fetchall()
        return dict(rows)

    def list_files(self, run_id: str) -> list[FileInfo]:
        """Return a run's files, sorted by name."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT name, size, time FROM files WHERE run_id = ? ORDER BY name", (run_id,)
            ).fetchall()
        return [FileInfo(*row) for row in rows]

    def get_logs(
        self,
        run_id: str,
        *,
        level: int | None = None,
        logger: str | None = None,
        contains: str | None = None,
        after: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, dict[str, Any]]]:
        """Return (sequence number, record) pairs of a run's log, oldest first.

        A record whose stored JSON cannot be read comes back rebuilt from its time, level,
        logger and message, with ``record_error`` saying what was wrong.
        """
        sql = (
            "SELECT id, record, time, level, logger, message FROM logs WHERE run_id = ? AND id > ?"
        )
        params: list[Any] = [run_id, after]
        if level is not None:
            sql += " AND level >= ?"
            params.append(level)
        if logger is not None:
            escaped = logger.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            sql += " AND (logger = ? OR logger LIKE ? ESCAPE '\\')"
            params.extend((logger, escaped + ".%"))
        if contains is not None:
            sql += " AND instr(message, ?) > 0"
            params.append(contains)
        sql += " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._reader() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [(row[0], _log_record(*row[1:])) for row in rows]

    def get_drops(self, run_id: str) -> dict[str, int]:
        """Return reason -> count of events accepted for a run but not recorded."""
        with self._reader() as conn:
            rows = conn.execute(
                "SELECT reason, count FROM drops WHERE run_id = ? ORDER BY reason", (run_id,)
            ).fetchall()
        return dict(rows)

    def metric_series(
        self,
        run_id: str,
        name: str,
        *,
        x: str = "auto",
        lo: float | None = None,
        hi: float | None = None,
        buckets: int | None = None,
    ) -> Series | None:
        """Return a metric's numeric points for a chart, or None if the run has no such metric.

        Args:
            run_id: the run.
            name: the metric.
            x: ``step``, ``time``, ``index``, or ``auto`` (step if every drawable point has
                one, else index).
            lo: the lowest x to return.
            hi: the highest x to return.
            buckets: when more than twice this many points are drawable, cut the x range into
                this many equal buckets and keep each one's lowest and highest value, so a
                million points come back as a few thousand with the shape of the line.

        NaN, infinities, strings and points with no x are counted but not returned.
        """
        if x not in _SERIES_X and x != "auto":
            raise ValueError(f"x must be one of auto, {', '.join(_SERIES_X)}; not {x!r}")
        with self._reader() as conn:
            row = conn.execute(
                "SELECT id FROM metrics WHERE run_id = ? AND name = ?", (run_id, name)
            ).fetchone()
            if row is None:
                return None
            metric_id = row[0]
            count, first, last = conn.execute(_EXTENT, {"m": metric_id}).fetchone()
            if not count:
                return Series("index" if x == "auto" else x, [], 0, 0, False, None)
            whole = _Span(metric_id, first, last, 0, count - 1)
            finite, stepped, step0, step1 = _span_stats(conn, whole)
            if x == "auto":
                x = "step" if finite and stepped == finite else "index"
            ranged = lo is not None or hi is not None
            if x == "time" or (x == "step" and ranged):
                return _grouped_series(conn, metric_id, count, x=x, lo=lo, hi=hi, buckets=buckets)
            if x == "step":
                span, drawable = whole, stepped
                x_range = None if not drawable else (step0, step1)
            else:
                found = _position_span(conn, whole, lo, hi)
                if found is None:
                    return Series(x, [], count, 0, False, None)
                span = found
                drawable = _span_stats(conn, span)[0] if ranged else finite
                x_range = None if not drawable else (span.start, span.end)
            if buckets is None or drawable <= 2 * buckets or x_range is None:
                points = _span_points(conn, span, x)
                return Series(x, points, count, drawable, False, x_range)
            points = _span_extremes(conn, span, x, buckets)
        return Series(x, points, count, drawable, True, x_range)


_IDS_PER_QUERY: Final = 500
"""Run ids bound in one ``IN (...)``: well below SQLite's oldest limit of 999 variables."""
_LAST_POINT: Final = "FROM points p WHERE p.metric_id = m.id ORDER BY p.rowid DESC LIMIT 1"
# Only floats, ints and bools are stored as SQL numbers (NaN as NULL, the rest as text), and
# SQL orders NULL below and text above every number: the value alone tells a drawable point.
_FINITE: Final = "(p.value BETWEEN -1.7976931348623157e308 AND 1.7976931348623157e308)"
_SERIES_X: Final = ("step", "time", "index")
_SERIES_SOURCE: Final = {
    column: f"SELECT p.{column} AS x, p.value AS v, p.rowid AS r FROM points p "  # noqa: S608
    f"WHERE p.metric_id = ? AND {_FINITE} AND p.{column} >= ? AND p.{column} <= ?"
    for column in ("step", "time")
}
_RUN_SELECT: Final = (
    "SELECT id, experiment, name, parent_id, status, start_time, end_time, host, pid, "
    "pid_start, heartbeat, environment, error FROM runs"
)


@dataclass(frozen=True, slots=True)
class _Span:
    """A run of one metric's points: rowids ``first``..``last``, positions ``start``..``end``."""

    metric_id: int
    first: int
    last: int
    start: int
    end: int

    def scan(self) -> str:
        """Return how to read the span's rows: the table itself when they fill most of it.

        Reading the table's rowid range whole beats a lookup per point through
        ``points_by_metric`` unless other metrics' points far outnumber this one's.
        """
        dense = 4 * (self.end - self.start + 1) >= self.last - self.first + 1
        return "NOT INDEXED" if dense else ""


_EXTENT: Final = (
    "SELECT (SELECT count(*) FROM points WHERE metric_id = :m), "
    "(SELECT min(rowid) FROM points WHERE metric_id = :m), "
    "(SELECT max(rowid) FROM points WHERE metric_id = :m)"
)


def _span_stats(conn: sqlite3.Connection, span: _Span) -> tuple[int, int, Any, Any]:
    """Return (drawable points, those with a step, lowest and highest step among them)."""
    row = conn.execute(
        "SELECT count(*), count(p.step), min(p.step), max(p.step) "  # noqa: S608
        f"FROM points p {span.scan()} WHERE p.rowid BETWEEN ? AND ? AND p.metric_id = ? "
        f"AND {_FINITE}",
        (span.first, span.last, span.metric_id),
    ).fetchone()
    return row[0], row[1], row[2], row[3]


def _position_span(
    conn: sqlite3.Connection, whole: _Span, lo: float | None, hi: float | None
) -> _Span | None:
    """Return the points at positions ``lo``..``hi`` of a metric, or None if there are none."""
    start = 0 if lo is None else max(0, math.ceil(lo))
    end = whole.end if hi is None else min(whole.end, math.floor(hi))
    if start > end:
        return None
    return _Span(
        whole.metric_id, _rowid_at(conn, whole, start), _rowid_at(conn, whole, end), start, end
    )


def _rowid_at(conn: sqlite3.Connection, whole: _Span, position: int) -> int:
    # Counted through points_by_metric alone, from the nearer end.
    if position <= whole.end - position:
        order, offset = "ASC", position
    else:
        order, offset = "DESC", whole.end - position
    row = conn.execute(
        f"SELECT rowid FROM points WHERE metric_id = ? ORDER BY rowid {order} LIMIT 1 OFFSET ?",  # noqa: S608
        (whole.metric_id, offset),
    ).fetchone()
    return int(row[0])


def _span_points(conn: sqlite3.Connection, span: _Span, x: str) -> list[tuple[float, float]]:
    """Return every drawable (x, value) of a span, sorted by x (few: no bucketing needed)."""
    if x == "step":
        rows = conn.execute(
            f"SELECT p.step, p.value FROM points p {span.scan()} "  # noqa: S608
            f"WHERE p.rowid BETWEEN ? AND ? AND p.metric_id = ? AND p.step IS NOT NULL "
            f"AND {_FINITE} ORDER BY p.step, p.rowid",
            (span.first, span.last, span.metric_id),
        ).fetchall()
        return [(step, value) for step, value in rows]
    rows = conn.execute(
        f"SELECT {_FINITE}, p.value FROM points p {span.scan()} "  # noqa: S608
        "WHERE p.rowid BETWEEN ? AND ? AND p.metric_id = ? ORDER BY p.rowid",
        (span.first, span.last, span.metric_id),
    ).fetchall()
    return [(span.start + i, value) for i, (ok, value) in enumerate(rows) if ok]


def _span_extremes(
    conn: sqlite3.Connection, span: _Span, x: str, buckets: int
) -> list[tuple[float, float]]:
    """Return the lowest and highest value of each of ``buckets`` rowid ranges of a span.

    One statement: each bucket's two extremes are found through the bare-column rule of
    ``min()`` and ``max()`` over its rowid range (no GROUP BY, so no sort of every point), then
    read with their step, or placed at their position: the points before the bucket plus those
    before the extreme in it, both counted through ``points_by_metric`` alone. Buckets are
    equal rowid ranges, equal ranges of x as long as metrics are logged at a steady pace.
    """
    size = span.last - span.first + 1
    count_in = "(SELECT count(*) FROM points WHERE metric_id = :m AND rowid >= {} AND rowid < {})"
    index = x == "index"
    extreme = (
        "(SELECT r FROM (SELECT p.rowid AS r, {agg}(p.value) FROM points p {scan} "
        "WHERE p.rowid >= lo AND p.rowid < hi AND p.metric_id = :m AND {f}{stepped}))"
    )
    parts = {
        "scan": span.scan(),
        "f": _FINITE,
        "stepped": "" if index else " AND p.step IS NOT NULL",
    }
    sql = (
        "WITH RECURSIVE b(i, lo, hi) AS (SELECT 0, :first, :first + :size / :buckets "  # noqa: S608
        "UNION ALL SELECT i + 1, hi, :first + (i + 2) * :size / :buckets FROM b "
        "WHERE i + 1 < :buckets), "
        f"e AS MATERIALIZED (SELECT i, lo, {count_in.format('lo', 'hi') if index else 0} AS n, "
        f"{extreme.format(agg='min', **parts)} AS low, "
        f"{extreme.format(agg='max', **parts)} AS high FROM b) "
        f"SELECT e.i, e.n, p.rowid, p.step, p.value, "
        f"{count_in.format('e.lo', 'p.rowid') if index else 0} "
        "FROM e LEFT JOIN points p ON p.rowid IN (e.low, e.high) ORDER BY e.i"
    )
    params = {
        "m": span.metric_id,
        "first": span.first,
        "size": size,
        "buckets": max(1, min(buckets, size)),
    }
    rows = conn.execute(sql, params).fetchall()
    points: dict[int, tuple[float, float]] = {}
    start = span.start
    bucket = -1
    before = 0
    for i, n, rowid, step, value, offset in rows:
        if i != bucket:
            start, bucket, before = start + before, i, n
        if rowid is not None:
            points[rowid] = (start + offset if index else step, value)
    return [point for _, point in sorted(points.items(), key=_by_x_then_rowid)]


def _by_x_then_rowid(item: tuple[int, tuple[float, float]]) -> tuple[float, int]:
    return item[1][0], item[0]


def _grouped_series(
    conn: sqlite3.Connection,
    metric_id: int,
    count: int,
    *,
    x: str,
    lo: float | None,
    hi: float | None,
    buckets: int | None,
) -> Series:
    """Return a series over time, or a range of steps, bucketed by SQL's GROUP BY.

    It reads every point of the metric, sorting them in the grouping: the slower way, kept for
    the x axes the rowid-bucket path (`_span_extremes`) cannot serve.
    """
    source = _SERIES_SOURCE[x]
    params = (metric_id, -math.inf if lo is None else lo, math.inf if hi is None else hi)
    drawable, x0, x1 = conn.execute(
        f"SELECT count(*), min(x), max(x) FROM ({source})",  # noqa: S608
        params,
    ).fetchone()
    x_range = None if x0 is None else (x0, x1)
    if buckets is None or drawable <= 2 * buckets or x_range is None:
        rows = conn.execute(f"{source} ORDER BY x, r", params).fetchall()
        points = [(px, pv) for px, pv, _ in rows]
        return Series(x, points, count, drawable, False, x_range)
    # SQLite gives a bare column the value of the row holding the min() or max().
    bucket = "min(CAST((x - ?) * ? / ? AS INTEGER), ?)"
    span = (x1 - x0) or 1
    rows = conn.execute(
        f"SELECT {bucket} AS b, x, min(v), r FROM ({source}) GROUP BY b "  # noqa: S608
        f"UNION ALL SELECT {bucket} AS b, x, max(v), r FROM ({source}) GROUP BY b",
        (x0, buckets, span, buckets - 1, *params) * 2,
    ).fetchall()
    pairs = sorted({(b, px, r): pv for b, px, pv, r in rows}.items())
    return Series(x, [(px, pv) for (_, px, _), pv in pairs], count, drawable, True, x_range)


def _run_info(row: Sequence[Any]) -> RunInfo:
    (
        run_id,
        experiment,
        name,
        parent_id,
        status,
        start,
        end,
        host,
        pid,
        pid_start,
        beat,
        env,
        err,
    ) = row
    info = RunInfo(
        id=run_id,
        experiment=experiment,
        name=name,
        parent_id=parent_id,
        status=status,
        start_time=start,
        end_time=end,
        host=host,
        pid=pid,
        heartbeat=beat,
        environment=json.loads(env),
        error=None if err is None else json.loads(err),
    )
    if status == "Running" and not _liveness.writer_alive(host, pid, pid_start, beat):
        info = replace(
            info,
            status="Failed",
            error={
                "type": "ProcessDied",
                "message": (
                    f"the run's process (pid {pid} on {host}) ended without finishing the run; "
                    "it was killed or exited abruptly"
                ),
            },
        )
    return info


def _log_record(record: str, when: float, level: int, logger: str, message: str) -> dict[str, Any]:
    """Return a stored log record, or one rebuilt from its columns if its JSON is unreadable.

    A damaged row must not take the rest of the log down with it; the rebuilt record says
    why under ``record_error``.
    """
    try:
        parsed = json.loads(record)
    except (ValueError, TypeError) as err:
        reason = f"the stored record is not valid JSON ({err})"
    else:
        if type(parsed) is dict:
            return parsed
        reason = f"the stored record is a JSON {type(parsed).__name__}, not an object"
    return {
        "time": when,
        "level": logging.getLevelName(level),
        "levelno": level,
        "logger": logger,
        "message": message,
        "record_error": reason,
    }


_WRITER_AUTOCHECKPOINT: Final = 16_384
"""WAL pages (64 MiB) past which the writer's own commits checkpoint: a safety net, should the
recorder's checkpoint thread (`SQLiteStore.checkpoint`) fall behind or not run."""


_WRITER_CACHE_KIB: Final = 16_384
"""The writer connection's page cache (SQLite's default is 2 MiB). A batch of 20,000 records
touches about 10 MiB of pages: with the default cache, SQLite spills dirty pages to the
write-ahead log in mid-transaction and writes the busiest ones (the tables' and indexes' last
pages) again and again. 16 MiB took 12-16% off the writer's CPU per record
(benchmarks/README.md); the cache grows only as pages are used."""


def _open_writer(folder: Path) -> sqlite3.Connection:
    conn = _sqlite.connect(folder)
    conn.execute(f"PRAGMA wal_autocheckpoint = {_WRITER_AUTOCHECKPOINT}")
    conn.execute(f"PRAGMA cache_size = -{_WRITER_CACHE_KIB}")
    return conn


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=True, ensure_ascii=False, default=repr)


_POINTS_PER_INSERT: Final = 100
_INSERT_POINT: Final = (
    "INSERT INTO points (metric_id, step, time, type, value) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_POINTS: Final = _INSERT_POINT + ", (?, ?, ?, ?, ?)" * (_POINTS_PER_INSERT - 1)


def _insert_points(conn: sqlite3.Connection, points: dict[int, list[Any]]) -> None:
    """Insert points, metric by metric, a hundred rows to a statement.

    ``executemany`` steps (and releases the GIL) once per row; one statement of many rows
    costs less than half as much per row. Writing a batch metric by metric (each in its logged
    order) puts neighbouring entries of ``points_by_metric`` together. Both measured with
    benchmarks/bench_run_log.py. ``points``: metric id -> its rows' values, flat.
    """
    flat: list[Any] = []
    for rows in points.values():
        flat += rows
    width = 5 * _POINTS_PER_INSERT
    whole = len(flat) - len(flat) % width
    for start in range(0, whole, width):
        conn.execute(_INSERT_POINTS, flat[start : start + width])
    conn.executemany(_INSERT_POINT, [flat[i : i + 5] for i in range(whole, len(flat), 5)])


_LOGS_PER_INSERT: Final = 100
_INSERT_LOG: Final = (
    "INSERT INTO logs (run_id, time, level, logger, message, process, record) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_LOGS: Final = _INSERT_LOG + ", (?, ?, ?, ?, ?, ?, ?)" * (_LOGS_PER_INSERT - 1)


def _insert_logs(conn: sqlite3.Connection, logs: list[ev.LogRecorded]) -> None:
    """Insert log records in their order, a hundred rows to a statement (as `_insert_points`).

    One step per row releases and retakes the GIL per row, a cost that grows when the logging
    thread is busy: measured with benchmarks/bench_handler.py.
    """
    whole = len(logs) - len(logs) % _LOGS_PER_INSERT
    flat = list(itertools.chain.from_iterable(itertools.islice(logs, whole)))
    width = 7 * _LOGS_PER_INSERT
    for start in range(0, len(flat), width):
        conn.execute(_INSERT_LOGS, flat[start : start + width])
    conn.executemany(_INSERT_LOG, logs[whole:])


def _add_drops(conn: sqlite3.Connection, run_id: str, reason: str, count: int) -> None:
    conn.execute(
        "INSERT INTO drops (run_id, reason, count) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id, reason) DO UPDATE SET count = count + excluded.count",
        (run_id, reason, count),
    )


def _remove_tree(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
