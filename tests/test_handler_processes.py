"""The logging bridge in real processes: children, exit paths and libraries that log a lot.

Each test runs a small script in a fresh interpreter with ``LOGBRIDGE_HOME`` pointing at the
test's store, then checks the oracles of RELIABILITY.md: the exit code the script should have,
no ``--- Logging error ---`` and no logbridge traceback or complaint on stderr, a store that
passes ``PRAGMA integrity_check``, and exact counts of what was recorded.
"""

from __future__ import annotations

import collections
import json
import signal
import textwrap
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from test_processes import only_run, run_script

pytestmark = pytest.mark.processes


def messages(logs: Iterable[dict[str, Any]]) -> collections.Counter[str]:
    """How many times each message was stored."""
    return collections.Counter(record["message"] for record in logs)


POOL = """
import json, logging, multiprocessing, os, sys
import logbridge

log = logging.getLogger("train")

def configure():
    logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()], force=True)

def work(i):
    log.info("item %d", i, extra={"metrics": {"square": i * i}, "step": i})
    return os.getpid()

if __name__ == "__main__":
    method, processes, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    configure()
    log.info("parent start")
    context = multiprocessing.get_context(method)
    # fork workers inherit the handler; spawn and forkserver workers configure their own.
    initializer = None if method == "fork" else configure
    pids = set()
    for _ in range(rounds):
        with context.Pool(processes, initializer=initializer) as pool:  # __exit__ SIGTERMs
            pids.update(pool.map(work, range(20), chunksize=1))
    log.info("parent end")
    print(json.dumps({"parent": os.getpid(), "workers": sorted(pids)}))
"""


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pool_workers_record_into_the_parent_run(store: Path, method: str) -> None:
    """`with Pool() as p: p.map(...)`: each item once, in the parent's run, marked by pid.

    The pool's ``__exit__`` terminates the workers with SIGTERM, often while they are already
    leaving through their exit hooks: nothing recorded is lost, and nothing hangs.
    """
    proc = run_script(store, POOL, method, "2", "1")
    pids = json.loads(proc.stdout)
    run = only_run()
    assert run.get_status() == "Completed"
    logs = run.get_logs()
    assert messages(logs) == collections.Counter(
        ["parent start", "parent end"] + [f"item {i}" for i in range(20)]
    )
    by_message = {record["message"]: record for record in logs}
    assert by_message["parent start"]["process"] == pids["parent"]
    assert {by_message[f"item {i}"]["process"] for i in range(20)} <= set(pids["workers"])
    assert pids["parent"] not in pids["workers"]
    assert sorted(run.get_metrics()["square"]) == sorted(i * i for i in range(20))
    assert "dropped" not in run.get_details()


DATALOADER = """
import json, logging, multiprocessing, os, sys
import logbridge

log = logging.getLogger("data")

def worker_loop(worker_id, index_queue, data_queue):
    while True:
        index = index_queue.get()
        if index is None:
            break
        log.debug("worker %d loads sample %d", worker_id, index, extra={"worker_id": worker_id})
        data_queue.put((index, os.getpid()))

if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, handlers=[logbridge.RunHandler()])
    # As torch's DataLoader does: fork the workers before the script logged anything.
    context = multiprocessing.get_context("fork")
    index_queues = [context.Queue() for _ in range(3)]
    data_queue = context.Queue()
    workers = [
        context.Process(target=worker_loop, args=(w, index_queues[w], data_queue), daemon=True)
        for w in range(3)
    ]
    for worker in workers:
        worker.start()
    for epoch in range(2):
        for index in range(30):
            index_queues[index % 3].put(index)
        loaded = [data_queue.get(timeout=30) for _ in range(30)]
        log.info("epoch %d", epoch, extra={"metrics": {"samples": len(loaded)}, "step": epoch})
    for index_queue in index_queues:
        index_queue.put(None)
    for worker in workers:
        worker.join(timeout=30)
    print(json.dumps({"parent": os.getpid(), "workers": [w.pid for w in workers],
                      "exitcodes": [w.exitcode for w in workers]}))
"""


