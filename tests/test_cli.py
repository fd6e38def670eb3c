"""The command line, called through `main(argv)`: output formats and error paths."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

import logbridge
from logbridge import _commands, _run
from logbridge.cli import main


def _finished_run(name: str = "r1", experiment: str = "exp") -> logbridge.Run:
    run = logbridge.start_run(experiment=experiment, name=name, tags={"team": "nlp"})
    run.log("loss", 0.5, step=0)
    run.log("loss", 0.25, step=1)
    run.log("acc", 0.9)
    logbridge.RunHandler(run=run)
    run.upload_file("notes.txt", _text_file(run.store.parent / "notes.txt", "hello"))
    run.complete()
    return run


def _text_file(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_runs_table_lists_tags_and_latest_metrics(capsys: pytest.CaptureFixture[str]) -> None:
    """The table shows experiment, run, status, tags and the latest scalar values; no colour."""
    run = _finished_run()
    assert main(["runs"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()
    assert header.split() == [
        "EXPERIMENT",
        "RUN",
        "NAME",
        "STATUS",
        "STARTED",
        "DURATION",
        "TAGS",
        "METRICS",
    ]
    assert row.startswith(f"exp         {run.id[:12]}  r1    Completed")
    assert row.endswith("team=nlp  loss=0.25 acc=0.9")
    assert "\x1b[" not in out


def test_runs_json_and_csv_for_pipes(capsys: pytest.CaptureFixture[str]) -> None:
    """--format json gives details with latest metrics; csv the full run id."""
    run = _finished_run()
    assert main(["runs", "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["runId"] == run.id
    assert listed["metrics"] == {"loss": 0.25, "acc": 0.9}
    assert main(["runs", "--format", "csv", "--status", "Completed", "--tag", "team=nlp"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "EXPERIMENT,RUN,NAME,STATUS,STARTED,DURATION,TAGS,METRICS"
    assert lines[1].startswith(f"exp,{run.id},r1,Completed,")


def test_runs_puts_child_runs_under_their_parent(capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep's children follow it, oldest first, marked; runs after it stay on top."""
    sweep = logbridge.start_run(experiment="e", name="sweep")
    for name in ("a", "b"):
        sweep.child_run(name).complete()
    sweep.complete()
    logbridge.start_run(experiment="e", name="later").complete()
    assert main(["runs"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    start, end = header.index("NAME"), header.index("STATUS")
    assert [line[start:end].strip() for line in lines] == ["later", "sweep", "└ a", "└ b"]
    assert main(["runs", "--format", "json"]) == 0
    listed = [d["name"] for d in json.loads(capsys.readouterr().out)]
    assert listed == ["later", "sweep", "a", "b"]


def test_runs_filters_and_empty_store(capsys: pytest.CaptureFixture[str]) -> None:
    """Filters that match nothing print a plain message, exit 0."""
    assert main(["runs"]) == 0
    assert capsys.readouterr().out.startswith("no runs in ")
    _finished_run()
    assert main(["runs", "--experiment", "other", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_csv_cells_that_look_like_formulas_are_quoted(capsys: pytest.CaptureFixture[str]) -> None:
    """A tag such as =cmd|... reaches a spreadsheet as text, not as a formula."""
    logbridge.start_run(experiment="e", name="=HYPERLINK(1)").complete()
    assert main(["runs", "--format", "csv"]) == 0
    assert ",'=HYPERLINK(1)," in capsys.readouterr().out


def test_show_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    """show: details, metric summary, files; --json the whole record."""
    run = _finished_run()
    child = run.child_run("trial")
    child.complete()
    assert main(["show", run.id[:8]]) == 0
    out = capsys.readouterr().out
    assert f"run         {run.id}" in out
    assert "status      Completed" in out
    assert "tag         team=nlp" in out
    assert "loss    scalar  2       0.25" in out
    assert "notes.txt  5" in out
    assert f"{child.id[:12]}  trial  Completed" in out
    assert main(["show", run.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["metrics"] == {"loss": [0.5, 0.25], "acc": 0.9}
    assert shown["children"] == [child.id]


def test_metrics_summary_points_csv_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    """metrics: a summary, one metric's points, and CSV/JSON for pipes."""
    run = _finished_run()
    assert main(["metrics", run.id]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "loss    scalar  2       0.25",
        "acc     scalar  1       0.9",
    ]
    assert main(["metrics", run.id, "loss", "--format", "json"]) == 0
    points = json.loads(capsys.readouterr().out)
    assert [(p["step"], p["value"]) for p in points] == [(0, 0.5), (1, 0.25)]
    assert main(["metrics", run.id, "--format", "csv"]) == 0
    rows = [line.split(",") for line in capsys.readouterr().out.splitlines()]
    assert rows[0] == ["metric", "step", "time", "value"]
    assert [(r[0], r[1], r[3]) for r in rows[1:]] == [
        ("loss", "0", "0.5"),
        ("loss", "1", "0.25"),
        ("acc", "", "0.9"),
    ]
    assert main(["metrics", run.id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"loss": [0.5, 0.25], "acc": 0.9}


def test_logs_filters_and_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    """logs --level and --logger select records; --format json prints one object per line."""
    import logging

    run = logbridge.start_run(experiment="e")
    logger = logging.getLogger("cli.test")
    logger.addHandler(handler := logbridge.RunHandler(run=run))
    logger.setLevel(logging.DEBUG)
    logger.debug("quiet detail")
    logger.warning("loud news")
    logging.getLogger("other").addHandler(handler)
    logging.getLogger("other").warning("elsewhere")
    run.complete()
    logger.removeHandler(handler)
    logging.getLogger("other").removeHandler(handler)
    assert main(["logs", run.id, "--level", "warning", "--logger", "cli.test"]) == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.endswith("WARNING  cli.test: loud news")
    assert main(["logs", run.id, "--format", "json", "--contains", "detail"]) == 0
    (record,) = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert record["message"] == "quiet detail"


def test_logs_follow_ends_with_the_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """logs --follow prints records written while it waits, and returns when the run ends."""
    monkeypatch.setattr(_commands, "FOLLOW_INTERVAL", 0.05)
    run = logbridge.start_run(experiment="e")
    handler = logbridge.RunHandler(run=run)

    def later() -> None:
        time.sleep(0.3)
        import logging

        handler.handle(logging.LogRecord("late", logging.INFO, "", 0, "arrived", None, None))
        run.complete()

    thread = threading.Thread(target=later)
    thread.start()
    assert main(["logs", run.id, "--follow"]) == 0
    thread.join()
    assert capsys.readouterr().out.strip().endswith("INFO     late: arrived")


def test_files_download_and_rm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """files lists, download copies, rm deletes the run with its children."""
    run = _finished_run()
    run.child_run("c").complete()
    assert main(["files", run.id, "--format", "json"]) == 0
    assert [f["name"] for f in json.loads(capsys.readouterr().out)] == ["notes.txt"]
    assert main(["download", run.id, "notes.txt", str(tmp_path / "copy.txt")]) == 0
    assert (tmp_path / "copy.txt").read_text(encoding="utf-8") == "hello"
    capsys.readouterr()
    assert main(["rm", run.id]) == 0
    assert capsys.readouterr().out == f"deleted run {run.id} and 1 child runs\n"
    assert logbridge.list_runs() == []


def test_rm_refuses_a_running_run(capsys: pytest.CaptureFixture[str]) -> None:
    """A run still running is deleted only with --force."""
    run = logbridge.start_run(experiment="e")
    run.flush()
    assert main(["rm", run.id]) == 1
    assert "--force" in _error_line(capsys)
    assert main(["rm", "--force", run.id]) == 0


def test_unknown_run_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command naming a run that is not there: one line on stderr, exit status 1."""
    _finished_run()
    for command in (["show"], ["metrics"], ["logs"], ["files"], ["rm"]):
        assert main([*command, "feedface"]) == 1
        assert _error_line(capsys).startswith("logbridge: error: no run with id 'feedface'")
    assert main(["download", "feedface", "x"]) == 1
    _error_line(capsys)


def test_ambiguous_prefix_names_the_candidates(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A prefix that matches two runs is refused with the matching ids."""
    ids = iter(["abc1" + "0" * 28, "abc2" + "0" * 28])
    monkeypatch.setattr(_run, "uuid", SimpleNamespace(uuid4=lambda: uuid.UUID(next(ids))))
    logbridge.start_run(experiment="e").complete()
    logbridge.start_run(experiment="e").complete()
    assert main(["show", "abc"]) == 1
    line = _error_line(capsys)
    assert "matches several runs" in line
    assert "abc1" in line
    assert main(["show", "abc2"]) == 0


def test_bad_arguments_exit_2_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """Missing or unknown arguments: one line pointing at --help, exit status 2."""
    assert main(["metrics"]) == 2
    assert _error_line(capsys) == (
        "logbridge metrics: error: the following arguments are required: run "
        "(see 'logbridge metrics --help')"
    )
    assert main(["runs", "--format", "xml"]) == 2
    assert "invalid choice: 'xml'" in _error_line(capsys)
    assert main(["run"]) == 2
    assert _error_line(capsys) == (
        "logbridge run: error: name a script (or -m module) to run (see 'logbridge run --help')"
    )
    assert main(["run", "--log-level", "LOUD", "x.py"]) == 2
    assert "unknown log level 'LOUD'" in _error_line(capsys)


def test_bad_values_exit_1_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A missing script, file or level: one line, exit status 1."""
    run = _finished_run()
    assert main(["run", "missing.py"]) == 1
    assert _error_line(capsys) == (
        "logbridge: error: no script 'missing.py' (give a Python file, or -m module)"
    )
    assert main(["logs", run.id, "--level", "LOUD"]) == 1
    assert "unknown log level 'LOUD'" in _error_line(capsys)
    assert main(["download", run.id, "absent.txt"]) == 1
    assert "has no file 'absent.txt'" in _error_line(capsys)
    assert main(["metrics", run.id, "nothing"]) == 1
    assert "has no metric 'nothing'" in _error_line(capsys)


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["run"],
        ["runs"],
        ["show"],
        ["metrics"],
        ["logs"],
        ["files"],
        ["download"],
        ["rm"],
        ["ui"],
    ],
)
def test_help_everywhere(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """--help works for the program and every command, exit status 0."""
    assert main([*command, "--help"]) == 0
    assert "usage: logbridge" in capsys.readouterr().out


def test_version_says_which_capture_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """``--version`` tells whether the logging handler's capture is compiled."""
    from logbridge import _handler

    assert main(["--version"]) == 0
    capture = "compiled" if _handler.COMPILED else "Python"
    assert capsys.readouterr().out == f"logbridge {logbridge.__version__} ({capture} capture)\n"


def test_run_options_stop_at_the_script() -> None:
    """What follows the script belongs to it, even what looks like logbridge's options."""
    from logbridge.cli import _split_script

    assert _split_script(["run", "-e", "x", "--quiet", "s.py", "--quiet", "-e", "y"]) == (
        ["run", "-e", "x", "--quiet"],
        ["s.py", "--quiet", "-e", "y"],
    )
    assert _split_script(["--store", "st", "run", "-m", "pkg.mod", "--help"]) == (
        ["--store", "st", "run"],
        ["-m", "pkg.mod", "--help"],
    )
    assert _split_script(["run", "--", "-odd.py"]) == (["run"], ["-odd.py"])
