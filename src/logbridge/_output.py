"""A script's stdout and stderr as the run's log records: lines, progress bars and colours.

The terminal gets the bytes unchanged; the record gets lines. A carriage return starts the
line over, as it does on a terminal, so a progress bar that redraws itself thousands of times
is recorded once, in its final state. ANSI escape sequences (colours, cursor moves) are
stripped from the record.
"""

from __future__ import annotations

import codecs
import logging
import re
import threading
import time
from collections.abc import Callable
from typing import IO, Final

from logbridge import _events as ev
from logbridge import _state
from logbridge._run import Run

MAX_LINE: Final = 64 * 1024
"""Characters a line may reach without a line break before it is recorded anyway."""
_CHUNK: Final = 64 * 1024
_ANSI: Final = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor movement, erase
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: window titles, hyperlinks
    r"|\x1b[@-Z\\-_]"  # other two-character escapes
)


def strip_ansi(text: str) -> str:
    """Return ``text`` without ANSI escape sequences."""
    return _ANSI.sub("", text) if "\x1b" in text else text


class Lines:
    r"""Turns chunks of text into the lines a terminal would finally show.

    ``feed`` returns the lines completed by a chunk; ``close`` the unfinished last one. Within
    a line, what follows the last carriage return replaces what came before (an empty
    remainder, as in ``\r\n``, keeps the text before it).
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        """Start with an empty line; ``max_line`` bounds a line that never ends."""
        self._pending = ""
        self._max_line = max_line

    def feed(self, text: str) -> list[str]:
        """Add ``text``; return the lines it completes, cleaned."""
        pieces = (self._pending + text).split("\n")
        self._pending = _collapse(pieces.pop())
        lines = [_clean(piece) for piece in pieces]
        if len(self._pending) > self._max_line:
            lines.append(_clean(self._pending))
            self._pending = ""
        return lines

    def close(self) -> list[str]:
        """Return the unfinished last line, if it holds anything."""
        rest, self._pending = _clean(self._pending), ""
        return [rest] if rest.strip() else []


def _collapse(line: str) -> str:
    if "\r" not in line:
        return line
    parts = line.split("\r")
    for part in reversed(parts):
        if part:
            return part
    return ""


def _clean(line: str) -> str:
    return strip_ansi(_collapse(line)).rstrip()


class Capture(threading.Thread):
    """Copies one output stream of a script to the terminal and into the run's log.

    Each line becomes an INFO record of the logger ``stream_name`` (``stdout`` or ``stderr``:
    console handlers write there, so a level would say nothing), with the script's process id.
    """

    def __init__(
        self,
        source: IO[bytes],
        stream_name: str,
        run: Run,
        *,
        terminal: Callable[[bytes], None] | None,
        pid: int,
    ) -> None:
        """Read ``source`` until it closes; ``terminal`` receives the raw bytes, if given."""
        super().__init__(name=f"logbridge-capture-{stream_name}", daemon=True)
        self._source = source
        self._stream = stream_name
        self._run = run
        self._terminal = terminal
        self._pid = pid

    def run(self) -> None:
        """Read, show and record until the stream ends."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        lines = Lines()
        read = getattr(self._source, "read1", self._source.read)
        while True:
            try:
                chunk = read(_CHUNK)
            except (OSError, ValueError):
                chunk = b""
            if not chunk:
                break
            self._show(chunk)
            self._record(lines.feed(decoder.decode(chunk)))
        self._record(lines.feed(decoder.decode(b"", final=True)) + lines.close())

    def _show(self, chunk: bytes) -> None:
        if self._terminal is None:
            return
        try:
            self._terminal(chunk)
        except (OSError, ValueError):
            self._terminal = None  # the terminal went away; keep recording

    def _record(self, lines: list[str]) -> None:
        if not lines:
            return
        recorder = _state.recorder(self._run.store)
        now = time.time()
        for line in lines:
            record = logging.LogRecord(self._stream, logging.INFO, "", 0, line, None, None)
            record.created = now
            record.process = self._pid
            record.processName = "script"
            record.threadName = self._stream
            recorder.put(ev.RecordCaptured(self._run.id, record, None, None, None, ()))


def terminal_writer(stream: IO[str]) -> Callable[[bytes], None]:
    """Return a function writing raw bytes to ``stream`` (a text stream) and flushing it."""
    buffer = getattr(stream, "buffer", None)

    def write(chunk: bytes) -> None:
        if buffer is not None:
            buffer.write(chunk)
            buffer.flush()
        else:
            stream.write(chunk.decode("utf-8", "replace"))
            stream.flush()

    return write