def test_dataloader_style_workers_forked_before_the_first_record_share_the_run(
    store: Path,
) -> None:
    """Workers forked before any record inherit the RunHandler and record into one run.

    The run is started when the process forks, so the workers do not each start their own.
    """
    proc = run_script(store, DATALOADER)
    result = json.loads(proc.stdout)
    assert result["exitcodes"] == [0, 0, 0]
    run = only_run()
    assert run.get_status() == "Completed"
    logs = run.get_logs()
    expected = collections.Counter({"epoch 0": 1, "epoch 1": 1})
    for index in range(30):
        expected[f"worker {index % 3} loads sample {index}"] = 2
    assert messages(logs) == expected
    for record in logs:
        if record["message"].startswith("worker"):
            assert record["process"] == result["workers"][record["worker_id"]]
            assert record["level"] == "DEBUG"
        else:
            assert record["process"] == result["parent"]
    assert run.get_metrics() == {"samples": [30, 30]}


SUBPROCESS_PARENT = """
import logging, os, subprocess, sys
import logbridge

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
logging.getLogger("parent").info("before the child")
child = subprocess.run([sys.executable, "child.py"], env={**os.environ, "RANK": "3",
                       "LOCAL_RANK": "1"}, timeout=60, check=False)
logging.getLogger("parent").info("child exited with %d", child.returncode)
"""

SUBPROCESS_CHILD = """
import logging, os
import logbridge

# The child configures its own handler; LOGBRIDGE_RUN_ID from the parent names the run.
logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
for step in range(5):
    logging.getLogger("child").info("step %d", step, extra={"metrics": {"loss": 1 / (step + 1)},
                                                            "step": step})
print(os.getpid())
"""


def test_subprocess_child_with_its_own_handler_records_into_the_parent_run(
    store: Path,
) -> None:
    """A `subprocess.run` child configuring its own RunHandler joins the parent's run.

    Its records carry its pid and the ``rank``/``local_rank`` of its environment; the child
    does not finish the parent's run, the parent completes it.
    """
    (store.parent / "child.py").write_text(textwrap.dedent(SUBPROCESS_CHILD))
    run_script(store, SUBPROCESS_PARENT)
    run = only_run()
    assert run.get_status() == "Completed"
    # get_logs orders by arrival in the store; each process flushes on its own schedule.
    logs = sorted(run.get_logs(), key=lambda record: record["time"])
    assert [record["message"] for record in logs] == [
        "before the child",
        "step 0",
        "step 1",
        "step 2",
        "step 3",
        "step 4",
        "child exited with 0",
    ]
    parent, *child, last = logs
    assert parent["process"] == last["process"]
    assert {record["process"] for record in child} != {parent["process"]}
    assert len({record["process"] for record in child}) == 1
    assert {(record.get("rank"), record.get("local_rank")) for record in child} == {("3", "1")}
    assert "rank" not in parent
    assert run.get_metrics() == {"loss": [1.0, 0.5, 1 / 3, 0.25, 0.2]}


FORK_WHILE_LOGGING = """
import json, logging, os, sys, threading, time
import logbridge

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log = logging.getLogger("threads")
log.info("start")
counts = [0] * 8
go = threading.Event()

def spin(index):
    go.wait()
    for i in range(3000):
        log.info("thread %d record %d", index, i, extra={"thread_index": index})
        counts[index] += 1

threads = [threading.Thread(target=spin, args=(i,)) for i in range(8)]
for thread in threads:
    thread.start()
children = []
alive = []
go.set()
for fork_index in range(4):
    time.sleep(0.002)
    alive.append(sum(thread.is_alive() for thread in threads))
    pid = os.fork()
    if pid == 0:
        for i in range(10):
            logging.getLogger("child").info("child %d record %d", fork_index, i)
        logging.shutdown()  # flush, then leave without the parent's atexit duties
        os._exit(0)
    children.append(pid)
codes = []
deadline = time.monotonic() + 30
for pid in children:
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
            break
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            codes.append("hung")
            break
        time.sleep(0.01)
for thread in threads:
    thread.join()
print(json.dumps({"parent": os.getpid(), "children": children, "codes": codes,
                  "counts": counts, "alive": alive}))
"""


