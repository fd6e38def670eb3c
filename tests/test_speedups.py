"""The compiled capture (``logbridge._speedups``) against its reference, `capture_python`.

Both must queue the very same tuple for every record: the compiled one takes the common
record itself and hands anything else to `capture_python`. The rest of the suite runs with the
compiled capture; ``scripts/test`` runs the handler's scenarios again with
``LOGBRIDGE_PURE_PYTHON=1``.
"""

from __future__ import annotations

import copy
import gc
import hashlib
import logging
import math
import sys
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logbridge
from logbridge import _handler, _logrecords, _settings, _values

_compiled = _handler.compiled_capture()
BUILT = _compiled is not None
compiled: _handler.Capture = _compiled or _handler.capture_python
"""The compiled capture, whichever `_handler.capture` is (LOGBRIDGE_PURE_PYTHON=1); where it
is not built, the Python one, and `test_the_compiled_capture_is_built_and_used` fails."""

Capture = Callable[..., None]
CAPTURES = {"python": _handler.capture_python, "compiled": compiled}


class Recorder:
    """What the lane's recorder offers the inlined `put`; records the calls that bypass it."""

    def __init__(self) -> None:
        self.accepting = True
        self.put_events: list[Any] = []
        self.drained = 0

    def put(self, event: Any) -> None:
        self.put_events.append(event)

    def drain_queued(self) -> None:
        self.drained += 1


class BrokenQueue(list[Any]):
    """A queue whose append fails."""

    def append(self, event: Any) -> None:
        raise OSError("broken")


RUN: Any = object()


@pytest.fixture
def lane() -> Iterator[tuple[Recorder, list[Any]]]:
    """A lane for `RUN` (run id ``run-id``, mark 10) whose queue is a list."""
    recorder, records = Recorder(), []
    _handler._lane = (RUN, "run-id", recorder, records, 10)  # type: ignore[assignment]
    try:
        yield recorder, records
    finally:
        _handler.forget_recorders()


def make_record(msg: Any = "epoch %d", args: Any = (3,), **extras: Any) -> logging.LogRecord:
    record = logging.LogRecord("app.train", logging.INFO, "/src/train.py", 12, msg, args, None)
    record.__dict__.update(extras)
    return record


def queued_by(capture: Capture, record: logging.LogRecord, extras: Any = None) -> Any:
    """What ``capture`` queues for a copy of ``record``, through the lane of `RUN`."""
    recorder, records = Recorder(), []
    _handler._lane = (RUN, "run-id", recorder, records, 10)  # type: ignore[assignment]
    try:
        if extras is None:
            capture(RUN, copy.copy(record))
        else:
            capture(RUN, copy.copy(record), extras)
    finally:
        _handler.forget_recorders()
    (event,) = records
    return event


def assert_same(record: logging.LogRecord, extras: Any = None) -> tuple[Any, ...]:
    """Both captures queue equal tuples, item by item of the same types; return one."""
    python = queued_by(_handler.capture_python, record, extras)
    fast = queued_by(compiled, record, extras)
    assert type(python) is type(fast) is tuple
    assert [type(item) for item in fast] == [type(item) for item in python]
    assert _comparable(fast) == _comparable(python)
    gc.collect(0)  # the collector's own verdict on python's, which fast's follows
    assert gc.is_tracked(fast) == gc.is_tracked(python)
    return fast


def _comparable(event: tuple[Any, ...]) -> list[Any]:
    # NaN is not equal to itself; compare it by its text.
    return [repr(item) if isinstance(item, float) and math.isnan(item) else item for item in event]


class Unprintable:
    def __repr__(self) -> str:
        raise ValueError("no repr")


def _exc_info() -> Any:
    try:
        {}["k"]  # raises KeyError
    except KeyError:
        return sys.exc_info()


class SubRecord(logging.LogRecord):
    pass


