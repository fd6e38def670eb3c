"""Turning captured stdlib log records into run events, on the recorder's writer thread.

The caller's thread only captured the record's fields (see `_handler` and `CAPTURED`); here the
message is formatted, the record rendered as one JSON line by python-json-logger, and its tagged
metrics and tags validated. Nothing here raises: a record that cannot be rendered is stored with
a fallback and a ``logbridge_problems`` field, and each kind of problem is reported once.
"""

from __future__ import annotations

import json
import logging
import operator
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Final, NamedTuple

from pythonjsonlogger.core import RESERVED_ATTRS, BaseJsonFormatter
from pythonjsonlogger.json import JsonFormatter

from logbridge import _events as ev
from logbridge import _jsonsafe, _report, _values

CAPTURED: Final = (
    "created",
    "msg",
    "exc_text",
    "stack_info",
    "levelname",
    "levelno",
    "name",
    "pathname",
    "lineno",
    "funcName",
    "process",
    "processName",
    "thread",
    "threadName",
)
"""The `LogRecord` attributes a captured record (`ev.Captured`) holds, after its run id.

A captured record is one flat tuple rather than the `LogRecord` itself, or tuples inside a
tuple: ``(run_id, *CAPTURED, step, tags, problems, extras, count, *names, *values, *args)``,
where ``count`` is the number of tagged metrics (None without ``metrics``), ``names`` and
``values`` theirs, and ``args`` the message's arguments. The garbage collector drops a tuple of
atoms from its lists at its first pass; a queued `LogRecord` and its ``__dict__`` would be
traversed again and again, promoted and traversed by every full collection until the writer
gets to them (more than all the rest of the caller's cost), and so would, one pass longer, a
tuple holding the arguments' or the metrics' tuple (that pass finds the outer tuple before the
inner ones: benchmarks/bench_handler.py, ``gc.callbacks``).
"""
(
    _CREATED,
    _MSG,
    _EXC_TEXT,
    _STACK_INFO,
    _LEVELNAME,
    _LEVELNO,
    _NAME,
    _PATHNAME,
    _LINENO,
    _FUNCNAME,
    _PROCESS,
    _PROCESSNAME,
    _THREAD,
    _THREADNAME,
    _STEP,
    _TAGS,
    _PROBLEMS,
    _EXTRAS,
    _COUNT,
    _NAMES,
) = range(1, len(CAPTURED) + 7)
"""Positions in a captured record (`CAPTURED`); ``_NAMES`` is where the variable part starts."""
_CALL_SITE: Final = slice(_LEVELNAME, _STEP)
"""The fields that stay the same from one call of a given logging statement to the next."""
fields_of: Final = operator.itemgetter(*CAPTURED)
"""Return the values of `CAPTURED` from a record's ``__dict__`` (raises KeyError if one lacks)."""

IMMUTABLE: Final = frozenset({str, int, float, bool, type(None), bytes, complex})
STANDARD: Final = frozenset(
    {
        *logging.LogRecord("", 0, "", 0, "", None, None).__dict__,
        "message",
        "asctime",
        "taskName",
    }
)
"""Attributes of every `LogRecord`: what is not one of them (or a tag) is an extra."""
NOT_EXTRAS: Final = STANDARD | {"metrics", "tags"}

_FIELDS: Final = (
    "created",
    "levelname",
    "levelno",
    "name",
    "message",
    "pathname",
    "lineno",
    "funcName",
    "process",
    "processName",
    "thread",
    "threadName",
)
_RENAMES: Final = {
    "created": "time",
    "levelname": "level",
    "name": "logger",
    "pathname": "file",
    "lineno": "line",
    "funcName": "function",
    "processName": "process_name",
    "threadName": "thread_name",
    "exc_info": "exception",
    "stack_info": "stack",
}
_RANK_VARIABLES: Final = ("RANK", "LOCAL_RANK")
_UNSEEN: Final[Any] = object()
_TIME_MARK: Final = "logbridge:time:7f3a9c"
_MESSAGE_MARK: Final = "logbridge:message:7f3a9c"
_encode_string: Final[Callable[[str], str]] = json.encoder.encode_basestring
_MAX_CALL_SITES: Final = 4096


