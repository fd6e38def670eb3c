"""A snapshot of a script's folder, stored with its run as ``snapshot.zip``.

As azureml's submit does, the folder is stored as it was when the run started, without what
its ignore file names. The ignore file is the folder's ``.logbridgeignore``, else its
``.amlignore``, else its ``.gitignore`` (only the one at the top of the folder); the store,
``.git``, ``outputs/`` and Python caches are never included. A folder larger than the limit
is not stored at all, and the run says so in its log.
"""

from __future__ import annotations

import os
import re
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

SNAPSHOT_FILE: Final = "snapshot.zip"
IGNORE_FILES: Final = (".logbridgeignore", ".amlignore", ".gitignore")
ALWAYS_IGNORED: Final = (".git/", "__pycache__/", "*.pyc", "outputs/", ".venv/", ".DS_Store")


@dataclass(frozen=True, slots=True)
class _Rule:
    pattern: re.Pattern[str]
    negated: bool
    folders_only: bool


class IgnoreRules:
    """The patterns of a ``.gitignore``-style file: globs, ``**``, ``!``, ``/`` anchors."""

    def __init__(self, lines: list[str]) -> None:
        """Parse the lines of an ignore file (comments and blank lines are skipped)."""
        self._rules: list[_Rule] = []
        for raw in lines:
            line = raw.rstrip("\n").rstrip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            line = line.removeprefix("!")
            folders_only = line.endswith("/")
            line = line.rstrip("/")
            anchored = "/" in line
            line = line.lstrip("/")
            if line:
                self._rules.append(_Rule(_compile(line, anchored=anchored), negated, folders_only))

    def ignored(self, path: str, *, is_folder: bool) -> bool:
        """Whether ``path`` (relative, with ``/``) is ignored; the last matching rule wins."""
        result = False
        for rule in self._rules:
            if rule.folders_only and not is_folder:
                continue
            if rule.pattern.fullmatch(path):
                result = not rule.negated
        return result


def _compile(pattern: str, *, anchored: bool) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/?)", pattern):
        if piece in ("**", "**/"):
            parts.append(".*" if piece == "**" else "(?:.*/)?")
        elif piece:
            parts.append(_glob(piece))
    body = "".join(parts)
    return re.compile(body if anchored else f"(?:.*/)?{body}")


def _glob(piece: str) -> str:
    """Translate a glob without ``**``: ``*`` and ``?`` stay inside one folder name."""
    out = []
    i = 0
    while i < len(piece):
        char = piece[i]
        end = piece.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif end != -1:
            body = piece[i + 1 : end].replace("\\", "\\\\")
            out.append("[^" + body[1:] + "]" if body.startswith("!") else "[" + body + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def rules_for(folder: Path) -> IgnoreRules:
    """Return the always-ignored patterns and those of the folder's ignore file."""
    lines = list(ALWAYS_IGNORED)
    for name in IGNORE_FILES:
        candidate = folder / name
        if candidate.is_file():
            lines += candidate.read_text(encoding="utf-8", errors="replace").splitlines()
            break
    return IgnoreRules(lines)


def files_of(folder: Path, rules: IgnoreRules, *, exclude: tuple[Path, ...] = ()) -> Iterator[Path]:
    """Yield the files below ``folder`` that the rules keep, in a stable order."""
    excluded = {p.resolve() for p in exclude}
    for current, dirs, files in os.walk(folder):
        here = Path(current)
        relative = here.relative_to(folder).as_posix()
        prefix = "" if relative == "." else relative + "/"
        dirs[:] = sorted(
            d
            for d in dirs
            if not rules.ignored(prefix + d, is_folder=True)
            and (here / d).resolve() not in excluded
        )
        for name in sorted(files):
            path = here / name
            if not rules.ignored(prefix + name, is_folder=False) and path.is_file():
                yield path


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A zip of a folder, or why there is none."""

    path: Path | None
    files: int
    size: int
    skipped: str | None


def make(folder: Path, limit: int, *, exclude: tuple[Path, ...] = ()) -> Snapshot:
    """Zip the kept files of ``folder`` into a temporary file, unless they exceed ``limit`` bytes.

    The caller stores the zip with the run and deletes it.
    """
    rules = rules_for(folder)
    chosen: list[Path] = []
    total = 0
    for path in files_of(folder, rules, exclude=exclude):
        total += path.stat().st_size
        if total > limit:
            return Snapshot(
                None,
                len(chosen) + 1,
                total,
                f"the folder {folder} holds more than {limit // (1024 * 1024)} MB after its "
                "ignore file; no snapshot was stored (add an .amlignore or .logbridgeignore, or "
                "raise LOGBRIDGE_SNAPSHOT_LIMIT)",
            )
        chosen.append(path)
    handle, name = tempfile.mkstemp(prefix="logbridge-snapshot-", suffix=".zip")
    os.close(handle)
    with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in chosen:
            try:
                archive.write(path, path.relative_to(folder).as_posix())
            except OSError:
                continue  # a file removed or unreadable since the walk is left out
    return Snapshot(Path(name), len(chosen), total, None)
