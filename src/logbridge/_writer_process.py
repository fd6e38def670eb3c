"""The writer process: a child that writes a recorder's batches to the store.

A recorder writes its first events from its writer thread. Once it has written
``LOGBRIDGE_WRITER_PROCESS_AFTER`` events, it hands its batches to a writer process instead
(`WriterProcess`): the writer thread pickles each batch of captured records down a pipe, and
the child formats, renders and writes them with the same code (`Recorder.write_batch`). The
training process then spends a pickle per batch where it spent the Python work of formatting,
rendering and SQLite, on a core its own threads share (docs/performance.md).

The child acknowledges each batch once it is committed; the parent keeps what is not yet
acknowledged, and writes it from its thread if the child dies. A child whose parent dies (even
by SIGKILL) reads the pipe to its end, writes what it holds, and exits: what reached the pipe
is not lost. The child runs in a session of its own and ignores SIGINT, so a Ctrl-C or a signal
to the training's process group does not cut its batches short; the parent's exit ends it.

Only the types below travel down the pipe; a record holding anything else (a user's class in
its tags or step, say) is turned into its events in the parent first (`portable`).

    python -m logbridge._writer_process STORE_FOLDER
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, BinaryIO, Final

from logbridge import _events as ev
from logbridge import _logrecords, _report

_FRAME: Final = struct.Struct("<QQ")
"""A batch's header, parent to child: its length in bytes (0: nothing to write) and its number."""
_ACK: Final = struct.Struct("<QQ")
"""An acknowledgement, child to parent: the batch number written, and events written so far."""
_PORTABLE_MODULES: Final = frozenset(
    {
        "builtins",
        "datetime",
        "decimal",
        "fractions",
        "uuid",
        "pathlib",
        "logbridge._events",
        "logbridge._logrecords",
    }
)
"""Modules whose types a batch may hold (the child imports nothing of the user's)."""


class _ForeignTypeError(Exception):
    """A batch holds an object of a type the child may not be able to load."""


class _Pickler(pickle.Pickler):
    # reducer_override is called for every object but exact str, int, float, bytes, tuple,
    # dict, list, set, frozenset, None and bools: for the rare ones, not per record.
    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is ev.RecordCaptured:
            return tuple, (_logrecords.flat(obj),)
        module = kind.__module__
        if module in _PORTABLE_MODULES or kind is type:
            return NotImplemented
        raise _ForeignTypeError(f"{module}.{kind.__qualname__}")


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module not in _PORTABLE_MODULES or (module == "builtins" and name not in _BUILTINS):
            raise pickle.UnpicklingError(f"the writer process does not load {module}.{name}")
        return super().find_class(module, name)


_BUILTINS: Final = frozenset(
    {"tuple", "complex", "bytearray", "set", "frozenset", "slice", "range"}
)
"""The builtins a batch may name (`_Pickler` makes a `RecordCaptured` a tuple)."""


def dumps(batch: Sequence[Any]) -> bytes:
    """Pickle ``batch`` for the child; raise `_ForeignTypeError` if it holds what it cannot load."""
    out = io.BytesIO()
    _Pickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(batch)
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