class RecordFormatter(BaseJsonFormatter):
    """python-json-logger's formatter, given a captured record and its message formatted once.

    Every field of the record and every extra attribute is kept (renamed as in `_RENAMES`), in
    the order python-json-logger's ``add_fields`` gives them, and values are made JSON-safe by
    `_jsonsafe`. ``format`` works too, for a `LogRecord`. A JSON backend's formatter of
    python-json-logger comes second among the bases of the concrete classes
    (`JsonRecordFormatter`, ``_orjsonformat.OrjsonRecordFormatter``).
    """

    backend: ClassVar[str]

    def __init__(self) -> None:
        """Configure the fields and renames of the run's log."""
        super().__init__(
            list(_FIELDS),
            rename_fields=dict(_RENAMES),
            static_fields=_ranks(),
            reserved_attrs=[*RESERVED_ATTRS, "metrics", "tags"],
        )
        # "message" is picked as the record's msg, and then replaced by the message.
        position = {name: i for i, name in enumerate(CAPTURED, start=_CREATED)}
        position["message"] = _MSG
        self._message_key = self._get_rename("message")
        self._fields_dict = _dict_maker(
            [self._get_rename(name) for name in self._required_fields],
            [position[name] for name in self._required_fields],
        )
        self._static = _jsonsafe.safe_dict(
            {self._get_rename(key): value for key, value in self.static_fields.items()}
        )
        self._metrics_key = self._get_rename("metrics")
        self._tags_key = self._get_rename("tags")
        self._exception_key = self._get_rename("exc_info")
        self._stack_key = self._get_rename("stack_info")
        self._step_key = self._get_rename("step")
        self._sites: dict[tuple[Any, ...], tuple[str, str, str] | None] = {}
        """Call site (`_CALL_SITE`) -> its line's text around the time and the message, or
        None for a site whose fields are not JSON-safe as they are."""
        self._line_keys = frozenset(
            [
                *(self._get_rename(name) for name in self._required_fields),
                self._message_key,
                *self._static,
                self._metrics_key,
            ]
        )
        """Keys a common record's line has before its extras: an extra renamed to one of them
        replaces that key's value in python-json-logger's dict (`_render_dict` does it)."""
        self._metrics_at = f",{_encode_string(self._metrics_key)}:"
        self._step_at = f",{_encode_string(self._step_key)}:"
        # The data is JSON-safe already: no cycle check, no custom encoder.
        self._json = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), check_circular=False
        ).encode

    def render(
        self,
        fields: tuple[Any, ...],
        message: str,
        metrics: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
    ) -> str:
        """Return a captured record as one JSON line, with its ``message``, metrics and tags.

        ``fields`` is the captured record (`CAPTURED`: its step and extras included). What
        python-json-logger's ``add_fields`` and ``process_log_record`` do for a `LogRecord`,
        from the captured fields, checking only what can be out of JSON's reach.
        """
        created = fields[_CREATED]
        text = self._sites.get(fields[_CALL_SITE], _UNSEEN)
        if text is _UNSEEN:
            text = self._learn_site(fields)
        if text is None or type(created) is not float or created - created != 0.0:
            return self._render_dict(fields, message, metrics, tags, plain=False)
        step, extras = fields[_STEP], fields[_EXTRAS]
        if (
            tags is None
            and not fields[_EXC_TEXT]
            and not fields[_STACK_INFO]
            and type(message) is str
        ):
            if extras is None:
                after = (
                    "" if step is None else f"{self._step_at}{step}" if type(step) is int else None
                )
            else:
                after = self._extras_text(extras)
            if after is not None:
                # The common record: the text python-json-logger wrote for its call site, with
                # its time, message, metrics and step or extras put in; `_learn_site` checked
                # that this gives the JSON of `_render_dict`.
                head, middle, tail = text
                when, said = self.number(created), _encode_string(message)
                if metrics is None:
                    return f"{head}{when}{middle}{said}{tail}{after}}}"
                shown = self.jsonify_log_record(metrics)
                return f"{head}{when}{middle}{said}{tail}{self._metrics_at}{shown}{after}}}"
        return self._render_dict(fields, message, metrics, tags, plain=True)

    def _extras_text(self, extras: dict[Any, Any]) -> str | None:
        """Return the JSON text `_add_extras` gives ``extras`` at the end of a line.

        None when that takes the dict: a key that is not an ASCII string or that replaces one
        of the line's keys, a value that is not a string, a finite number, a bool or None.
        """
        parts = []
        for key, name, value in self._extra_items(extras):
            if type(key) is not str or not key.isascii() or name in self._line_keys:
                return None
            kind = type(value)
            if kind is str:
                shown = _encode_string(_jsonsafe.text(value))
            elif kind is int:
                shown = int.__repr__(value)
            elif kind is float and value - value == 0.0:
                shown = self.number(value)
            elif value is None or kind is bool:
                shown = "null" if value is None else "true" if value else "false"
            else:
                return None
            parts.append(f",{_encode_string(name)}:{shown}")
        return "".join(parts)

    def number(self, value: float) -> str:
        """Return a finite float as JSON (``float.__repr__``; a backend may do it faster)."""
        return float.__repr__(value)

    def _render_dict(
        self,
        fields: tuple[Any, ...],
        message: str,
        metrics: dict[str, Any] | None,
        tags: dict[str, Any] | None,
        *,
        plain: bool,
    ) -> str:
        """`render` through a dict of the record's fields, for any record.

        ``plain``: the call site's fields and the time are JSON-safe as they are.
        """
        log_data = self._fields_dict(fields)
        log_data[self._message_key] = message
        if self._static:
            log_data.update(self._static)
        if metrics is not None:
            log_data[self._metrics_key] = metrics
        if tags is not None:
            log_data[self._tags_key] = tags
        text = fields[_EXC_TEXT]
        if text:
            log_data[self._exception_key] = _jsonsafe.safe(text)
        text = fields[_STACK_INFO]
        if text:
            log_data[self._stack_key] = _jsonsafe.safe(text)
        extras, step = fields[_EXTRAS], fields[_STEP]
        if extras is not None:
            self._add_extras(log_data, extras)
        elif step is not None:
            log_data[self._step_key] = step if type(step) is int else _jsonsafe.safe(step)
        if not plain:
            log_data = _jsonsafe.safe_dict(log_data)
        return self.serialize_log_record(log_data)

    def _add_extras(self, log_data: dict[Any, Any], extras: dict[Any, Any]) -> None:
        """Add extras as python-json-logger's ``merge_record_extra`` does, made JSON-safe."""
        for _, name, value in self._extra_items(extras):
            log_data[name] = _jsonsafe.safe(value)

    def _extra_items(self, extras: dict[Any, Any]) -> Iterator[tuple[Any, Any, Any]]:
        """Yield the extras a line shows: (key, key as renamed, value).

        As python-json-logger's ``merge_record_extra`` picks them: no reserved key, no key
        starting with ``_``.
        """
        skip = self._skip_fields
        renames = self.rename_fields
        for key, value in extras.items():
            if key not in skip and not (isinstance(key, str) and key.startswith("_")):
                yield key, renames.get(key, key), value

    def _learn_site(self, fields: tuple[Any, ...]) -> tuple[str, str, str] | None:
        """Return (and remember) the text of a call site's lines around time and message.

        None if the site's fields are not JSON-safe as they are. The text is what
        python-json-logger writes for a record of that site, split where the time and the
        message go (found as two markers that occur nowhere else in the line).
        """
        site = fields[_CALL_SITE]
        text: tuple[str, str, str] | None = None
        if all(
            type(value) is int
            or value is None
            or (type(value) is str and _jsonsafe.text(value) is value)
            for value in site
        ):
            probe = list(fields[:_STEP])
            probe[_CREATED] = _TIME_MARK
            log_data = self._fields_dict(tuple(probe))
            log_data[self._message_key] = _MESSAGE_MARK
            log_data.update(self._static)
            line = self.serialize_log_record(log_data)
            time_at, message_at = _encode_string(_TIME_MARK), _encode_string(_MESSAGE_MARK)
            if (
                line.count(time_at) == 1
                and line.count(message_at) == 1
                and line.endswith("}")
                and line.index(time_at) < line.index(message_at)
            ):
                head, rest = line.split(time_at)
                middle, tail = rest.split(message_at)
                text = (head, middle, tail[:-1])
        if len(self._sites) < _MAX_CALL_SITES:
            self._sites[site] = text
        return text

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Make every value JSON-safe (cycles, depth, size, NaN, bytes, bad Unicode)."""
        return _jsonsafe.safe_dict(log_data)


class JsonRecordFormatter(RecordFormatter, JsonFormatter):
    """`RecordFormatter` serialising with the standard json module's C encoder."""

    backend: ClassVar[str] = "json"

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialise with the C encoder; the data is JSON-safe already."""
        return self._json(log_data)


def _dict_maker(
    keys: list[str], positions: list[int]
) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """Return a function of a tuple making the dict ``{keys[i]: tuple[positions[i]], ...}``.

    A dict display, as `collections.namedtuple` builds its methods: it costs half as much as
    ``dict(zip(keys, itemgetter(*positions)(fields)))``, on every record.
    """
    items = ", ".join(f"{key!r}: fields[{i}]" for key, i in zip(keys, positions, strict=True))
    made: Callable[[tuple[Any, ...]], dict[str, Any]] = eval(  # noqa: S307 - from our own names
        f"lambda fields: {{{items}}}", {}
    )
    return made


def _ranks() -> dict[str, str]:
    return {name.lower(): os.environ[name] for name in _RANK_VARIABLES if name in os.environ}


_formatter: RecordFormatter | None = None
_backend = "orjson"
BACKENDS: Final = ("orjson", "json")


def use_backend(name: str) -> str:
    """Choose the JSON backend of the run's log (``orjson`` if importable, else ``json``).

    Returns the backend in use, which is ``json`` when orjson is asked for but missing.
    """
    global _formatter, _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown JSON backend {name!r}; use one of {', '.join(BACKENDS)}")
    _backend, _formatter = name, None
    return backend()


def backend() -> str:
    """Return the JSON backend the run's log is written with."""
    return formatter().backend


