"""Opening the store's SQLite database: the one place that sets pragmas and migrates the schema."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Concatenate, Final, ParamSpec, Protocol, TypeVar

from logbridge import _report
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


_V1_TABLES: Final = frozenset(
    {"runs", "tags", "properties", "metrics", "points", "files", "logs", "drops"}
)
"""Tables every logbridge store has had since version 1 (to tell a foreign database apart)."""

# SQLite's primary result codes (``sqlite3`` exposes them only from Python 3.11).
_SQLITE_PERM: Final = 3
_SQLITE_BUSY: Final = 5
_SQLITE_LOCKED: Final = 6
_SQLITE_READONLY: Final = 8
_SQLITE_IOERR: Final = 10
_SQLITE_CORRUPT: Final = 11
_SQLITE_FULL: Final = 13
_SQLITE_CANTOPEN: Final = 14
_SQLITE_NOTADB: Final = 26


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    # executescript() would commit the open transaction first; run statement by statement.
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_to_v1(conn: sqlite3.Connection) -> None:
    _run_script(conn, _V1)


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (_migrate_to_v1,)
"""One function per schema version: ``MIGRATIONS[n]`` takes a store from version n to n + 1."""


def schema_version() -> int:
    """Return the schema version this logbridge writes: one per step of `MIGRATIONS`."""
    return len(MIGRATIONS)


def database_path(folder: Path) -> Path:
    """Return the path of the database file in a store folder."""
    return folder / DATABASE_NAME


def connect(folder: Path, *, create: bool = True) -> sqlite3.Connection:
    """Open the store in ``folder``, creating or migrating it, and return a connection.

    The connection is in autocommit mode (callers open ``BEGIN IMMEDIATE`` themselves), uses
    WAL with ``synchronous=NORMAL`` and a busy timeout, and may be used from any thread of the
    process that opened it (never across ``fork``).

    Without ``create`` the connection is for reading, and a store that cannot be written (a
    read-only folder or file system) is opened read-only. If no ``-wal`` file is left beside
    it, such a store is read as immutable: a writer with more rights appearing meanwhile is
    not seen.

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
    read_only = not create and not _writable(path)
    try:
        conn = _open(path, read_only=read_only)
    except sqlite3.Error as err:
        raise store_error(err, path) from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if not read_only:
            conn.execute("PRAGMA synchronous = NORMAL")
        _upgrade(conn, path, read_only=read_only)
        _check_tables(conn, path)
    except StoreError:
        conn.close()
        raise
    except sqlite3.Error as err:
        conn.close()
        raise store_error(err, path) from None
    return conn


def store_error(err: sqlite3.Error, path: Path) -> StoreError:
    """Return the `StoreError` that tells a user what an SQLite error on ``path`` means.

    Damage (``SQLITE_CORRUPT``, ``SQLITE_NOTADB``) gives a `StoreCorruptError`.
    """
    code = getattr(err, "sqlite_errorcode", -1) & 0xFF
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return StoreCorruptError(
            f"the store {path} is damaged or not a logbridge store ({err}); "
            f"move the folder {path.parent} aside to start a new store"
        )
    if code == _SQLITE_FULL:
        return StoreError(f"the disk holding the store {path} is full ({err})")
    if code in (_SQLITE_READONLY, _SQLITE_CANTOPEN, _SQLITE_PERM):
        return StoreError(
            f"cannot open the store {path} for writing ({err}); make its folder writable, "
            "or pass store=... or set LOGBRIDGE_HOME to a writable folder"
        )
    if code in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return StoreError(
            f"the store {path} stayed locked by another process for "
            f"{BUSY_TIMEOUT_MS // 1000} s ({err})"
        )
    if code == _SQLITE_IOERR:
        return StoreError(f"cannot read or write the store {path}: input/output error ({err})")
    return StoreError(f"cannot use the store {path} ({err})")


@contextlib.contextmanager
def store_errors(folder: Path) -> Iterator[None]:
    """Turn the SQLite errors raised inside the block into `StoreError` (see `store_error`).

    Errors that mean a bug rather than a store problem (``ProgrammingError``,
    ``IntegrityError``, ...) pass through unchanged.
    """
    try:
        yield
    except sqlite3.DatabaseError as err:
        if type(err) not in (sqlite3.OperationalError, sqlite3.DatabaseError):
            raise
        raise store_error(err, database_path(folder)) from None


class _HasFolder(Protocol):
    folder: Path