class WriterProcess:
    """The parent's end of a writer process for one store.

    Not thread-safe: the recorder calls it with its write lock held.
    """

    def __init__(self, folder: Path) -> None:
        """Start the child (it is ready to read at once; it imports while the pipe fills).

        Raises:
            OSError: the child could not be started.
        """
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (package_root, env.get("PYTHONPATH"))))
        env["PYTHONSAFEPATH"] = "1"  # nothing from the working folder shadows what it imports
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "logbridge._writer_process", str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            cwd=folder,
            env=env,
            start_new_session=True,
        )
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        self._to_child: IO[bytes] = self._proc.stdin
        self._from_child: IO[bytes] = self._proc.stdout
        os.set_blocking(self._from_child.fileno(), False)
        self.pid = self._proc.pid
        self.written = 0
        """Events the child has written so far."""
        self._sent = 0
        self._acknowledged = 0
        self._unacknowledged: deque[tuple[int, Sequence[Any]]] = deque()
        self._partial = b""

    def send(self, batch: Sequence[Any]) -> bool:
        """Send ``batch`` to be written; False if it holds what the child may not load.

        Raises:
            OSError: the child is gone (`take_unacknowledged` has what it did not write).
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
        self._unacknowledged.append((self._sent, batch))
        self._write(_FRAME.pack(len(data), self._sent), data)
        self._read_acknowledgements(wait=False)
        return True

    def sync(self) -> None:
        """Return once everything sent so far is written.

        Raises:
            OSError: the child is gone (`take_unacknowledged` has what it did not write).
        """
        if self._acknowledged == self._sent:
            self._read_acknowledgements(wait=False)
            return
        self._sent += 1
        self._unacknowledged.append((self._sent, ()))
        self._write(_FRAME.pack(0, self._sent), b"")
        while self._acknowledged < self._sent:
            self._read_acknowledgements(wait=True)

    def take_unacknowledged(self) -> list[Sequence[Any]]:
        """Return the batches sent but not acknowledged (after the child is gone), oldest first."""
        taken = [batch for _, batch in self._unacknowledged if batch]
        self._unacknowledged.clear()
        return taken

    def close(self, timeout: float | None) -> bool:
        """Close the pipe and wait up to ``timeout`` for the child to write the rest and exit.

        Returns whether it did; if not, the child goes on writing on its own.
        """
        self._to_child.close()
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        finally:
            # OSError: its end of the pipe is closed, and everything it wrote was read.
            with contextlib.suppress(OSError):
                self._read_acknowledgements(wait=False)
            self._from_child.close()
        return True

    def abandon(self) -> None:
        """Close this process's copies of the pipes, in a forked child (the parent owns them)."""
        self._to_child.close()
        self._from_child.close()

    def returncode(self) -> int | None:
        """The child's exit code, if it has exited."""
        return self._proc.poll()

    def _write(self, header: bytes, data: bytes) -> None:
        fd = self._to_child.fileno()
        for part in (header, data):
            view = memoryview(part)
            while view:
                view = view[os.write(fd, view) :]

    def _read_acknowledgements(self, *, wait: bool) -> None:
        fd = self._from_child.fileno()
        if wait:
            select.select([fd], [], [])
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            raise BrokenPipeError(f"the writer process {self.pid} has exited")
        data = self._partial + data
        whole = len(data) - len(data) % _ACK.size
        self._partial = data[whole:]
        for number, written in _ACK.iter_unpack(data[:whole]):
            self._acknowledged = number
            self.written = written
        unacknowledged = self._unacknowledged
        while unacknowledged and unacknowledged[0][0] <= self._acknowledged:
            unacknowledged.popleft()


# -- the child ---------------------------------------------------------------------------


def _frames(stream: BinaryIO) -> Any:
    """Yield (number, batch) for each frame until the pipe's end."""
    while head := stream.read(_FRAME.size):
        if len(head) < _FRAME.size:
            return  # the parent died in the middle of a header
        size, number = _FRAME.unpack(head)
        data = stream.read(size) if size else b""
        if len(data) < size:
            return  # ... or of a batch: it was never acknowledged, so not promised
        try:
            batch = _Unpickler(io.BytesIO(data)).load() if size else ()
        except Exception as err:  # a bug of ours: say so, and go on with the next batch
            _report.always(f"the writer process could not read batch {number} and lost it: {err}")
            batch = ()
        yield number, batch


def main(argv: Sequence[str] | None = None) -> int:
    """Write the batches that come down stdin into the store in ``argv[0]``, acknowledging each."""
    from logbridge._recorder import Recorder  # noqa: PLC0415 - the child's only import of it
    from logbridge._store import SQLiteStore  # noqa: PLC0415

    args = sys.argv[1:] if argv is None else argv
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    acks = os.dup(1)
    os.dup2(2, 1)  # a stray print must not land in the acknowledgements
    recorder = Recorder(SQLiteStore(Path(args[0])), queue_size=1, full_policy="block")
    recorder.start_checkpoints()
    try:
        with os.fdopen(0, "rb", buffering=1 << 20) as stream:
            for number, batch in _frames(stream):
                if batch:
                    recorder.write_batch(batch)
                if acks >= 0:
                    try:
                        os.write(acks, _ACK.pack(number, recorder.written))
                    except OSError:  # the parent is gone or stopped listening: write on
                        acks = -1
    finally:
        recorder.close(None)
        recorder.store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