def formatter() -> RecordFormatter:
    """Return the process's record formatter (made at first use, after any fork)."""
    global _formatter  # noqa: PLW0603
    if _formatter is None:
        made: RecordFormatter | None = None
        if _backend == "orjson":
            try:
                from logbridge._orjsonformat import OrjsonRecordFormatter  # noqa: PLC0415
            except ImportError:
                pass
            else:
                made = OrjsonRecordFormatter()
        _formatter = made or JsonRecordFormatter()
    return _formatter


class Snapshot(NamedTuple):
    """What `snapshot` makes of a record: its `CAPTURED` fields, message arguments and extras."""

    fields: tuple[Any, ...]
    args: tuple[Any, ...]
    extras: dict[str, Any] | None
    problem: str | None
    """A problem met formatting the message, if any."""


def snapshot(record: logging.LogRecord) -> Snapshot:
    """Return ``record``'s captured parts, with whatever could still change made final now.

    The message is formatted now unless it is a ``str`` with arguments of immutable types, a
    traceback is formatted, and extras of mutable types are copied as JSON-safe values.
    """
    data = record.__dict__
    values = [data.get(name) for name in CAPTURED]
    problem = None
    args = record.args
    if (
        type(record) is not logging.LogRecord
        or type(record.msg) is not str
        or (args and not immutable(args))
    ):
        message, problem = message_of(record)
        values[_MSG - _CREATED], args = message, None
    if record.exc_info and not record.exc_text:
        values[_EXC_TEXT - _CREATED] = _format_exception(record)
    extras = {
        key: value if type(value) in IMMUTABLE else _jsonsafe.safe(value)
        for key, value in data.items()
        if key not in NOT_EXTRAS
    }
    return Snapshot(tuple(values), args if isinstance(args, tuple) else (), extras or None, problem)


