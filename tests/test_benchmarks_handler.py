"""benchmarks/bench_handler.py runs and prints its figures (a smoke test: no timing is checked)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks" / "bench_handler.py"

pytestmark = pytest.mark.processes


def bench_handler(folder: Path, *args: str) -> str:
    """Run bench_handler.py in ``folder`` and return what it printed; it must succeed."""
    done = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=folder,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def test_bench_handler_prints_every_figure(tmp_path: Path) -> None:
    """A tiny run prints the baseline, RunHandler, references, below-level and memory lines."""
    out = bench_handler(tmp_path, "--records", "300", "--repeat", "1", "--memory-records", "200")
    for expected in (
        "baseline (do-nothing handler)",
        "RunHandler caller CPU:",
        "RunHandler pipeline to flush:",
        "RunHandler, thread writer",
        "RunHandler, Python capture",
        "capture compiled",
        "the caller's minor page faults per call: baseline",
        "stdlib FileHandler",
        "stdlib QueueHandler",
        "python-json-logger file",
        "no-op beside busy thread",
        "OpenTelemetry handler",
        "paced: bursts of 500 tagged calls",
        "below the handler's level",
        "bytes per queued record",
    ):
        assert expected in out, out
    assert not list(tmp_path.iterdir())  # every store and file it made is gone


def test_bench_handler_runs_on_one_cpu(tmp_path: Path) -> None:
    """``--one-cpu`` pins the process before any thread starts and says on which CPU."""
    out = bench_handler(
        tmp_path, "--records", "200", "--repeat", "1", "--no-references",
        "--memory-records", "100", "--one-cpu",
    )  # fmt: skip
    assert "pinned to CPU " in out
    assert "RunHandler caller CPU:" in out