def test_fork_while_eight_threads_log(store: Path) -> None:
    """os.fork() while 8 threads log: no deadlock, each child record once, no parent duplicates.

    Every thread's records are stored once each, in the order it logged them, and the
    children (which log, flush with ``logging.shutdown()`` and ``os._exit``) never repeat
    what the parent had queued.
    """
    proc = run_script(store, FORK_WHILE_LOGGING, timeout=90)
    result = json.loads(proc.stdout)
    assert result["codes"] == [0, 0, 0, 0]
    assert result["alive"][0] > 0  # the first fork happened while threads were logging
    assert result["counts"] == [3000] * 8
    logs = only_run().get_logs()
    child_logs = [record for record in logs if record["logger"] == "child"]
    assert messages(child_logs) == collections.Counter(
        f"child {f} record {i}" for f in range(4) for i in range(10)
    )
    for record in child_logs:
        fork_index = int(record["message"].split()[1])
        assert record["process"] == result["children"][fork_index]
    thread_logs = [record for record in logs if record["logger"] == "threads"]
    assert len(thread_logs) == 1 + 8 * 3000
    assert {record["process"] for record in thread_logs} == {result["parent"]}
    for index in range(8):
        seen = [r["message"] for r in thread_logs if r.get("thread_index") == index]
        assert seen == [f"thread {index} record {i}" for i in range(3000)]


EXIT_HOOKS = """
import atexit, logging
import logbridge

log = logging.getLogger("exit")

def before_logbridge():
    log.info("atexit registered before logbridge")

atexit.register(before_logbridge)  # runs after logbridge's own exit hook
logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log.info("main")  # starts the run, which registers logbridge's exit hook

def after_logbridge():
    log.info("atexit registered after logbridge")

atexit.register(after_logbridge)  # runs before logbridge's exit hook


class LogsWhenCollected:
    def __init__(self):
        self.log = log  # module globals may already be None when __del__ runs

    def __del__(self):
        self.log.info("from __del__ at finalisation")


keeper = LogsWhenCollected()
"""


def test_logging_from_atexit_handlers_and_del_at_finalisation(store: Path) -> None:
    """Records logged after the run was finished at exit are stored in that run, not a new one.

    From atexit handlers registered before and after logbridge's and from ``__del__`` at
    finalisation; the run stays Completed and no second run appears.
    """
    run_script(store, EXIT_HOOKS)
    run = only_run()
    assert run.get_status() == "Completed"
    assert [record["message"] for record in run.get_logs()] == [
        "main",
        "atexit registered after logbridge",
        "atexit registered before logbridge",
        "from __del__ at finalisation",
    ]
    assert "dropped" not in run.get_details()


DAEMON_AT_EXIT = """
import logging, threading, time
import logbridge

log = logging.getLogger("exit")
logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log.info("main")
started = threading.Event()

def daemon():
    i = 0
    while True:
        log.info("daemon %d", i)
        i += 1
        if i == 50:
            started.set()
        time.sleep(0.001)

threading.Thread(target=daemon, daemon=True, name="daemon-logger").start()
started.wait(10)
"""


def test_daemon_thread_logging_while_the_process_exits(store: Path) -> None:
    """A daemon thread logs through the exit: its records are stored in order, once each.

    They form an unbroken prefix of what it logged, up to where the interpreter stopped it,
    and nothing is reported as lost.
    """
    run_script(store, DAEMON_AT_EXIT)
    run = only_run()
    assert run.get_status() == "Completed"
    logs = run.get_logs()
    assert logs[0]["message"] == "main"
    daemon = [record["message"] for record in logs[1:]]
    assert len(daemon) >= 50
    assert daemon == [f"daemon {i}" for i in range(len(daemon))]
    assert {record["thread_name"] for record in logs[1:]} == {"daemon-logger"}
    assert "dropped" not in run.get_details()


