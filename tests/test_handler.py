"""RunHandler and basicConfig: every way of configuring them, tagging, capture and bad input."""

from __future__ import annotations

import collections
import contextlib
import io
import logging
import logging.config
import math
import sqlite3
import sys
import textwrap
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

import logbridge
from logbridge import _handler, _state


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A private logger at DEBUG that does not propagate, cleaned up after the test."""
    log = logging.getLogger("test.handler")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for h in list(log.handlers):
        log.removeHandler(h)


@pytest.fixture
def clean_root() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and level restored after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    _handler._configured.clear()
    logging.captureWarnings(False)


def test_records_land_in_the_run_log_with_their_fields(logger: logging.Logger) -> None:
    """Every record becomes a log entry with time, level, logger, message, process, thread."""
    run = logbridge.start_run(experiment="h")
    logger.addHandler(logbridge.RunHandler())
    logger.debug("hello %s", "world")
    logger.warning("careful")
    logs = run.get_logs()
    assert [(r["level"], r["logger"], r["message"]) for r in logs] == [
        ("DEBUG", "test.handler", "hello world"),
        ("WARNING", "test.handler", "careful"),
    ]
    first = logs[0]
    assert isinstance(first["time"], float)
    assert first["thread_name"] == "MainThread"
    assert first["process"] > 0
    assert first["function"] == "test_records_land_in_the_run_log_with_their_fields"


def test_get_logs_filters_by_level_logger_and_text(logger: logging.Logger) -> None:
    """get_logs(level=, logger=, contains=) filter as documented."""
    run = logbridge.start_run()
    handler = logbridge.RunHandler()
    logger.addHandler(handler)
    child = logging.getLogger("test.handler.child")
    logger.info("parent info")
    child.error("child error")
    logging.getLogger("test.handlerx").addHandler(handler)
    logging.getLogger("test.handlerx").error("sibling with a shared prefix")
    assert [r["message"] for r in run.get_logs(level="ERROR")] == [
        "child error",
        "sibling with a shared prefix",
    ]
    assert [r["message"] for r in run.get_logs(level=logging.ERROR, logger="test.handler")] == [
        "child error"
    ]
    assert [r["message"] for r in run.get_logs(contains="info")] == ["parent info"]
    logging.getLogger("test.handlerx").removeHandler(handler)


def test_tagged_records_become_metrics_and_tags(logger: logging.Logger) -> None:
    """extra={"metrics", "step", "tags"} records metrics with the step, and sets tags."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    for epoch in range(3):
        logger.info(
            "epoch %d",
            epoch,
            extra={"metrics": {"loss": 1.0 / (epoch + 1), "acc": 0.5}, "step": epoch},
        )
    logger.info("tags", extra={"tags": {"phase": "eval", "seed": 3}})
    logger.info(
        "rich values",
        extra={
            "metrics": {
                "curve": logbridge.Row(recall=0.5, precision=0.8),
                "hist": logbridge.List([1, 2, 3]),
                "table": logbridge.Table({"x": [1, 2], "y": [3, 4]}),
            }
        },
    )
    metrics = run.get_metrics()
    assert metrics["loss"] == [1.0, 0.5, 1.0 / 3]
    assert metrics["acc"] == [0.5, 0.5, 0.5]
    assert metrics["curve"] == {"recall": 0.5, "precision": 0.8}
    assert metrics["hist"] == [1, 2, 3]
    assert metrics["table"] == {"x": [1, 2], "y": [3, 4]}
    assert run.get_tags() == {"phase": "eval", "seed": "3"}
    record = run.get_logs(contains="epoch 1")[0]
    assert record["metrics"] == {"loss": 0.5, "acc": 0.5}
    assert record["step"] == 1