def immutable(args: Any) -> bool:
    """Whether message arguments are a tuple of values that cannot change (tuples included)."""
    if type(args) is tuple:
        for arg in args:
            kind = type(arg)
            if kind not in IMMUTABLE and not (kind is tuple and immutable(arg)):
                return False
        return True
    return False


def _format_exception(record: logging.LogRecord) -> str:
    try:
        return logging.Formatter().formatException(record.exc_info)  # type: ignore[arg-type]
    except Exception as err:
        return f"<traceback could not be formatted: {_jsonsafe.describe(err)}>"


def message_of(record: logging.LogRecord) -> tuple[str, str | None]:
    """Return the record's formatted message and a problem, never raising.

    When ``msg % args`` fails (a bad ``%d``, an argument whose ``__str__`` raises), the raw
    message and the arguments' reprs are kept, with a marker.
    """
    try:
        message = record.getMessage()
        if not isinstance(message, str):
            raise TypeError("message is not a string")  # noqa: TRY301
    except Exception as err:
        return _unformatted(record.msg, record.args, err)
    return _jsonsafe.text(message), None


def _unformatted(msg: Any, args: Any, err: Exception) -> tuple[str, str]:
    msg = _jsonsafe.describe(msg) if not isinstance(msg, str) else msg
    shown = (
        "(" + ", ".join(_jsonsafe.describe(a) for a in args) + ")"
        if isinstance(args, tuple)
        else _jsonsafe.describe(args)
    )
    problem = f"message could not be formatted ({type(err).__name__}: {_err_text(err)})"
    return f"{msg} [logbridge: {problem}; args: {shown}]", problem


