"""Shared fixtures: every test gets a fresh store and a clean logbridge state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from logbridge import _handler
from logbridge.testing import temporary_store


@pytest.fixture(autouse=True)
def store(tmp_path: Path) -> Iterator[Path]:
    """A fresh store for each test, with LOGBRIDGE_HOME pointing at it."""
    with temporary_store(tmp_path) as folder:
        yield folder


@pytest.fixture
def queued() -> Iterator[tuple[Any, list[Any]]]:
    """A run, and the list into which `_handler.capture` queues its records (run id ``run-id``)."""
    run: Any = object()
    records: list[Any] = []

    class Recorder:
        accepting = True

    _handler._lane = (run, "run-id", Recorder(), records, 10)  # type: ignore[assignment]
    try:
        yield run, records
    finally:
        _handler.forget_recorders()