def test_tagged_image_is_stored_as_a_file(logger: logging.Logger, tmp_path: Path) -> None:
    """An Image value in a tagged record stores the file and references it."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    png = tmp_path / "cm.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n")
    logger.info("confusion", extra={"metrics": {"cm": logbridge.Image(path=png)}})
    ref = run.get_metrics()["cm"]
    assert ref in run.get_file_names()


def test_what_is_recorded_is_what_was_true_at_the_call(logger: logging.Logger) -> None:
    """Mutating message arguments, metrics, tags and extras after the call changes nothing."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    config = {"lr": 0.1}
    metrics = {"loss": 0.5}
    tags = {"phase": "train"}
    extra_list = [1, 2]
    logger.info(
        "config %s",
        config,
        extra={"metrics": metrics, "tags": tags, "history": extra_list, "step": 1},
    )
    config["lr"] = 99
    metrics["loss"] = 99
    tags["phase"] = "changed"
    extra_list.append(3)
    record = run.get_logs()[0]
    assert record["message"] == "config {'lr': 0.1}"
    assert record["history"] == [1, 2]
    assert run.get_metrics() == {"loss": 0.5}
    assert run.get_tags() == {"phase": "train"}


def test_bad_metrics_keep_the_record_and_the_valid_metrics(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """Invalid names and values are dropped visibly; valid metrics beside them are kept."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    for _ in range(3):
        logger.info(
            "mixed",
            extra={"metrics": {"ok": 1.0, "bad\nname": 2.0, "obj": object(), 5: 1}, "step": 1},
        )
    logger.info("not a mapping", extra={"metrics": [1, 2]})
    logger.info("bad step", extra={"metrics": {"s": 1}, "step": "x"})
    assert run.get_metrics()["ok"] == [1.0, 1.0, 1.0]
    assert run.get_metrics()["s"] == 1
    logs = run.get_logs()
    assert len(logs) == 5
    problems = logs[0]["logbridge_problems"]
    assert len(problems) == 3
    assert any("forbidden character" in p for p in problems)
    assert any("builtins.object" in p for p in problems)
    assert any("must be a str" in p for p in problems)
    assert "metrics must be a mapping" in logs[3]["logbridge_problems"][0]
    assert "step" in logs[4]["logbridge_problems"][0]
    assert run.get_details()["dropped"] == {"invalid_metric": 9}
    err = capsys.readouterr().err
    assert err.count("logbridge: a log record was kept") <= 3
    assert "Traceback" not in err


class _Raising:
    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_messages_that_cannot_be_formatted_are_kept_raw(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad %d or a __str__ that raises: the raw message and a marker, nothing raised."""
    run = logbridge.start_run()
    # Only our handler: pytest's capture handlers re-raise formatting errors inside tests.
    logger.handlers = [logbridge.RunHandler()]
    logger.info("number %d", "x")
    logger.info("object %s", _Raising())
    logger.info(_Raising())
    messages = [r["message"] for r in run.get_logs()]
    assert messages[0].startswith("number %d [logbridge: message could not be formatted")
    assert messages[1].startswith("object %s [logbridge: message could not be formatted")
    assert "<unrepresentable _Raising>" in messages[1]
    assert "could not be formatted" in messages[2]
    err = capsys.readouterr().err
    assert "--- Logging error ---" not in err


def test_extras_of_any_shape_are_json_safe(logger: logging.Logger) -> None:
    """Cycles, deep nesting, bytes, bad Unicode, NaN and non-str keys become valid JSON."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    cycle: list[object] = [1]
    cycle.append(cycle)
    deep: list[object] = []
    node = deep
    for _ in range(10_000):
        child: list[object] = []
        node.append(child)
        node = child
    logger.info(
        "odd extras",
        extra={
            "cycle": cycle,
            "deep": deep,
            "raw": b"\xff\xfeok",
            "surrogate": "bad\udcff",
            "nan": math.nan,
            "keys": {1: "one", (2, 3): "pair"},
            "unrepr": _Raising(),
        },
    )
    logger.info("surrogate in message \udcff and NUL \x00 and ANSI \x1b[31m")
    first, second = run.get_logs()
    assert first["cycle"] == [1, "<cycle>"]
    assert "nested deeper than" in str(first["deep"])
    assert first["raw"] == "\\xff\\xfeok"
    assert first["surrogate"] == "bad\\udcff"
    assert first["nan"] == "NaN"
    assert first["keys"] == {"1": "one", "(2, 3)": "pair"}
    assert first["unrepr"] == "<unrepresentable _Raising>"
    assert second["message"] == "surrogate in message \\udcff and NUL \x00 and ANSI \x1b[31m"


def test_huge_messages_are_cut_with_their_size(logger: logging.Logger) -> None:
    """A 10 MB message is stored cut to 1,000,000 characters, saying its full length."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    logger.info("x" * 10_000_000)
    message = run.get_logs()[0]["message"]
    assert message.endswith("...[logbridge: cut, 10000000 characters in all]")
    assert len(message) < 1_000_100


def test_exceptions_and_stack_info_are_recorded(logger: logging.Logger) -> None:
    """logger.exception stores the traceback; stack_info=True stores the stack."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    try:
        _ = 1 / 0
    except ZeroDivisionError:
        logger.exception("failed")
    logger.info("where", stack_info=True)
    failed, where = run.get_logs()
    assert "ZeroDivisionError: division by zero" in failed["exception"]
    assert "test_exceptions_and_stack_info_are_recorded" in where["stack"]


def test_handler_added_twice_records_once(logger: logging.Logger) -> None:
    """Two RunHandlers on the path of one record store it once."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    logger.addHandler(logbridge.RunHandler())
    parent = logging.getLogger("test")
    parent_handler = logbridge.RunHandler()
    parent.addHandler(parent_handler)
    logger.propagate = True
    try:
        logger.info("once")
    finally:
        parent.removeHandler(parent_handler)
    assert [r["message"] for r in run.get_logs()] == ["once"]


def test_without_a_run_the_handler_starts_one_lazily(logger: logging.Logger) -> None:
    """No run yet: the first record starts one with the handler's options; later ones reuse it."""
    handler = logbridge.RunHandler(experiment="lazy", name="first", tags={"k": "v"})
    logger.addHandler(handler)
    assert logbridge.list_runs() == []
    logger.info("one")
    logger.info("two")
    run = logbridge.Run.get_context()
    assert (run.experiment, run.name, run.get_tags()) == ("lazy", "first", {"k": "v"})
    assert [r["message"] for r in run.get_logs()] == ["one", "two"]


@pytest.mark.parametrize("options", [{}, {"experiment": "raced"}])
def test_threads_racing_their_first_records_start_one_run(
    logger: logging.Logger, options: dict[str, str]
) -> None:
    """Threads whose first records reach a handler without a run at once share one new run.

    The handler takes no lock around emit, so the slow path that starts the run holds its own.
    """
    logger.addHandler(logbridge.RunHandler(**options))
    start = threading.Barrier(8)

    def first_records(index: int) -> None:
        start.wait()
        for i in range(3):
            logger.info("thread %d record %d", index, i)

    threads = [threading.Thread(target=first_records, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    (run,) = logbridge.list_runs()
    assert len(run.get_logs()) == 24


def test_an_explicit_run_or_run_id(logger: logging.Logger) -> None:
    """run= binds the handler to a given run, by object or by id."""
    current = logbridge.start_run(experiment="current")
    other = logbridge.start_run(experiment="other")
    logger.addHandler(logbridge.RunHandler(run=other))
    logger.info("to other")
    logger.handlers.clear()
    logger.addHandler(logbridge.RunHandler(run=other.id))
    logger.info("by id")
    assert [r["message"] for r in other.get_logs()] == ["to other", "by id"]
    assert current.get_logs() == []


def test_bad_options_fail_at_configuration_time() -> None:
    """Wrong option types raise in the constructor, never later in emit."""
    with pytest.raises(TypeError):
        logbridge.RunHandler(run=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="experiment"):
        logbridge.RunHandler(experiment="")
    with pytest.raises(TypeError):
        logbridge.RunHandler(tags=["a"])  # type: ignore[arg-type]


def test_dict_config(clean_root: logging.Logger, store: Path) -> None:
    """dictConfig builds the handler from "class" and keyword arguments."""
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {
                "run": {
                    "class": "logbridge.RunHandler",
                    "level": "INFO",
                    "experiment": "dict-config",
                    "tags": {"source": "dictConfig"},
                }
            },
            "root": {"level": "DEBUG", "handlers": ["run"]},
        }
    )
    logging.getLogger("app").debug("below the handler level")
    logging.getLogger("app").info("configured")
    run = logbridge.Run.get_context()
    assert run.experiment == "dict-config"
    assert run.get_tags() == {"source": "dictConfig"}
    assert [r["message"] for r in run.get_logs()] == ["configured"]


def test_file_config(clean_root: logging.Logger, tmp_path: Path) -> None:
    """fileConfig builds the handler from class, args and kwargs."""
    ini = tmp_path / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            """
            [loggers]
            keys=root
            [handlers]
            keys=run
            [formatters]
            keys=
            [logger_root]
            level=DEBUG
            handlers=run
            [handler_run]
            class=logbridge.RunHandler
            level=DEBUG
            args=()
            kwargs={"experiment": "file-config"}
            """
        )
    )
    logging.config.fileConfig(ini, disable_existing_loggers=False)
    logging.getLogger("app").info("from fileConfig")
    run = logbridge.Run.get_context()
    assert run.experiment == "file-config"
    assert [r["message"] for r in run.get_logs()] == ["from fileConfig"]


