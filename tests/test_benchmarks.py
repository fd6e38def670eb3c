"""The benchmarks still run: each one, at a tiny size, prints its figures (timings unchecked)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

pytestmark = pytest.mark.processes


def run_benchmark(script: str, *args: str, timeout: float = 120) -> str:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("LOGBRIDGE_HOME", None)
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_run_log_benchmark_prints_its_figures() -> None:
    """bench_run_log prints caller, process and end-to-end costs, and the queued memory."""
    out = run_benchmark(
        "bench_run_log.py", "--points", "1000", "--names", "1", "20", "--repeat", "1",
        "--memory-points", "500",
    )  # fmt: skip
    assert "1,000 points over 1 metric name(s)" in out
    assert "1,000 points over 20 metric name(s)" in out
    for label in ("end to end (wall, to flush)", "caller thread CPU", "process CPU (to flush)"):
        assert out.count(label) == 2
    assert out.count("points/s (target >= 200,000)") == 2
    assert "bytes per queued point" in out


def test_get_metrics_benchmark_prints_its_figures() -> None:
    """bench_get_metrics checks what it read, and prints both timings and the query plan."""
    out = run_benchmark("bench_get_metrics.py", "--points", "1000", "--repeat", "1")
    assert "run.get_metrics() of 1,000 points" in out
    assert "baseline: raw sqlite3 fetchall" in out
    assert "target: under 1 s" in out
    assert "query plan: SEARCH points USING INDEX points_by_metric" in out
    assert "TEMP B-TREE" not in out


def test_import_benchmark_prints_its_figures() -> None:
    """bench_import compares interpreter starts and lists what import logbridge loads."""
    out = run_benchmark("bench_import.py", "--repeat", "1", "--top", "3")
    assert "baseline: python -c pass" in out
    assert "import logbridge costs" in out
    assert "from logbridge import start_run" in out
    assert "heavy modules loaded at import:" in out


def test_otel_benchmark_checks_the_store_and_the_losses_it_reports() -> None:
    """bench_otel checks every round's store and loss report, and prints the loop's ratio."""
    out = run_benchmark("bench_otel.py", "--records", "500", "--repeat", "2")
    assert "every round: store complete; every unsent item counted" in out
    assert "logging loop with a dead collector:" in out
    assert "(target <= 1.05x)" in out


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_instruction_count_benchmark_prints_its_ratios() -> None:
    """bench_handler_instructions counts every mode under callgrind and prints ratios."""
    out = run_benchmark(
        "bench_handler_instructions.py", "--records", "300", "--structlog", timeout=900
    )
    assert "300 tagged calls, instructions per call" in out
    assert "baseline (do-nothing handler):" in out
    assert "RunHandler, caller's side:" in out
    assert "with the capture in Python:" in out  # the dev install builds the compiled one
    assert "RunHandler, whole pipeline:" in out
    assert "of which the training process:" in out
    assert "structlog chain (JSON):" in out
    assert "RunProcessor in it, caller:    +" in out
