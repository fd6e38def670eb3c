"""Each example runs as a script and records what its docstring says it shows."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from test_processes import check_oracles, only_run

pytestmark = pytest.mark.processes

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(store: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<name>`` with the test's store; check exit code, stderr and the store."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        cwd=store.parent,
        env={**os.environ, "LOGBRIDGE_HOME": str(store)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    check_oracles(store, proc.returncode, proc.stderr, 0)
    assert "Traceback" not in proc.stderr
    assert "logbridge:" not in proc.stderr
    return proc


def test_stdlib_one_handler(store: Path) -> None:
    """The unchanged training script records its whole log and its loss curve."""
    proc = run_example(store, "stdlib_one_handler.py")
    assert (
        proc.stderr.splitlines()[0] == "INFO train: training on 200 points for 20 epochs (lr=0.5)"
    )
    run = only_run()
    assert (run.experiment, run.get_status()) == ("linear", "Completed")
    logs = run.get_logs()
    assert len(logs) == 42
    assert collections.Counter(r["level"] for r in logs) == {"INFO": 22, "DEBUG": 20}
    metrics = run.get_metrics()
    assert len(metrics["loss"]) == 20
    assert metrics["loss"][-1] < metrics["loss"][0]
    assert round(metrics["w"]) == 3
    assert round(metrics["b"]) == 1


def test_dict_config(store: Path) -> None:
    """dictConfig builds the handler with experiment, name and tags; console shows WARNING."""
    proc = run_example(store, "dict_config.py")
    assert proc.stderr == "WARNING app: validation set is small\n"
    run = only_run()
    assert (run.experiment, run.name) == ("dict-config", "from-dict-config")
    assert run.get_tags() == {"config": "dictConfig", "warning": "small-validation"}
    assert [r["message"] for r in run.get_logs()] == [
        "configuration loaded",
        "step 0",
        "step 1",
        "step 2",
        "validation set is small",
    ]
    assert run.get_metrics() == {"accuracy": [0.5, 0.6, 0.7]}


def test_structlog_native(store: Path) -> None:
    """JSON lines on stdout as without logbridge; events, context and metrics in the run."""
    proc = run_example(store, "structlog_native.py")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["event"] for line in lines] == [
        "epoch",
        "epoch",
        "epoch",
        "batch skipped",
        "finished",
    ]
    assert lines[0] == {
        "event": "epoch",
        "job": "demo",
        "level": "info",
        "metrics": {"loss": 1.0},
        "model": "mlp",
        "step": 0,
    }
    run = only_run()
    logs = run.get_logs()
    assert [(r["level"], r["message"]) for r in logs] == [
        ("INFO", "epoch"),
        ("INFO", "epoch"),
        ("INFO", "epoch"),
        ("ERROR", "batch skipped"),
        ("INFO", "finished"),
    ]
    assert {(r["job"], r["model"]) for r in logs} == {("demo", "mlp")}
    assert logs[3]["exception"].rstrip().endswith("ValueError: bad batch")
    assert run.get_metrics() == {"loss": [1.0, 0.5, 0.333]}
    assert run.get_tags() == {"outcome": "ok"}


def test_structlog_stdlib(store: Path) -> None:
    """structlog and stdlib records through one root logger: each stored once, console JSON."""
    proc = run_example(store, "structlog_stdlib.py")
    rendered = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(line["logger"], line["event"]) for line in rendered] == [
        ("library", "library loaded 4 shards"),
        ("trainer", "epoch"),
        ("trainer", "epoch"),
        ("library", "cache is cold"),
    ]
    run = only_run()
    logs = run.get_logs()
    assert [(r["logger"], r["level"], r["message"]) for r in logs] == [
        ("library", "INFO", "library loaded 4 shards"),
        ("trainer", "INFO", "epoch"),
        ("trainer", "INFO", "epoch"),
        ("library", "WARNING", "cache is cold"),
    ]
    assert [r["lr"] for r in logs[1:3]] == [0.01, 0.01]
    assert run.get_metrics() == {"loss": [0.5, 0.25]}


def test_sdk_debug_logs(store: Path) -> None:
    """urllib3's DEBUG records are in the run; the console shows only the INFO lines."""
    proc = run_example(store, "sdk_debug_logs.py")
    console = proc.stderr.splitlines()
    assert [line.split(" ", 2)[2] for line in console] == [
        "INFO     download: downloaded a.txt (18 bytes)",
        "INFO     download: downloaded b.txt (18 bytes)",
        "INFO     download: downloaded c.txt (18 bytes)",
    ]
    run = only_run()
    assert proc.stdout == f"run {run.id}: 4 urllib3 records recorded\n"
    urllib3_logs = run.get_logs(logger="urllib3")
    assert {r["level"] for r in urllib3_logs} == {"DEBUG"}
    assert urllib3_logs[0]["message"].startswith("Starting new HTTP connection (1): 127.0.0.1:")
    assert [r["message"].split('"')[1] for r in urllib3_logs[1:]] == [
        "GET /a.txt HTTP/1.1",
        "GET /b.txt HTTP/1.1",
        "GET /c.txt HTTP/1.1",
    ]
    assert len(run.get_logs(logger="fileserver")) == 3
    assert len(run.get_logs(logger="download")) == 3


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing_pool(store: Path, method: str) -> None:
    """Ten scores from two workers and the best alpha land once each in the parent's run."""
    proc = run_example(store, "multiprocessing_pool.py", method)
    run = only_run()
    assert proc.stdout == f"run {run.id}: best alpha 0.3\n"
    logs = run.get_logs()
    assert len(logs) == 11
    assert sorted(
        r["message"].split(" in process")[0] for r in logs[:-1] if "scored" in r["message"]
    ) == sorted(f"alpha {a / 10:.1f} scored {1 - (a / 10 - 0.3) ** 2:.3f}" for a in range(10))
    parent = {r["process"] for r in logs if r["message"].startswith("best")}
    workers = {r["process"] for r in logs if "scored" in r["message"]}
    assert len(parent) == 1
    assert not parent & workers
    assert len(run.get_metrics()["score"]) == 10
    assert run.get_metrics()["best_alpha"] == 0.3