def expand(batch: Iterable[ev.Event | ev.Captured]) -> list[ev.Event]:
    """Return ``batch`` with each captured record replaced by the events it stands for."""
    out: list[ev.Event] = []
    convert = _convert
    captured = ev.RecordCaptured
    for event in batch:
        kind = type(event)
        if kind is tuple:
            convert(event, out)  # type: ignore[arg-type] # mypy does not narrow on type() is
        elif kind is captured:
            convert(flat(event), out)  # type: ignore[arg-type]
        else:
            out.append(event)  # type: ignore[arg-type]
    return out


def expanded(batch: Iterable[ev.Event | ev.Captured]) -> Iterator[list[ev.Event]]:
    """Yield `expand`'s events in small lists, made as they are taken.

    The events of a few hundred records at a time: few enough to die young once written,
    and a generator resumed once per list rather than once per event.
    """
    out: list[ev.Event] = []
    convert = _convert
    captured = ev.RecordCaptured
    for event in batch:
        kind = type(event)
        if kind is tuple:
            convert(event, out)  # type: ignore[arg-type]
        elif kind is captured:
            convert(flat(event), out)  # type: ignore[arg-type]
        else:
            out.append(event)  # type: ignore[arg-type]
        if len(out) >= _CHUNK:
            yield out
            out = []
    if out:
        yield out


_CHUNK: Final = 600
"""Events per list `expanded` yields."""
_new_tuple: Final = tuple.__new__
"""Builds a named tuple from a tuple of its fields as its ``_make`` does, without the
Python-level ``__new__`` the class has (a third of the cost)."""


def flat(captured: ev.RecordCaptured) -> ev.Captured:
    """Return another producer's `RecordCaptured` as the handler's flat tuple (`CAPTURED`)."""
    run_id, record, metrics, step, tags, problems = captured
    fields, args, extras, problem = snapshot(record)
    if problem:
        problems = (*problems, problem)
    if metrics is None:
        return (run_id, *fields, step, tags, problems, extras, None, *args)
    names = [name for name, _ in metrics]
    values = [value for _, value in metrics]
    return (run_id, *fields, step, tags, problems, extras, len(names), *names, *values, *args)


