"""The commands of the ``logbridge`` command line; `cli` parses, `_format` renders."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from typing import Any, Final

from logbridge import _format, _launch, _settings
from logbridge._errors import LogbridgeError, RunNotFoundError, RunStateError
from logbridge._run import Run, get_run, list_runs
from logbridge._store import FINAL_STATUSES, SQLiteStore

FOLLOW_INTERVAL: Final = 0.5
"""Seconds between two looks at the log of a run being followed."""
INTERRUPTED: Final = 130
_TABLE_METRICS: Final = 3


def run(args: argparse.Namespace) -> int:
    """Run a script as a tracked run; return its exit status."""
    script = _launch.Script(
        target=args.target,
        args=args.script_args,
        module=args.module,
        python=args.python,
        log_level=args.log_level,
    )

    def started(new_run: Run) -> None:
        if args.print_run_id:
            print(new_run.id, flush=True)

    return _launch.run_script(
        script,
        experiment=args.experiment,
        name=args.name,
        tags=tags_of(args.tag),
        store=args.store,
        quiet=args.quiet,
        snapshot=args.snapshot,
        started=started,
    )


def tags_of(items: list[str]) -> dict[str, str | None]:
    """Return ``KEY=VALUE`` (or ``KEY``) arguments as a mapping."""
    tags: dict[str, str | None] = {}
    for item in items:
        key, sep, value = item.partition("=")
        tags[key] = value if sep else None
    return tags


def runs(args: argparse.Namespace) -> int:
    """List runs, newest first."""
    found = list_runs(args.experiment, args.status, tags_of(args.tag) or None, store=args.store)
    rows = []
    reader = _reader(args.store) if found else None
    for item in found:
        details = item.get_details()
        assert reader is not None
        details["metrics"] = {
            m.name: m.last for m in reader.list_metrics(item.id) if m.kind == "scalar"
        }
        rows.append(details)
    ordered = _tree_order(rows)
    rows = [d for d, _ in ordered]
    if args.format == "json":
        print(_format.to_json(rows))
        return 0
    headers = ["EXPERIMENT", "RUN", "NAME", "STATUS", "STARTED", "DURATION", "TAGS", "METRICS"]
    if args.format == "csv":
        print(_format.csv_text(headers, [_run_row(d, full=True) for d in rows]))
        return 0
    if not rows:
        print(f"no runs in {_settings.store_path(args.store)}")
        return 0
    colour = _colour()
    table_rows = []
    for d, depth in ordered:
        row = _run_row(d, full=False)
        row[3] = _format.status(d["status"], colour=colour)
        if depth:
            row[2] = "  " * (depth - 1) + "└ " + str(row[2])
        table_rows.append(row)
    print(_format.table(headers, table_rows))
    return 0


def _tree_order(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], int]]:
    """Put each child run right under its parent (oldest child first), with its depth.

    ``rows`` are newest first; a run whose parent is not among them stays at the top level.
    """
    by_id = {d["runId"]: d for d in rows}
    children: dict[str, list[dict[str, Any]]] = {}
    tops = []
    for d in rows:
        parent = d["parentRunId"]
        if parent in by_id and parent != d["runId"]:
            children.setdefault(parent, []).append(d)
        else:
            tops.append(d)
    ordered: list[tuple[dict[str, Any], int]] = []
    stack = [(d, 0) for d in reversed(tops)]
    while stack:
        d, depth = stack.pop()
        ordered.append((d, depth))
        stack.extend((c, depth + 1) for c in children.get(d["runId"], []))
    return ordered


def _run_row(details: dict[str, Any], *, full: bool) -> list[Any]:
    start = _seconds(details["startTimeUtc"])
    end = _seconds(details["endTimeUtc"])
    tags = " ".join(k if v is None else f"{k}={v}" for k, v in details["tags"].items())
    metrics = list(details["metrics"].items())
    shown = metrics if full else metrics[-_TABLE_METRICS:]
    return [
        details["experiment"],
        details["runId"] if full else details["runId"][:12],
        details["name"],
        details["status"],
        _format.timestamp(start),
        _format.duration(start or 0.0, end),
        tags,
        " ".join(f"{k}={_format.value(v, 12)}" for k, v in shown),
    ]


def show(args: argparse.Namespace) -> int:
    """Show one run: details, metrics summary, files and children."""
    found = get_run(args.run, store=args.store)
    details = found.get_details()
    if args.format == "json":
        details["metrics"] = found.get_metrics()
        details["files"] = found.get_file_names()
        details["children"] = [child.id for child in found.get_children()]
        print(_format.to_json(details))
        return 0
    reader = _reader(args.store)
    start = _seconds(details["startTimeUtc"])
    fields: list[tuple[str, str]] = [
        ("run", details["runId"]),
        ("name", details["name"]),
        ("experiment", details["experiment"]),
        ("status", details["status"]),
        ("started", _format.timestamp(start)),
        ("duration", _format.duration(start or 0.0, _seconds(details["endTimeUtc"]))),
    ]
    if details["parentRunId"]:
        fields.append(("parent", details["parentRunId"]))
    command = details["environment"].get("command")
    if command:
        fields.append(("command", " ".join(command)))
    fields += [("tag", k if v is None else f"{k}={v}") for k, v in details["tags"].items()]
    error = details.get("error")
    if error:
        fields.append(("error", f"{error.get('type', 'Error')}: {error.get('message', '')}"))
    colour = _colour()
    for label, text in fields:
        shown = _format.status(text, colour=colour) if label == "status" else _format.plain(text)
        print(f"{label:<11} {shown}")
    metrics = reader.list_metrics(found.id)
    if metrics:
        print(
            "\n"
            + _format.table(
                ["METRIC", "KIND", "POINTS", "LAST"],
                [[m.name, m.kind, m.count, _format.value(m.last)] for m in metrics],
            )
        )
    files = reader.list_files(found.id)
    if files:
        print("\n" + _format.table(["FILE", "SIZE"], [[f.name, f.size] for f in files]))
    children = found.get_children()
    if children:
        print(
            "\n"
            + _format.table(
                ["CHILD RUN", "NAME", "STATUS"],
                [[c.id[:12], c.name, c.get_status()] for c in children],
            )
        )
    return 0


def metrics(args: argparse.Namespace) -> int:
    """Print a run's metrics, or the points of one of them."""
    found = get_run(args.run, store=args.store)
    reader = _reader(args.store)
    if args.name is None:
        if args.format == "json":
            print(_format.to_json(found.get_metrics()))
        elif args.format == "csv":
            rows = [
                [name, p.step, p.time, p.value]
                for info in reader.list_metrics(found.id)
                for name in (info.name,)
                for p in reader.metric_points(found.id, name)
            ]
            print(_format.csv_text(["metric", "step", "time", "value"], rows))
        else:
            summary = reader.list_metrics(found.id)
            if not summary:
                print(f"run {found.id} has no metrics")
                return 0
            print(
                _format.table(
                    ["METRIC", "KIND", "POINTS", "LAST"],
                    [[m.name, m.kind, m.count, _format.value(m.last)] for m in summary],
                )
            )
        return 0
    points = reader.metric_points(found.id, args.name)
    if not points:
        raise RunNotFoundError(f"run {found.id} has no metric {args.name!r}")
    if args.format == "json":
        print(_format.to_json([{"step": p.step, "time": p.time, "value": p.value} for p in points]))
    elif args.format == "csv":
        print(
            _format.csv_text(["step", "time", "value"], [[p.step, p.time, p.value] for p in points])
        )
    else:
        print(
            _format.table(
                ["STEP", "TIME", "VALUE"],
                [[p.step, _format.timestamp(p.time), _format.value(p.value, 80)] for p in points],
            )
        )
    return 0


