"""The Run API: every writing method, every return shape of the reading methods."""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import pytest

import logbridge
from logbridge import _state


def test_public_api_is_pinned() -> None:
    """The package exports exactly this list, sorted."""
    assert logbridge.__all__ == sorted(logbridge.__all__)
    assert logbridge.__all__ == [
        "ArtifactNameError",
        "Experiment",
        "Image",
        "InvalidMetricError",
        "InvalidMetricTypeError",
        "List",
        "LogbridgeError",
        "MissingExtraError",
        "Row",
        "Run",
        "RunFailedError",
        "RunHandler",
        "RunNotFoundError",
        "RunStateError",
        "StoreCorruptError",
        "StoreError",
        "Table",
        "__version__",
        "basicConfig",
        "get_run",
        "list_runs",
        "start_run",
        "submit",
    ]


def test_scalar_logged_once_is_the_value_and_several_times_a_list() -> None:
    """get_metrics: one point -> the value; several -> the list, in logged order."""
    run = logbridge.start_run(experiment="shapes")
    run.log("alpha", 0.5)
    for v in (3, 2, 1):
        run.log("loss", v)
    assert run.get_metrics() == {"alpha": 0.5, "loss": [3, 2, 1]}
    assert run.get_metrics("loss") == {"loss": [3, 2, 1]}


def test_list_row_table_and_image_shapes(tmp_path: Path) -> None:
    """Lists, rows, tables and images come back in azureml's shapes."""
    run = logbridge.start_run(experiment="shapes")
    run.log_list("accuracies", [0.6, 0.7, 0.87])
    run.log_row("one_row", x=1, y=2.5)
    run.log_row("curve", recall=0.1, precision=0.9)
    run.log_row("curve", recall=0.5, precision=0.7)
    run.log_table("table", {"epoch": [1, 2], "loss": [0.5, 0.25]})
    image = tmp_path / "plot.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    run.log_image("confusion", path=str(image))
    metrics = run.get_metrics()
    assert metrics["accuracies"] == [0.6, 0.7, 0.87]
    assert metrics["one_row"] == {"x": 1, "y": 2.5}
    assert metrics["curve"] == {"recall": [0.1, 0.5], "precision": [0.9, 0.7]}
    assert metrics["table"] == {"epoch": [1, 2], "loss": [0.5, 0.25]}
    ref = metrics["confusion"]
    assert ref.startswith("images/confusion-")
    assert ref.endswith(".png")
    assert ref in run.get_file_names()
    out = run.download_file(ref, tmp_path / "copy.png")
    assert out.read_bytes() == image.read_bytes()


def test_rows_with_different_columns_fill_with_none() -> None:
    """Rows missing a column read back with None in that place."""
    run = logbridge.start_run()
    run.log_row("r", a=1)
    run.log_row("r", a=2, b=3)
    assert run.get_metrics()["r"] == {"a": [1, 2], "b": [None, 3]}


def test_values_round_trip_exactly() -> None:
    """NaN, infinities, -0.0, bools, huge ints and numpy scalars read back as logged."""
    np = pytest.importorskip("numpy")
    run = logbridge.start_run()
    run.log("nan", math.nan)
    run.log("inf", math.inf)
    run.log("ninf", -math.inf)
    run.log("negzero", -0.0)
    run.log("flag", True)
    run.log("huge", 2**100)
    run.log("np32", np.float32(0.5))
    run.log("np64", np.int64(7))
    run.log("npbool", np.bool_(False))
    run.log("text", "0.5")
    run.log_list("mixed", [math.nan, math.inf, -0.0, True, 2**70, "s"])
    m = run.get_metrics()
    assert math.isnan(m["nan"])
    assert m["inf"] == math.inf
    assert m["ninf"] == -math.inf
    assert math.copysign(1.0, m["negzero"]) == -1.0
    assert m["flag"] is True
    assert m["huge"] == 2**100
    assert m["np32"] == 0.5
    assert type(m["np32"]) is float
    assert m["np64"] == 7
    assert type(m["np64"]) is int
    assert m["npbool"] is False
    assert m["text"] == "0.5"
    mixed = m["mixed"]
    assert math.isnan(mixed[0])
    assert mixed[1:] == [math.inf, -0.0, True, 2**70, "s"]
    assert math.copysign(1.0, mixed[2]) == -1.0