SHUTDOWN_TWICE = """
import logging
import logbridge

handler = logbridge.RunHandler()
logging.basicConfig(level=logging.INFO, handlers=[handler])
logging.getLogger("app").info("before shutdown")
logging.shutdown()
logging.shutdown()
handler.close()
handler.close()
logging.getLogger("app").info("after shutdown")
"""


def test_logging_shutdown_twice_and_emit_after_close(store: Path) -> None:
    """``logging.shutdown()`` twice and ``close()`` twice are harmless; later records still land."""
    run_script(store, SHUTDOWN_TWICE)
    run = only_run()
    assert run.get_status() == "Completed"
    assert [record["message"] for record in run.get_logs()] == [
        "before shutdown",
        "after shutdown",
    ]


UNCAUGHT = """
import logging
import logbridge

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
logging.getLogger("train").info("about to fail")
raise ValueError("boom at step 7")
"""


def test_uncaught_exception_with_the_handler_on_root(store: Path) -> None:
    """An uncaught exception: exit code 1, traceback printed and stored, run Failed."""
    proc = run_script(store, UNCAUGHT, returncode=1)
    assert proc.stderr.startswith("Traceback (most recent call last):")
    assert proc.stderr.rstrip().endswith("ValueError: boom at step 7")
    run = only_run()
    assert run.get_status() == "Failed"
    logs = run.get_logs()
    assert [record["message"] for record in logs] == [
        "about to fail",
        "Uncaught ValueError: boom at step 7",
    ]
    assert logs[1]["level"] == "CRITICAL"
    assert 'raise ValueError("boom at step 7")' in logs[1]["exception"]
    error = run.get_details()["error"]
    assert error["type"] == "ValueError"
    assert error["message"] == "boom at step 7"


URLLIB3 = """
import http.server, json, logging, threading
import urllib3
import logbridge

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = self.path.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        logging.getLogger("server").debug(format, *args)

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
port = server.server_address[1]

logging.basicConfig(level=logging.DEBUG, handlers=[logbridge.RunHandler()])
pool = urllib3.PoolManager(maxsize=3)

def fetch(worker):
    for i in range(10):
        response = pool.request("GET", f"http://127.0.0.1:{port}/w{worker}/{i}", timeout=10)
        assert response.data == f"/w{worker}/{i}".encode()

threads = [threading.Thread(target=fetch, args=(w,)) for w in range(3)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
server.shutdown()
print(json.dumps({"port": port}))
"""


def test_urllib3_debug_records_are_recorded_without_recursion(store: Path) -> None:
    """urllib3 at DEBUG with RunHandler on root, real requests to a local server, 3 threads.

    Every request's DEBUG record (and the server's access log) is stored exactly once; no
    recursion, no deadlock.
    """
    proc = run_script(store, URLLIB3)
    port = json.loads(proc.stdout)["port"]
    logs = only_run().get_logs()
    pool_logs = [r for r in logs if r["logger"] == "urllib3.connectionpool"]
    requests = collections.Counter(
        r["message"].rsplit(" ", 1)[0] for r in pool_logs if r["message"].startswith("http://")
    )
    assert requests == collections.Counter(
        f'http://127.0.0.1:{port} "GET /w{w}/{i} HTTP/1.1" 200' for w in range(3) for i in range(10)
    )
    assert {r["level"] for r in pool_logs} == {"DEBUG"}
    connections = [r for r in pool_logs if r["message"].startswith("Starting new HTTP")]
    assert 1 <= len(connections) <= 3
    assert len(pool_logs) == 30 + len(connections)
    server_logs = [r for r in logs if r["logger"] == "server"]
    assert len(server_logs) == 30


