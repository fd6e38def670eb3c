"""The README's main example runs end to end and records what it says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import logbridge

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.processes
def test_sweep_records_a_parent_run_with_twenty_children(tmp_path: Path) -> None:
    """examples/sweep.py: one Completed sweep run, 20 child runs with alpha, rmse and a model."""
    pytest.importorskip("sklearn")
    store = tmp_path / "store"
    env = {**os.environ, "LOGBRIDGE_HOME": str(store)}
    env.pop("LOGBRIDGE_RUN_ID", None)
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "sweep.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"Runs are in {store}" in done.stdout
    assert "Traceback" not in done.stderr
    runs = logbridge.list_runs(store=store)
    sweeps = [r for r in runs if r.get_details()["parentRunId"] is None]
    assert len(sweeps) == 1
    sweep = sweeps[0]
    assert sweep.get_status() == "Completed"
    children = sweep.get_children()
    assert len(children) == 20
    first = children[0].get_metrics()
    assert first["alpha"] == 0.0
    assert first["rmse"] > 0
    assert children[0].get_file_names() == ["models/model_alpha_0.00.pkl"]
    metrics = sweep.get_metrics()
    assert len(metrics["rmse"]) == 20
    assert metrics["results"]["alpha"][:2] == [0.0, 0.05]
    assert metrics["rmse_by_alpha"] in sweep.get_file_names()
    assert "best_alpha" in sweep.get_tags()
    assert any("best alpha" in r["message"] for r in sweep.get_logs())