@pytest.mark.parametrize(
    "value",
    [complex(1, 2), b"bytes", None, object(), [1, 2], {"a": 1}],
    ids=["complex", "bytes", "none", "object", "list", "dict"],
)
def test_unsupported_values_raise_a_type_error_naming_the_metric(value: object) -> None:
    """A value that is not a number or a string is refused, naming the metric."""
    run = logbridge.start_run()
    with pytest.raises(logbridge.InvalidMetricTypeError, match="'bad'"):
        run.log("bad", value)


def test_decimal_and_fraction_are_refused_not_rounded() -> None:
    """Decimal and Fraction would lose precision silently as floats: refused with advice."""
    from decimal import Decimal
    from fractions import Fraction

    run = logbridge.start_run()
    for value in (Decimal("0.1"), Fraction(1, 3)):
        with pytest.raises(TypeError, match="convert with float"):
            run.log("x", value)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("", logbridge.InvalidMetricError),
        ("x" * 251, logbridge.InvalidMetricError),
        ("a\nb", logbridge.InvalidMetricError),
        ("nul\x00", logbridge.InvalidMetricError),
        ("\ud800", logbridge.InvalidMetricError),
        (123, logbridge.InvalidMetricTypeError),
        (None, logbridge.InvalidMetricTypeError),
        (b"x", logbridge.InvalidMetricTypeError),
    ],
)
def test_bad_metric_names_are_refused(name: object, error: type[Exception]) -> None:
    """Empty, over-long, control-character and non-string names get a clear error."""
    run = logbridge.start_run()
    with pytest.raises(error):
        run.log(name, 1.0)  # type: ignore[arg-type]
    assert issubclass(error, (ValueError, TypeError))


def test_names_may_hold_slashes_dots_and_unicode() -> None:
    """'/' and '..' in metric names are fine: names never touch the filesystem."""
    run = logbridge.start_run()
    for name in ("train/loss", "../x", "μ", "Loss", "loss"):
        run.log(name, 1)
    assert set(run.get_metrics()) == {"train/loss", "../x", "μ", "Loss", "loss"}


def test_a_name_keeps_its_first_kind() -> None:
    """Logging a row under a scalar's name is an error, not a silent mix."""
    run = logbridge.start_run()
    run.log("m", 1)
    with pytest.raises(logbridge.InvalidMetricError, match="scalar"):
        run.log_row("m", a=1)


def test_steps_are_kept_and_may_repeat_or_go_backwards() -> None:
    """Points keep their steps; repeated and negative steps are stored as given."""
    run = logbridge.start_run()
    for step in (0, 2, 1, 1, -5):
        run.log("loss", step * 1.0, step=step)
    run.flush()
    points = _state.existing_recorder(run.store).store.metric_points(run.id, "loss")  # type: ignore[union-attr]
    assert [p.step for p in points] == [0, 2, 1, 1, -5]
    with pytest.raises(TypeError):
        run.log("loss", 1.0, step=1.5)  # type: ignore[arg-type]


def test_tags_and_write_once_properties() -> None:
    """Tags can change; a property keeps its first value and refuses another."""
    run = logbridge.start_run(tags={"team": "vision"})
    run.tag("quick")
    run.tag("lr", 0.1)
    run.set_tags({"team": "nlp", "seed": 3})
    assert run.get_tags() == {"lr": "0.1", "quick": None, "seed": "3", "team": "nlp"}
    run.add_properties({"dataset": "diabetes"})
    run.add_properties({"dataset": "diabetes"})
    with pytest.raises(logbridge.RunStateError, match="write-once"):
        run.add_properties({"dataset": "other"})
    assert run.get_properties() == {"dataset": "diabetes"}


