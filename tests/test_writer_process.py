"""The writer process: a child that writes a recorder's batches once it has written enough.

In-process tests set ``LOGBRIDGE_WRITER_PROCESS_AFTER`` before the recorder is made; script
tests pass it in the environment. Every test runs a real child (``python -m
logbridge._writer_process``) against the test's real store.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import logbridge
from logbridge import _events as ev
from logbridge import _logrecords, _recorder, _settings, _state, _writer_process
from logbridge._sinks import MemorySink
from test_processes import (
    check_oracles,
    only_run,
    run_script,
    start_script,
    store_locked,
    write_script,
)

AFTER = _settings.WRITER_PROCESS_AFTER


@pytest.fixture
def log() -> Iterator[logging.Logger]:
    """A logger of its own, recording into the process's run through a `RunHandler`."""
    logger = logging.getLogger("writer-process-test")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = logbridge.RunHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)


def recorder_of(run: logbridge.Run) -> _recorder.Recorder:
    found = _state.existing_recorder(run.store)
    assert found is not None
    return found


def with_writer_process(
    log: logging.Logger, experiment: str, records: int
) -> tuple[logbridge.Run, _recorder.Recorder, _writer_process.WriterProcess]:
    """A run whose recorder has a writer process (LOGBRIDGE_WRITER_PROCESS_AFTER=0 set),
    after ``records`` tagged records flushed through it."""
    run = logbridge.start_run(experiment=experiment)
    tagged(log, 0, records)
    assert run.flush(30)
    recorder = recorder_of(run)
    process = recorder._process
    assert process is not None
    return run, recorder, process


def tagged(log: logging.Logger, start: int, stop: int) -> None:
    for i in range(start, stop):
        log.info("step %d of %s", i, "train", extra={"metrics": {"loss": 1 / (i + 1)}, "step": i})


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie nobody has reaped yet does not)."""
    try:
        return ") Z " not in Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"process {pid} still running"
        time.sleep(0.02)


def test_the_writer_process_takes_over_after_its_threshold(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger
) -> None:
    """Below the threshold the thread writes; from the first batch past it a child process
    does, and every record, point and tag lands once, in order."""
    monkeypatch.setenv(AFTER, "3000")
    monkeypatch.setenv(_settings.FLUSH_INTERVAL, "60")  # batches end at the flushes only
    run = logbridge.start_run(experiment="wp")
    tagged(log, 0, 500)
    assert run.flush(30)
    recorder = recorder_of(run)
    assert recorder._process is None
    tagged(log, 500, 5000)
    assert run.flush(30)
    assert recorder._process is None  # that batch took the thread past the threshold
    tagged(log, 5000, 6000)
    run.tag("phase", "late")
    assert run.flush(30)
    process = recorder._process
    assert process is not None
    assert process.pid != os.getpid()
    assert alive(process.pid)
    assert [r["message"] for r in run.get_logs()] == [f"step {i} of train" for i in range(6000)]
    assert run.get_metrics()["loss"] == [1 / (i + 1) for i in range(6000)]
    assert run.get_tags()["phase"] == "late"
    assert process.written > 0
    assert recorder.written >= 6000 * 2
    run.complete()
    assert run.get_status() == "Completed"
    _state.reset()
    wait_gone(process.pid)


class Label:
    """A user's class: the writer process cannot load it, so the parent renders it."""

    def __repr__(self) -> str:
        return "Label()"


class Step(int):
    """An int subclass from the user's module."""


