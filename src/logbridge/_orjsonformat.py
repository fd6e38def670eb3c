"""The run's log rendered with python-json-logger's orjson backend, when orjson is installed.

orjson writes a record several times faster than the standard json module. The data reaching it
is JSON-safe already (`_jsonsafe`: NaN and infinities as strings, cut strings, no lone
surrogates), so its output parses to what the json module would write; what orjson refuses (an
integer beyond 64 bits, a key that is not a string) is written by the json module instead.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from pythonjsonlogger.orjson import OrjsonFormatter

from logbridge._logrecords import RecordFormatter


class OrjsonRecordFormatter(RecordFormatter, OrjsonFormatter):
    """`RecordFormatter` serialising with python-json-logger's orjson backend."""

    backend: ClassVar[str] = "orjson"

    def jsonify_log_record(self, log_data: dict[str, Any]) -> str:
        """Serialise with orjson; with the json module if orjson refuses the data.

        Without the backend's ``default`` and ``OPT_NON_STR_KEYS`` (which double its cost): the
        data is JSON-safe, and the rare key that is not a string goes to the json module, which
        writes it as it always did.
        """
        try:
            return orjson.dumps(log_data).decode()
        except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, a key not a str
            return self._json(log_data)

    def number(self, value: float) -> str:
        """Return a finite float as JSON, as orjson writes it (several times faster than repr)."""
        return orjson.dumps(value).decode()