def _convert(captured: ev.Captured, out: list[ev.Event]) -> None:
    run_id = captured[0]
    raw_step, raw_tags, count = captured[_STEP], captured[_TAGS], captured[_COUNT]
    problems = list(captured[_PROBLEMS])
    args = captured[_NAMES:] if count is None else captured[_NAMES + 2 * count :]
    msg = captured[_MSG]
    try:
        message = msg % args if args else msg
    except Exception as err:
        message, problem = _unformatted(msg, args, err)
        problems.append(problem)
    if not (message.isascii() and len(message) <= _jsonsafe.MAX_STRING):
        message = _jsonsafe.text(message)
    when = captured[_CREATED]
    metrics = None
    if count is not None:
        if type(raw_step) is int and _INT64_MIN <= raw_step <= _INT64_MAX:
            step: int | None = raw_step
        else:
            step = _step(raw_step, problems)
        values_at = _NAMES + count
        pairs = zip(captured[_NAMES:values_at], captured[values_at : values_at + count])  # noqa: B905 - equal by making
        metrics = _metrics(run_id, pairs, step, when, problems, out)
    tags: dict[str, Any] | None = None
    if raw_tags is not None:
        tags_set = _tags(run_id, raw_tags, problems)
        if tags_set is not None:
            out.append(tags_set)
            tags = dict(tags_set.tags)
    if problems:
        _report_problems(run_id, problems, out)
    line = _line(captured, message, metrics, tags, problems)
    out.append(
        _new_tuple(
            ev.LogRecorded,
            (
                run_id,
                when,
                captured[_LEVELNO],
                captured[_NAME],
                message,
                captured[_PROCESS] or 0,
                line,
            ),
        )
    )


def _line(
    fields: tuple[Any, ...],
    message: str,
    metrics: dict[str, Any] | None,
    tags: dict[str, Any] | None,
    problems: list[str],
) -> str:
    """Return the record's JSON line, or a fallback line if it cannot be rendered."""
    try:
        line = formatter().render(fields, message, metrics, tags)
        if problems:
            line = line[:-1] + ',"logbridge_problems":' + json.dumps(problems) + "}"
    except Exception as err:
        line = json.dumps(
            {
                "time": fields[_CREATED],
                "level": fields[_LEVELNAME],
                "logger": fields[_NAME],
                "message": message,
                "logbridge_problems": [*problems, f"record could not be rendered: {err!r}"],
            },
            default=str,
        )
    return line


def _metrics(  # noqa: PLR0917 - positional: called for every tagged record
    run_id: str,
    captured: Iterable[tuple[Any, Any]],
    step: int | None,
    when: float,
    problems: list[str],
    out: list[ev.Event],
) -> dict[str, Any]:
    """Append the metric events of a record's tagged metrics; return them for its JSON line."""
    shown: dict[str, Any] = {}
    for name, value in captured:
        kind = type(value)
        if type(name) is str and name in _checked_names:
            if kind is float:
                out.append(
                    _new_tuple(ev.MetricLogged, (run_id, name, "scalar", value, step, when, ""))
                )
                shown[name] = value if value - value == 0.0 else _jsonsafe.safe(value)
                continue
            if kind is int and _INT64_MIN <= value <= _INT64_MAX:
                out.append(
                    _new_tuple(ev.MetricLogged, (run_id, name, "scalar", value, step, when, ""))
                )
                shown[name] = value
                continue
        metric = _metric(run_id, name, value, step=step, when=when, problems=problems)
        if metric is not None:
            out.append(metric)
            if type(name) is str and metric.name is name and len(_checked_names) < _MAX_NAMES:
                _checked_names.add(name)
        if type(value) is Frozen:
            if value.kind == "error":
                continue
            value = value.value  # noqa: PLW2901
        key = name if isinstance(name, str) else _jsonsafe.describe(name)
        shown[_jsonsafe.text(key)] = _jsonsafe.safe(value)
    return shown


