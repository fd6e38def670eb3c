"""`logbridge run` and `logbridge.submit` end to end: real scripts in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

import logbridge

pytestmark = pytest.mark.processes


def _script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def _run(folder: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "logbridge", "run", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _only_run() -> logbridge.Run:
    runs = [r for r in logbridge.list_runs() if r.parent is None]
    assert len(runs) == 1
    return runs[0]


def _messages(run: logbridge.Run, logger: str) -> list[str]:
    return [r["message"] for r in run.get_logs(logger=logger)]


TRAIN = """
    import logging, os, sys
    logging.basicConfig(level=logging.INFO, format="console: %(message)s")
    log = logging.getLogger("train")
    print("hello from stdout")
    for epoch in range(2):
        log.info("epoch %d", epoch, extra={"metrics": {"loss": 1.0 / (epoch + 1)}, "step": epoch})
    log.debug("not at this level")
    os.makedirs("outputs", exist_ok=True)
    with open("outputs/model.txt", "w") as f:
        f.write("weights")
    print("args", sys.argv[1:])
"""


def test_success_records_logging_metrics_output_files_and_status(tmp_path: Path) -> None:
    """A plain script: Completed, exit 0, metrics and records, stdout kept, outputs/ stored."""
    _script(tmp_path, "train.py", TRAIN)
    done = _run(tmp_path, "--tag", "team=nlp", "train.py", "--alpha", "0.1")
    assert done.returncode == 0, done.stderr
    assert "hello from stdout" in done.stdout
    assert "console: epoch 1" in done.stderr  # the script's own basicConfig still configures
    run = _only_run()
    assert run.experiment == "train"
    assert run.get_status() == "Completed"
    assert run.get_tags() == {"team": "nlp"}
    assert run.get_metrics() == {"loss": [1.0, 0.5]}
    assert _messages(run, "train") == ["epoch 0", "epoch 1"]
    assert _messages(run, "stdout") == ["hello from stdout", "args ['--alpha', '0.1']"]
    assert run.get_file_names() == ["outputs/model.txt", "snapshot.zip"]
    assert run.get_properties() == {"logbridge.source": "script"}


def test_uncaught_exception_fails_the_run_with_the_error(tmp_path: Path) -> None:
    """An exception: Failed with its type and message, exit 1, traceback shown as Python does."""
    _script(tmp_path, "bad.py", "def f():\n    raise ValueError('no data')\nf()\n")
    done = _run(tmp_path, "bad.py")
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == "ValueError: no data"
    assert "_script.py" not in done.stderr
    assert "runpy" not in done.stderr
    details = _only_run().get_details()
    assert details["status"] == "Failed"
    assert details["error"]["type"] == "ValueError"
    assert details["error"]["message"] == "no data"
    assert [r["level"] for r in _only_run().get_logs(logger="logbridge.uncaught")] == ["CRITICAL"]


def test_exit_status_is_kept_and_fails_the_run(tmp_path: Path) -> None:
    """sys.exit(3): exit status 3 for logbridge too, run Failed with that status."""
    _script(tmp_path, "three.py", "import sys\nsys.exit(3)\n")
    done = _run(tmp_path, "three.py")
    assert done.returncode == 3
    details = _only_run().get_details()
    assert details["status"] == "Failed"
    assert details["error"] == {"type": "ExitStatus", "message": "the script exited with status 3"}


def test_sigterm_cancels_the_run(tmp_path: Path) -> None:
    """SIGTERM to `logbridge run`: forwarded, run Canceled, exit status 143."""
    _script(
        tmp_path,
        "slow.py",
        """
        import logging, time
        logging.basicConfig(level=logging.INFO)
        logging.getLogger("slow").info("started")
        print("ready", flush=True)
        time.sleep(60)
        """,
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "logbridge", "run", "slow.py"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 143
    process.communicate()
    run = _only_run()
    assert run.get_status() == "Canceled"
    assert _messages(run, "slow") == ["started"]


def test_progress_bars_are_stored_in_their_final_state(tmp_path: Path) -> None:
    """tqdm redraws its bar with carriage returns: the record keeps one line, the last state."""
    _script(
        tmp_path,
        "bar.py",
        """
        import sys
        from tqdm import tqdm
        for _ in tqdm(range(300), file=sys.stderr, mininterval=0, ascii=True):
            pass
        print("after")
        """,
    )
    done = subprocess.run(
        [sys.executable, "-m", "logbridge", "run", "bar.py"],
        cwd=tmp_path,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(b"\r") > 100  # the terminal got every redraw
    lines = _messages(_only_run(), "stderr")
    assert len(lines) == 1
    assert lines[0].startswith("100%|")
    assert "300/300" in lines[0]


def test_ansi_colours_are_stripped_from_the_record_only(tmp_path: Path) -> None:
    """Colour codes reach the terminal but not the stored record."""
    _script(tmp_path, "colour.py", "print('\\x1b[31mred\\x1b[0m and \\x1b[1;32mgreen\\x1b[0m')\n")
    done = _run(tmp_path, "colour.py")
    assert "\x1b[31mred" in done.stdout
    assert _messages(_only_run(), "stdout") == ["red and green"]


def test_quiet_records_without_showing(tmp_path: Path) -> None:
    """--quiet: nothing of the script on the terminal, all of it in the run."""
    _script(tmp_path, "talk.py", "print('quietly')\n")
    done = _run(tmp_path, "--quiet", "talk.py")
    assert done.stdout == ""
    assert _messages(_only_run(), "stdout") == ["quietly"]


def test_child_runs_of_the_script(tmp_path: Path) -> None:
    """Run.get_context() in the script is the run; its child runs hang below it."""
    _script(
        tmp_path,
        "sweep.py",
        """
        from logbridge import Run
        run = Run.get_context()
        for alpha in (0.1, 0.2):
            child = run.child_run(f"alpha={alpha}")
            child.log("score", alpha * 10)
            child.complete()
        run.log("best", 2.0)
        """,
    )
    assert _run(tmp_path, "sweep.py").returncode == 0
    run = _only_run()
    assert run.get_metrics() == {"best": 2.0}
    children = run.get_children()
    assert [c.name for c in children] == ["alpha=0.1", "alpha=0.2"]
    assert [c.get_metrics() for c in children] == [{"score": 1.0}, {"score": 2.0}]
    assert [c.get_status() for c in children] == ["Completed", "Completed"]


def test_module_with_arguments(tmp_path: Path) -> None:
    """-m package.module runs the module as python -m does, with its arguments."""
    _script(tmp_path, "pkg/__init__.py", "")
    _script(tmp_path, "pkg/train.py", "import sys\nprint(__name__, sys.argv[1:])\n")
    done = _run(tmp_path, "-e", "mods", "-m", "pkg.train", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    run = _only_run()
    assert run.experiment == "mods"
    assert _messages(run, "stdout") == ["__main__ ['--epochs', '2']"]


def test_scripts_own_run_handler_does_not_double_records(tmp_path: Path) -> None:
    """A script that adds its own RunHandler to root: each record is stored once."""
    _script(
        tmp_path,
        "own.py",
        """
        import logging, logbridge
        logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()])
        logging.getLogger("own").info("once", extra={"metrics": {"m": 1}})
        """,
    )
    assert _run(tmp_path, "own.py").returncode == 0
    run = _only_run()
    assert _messages(run, "own") == ["once"]
    assert run.get_metrics() == {"m": 1}


def test_log_level_widens_the_record_not_the_console(tmp_path: Path) -> None:
    """--log-level DEBUG records DEBUG although the script's console shows INFO and up."""
    _script(
        tmp_path,
        "levels.py",
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="console: %(message)s")
        logging.getLogger("lv").debug("detail")
        logging.getLogger("lv").info("summary")
        """,
    )
    done = _run(tmp_path, "--log-level", "DEBUG", "levels.py")
    assert "console: summary" in done.stderr
    assert "detail" not in done.stderr
    assert _messages(_only_run(), "lv") == ["detail", "summary"]


def test_a_subprocess_of_the_script_records_into_the_run(tmp_path: Path) -> None:
    """Processes the script starts attach to the same run through the environment."""
    _script(
        tmp_path,
        "parent.py",
        """
        import subprocess, sys
        code = "import logbridge; logbridge.Run.get_context().log('from_child', 7)"
        subprocess.run([sys.executable, "-c", code], check=True)
        """,
    )
    assert _run(tmp_path, "parent.py").returncode == 0
    assert _only_run().get_metrics() == {"from_child": 7}


def test_snapshot_honours_the_ignore_file(tmp_path: Path) -> None:
    """The snapshot holds the script's folder without what .amlignore names, nor outputs/."""
    _script(tmp_path, "job.py", "import os\nos.makedirs('outputs', exist_ok=True)\n")
    _script(tmp_path, "lib/util.py", "X = 1\n")
    _script(tmp_path, "data/big.bin", "0" * 1000)
    _script(tmp_path, ".amlignore", "data/\n*.log\n")
    _script(tmp_path, "debug.log", "noise")
    _script(tmp_path, "outputs/old.txt", "old")
    assert _run(tmp_path, "job.py").returncode == 0
    target = _only_run().download_file("snapshot.zip", tmp_path / "snap.zip")
    with zipfile.ZipFile(target) as archive:
        assert sorted(archive.namelist()) == [".amlignore", "job.py", "lib/util.py"]


