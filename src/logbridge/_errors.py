"""The exceptions logbridge raises from configuration and API calls (never from logging calls)."""

from __future__ import annotations


class LogbridgeError(Exception):
    """Root of every exception logbridge raises on purpose."""


class InvalidMetricError(LogbridgeError, ValueError):
    """A metric, tag or property name or value that logbridge cannot record."""


class InvalidMetricTypeError(LogbridgeError, TypeError):
    """A metric value, tag or property of a type logbridge does not record."""


class ArtifactNameError(LogbridgeError, ValueError):
    """An artifact name that would leave the run's folder or is not a plain relative path."""


class RunNotFoundError(LogbridgeError, LookupError):
    """No run in the store has the given id (or the prefix matches several runs)."""


class RunStateError(LogbridgeError, RuntimeError):
    """The operation does not fit the run's state (for example a second `complete()`)."""


class RunFailedError(LogbridgeError, RuntimeError):
    """A run that was waited for ended as Failed; ``details`` holds its `Run.get_details`."""

    def __init__(self, message: str, details: dict[str, object]) -> None:
        """Keep the run's details beside the message."""
        super().__init__(message)
        self.details = details


class StoreError(LogbridgeError, OSError):
    """The store folder cannot be created, written or read."""


class StoreCorruptError(StoreError):
    """The store's database file exists but is not a readable logbridge store."""


class MissingExtraError(LogbridgeError, ImportError):
    """An optional integration was used without its extra installed."""
