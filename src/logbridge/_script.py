"""The process a script run's script runs in: ``python -m logbridge._script [options] target``.

`logbridge run` starts it with the run in its environment. It makes the script's `logging`
records reach the run as if a `RunHandler` were the last handler of the root logger, then runs
the script (or module) as ``python script.py`` would.

The handler is not put in ``root.handlers``: there, it would make the script's own
``logging.basicConfig`` do nothing (it configures only a root logger without handlers) and
stop `logging.lastResort` from showing warnings of a script that configures nothing. Instead
`logging.Logger.callHandlers` hands each record to the script's handlers as before, then to
the run's handler. Records of loggers that do not propagate are recorded too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import runpy
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from logbridge import _settings, _state
from logbridge._handler import RunHandler
from logbridge._run import Run

INTERRUPTED = 130
"""Exit status of a script stopped by Ctrl-C (128 + SIGINT), as a shell reports it."""


def install(level: int | None) -> RunHandler:
    """Send every log record of this process to the run's handler; return the handler.

    Args:
        level: the lowest level recorded; lower than the level the script gives the root
            logger, it widens what the run records without changing what the script's
            console handlers show. None records what the script's configuration lets through.
    """
    handler = RunHandler(logging.NOTSET if level is None else level)
    root = logging.getLogger()
    original = logging.Logger.callHandlers
    if level is None:

        def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
            original(self, record)
            handler.handle(record)

    else:
        configured = [root.level]

        def set_root_level(value: int | str) -> None:
            logging.Logger.setLevel(root, value)
            configured[0] = root.level
            if level < root.level:
                logging.Logger.setLevel(root, level)

        def call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
            if record.levelno >= _script_level(self, root, configured[0]):
                original(self, record)
            if record.levelno >= level:
                handler.handle(record)

        root.setLevel = set_root_level  # type: ignore[method-assign,assignment]
        set_root_level(root.level)
    logging.Logger.callHandlers = call_handlers  # type: ignore[method-assign]
    return handler


def _script_level(logger: logging.Logger | None, root: logging.Logger, root_level: int) -> int:
    """Return the level the script's own configuration gives ``logger``."""
    while logger is not None:
        if logger is root:
            return root_level
        if logger.level:
            return logger.level
        logger = logger.parent
    return logging.NOTSET


def main(argv: Sequence[str]) -> int:
    """Run ``[--log-level L] [--error-file F] (script | -m module) [args...]``; return its status.

    An uncaught exception is printed as Python prints it (without this module's frames),
    recorded in the run's log and written as JSON to the error file for `logbridge run`.
    """
    options, target, module, args = _parse(list(argv))
    if _settings.run_id() is None:
        sys.stderr.write(f"logbridge._script: {_settings.RUN_ID} is not set\n")
        return 2
    level = options.get("--log-level")
    install(None if level is None else int(level))
    sys.argv = [target, *args]
    try:
        if module:
            runpy.run_module(target, run_name="__main__", alter_sys=True)
        else:
            sys.path[0] = str(Path(target).resolve().parent)
            runpy.run_path(target, run_name="__main__")
    except SystemExit:
        raise
    except BaseException as exc:  # reported as Python would, then recorded
        tb = _script_frames(exc.__traceback__)
        traceback.print_exception(type(exc), exc, tb)
        _report_error(exc, tb, options.get("--error-file"))
        return INTERRUPTED if isinstance(exc, KeyboardInterrupt) else 1
    return 0


def _parse(argv: list[str]) -> tuple[dict[str, str], str, bool, list[str]]:
    options: dict[str, str] = {}
    while argv and argv[0] in ("--log-level", "--error-file"):
        options[argv[0]] = argv[1]
        argv = argv[2:]
    if argv and argv[0] == "--":
        argv = argv[1:]
    module = bool(argv) and argv[0] == "-m"
    if module:
        argv = argv[1:]
    if not argv:
        raise SystemExit("usage: python -m logbridge._script [options] (script | -m module) ...")
    return options, argv[0], module, argv[1:]


def _script_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the frames of this module and of runpy from the top of a traceback."""
    skipped = {__file__, runpy.__file__, "<frozen runpy>"}
    while tb is not None and tb.tb_frame.f_code.co_filename in skipped:
        tb = tb.tb_next
    return tb


def _report_error(exc: BaseException, tb: TracebackType | None, error_file: str | None) -> None:
    details: dict[str, Any] = _state.error_details(type(exc), exc, tb)
    try:
        Run.get_context()._record_exception(details)  # noqa: SLF001
    except Exception as err:
        sys.stderr.write(f"logbridge: could not record the exception in the run: {err}\n")
    if error_file:
        # Without the file the run is Failed with the exit status alone.
        with contextlib.suppress(OSError):
            Path(error_file).write_text(json.dumps(details), encoding="utf-8")


if __name__ == "__main__":
    # Leave through SystemExit so that atexit handlers (the recorder's drain) run.
    sys.exit(main(sys.argv[1:]))