RECORDS: dict[str, Callable[[], logging.LogRecord]] = {
    "plain, no args": lambda: make_record("plain", None),
    "empty args": lambda: make_record("plain", ()),
    "one int arg": make_record,
    "atom args": lambda: make_record("%s %s %s %s %s %s", ("a", 1.5, True, None, b"\xff", 2j)),
    "nested tuple arg": lambda: make_record("%s", ((1, ("a", 2.0)),)),
    "list arg": lambda: make_record("%s", ([1, 2],)),
    "mapping args": lambda: make_record("%(a)s", ({"a": 1},)),
    "unprintable arg": lambda: make_record("%s", (Unprintable(),)),
    "bad format": lambda: make_record("%d %d", ("x",)),
    "non-str message": lambda: make_record(42, None),
    "metrics": lambda: make_record(metrics={"loss": 0.5, "acc": 1, "ok": True, "name": "x"}),
    "empty metrics": lambda: make_record(metrics={}),
    "metrics and step": lambda: make_record(metrics={"loss": 0.5}, step=3),
    "NaN and inf metrics": lambda: make_record(metrics={"a": math.nan, "b": -math.inf}),
    "non-str metric names": lambda: make_record(metrics={1: 0.5, ("a",): 2}),
    "a marked metric": lambda: make_record(metrics={"row": _values.Row(a=1), "loss": 0.1}),
    "a list metric": lambda: make_record(metrics={"bad": [1, 2], "loss": 0.1}),
    "an unprintable metric": lambda: make_record(metrics={"bad": Unprintable()}),
    "metrics not a dict": lambda: make_record(metrics=MappingProxyType({"loss": 0.5})),
    "metrics a dict subclass": lambda: make_record(metrics=OrderedDict(loss=0.5)),
    "metrics not a mapping": lambda: make_record(metrics=[("loss", 0.5)]),
    "metrics None": lambda: make_record(metrics=None),
    "tags": lambda: make_record(tags={"phase": "train", "lr": 0.1, "deep": {"a": [1]}}),
    "tags not a dict": lambda: make_record(tags="phase"),
    "tags None": lambda: make_record(tags=None),
    "step only": lambda: make_record(step=7),
    "step None": lambda: make_record(step=None),
    "odd step": lambda: make_record(step=Unprintable()),
    "everything": lambda: make_record(metrics={"loss": 0.2}, step=2, tags={"t": 1}),
    "user extras": lambda: make_record(user="ann", config={"lr": 0.1}, metrics={"a": 1}),
    "traceback": lambda: make_record(exc_info=_exc_info()),
    "stack info": lambda: make_record(stack_info="Stack (most recent call last): ..."),
    "subclass": lambda: SubRecord("app", logging.INFO, "/x.py", 1, "m %s", ("a",), None),
}


def _without_thread_name() -> logging.LogRecord:
    record = make_record()
    del record.threadName
    record.user = "one more key, so the size matches"
    return record


RECORDS["a LogRecord attribute missing"] = _without_thread_name


@pytest.mark.parametrize("name", list(RECORDS))
def test_both_captures_queue_the_same_tuple(name: str) -> None:
    assert_same(RECORDS[name]())


@pytest.mark.parametrize("name", ["plain, no args", "metrics and step", "traceback"])
def test_both_captures_queue_the_same_tuple_with_extras_given_apart(name: str) -> None:
    """Extras given beside the record, as `RunProcessor` gives a structlog event's."""
    assert_same(RECORDS[name](), {"user": "ann", "attempt": 2})


def test_the_compiled_capture_copies_the_tags_and_keeps_the_values() -> None:
    tags = {"phase": "train"}
    loss = 0.25
    event = assert_same(make_record(metrics={"loss": loss}, tags=tags))
    assert event[_logrecords._TAGS] == tags
    assert event[_logrecords._TAGS] is not tags
    assert event[-2] is loss  # the value itself: floats cannot change


