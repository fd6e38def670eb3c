"""OpenTelemetry export: what a real collector (rotel) receives, and the faults around it."""

from __future__ import annotations

import http.server
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

import logbridge
from logbridge import _events as ev
from logbridge import _sinks, _state, cli, otel
from logbridge._otel_convert import attribute_value, severity
from logbridge._otel_pipeline import Pipeline

pytestmark = pytest.mark.otel
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Collector:
    """A rotel collector on 127.0.0.1 printing what it receives."""

    def __init__(
        self, folder: Path, verbosity: str = "detailed", http_port: int | None = None
    ) -> None:
        try:
            import rotel
        except ImportError:
            pytest.fail("the rotel collector is missing: pip install -e '.[dev]' installs it")
        binary = Path(rotel.__file__).parent / "rotel-agent"
        self.http_port, self.grpc_port = http_port or _free_port(), _free_port()
        self.out = folder / "collector.out"
        self._file = self.out.open("wb")
        self.process = subprocess.Popen(
            [
                str(binary),
                "start",
                "--otlp-http-endpoint",
                f"127.0.0.1:{self.http_port}",
                "--otlp-grpc-endpoint",
                f"127.0.0.1:{self.grpc_port}",
                "--exporter",
                "blackhole",
                "--debug-log",
                "logs",
                "--debug-log",
                "metrics",
                "--debug-log",
                "traces",
                "--debug-log-verbosity",
                verbosity,
                "--pid-file",
                str(folder / "rotel.pid"),
                "--log-file",
                str(folder / "rotel.log"),
            ],
            stdout=self._file,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.http_port), 0.2).close()
                socket.create_connection(("127.0.0.1", self.grpc_port), 0.2).close()
            except OSError:
                time.sleep(0.05)
            else:
                return
        self.stop()
        pytest.fail(f"rotel did not start: {self.text()[-2000:]}")

    def endpoint(self, protocol: str) -> str:
        port = self.grpc_port if protocol == "grpc" else self.http_port
        return f"http://127.0.0.1:{port}"

    def text(self) -> str:
        return _ANSI.sub("", self.out.read_text(errors="replace"))

    def wait_for(self, needle: str, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            time.sleep(0.1)
        return self.text()

    def received(self, kind: str) -> int:
        item = "spans" if kind == "traces" else kind
        return sum(int(n) for n in re.findall(rf"Received {kind}\..*? {item}=(\d+)", self.text()))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()  # only the process this fixture started, by its handle
            self.process.wait(5)
        self._file.close()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    started = Collector(tmp_path)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def fast_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGBRIDGE_OTEL_EXIT_TIMEOUT", "2")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")


def _pipeline() -> Pipeline:
    (recorder,) = _state._recorders.values()
    (sink,) = [s for s in recorder._sinks if isinstance(s, otel.OtelSink)]
    return sink.pipeline


def _log_a_run() -> tuple[logbridge.Run, logbridge.Run]:
    run = logbridge.start_run(experiment="otel-test", name="main", tags={"team": "a"})
    log = logging.getLogger("train.loop")
    log.setLevel(logging.DEBUG)
    handler = logbridge.RunHandler()
    log.addHandler(handler)
    try:
        log.warning("hello %s", "world", extra={"user": {"id": 7}, "lr": 0.25, "ids": [1, 2]})
        log.info("epoch", extra={"metrics": {"loss": 0.5}, "step": 3})
        try:
            _ = 1 / 0
        except ZeroDivisionError:
            log.exception("it broke")
        child = run.child_run("trial-1")
        child.log("acc", 0.875, step=2)
        child.fail(ValueError("bad trial"))
        run.complete()
    finally:
        log.removeHandler(handler)
    return run, child


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_a_run_arrives_at_the_collector(collector: Collector, protocol: str) -> None:
    """Logs (severity, body, attributes, ids), gauges, metric events and spans all arrive."""
    otel.enable(endpoint=collector.endpoint(protocol), protocol=protocol)
    run, child = _log_a_run()
    pipeline = _pipeline()
    _state.reset()
    assert pipeline.lost.total() == 0
    text = collector.wait_for("Name           : main")
    text = collector.wait_for("Value: 0.875") if "Value: 0.875" not in text else text
    trace = run.id
    assert f"Trace ID       : {trace}" in text
    assert "SeverityNumber: SEVERITY_NUMBER_WARN(13)" in text
    assert "Body: Str(hello world)" in text
    assert "-> lr: Double(0.25)" in text
    assert '-> user: Str({"id": 7})' in text  # a dict is kept as JSON, not dropped
    assert "-> code.function.name: Str(_log_a_run)" in text
    assert "-> exception.type: Str(ZeroDivisionError)" in text
    assert "-> service.name: Str(otel-test)" in text
    assert f"-> logbridge.run.id: Str({run.id})" in text
    assert "EventName: logbridge.metric" in text
    assert "-> logbridge.metric.name: Str(loss)" in text
    assert "-> logbridge.metric.step: Int(3)" in text
    assert "DataType: Gauge" in text
    assert "Value: 0.5" in text
    assert "Name           : trial-1" in text
    assert f"Parent ID      : {run.id[16:]}" in text
    assert f"ID             : {child.id[16:]}" in text
    assert "Status code    : STATUS_CODE_ERROR" in text
    assert "Status message : ValueError: bad trial" in text