def test_upload_file_folder_and_stream(tmp_path: Path) -> None:
    """Files come from paths, folders and streams, and read back byte for byte."""
    run = logbridge.start_run()
    src = tmp_path / "model.bin"
    src.write_bytes(b"weights")
    run.upload_file("models/model.bin", src)
    run.upload_file("notes.txt", io.BytesIO(b"hello"))
    folder = tmp_path / "data"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.txt").write_text("a")
    (folder / "sub" / "b.txt").write_text("b")
    run.upload_folder("data", folder)
    assert run.get_file_names() == ["data/a.txt", "data/sub/b.txt", "models/model.bin", "notes.txt"]
    assert run.download_file("notes.txt", tmp_path).read_bytes() == b"hello"


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "../../etc/passwd",
        "/abs",
        "a/../../b",
        "C:\\x",
        "C:x",
        "a\\b",
        "nul\x00",
        "",
        "a//b",
    ],
)
def test_artifact_names_that_leave_the_run_folder_are_refused(tmp_path: Path, name: str) -> None:
    """No artifact name reaches outside the run's folder."""
    run = logbridge.start_run()
    src = tmp_path / "f"
    src.write_text("x")
    with pytest.raises(logbridge.ArtifactNameError):
        run.upload_file(name, src)


def test_symlink_inside_run_folder_cannot_lead_out(tmp_path: Path) -> None:
    """A symlink planted in the run's folder does not let a name escape it."""
    run = logbridge.start_run()
    src = tmp_path / "f"
    src.write_text("x")
    run.upload_file("ok.txt", src)
    folder = run.store / "artifacts" / run.id
    (folder / "link").symlink_to(tmp_path)
    with pytest.raises(logbridge.ArtifactNameError):
        run.upload_file("link/escaped.txt", src)
    assert not (tmp_path / "escaped.txt").exists()


def test_context_manager_completes_or_fails_with_the_traceback() -> None:
    """A `with` block completes the run, or fails it with the exception's type and traceback."""
    with logbridge.start_run(experiment="ctx") as ok:
        ok.log("x", 1)
    assert ok.get_status() == "Completed"
    with pytest.raises(ZeroDivisionError), logbridge.start_run(experiment="ctx") as bad:
        _ = 1 / 0
    details = bad.get_details()
    assert details["status"] == "Failed"
    assert details["error"]["type"] == "ZeroDivisionError"
    assert "1 / 0" in details["error"]["traceback"]


def test_fail_and_cancel_set_status() -> None:
    """fail() and cancel() are final; finishing twice keeps the first status."""
    run = logbridge.start_run()
    run.fail("diverged")
    run.complete()
    assert run.get_status() == "Failed"
    assert run.get_details()["error"]["message"] == "diverged"
    other = logbridge.start_run()
    other.cancel()
    assert other.get_status() == "Canceled"


def test_start_run_becomes_current_and_sets_the_environment(store: Path) -> None:
    """The first run is the current one; its id and store are handed to child processes."""
    run = logbridge.start_run(experiment="e")
    second = logbridge.start_run(experiment="e")
    assert logbridge.Run.get_context() is run
    assert os.environ["LOGBRIDGE_RUN_ID"] == run.id
    assert os.environ["LOGBRIDGE_HOME"] == str(store)
    assert second is not run
    run.complete()
    assert "LOGBRIDGE_RUN_ID" not in os.environ


def test_get_context_without_a_run_starts_one_named_after_the_script() -> None:
    """With no run anywhere, get_context starts a local run and keeps returning it."""
    run = logbridge.Run.get_context()
    assert logbridge.Run.get_context() is run
    assert run.get_status() == "Running"


def test_get_context_attaches_to_the_run_named_in_the_environment() -> None:
    """LOGBRIDGE_RUN_ID makes get_context return that run, not a new one."""
    run = logbridge.start_run(experiment="parent")
    run_id = run.id
    _state.reset()
    os.environ["LOGBRIDGE_RUN_ID"] = run_id
    attached = logbridge.Run.get_context()
    assert attached.id == run_id
    assert attached.experiment == "parent"
    os.environ["LOGBRIDGE_RUN_ID"] = "f" * 32
    _state.reset()
    os.environ["LOGBRIDGE_RUN_ID"] = "f" * 32
    with pytest.raises(logbridge.RunNotFoundError):
        logbridge.Run.get_context()