_checked_names: set[str] = set()
"""Metric names `_values.check_name` accepted (as they are: a ``str``, not a subclass)."""
_MAX_NAMES: Final = 10_000
_INT64_MIN: Final = _values.INT64_MIN
_INT64_MAX: Final = _values.INT64_MAX


def _report_problems(run_id: str, problems: list[str], out: list[ev.Event]) -> None:
    for item in problems:
        _report.once(
            "record:" + item.split(" ", 1)[0],
            f"a log record was kept with a fallback: {item} "
            "(further problems of this kind are recorded in the run, not printed)",
        )
    invalid = sum(1 for p in problems if p.startswith("metric "))
    if invalid:
        out.append(ev.Dropped(run_id, "invalid_metric", invalid))


def _err_text(err: BaseException) -> str:
    try:
        return _jsonsafe.text(str(err))[:200]
    except Exception:
        return "?"


def _step(step: Any, problems: list[str]) -> int | None:
    if step is None:
        return None
    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        plain = _plain(item) if callable(item) else None
        if isinstance(plain, bool) or not isinstance(plain, int):
            problems.append(
                f"step {_jsonsafe.describe(step)[:60]} is not an int; metrics kept without it"
            )
            return None
        step = plain
    if not _values.INT64_MIN <= step <= _values.INT64_MAX:
        problems.append(f"step {step} does not fit in 64 bits; metrics kept without it")
        return None
    return int(step)


def _plain(item: Any) -> Any:
    try:
        return item()
    except Exception:
        return None


class Frozen(NamedTuple):
    """A tagged metric value the caller's thread already copied: its kind and plain value.

    ``kind`` ``"error"`` carries the message of a value that could not be captured.
    """

    kind: str
    value: Any


def _metric(
    run_id: str, name: Any, value: Any, *, step: int | None, when: float, problems: list[str]
) -> ev.MetricLogged | None:
    try:
        name = _values.check_name(name)
        if type(value) is Frozen:
            kind, plain = value
            if kind == "error":
                problems.append(f"metric {_jsonsafe.describe(name)[:80]}: {plain}")
                return None
        else:
            kind, plain = "scalar", _values.scalar(value, name)
    except (TypeError, ValueError) as err:
        text = _err_text(err)
        shown = _jsonsafe.describe(name)[:80]
        problems.append(text if text.startswith("metric") else f"metric {shown}: {text}")
        return None
    return _new_tuple(ev.MetricLogged, (run_id, name, kind, plain, step, when, ""))


def _tags(run_id: str, tags: Any, problems: list[str]) -> ev.TagsSet | None:
    if not isinstance(tags, Mapping):
        problems.append(f"tags must be a mapping, not {type(tags).__name__}; ignored")
        return None
    items = []
    for key, value in tags.items():
        try:
            key = _values.check_name(key, "tag")  # noqa: PLW2901
            if value is not None and not isinstance(value, str):
                value = str(value) if isinstance(value, (int, float)) else _jsonsafe.describe(value)  # noqa: PLW2901
            items.append(
                (key, None if value is None else _jsonsafe.text(value)[: _values.MAX_STRING_LENGTH])
            )
        except (TypeError, ValueError) as err:
            problems.append(f"tag {_jsonsafe.describe(key)[:80]}: {_err_text(err)}")
    return ev.TagsSet(run_id, tuple(items)) if items else None


def settings() -> dict[str, Any]:
    """The log's settings in this process, for a writer process to render lines alike."""
    fields = formatter().static_fields
    return {"backend": _backend, "ranks": {key.upper(): fields[key] for key in fields}}


def use_settings(found: dict[str, Any]) -> None:
    """Render lines as the process that gave `settings` does (in its writer process)."""
    global _formatter  # noqa: PLW0603
    for name in _RANK_VARIABLES:
        os.environ.pop(name, None)
    os.environ.update(found["ranks"])
    use_backend(found["backend"])
    _formatter = None


def reset_after_fork() -> None:
    """Forget the formatter (its static fields come from the environment)."""
    global _formatter  # noqa: PLW0603
    _formatter = None