def mixed_records(log: logging.Logger, run: logbridge.Run) -> None:
    log.info("plain %s %d", "a", 1)
    log.warning("tags of a user type", extra={"tags": {"label": Label(), "n": 3}})
    log.info("a user step", extra={"metrics": {"m": 1.5}, "step": Step(7)})
    log.info("extras", extra={"user": Label(), "n": [1, 2]})
    log.info("args of a user type %r", Label())
    log.info("bytes %s and nan", b"\xff", extra={"metrics": {"nan": float("nan"), "bad name!": 1}})
    log.info("a row", extra={"metrics": {"r": logbridge.Row(a=1, b=2.5)}})
    deep: list[Any] = []
    for _ in range(5000):
        deep = [deep]
    # Tag values the writer process cannot load, or pickle cannot even take.
    log.info("odd tags", extra={"tags": {"cls": int, "fn": len, "range": range(3), "deep": deep}})
    try:
        int("boom")
    except ValueError:
        log.exception("failed")
    run.log("direct", 2.0)
    run.log_list("values", [1, 2, 3])
    run.tag("k", "v")


def stored(run: logbridge.Run) -> dict[str, Any]:
    logs = [
        {k: v for k, v in r.items() if k not in ("time", "run_id", "process", "thread")}
        for r in run.get_logs()
    ]
    return {"logs": logs, "metrics": run.get_metrics(), "tags": run.get_tags()}


def test_the_writer_process_stores_what_the_thread_stores(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger, store: Path
) -> None:
    """The same records, user types included (turned into events in the parent), stored by the
    thread and by the writer process: the same log lines, metrics and tags."""
    found = []
    for setting in ("never", "0"):
        monkeypatch.setenv(AFTER, setting)
        run = logbridge.start_run(experiment="same", store=store / setting)
        mixed_records(log, run)
        assert run.flush(30)
        assert (recorder_of(run)._process is None) == (setting == "never")
        found.append(stored(run))
        run.complete()
        _state.reset()
    thread, process = found
    assert len(thread["logs"]) == 9
    assert thread == process