def test_child_runs_and_recursive_metrics() -> None:
    """Child runs have their parent, are listed, and recursive get_metrics covers them."""
    parent = logbridge.start_run(experiment="sweep")
    for alpha in (0.1, 0.2):
        child = parent.child_run(f"alpha={alpha}")
        child.log("alpha", alpha)
        child.complete()
    children = parent.get_children()
    assert [c.name for c in children] == ["alpha=0.1", "alpha=0.2"]
    assert children[0].parent == parent
    metrics = parent.get_metrics(recursive=True)
    assert metrics[parent.id] == {}
    assert sorted(metrics[c.id]["alpha"] for c in children) == [0.1, 0.2]


def test_get_run_by_prefix_and_list_runs_filters() -> None:
    """Runs are found by id prefix and filtered by experiment, status and tags."""
    a = logbridge.start_run(experiment="one", tags={"k": "v"})
    b = logbridge.start_run(experiment="two")
    a.complete()
    assert logbridge.get_run(a.id[:10]) == a
    assert [r.id for r in logbridge.list_runs("one")] == [a.id]
    assert [r.id for r in logbridge.list_runs(status="Running")] == [b.id]
    assert [r.id for r in logbridge.list_runs(tags={"k": "v"})] == [a.id]
    assert [r.id for r in logbridge.list_runs(tags={"k": None})] == [a.id]
    assert logbridge.list_runs(tags={"k": "w"}) == []
    with pytest.raises(logbridge.RunNotFoundError):
        logbridge.get_run("nope")


def test_experiment_start_logging_and_get_runs() -> None:
    """Experiment(name).start_logging() starts a run of that experiment."""
    exp = logbridge.Experiment("exp")
    run = exp.start_logging(name="first")
    assert run.experiment == "exp"
    assert run.name == "first"
    assert [r.id for r in exp.get_runs()] == [run.id]


def test_outputs_folder_is_captured_at_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Files written to ./outputs during the run become files of the run."""
    monkeypatch.chdir(tmp_path)
    run = logbridge.start_run()
    (tmp_path / "outputs" / "sub").mkdir(parents=True)
    (tmp_path / "outputs" / "model.pkl").write_bytes(b"m")
    (tmp_path / "outputs" / "sub" / "x.txt").write_text("x")
    run.complete()
    assert run.get_file_names() == ["outputs/model.pkl", "outputs/sub/x.txt"]


def test_environment_is_captured() -> None:
    """Each run records command line, working directory, Python, host and pid."""
    env = logbridge.start_run().get_details()["environment"]
    assert env["pid"] == os.getpid()
    assert env["cwd"] == str(Path.cwd())
    assert set(env) >= {"command", "cwd", "python", "host", "pid", "platform"}


def test_ten_thousand_metric_names() -> None:
    """No cap on metric names: 10,000 of them in one run."""
    run = logbridge.start_run()
    for i in range(10_000):
        run.log(f"m{i}", i)
    metrics = run.get_metrics()
    assert len(metrics) == 10_000
    assert metrics["m9999"] == 9999


def test_upload_folder_skips_symlinks_that_leave_the_folder(tmp_path: Path) -> None:
    """A file symlink inside the folder pointing outside it is not copied (no secret leaks)."""
    secret = tmp_path / "secret"
    secret.write_text("key")
    folder = tmp_path / "outputs"
    folder.mkdir()
    (folder / "model.bin").write_text("m")
    (folder / "inner.txt").symlink_to(folder / "model.bin")
    (folder / "leak.txt").symlink_to(secret)
    run = logbridge.start_run()
    run.upload_folder("outputs", folder)
    assert run.get_file_names() == ["outputs/inner.txt", "outputs/model.bin"]
