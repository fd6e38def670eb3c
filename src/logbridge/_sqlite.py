"""Opening the store's SQLite database: the one place that sets pragmas and migrates the schema."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable
from pathlib import Path

from logbridge._errors import StoreCorruptError, StoreError

DATABASE_NAME = "store.db"
BUSY_TIMEOUT_MS = 30_000
_HEADER = b"SQLite format 3\x00"

_V1 = """
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment TEXT NOT NULL,
    name TEXT NOT NULL,
    parent_id TEXT,
    status TEXT NOT NULL,
    start_time REAL NOT NULL,
    end_time REAL,
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    pid_start TEXT,
    heartbeat REAL NOT NULL,
    environment TEXT NOT NULL,
    error TEXT
);
CREATE INDEX runs_by_experiment ON runs (experiment, start_time);
CREATE INDEX runs_by_parent ON runs (parent_id);
CREATE TABLE tags (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE properties (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) WITHOUT ROWID;
CREATE TABLE metrics (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    description TEXT NOT NULL,
    UNIQUE (run_id, name)
);
CREATE TABLE points (
    metric_id INTEGER NOT NULL,
    step INTEGER,
    time REAL NOT NULL,
    type INTEGER NOT NULL,
    value
);
CREATE INDEX points_by_metric ON points (metric_id);
CREATE TABLE files (
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    time REAL NOT NULL,
    PRIMARY KEY (run_id, name)
) WITHOUT ROWID;
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    time REAL NOT NULL,
    level INTEGER NOT NULL,
    logger TEXT NOT NULL,
    message TEXT NOT NULL,
    process INTEGER NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX logs_by_run ON logs (run_id, id);
CREATE TABLE drops (
    run_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (run_id, reason)
) WITHOUT ROWID;
"""


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the open transaction first; run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_v1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V1)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_to_v1,)
"""One function per schema version: ``MIGRATIONS[n]`` takes a store from version n to n + 1."""
SCHEMA_VERSION = len(MIGRATIONS)


def database_path(folder: Path) -> Path:
    """Return the path of the database file in a store folder."""
    return folder / DATABASE_NAME


def connect(folder: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the store in ``folder``, creating or migrating it, and return a connection.

    The connection is in autocommit mode (callers open ``BEGIN IMMEDIATE`` themselves), uses
    WAL with ``synchronous=NORMAL`` and a busy timeout, and may be used from any thread of the
    process that opened it (never across ``fork``).

    Raises:
        StoreError: the folder cannot be created or written, or the store is newer than this
            version of logbridge.
        StoreCorruptError: the database file is not a readable logbridge store.
    """
    path = database_path(folder)
    if not path.exists():
        if not create:
            raise StoreError(f"no logbridge store at {folder} (no {DATABASE_NAME} there)")
        _create(folder)
    _check_header(path)
    try:
        conn = sqlite3.connect(
            path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
        )
    except sqlite3.Error as err:
        raise StoreError(f"cannot open the store {path}: {err}") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = NORMAL")
        _upgrade(conn, path)
    except StoreError:
        conn.close()
        raise
    except sqlite3.DatabaseError as err:
        conn.close()
        if isinstance(err, sqlite3.OperationalError) and "locked" not in str(err):
            raise StoreError(f"cannot use the store {path}: {err}") from None
        raise StoreCorruptError(
            f"the store {path} is damaged or not a logbridge store ({err}); "
            "move it aside to start a new store"
        ) from None
    return conn


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
    except OSError as err:
        raise StoreError(f"cannot read the store {path}: {err.strerror}") from None
    if header != _HEADER:
        what = "is empty" if not header else "is not an SQLite database"
        raise StoreCorruptError(
            f"the store {path} {what}; move it aside to start a new store, "
            "or point LOGBRIDGE_HOME elsewhere"
        )


def _create(folder: Path) -> None:
    """Build a new store beside its final name and link it into place.

    No reader or racing creator ever sees a half-made database.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{DATABASE_NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
        conn = sqlite3.connect(tmp, isolation_level=None)
    except (OSError, sqlite3.Error) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise StoreError(
            f"cannot create the store folder {folder}: {reason}; "
            "pass store=... or set LOGBRIDGE_HOME to a writable folder"
        ) from None
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("BEGIN IMMEDIATE")
        for step in MIGRATIONS:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
        conn.close()
        with contextlib.suppress(FileExistsError):
            os.link(tmp, database_path(folder))
    except (OSError, sqlite3.Error) as err:
        conn.close()
        reason = getattr(err, "strerror", None) or str(err)
        raise StoreError(f"cannot create the store in {folder}: {reason}") from None
    finally:
        for leftover in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


def _upgrade(conn: sqlite3.Connection, path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    if version == 0:
        # Every store logbridge creates has a version: this is some other database.
        raise StoreCorruptError(f"{path} is an SQLite database but not a logbridge store")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this logbridge "
            f"understands ({SCHEMA_VERSION}); upgrade logbridge"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
