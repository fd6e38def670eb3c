"""The ``logbridge`` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from logbridge import _format, _settings
from logbridge._errors import LogbridgeError
from logbridge._run import get_run, list_runs
from logbridge._version import __version__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    try:
        return int(args.command(args))
    except LogbridgeError as err:
        print(f"logbridge: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="logbridge", description="Look at the runs recorded in a logbridge store."
    )
    parser.add_argument("--version", action="version", version=f"logbridge {__version__}")
    parser.add_argument(
        "--store",
        help=f"the store folder (default: ${_settings.HOME}, "
        f"else ./{_settings.DEFAULT_STORE_FOLDER})",
    )
    commands = parser.add_subparsers(title="commands")

    runs = commands.add_parser("runs", help="list runs, newest first")
    runs.add_argument("--experiment", "-e", help="only runs of this experiment")
    runs.add_argument("--status", "-s", help="only runs with this status (e.g. Running, Failed)")
    runs.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="only runs with this tag"
    )
    runs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    runs.set_defaults(command=_runs)

    show = commands.add_parser("show", help="show one run: details, metrics, files, children")
    show.add_argument("run", help="run id or a unique prefix of it")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(command=_show)
    return parser


def _runs(args: argparse.Namespace) -> int:
    tags: dict[str, str | None] = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        tags[key] = value if sep else None
    runs = list_runs(args.experiment, args.status, tags or None, store=args.store)
    rows = []
    for run in runs:
        details = run.get_details()
        rows.append(details)
    if args.json:
        print(_format.to_json(rows))
        return 0
    if not rows:
        print(f"no runs in {_settings.store_path(args.store)}")
        return 0
    print(
        _format.table(
            ["EXPERIMENT", "RUN", "NAME", "STATUS", "STARTED", "DURATION"],
            [
                [
                    d["experiment"],
                    d["runId"][:12],
                    d["name"],
                    d["status"],
                    _format.timestamp(_seconds(d["startTimeUtc"])),
                    _format.duration(_seconds(d["startTimeUtc"]) or 0.0, _seconds(d["endTimeUtc"])),
                ]
                for d in rows
            ],
        )
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    run = get_run(args.run, store=args.store)
    details = run.get_details()
    details["metrics"] = run.get_metrics()
    details["files"] = run.get_file_names()
    details["children"] = [child.id for child in run.get_children()]
    print(_format.to_json(details))
    return 0


def _seconds(iso: str | None) -> float | None:
    if iso is None:
        return None
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