def test_stdlib_basic_config(clean_root: logging.Logger) -> None:
    """logging.basicConfig(handlers=[RunHandler()]) works as is."""
    for h in list(clean_root.handlers):
        clean_root.removeHandler(h)
    logging.basicConfig(level=logging.INFO, handlers=[logbridge.RunHandler()], force=True)
    logging.getLogger("lib").info("via basicConfig")
    assert [r["message"] for r in logbridge.Run.get_context().get_logs()] == ["via basicConfig"]


def test_logbridge_basic_config_debug_to_run_info_to_console(
    clean_root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    """DEBUG from every library reaches the run; the console shows INFO; no duplicates."""
    for h in list(clean_root.handlers):
        clean_root.removeHandler(h)
    run = logbridge.basicConfig(experiment="sdk", levels={"noisy": "WARNING"})
    run_again = logbridge.basicConfig(experiment="sdk", levels={"noisy": "WARNING"})
    assert run_again == run
    assert len(clean_root.handlers) == 2
    logging.getLogger("botocore.hooks").debug("sdk debug")
    logging.getLogger("app").info("app info")
    logging.getLogger("noisy").info("hidden")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("deprecated thing", DeprecationWarning, stacklevel=1)
    logs = run.get_logs()
    assert [(r["logger"], r["level"]) for r in logs] == [
        ("botocore.hooks", "DEBUG"),
        ("app", "INFO"),
        ("py.warnings", "WARNING"),
    ]
    err = capsys.readouterr().err
    assert "app info" in err
    assert "sdk debug" not in err
    logging.getLogger("noisy").setLevel(logging.NOTSET)


def test_basic_config_rejects_bad_levels(clean_root: logging.Logger) -> None:
    """Unknown level names fail at configuration time with a clear message."""
    with pytest.raises(ValueError, match="unknown log level"):
        logbridge.basicConfig(level="LOUD")
    with pytest.raises(TypeError):
        logbridge.basicConfig(levels={"x": 1.5})  # type: ignore[dict-item]


def test_logbridge_own_loggers_and_threads_are_not_recorded(logger: logging.Logger) -> None:
    """Records from logbridge's loggers never re-enter the run (no feedback loop)."""
    run = logbridge.start_run()
    handler = logbridge.RunHandler()
    logging.getLogger("logbridge.internal").addHandler(handler)
    logging.getLogger("logbridge.internal").warning("about itself")
    logging.getLogger("logbridge.internal").removeHandler(handler)
    logger.addHandler(handler)
    logger.info("user")
    assert [r["message"] for r in run.get_logs()] == ["user"]


@pytest.mark.parametrize("raise_exceptions", [True, False])
def test_same_result_whatever_raise_exceptions(
    logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, raise_exceptions: bool
) -> None:
    """logging.raiseExceptions does not change what is stored, and nothing is raised."""
    monkeypatch.setattr(logging, "raiseExceptions", raise_exceptions)
    run = logbridge.start_run()
    # Only our handler: pytest's capture handlers re-raise formatting errors inside tests.
    logger.handlers = [logbridge.RunHandler()]
    logger.info("bad %d", "x", extra={"metrics": {"ok": 1, "": 2}})
    assert run.get_metrics() == {"ok": 1}
    assert len(run.get_logs()) == 1


def test_records_under_caplog_are_recorded_too(
    logger: logging.Logger, caplog: pytest.LogCaptureFixture
) -> None:
    """pytest's caplog and RunHandler both see the record."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    with caplog.at_level(logging.INFO):
        logger.info("seen by both")
    assert "seen by both" in caplog.messages
    assert [r["message"] for r in run.get_logs()] == ["seen by both"]


def test_close_twice_and_emit_after_close(logger: logging.Logger) -> None:
    """close() is idempotent; records after close are still stored."""
    run = logbridge.start_run()
    handler = logbridge.RunHandler()
    logger.addHandler(handler)
    logger.info("before")
    handler.close()
    handler.close()
    logger.info("after")
    assert [r["message"] for r in run.get_logs()] == ["before", "after"]


def test_unwritable_store_reports_once_and_never_raises(
    logger: logging.Logger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A store that cannot be created: one stderr line, the logging calls go on."""
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    logger.addHandler(logbridge.RunHandler(store=blocker / "store"))
    for i in range(5):
        logger.info("lost %d", i)
    err = capsys.readouterr().err
    assert err.count("RunHandler cannot start or find its run") == 1
    assert "Traceback" not in err


def test_console_output_unchanged(logger: logging.Logger) -> None:
    """Another handler on the same logger still formats the record normally."""
    stream = io.StringIO()
    console = logging.StreamHandler(stream)
    console.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    logger.addHandler(console)
    logger.info("epoch %d", 1, extra={"metrics": {"loss": 0.5}})
    assert stream.getvalue() == "INFO epoch 1\n"
    assert sys.stderr is not None


def test_a_record_appended_while_the_recorder_closes_is_written(logger: logging.Logger) -> None:
    """The handler's inlined append races the exit drain (run by a signal handler on top of
    it): the record appended after the drain took the queue is written, not stranded."""
    run = logbridge.start_run()
    logger.addHandler(logbridge.RunHandler())
    logger.info("before")
    run.flush()
    recorder = _state.existing_recorder(run.store)
    assert recorder is not None

    class ClosingQueue(collections.deque):  # type: ignore[type-arg]
        def append(self, item: object) -> None:
            recorder.close(5.0)  # the exit drain, between the handler's check and its append
            super().append(item)

    recorder._queue = ClosingQueue(recorder._queue)  # type: ignore[assignment]
    _handler.forget_recorders()  # the handler picks up the queue again
    logger.info("during the drain")
    # Read the database itself: get_logs would flush, and a flush drains what was stranded.
    with contextlib.closing(sqlite3.connect(run.store / "store.db")) as conn:
        stored = conn.execute("SELECT message FROM logs WHERE run_id = ? ORDER BY id", (run.id,))
        assert [message for (message,) in stored] == ["before", "during the drain"]
