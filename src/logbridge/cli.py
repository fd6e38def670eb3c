"""The ``logbridge`` command line: the parser and the dispatch (commands are in `_commands`)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn

from logbridge import _commands, _handler, _settings
from logbridge._errors import LogbridgeError
from logbridge._version import __version__

_RUN_VALUE_OPTIONS = frozenset(
    {"--experiment", "-e", "--name", "-n", "--tag", "-t", "--log-level", "--python", "--store"}
)
"""Options of ``logbridge run`` that take a value: what follows them is not the script."""
_FORMATS = ("table", "csv", "json")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line that points at ``--help``."""

    def error(self, message: str) -> NoReturn:
        """Print ``prog: error: message (see 'prog --help')`` and exit with status 2."""
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    head, script = _split_script(list(sys.argv[1:] if argv is None else argv))
    parser = _parser()
    try:
        args = parser.parse_args(head)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else 2
    if not hasattr(args, "command"):
        parser.print_help()
        return 2
    if args.command is _commands.run:
        problem = _take_script(args, script)
        if problem:
            print(f"logbridge run: error: {problem} (see 'logbridge run --help')", file=sys.stderr)
            return 2
    try:
        return int(args.command(args))
    except LogbridgeError as err:
        print(f"logbridge: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        if isinstance(err, BrokenPipeError):
            return 0
        print(f"logbridge: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return _commands.INTERRUPTED


def _split_script(argv: list[str]) -> tuple[list[str], list[str]]:
    """Split ``logbridge ... run [options] SCRIPT ARGS`` before SCRIPT (or ``-m``).

    Everything from the script on belongs to the script, even what looks like an option of
    logbridge's.
    """
    try:
        start = argv.index("run") + 1
    except ValueError:
        return argv, []
    if any(arg in ("-h", "--help") for arg in argv[: start - 1]):
        return argv, []
    index = start
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            return argv[:index], argv[index + 1 :]
        if arg == "-m" or not arg.startswith("-"):
            return argv[:index], argv[index:]
        index += 2 if arg in _RUN_VALUE_OPTIONS else 1
    return argv, []


def _take_script(args: argparse.Namespace, script: list[str]) -> str | None:
    module = bool(script) and script[0] == "-m"
    if module:
        script = script[1:]
    if not script:
        return "name a script (or -m module) to run"
    args.target, args.script_args, args.module = script[0], script[1:], module
    return None


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="logbridge",
        description="Run scripts as tracked runs and look at the runs of a logbridge store.",
    )
    capture = "compiled" if _handler.COMPILED else "Python"
    parser.add_argument(
        "--version", action="version", version=f"logbridge {__version__} ({capture} capture)"
    )
    parser.add_argument(
        "--store",
        help=f"the store folder (default: ${_settings.HOME}, "
        f"else ./{_settings.DEFAULT_STORE_FOLDER})",
    )
    commands = parser.add_subparsers(title="commands", parser_class=_Parser)
    _add_run(commands)

    runs = _command(commands, "runs", _commands.runs, "list runs, newest first")
    runs.add_argument("--experiment", "-e", help="only runs of this experiment")
    runs.add_argument("--status", "-s", help="only runs with this status (e.g. Running, Failed)")
    runs.add_argument(
        "--tag", action="append", default=[], metavar="KEY[=VALUE]", help="only runs with this tag"
    )
    _add_format(runs)

    show = _command(
        commands, "show", _commands.show, "show one run: details, metrics, files, children"
    )
    _add_run_argument(show)
    show.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        default="text",
        help="print JSON",
    )

    metrics = _command(
        commands, "metrics", _commands.metrics, "print a run's metrics, or one metric's points"
    )
    _add_run_argument(metrics)
    metrics.add_argument("name", nargs="?", help="a metric: print its points")
    _add_format(metrics)

    logs = _command(commands, "logs", _commands.logs, "print a run's log")
    _add_run_argument(logs)
    logs.add_argument("--level", "-l", help="records at or above this level (name or number)")
    logs.add_argument("--logger", help="records of this logger and its children")
    logs.add_argument("--contains", help="records whose message holds this text")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new records until the run ends"
    )
    logs.add_argument(
        "--format", choices=("text", "json"), default="text", help="text, or JSON lines"
    )

    files = _command(commands, "files", _commands.files, "list a run's files")
    _add_run_argument(files)
    _add_format(files)

    download = _command(
        commands, "download", _commands.download, "copy one of a run's files here or to DEST"
    )
    _add_run_argument(download)
    download.add_argument("name", help="the file's name, as 'logbridge files' lists it")
    download.add_argument("dest", nargs="?", help="a file or folder (default: here)")

    rm = _command(
        commands, "rm", _commands.rm, "delete a run with its child runs, records and files"
    )
    _add_run_argument(rm)
    rm.add_argument("--force", action="store_true", help="delete it even if it is running")

    ui = commands.add_parser("ui", help="serve the run viewer, a local web application")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    ui.add_argument("--port", type=int, default=5055, help="port (default 5055; 0 picks one)")
    ui.add_argument("--store", default=argparse.SUPPRESS, help="the store folder")
    ui.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the viewer has no login: anyone reaching it reads "
        "every run)",
    )
    ui.set_defaults(command=_ui)

    export = commands.add_parser(
        "export",
        help="send a stored run (and its child runs) to an OpenTelemetry collector",
        description="Send a stored run, with its original times and ids, to an OpenTelemetry "
        "collector; the standard OTEL_EXPORTER_OTLP_* variables apply unless overridden here.",
    )
    export.add_argument("run", help="run id or a unique prefix of it")
    export.add_argument("--store", default=argparse.SUPPRESS, help="the store folder")
    export.add_argument("--endpoint", help="collector base URL, e.g. http://127.0.0.1:4318")
    export.add_argument("--protocol", choices=("http/protobuf", "grpc"), help="OTLP protocol")
    export.add_argument(
        "--timeout", type=float, default=60.0, help="seconds the export may take (default 60)"
    )
    export.add_argument("--no-children", action="store_true", help="leave the child runs out")
    export.set_defaults(command=_export)
    return parser