DICT_CONFIG = """
import io, logging, logging.config, threading
import logbridge

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
app = logging.getLogger("app")

def spin(index):
    for i in range(2000):
        app.info("thread %d record %d", index, i)

threads = [threading.Thread(target=spin, args=(i,)) for i in range(4)]
for thread in threads:
    thread.start()
# A library configures its own logging while the application's records flow: dictConfig
# closes every handler (ours included, which keeps recording) and adds the library's.
alive = []
for round_ in range(5):
    alive.append(sum(thread.is_alive() for thread in threads))
    logging.config.dictConfig({
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "console": {"class": "logging.StreamHandler", "stream": io.StringIO()},
            "run": {"class": "logbridge.RunHandler", "level": "INFO"},
        },
        "loggers": {"lib": {"handlers": ["console", "run"], "level": "INFO",
                            "propagate": False}},
    })
    logging.getLogger("lib").info("library configured %d", round_)
for thread in threads:
    thread.join()
print(alive[0])
"""


def test_dict_config_from_a_library_while_records_flow(store: Path) -> None:
    """A library calling dictConfig() five times while 4 threads log: no deadlock, none lost.

    The application's records (through the closed-but-attached RunHandler on root) and the
    library's (through its own dictConfig-built RunHandler) are each stored exactly once.
    """
    proc = run_script(store, DICT_CONFIG)
    assert proc.stdout == "4\n"
    logs = only_run().get_logs()
    assert messages(r for r in logs if r["logger"] == "app") == collections.Counter(
        f"thread {t} record {i}" for t in range(4) for i in range(2000)
    )
    assert [r["message"] for r in logs if r["logger"] == "lib"] == [
        f"library configured {i}" for i in range(5)
    ]


@pytest.mark.slow
def test_sigterm_while_a_pool_worker_is_leaving_does_not_hang(store: Path) -> None:
    """Repeated `with Pool(4) as p:` under spawn: terminate()'s SIGTERM never hangs a worker.

    Regression: SIGTERM arriving while a worker drained its recorder at exit re-entered the
    drain and waited forever on a lock the interrupted frame held.
    """
    proc = run_script(store, POOL, "spawn", "4", "3", timeout=90)
    assert json.loads(proc.stdout)["parent"] > 0
    logs = only_run().get_logs()
    assert messages(logs) == collections.Counter(
        ["parent start", "parent end"] + [f"item {i}" for i in range(20)] * 3
    )


def test_sigterm_handler_is_installed_for_the_run(store: Path) -> None:
    """Sanity check of the setup the pool tests rely on: SIGTERM ends a run as Canceled."""
    source = """
    import logging, os, signal, time
    import logbridge
    logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
    logging.getLogger("app").info("running")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)
    """
    run_script(store, source, returncode=-signal.SIGTERM)
    run = only_run()
    assert run.get_status() == "Canceled"
    assert [record["message"] for record in run.get_logs()] == ["running"]


FORKED_RANKS = """
import logging, os
import logbridge

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler(experiment="ranks")])
log = logging.getLogger("ranks")
log.info("parent")
logging.getLogger().handlers[0].flush()
children = []
for rank in (1, 2):
    pid = os.fork()
    if pid == 0:
        os.environ["RANK"] = str(rank)
        log.info("child %d", rank)
        logging.shutdown()
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
"""


def test_forked_workers_that_set_their_rank_record_it(store: Path) -> None:
    """A fork child that sets RANK after the fork has its own rank on its records."""
    run_script(store, FORKED_RANKS, env={"RANK": "0"})
    ranks = {r["message"]: r.get("rank") for r in only_run().get_logs()}
    assert ranks == {"parent": "0", "child 1": "1", "child 2": "2"}


SIGTERM_INSIDE = """
import linecache, logging, os, signal, sys
import logbridge

filename, function, text, mode = sys.argv[1:5]
sent = []

def at_line(frame, event, arg):
    if event == "line" and not sent and text in linecache.getline(
        frame.f_code.co_filename, frame.f_lineno
    ):
        sent.append(frame.f_lineno)
        print(len(logged), flush=True)  # how many records were logged when the signal came
        os.kill(os.getpid(), signal.SIGTERM)
    return at_line

def on_call(frame, event, arg):
    code = frame.f_code
    if not sent and code.co_name == function and code.co_filename.endswith(filename):
        return at_line
    return None

run = logbridge.start_run(experiment="sigterm-inside")
log = logging.getLogger("train")
log.setLevel(logging.INFO)
log.addHandler(logbridge.RunHandler())
logged = []
sys.settrace(on_call)
for i in range(20_000):
    log.info("record %d", i, extra={"metrics": {"x": i}, "step": i})
    logged.append(i)
    if mode == "flush" and i % 1000 == 999:
        run.flush()
run.complete()
sys.settrace(None)
print("the signal never came", flush=True)
"""