def test_submit_streams_output_and_returns_details(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """logbridge.submit runs in the background; wait_for_completion streams its output."""
    _script(tmp_path, "job.py", "import sys\nprint('working on', sys.argv[1])\n")
    run = logbridge.submit("job.py", ["cats"], experiment="bg", source_directory=tmp_path)
    details = run.wait_for_completion(show_output=True)
    assert details["status"] == "Completed"
    assert details["experiment"] == "bg"
    out = capsys.readouterr().out
    assert out.splitlines() == ["working on cats", f"run {run.id} Completed"]


def test_submitted_run_can_be_canceled(tmp_path: Path) -> None:
    """run.cancel() stops the submitted script; the run ends as Canceled."""
    _script(tmp_path, "forever.py", "import time\nprint('up', flush=True)\ntime.sleep(60)\n")
    run = logbridge.submit("forever.py", source_directory=tmp_path)
    deadline = time.monotonic() + 30
    while not run.get_logs(logger="stdout") and time.monotonic() < deadline:
        time.sleep(0.1)
    run.cancel()
    assert run.get_status() == "Canceled"
    assert run.wait_for_completion()["status"] == "Canceled"


def test_failed_submission_raises_on_wait(tmp_path: Path) -> None:
    """wait_for_completion raises RunFailedError for a failed run, as azureml does."""
    _script(tmp_path, "boom.py", "raise RuntimeError('kaput')\n")
    run = logbridge.submit("boom.py", source_directory=tmp_path)
    with pytest.raises(logbridge.RunFailedError, match="RuntimeError: kaput") as caught:
        run.wait_for_completion()
    assert caught.value.details["status"] == "Failed"
    assert run.wait_for_completion(raise_on_error=False)["error"]["type"] == "RuntimeError"
    assert os.environ.get("LOGBRIDGE_RUN_ID") is None
