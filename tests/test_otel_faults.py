"""OpenTelemetry export under faults: a slow collector, fork, exporters logging, gRPC answers."""

from __future__ import annotations

import http.server
import json
import logging
import os
import re
import textwrap
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, ClassVar

import grpc  # type: ignore[import-untyped]
import pytest

import logbridge
from logbridge import _state, otel
from logbridge._otel_pipeline import Pipeline
from test_otel import Collector, _free_port, run_python

pytestmark = pytest.mark.otel


def _pipeline() -> Pipeline:
    (recorder,) = _state._recorders.values()
    (sink,) = [s for s in recorder._sinks if isinstance(s, otel.OtelSink)]
    return sink.pipeline


class _Slow(http.server.BaseHTTPRequestHandler):
    """Answers every request after 30 s (or when the test releases it)."""

    release: ClassVar[threading.Event] = threading.Event()
    requests: ClassVar[list[float]] = []

    def do_POST(self) -> None:
        self.requests.append(time.monotonic())
        self.release.wait(30)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def slow_collector() -> Iterator[tuple[str, type[_Slow]]]:
    class Slow(_Slow):
        release: ClassVar[threading.Event] = threading.Event()
        requests: ClassVar[list[float]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Slow
    finally:
        Slow.release.set()
        server.shutdown()
        server.server_close()


def test_a_slow_collector_never_stalls_the_training(
    slow_collector: tuple[str, type[_Slow]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """30 s per request: logging, run.flush and complete do not wait; timeouts hold; counted."""
    url, slow = slow_collector
    monkeypatch.setenv("LOGBRIDGE_OTEL_EXIT_TIMEOUT", "2")
    otel.enable(endpoint=url, timeout=1)
    run = logbridge.start_run(experiment="slow")
    log = logging.getLogger("slow.train")
    log.setLevel(logging.INFO)
    log.propagate = False
    handler = logbridge.RunHandler(run=run)
    log.addHandler(handler)
    worst = 0.0
    try:
        for i in range(5_000):
            started = time.perf_counter()
            log.info("step %d", i, extra={"metrics": {"loss": 1.0 / (i + 1)}, "step": i})
            worst = max(worst, time.perf_counter() - started)
            if i % 1_000 == 0:
                time.sleep(0.3)  # let the exporter reach the collector mid-loop
    finally:
        log.removeHandler(handler)
    started = time.monotonic()
    assert run.flush(10)
    run.complete()
    assert time.monotonic() - started < 1.5  # the store only: the collector is not waited for
    started = time.monotonic()
    assert not otel.flush(0.5)  # an explicit export flush waits, within its timeout
    assert time.monotonic() - started < 1.5
    pipeline = _pipeline()
    started = time.monotonic()
    _state.reset()
    assert time.monotonic() - started < 4  # LOGBRIDGE_OTEL_EXIT_TIMEOUT=2, plus the store
    assert worst < 0.25
    # The 1 s request timeout was honoured: a request held for 30 s was given up, and the
    # batch tried again after the breaker's pause, while the loop and flushes went on.
    assert len(slow.requests) >= 2
    assert pipeline.sent.total() == 0
    assert pipeline.lost.total() == 15_001  # 5,000 records, 5,000 metric events and points, 1 span
    details = logbridge.get_run(run.id).get_details()
    assert details["dropped"]["otel_export"] == 15_001
    assert len(logbridge.get_run(run.id).get_logs()) == 5_000


@pytest.mark.processes
def test_a_process_exits_in_time_with_a_slow_collector(
    slow_collector: tuple[str, type[_Slow]], tmp_path: Path
) -> None:
    """The default 10 s request timeout is in flight at exit: the process still leaves in ~2 s."""
    url, _ = slow_collector
    script = tmp_path / "train.py"
    script.write_text(
        "import logging, time, logbridge\n"
        "logbridge.basicConfig(experiment='slow', console_level=None)\n"
        "for i in range(2000):\n"
        "    logging.getLogger('t').info('step %d', i)\n"
        "time.sleep(1)\n"  # the first export is now waiting on the collector
    )
    env = _env(tmp_path, LOGBRIDGE_OTEL_EXIT_TIMEOUT="2", OTEL_EXPORTER_OTLP_ENDPOINT=url)
    started = time.monotonic()
    done = run_python(script, env)
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert elapsed < 7, elapsed  # interpreter start, 1 s of sleep, the 2 s export deadline
    assert done.stderr.count("could not be sent") == 1
    assert "within the exit deadline" in done.stderr
    (run,) = logbridge.list_runs(store=tmp_path / "store")
    assert len(run.get_logs()) == 2000


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        **os.environ,
        "LOGBRIDGE_OTEL": "1",
        "LOGBRIDGE_HOME": str(tmp_path / "store"),
        **extra,
    }
    env.pop("LOGBRIDGE_RUN_ID", None)
    return env


_FORK_SCRIPT = """
import logging, os, sys, logbridge
logbridge.basicConfig(experiment="fork", console_level=None)
log = logging.getLogger("t")
for i in range(3000):
    log.info("parent %d", i)
pid = os.fork()  # the recorder and the exporter are busy with the 3,000 records
if pid == 0:
    for i in range(200):
        log.info("child %d", i)
    sys.exit(0)
_, status = os.waitpid(pid, 0)
for i in range(100):
    log.info("parent-after %d", i)
print("child exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.processes
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_fork_while_exporting(tmp_path: Path, protocol: str) -> None:
    """A child forked mid-export sends its own records only, once; nothing hangs."""
    collector = Collector(tmp_path)
    try:
        script = tmp_path / "fork.py"
        script.write_text(_FORK_SCRIPT)
        env = _env(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint(protocol),
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        done = run_python(script, env)
        assert done.returncode == 0, done.stderr
        assert "child exit 0" in done.stdout
        unsent = re.search(r"(\d+) log records of run \w+ could not be sent", done.stderr)
        # Over gRPC a child forked while the parent's channel is busy sometimes cannot open a
        # working channel (docs/opentelemetry.md): its records must then be counted exactly.
        assert unsent is None or protocol == "grpc", done.stderr
        child_unsent = int(unsent.group(1)) if unsent else 0
        assert done.stderr.count("could not be sent") <= 1, done.stderr
        deadline = time.monotonic() + 15
        wanted = (3000, 100, 200 - child_unsent)
        while time.monotonic() < deadline:
            text = collector.text()
            found = tuple(
                text.count(f"Body: Str({kind} ") for kind in ("parent", "parent-after", "child")
            )
            if found == wanted:
                break
            time.sleep(0.2)
        assert found == wanted
    finally:
        collector.stop()


_DEBUG_SCRIPT = """
import logging, sys, threading, logbridge
outside = []
class Count(logging.Handler):
    def emit(self, record):
        if record.threadName.startswith("logbridge-"):
            outside.append(record.name)
logbridge.basicConfig(experiment="debug", level="DEBUG", console_level=None)
logging.getLogger().addHandler(Count())
for name in ("urllib3", "grpc", "opentelemetry", "requests"):
    logging.getLogger(name).setLevel(logging.DEBUG)
log = logging.getLogger("t")
for i in range(1000):
    log.debug("record %d", i)
logbridge.otel.flush(10)
print("outside", len(outside), sorted(set(outside)))
"""


@pytest.mark.processes
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
@pytest.mark.parametrize("listening", [True, False], ids=["collector", "dead"])
def test_exporter_logging_at_debug_does_not_recurse(
    tmp_path: Path, protocol: str, *, listening: bool
) -> None:
    """urllib3/grpc/the exporters at DEBUG, a RunHandler on root: nothing re-enters the run."""
    collector = Collector(tmp_path, verbosity="basic") if listening else None
    try:
        endpoint = collector.endpoint(protocol) if collector else f"http://127.0.0.1:{_free_port()}"
        script = tmp_path / "debug.py"
        script.write_text(textwrap.dedent(_DEBUG_SCRIPT))
        env = _env(
            tmp_path,
            LOGBRIDGE_OTEL_EXIT_TIMEOUT="2",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        )
        done = run_python(script, env)
        assert done.returncode == 0, done.stderr
        assert "Logging error" not in done.stderr
        assert "Traceback" not in done.stderr
        (run,) = logbridge.list_runs(store=tmp_path / "store")
        loggers = {record["logger"] for record in run.get_logs()}
        assert loggers == {"t"}, loggers  # nothing logged on logbridge's threads got in
        assert len(run.get_logs()) == 1000
        if protocol == "http/protobuf":
            # Not vacuous: urllib3 did log at DEBUG on the exporter thread.
            assert "'urllib3.connectionpool'" in done.stdout, done.stdout
        if collector is not None:
            deadline = time.monotonic() + 10
            while collector.received("logs") < 1000 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert collector.received("logs") == 1000
        else:
            assert done.stderr.count("could not be sent") == 1
    finally:
        if collector is not None:
            collector.stop()


class _GrpcAnswers:
    """A gRPC OTLP endpoint answering the status codes it is given, then OK.

    An empty request (the export's probe of a collector) is answered OK and noted apart, so
    the codes go to the batches.
    """

    def __init__(self, codes: list[grpc.StatusCode]) -> None:
        self.codes = codes
        self.seen: list[str] = []
        self.probes = 0
        self._lock = threading.Lock()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            "Export": grpc.unary_unary_rpc_method_handler(
                self._export, request_deserializer=None, response_serializer=None
            )
        }
        for service in (
            "opentelemetry.proto.collector.logs.v1.LogsService",
            "opentelemetry.proto.collector.metrics.v1.MetricsService",
            "opentelemetry.proto.collector.trace.v1.TraceService",
        ):
            self.server.add_generic_rpc_handlers(
                (grpc.method_handlers_generic_handler(service, handlers),)
            )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _export(self, request: bytes, context: Any) -> bytes:
        with self._lock:
            if not request:
                self.probes += 1
                return b""
            code = self.codes.pop(0) if self.codes else grpc.StatusCode.OK
            self.seen.append(code.name)
        if code is not grpc.StatusCode.OK:
            context.abort(code, "as the test asks")
        return b""  # an empty Export*ServiceResponse

    def stop(self) -> None:
        self.server.stop(0)


def test_grpc_unavailable_then_ok_is_delivered_once() -> None:
    """UNAVAILABLE (read by the interceptor) is retried by the pipeline, then delivered once."""
    answers = _GrpcAnswers([grpc.StatusCode.UNAVAILABLE])
    try:
        otel.enable(endpoint=f"http://127.0.0.1:{answers.port}", protocol="grpc")
        run = logbridge.start_run(experiment="grpc-retry")
        run.log("loss", 1.0)
        run.complete()
        assert otel.flush(5)
        pipeline = _pipeline()
        _state.reset()
        assert pipeline.lost.total() == 0
        assert answers.seen[:2] == ["UNAVAILABLE", "OK"]
        assert answers.seen.count("OK") == 3  # logs, metrics, spans: once each
        assert pipeline.sent["metric points"] == 1
    finally:
        answers.stop()


def test_grpc_invalid_argument_is_counted_not_retried(
    capfd: pytest.CaptureFixture[str],
) -> None:
    """INVALID_ARGUMENT is final: one call per signal, the items counted, one line."""
    answers = _GrpcAnswers([grpc.StatusCode.INVALID_ARGUMENT] * 10)
    try:
        otel.enable(endpoint=f"http://127.0.0.1:{answers.port}", protocol="grpc")
        run = logbridge.start_run(experiment="grpc-refused")
        run.log("loss", 1.0)
        run.complete()
        pipeline = _pipeline()
        _state.reset()
        assert answers.seen.count("INVALID_ARGUMENT") == 3
        assert pipeline.lost.total() == 3  # the metric event (a log record), the point, the span
        err = capfd.readouterr().err
        assert err.count("could not be sent") == 1
        assert "gRPC INVALID_ARGUMENT" in err
    finally:
        answers.stop()


def test_a_dead_collector_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Connection refused: the export fails at once (no SDK retry pauses), the breaker opens."""
    monkeypatch.setenv("LOGBRIDGE_OTEL_EXIT_TIMEOUT", "5")
    otel.enable(endpoint=f"http://127.0.0.1:{_free_port()}")
    run = logbridge.start_run(experiment="dead")
    run.log("loss", 1.0)
    assert run.flush(5)
    started = time.monotonic()
    # The first try fails at once; the breaker's next try (0.5 s) fits in 1 s, the one after
    # does not: the flush gives up then instead of waiting for nothing.
    assert not otel.flush(1)
    assert time.monotonic() - started < 0.9
    pipeline = _pipeline()
    assert "connection refused" in pipeline.lost.reason
    started = time.monotonic()
    _state.reset()
    assert time.monotonic() - started < 2  # one more quick try at exit, then counted
    assert pipeline.lost.total() == 2  # the metric event and the point (no span: not ended)
    details = json.dumps(logbridge.get_run(run.id).get_details()["dropped"])
    assert '"otel_export": 2' in details
