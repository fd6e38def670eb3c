"""Storage faults, through the real SQLite store: every one a clear error or a recovery.

A store that is damaged, foreign, newer, unreachable or read-only gives a `StoreError` (a
`StoreCorruptError` when the file is not a readable logbridge store) naming the file; it is
never replaced by a silent fresh database and never surfaces as a raw ``sqlite3`` error.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import logbridge
from logbridge import _recorder, _sqlite, _state

KILLED_WRITER = """
import os, signal, sys
os.environ["LOGBRIDGE_WRITER_PROCESS_AFTER"] = "never"  # a writer process would outlive it
import logbridge
run = logbridge.start_run(experiment="killed", store=sys.argv[1])
for i in range(200):
    run.log("m", i, step=i)
run.flush()
print(run.id, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""
"""A writer that flushes 200 points and is SIGKILLed, leaving its -wal and -shm behind."""


def _filled_store(folder: Path) -> str:
    """Write a completed run with 500 points and a long string into ``folder``; return its id."""
    run = logbridge.start_run(experiment="faults", store=folder)
    for i in range(500):
        run.log("loss", i / 4, step=i)
    run.log("note", "n" * 5000)
    run.complete()
    _state.reset()
    return run.id


def _killed_writer(folder: Path) -> str:
    """Run `KILLED_WRITER` against ``folder``; return the id of its run."""
    child = subprocess.run(
        [sys.executable, "-c", KILLED_WRITER, str(folder)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    return child.stdout.strip()


def _user_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _tables(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    finally:
        conn.close()
    return {row[0] for row in rows}


def _garbage(size: int) -> bytes:
    return random.Random(34).randbytes(size)


DAMAGE: dict[str, Callable[[bytes], bytes]] = {
    "zero bytes": lambda data: b"",
    "truncated to 50 bytes": lambda data: data[:50],
    "truncated to half": lambda data: data[: len(data) // 2],
    "garbage": lambda data: _garbage(len(data)),
    "garbage after the header": lambda data: data[:100] + _garbage(len(data) - 100),
    "garbage after page two": lambda data: data[:8192] + _garbage(len(data) - 8192),
    "a text file": lambda data: b"name,value\nloss,0.5\n" * 100,
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_store_file_is_a_clear_error_and_stays_as_it_is(store: Path, damage: str) -> None:
    """Zero bytes, truncation, garbage or another format: StoreCorruptError naming the file.

    Reading the old run and starting a new one both fail the same way, and the damaged file
    is left byte for byte as it was: no fresh database silently takes its place.
    """
    run_id = _filled_store(store)
    db = store / "store.db"
    assert not Path(f"{db}-wal").exists()
    damaged = DAMAGE[damage](db.read_bytes())
    db.write_bytes(damaged)
    with pytest.raises(logbridge.StoreCorruptError, match=re.escape(str(db))) as read:
        logbridge.get_run(run_id).get_metrics()
    with pytest.raises(logbridge.StoreCorruptError, match=re.escape(str(db))) as write:
        logbridge.start_run(experiment="after")
    for err in (read.value, write.value):
        assert isinstance(err, OSError)
        assert "aside" in str(err)
        assert not isinstance(err, sqlite3.Error)
    assert db.read_bytes() == damaged
    assert _state.current_run() is None


def test_an_empty_store_file_says_it_is_empty(store: Path) -> None:
    """A zero-byte store.db is named as empty (SQLite would take it for a new database)."""
    store.mkdir(parents=True)
    (store / "store.db").write_bytes(b"")
    with pytest.raises(logbridge.StoreCorruptError) as err:
        logbridge.start_run()
    assert str(err.value) == (
        f"the store {store / 'store.db'} is empty; move the folder {store} aside to start a "
        "new store, or point LOGBRIDGE_HOME elsewhere"
    )


@pytest.mark.parametrize("user_version", [0, 1])
def test_a_foreign_sqlite_database_is_refused_and_left_alone(
    store: Path, user_version: int
) -> None:
    """Another program's SQLite file (unversioned, or with our version number) is not ours.

    It is refused as not a logbridge store, and logbridge adds no table to it.
    """
    store.mkdir(parents=True)
    db = store / "store.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE inventory (item TEXT, count INTEGER)")
    conn.execute(f"PRAGMA user_version = {user_version}")
    conn.commit()
    conn.close()
    with pytest.raises(logbridge.StoreCorruptError, match="not a logbridge store"):
        logbridge.start_run()
    with pytest.raises(logbridge.StoreCorruptError, match=re.escape(str(db))):
        logbridge.list_runs()
    assert _tables(db) == {"inventory"}
    assert _user_version(db) == user_version


def test_a_store_from_a_newer_logbridge_is_refused_untouched(store: Path) -> None:
    """A store with a schema version above ours: a StoreError saying to upgrade logbridge."""
    run_id = _filled_store(store)
    db = store / "store.db"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    expected = (
        f"the store {db} has schema version 99, newer than this logbridge understands (1); "
        "upgrade logbridge"
    )
    with pytest.raises(logbridge.StoreError) as read:
        logbridge.get_run(run_id)
    with pytest.raises(logbridge.StoreError) as write:
        logbridge.start_run()
    for err in (read.value, write.value):
        assert str(err) == expected
        assert not isinstance(err, logbridge.StoreCorruptError)
    assert _user_version(db) == 99


def test_a_wal_left_by_a_sigkilled_writer_is_recovered(store: Path) -> None:
    """Everything flushed before a SIGKILL is read back from the -wal it left behind."""
    run_id = _killed_writer(store)
    wal = store / "store.db-wal"
    assert wal.stat().st_size > 0
    run = logbridge.get_run(run_id)
    assert run.get_metrics()["m"] == list(range(200))
    assert run.get_status() == "Failed"
    later = logbridge.start_run(experiment="later")
    later.log("x", 1)
    later.complete()
    assert [r.experiment for r in logbridge.list_runs()] == ["later", "killed"]
    _state.reset()
    conn = sqlite3.connect(store / "store.db")
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_garbage_wal_and_shm_files_do_not_hide_or_damage_the_store(store: Path) -> None:
    """Random bytes in -wal and -shm beside a cleanly closed store are ignored, not replayed."""
    run_id = _filled_store(store)
    db = store / "store.db"
    Path(f"{db}-wal").write_bytes(_garbage(40_000))
    Path(f"{db}-shm").write_bytes(_garbage(32_768))
    run = logbridge.get_run(run_id)
    assert run.get_metrics()["loss"][:3] == [0.0, 0.25, 0.5]
    again = logbridge.start_run(experiment="again")
    again.log("x", 2)
    assert again.get_metrics() == {"x": 2}
    _state.reset()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()


def test_a_wal_whose_database_was_moved_away_is_not_replayed_into_a_new_store(
    store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """store.db moved aside without its -wal: the new store starts empty, the log is kept.

    SQLite would otherwise replay the old log into the new file, bringing old runs back or
    damaging it.
    """
    old_id = _killed_writer(store)
    (store / "store.db").rename(tmp_path / "moved.db")
    run = logbridge.start_run(experiment="fresh")
    assert [r.id for r in logbridge.list_runs()] == [run.id]
    assert old_id != run.id
    kept = sorted(p.name for p in store.glob("store.db-wal.orphaned-*"))
    assert len(kept) == 1
    err = capsys.readouterr().err
    assert err.count("logbridge: ") == 1
    assert f"found {store / 'store.db-wal'} without its database" in err
    assert kept[0] in err


def _plain_file(tmp_path: Path) -> Path:
    plain = tmp_path / "plain-file"
    plain.write_text("not a folder")
    return plain


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        (lambda tmp: _plain_file(tmp) / "store", "Not a directory"),
        (lambda tmp: _plain_file(tmp) / "sub" / "store", "Not a directory"),
        (lambda tmp: Path(f"/proc/logbridge-{uuid.uuid4().hex}") / "store", "No such file"),
        (lambda tmp: Path("/proc/self"), "unable to open database file"),
    ],
    ids=["under-a-file", "deeper-under-a-file", "missing-parent-in-proc", "proc-folder"],
)
def test_a_store_folder_that_cannot_be_written_fails_before_work_starts(
    tmp_path: Path, where: Callable[[Path], Path], reason: str
) -> None:
    """Even for root, a folder under a regular file or in /proc cannot hold a store.

    start_run raises a StoreError naming the folder and the reason; no run becomes current.
    """
    folder = where(tmp_path)
    with pytest.raises(logbridge.StoreError, match=re.escape(str(folder))) as err:
        logbridge.start_run(store=folder)
    assert reason in str(err.value)
    assert "LOGBRIDGE_HOME" in str(err.value)
    assert _state.current_run() is None
    with pytest.raises(logbridge.StoreError, match="no logbridge store"):
        logbridge.get_run("0" * 32, store=folder)


def _counted_step(calls: list[int], version: int) -> Callable[[sqlite3.Connection], None]:
    def step(conn: sqlite3.Connection) -> None:
        calls.append(version)
        conn.execute(f"CREATE TABLE added_in_v{version} (run_id TEXT NOT NULL)")

    return step


def test_a_store_at_an_older_version_is_migrated_once_keeping_its_data(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A version-1 store opened by a logbridge with steps to 3 runs steps 2 and 3, in order.

    The data survives, the version becomes 3, and opening again runs nothing more.
    """
    run_id = _filled_store(store)
    db = store / "store.db"
    assert _user_version(db) == 1
    calls: list[int] = []
    steps = (_counted_step(calls, 2), _counted_step(calls, 3))
    monkeypatch.setattr(_sqlite, "MIGRATIONS", (*_sqlite.MIGRATIONS, *steps))
    run = logbridge.get_run(run_id)
    assert run.get_metrics()["loss"][-1] == 124.75
    assert calls == [2, 3]
    assert _user_version(db) == 3
    assert {"added_in_v2", "added_in_v3"} <= _tables(db)
    run.get_metrics()
    logbridge.start_run().complete()
    assert calls == [2, 3]


def test_a_new_store_gets_every_step_and_the_latest_version(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Creating a store runs every migration once, from version 0."""
    calls: list[int] = []
    monkeypatch.setattr(_sqlite, "MIGRATIONS", (*_sqlite.MIGRATIONS, _counted_step(calls, 2)))
    logbridge.start_run().complete()
    assert calls == [2]
    assert _user_version(store / "store.db") == 2


def test_a_failing_migration_rolls_back_and_names_the_store(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A step that fails halfway leaves the store at its old version with none of its changes."""
    run_id = _filled_store(store)
    db = store / "store.db"

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x)")
        conn.execute("INSERT INTO no_such_table VALUES (1)")

    monkeypatch.setattr(_sqlite, "MIGRATIONS", (*_sqlite.MIGRATIONS, broken))
    with pytest.raises(logbridge.StoreError) as err:
        logbridge.get_run(run_id)
    assert str(err.value) == f"cannot use the store {db} (no such table: no_such_table)"
    assert _user_version(db) == 1
    assert "half_done" not in _tables(db)
    monkeypatch.undo()
    assert logbridge.get_run(run_id).get_metrics()["note"] == "n" * 5000


def test_a_store_locked_during_migration_is_not_called_damaged(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holding the write lock past the busy timeout: a StoreError saying so.

    Not a StoreCorruptError: the advice to move a healthy store aside would be wrong.
    """
    run_id = _filled_store(store)
    monkeypatch.setattr(_sqlite, "MIGRATIONS", (*_sqlite.MIGRATIONS, _counted_step([], 2)))
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 100)
    holder = sqlite3.connect(store / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(logbridge.StoreError, match="database is locked") as err:
            logbridge.get_run(run_id)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not isinstance(err.value, logbridge.StoreCorruptError)
    assert str(store / "store.db") in str(err.value)


def test_disk_full_mid_run_drops_are_counted_and_writing_resumes(
    store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real SQLITE_FULL (max_page_count on the writer connection) while training logs.

    The run.log calls never raise; stderr gets one line saying the disk is full; the 50
    points logged meanwhile are counted as dropped; when space returns the writer says so
    once, records the drop count in the run and stores the new points.
    """
    monkeypatch.setattr(_recorder, "_RETRY_FOR", 0.2)
    monkeypatch.setenv("LOGBRIDGE_WRITER_PROCESS_AFTER", "never")  # the connection patched here
    run = logbridge.start_run(experiment="full")
    run.log("before", 1.0)
    assert run.flush(10)
    recorder = _state.existing_recorder(store)
    assert recorder is not None
    writer = recorder.store._conn
    assert writer is not None
    pages = writer.execute("PRAGMA page_count").fetchone()[0]
    assert writer.execute(f"PRAGMA max_page_count = {pages}").fetchone() == (pages,)
    for step in range(50):
        run.log("during", "x" * 3000, step=step)
    assert run.flush(10)
    assert run.get_details().get("dropped") in (None, {"store_error": 50})
    writer.execute("PRAGMA max_page_count = 1073741823")
    for i in range(3):
        run.log("after", i)
    assert run.flush(10)
    lines = capsys.readouterr().err.splitlines()
    # A drop count alone may fit in a page the file already has, so "works again" may come
    # while the disk is still full; either way it comes once, after the one failure line.
    assert len(lines) == 2
    assert lines[0].startswith(f"logbridge: cannot write to the store {store} (")
    assert "is full (database or disk is full)" in lines[0]
    assert "the training goes on" in lines[0]
    assert lines[1] == f"logbridge: writing to the store {store} works again"
    assert run.get_details()["dropped"] == {"store_error": 50}
    assert run.get_metrics() == {"before": 1.0, "after": [0, 1, 2]}
    run.complete()
    assert run.get_status() == "Completed"


# -- real file systems: a private tmpfs mounted in a new mount namespace ---------------------


def _in_private_tmpfs(tmp_path: Path, script: str, size: str = "1m") -> dict[str, object]:
    """Run ``script`` with a fresh tmpfs of ``size`` mounted for it alone; return its JSON.

    The mount lives in the child's own mount namespace and vanishes with it. Needs root
    (CAP_SYS_ADMIN) and unshare(1); the test is skipped, with the reason shown, otherwise.
    """
    unshare = shutil.which("unshare")
    if os.geteuid() != 0 or unshare is None:
        pytest.skip("needs root and unshare(1) to mount a private tmpfs")
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    code = tmp_path / "script.py"
    code.write_text(script)
    shell = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 97; exec "$3" "$4" "$2"'
    child = subprocess.run(
        [unshare, "--mount", "--propagation", "private", "sh", "-c", shell, "sh", size,
         str(mount_point), sys.executable, str(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip
    if child.returncode == 97 or "unshare failed" in child.stderr:
        pytest.skip(f"cannot mount a private tmpfs here: {child.stderr.strip()}")
    assert child.returncode == 0, child.stderr
    assert "Traceback" not in child.stderr
    result: dict[str, object] = json.loads(child.stdout)
    result["stderr"] = child.stderr
    result["mnt"] = str(mount_point)
    return result


READ_ONLY_SCRIPT = (
    """
import json, os, subprocess, sys
from pathlib import Path
import logbridge
from logbridge import _state

KILLED_WRITER = __KILLED_WRITER__
mnt = Path(sys.argv[1])
out = {}
run = logbridge.start_run(experiment="ro", store=mnt / "clean")
run.log("loss", 0.5)
run.log("loss", 0.25)
run.complete()
out["clean_id"] = run.id
_state.reset()
for name in ("killed", "no-shm"):
    child = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(mnt / name)],
                           capture_output=True, text=True)
    out[name + "_id"] = child.stdout.strip()
os.remove(mnt / "no-shm" / "store.db-shm")
subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)

def attempt(label, call):
    _state.reset()
    try:
        out[label] = call()
    except Exception as err:
        out[label] = [type(err).__name__, str(err)]

attempt("read_clean", lambda: logbridge.get_run(out["clean_id"], store=mnt / "clean").get_metrics())
attempt("list_clean", lambda: [r.id for r in logbridge.list_runs(store=mnt / "clean")])
attempt("read_killed",
        lambda: logbridge.get_run(out["killed_id"], store=mnt / "killed").get_metrics()["m"][-1])
attempt("read_no_shm", lambda: logbridge.get_run(out["no-shm_id"], store=mnt / "no-shm"))
attempt("write_clean", lambda: logbridge.start_run(store=mnt / "clean").id)
attempt("create_new", lambda: logbridge.start_run(store=mnt / "new").id)
print(json.dumps(out))
"""
).replace("__KILLED_WRITER__", repr(KILLED_WRITER))


@pytest.mark.processes
def test_a_store_on_a_read_only_file_system(tmp_path: Path) -> None:
    """On a file system remounted read-only (which stops root too):

    - a cleanly closed store reads fully, and so does one with a killed writer's -wal/-shm;
    - a -wal without its -shm cannot be read safely: a StoreError says what to do;
    - starting a run in the store, or a new store there, is a StoreError naming the path.
    """
    out = _in_private_tmpfs(tmp_path, READ_ONLY_SCRIPT)
    mnt = out["mnt"]
    assert out["read_clean"] == {"loss": [0.5, 0.25]}
    assert out["list_clean"] == [out["clean_id"]]
    assert out["read_killed"] == 199
    assert out["read_no_shm"] == [
        "StoreError",
        (
            f"the store {mnt}/no-shm/store.db is read-only and store.db-wal beside it holds "
            "changes not yet folded into it; open the store once where it can be written, or "
            "copy its folder somewhere writable"
        ),
    ]
    assert out["write_clean"] == [
        "StoreError",
        (
            f"cannot open the store {mnt}/clean/store.db for writing (unable to open database "
            "file); make its folder writable, or pass store=... or set LOGBRIDGE_HOME to a "
            "writable folder"
        ),
    ]
    assert out["create_new"] == [
        "StoreError",
        (
            f"cannot create the store folder {mnt}/new: Read-only file system; pass store=... "
            "or set LOGBRIDGE_HOME to a writable folder"
        ),
    ]
    assert out["stderr"] == ""


DISK_FULL_SCRIPT = """
import errno, json, os, sys
from pathlib import Path
import logbridge
from logbridge import _recorder

_recorder._RETRY_FOR = 0.2  # retry a failing batch for 0.2 s, not 5 s, before dropping it
mnt = Path(sys.argv[1])
run = logbridge.start_run(experiment="full", store=mnt / "store")
run.log("before", 1.0)
run.flush(30)
fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\\0" * 4096)
except OSError as err:
    assert err.errno == errno.ENOSPC, err
finally:
    os.close(fd)
for step in range(50):
    run.log("during", "x" * 3000, step=step)
out = {"flushed": run.flush(30), "dropped_while_full": run.get_details().get("dropped")}
os.remove(mnt / "filler")
for i in range(3):
    run.log("after", i)
run.flush(30)
out["dropped"] = run.get_details().get("dropped")
out["metrics"] = run.get_metrics()
run.complete()
out["status"] = run.get_status()
print(json.dumps(out))
"""


@pytest.mark.processes
@pytest.mark.parametrize("writer", ["thread", "process"])
def test_a_really_full_disk_mid_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, writer: str
) -> None:
    """A store on a 1 MB tmpfs filled to ENOSPC while the run logs 50 points.

    Training goes on without an exception, stderr says once that the disk is full and once
    that writing works again, the 50 points are counted as dropped and later points stored;
    alike when the writer process writes (it retries for 5 s, the thread here for 0.2 s).
    """
    after = "never" if writer == "thread" else "0"
    monkeypatch.setenv("LOGBRIDGE_WRITER_PROCESS_AFTER", after)
    out = _in_private_tmpfs(tmp_path, DISK_FULL_SCRIPT)
    assert out["flushed"] is True
    assert out["dropped_while_full"] in (None, {"store_error": 50})
    assert out["dropped"] == {"store_error": 50}
    assert out["metrics"] == {"before": 1.0, "after": [0, 1, 2]}
    assert out["status"] == "Completed"
    lines = str(out["stderr"]).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"logbridge: cannot write to the store {out['mnt']}/store (")
    assert "is full (database or disk is full)" in lines[0]
    assert lines[1] == f"logbridge: writing to the store {out['mnt']}/store works again"
