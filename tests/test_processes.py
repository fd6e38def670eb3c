"""The Run API in real processes: fork, pools, ranks, signals, crashes and exit paths.

Each test runs a small script in a fresh interpreter with ``LOGBRIDGE_HOME`` pointing at the
test's store, then checks the oracles of RELIABILITY.md: the exit code the script should have,
no ``--- Logging error ---`` and no logbridge traceback on stderr, a store that passes
``PRAGMA integrity_check``, a deadline for every process, and exact counts of what was stored.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import logbridge
from logbridge import _sqlite

pytestmark = pytest.mark.processes

_LOGBRIDGE_FRAME = re.compile(r'File ".*[/\\]logbridge[/\\][^"]*\.py"')


def write_script(store: Path, source: str, name: str = "script.py") -> Path:
    """Write ``source`` beside the store and return its path."""
    script = store.parent / name
    script.write_text(textwrap.dedent(source))
    return script


def start_script(
    store: Path, source: str, *args: str, env: dict[str, str] | None = None, stdin: bool = False
) -> subprocess.Popen[str]:
    """Start ``source`` as a script beside ``store``, its output piped (and its stdin)."""
    return subprocess.Popen(
        [sys.executable, str(write_script(store, source)), *args],
        env={**os.environ, **(env or {})},
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def check_oracles(store: Path, returncode: int, stderr: str, expected_code: int) -> None:
    """The checks every script must pass, whatever it did."""
    assert returncode == expected_code, stderr
    assert "--- Logging error ---" not in stderr, stderr
    assert not _LOGBRIDGE_FRAME.search(stderr), stderr
    assert "database is locked" not in stderr, stderr
    with contextlib.closing(sqlite3.connect(store / "store.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def run_script(
    store: Path,
    source: str,
    *args: str,
    returncode: int = 0,
    timeout: float = 60,
    env: dict[str, str] | None = None,
    reports: int = 0,
) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script beside ``store``; check the oracles and its exit code.

    ``reports`` is how many ``logbridge:`` lines the script is expected to print on stderr.
    """
    script = write_script(store, source)
    proc = subprocess.run(
        [sys.executable, str(script), *args],
        cwd=store.parent,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    check_oracles(store, proc.returncode, proc.stderr, returncode)
    assert proc.stderr.count("logbridge:") == reports, proc.stderr
    return proc


def only_run() -> logbridge.Run:
    """The one run in the test's store."""
    runs = logbridge.list_runs()
    assert len(runs) == 1, [run.name for run in runs]
    return runs[0]


def stored_points(store: Path) -> dict[str, list[object]]:
    """Metric name -> stored values in stored order, for every run of the store."""
    with contextlib.closing(sqlite3.connect(store / "store.db")) as db:
        rows = db.execute(
            "SELECT m.name, p.value FROM points p JOIN metrics m ON m.id = p.metric_id "
            "ORDER BY p.rowid"
        ).fetchall()
    found: dict[str, list[object]] = {}
    for name, value in rows:
        found.setdefault(name, []).append(value)
    return found


@contextlib.contextmanager
def store_locked(store: Path) -> Iterator[None]:
    """Hold the store's write lock from the test's own connection for the block."""
    db = sqlite3.connect(store / "store.db", timeout=30, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            db.execute("ROLLBACK")
    finally:
        db.close()


# -- fork and pools -------------------------------------------------------------------------

FORK_WHILE_THREADS_LOG = """
import os, threading, time
import logbridge

run = logbridge.start_run(experiment="fork")
go = threading.Event()

def work(i):
    go.wait()
    for seq in range(20_000):
        run.log(f"t{i}", seq)

threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
for t in threads:
    t.start()
go.set()
children = []
for k in range(12):
    time.sleep(0.03)
    pid = os.fork()
    if pid == 0:
        for seq in range(100):
            run.log(f"child{k:02d}", seq)
        if k % 2:
            run.flush(20)
            os._exit(0)
        raise SystemExit(0)  # leaves through atexit, which drains the child's recorder
    children.append(pid)
for pid in children:
    deadline = time.monotonic() + 30
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            print("child", pid, "hangs", flush=True)
            os._exit(2)
        time.sleep(0.01)
for t in threads:
    t.join()
run.complete()
"""


def test_fork_while_eight_threads_log(store: Path) -> None:
    """12 children forked while 8 threads log: none hangs, each child's 100 points stored once.

    The parent's points (8 x 20,000) are stored exactly once each, in order: the children
    neither write the parent's queue again nor use its connection. Half the children leave
    through ``os._exit`` after a flush, half through ``SystemExit`` (atexit drains them).
    """
    run_script(store, FORK_WHILE_THREADS_LOG, timeout=120)
    stored = stored_points(store)
    assert sorted(stored) == [f"child{k:02d}" for k in range(12)] + [f"t{i}" for i in range(8)]
    for k in range(12):
        assert stored[f"child{k:02d}"] == list(range(100))
    for i in range(8):
        assert stored[f"t{i}"] == list(range(20_000))
    assert only_run().get_status() == "Completed"


FORK_INSIDE_A_TRANSACTION = """
import os, threading, time
import logbridge
from logbridge import _events as ev, _state

run = logbridge.start_run(experiment="fork-txn")
rec = _state.existing_recorder(run.store)
big = [ev.MetricLogged(run.id, "parent", "scalar", i, None, 0.0) for i in range(200_000)]
writing = threading.Thread(target=rec.write_now, args=(big,))
writing.start()
time.sleep(0.05)  # the thread is inside its write transaction now
assert writing.is_alive()
pid = os.fork()
if pid == 0:
    for seq in range(100):
        run.log("child", seq)
    os._exit(0 if run.flush(20) else 5)
deadline = time.monotonic() + 30
while (status := os.waitpid(pid, os.WNOHANG)) == (0, 0):
    if time.monotonic() > deadline:
        os._exit(2)
    time.sleep(0.01)
writing.join()
run.complete()
raise SystemExit(os.waitstatus_to_exitcode(status[1]))
"""


def test_fork_while_the_parent_is_inside_a_write_transaction(store: Path) -> None:
    """A fork during the parent's 200,000-point transaction: both sides' points are stored.

    The child never uses the parent's connection (nor waits on its transaction's locks): its
    100 points land, and the parent's transaction commits whole.
    """
    run_script(store, FORK_INSIDE_A_TRANSACTION, timeout=60)
    stored = stored_points(store)
    assert stored["child"] == list(range(100))
    assert stored["parent"] == list(range(200_000))
    assert only_run().get_status() == "Completed"


POOL = """
import multiprocessing, sys
import logbridge

def work(task):
    run = logbridge.Run.get_context()
    for seq in range(50):
        run.log(f"task{task:02d}", seq)
    return task

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    run = logbridge.start_run(experiment="pool")
    for seq in range(1_000):
        run.log("parent", seq)  # still queued when the fork-pool workers start
    with context.Pool(2) as pool:  # __exit__ SIGTERMs the idle workers
        assert pool.map(work, range(10), chunksize=1) == list(range(10))
    pool = context.Pool(2)
    assert pool.map(work, range(10, 20), chunksize=1) == list(range(10, 20))
    pool.close()
    pool.join()
    run.complete()
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_log_into_the_run(store: Path, method: str) -> None:
    """Pool workers attached through ``Run.get_context()`` store every point once.

    20 tasks x 50 points, half through ``with Pool() as p`` (whose exit SIGTERMs the workers,
    so their SIGTERM handler must drain them) and half through ``close(); join()`` (the
    multiprocessing finalizer drains them). The flush interval is 60 s, so nothing else
    writes the workers' points. The parent's 1,000 points queued before a fork are not
    doubled by the workers.
    """
    run_script(store, POOL, method, timeout=90, env={"LOGBRIDGE_FLUSH_INTERVAL": "60"})
    stored = stored_points(store)
    assert sorted(stored) == ["parent"] + [f"task{t:02d}" for t in range(20)]
    assert stored["parent"] == list(range(1_000))
    for task in range(20):
        assert stored[f"task{task:02d}"] == list(range(50)), task
    run = only_run()
    assert run.get_status() == "Completed"
    assert "dropped" not in run.get_details()


RANKS = """
import os, subprocess, sys
import logbridge

if len(sys.argv) > 1:
    rank = int(os.environ["RANK"])
    run = logbridge.Run.get_context()
    for seq in range(4_000):
        run.log(f"rank{rank}", seq)
        if seq % 200 == 199:
            run.flush(30)  # many small transactions: the ranks contend for the lock
    run.log_row("done", rank=rank)
    raise SystemExit(0)

run = logbridge.start_run(experiment="ranks")
ranks = [
    subprocess.Popen([sys.executable, __file__, "rank"], env={**os.environ, "RANK": str(r)})
    for r in range(4)
]
codes = [p.wait(60) for p in ranks]
run.complete()
raise SystemExit(max(codes))
"""


def test_four_ranks_write_one_run_at_once(store: Path) -> None:
    """Four processes write one run at once: no "database is locked" anywhere, counts exact."""
    run_script(store, RANKS, timeout=90)
    stored = stored_points(store)
    for rank in range(4):
        assert stored[f"rank{rank}"] == list(range(4_000))
    run = only_run()
    assert sorted(run.get_metrics("done")["done"]["rank"]) == [0, 1, 2, 3]
    assert run.get_status() == "Completed"
    assert "dropped" not in run.get_details()


CREATE_AT_ONCE = """
import os, sys, time
import logbridge

go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.001)
with logbridge.start_run(experiment="race", name=sys.argv[2]) as run:
    run.log("x", 1)
"""


def test_two_processes_create_an_empty_store_at_the_same_moment(store: Path) -> None:
    """Two processes create the store at once (3 trials): one schema, both runs present."""
    script = write_script(store, CREATE_AT_ONCE)
    for trial in range(3):
        folder = store.parent / f"race{trial}"
        go = store.parent / f"go{trial}"
        env = {**os.environ, "LOGBRIDGE_HOME": str(folder)}
        procs = [
            subprocess.Popen(
                [sys.executable, str(script), str(go), f"run{i}"],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        time.sleep(0.5)  # both interpreters are up and waiting
        go.touch()
        for proc in procs:
            _, stderr = proc.communicate(timeout=30)
            check_oracles(folder, proc.returncode, stderr, 0)
            assert stderr == ""
        with contextlib.closing(sqlite3.connect(folder / "store.db")) as db:
            assert db.execute("PRAGMA user_version").fetchone() == (_sqlite.schema_version(),)
            tables = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            assert {"runs", "metrics", "points", "logs", "drops"} <= {t for (t,) in tables}
        runs = logbridge.list_runs(store=folder)
        assert sorted(r.name for r in runs) == ["run0", "run1"]
        assert [r.get_metrics() for r in runs] == [{"x": 1}, {"x": 1}]
        assert [r.get_status() for r in runs] == ["Completed", "Completed"]


# -- crashes and signals -------------------------------------------------------------------

LOG_FOREVER = """
import itertools
import logbridge

run = logbridge.start_run(experiment="kill")
print(run.id, flush=True)
for seq in itertools.count():
    run.log("x", seq)
    if seq % 2_000 == 1_999:
        run.flush(30)
        print(seq, flush=True)  # everything up to seq is in the store
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_keeps_everything_flushed(store: Path) -> None:
    """SIGKILL at 5 random moments: the store reopens intact with every flushed point.

    After each kill ``PRAGMA integrity_check`` is ok, the points are an in-order prefix that
    holds at least everything logged before the last completed flush, and the run reads as
    ``Failed`` with error type ``ProcessDied``, not Running.
    """
    script = write_script(store, LOG_FOREVER)
    rng = random.Random(20240601)
    for trial in range(5):
        folder = store.parent / f"kill{trial}"
        proc = subprocess.Popen(
            [sys.executable, str(script)],
            env={**os.environ, "LOGBRIDGE_HOME": str(folder)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        time.sleep(rng.uniform(0.1, 1.0))
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
        check_oracles(folder, proc.returncode, err, -signal.SIGKILL)
        flushed = [int(line) for line in out.split()]
        values = stored_points(folder).get("x", [])
        assert values == list(range(len(values)))
        assert len(values) >= (flushed[-1] + 1 if flushed else 0)
        details = logbridge.get_run(run_id, store=folder).get_details()
        assert details["status"] == "Failed"
        assert details["error"]["type"] == "ProcessDied"


WAIT_FOR_SIGTERM = """
import signal, sys, time
import logbridge

if sys.argv[1] == "own-handler":
    def handler(signum, frame):
        print("user handler called", flush=True)
        raise SystemExit(143)
    signal.signal(signal.SIGTERM, handler)

run = logbridge.start_run(experiment="term")
for seq in range(5_000):
    run.log("x", seq)
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize(("mode", "code"), [("default", -signal.SIGTERM), ("own-handler", 143)])
def test_sigterm_cancels_the_run_and_drains_it(store: Path, mode: str, code: int) -> None:
    """SIGTERM: the 5,000 queued points are stored, the run is Canceled, the exit is -15.

    With a SIGTERM handler of the user's installed before the run, that handler is still
    called (and its ``SystemExit(143)`` is the exit code).
    """
    proc = start_script(store, WAIT_FOR_SIGTERM, mode, env={"LOGBRIDGE_FLUSH_INTERVAL": "60"})
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    check_oracles(store, proc.returncode, err, code)
    assert out == ("user handler called\n" if mode == "own-handler" else "")
    assert stored_points(store) == {"x": list(range(5_000))}
    details = only_run().get_details()
    assert details["status"] == "Canceled"
    assert details["error"]["type"] == "SIGTERM"


def test_ctrl_c_cancels_the_run_and_drains_it(store: Path) -> None:
    """SIGINT (Ctrl-C): the queued 5,000 points are stored, the run is Canceled, exit -2.

    Python dies of SIGINT after an uncaught KeyboardInterrupt (so shells see 130) only if no
    code is compiled from a string after the exception: logbridge imports what its exit path
    needs when the first run starts, so the conventional exit code survives.
    """
    proc = start_script(store, WAIT_FOR_SIGTERM, "default", env={"LOGBRIDGE_FLUSH_INTERVAL": "60"})
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err
    assert stored_points(store) == {"x": list(range(5_000))}
    details = only_run().get_details()
    assert details["status"] == "Canceled"
    assert details["error"]["type"] == "KeyboardInterrupt"
    check_oracles(store, proc.returncode, err, -signal.SIGINT)


SIGTERM_DURING_FLUSH = """
import sys
import logbridge

run = logbridge.start_run(experiment="term-flush")
print("started", flush=True)
sys.stdin.readline()
for seq in range(20_000):
    run.log("x", seq)
print("flushing", flush=True)
run.flush()
print("flushed", flush=True)
"""


def test_sigterm_during_flush_drains_and_exits(store: Path) -> None:
    """SIGTERM while ``flush()`` waits on a locked store: all 20,000 points land, exit -15."""
    proc = start_script(
        store, SIGTERM_DURING_FLUSH, env={"LOGBRIDGE_FLUSH_INTERVAL": "60"}, stdin=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    with store_locked(store):
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "flushing\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
    out, err = proc.communicate(timeout=30)
    check_oracles(store, proc.returncode, err, -signal.SIGTERM)
    assert out == ""
    assert stored_points(store) == {"x": list(range(20_000))}
    assert only_run().get_status() == "Canceled"


UNCAUGHT = """
import sys, threading
import logbridge

run = logbridge.start_run(experiment="uncaught")
for seq in range(10):
    run.log("x", seq)
if sys.argv[1] == "main":
    raise ValueError("boom in main")

def worker():
    raise RuntimeError("boom in worker")

thread = threading.Thread(target=worker, name="worker")
thread.start()
thread.join()
"""


@pytest.mark.parametrize(
    ("where", "code", "error"),
    [("main", 1, "ValueError: boom in main"), ("worker", 0, "RuntimeError: boom in worker")],
)
def test_uncaught_exception_fails_the_run_and_keeps_the_exit_code(
    store: Path, where: str, code: int, error: str
) -> None:
    """An uncaught exception (main thread: exit 1; worker thread: exit 0) fails the run.

    Its traceback is still printed on stderr, and stored both as the run's error and in
    the run's log; the points logged before it are kept.
    """
    proc = run_script(store, UNCAUGHT, where, returncode=code)
    assert "Traceback (most recent call last)" in proc.stderr
    assert error in proc.stderr
    run = only_run()
    details = run.get_details()
    assert details["status"] == "Failed"
    assert details["error"]["type"] == error.split(":", maxsplit=1)[0]
    assert error in details["error"]["traceback"]
    logged = [r for r in run.get_logs() if r["logger"] == "logbridge.uncaught"]
    assert len(logged) == 1
    assert error in logged[0]["exception"]
    assert stored_points(store) == {"x": list(range(10))}


OS_EXIT = """
import concurrent.futures, multiprocessing, os, sys
import logbridge

def child():
    run = logbridge.Run.get_context()
    for seq in range(100):
        run.log("child", seq)
    run.flush(20)
    os._exit(3)

if __name__ == "__main__":
    run = logbridge.start_run(experiment="os-exit")
    for seq in range(100):
        run.log("x", seq)
    run.flush(20)
    for seq in range(100, 150):
        run.log("x", seq)  # not flushed: lost with the process, as documented
    if sys.argv[1] == "script":
        os._exit(3)
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        try:
            pool.submit(child).result(timeout=30)
        except concurrent.futures.process.BrokenProcessPool:
            print("pool child died", flush=True)
    run.complete()
"""


@pytest.mark.parametrize(("where", "code"), [("script", 3), ("pool", 0)])
def test_os_exit_keeps_what_was_committed(store: Path, where: str, code: int) -> None:
    """``os._exit(3)`` in the script or in a pool child: flushed points are kept.

    In the script the run then reads as Failed (ProcessDied), not Running; in a pool child
    the child's 100 flushed points are kept and the parent still completes the run.
    """
    proc = run_script(
        store, OS_EXIT, where, returncode=code, env={"LOGBRIDGE_FLUSH_INTERVAL": "60"}
    )
    stored = stored_points(store)
    details = only_run().get_details()
    if where == "script":
        assert stored == {"x": list(range(100))}
        assert details["status"] == "Failed"
        assert details["error"]["type"] == "ProcessDied"
    else:
        assert proc.stdout == "pool child died\n"
        assert stored == {"x": list(range(150)), "child": list(range(100))}
        assert details["status"] == "Completed"


LATE_LOGGING = """
import atexit, threading, time
import logbridge

def registered_before():
    run.log("atexit_before", 1)

atexit.register(registered_before)  # runs after logbridge's own exit hook
run = logbridge.start_run(experiment="late")

def registered_after():
    run.log("atexit_after", 1)

atexit.register(registered_after)  # runs before logbridge's exit hook


class LogsWhenCollected:
    def __init__(self):
        self.run = run  # module globals may be gone when __del__ runs

    def __del__(self):
        self.run.log("del", 1)


keeper = LogsWhenCollected()
"""


def test_logging_from_atexit_handlers_and_del_at_finalisation(store: Path) -> None:
    """Points logged at exit are stored: atexit handlers on both sides of logbridge's, ``__del__``.

    No exception and no "can't create new thread" reaches stderr; the run stays Completed.
    """
    proc = run_script(store, LATE_LOGGING, timeout=60)
    assert proc.stderr == ""
    assert stored_points(store) == {"atexit_after": [1], "atexit_before": [1], "del": [1]}
    assert only_run().get_status() == "Completed"
    assert "dropped" not in only_run().get_details()


DAEMON_AT_EXIT = """
import atexit, threading, time
import logbridge

logged = [0]

def registered_before():
    time.sleep(0.3)  # runs after logbridge's exit hook: the daemon goes on logging
    run.log("logged_by_then", logged[0])

atexit.register(registered_before)
run = logbridge.start_run(experiment="daemon")
started = threading.Event()

def daemon():
    while True:
        run.log("daemon", logged[0])
        logged[0] += 1
        if logged[0] == 50:
            started.set()
        time.sleep(0.001)

threading.Thread(target=daemon, daemon=True).start()
started.wait(10)
"""


def test_daemon_thread_logging_through_the_exit(store: Path) -> None:
    """A daemon thread logs before, during and after logbridge's exit hook: no gap, in order.

    Its points after the recorder closed are written synchronously: all those logged before
    the last atexit handler ran are stored, and nothing reaches stderr.
    """
    proc = run_script(store, DAEMON_AT_EXIT, timeout=60)
    assert proc.stderr == ""
    stored = stored_points(store)
    daemon = stored["daemon"]
    assert daemon == list(range(len(daemon)))
    (logged_by_then,) = stored["logged_by_then"]
    assert isinstance(logged_by_then, int)
    assert len(daemon) >= logged_by_then > 60
    assert only_run().get_status() == "Completed"


FULL_QUEUE_AT_EXIT = """
import sys
import logbridge

run = logbridge.start_run(experiment="full")
print("started", flush=True)
sys.stdin.readline()
for seq in range(100_000):
    run.log("x", seq)
print("exiting", flush=True)
"""


def test_exit_with_a_full_queue_writes_everything(store: Path) -> None:
    """Exit right after 100,000 points: within the default deadline, the store is complete."""
    script = write_script(store, FULL_QUEUE_AT_EXIT)
    proc = subprocess.run(
        [sys.executable, str(script)],
        env={**os.environ, "LOGBRIDGE_FLUSH_INTERVAL": "60", "LOGBRIDGE_EXIT_TIMEOUT": "10"},
        input="go\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    check_oracles(store, proc.returncode, proc.stderr, 0)
    assert proc.stdout == "started\nexiting\n"
    assert proc.stderr == ""
    assert stored_points(store) == {"x": list(range(100_000))}
    details = only_run().get_details()
    assert details["status"] == "Completed"
    assert "dropped" not in details


def test_exit_past_its_deadline_counts_what_is_left(store: Path) -> None:
    """Exit with 100,000 points queued behind a locked store and a 0.1 s exit deadline.

    The process exits promptly; what was not written is counted as ``exit_timeout`` in the
    run (stored + dropped = 100,000, one ``logbridge:`` line on stderr says so), and the run
    is still recorded as Completed once the lock goes (within the exit grace of 1 s).
    """
    limits = {
        "LOGBRIDGE_FLUSH_INTERVAL": "60",
        "LOGBRIDGE_EXIT_TIMEOUT": "0.1",
        "LOGBRIDGE_QUEUE_SIZE": "1000000",
        "LOGBRIDGE_WRITER_PROCESS_AFTER": "never",  # a writer process: the test below
    }
    proc = start_script(store, FULL_QUEUE_AT_EXIT, env=limits, stdin=True)
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stdout.readline() == "started\n"
    with store_locked(store):
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "exiting\n"
        exiting = time.monotonic()
        time.sleep(0.3)
    _, err = proc.communicate(timeout=30)
    took = time.monotonic() - exiting
    check_oracles(store, proc.returncode, err, 0)
    assert err.count("logbridge:") == 1, err
    assert "counted as dropped" in err
    assert took < 5
    values = stored_points(store).get("x", [])
    assert values == list(range(len(values)))
    details = only_run().get_details()
    assert details["status"] == "Completed"
    assert len(values) + details["dropped"]["exit_timeout"] == 100_000
    assert details["dropped"]["exit_timeout"] >= 80_000