def test_100k_records_are_all_delivered(tmp_path: Path) -> None:
    """100,000 records logged as fast as possible all reach a healthy collector."""
    quiet = Collector(tmp_path, verbosity="basic")
    try:
        otel.enable(endpoint=quiet.endpoint("http/protobuf"))
        run = logbridge.start_run(experiment="bulk")
        log = logging.getLogger("bulk")
        log.setLevel(logging.INFO)
        handler = logbridge.RunHandler()
        log.addHandler(handler)
        for i in range(100_000):
            log.info("record %d", i)
        log.removeHandler(handler)
        run.complete()
        pipeline = _pipeline()
        _state.reset()
        assert pipeline.lost.total() == 0
        assert pipeline.sent["log records"] == 100_000
        deadline = time.monotonic() + 20
        while (quiet.received("logs"), quiet.received("traces")) != (100_000, 1) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert quiet.received("logs") == 100_000
        assert quiet.received("traces") == 1
    finally:
        quiet.stop()


def test_collector_down_keeps_the_store_and_counts(
    fast_exit: None, capfd: pytest.CaptureFixture[str]
) -> None:
    """Nothing listening: the store is complete, every record counted, one line, quick exit."""
    otel.enable(endpoint=f"http://127.0.0.1:{_free_port()}")
    run = logbridge.start_run(experiment="down")
    for i in range(2_000):
        run.log("loss", float(i), step=i)
    run.complete()
    started = time.monotonic()
    _state.reset()
    assert time.monotonic() - started < 4
    details = logbridge.get_run(run.id).get_details()
    assert len(logbridge.get_run(run.id).get_metrics()["loss"]) == 2_000
    assert details["dropped"]["otel_export"] >= 2_000
    err = capfd.readouterr().err
    assert err.count(f"of run {run.id} could not be sent") == 1
    assert f"logbridge export {run.id}" in err


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each batch with the next of ``codes`` (then 200); an empty request (the
    export's probe of a collector) with 200, noted apart in ``probes``."""

    codes: ClassVar[list[int]] = []
    seen: ClassVar[list[int]] = []
    probes: ClassVar[list[int]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if body:
            code = self.codes.pop(0) if self.codes else 200
            self.seen.append(code)
        else:
            code = 200
            self.probes.append(code)
        self.send_response(code)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[tuple[str, type[_Answers]]]:
    class Answers(_Answers):
        codes: ClassVar[list[int]] = []
        seen: ClassVar[list[int]] = []
        probes: ClassVar[list[int]] = []

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", Answers
    finally:
        server.shutdown()
        server.server_close()


def test_503_then_200_is_delivered_once(answering: tuple[str, type[_Answers]]) -> None:
    """A 503 is retried (with backoff) and the batch is then delivered, nothing lost."""
    url, answers = answering
    answers.codes = [503]
    otel.enable(endpoint=url)
    run = logbridge.start_run(experiment="retry")
    run.log("loss", 1.0)
    run.complete()
    pipeline = _pipeline()
    _state.reset()
    assert pipeline.lost.total() == 0
    assert answers.seen[:2] == [503, 200]
    assert len(answers.probes) == 1  # before the first batch (the SDK retried the 503 itself)
    assert pipeline.sent["metric points"] == 1


def test_400_is_not_retried_but_counted(
    answering: tuple[str, type[_Answers]], capfd: pytest.CaptureFixture[str]
) -> None:
    """A 400 is final: no retry, the items counted and reported once."""
    url, answers = answering
    answers.codes = [400] * 10
    otel.enable(endpoint=url)
    run = logbridge.start_run(experiment="refused")
    run.log("loss", 1.0)
    run.complete()
    pipeline = _pipeline()
    _state.reset()
    assert answers.seen.count(400) == 3  # logs, metrics, traces: one request each
    assert pipeline.lost.total() == 3
    assert "HTTP 400" in capfd.readouterr().err


def test_collector_killed_mid_run(collector: Collector, fast_exit: None) -> None:
    """The collector goes away mid-run: the store keeps everything, the rest is counted."""
    otel.enable(endpoint=collector.endpoint("http/protobuf"))
    run = logbridge.start_run(experiment="killed")
    for i in range(100):
        run.log("early", float(i))
    assert otel.flush(10)
    collector.stop()
    for i in range(100):
        run.log("late", float(i))
    run.complete()
    pipeline = _pipeline()
    started = time.monotonic()
    _state.reset()
    assert time.monotonic() - started < 4
    assert pipeline.sent["metric points"] == 100
    assert pipeline.lost.total() >= 100
    metrics = logbridge.get_run(run.id).get_metrics()
    assert len(metrics["early"]) == len(metrics["late"]) == 100


def test_a_collector_that_starts_late_gets_everything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody listening at first: once the collector is up, a probe of the circuit breaker
    finds it and everything buffered meanwhile is delivered, nothing counted as lost."""
    monkeypatch.setenv("LOGBRIDGE_OTEL_EXIT_TIMEOUT", "30")
    port = _free_port()
    otel.enable(endpoint=f"http://127.0.0.1:{port}")
    run = logbridge.start_run(experiment="late")
    for i in range(100):
        run.log("loss", float(i), step=i)
    assert run.flush(5)
    assert not otel.flush(0.2)  # the probe was refused: the breaker is open
    pipeline = _pipeline()
    assert "connection refused" in pipeline.lost.reason
    assert pipeline.sent["metric points"] == 0
    late = Collector(tmp_path, verbosity="basic", http_port=port)
    try:
        assert otel.flush(20)
        run.complete()
        _state.reset()
        assert pipeline.lost.total() == 0
        assert pipeline.sent["metric points"] == 100
        deadline = time.monotonic() + 10
        while late.received("traces") < 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (late.received("logs"), late.received("traces")) == (100, 1)
    finally:
        late.stop()


def test_replay_sends_the_original_ids(collector: Collector, fast_exit: None) -> None:
    """A run recorded while no collector listened is replayed later with its own ids."""
    run = logbridge.start_run(experiment="offline")
    run.log("loss", 0.25, step=1)
    logging.getLogger("offline").addHandler(handler := logbridge.RunHandler())
    logging.getLogger("offline").warning("recorded offline")
    logging.getLogger("offline").removeHandler(handler)
    run.complete()
    code = cli.main(["export", run.id[:8], "--endpoint", collector.endpoint("grpc"),
                     "--protocol", "grpc"])  # fmt: skip
    assert code == 0
    text = collector.wait_for("Name           : offline-")
    assert "Body: Str(recorded offline)" in text
    assert f"Trace ID       : {run.id}" in text
    assert "-> logbridge.metric.value: Double(0.25)" in text


@pytest.mark.processes
def test_a_process_with_a_dead_collector_exits_in_time(tmp_path: Path) -> None:
    """LOGBRIDGE_OTEL=1 and nobody listening: the script exits within the documented time."""
    script = tmp_path / "train.py"
    script.write_text(
        "import logging, logbridge\n"
        "logbridge.basicConfig(experiment='proc', console_level=None)\n"
        "for i in range(5000):\n"
        "    logging.getLogger('t').info('step %d', i, extra={'metrics': {'x': i}})\n"
    )
    env = {
        **os.environ,
        "LOGBRIDGE_OTEL": "1",
        "LOGBRIDGE_OTEL_EXIT_TIMEOUT": "2",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{_free_port()}",
        "LOGBRIDGE_HOME": str(tmp_path / "store"),
    }
    env.pop("LOGBRIDGE_RUN_ID", None)
    started = time.monotonic()
    done = run_python(script, env)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 8
    assert done.stderr.count("could not be sent") == 1
    (run,) = logbridge.list_runs(store=tmp_path / "store")
    assert len(run.get_logs()) == 5000
    assert run.get_details()["dropped"]["otel_export"] >= 5000


def test_the_sink_seam_hands_over_what_was_stored() -> None:
    """A sink gets each stored batch; only an explicit sink flush and close wait for it."""
    sink = _sinks.MemorySink()
    _state.add_sink_factory("memory", lambda rec: sink)
    run = logbridge.start_run(experiment="seam")
    run.log("x", 1.0)
    assert run.flush(5)
    run.complete()
    assert sink.flushes == 0  # a run's flush and completion never wait for a sink
    (recorder,) = _state._recorders.values()
    assert recorder.flush(5, sinks=True)
    assert sink.flushes == 1
    _state.reset()
    kinds = [type(e) for e in sink.events]
    assert kinds[0] is ev.RunStarted
    assert ev.MetricLogged in kinds
    assert kinds[-1] is ev.RunFinished
    assert sink.shut_down


def test_severity_and_attribute_mapping() -> None:
    """Levels map to OpenTelemetry severities; values OTel cannot hold become JSON text."""
    assert [severity(n).value for n in (5, 10, 20, 25, 30, 40, 50, 60)] == [
        3, 5, 9, 11, 13, 17, 21, 24,
    ]  # fmt: skip
    assert attribute_value({"a": [1, 2]}) == '{"a": [1, 2]}'
    assert attribute_value([1, 2]) == [1, 2]
    assert attribute_value([1, "a"]) == '[1, "a"]'
    assert attribute_value(2**70) == str(2**70)
    assert attribute_value(None) == "null"


def run_python(script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter with ``env``; its output captured, 60 s at most."""
    return subprocess.run(
        [sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