_S = TypeVar("_S", bound=_HasFolder)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def translated(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Decorate a store method so its SQLite errors come out as `StoreError` (`store_errors`)."""

    @functools.wraps(method)
    def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with store_errors(self.folder):
            return method(self, *args, **kwargs)

    return wrapper


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def _open(path: Path, *, read_only: bool) -> sqlite3.Connection:
    timeout = BUSY_TIMEOUT_MS / 1000
    if not read_only:
        return sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    wal = Path(f"{path}-wal")
    pending = wal.exists() and wal.stat().st_size > 0
    if pending and not Path(f"{path}-shm").exists():
        raise StoreError(
            f"the store {path} is read-only and {wal.name} beside it holds changes not yet "
            "folded into it; open the store once where it can be written, or copy its folder "
            "somewhere writable"
        )
    # Without a -wal file the database file is complete; with one (and its -shm), SQLite
    # reads both read-only.
    uri = f"{path.as_uri()}?mode=ro" + ("" if pending else "&immutable=1")
    return sqlite3.connect(
        uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False
    )


_checked_files: set[tuple[int, int]] = set()
"""(device, inode) of the database files whose header this process has checked."""


def _check_header(path: Path) -> None:
    # Closing any descriptor of a database file drops every POSIX lock this process holds on
    # it, its SQLite connections' included; another process then takes itself for the last
    # connection, checkpoints and deletes the WAL under this one: a corrupt store. So the file
    # is opened here only before this process has a connection to it (once per file).
    try:
        stat = path.stat()
        if (stat.st_dev, stat.st_ino) in _checked_files:
            return
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
    except OSError as err:
        raise StoreError(f"cannot read the store {path}: {err.strerror}") from None
    if header == _HEADER:
        _checked_files.add((stat.st_dev, stat.st_ino))
    else:
        what = "is empty" if not header else "is not an SQLite database"
        raise StoreCorruptError(
            f"the store {path} {what}; move the folder {path.parent} aside to start a new "
            "store, or point LOGBRIDGE_HOME elsewhere"
        )


def _check_tables(conn: sqlite3.Connection, path: Path) -> None:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    missing = _V1_TABLES - {row[0] for row in rows}
    if missing:
        raise StoreCorruptError(
            f"{path} is an SQLite database but not a logbridge store (it has no "
            f"{', '.join(sorted(missing))} table); point LOGBRIDGE_HOME elsewhere"
        )


def _create(folder: Path) -> None:
    """Build a new store beside its final name and link it into place.

    No reader or racing creator ever sees a half-made database.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise StoreError(
            f"cannot create the store folder {folder}: {err.strerror}; "
            "pass store=... or set LOGBRIDGE_HOME to a writable folder"
        ) from None
    tmp = folder / f".{DATABASE_NAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        _build(tmp)
        with _folder_lock(folder):
            path = database_path(folder)
            if not path.exists():
                _set_aside_orphans(path)
                with contextlib.suppress(FileExistsError):
                    os.link(tmp, path)
    except (OSError, sqlite3.Error) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise StoreError(
            f"cannot create the store in {folder}: {reason}; "
            "pass store=... or set LOGBRIDGE_HOME to a writable folder"
        ) from None
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                Path(f"{tmp}{suffix}").unlink()


def _build(tmp: Path) -> None:
    # The schema is written with a rollback journal, so it is in the file itself when the
    # transaction commits; only then is the file switched to WAL. A checkpoint that fails at
    # close (a full disk) can then never leave an empty file to be linked into place.
    conn = sqlite3.connect(tmp, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        for step in MIGRATIONS:
            step(conn)
        conn.execute(f"PRAGMA user_version = {schema_version()}")
        conn.execute("COMMIT")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"the file system does not allow WAL ({mode})")
    finally:
        conn.close()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _set_aside_orphans(path: Path) -> None:
    """Move away a ``-wal`` and ``-shm`` whose database file was moved or deleted.

    SQLite would replay such a log into the new database: old rows would reappear in it, or
    it would be damaged. Called under the folder lock, before the new file is linked in.
    """
    wal = Path(f"{path}-wal")
    with contextlib.suppress(FileNotFoundError):
        Path(f"{path}-shm").unlink()
    if not wal.exists():
        return
    if wal.stat().st_size == 0:
        wal.unlink()
        return
    kept = wal.with_name(f"{wal.name}.orphaned-{time.strftime('%Y%m%d-%H%M%S')}")
    wal.rename(kept)
    _report.always(
        f"found {wal} without its database (moved or deleted); kept it as {kept.name} "
        "and started a new store"
    )


def _upgrade(conn: sqlite3.Connection, path: Path, *, read_only: bool = False) -> None:
    target = schema_version()
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == target:
        return
    if version == 0 and conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # Truncated to nothing since this process checked its header: SQLite sees a new,
        # empty database, which logbridge never links into place.
        raise StoreCorruptError(
            f"the store {path} is empty; move the folder {path.parent} aside to start a new "
            "store, or point LOGBRIDGE_HOME elsewhere"
        )
    if version == 0:
        # Every store logbridge creates has a version: this is some other database.
        raise StoreCorruptError(
            f"{path} is an SQLite database but not a logbridge store; "
            "point LOGBRIDGE_HOME elsewhere"
        )
    if version > target:
        raise StoreError(
            f"the store {path} has schema version {version}, newer than this logbridge "
            f"understands ({target}); upgrade logbridge"
        )
    if read_only:
        raise StoreError(
            f"the store {path} has schema version {version} and needs an upgrade to {target}, "
            "but it is read-only; open it once where it can be written"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        for step in MIGRATIONS[version:]:
            step(conn)
        conn.execute(f"PRAGMA user_version = {max(version, target)}")
        conn.execute("COMMIT")
    except BaseException:
        # A failed statement may have rolled the transaction back already.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
