"""The writer process: a child that writes a recorder's batches to the store.

A recorder writes its first events from its writer thread. Once it has written
``LOGBRIDGE_WRITER_PROCESS_AFTER`` events, it hands its batches to a writer process instead
(`WriterProcess`): the writer thread pickles each batch of captured records down a pipe, and
the child formats, renders and writes them with the same code (`Recorder.write_batch`). The
training process then spends a pickle per batch where it spent the Python work of formatting,
rendering and SQLite on a core its own threads share (docs/performance.md).

The child acknowledges each batch once it is committed, or refuses one it cannot read; the
parent keeps what is not yet acknowledged and writes it from its thread if the child refuses
it or dies. A child whose parent dies (even by SIGKILL) reads the pipe to its end, writes what
it holds and exits: what reached the pipe is not lost. The child runs in a session of its own
and ignores SIGINT, so a Ctrl-C or a signal to the training's process group does not cut its
batches short; the parent's exit ends it.

Only a few types travel down the pipe (`_SENDABLE`); a record holding anything else (a user's
class in its tags or step, say) is turned into its events in the parent first (`portable`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import is_dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from logbridge import _events as ev
from logbridge import _logrecords, _report

_FRAME: Final = struct.Struct("<QQ")
"""A batch's header, parent to child: its length in bytes (0: nothing to write) and its number."""
_ACK: Final = struct.Struct("<QQQ")
"""An answer, child to parent: a batch's number, the events written so far, and `_REFUSED`
if the child could not read the batch (the parent writes it), else 0. Number 0: started."""
_REFUSED: Final = 1
_MAX_FRAME: Final = 1 << 34
"""A larger header is a broken stream: the child stops reading (the parent writes the rest)."""
_START_TIMEOUT: Final = 10.0
"""Seconds the child may take to start and open the store before the parent gives up on it."""
_STOP_TIMEOUT: Final = 2.0
"""Seconds a dead or killed child gets to close its end before its batches are taken back."""
_NO_SIGNAL: Final = getattr(socket, "MSG_NOSIGNAL", 0)
_SENDABLE: Final = frozenset(
    {complex, _logrecords.Frozen}
    | {
        kind
        for kind in vars(ev).values()
        if isinstance(kind, type)
        and kind.__module__ == ev.__name__
        and (is_dataclass(kind) or hasattr(kind, "_fields"))
    }
)
"""The types a batch may hold besides exact str, int, float, bytes, None, bools, tuples, lists,
dicts, sets and frozensets (which pickle never shows `_Pickler.reducer_override`)."""
_CHILD: Final = (
    "import json, sys; config = json.loads(sys.argv[1]); sys.path[:] = config['path']; "
    "from logbridge._writer_process import main; sys.exit(main(config))"
)
"""The child's program: the parent's import path, so it imports the same logbridge."""


class _ForeignTypeError(Exception):
    """A batch holds an object the child may not be able to load."""


class _Pickler(pickle.Pickler):
    # Called for every object but the exact builtin types above: for the rare ones only.
    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is ev.RecordCaptured:
            return tuple, (_logrecords.flat(obj),)
        if kind in _SENDABLE or (kind is type and obj in _SENDABLE):
            return NotImplemented
        raise _ForeignTypeError(f"{kind.__module__}.{kind.__qualname__}")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        found = _LOADABLE.get((module, name))
        if found is None:
            raise pickle.UnpicklingError(f"the writer process does not load {module}.{name}")
        return found


_LOADABLE: Final = {(kind.__module__, kind.__qualname__): kind for kind in _SENDABLE} | {
    ("builtins", "tuple"): tuple  # `_Pickler` sends a `RecordCaptured` as its flat tuple
}


def dumps(batch: Sequence[Any]) -> bytes:
    """Pickle ``batch`` for the child; raise `_ForeignTypeError` if it holds what it cannot load."""
    out = io.BytesIO()
    try:
        _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(batch)
    except _ForeignTypeError:
        raise
    except Exception as err:  # a generator, a memoryview, a structure too deep to pickle...
        raise _ForeignTypeError(f"{type(err).__name__}: {err}") from err
    return out.getvalue()


def portable(batch: Sequence[Any]) -> list[Any]:
    """Return ``batch`` with each item the child may not load replaced by its events."""
    out: list[Any] = []
    for item in batch:
        try:
            dumps((item,))
        except _ForeignTypeError:
            out.extend(_logrecords.expand((item,)))
        else:
            out.append(item)
    return out


def _spawnable() -> str:
    """Why no writer process can be started here, or "" if one can."""
    if getattr(sys, "frozen", False):
        return "a frozen application has no Python interpreter to start"
    if not sys.executable:
        return "sys.executable is empty"
    return ""


