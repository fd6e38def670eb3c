"""The Run API: azureml-core's run logging calls, recording into the local store."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from logbridge import _artifacts, _environment, _liveness, _settings, _state, _values
from logbridge import _events as ev
from logbridge._errors import (
    InvalidMetricError,
    InvalidMetricTypeError,
    RunNotFoundError,
    RunStateError,
)
from logbridge._store import RunInfo, SQLiteStore

OUTPUTS_FOLDER = "outputs"
"""Files a run's process writes here are stored with the run when it finishes."""

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".bmp", ".webp")

_point = functools.partial(tuple.__new__, ev.MetricLogged)
"""Build a `MetricLogged` from the tuple of all seven of its fields, for `Run.log`.

Calling the class runs the named tuple's Python ``__new__``; this stays in C and halves the
cost of the event (about 0.1 µs of the 1 µs of a ``run.log`` call, bench_run_log.py).
"""


class Run:
    """A run of an experiment: write metrics, tags, properties and files; read them back.

    Get one from `start_run`, `Experiment.start_logging`, `Run.get_context`, `get_run`,
    `list_runs` or `Run.child_run`; do not construct it directly. Writing methods queue what
    they are given (copied as it is at the call) and return; reading methods see everything
    written before them, from this or any other process.
    """

    def __init__(
        self, run_id: str, store: Path, *, experiment: str, name: str, parent_id: str | None
    ) -> None:
        """Bind a run handle to a run in a store (internal: use `start_run` or `get_run`)."""
        self._id = run_id
        self._store = store
        self._experiment = experiment
        self._name = name
        self._parent_id = parent_id
        self._kinds: dict[str, str] = {}
        self._properties: dict[str, str] = {}
        self._finished = False
        self._owned_pid = 0
        self._start_cwd: str | None = None
        self._lock = threading.RLock()  # reentrant: the SIGTERM handler may finish the run

    # -- identity ----------------------------------------------------------------------------

    @property
    def id(self) -> str:
        """The run's id."""
        return self._id

    @property
    def experiment(self) -> str:
        """The name of the run's experiment."""
        return self._experiment

    @property
    def name(self) -> str:
        """The run's display name."""
        return self._name

    @property
    def store(self) -> Path:
        """The folder of the store holding the run."""
        return self._store

    @property
    def parent(self) -> Run | None:
        """The parent run of a child run, else None."""
        return None if self._parent_id is None else get_run(self._parent_id, store=self._store)

    def __repr__(self) -> str:
        """Show experiment, id and name."""
        return f"Run(experiment={self._experiment!r}, id={self._id!r}, name={self._name!r})"

    def _repr_html_(self) -> str:
        """Show the run in a notebook: status, a metric table and small charts."""
        from logbridge.ui._notebook import run_html  # noqa: PLC0415 - only notebooks need it

        return run_html(self)

    def __eq__(self, other: object) -> bool:
        """Runs are equal when they are the same run of the same store."""
        return isinstance(other, Run) and (other._id, other._store) == (self._id, self._store)

    def __hash__(self) -> int:
        """Hash by run id."""
        return hash(self._id)

    def __enter__(self) -> Run:  # noqa: PYI034 - subclasses are not part of the API
        """Return the run; leaving the block finishes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Complete the run, or fail it (cancel it on Ctrl-C) when the block raised."""
        if exc_type is None:
            self.complete()
        elif issubclass(exc_type, KeyboardInterrupt):
            self._finish("Canceled", _state.error_details(exc_type, exc, tb))
        else:
            self._finish("Failed", _state.error_details(exc_type, exc, tb))

    # -- creating ----------------------------------------------------------------------------

    @classmethod
    def _start(
        cls,
        *,
        experiment: str,
        name: str | None,
        tags: Mapping[str, Any] | None,
        store: Path,
        parent_id: str | None = None,
    ) -> Run:
        experiment = _values.check_name(experiment, "experiment")
        run_id = uuid.uuid4().hex
        given: object = name
        if given is None:
            given = f"{experiment}-{run_id[:8]}"
        if not isinstance(given, str) or not given:
            raise InvalidMetricTypeError(f"run name must be a non-empty str, not {given!r}")
        name = given
        tag_items = _tag_items(tags or {})
        run = cls(run_id, store, experiment=experiment, name=name, parent_id=parent_id)
        pid = os.getpid()
        started: list[ev.Event] = [
            ev.RunStarted(
                run_id=run_id,
                experiment=experiment,
                name=name,
                parent_id=parent_id,
                time=time.time(),
                host=_liveness.host(),
                pid=pid,
                pid_start=_liveness.process_start(pid),
                environment=_environment.capture(),
            )
        ]
        if tag_items:
            started.append(ev.TagsSet(run_id, tag_items))
        recorder = _state.recorder(store)
        recorder.write_now(started)
        run._owned_pid = pid
        run._start_cwd = str(Path.cwd())
        recorder.own(run_id)
        _state.own(run)
        return run

    @classmethod
    def _from_info(cls, store: Path, info: RunInfo) -> Run:
        return cls(
            info.id, store, experiment=info.experiment, name=info.name, parent_id=info.parent_id
        )

    @classmethod
    def get_context(cls) -> Run:
        """Return the run this process belongs to.

        That is the current run of this process; else the run of the process that started this
        one (``LOGBRIDGE_RUN_ID``); else a new run named after the script, finished when the
        process exits.
        """
        current = _state.current_run()
        if current is not None:
            return current
        with _context_lock:  # threads racing here all get the one run the first starts
            return cls._context()

    @classmethod
    def _context(cls) -> Run:
        current = _state.current_run()
        if current is not None:
            return current
        inherited = _settings.run_id()
        if inherited is not None:
            store = _settings.store_path()
            info = _open_store(store).get_run(inherited)
            if info is None:
                raise RunNotFoundError(
                    f"{_settings.RUN_ID}={inherited} names no run in the store {store}"
                )
            run = cls._from_info(store, info)
            if _state.set_current(run):
                return run
            current = _state.current_run()
            return run if current is None else current
        name = _environment.script_name()
        return start_run(experiment=_settings.experiment() or name)

    def child_run(self, name: str | None = None, *, tags: Mapping[str, Any] | None = None) -> Run:
        """Start a run under this one (for sweeps and trials); it is not made current."""
        return Run._start(
            experiment=self._experiment, name=name, tags=tags, store=self._store, parent_id=self._id
        )

    # -- writing -----------------------------------------------------------------------------

    def _put(self, event: ev.Event) -> None:
        _state.recorder(self._store).put(event)

    def _check_kind(self, name: str, kind: str) -> None:
        known = self._kinds.setdefault(name, kind)
        if known != kind:
            raise InvalidMetricError(
                f"metric {name!r} of run {self._id} holds {known} values; "
                f"it cannot also hold a {kind} (use another name)"
            )

    def log(self, name: str, value: Any, description: str = "", step: int | None = None) -> None:
        """Log a scalar: a number or a string. Logging a name again makes a series.

        Args:
            name: the metric's name (see the naming rules in the docs).
            value: a float, int, bool or str; numpy and torch scalars are converted.
            description: a description of the metric, kept from its first point.
            step: the point's step (an int), for charts over steps.

        Raises:
            InvalidMetricError: bad name, or the name already holds another kind of metric.
            InvalidMetricTypeError: the value is not a number or a string.
        """
        # The hot path of the Run API: plain floats and in-range int steps skip the calls
        # that would only return them unchanged (benchmarks/bench_run_log.py).
        name = _values.check_name(name)
        if type(value) is not float:
            value = _values.scalar(value, name)
        if step is not None and (
            type(step) is not int or not _values.INT64_MIN <= step <= _values.INT64_MAX
        ):
            step = _check_step(step, name)
        if self._kinds.get(name) != "scalar":
            self._check_kind(name, "scalar")
        _state.recorder(self._store).put(
            _point((self._id, name, "scalar", value, step, time.time(), description))
        )

    def log_list(self, name: str, value: Any, description: str = "") -> None:
        """Log a list of values (a list, tuple or numpy array) as one list metric."""
        name = _values.check_name(name)
        values = _values.scalars(value, name)
        self._check_kind(name, "list")
        self._put(ev.MetricLogged(self._id, name, "list", values, None, time.time(), description))

    def log_row(self, name: str, description: str | None = None, **columns: Any) -> None:
        """Log one row of a table; repeated rows under one name build the table."""
        name = _values.check_name(name)
        cells = _values.row(columns, name)
        self._check_kind(name, "row")
        self._put(
            ev.MetricLogged(self._id, name, "row", cells, None, time.time(), description or "")
        )

    def log_table(self, name: str, value: Mapping[str, Any], description: str = "") -> None:
        """Log a table given as a mapping of column name to a list of values."""
        name = _values.check_name(name)
        table = _values.columns(value, name)
        self._check_kind(name, "table")
        self._put(ev.MetricLogged(self._id, name, "table", table, None, time.time(), description))

    def log_image(
        self, name: str, path: Any = None, plot: Any = None, description: str = ""
    ) -> None:
        """Log an image: a file (path or binary stream), or a matplotlib figure or pyplot.

        Exactly one of ``path`` and ``plot`` is given. The image is stored as a file of the run
        (under ``images/``) and the metric refers to it.
        """
        name = _values.check_name(name)
        if (path is None) == (plot is None):
            raise InvalidMetricError(f"metric {name!r}: give exactly one of path= and plot=")
        self._check_kind(name, "image")
        if plot is not None:
            savefig = getattr(plot, "savefig", None)
            if savefig is None:
                raise InvalidMetricTypeError(
                    f"metric {name!r}: plot= takes a matplotlib figure or pyplot, "
                    f"not {type(plot).__name__}"
                )
            suffix = ".png"
        else:
            suffix = _image_suffix(path)
        file_name = f"images/{_artifacts.slug(name)}-{uuid.uuid4().hex[:8]}{suffix}"
        folder = self._artifact_folder()
        if plot is not None:
            target = _artifacts.path_in(folder, file_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            plot.savefig(target, format="png")
            size = target.stat().st_size
        else:
            size = _artifacts.store_file(folder, file_name, path)
        now = time.time()
        self._put(ev.FileUploaded(self._id, file_name, size, now))
        self._put(ev.MetricLogged(self._id, name, "image", file_name, None, now, description))

    def tag(self, key: str, value: Any = None) -> None:
        """Set a tag: a key with an optional string value (numbers are turned into strings)."""
        self._put(ev.TagsSet(self._id, _tag_items({key: value})))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags at once."""
        items = _tag_items(tags)
        if items:
            self._put(ev.TagsSet(self._id, items))

    def add_properties(self, properties: Mapping[str, Any]) -> None:
        """Add write-once properties: a key keeps its first value.

        Raises:
            RunStateError: a key already holds a different value.
        """
        items = _tag_items(properties, what="property")
        stored = None
        for key, value in items:
            if value is None:
                raise InvalidMetricTypeError(f"property {key!r} needs a value")
            known = self._properties.get(key)
            if known is None:
                if stored is None:
                    stored = _open_store(self._store).get_properties(self._id)
                known = stored.get(key)
            if known is not None and known != value:
                raise RunStateError(
                    f"property {key!r} of run {self._id} is already {known!r}; "
                    "properties are write-once (use a tag for values that change)"
                )
        for key, value in items:
            self._properties[key] = value  # type: ignore[assignment]
        self._put(ev.PropertiesAdded(self._id, items))  # type: ignore[arg-type]

    def upload_file(self, name: str, path_or_stream: str | os.PathLike[str] | IO[Any]) -> None:
        """Store a file (a path or a readable stream) with the run under ``name``.

        Raises:
            ArtifactNameError: ``name`` is not a relative path inside the run's folder.
            OSError: the source cannot be read.
        """
        size = _artifacts.store_file(self._artifact_folder(), name, path_or_stream)
        self._put(ev.FileUploaded(self._id, name, size, time.time()))

    def upload_folder(self, name: str, path: str | os.PathLike[str]) -> None:
        """Store every file below a folder with the run, under ``name/``."""
        _artifacts.check_name(name)
        root = Path(path)
        if not root.is_dir():
            raise NotADirectoryError(f"upload_folder: {root} is not a folder")
        for file in sorted(_walk_files(root)):
            self.upload_file(f"{name}/{file.relative_to(root).as_posix()}", file)

    def _artifact_folder(self) -> Path:
        return SQLiteStore.artifact_folder_of(self._store, self._id)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything logged so far is in the store; return False on timeout."""
        recorder = _state.existing_recorder(self._store)
        return True if recorder is None else recorder.flush(timeout)

    def complete(self) -> None:
        """Finish the run as Completed (no-op if it is already finished here)."""
        self._finish("Completed", None)

    def fail(self, error_details: Any = None) -> None:
        """Finish the run as Failed; ``error_details`` is a message or an exception."""
        if isinstance(error_details, BaseException):
            details = _state.error_details(
                type(error_details), error_details, error_details.__traceback__
            )
        else:
            details = {
                "type": "Error",
                "message": "" if error_details is None else str(error_details),
            }
        self._finish("Failed", details)

    def cancel(self) -> None:
        """Finish the run as Canceled."""
        self._finish("Canceled", None)

    def _finish(self, status: str, error: dict[str, Any] | None, *, flush: bool = True) -> None:
        with self._lock:
            if self._finished:
                return
            self._finished = True
        recorder = _state.recorder(self._store)
        if self._owned_pid == os.getpid() and self._parent_id is None and self._start_cwd:
            self._capture_outputs(Path(self._start_cwd) / OUTPUTS_FOLDER)
        recorder.put(ev.RunFinished(self._id, status, time.time(), error))
        recorder.disown(self._id)
        _state.finished(self)
        if flush:
            recorder.flush(_settings.exit_timeout())

    def _capture_outputs(self, folder: Path) -> None:
        if not folder.is_dir():
            return
        try:
            self.upload_folder(OUTPUTS_FOLDER, folder)
        except Exception as err:  # the run still finishes; say what was not kept
            from logbridge import _report  # noqa: PLC0415

            _report.always(f"could not store {folder} with run {self._id}: {err}")

    def _record_exception(self, details: dict[str, Any]) -> None:
        """Put an uncaught exception in the run's log."""
        record = logging.LogRecord(
            "logbridge.uncaught",
            logging.CRITICAL,
            "",
            0,
            "Uncaught %s: %s",
            (details["type"], details["message"]),
            None,
        )
        record.exc_text = details.get("traceback") or None
        self._put(ev.RecordCaptured(self._id, record, None, None, None, ()))

    # -- reading -----------------------------------------------------------------------------

    def _reader(self) -> SQLiteStore:
        recorder = _state.existing_recorder(self._store)
        if recorder is not None:
            recorder.flush(_settings.exit_timeout())
            return recorder.store
        return _open_store(self._store)

    def _info(self) -> RunInfo:
        info = self._reader().get_run(self._id)
        if info is None:
            raise RunNotFoundError(f"run {self._id} is no longer in the store {self._store}")
        return info

    def get_status(self) -> str:
        """Return ``Running``, ``Completed``, ``Failed`` or ``Canceled``.

        A run whose process died without finishing it reads as ``Failed``.
        """
        return self._info().status

    def get_metrics(self, name: str | None = None, recursive: bool = False) -> dict[str, Any]:
        """Return the run's metrics as azureml does: name -> value(s).

        A scalar logged once gives the value, several times the list of values; a list gives
        the list; one row a dict of values, several rows or a table a dict of column lists; an
        image the name of its file (see `download_file`). With ``recursive=True`` the result
        maps the id of this run and of each descendant to its metrics.
        """
        reader = self._reader()
        metrics = {
            metric: _shape(kind, values)
            for metric, (kind, values) in reader.metric_values(self._id, name).items()
        }
        if not recursive:
            return metrics
        result: dict[str, Any] = {self._id: metrics}
        for child in self.get_children():
            result.update(child.get_metrics(name, recursive=True))
        return result

    def get_tags(self) -> dict[str, str | None]:
        """Return the run's tags."""
        return self._reader().get_tags(self._id)

    def get_properties(self) -> dict[str, str]:
        """Return the run's properties."""
        return self._reader().get_properties(self._id)

    def get_file_names(self) -> list[str]:
        """Return the names of the run's files, sorted."""
        return [f.name for f in self._reader().list_files(self._id)]

    def download_file(
        self, name: str, output_file_path: str | os.PathLike[str] | None = None
    ) -> Path:
        """Copy one of the run's files to ``output_file_path`` (default: its base name here).

        Returns the path written. If ``output_file_path`` is a folder the file keeps its name.
        """
        source = _artifacts.path_in(self._artifact_folder(), name)
        if not source.is_file():
            raise FileNotFoundError(f"run {self._id} has no file {name!r}")
        target = Path(output_file_path) if output_file_path is not None else Path(Path(name).name)
        if target.is_dir():
            target = target / Path(name).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    def get_children(self) -> list[Run]:
        """Return the run's child runs, oldest first."""
        infos = self._reader().list_runs(parent_id=self._id)
        return [Run._from_info(self._store, info) for info in reversed(infos)]

    def get_logs(
        self, level: int | str | None = None, logger: str | None = None, contains: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the run's log records, oldest first, as dicts.

        Args:
            level: a level name or number: records at or above it.
            logger: a logger name: records of that logger and its children.
            contains: a substring of the message.
        """
        return [
            record
            for _, record in self._reader().get_logs(
                self._id, level=_level_number(level), logger=logger, contains=contains
            )
        ]

    def get_details(self) -> dict[str, Any]:
        """Return the run's ids, status, times, environment, error, tags and properties."""
        reader = self._reader()
        info = reader.get_run(self._id)
        if info is None:
            raise RunNotFoundError(f"run {self._id} is no longer in the store {self._store}")
        details: dict[str, Any] = {
            "runId": info.id,
            "experiment": info.experiment,
            "name": info.name,
            "parentRunId": info.parent_id,
            "status": info.status,
            "startTimeUtc": _iso(info.start_time),
            "endTimeUtc": None if info.end_time is None else _iso(info.end_time),
            "tags": reader.get_tags(self._id),
            "properties": reader.get_properties(self._id),
            "environment": info.environment,
            "store": str(self._store),
        }
        if info.error is not None:
            details["error"] = info.error
        drops = reader.get_drops(self._id)
        if drops:
            details["dropped"] = drops
        return details

    def wait_for_completion(
        self,
        show_output: bool = False,
        wait_post_processing: bool = False,  # noqa: ARG002 - azureml's signature
        raise_on_error: bool = True,
    ) -> dict[str, Any]:
        """Wait until the run ends (another process runs it); return `get_details`.

        Args:
            show_output: print the run's log as it is written: the script's stdout and stderr
                for runs of ``logbridge run`` and `logbridge.submit`, every record otherwise.
            wait_post_processing: accepted for azureml's sake; nothing runs after a run here.
            raise_on_error: raise `RunFailedError` if the run ends as Failed.

        Raises:
            RunFailedError: the run failed (with ``raise_on_error``).
            RunStateError: this process runs the run, so it would wait for itself.
        """
        if self._owned_pid == os.getpid() and not self._finished:
            raise RunStateError(f"run {self._id} is run by this process: it would wait for itself")
        from logbridge._submit import wait_for_completion  # noqa: PLC0415 - rarely needed

        return wait_for_completion(self, show_output=show_output, raise_on_error=raise_on_error)

    def get_portal_url(self) -> str:
        """Return the address of the run's page in the local viewer (``logbridge ui``)."""
        from logbridge._submit import portal_url  # noqa: PLC0415 - rarely needed

        return portal_url(self)


class Experiment:
    """A named group of runs."""

    def __init__(self, name: str, *, store: str | os.PathLike[str] | None = None) -> None:
        """Name the experiment; ``store`` overrides the store folder."""
        self._name = _values.check_name(name, "experiment")
        self._store = _settings.store_path(store)

    @property
    def name(self) -> str:
        """The experiment's name."""
        return self._name

    def __repr__(self) -> str:
        """Show the name."""
        return f"Experiment(name={self._name!r})"

    def start_logging(
        self, *, name: str | None = None, tags: Mapping[str, Any] | None = None
    ) -> Run:
        """Start an interactive run of this experiment (see `start_run`)."""
        return start_run(experiment=self._name, name=name, tags=tags, store=self._store)

    def get_runs(
        self, *, status: str | None = None, tags: Mapping[str, str | None] | None = None
    ) -> Iterator[Run]:
        """Yield the experiment's runs, newest first."""
        yield from list_runs(experiment=self._name, status=status, tags=tags, store=self._store)


_context_lock = threading.RLock()
"""Held while `Run.get_context` finds or starts the process's run."""


def _new_context_lock() -> None:
    global _context_lock  # noqa: PLW0603
    _context_lock = threading.RLock()  # a parent's thread may have held it; it is not here


os.register_at_fork(after_in_child=_new_context_lock)


def start_run(
    experiment: str | None = None,
    name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    store: str | os.PathLike[str] | None = None,
    *,
    otel: bool = False,
) -> Run:
    """Start a run and make it the process's current run (unless one is already current).

    Args:
        experiment: the experiment's name; default ``$LOGBRIDGE_EXPERIMENT``, else the
            script's name.
        name: the run's display name; default the experiment's name and a short id.
        tags: tags to set at once.
        store: the store folder; default ``$LOGBRIDGE_HOME``, else ``./logbridge-runs``.
        otel: also send the process's runs to an OpenTelemetry collector (`logbridge.otel`).

    Raises:
        StoreError: the store cannot be created or written.
        MissingExtraError: ``otel=True`` without the ``otel`` extra installed.
    """
    if otel:
        _state.enable_otel()
    folder = _settings.store_path(store)
    if experiment is None:
        experiment = _settings.experiment() or _environment.script_name()
    run = Run._start(experiment=experiment, name=name, tags=tags, store=folder)  # noqa: SLF001
    _state.set_current(run)
    return run


def get_run(run_id: str, *, store: str | os.PathLike[str] | None = None) -> Run:
    """Return the run with this id (or unique id prefix).

    Raises:
        RunNotFoundError: no run, or several runs, match.
    """
    folder = _settings.store_path(store)
    reader = _open_store(folder)
    info = reader.get_run(reader.resolve_run_id(run_id))
    if info is None:
        raise RunNotFoundError(f"no run with id {run_id!r} in the store {folder}")
    return Run._from_info(folder, info)  # noqa: SLF001


def list_runs(
    experiment: str | None = None,
    status: str | None = None,
    tags: Mapping[str, str | None] | None = None,
    *,
    store: str | os.PathLike[str] | None = None,
) -> list[Run]:
    """Return the runs of the store, newest first, filtered by experiment, status and tags.

    ``tags`` maps a key to a value the tag must have, or to None for "has the tag".
    """
    folder = _settings.store_path(store)
    if not (folder / "store.db").exists():
        return []
    infos = _open_store(folder).list_runs(experiment=experiment, status=status, tags=tags)
    return [Run._from_info(folder, info) for info in infos]  # noqa: SLF001


def _open_store(folder: Path) -> SQLiteStore:
    recorder = _state.existing_recorder(folder)
    return recorder.store if recorder is not None else SQLiteStore(folder, create=False)


def _shape(kind: str, values: list[Any]) -> Any:
    if kind in {"scalar", "image", "list"}:
        return values[0] if len(values) == 1 else values
    if kind == "row":
        if len(values) == 1:
            return values[0]
        return _concat([{col: [v] for col, v in row.items()} for row in values])
    return _concat(values)


def _concat(tables: list[dict[str, list[Any]]]) -> dict[str, list[Any]]:
    """Stack tables; a column missing from one of them is filled with None."""
    columns: dict[str, list[Any]] = {}
    length = 0
    for table in tables:
        rows = max((len(v) for v in table.values()), default=0)
        for col in table:
            columns.setdefault(col, [None] * length)
        for col, values in columns.items():
            values.extend(table.get(col, [None] * rows))
        length += rows
    return columns


def _check_step(step: Any, name: str) -> int:
    if isinstance(step, bool) or not isinstance(step, int):
        item = getattr(step, "item", None)
        plain = item() if item is not None else None
        if isinstance(plain, bool) or not isinstance(plain, int):
            raise InvalidMetricTypeError(f"metric {name!r}: step must be an int, not {step!r:.60}")
        step = plain
    if not _values.INT64_MIN <= step <= _values.INT64_MAX:
        raise InvalidMetricError(f"metric {name!r}: step {step} does not fit in 64 bits")
    return int(step)


def _tag_items(tags: Mapping[str, Any], what: str = "tag") -> tuple[tuple[str, str | None], ...]:
    if not isinstance(tags, Mapping):
        raise InvalidMetricTypeError(
            f"{what}s are a mapping of name to value, not {type(tags).__name__}"
        )
    items = []
    for key, value in tags.items():
        key = _values.check_name(key, what)  # noqa: PLW2901
        if value is not None:
            if isinstance(value, (bool, int, float)):
                value = str(value)  # noqa: PLW2901
            elif not isinstance(value, str):
                raise InvalidMetricTypeError(
                    f"{what} {key!r}: value must be a str or a number, not {type(value).__name__}"
                )
            if len(value) > _values.MAX_STRING_LENGTH:
                raise InvalidMetricError(
                    f"{what} {key!r}: value is longer than {_values.MAX_STRING_LENGTH}"
                )
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise InvalidMetricError(f"{what} {key!r}: value is not valid Unicode") from None
        items.append((key, value))
    return tuple(items)


def _image_suffix(path: Any) -> str:
    if isinstance(path, (str, os.PathLike)):
        suffix = Path(path).suffix.lower()
        return suffix if suffix in _IMAGE_SUFFIXES else ".png"
    return ".png"


def _walk_files(root: Path) -> Iterator[Path]:
    # os.walk does not follow folder symlinks; a file symlink is followed only when it stays
    # inside the folder, so an outputs/ link to ~/.ssh does not copy secrets into the store.
    base = root.resolve()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for file in files:
            path = Path(folder) / file
            if not path.is_file():
                continue
            if path.is_symlink() and base not in path.resolve().parents:
                from logbridge import _report  # noqa: PLC0415

                _report.once(
                    "upload_folder_symlink",
                    f"upload_folder skipped {path}: a symlink to a file outside {root}",
                )
                continue
            yield path


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).isoformat().replace("+00:00", "Z")


def _level_number(level: int | str | None) -> int | None:
    if level is None or isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}")  # noqa: TRY004 - a bad value, not type
    return number
