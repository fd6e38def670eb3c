"""Artifact names and files: every name maps to a path inside its run's folder, or is refused."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import IO, Any

from logbridge._errors import ArtifactNameError

MAX_NAME_LENGTH = 1024
MAX_SEGMENT_BYTES = 255
"""Longest segment of a name between slashes, in UTF-8 bytes (the limit of common file systems)."""
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


def check_name(name: object) -> str:
    """Return ``name`` if it is a valid artifact name: a relative path with ``/`` separators.

    Refused: non-strings, empty names, absolute paths, drive letters, ``.`` and ``..``
    segments, empty segments, backslashes, control characters, lone surrogates, names over
    `MAX_NAME_LENGTH` characters and segments over `MAX_SEGMENT_BYTES` bytes. Nothing is
    decoded: ``%2e%2e%2f`` is a file of that literal name, and ``#`` or ``?`` are characters.
    """
    if not isinstance(name, str):
        raise ArtifactNameError(f"artifact name must be a str, not {type(name).__name__}")
    problem = _problem(name)
    if problem:
        raise ArtifactNameError(f"artifact name {name[:200]!r} is refused: {problem}")
    return name


def _problem(name: str) -> str | None:
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"it is longer than {MAX_NAME_LENGTH} characters"
    if _FORBIDDEN.search(name):
        return "it holds a control character or a backslash"
    if name.startswith("/") or _DRIVE.match(name):
        return "it is an absolute path"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "it is not valid Unicode"
    segments = name.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        return "it has an empty, '.' or '..' segment"
    if any(len(seg.encode("utf-8")) > MAX_SEGMENT_BYTES for seg in segments):
        return f"a part between slashes is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def path_in(folder: Path, name: str) -> Path:
    """Return where artifact ``name`` lies in ``folder``, checked after resolving symlinks."""
    check_name(name)
    base = folder.resolve()
    target = (base / name).resolve()
    if target == base or base not in target.parents:
        raise ArtifactNameError(f"artifact name {name!r} leads outside the run's folder")
    return target


def store_file(folder: Path, name: str, source: str | os.PathLike[str] | IO[Any]) -> int:
    """Copy a file (a path or a readable stream) into ``folder`` as ``name``; return its size.

    The copy is written beside its final name and renamed into place, so readers never see a
    half-written file.

    Raises:
        ArtifactNameError: the name is refused (see `check_name`), leads outside ``folder``,
            is too long for the file system, or a file of the run stands where it needs a
            folder (or the other way round).
        OSError: the source cannot be read or the copy cannot be written.
    """
    target = path_in(folder, name)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Short, so that a name as long as the file system allows still has a temporary twin.
        tmp = target.parent / f".lb-{uuid.uuid4().hex[:12]}.tmp"
        try:
            if isinstance(source, (str, os.PathLike)):
                shutil.copyfile(source, tmp)
            else:
                with tmp.open("wb") as out:
                    _copy_stream(source, out)
            tmp.replace(target)
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise ArtifactNameError(
                f"artifact name {name[:200]!r} is too long for the file system"
            ) from None
        if err.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise ArtifactNameError(
                f"artifact name {name[:200]!r} is refused: a file of the run stands where it "
                "needs a folder, or a folder where it needs a file"
            ) from None
        raise
    return target.stat().st_size


def _copy_stream(source: IO[Any], out: IO[bytes]) -> None:
    while True:
        chunk = source.read(1 << 20)
        if not chunk:
            return
        out.write(chunk.encode("utf-8") if isinstance(chunk, str) else chunk)


def slug(name: str) -> str:
    """Return a filesystem-safe stand-in for a metric name (names never become paths)."""
    return _SLUG.sub("_", name).strip("._")[:60] or "image"