def logs(args: argparse.Namespace) -> int:
    """Print a run's log; with ``--follow``, keep printing until the run ends."""
    found = get_run(args.run, store=args.store)
    reader = _reader(args.store)
    level = _level(args.level)
    after = 0
    try:
        while True:
            status = found.get_status() if args.follow else ""
            for seq, record in reader.get_logs(
                found.id, level=level, logger=args.logger, contains=args.contains, after=after
            ):
                after = seq
                print(
                    _format.json_lines([record])
                    if args.format == "json"
                    else _format.log_line(record)
                )
            sys.stdout.flush()
            if not args.follow or status in FINAL_STATUSES:
                return 0
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return INTERRUPTED


def files(args: argparse.Namespace) -> int:
    """List a run's files."""
    found = get_run(args.run, store=args.store)
    listed = _reader(args.store).list_files(found.id)
    rows = [[f.name, f.size, _format.timestamp(f.time)] for f in listed]
    if args.format == "json":
        print(_format.to_json([{"name": f.name, "size": f.size, "time": f.time} for f in listed]))
    elif args.format == "csv":
        print(
            _format.csv_text(["name", "size", "time"], [[f.name, f.size, f.time] for f in listed])
        )
    elif not rows:
        print(f"run {found.id} has no files")
    else:
        print(_format.table(["FILE", "SIZE", "TIME"], rows))
    return 0


def download(args: argparse.Namespace) -> int:
    """Copy one of a run's files here, or to DEST."""
    found = get_run(args.run, store=args.store)
    print(found.download_file(args.name, args.dest))
    return 0


def rm(args: argparse.Namespace) -> int:
    """Delete a run, its child runs, their records and their files."""
    found = get_run(args.run, store=args.store)
    if found.get_status() == "Running" and not args.force:
        raise RunStateError(f"run {found.id} is still running (add --force to delete it anyway)")
    doomed = _descendants(found)
    store = SQLiteStore(found.store)
    try:
        for item in reversed(doomed):
            store.delete_run(item.id)
    finally:
        store.close()
    children = len(doomed) - 1
    print(f"deleted run {found.id}" + (f" and {children} child runs" if children else ""))
    return 0


def _descendants(root: Run) -> list[Run]:
    found = [root]
    for item in found:
        found.extend(item.get_children())
    return found


def _reader(store: str | None) -> SQLiteStore:
    return SQLiteStore(_settings.store_path(store), create=False)


def _colour() -> bool:
    return sys.stdout.isatty() and not _settings.no_color()


def _level(name: str | None) -> int | None:
    if name is None:
        return None
    if name.isdigit():
        return int(name)
    import logging  # noqa: PLC0415

    number = logging.getLevelName(name.upper())
    if not isinstance(number, int):
        raise LogbridgeError(
            f"unknown log level {name!r}; use DEBUG, INFO, WARNING, ERROR or a number"
        )
    return number


def _seconds(iso: str | None) -> float | None:
    if iso is None:
        return None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