def test_a_killed_writer_process_hands_back_to_the_thread(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    """SIGKILL the writer process while it holds batches it has not acknowledged (it is
    stopped): the parent writes them from its thread, says so once, and loses nothing."""
    monkeypatch.setenv(AFTER, "0")
    monkeypatch.setenv(_settings.FLUSH_INTERVAL, "0.05")
    run, recorder, process = with_writer_process(log, "killed-child", 100)
    os.kill(process.pid, signal.SIGSTOP)
    try:
        tagged(log, 100, 3000)
        deadline = time.monotonic() + 10
        while not process._unacknowledged:
            assert time.monotonic() < deadline, "nothing was sent to the stopped child"
            time.sleep(0.01)
    finally:
        os.kill(process.pid, signal.SIGKILL)
    tagged(log, 3000, 3500)
    assert run.flush(30)
    assert recorder._process is None
    messages = [r["message"] for r in run.get_logs()]
    assert messages == [f"step {i} of train" for i in range(3500)]
    assert run.get_metrics()["loss"] == [1 / (i + 1) for i in range(3500)]
    err = capfd.readouterr().err
    assert err.count("logbridge:") == 1, err
    assert f"the writer process for {run.store} ended" in err
    assert "writing from the training process's thread instead" in err
    run.complete()
    assert run.get_status() == "Completed"


def test_with_a_sink_the_thread_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink takes events in the training process after the store: no writer process."""
    monkeypatch.setenv(AFTER, "0")
    sink = MemorySink()
    _state.add_sink_factory("memory", lambda rec: sink)
    run = logbridge.start_run(experiment="sink")
    for i in range(100):
        run.log("x", i)
    assert run.flush(30)
    assert recorder_of(run)._process is None
    assert [e.value for e in sink.events if type(e) is ev.MetricLogged] == list(range(100))


def test_a_sink_added_later_takes_over_from_the_writer_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The writer process ends (after writing what it holds) when a sink is added."""
    monkeypatch.setenv(AFTER, "0")
    run = logbridge.start_run(experiment="sink-later")
    for i in range(100):
        run.log("x", i)
    assert run.flush(30)
    recorder = recorder_of(run)
    process = recorder._process
    assert process is not None
    sink = MemorySink()
    _state.add_sink_factory("memory", lambda rec: sink)
    for i in range(100, 200):
        run.log("x", i)
    assert run.flush(30)
    assert recorder._process is None
    assert run.get_metrics()["x"] == list(range(200))
    assert [e.value for e in sink.events if type(e) is ev.MetricLogged] == list(range(100, 200))
    wait_gone(process.pid)


def test_the_pipe_carries_only_standard_and_logbridge_types() -> None:
    """The parent refuses to send a user's type (`portable` turns its record into events),
    and the child refuses to load anything else: a pickle naming os.system is an error."""
    with pytest.raises(_writer_process._ForeignTypeError, match="Label"):
        _writer_process.dumps([("run", Label())])
    record = logging.LogRecord("n", 20, "p", 1, "m %r", (Label(),), None)
    tagged = _logrecords.flat(ev.RecordCaptured("run", record, None, None, {"l": Label()}, ()))
    portable = _writer_process.portable([("run", 1), tagged])
    assert portable[0] == ("run", 1)
    assert [type(e) for e in portable[1:]] == [ev.TagsSet, ev.LogRecorded]
    assert portable[2].message == "m Label()"
    _writer_process.dumps(portable)
    evil = pickle.dumps(os.system)
    with pytest.raises(pickle.UnpicklingError, match=r"does not load posix\.system"):
        _writer_process._Unpickler(io.BytesIO(evil)).load()


def test_a_batch_the_writer_process_cannot_read_comes_back(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger
) -> None:
    """The child refuses a batch it cannot load (here pickled with protocol 0, which names
    copyreg._reconstructor); the recorder writes it from its thread at the next sync, and the
    child goes on with the next batches."""
    monkeypatch.setenv(AFTER, "0")
    run, recorder, process = with_writer_process(log, "refused", 10)
    point = ev.MetricLogged(run.id, "refused", "scalar", 2.5, 3, time.time())
    old = pickle.dumps([point], protocol=0)
    with recorder._write_lock:
        process._sent += 1
        process._unacknowledged.append((process._sent, old))
        process._send_frame(_writer_process._FRAME.pack(len(old), process._sent), old)
        recorder._sync_process()
    assert run.get_metrics()["refused"] == 2.5
    tagged(log, 10, 20)
    assert run.flush(30)
    assert recorder._process is process
    assert [r["message"] for r in run.get_logs()] == [f"step {i} of train" for i in range(20)]


def test_an_interpreter_that_never_answers_is_given_up(
    monkeypatch: pytest.MonkeyPatch,
    log: logging.Logger,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """``sys.executable`` is not a Python (an application that embeds one, say) and never
    answers: after the start timeout the thread writes, and stderr says so once."""
    fake = tmp_path / "not-python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    monkeypatch.setattr(_writer_process, "_START_TIMEOUT", 0.5)
    monkeypatch.setenv(AFTER, "0")
    run = logbridge.start_run(experiment="no-python")
    tagged(log, 0, 100)
    assert run.flush(30)
    assert recorder_of(run)._process is None
    tagged(log, 100, 200)
    assert run.flush(30)
    assert len(run.get_logs()) == 200
    err = capfd.readouterr().err
    assert err.count("logbridge:") == 1, err
    assert "could not start a writer process" in err
    assert "did not start within" in err


def test_a_frozen_application_writes_from_the_thread(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger, capfd: pytest.CaptureFixture[str]
) -> None:
    """PyInstaller and the like set sys.frozen: sys.executable is the application itself."""
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv(AFTER, "0")
    run = logbridge.start_run(experiment="frozen")
    tagged(log, 0, 100)
    assert run.flush(30)
    assert recorder_of(run)._process is None
    assert len(run.get_logs()) == 100
    assert "a frozen application has no Python interpreter to start" in capfd.readouterr().err


def test_many_open_files_do_not_stop_the_writer_process(
    monkeypatch: pytest.MonkeyPatch, log: logging.Logger
) -> None:
    """The pipes get descriptors above 1024 (a DataLoader or NCCL opens many): it still works."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1200:
        pytest.skip(f"the hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        monkeypatch.setenv(AFTER, "0")
        run = logbridge.start_run(experiment="fds")
        tagged(log, 0, 100)
        assert run.flush(30)
        process = recorder_of(run)._process
        assert process is not None
        assert process._from_child is not None
        assert process._from_child.fileno() > 1024
        assert len(run.get_logs()) == 100
        _state.reset()
    finally:
        for fd in held:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_no_writer_process_starts_once_the_recorder_closes(store: Path) -> None:
    """Events put after close (late atexit handlers) are written from the caller's thread."""
    recorder = _recorder.Recorder(
        _state._store.SQLiteStore(store), queue_size=10, full_policy="block", process_after=0
    )
    recorder.close(5)
    recorder.put(ev.TagsSet("run", (("k", "v"),)))
    assert recorder._process is None
    assert recorder.written == 1
    recorder.store.close()


@pytest.mark.parametrize(
    ("raw", "expected"), [("", 10_000), ("0", 0), ("250", 250), ("never", None), (" NEVER ", None)]
)
def test_the_threshold_setting(
    monkeypatch: pytest.MonkeyPatch, raw: str, expected: int | None
) -> None:
    monkeypatch.setenv(AFTER, raw)
    assert _settings.writer_process_after() == expected


def test_a_bad_threshold_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(AFTER, "-5")
    with pytest.raises(ValueError, match="LOGBRIDGE_WRITER_PROCESS_AFTER='-5' must be a whole"):
        logbridge.start_run()


# -- in real processes -----------------------------------------------------------------------

KILLED_PARENT = """
import logging, os, sys, time
import logbridge
from logbridge import _state

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log = logging.getLogger("train")
log.info("first")
run = logbridge.Run.get_context()
run.flush()
process = _state.existing_recorder(run.store)._process
print(process.pid, flush=True)
sys.stdin.readline()  # the test stops the writer process meanwhile
for i in range(300):
    log.info("record %d", i, extra={"metrics": {"i": i}, "step": i})
recorder = _state.existing_recorder(run.store)
time.sleep(0.2)
while recorder._queue or recorder._write_lock.locked():  # until all is in the pipe
    time.sleep(0.01)
print("sent", flush=True)
time.sleep(60)
"""


@pytest.mark.processes
def test_a_sigkilled_training_s_writer_process_writes_what_reached_it(store: Path) -> None:
    """The training is SIGKILLed while its writer process is stopped with a batch in the pipe:
    once it runs again, the writer process writes that batch and exits."""
    env = {AFTER: "0", _settings.FLUSH_INTERVAL: "0.05"}
    proc = start_script(store, KILLED_PARENT, env=env, stdin=True)
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        writer = int(proc.stdout.readline())
        os.kill(writer, signal.SIGSTOP)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "sent\n"
        proc.kill()
        proc.wait(30)
        os.kill(writer, signal.SIGCONT)
        wait_gone(writer)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    run = only_run()
    assert [r["message"] for r in run.get_logs()] == ["first"] + [f"record {i}" for i in range(300)]
    assert run.get_metrics()["i"] == list(range(300))


EXIT_WITHOUT_FLUSH = """
import logging, time
import logbridge
from logbridge import _state

logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log = logging.getLogger("train")
for i in range(1_000):
    log.info("record %d", i, extra={"metrics": {"i": i}, "step": i})
run = logbridge.Run.get_context()
run.flush()  # the thread has written 2,000 events: the next batch goes to a writer process
for i in range(1_000, 30_000):
    log.info("record %d", i, extra={"metrics": {"i": i}, "step": i})
recorder = _state.existing_recorder(run.store)
while recorder._process is None:
    time.sleep(0.01)
print(recorder._process.pid, flush=True)
"""


@pytest.mark.processes
def test_exit_waits_for_the_writer_process(store: Path, tmp_path: Path) -> None:
    """A script that logs 30,000 records and exits: by the time it has exited its writer
    process has written everything and exited too; the run is Completed, stderr is empty.

    The script's stderr goes to a file: the writer process shares it, and a pipe would make
    the test wait for the writer process instead of the script.
    """
    script = write_script(store, EXIT_WITHOUT_FLUSH)
    with (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, AFTER: "1000"},
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            timeout=120,
            check=False,
        )
        writer_alive = alive(int(proc.stdout))
        stderr.seek(0)
        err = stderr.read()
    check_oracles(store, proc.returncode, err, 0)
    assert err == ""
    assert not writer_alive
    run = only_run()
    assert run.get_status() == "Completed"
    assert run.get_metrics()["i"] == list(range(30_000))
    assert len(run.get_logs()) == 30_000


PAST_DEADLINE = """
import sys
import logbridge
from logbridge import _state

run = logbridge.start_run(experiment="full")
run.log("x", -1)
run.flush()
print(_state.existing_recorder(run.store)._process.pid, flush=True)
sys.stdin.readline()
for seq in range(100_000):
    run.log("x", seq)
print("exiting", flush=True)
"""


@pytest.mark.processes
def test_exit_past_its_deadline_leaves_the_writer_process_to_finish(
    store: Path, tmp_path: Path
) -> None:
    """Exit with 100,000 points queued and the store locked past a 0.1 s exit deadline.

    The training exits within its deadline and grace, with one line saying what it dropped,
    while its writer process still waits for the lock. Once the lock goes, the writer process
    writes what reached it, in order, and exits. The final status never reached it (the
    writer thread was stuck sending when the training left), so the run reads as Failed, its
    process gone, as with the thread writer in the same case.
    """
    limits = {
        AFTER: "0",
        _settings.FLUSH_INTERVAL: "60",
        _settings.EXIT_TIMEOUT: "0.1",
        _settings.QUEUE_SIZE: "1000000",
    }
    with (tmp_path / "stderr").open("w+") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(write_script(store, PAST_DEADLINE))],
            env={**os.environ, **limits},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        assert proc.stdin is not None
        assert proc.stdout is not None
        writer = int(proc.stdout.readline())
        with store_locked(store):
            proc.stdin.write("go\n")
            proc.stdin.flush()
            assert proc.stdout.readline() == "exiting\n"
            exiting = time.monotonic()
            proc.wait(30)
            took = time.monotonic() - exiting
            waiting = alive(writer)
        wait_gone(writer)
        stderr.seek(0)
        err = stderr.read()
    check_oracles(store, proc.returncode, err, 0)
    assert took < 3
    assert waiting
    assert err.count("logbridge:") == 1, err
    assert "counted as dropped" in err
    values = only_run().get_metrics()["x"]
    assert len(values) > 1
    assert values == list(range(-1, len(values) - 1))
    details = only_run().get_details()
    assert details["status"] == "Failed"
    assert details["error"]["type"] == "ProcessDied"


SIGPIPE_DEFAULT = """
import logging, os, signal, time
import logbridge
from logbridge import _state

signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # as command-line tools often do
logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
log = logging.getLogger("train")
log.info("first")
run = logbridge.Run.get_context()
run.flush()
os.kill(_state.existing_recorder(run.store)._process.pid, signal.SIGKILL)
time.sleep(0.2)
for i in range(1000):
    log.info("record %d", i)
run.flush()
print(len(run.get_logs()), flush=True)
"""


@pytest.mark.processes
def test_a_dead_writer_process_does_not_sigpipe_the_training(store: Path) -> None:
    """A training that restored SIGPIPE's default action, and whose writer process died: the
    next batch is not its death; the thread writes it, and stderr says so once."""
    proc = run_script(store, SIGPIPE_DEFAULT, env={AFTER: "0"}, reports=1)
    assert proc.stdout == "1001\n"
    assert "the writer process for" in proc.stderr
    assert only_run().get_status() == "Completed"
