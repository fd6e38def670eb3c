# Types of the compiled capture, _speedups.c (see logbridge._handler.capture_python).

import logging
from collections.abc import Callable
from typing import Any, Final

from logbridge._run import Run

def capture(
    run: Run, record: logging.LogRecord, extras: dict[str, Any] | None = None, /
) -> None: ...

SOURCE_SHA256: Final[str]

def install(
    record_type: type[logging.LogRecord],
    handler_globals: dict[str, Any],
    capture_python: Callable[[Run, logging.LogRecord, dict[str, Any] | None], None],
    field_names: tuple[str, ...],
    base_size: int,
    /,
) -> None: ...