def _command(
    commands: argparse._SubParsersAction[_Parser],
    name: str,
    function: object,
    summary: str,
) -> argparse.ArgumentParser:
    sub = commands.add_parser(
        name, help=summary, description=summary[:1].upper() + summary[1:] + "."
    )
    sub.add_argument("--store", default=argparse.SUPPRESS, help="the store folder")
    sub.set_defaults(command=function)
    return sub


def _add_run_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run", help="run id or a unique prefix of it")


def _add_format(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=_FORMATS, default="table", help="table (default), csv or json"
    )
    parser.add_argument(
        "--json", dest="format", action="store_const", const="json", help="same as --format json"
    )


def _add_run(commands: argparse._SubParsersAction[_Parser]) -> None:
    run = _command(commands, "run", _commands.run, "run a script as a tracked run")
    run.usage = (
        "logbridge run [options] script.py [args ...]\n"
        "       logbridge run [options] -m module [args ...]"
    )
    run.description = (
        "Run a Python script (or module) as a tracked run: its logging, stdout and stderr, "
        "outputs/ folder, a snapshot of its folder and its exit status are recorded. "
        "Everything after the script belongs to the script. The exit status is the script's "
        "(128 + N when stopped by signal N)."
    )
    run.add_argument("--experiment", "-e", help="the run's experiment (default: the script's name)")
    run.add_argument("--name", "-n", help="the run's display name")
    run.add_argument(
        "--tag", "-t", action="append", default=[], metavar="KEY[=VALUE]", help="a tag of the run"
    )
    run.add_argument(
        "--log-level",
        type=_log_level,
        help="record log records from this level (default: the level the script configures)",
    )
    run.add_argument("--quiet", "-q", action="store_true", help="do not show the script's output")
    run.add_argument(
        "--no-snapshot",
        dest="snapshot",
        action="store_false",
        help="do not store a snapshot of the script's folder",
    )
    run.add_argument("--python", help="the interpreter that runs the script (default: this one)")
    run.add_argument("--print-run-id", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("script", nargs="?", help="the script, or -m module, then its arguments")


def _log_level(text: str) -> int:
    if text.isdigit():
        return int(text)
    number = logging.getLevelName(text.upper())
    if not isinstance(number, int):
        raise argparse.ArgumentTypeError(f"unknown log level {text!r}")
    return number


def _export(args: argparse.Namespace) -> int:
    from logbridge import otel  # noqa: PLC0415 - OpenTelemetry is imported only for this command

    counts = otel.export_run(
        args.run,
        store=args.store,
        endpoint=args.endpoint,
        protocol=args.protocol,
        timeout=args.timeout,
        children=not args.no_children,
    )
    lost = counts.pop("lost", 0)
    sent = ", ".join(f"{n} {what}" for what, n in sorted(counts.items())) or "nothing"
    print(f"sent {sent}" + (f"; {lost} could not be sent" if lost else ""))
    return 1 if lost else 0


def _ui(args: argparse.Namespace) -> int:
    from logbridge import ui  # noqa: PLC0415 - Flask is imported only for this command

    ui.serve(args.store, host=args.host, port=args.port, allow_remote=args.allow_remote)
    return 0
