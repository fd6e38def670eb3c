"""Helpers for your own tests: a throw-away store and a captured run, no mocking needed.

With pytest, the fixtures ``logbridge_store`` and ``logbridge_run`` are available in every
test once logbridge is installed (through the ``pytest11`` entry point).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from logbridge import _settings, _state
from logbridge._run import Run, start_run

__all__ = ["capture_run", "reset", "temporary_store"]


def reset() -> None:
    """Finish nothing, forget everything: close logbridge's recorders and its current run."""
    _state.reset()


@contextlib.contextmanager
def temporary_store(folder: str | os.PathLike[str] | None = None) -> Iterator[Path]:
    """Point logbridge at a fresh store (``LOGBRIDGE_HOME``) for the duration of the block.

    Yields the store's folder; the previous setting and state are restored afterwards.
    """
    previous = {name: os.environ.get(name) for name in (_settings.HOME, _settings.RUN_ID)}
    with contextlib.ExitStack() as stack:
        if folder is None:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="logbridge-"))
        path = Path(folder).absolute() / "store"
        _state.reset()
        os.environ[_settings.HOME] = str(path)
        os.environ.pop(_settings.RUN_ID, None)
        try:
            yield path
        finally:
            _state.reset()
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@contextlib.contextmanager
def capture_run(experiment: str = "test", *, name: str | None = None) -> Iterator[Run]:
    """Start a run in a temporary store, yield it, and complete it when the block ends.

    Read what the code under test recorded with the run's reading methods
    (``get_metrics()``, ``get_logs()``, ...) inside the block.
    """
    with temporary_store(), start_run(experiment=experiment, name=name) as run:
        yield run