metric_values = st.one_of(
    st.floats(),
    st.integers(),
    st.booleans(),
    st.text(max_size=5),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
atoms = st.one_of(st.text(max_size=5), st.integers(), st.floats(), st.booleans(), st.none())


@settings(max_examples=300, deadline=None)
@given(
    metrics=st.one_of(st.none(), st.dictionaries(st.text(max_size=4), metric_values, max_size=4)),
    args=st.one_of(st.none(), st.tuples(), st.lists(atoms, max_size=3).map(tuple)),
    tags=st.one_of(st.none(), st.dictionaries(st.text(max_size=3), atoms, max_size=3)),
    step=st.one_of(st.none(), st.integers()),
    extras=st.one_of(st.none(), st.dictionaries(st.sampled_from(["user", "k"]), atoms)),
)
def test_both_captures_agree_on_any_tagged_record(
    metrics: Any, args: Any, tags: Any, step: Any, extras: Any
) -> None:
    tagging = {"metrics": metrics, "tags": tags, "step": step}
    msg = " ".join(["%r"] * len(args)) if args else "plain"
    assert_same(make_record(msg, args, **{k: v for k, v in tagging.items() if v is not None}))
    if extras is not None:
        assert_same(make_record(msg, args, **tagging), extras)


@pytest.mark.parametrize("capture", list(CAPTURES.values()), ids=list(CAPTURES))
def test_a_full_queue_or_a_closed_recorder_takes_put(
    capture: Capture, lane: tuple[Recorder, list[Any]]
) -> None:
    """Below the mark and accepting: appended; at the mark or not accepting: `Recorder.put`."""
    recorder, records = lane
    for i in range(12):
        capture(RUN, make_record(step=i))
    assert [event[_logrecords._STEP] for event in records] == list(range(10))
    assert [event[_logrecords._STEP] for event in recorder.put_events] == [10, 11]
    records.clear()
    recorder.accepting = False
    capture(RUN, make_record(step=12))
    assert records == []
    assert [event[_logrecords._STEP] for event in recorder.put_events] == [10, 11, 12]


@pytest.mark.parametrize("capture", list(CAPTURES.values()), ids=list(CAPTURES))
def test_a_recorder_closed_during_the_append_drains_its_queue(
    capture: Capture, lane: tuple[Recorder, list[Any]]
) -> None:
    recorder, _ = lane

    class ClosingQueue(list[Any]):
        def append(self, event: Any) -> None:
            super().append(event)
            recorder.accepting = False  # as a signal handler's close would

    records = ClosingQueue()
    _handler._lane = (RUN, "run-id", recorder, records, 10)  # type: ignore[assignment]
    capture(RUN, make_record())
    assert len(records) == 1
    assert recorder.drained == 1
    assert recorder.put_events == []


@pytest.mark.parametrize("capture", list(CAPTURES.values()), ids=list(CAPTURES))
def test_a_failing_queue_raises_the_same_error(
    capture: Capture, lane: tuple[Recorder, list[Any]]
) -> None:
    """(`RunHandler.emit` turns it into one line on stderr.)"""
    recorder, _ = lane
    _handler._lane = (RUN, "run-id", recorder, BrokenQueue(), 10)  # type: ignore[assignment]
    with pytest.raises(OSError, match="broken"):
        capture(RUN, make_record())


def test_another_run_goes_to_the_python_capture_which_remembers_it(
    lane: tuple[Recorder, list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane remembers one run; a record of another takes `capture_python`'s `_remember`."""
    _, first_records = lane
    other: Any = object()
    other_records: list[Any] = []
    remembered: list[Any] = []

    def remember(run: Any) -> Any:
        remembered.append(run)
        _handler._lane = (run, "other-id", Recorder(), other_records, 10)  # type: ignore[assignment]
        return _handler._lane

    monkeypatch.setattr(_handler, "_remember", remember)
    compiled(other, make_record())
    compiled(other, make_record())  # now the lane's run: no second _remember
    assert remembered == [other]
    assert [event[0] for event in other_records] == ["other-id", "other-id"]
    assert first_records == []


def test_no_reference_is_leaked_or_lost(lane: tuple[Recorder, list[Any]]) -> None:
    """Reference counts of what a record holds are where they were once the queue is gone."""
    _, records = lane
    step, extras, tags, message = object(), {"user": "ann"}, object(), "a message %s"
    arg = "an argument"
    before = [sys.getrefcount(item) for item in (step, extras, tags, message, arg)]
    for i in range(1000):
        records.clear()
        kinds = [
            make_record(message, (arg,), step=step, tags=tags, metrics={"a": 1.0}),
            make_record(message, (arg,), step=step, tags=tags, exc_info=_exc_info()),
            make_record(message, (arg,), step=step, tags=tags, metrics={"a": [1]}),
        ]
        compiled(RUN, kinds[i % 3], extras)
    records.clear()
    del kinds
    gc.collect()
    assert [sys.getrefcount(item) for item in (step, extras, tags, message, arg)] == before


class Meddler:
    """A key whose hash is a LogRecord field's: every lookup of that field calls its
    ``__eq__``, which runs `meddle` in the middle of the capture."""

    def __init__(self, field: str, meddle: Callable[[], None]) -> None:
        self.field = field
        self.meddle = meddle

    def __hash__(self) -> int:
        return hash(self.field)

    def __eq__(self, other: object) -> bool:
        self.meddle()
        return False


def meddled_record(meddle: Callable[[], None], metrics: dict[str, Any]) -> logging.LogRecord:
    """A common record whose ``__dict__`` (the same size) holds a `Meddler` ahead of every
    field, so that the compiled capture runs ``meddle`` at each field it looks up."""
    record = make_record(metrics=metrics, step=1)
    data = dict(record.__dict__)
    del data["msecs"], data["relativeCreated"]  # not captured: keeps the size
    record.__dict__ = {Meddler("threadName", meddle): 1, Meddler("created", meddle): 2, **data}
    return record


def test_no_reference_is_leaked_or_lost_on_errors(lane: tuple[Recorder, list[Any]]) -> None:
    """The same when the queue's append raises, or a lookup does."""
    recorder, _ = lane

    def fail() -> None:
        raise LookupError("mid-capture")

    step, extras, tags, message = object(), {"user": "ann"}, {"t": 1}, "a message %s"
    items = (step, extras, tags, message)
    before = [sys.getrefcount(item) for item in items]
    _handler._lane = (RUN, "run-id", recorder, BrokenQueue(), 10)  # type: ignore[assignment]
    for _ in range(500):
        with pytest.raises(OSError, match="broken"):
            compiled(RUN, make_record(message, ("a",), step=step, tags=tags), extras)
        with pytest.raises(LookupError, match="mid-capture"):
            compiled(RUN, meddled_record(fail, {"loss": 0.5}), extras)
    gc.collect()
    assert [sys.getrefcount(item) for item in items] == before


def test_code_run_in_the_middle_of_a_capture_cannot_break_it(
    lane: tuple[Recorder, list[Any]],
) -> None:
    """Code run mid-capture (here by dict lookups) changes the metrics, the remembered lane
    and the capture's own setup, and looks for the tuple being built: it never sees a
    half-built one, and every record is queued whole, once."""
    _, first = lane
    second: list[Any] = []
    lanes = [_handler._lane, (RUN, "run-id", Recorder(), second, 10)]
    metrics: dict[str, Any] = {"loss": 0.5}
    calls = 0

    def meddle() -> None:
        nonlocal calls
        calls += 1
        metrics[f"m{calls % 7}"] = calls
        if calls % 3 == 0:
            metrics.pop(f"m{(calls + 3) % 7}", None)
        _handler._lane = lanes[calls % 2]  # type: ignore[assignment]
        if calls % 11 == 0:
            _handler.compiled_capture()  # install again, mid-capture
        if calls % 7 == 0:  # a search of the whole heap: not every time, at every place
            for referrer in gc.get_referrers("run-id"):
                if type(referrer) is tuple and len(referrer) > 5:
                    assert all(item is not None or True for item in referrer)  # reads each

    for _ in range(300):
        first.clear()
        second.clear()
        compiled(RUN, meddled_record(meddle, metrics))
        (event,) = first + second
        count = event[_logrecords._COUNT]
        assert len(event) == _logrecords._NAMES + 2 * count + 1
        assert len(set(event[_logrecords._NAMES : _logrecords._NAMES + count])) == count
    assert calls >= 600


def test_a_lookup_that_raises_propagates_its_error(lane: tuple[Recorder, list[Any]]) -> None:
    def fail() -> None:
        raise LookupError("mid-capture")

    with pytest.raises(LookupError, match="mid-capture"):
        compiled(RUN, meddled_record(fail, {"loss": 0.5}))
    assert lane[1] == []


def test_a_lookup_of_a_tagging_key_that_raises_propagates_its_error(
    lane: tuple[Recorder, list[Any]],
) -> None:
    """The same error, not a SystemError: nothing is looked up with an error pending."""

    armed = False

    def fail() -> None:
        if armed:
            raise LookupError("mid-capture")

    record = make_record(metrics={"loss": 0.5})
    data = dict(record.__dict__)
    del data["msecs"]
    record.__dict__ = {Meddler("metrics", fail): 1, **data}
    armed = True
    with pytest.raises(LookupError, match="mid-capture"):
        compiled(RUN, record)
    assert lane[1] == []


def test_a_metric_value_converted_in_python_never_meets_a_half_built_tuple(
    lane: tuple[Recorder, list[Any]],
) -> None:
    """A value of another type is frozen by capture_python (``.item()``, as numpy's): the
    code it runs searches the heap for the tuple being built, and must find none."""
    seen: list[int] = []
    run_id = "a run id of this test only"
    _handler._lane = (RUN, run_id, lane[0], lane[1], 10)  # type: ignore[assignment]

    class Scalar:
        def item(self) -> float:
            seen.extend(
                len([item for item in referrer if item is not None])  # reads every item
                for referrer in gc.get_referrers(run_id)
                if type(referrer) is tuple and referrer is not _handler._lane
            )
            return 1.0

    compiled(RUN, make_record(metrics={"loss": 0.5, "odd": Scalar()}))
    (event,) = lane[1]
    assert event[_logrecords._NAMES : _logrecords._NAMES + 2] == ("loss", "odd")
    assert seen == []


@pytest.mark.parametrize("capture", list(CAPTURES.values()), ids=list(CAPTURES))
def test_a_cycle_through_a_queued_tuple_is_collected(
    capture: Capture, lane: tuple[Recorder, list[Any]]
) -> None:
    """A tuple holding a container stays tracked, so a cycle through it is freed."""

    class Probe:
        pass

    extras: dict[str, Any] = {}
    capture(RUN, make_record(), extras)
    event = lane[1].pop()
    extras["event"] = event  # the tuple -> extras -> the tuple
    extras["probe"] = probe = Probe()
    gone = weakref.ref(probe)
    del event, extras, probe
    gc.collect()
    assert gone() is None


def test_extras_are_positional() -> None:
    with pytest.raises(TypeError, match="keyword"):
        compiled(RUN, make_record(), extras={})  # type: ignore[call-arg]


def test_a_dict_subclass_as_the_records_dict_goes_to_the_python_capture(
    lane: tuple[Recorder, list[Any]],
) -> None:
    """capture_python calls the subclass's methods; so the compiled capture hands it over."""

    class Loud(dict[str, Any]):
        def get(self, key: str, default: Any = None) -> Any:
            return "loud" if key == "step" else super().get(key, default)

    events = []
    for capture in CAPTURES.values():
        record = make_record()
        record.__dict__ = Loud(record.__dict__)
        record.created = 1.0
        capture(RUN, record)
        events.append(lane[1].pop())
    python, fast = events
    assert python[_logrecords._STEP] == fast[_logrecords._STEP] == "loud"
    assert _comparable(fast) == _comparable(python)


@pytest.mark.parametrize(
    "odd_lane",
    [
        None,
        (object(), "run-id", Recorder(), [], 10),
        (RUN, "run-id", Recorder(), [], 10.0),
        (RUN, "run-id", Recorder(), [], 2**70),
    ],
    ids=["none", "another run's", "float mark", "huge mark"],
)
def test_a_lane_of_another_shape_goes_to_the_python_capture(
    odd_lane: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    remembered: list[Any] = []

    def remember(run: Any) -> Any:
        remembered.append(run)
        _handler._lane = (run, "run-id", Recorder(), [], 10)  # type: ignore[assignment]
        return _handler._lane

    monkeypatch.setattr(_handler, "_remember", remember)
    _handler._lane = odd_lane
    try:
        compiled(RUN, make_record())
        queue = _handler._lane[3]  # type: ignore[index]
    finally:
        _handler.forget_recorders()
    assert len(queue) == 1
    assert remembered == ([] if odd_lane and odd_lane[0] is RUN else [RUN])


@pytest.mark.parametrize("args", [(), (RUN,), (RUN, None, None, None)])
def test_a_wrong_number_of_arguments_is_a_type_error(args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match=r"capture\(run, record, extras=None, /\)"):
        compiled(*args)


def test_the_build_is_of_the_current_source() -> None:
    """In a checkout, a `_speedups.c` edited since the build is caught here
    (``scripts/test`` rebuilds it; ``pip install -e .`` does too)."""
    import logbridge._speedups as module

    source = Path(module.__file__ or "").with_name("_speedups.c")
    if not source.exists():
        pytest.skip("an installed wheel: no source beside the module")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == module.SOURCE_SHA256


def test_other_interpreters_run_the_python_capture(tmp_path: Path) -> None:
    """The compiled module's state is the process's: a subinterpreter refuses to load it."""
    interpreters = pytest.importorskip("_xxsubinterpreters")
    out = tmp_path / "out.txt"
    interpreter = interpreters.create()
    try:
        interpreters.run_string(
            interpreter,
            "from logbridge import _handler\n"
            f"open({str(out)!r}, 'w').write(repr(_handler.COMPILED))\n",
        )
    finally:
        interpreters.destroy(interpreter)
    assert out.read_text() == "False"


def test_the_compiled_capture_is_built_and_used_unless_turned_off() -> None:
    """The dev install builds it (so CI proves the compiled path); LOGBRIDGE_PURE_PYTHON=1
    keeps the Python capture."""
    assert BUILT, (
        "logbridge._speedups is not built: install with a C compiler and Python's headers "
        "(Debian: gcc, python3-dev), e.g. pip install -e ."
    )
    if _settings.pure_python():
        assert not _handler.COMPILED
        assert _handler.capture is _handler.capture_python
    else:
        assert _handler.COMPILED
        assert _handler.capture is compiled


def test_a_bad_pure_python_setting_is_said_once_and_the_compiled_capture_kept(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGBRIDGE_PURE_PYTHON", "maybe")
    assert _handler._chosen_capture() is compiled
    assert "LOGBRIDGE_PURE_PYTHON='maybe' must be 1 or 0" in capsys.readouterr().err


def test_a_run_records_the_same_through_either_capture(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """End to end, through a real store: the same logs and metrics with either capture."""
    stored = []
    for capture in CAPTURES.values():
        monkeypatch.setattr(_handler, "capture", capture)
        run = logbridge.start_run(experiment="speedups")
        log = logging.getLogger("speedups")
        log.addHandler(handler := logbridge.RunHandler())
        log.setLevel(logging.INFO)
        try:
            for i in range(50):
                log.info("epoch %d", i, extra={"metrics": {"loss": 1 / (i + 1)}, "step": i})
            log.info("tagged", extra={"tags": {"phase": "done"}, "user": "ann"})
            log.info("args %s", [1, 2])
        finally:
            log.removeHandler(handler)
        run.complete()
        logs = [{k: v for k, v in line.items() if k != "time"} for line in run.get_logs()]
        stored.append((logs, run.get_metrics(), run.get_tags()))
    python, compiled = stored
    assert compiled == python
    assert len(python[0]) == 52