class WriterProcess:
    """The parent's end of a writer process for one store.

    Not thread-safe: the recorder calls it with its write lock held.
    """

    def __init__(self, folder: Path) -> None:
        """Start the child and wait (up to `_START_TIMEOUT`) until it has opened the store.

        Raises:
            OSError: the child could not be started, or did not start in time.
        """
        reason = _spawnable()
        if reason:
            raise OSError(reason)
        config = {
            "path": sys.path,
            "folder": str(folder),
            "log": _logrecords.settings(),
            "reported": _report.reported(),
        }
        # Batches go down a socket, not a pipe: a send to a dead child with MSG_NOSIGNAL
        # raises, where a write to a pipe would SIGPIPE a process that restored its default.
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _CHILD, json.dumps(config)],
                stdin=theirs.fileno(),
                stdout=subprocess.PIPE,
                bufsize=0,
                cwd=folder,
                start_new_session=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        assert self._proc.stdout is not None
        self._to_child: socket.socket | None = ours
        self._from_child: BinaryIO | None = self._proc.stdout  # type: ignore[assignment]
        os.set_blocking(self._proc.stdout.fileno(), False)
        self._poll = select.poll()
        self._poll.register(self._proc.stdout.fileno(), select.POLLIN)
        self.pid = self._proc.pid
        self.written = 0
        """Events the child has written so far."""
        self._sent = 0
        self._acknowledged = 0
        # Batches are kept as sent, pickled, until answered: the objects die at once, so the
        # memory the caller's next records take is memory its last ones freed (docs).
        self._unacknowledged: deque[tuple[int, bytes]] = deque()
        self._refused: list[bytes] = []
        self._partial = b""
        self._ended = False
        self._started = False
        deadline = time.monotonic() + _START_TIMEOUT
        try:
            while not self._started and self._read_answers(deadline):
                pass
        except OSError:
            self.finish(0, kill=True)
            raise
        if not self._started:
            self.finish(0, kill=True)
            raise OSError(f"it did not start within {_START_TIMEOUT:.0f} s")

    def send(self, batch: Sequence[Any]) -> bool:
        """Send ``batch`` to be written; False if it holds what the child may not load.

        Raises:
            OSError: the child is gone (`finish` gives back what it did not write).
        """
        try:
            data = dumps(batch)
        except _ForeignTypeError:
            batch = portable(batch)
            try:
                data = dumps(batch)
            except _ForeignTypeError:
                return False
        self._sent += 1
        self._unacknowledged.append((self._sent, data))
        self._send_frame(_FRAME.pack(len(data), self._sent), data)
        self._read_answers(None, wait=False)
        return True

    def sync(self) -> None:
        """Return once everything sent so far is written (or refused: see `take_refused`).

        Raises:
            OSError: the child is gone (`finish` gives back what it did not write).
        """
        if self._acknowledged < self._sent:
            self._sent += 1
            self._unacknowledged.append((self._sent, b""))
            self._send_frame(_FRAME.pack(0, self._sent), b"")
        while self._acknowledged < self._sent:
            self._read_answers(None)

    def take_refused(self) -> list[Sequence[Any]]:
        """Return the batches the child could not read (the caller writes them), oldest first."""
        refused, self._refused = self._refused, []
        return [pickle.loads(data) for data in refused]  # noqa: S301 - pickled by us

    def finish(self, timeout: float | None, *, kill: bool) -> tuple[bool, list[Sequence[Any]]]:
        """Close the pipe and wait up to ``timeout`` for the child to write the rest and exit.

        Returns whether it exited, and what it neither wrote nor refused, for the caller to
        write. If it is still writing at the deadline, ``kill`` kills it (and gives back what
        it did not acknowledge); otherwise it goes on writing on its own, with nothing given back.
        """
        if self._to_child is not None:
            with contextlib.suppress(OSError):
                self._to_child.close()
            self._to_child = None
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self._read_to_end(deadline):
            if not kill:
                return False, []
            self._proc.kill()
            self._read_to_end(time.monotonic() + _STOP_TIMEOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(_STOP_TIMEOUT)
        self._close_answers()
        left = [pickle.loads(data) for _, data in self._unacknowledged if data]  # noqa: S301
        self._unacknowledged.clear()
        return True, [*self.take_refused(), *left]

    def abandon(self) -> None:
        """Close this process's copies of the pipes, in a forked child (the parent owns them)."""
        if self._to_child is not None:
            self._to_child.close()
            self._to_child = None
        self._close_answers()

    def returncode(self) -> int | None:
        """The child's exit code, if it has exited."""
        return self._proc.poll()

    def _read_to_end(self, deadline: float | None) -> bool:
        """Read answers until the child closes its end (True) or ``deadline`` passes (False)."""
        try:
            while self._read_answers(deadline):
                pass
        except OSError:
            return True
        return False

    def _close_answers(self) -> None:
        if self._from_child is not None:
            self._poll.unregister(self._from_child.fileno())
            self._from_child.close()
            self._from_child = None

    def _send_frame(self, header: bytes, data: bytes) -> None:
        # A frame cut short (an exception between two writes) leaves the stream unreadable:
        # the pipe is closed, the child writes what came before and exits, and the next use
        # raises, so the recorder takes back what was not acknowledged.
        sock = self._to_child
        if sock is None:
            raise BrokenPipeError(f"the pipe to the writer process {self.pid} is closed")
        try:
            done = sock.sendmsg([header, data], [], _NO_SIGNAL)
            if done < len(header) + len(data):
                view = memoryview(header + data)[done:]
                while view:
                    view = view[sock.send(view, _NO_SIGNAL) :]
        except BaseException:
            sock.close()
            self._to_child = None
            raise

    def _read_answers(self, deadline: float | None, *, wait: bool = True) -> bool:
        """Read what the child has answered; False if nothing came by ``deadline``.

        With ``wait``, waits for an answer until ``deadline`` (None: for ever).

        Raises:
            BrokenPipeError: the child has exited (all its answers were read first).
        """
        if self._from_child is None or self._ended:
            raise BrokenPipeError(f"the writer process {self.pid} has exited")
        if wait:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._poll.poll(None if left is None else left * 1000):
                return False
        try:
            data = os.read(self._from_child.fileno(), 1 << 16)
        except BlockingIOError:
            return True
        if not data:
            self._ended = True
            raise BrokenPipeError(f"the writer process {self.pid} has exited")
        data = self._partial + data
        whole = len(data) - len(data) % _ACK.size
        self._partial = data[whole:]
        unacknowledged = self._unacknowledged
        for number, written, status in _ACK.iter_unpack(data[:whole]):
            if number == 0:
                self._started = True
                continue
            self._acknowledged = number
            self.written = written
            while unacknowledged and unacknowledged[0][0] <= number:
                sent, data = unacknowledged.popleft()
                if sent == number and status == _REFUSED:
                    self._refused.append(data)
        return True


# -- the child ---------------------------------------------------------------------------


def _frames(stream: BinaryIO) -> Iterator[tuple[int, Any]]:
    """Yield (number, batch or None if unreadable) for each frame, until the pipe's end."""
    while head := stream.read(_FRAME.size):
        if len(head) < _FRAME.size:
            return  # the parent died in the middle of a header
        size, number = _FRAME.unpack(head)
        if size > _MAX_FRAME:
            _report.always("the writer process got a broken stream; it writes no more")
            return
        data = stream.read(size) if size else b""
        if len(data) < size:
            return  # ... or of a batch: it was never acknowledged, so not promised
        try:
            batch = _Unpickler(io.BytesIO(data)).load() if size else ()
        except Exception as err:  # a bug of ours: the parent writes that batch itself
            _report.once("writer_process_read", f"the writer process cannot read a batch: {err}")
            batch = None
        yield number, batch


def main(config: dict[str, Any]) -> int:
    """Write the batches that come down stdin into the store, answering each on stdout."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.dup(1)
    os.dup2(2, 1)  # a stray print must not land among the answers
    _report.mark_reported(config["reported"])  # the parent has said those already
    try:
        from logbridge._recorder import Recorder  # noqa: PLC0415 - the child's only import of it
        from logbridge._store import SQLiteStore  # noqa: PLC0415

        _logrecords.use_settings(config["log"])
        recorder = Recorder(SQLiteStore(Path(config["folder"])), queue_size=1, full_policy="block")
        recorder.start_checkpoints()
    except Exception as err:
        _report.always(f"the writer process could not open the store {config['folder']}: {err}")
        return 1
    try:
        os.write(answers, _ACK.pack(0, 0, 0))
        with os.fdopen(0, "rb", buffering=1 << 20) as stream:
            for number, batch in _frames(stream):
                if batch:
                    recorder.write_batch(batch)
                if answers >= 0:
                    status = _REFUSED if batch is None else 0
                    try:
                        os.write(answers, _ACK.pack(number, recorder.written, status))
                    except OSError:  # the parent is gone or stopped listening: write on
                        answers = -1
    except Exception as err:
        _report.always(f"the writer process for {config['folder']} stopped: {err}")
        return 1
    finally:
        recorder.close(None)
        recorder.store.close()
    return 0