@pytest.mark.parametrize(
    "case",
    [
        # waking the writer when the queue passes its mark (a threading.Event hung here)
        ("_recorder.py", "set", "self._tokens.put(None)", "log", {"LOGBRIDGE_QUEUE_SIZE": "100"}),
        # a flush waiting for its marker (with a threading.Event, the drain waited out the
        # exit timeout)
        ("_recorder.py", "wait", "self._tokens.get(timeout=timeout)", "flush", {}),
        # the run's own lock, taken as it finishes
        ("_run.py", "_finish", "self._finished = True", "log", {}),
        # counting a record dropped from a full queue
        (
            "_recorder.py",
            "_count_drop",
            "self._drop_log.append(",
            "log",
            {"LOGBRIDGE_QUEUE_SIZE": "10", "LOGBRIDGE_QUEUE_FULL": "drop"},
        ),
    ],
    ids=["wake", "flush-wait", "finish", "count-drop"],
)
def test_sigterm_inside_a_lock_the_exit_needs_does_not_hang(
    store: Path, case: tuple[str, str, str, str, dict[str, str]]
) -> None:
    """SIGTERM arriving while the main thread holds one of the locks the exit drain takes.

    The SIGTERM handler finishes the runs on top of the interrupted frame: a lock that frame
    holds must not make the drain wait for ever (a pool's ``terminate()`` hung this way). The
    signal is sent from inside the lock by a trace function; the process must still end by
    SIGTERM, with its run Canceled and every record logged before the signal stored.
    """
    filename, function, text, mode, env = case
    proc = run_script(
        store,
        SIGTERM_INSIDE,
        filename,
        function,
        text,
        mode,
        returncode=-signal.SIGTERM,
        timeout=30,
        env=env,
    )
    logged = int(proc.stdout.strip())
    run = only_run()
    assert run.get_status() == "Canceled"
    stored = [record["message"] for record in run.get_logs(logger="train")]
    if "LOGBRIDGE_QUEUE_FULL" in env:  # some were dropped, and counted
        drops = run.get_details().get("dropped", {})
        assert len(stored) + sum(drops.values()) >= logged, (len(stored), drops)
        return
    assert stored[:logged] == [f"record {i}" for i in range(logged)]
    assert len(stored) <= logged + 1  # the record being logged when the signal came


FORK_WHILE_RESOLVING = """
import logging, os, signal, sys, threading
import logbridge
from logbridge import _handler, _run

parent = logbridge.start_run(experiment="forks")
held, release = threading.Event(), threading.Event()

def hold(lock):
    with lock:  # a thread of the parent in the middle of finding or starting a run
        held.set()
        release.wait()

for lock in (_handler._resolving, _run._context_lock):
    held.clear()
    threading.Thread(target=hold, args=(lock,), daemon=True).start()
    held.wait()
    pid = os.fork()
    if pid == 0:
        signal.alarm(20)  # a deadlocked child ends itself, not left behind by the test
        log = logging.getLogger("child")
        log.setLevel(logging.INFO)
        log.propagate = False
        log.addHandler(logbridge.RunHandler(run=parent.id))  # resolved at the first record
        log.info("from the child")
        logbridge.Run.get_context()
        logging.shutdown()
        os._exit(0)
    release.set()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    release.clear()
parent.complete()
"""


def test_a_child_forked_while_a_thread_resolves_the_run_does_not_deadlock(store: Path) -> None:
    """The locks around finding or starting the run are new in a forked child: the parent's
    thread that held one is not there to release it."""
    run_script(store, FORK_WHILE_RESOLVING, timeout=30)
    messages = [r["message"] for r in only_run().get_logs()]
    assert messages == ["from the child", "from the child"]
