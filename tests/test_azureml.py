"""azureml-core style code, run against `logbridge.azureml` with only the import changed."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import logbridge
from logbridge.azureml import (
    Environment,
    Experiment,
    Run,
    RunDetails,
    ScriptRunConfig,
    Workspace,
    render_html,
)


def test_workspace_from_config_reads_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config.json (found in a parent folder) names the workspace and, locally, its store."""
    (tmp_path / ".azureml").mkdir()
    (tmp_path / ".azureml" / "config.json").write_text(
        json.dumps(
            {
                "subscription_id": "sub",
                "resource_group": "rg",
                "workspace_name": "ml-ws",
                "store": "runs-here",
            }
        ),
        encoding="utf-8",
    )
    (tmp_path / "project").mkdir()
    monkeypatch.chdir(tmp_path / "project")
    ws = Workspace.from_config()
    assert ws.name == "ml-ws"
    assert ws.store == tmp_path / ".azureml" / "runs-here"


def test_workspace_without_config_uses_the_default_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store: Path
) -> None:
    """No config.json anywhere: the default store ($LOGBRIDGE_HOME here)."""
    monkeypatch.chdir(tmp_path)
    ws = Workspace.from_config()
    assert ws.name == "local"
    assert ws.store == store


def test_start_logging_log_and_complete() -> None:
    """The notebook pattern: start_logging, log, log_list, tag, complete, get_metrics."""
    ws = Workspace.from_config()
    experiment = Experiment(workspace=ws, name="notebook-exp")
    run = experiment.start_logging(display_name="try-1")
    assert isinstance(run, Run)
    run.log("alpha", 0.1)
    run.log_list("losses", [0.5, 0.4])
    run.tag("kind", "ridge")
    run.complete()
    assert run.get_status() == "Completed"
    assert run.get_metrics() == {"alpha": 0.1, "losses": [0.5, 0.4]}
    assert [r.name for r in experiment.get_runs()] == ["try-1"]
    assert list(ws.experiments) == ["notebook-exp"]
    assert run.get_portal_url() == f"http://127.0.0.1:5055/#/run/{run.id}"


@pytest.mark.processes
def test_submit_script_run_config_and_wait(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """ScriptRunConfig + Environment + exp.submit + wait_for_completion(show_output=True)."""
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(
        textwrap.dedent(
            """
            import argparse
            from logbridge.azureml import Run
            parser = argparse.ArgumentParser()
            parser.add_argument("--reg", type=float)
            args = parser.parse_args()
            run = Run.get_context()
            run.log("reg", args.reg)
            print("training with", args.reg)
            """
        ),
        encoding="utf-8",
    )
    ws = Workspace.from_config()
    env = Environment("local-env")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = sys.executable
    config = ScriptRunConfig(
        source_directory=str(tmp_path / "src"), script="train.py", arguments=["--reg", 0.5]
    )
    config.run_config.environment = env
    run = Experiment(workspace=ws, name="train-exp").submit(config)
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"
    assert capsys.readouterr().out.splitlines() == [
        "training with 0.5",
        f"run {run.id} Completed",
    ]
    assert run.get_metrics() == {"reg": 0.5}
    assert run.experiment == "train-exp"


@pytest.mark.processes
def test_failed_submit_raises_as_azureml_does(tmp_path: Path) -> None:
    """A failing script: wait_for_completion raises, the details say why."""
    (tmp_path / "bad.py").write_text("raise KeyError('column')\n", encoding="utf-8")
    config = ScriptRunConfig(source_directory=str(tmp_path), script="bad.py")
    run = Experiment(Workspace.from_config(), "bad").submit(config)
    with pytest.raises(logbridge.RunFailedError, match="KeyError"):
        run.wait_for_completion()


def test_run_details_text_summary(capsys: pytest.CaptureFixture[str]) -> None:
    """Outside a notebook, RunDetails(run).show() prints a readable summary."""
    run = Experiment(Workspace.from_config(), "widgets").start_logging(display_name="w")
    run.log("loss", 0.5)
    run.log("loss", 0.25)
    run.complete()
    RunDetails(run).show()
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"Run {run.id} (w) of experiment widgets"
    assert out[1] == "Status: Completed"
    assert out[2:4] == ["METRIC  LATEST", "loss    0.25"]
    assert out[4] == f"Viewer: http://127.0.0.1:5055/#/run/{run.id} (logbridge ui)"


def test_run_details_html_escapes_everything() -> None:
    """The notebook display shows names and values as text."""
    run = Experiment(Workspace.from_config(), "<b>exp</b>").start_logging(
        display_name="<script>x</script>"
    )
    run.log("<img>", "<svg onload=1>")
    run.complete()
    page = render_html(run)
    assert "<script>" not in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "&lt;svg onload=1&gt;" in page


def test_wait_for_own_run_is_refused() -> None:
    """A process cannot wait for the run it is running."""
    run = Experiment(Workspace.from_config(), "self").start_logging()
    with pytest.raises(logbridge.RunStateError, match="wait for itself"):
        run.wait_for_completion()
    run.complete()
    assert run.wait_for_completion()["status"] == "Completed"
