"""The pytest fixtures logbridge offers to its users' test suites."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logbridge._run import Run, start_run
from logbridge.testing import temporary_store


@pytest.fixture
def logbridge_store(tmp_path: Path) -> Iterator[Path]:
    """A fresh store for one test (``LOGBRIDGE_HOME`` points at it); yields its folder."""
    with temporary_store(tmp_path) as folder:
        yield folder


@pytest.fixture
def logbridge_run(logbridge_store: Path) -> Iterator[Run]:
    """A running run in a fresh store, made the current run, completed after the test."""
    with start_run(experiment="test", store=logbridge_store) as run:
        yield run
