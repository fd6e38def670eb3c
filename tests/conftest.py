"""Shared fixtures: every test gets a fresh store and a clean logbridge state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from logbridge.testing import temporary_store


@pytest.fixture(autouse=True)
def store(tmp_path: Path) -> Iterator[Path]:
    """A fresh store for each test, with LOGBRIDGE_HOME pointing at it."""
    with temporary_store(tmp_path) as folder:
        yield folder
