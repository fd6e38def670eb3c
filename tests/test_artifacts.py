"""Artifact names cannot lead out of the run's folder (RELIABILITY 34), checked on disk.

Every test compares the files under the test's folder before and after: whatever a name
says, nothing appears or changes outside ``<store>/artifacts/<run id>/``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

import logbridge

DATABASE_FILES = {"store.db", "store.db-wal", "store.db-shm"}


def _outside(root: Path, run_folder: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` but outside ``run_folder``: file contents, None for folders."""
    seen: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        if path.name in DATABASE_FILES or path == run_folder or run_folder in path.parents:
            continue
        if path.is_symlink() or path.is_dir():
            seen[str(path)] = None
        else:
            seen[str(path)] = path.read_bytes()
    return seen


@pytest.fixture
def run() -> logbridge.Run:
    """A running run of the test's store."""
    return logbridge.start_run(experiment="artifacts")


@pytest.fixture
def run_folder(run: logbridge.Run) -> Path:
    """The run's artifact folder, created (as the first upload would)."""
    folder = run.store / "artifacts" / run.id
    folder.mkdir(parents=True)
    return folder


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A small file to upload."""
    path = tmp_path / "source.txt"
    path.write_text("payload")
    return path


ESCAPING_NAMES = [
    "../../x",
    "../x",
    "a/../../x",
    "a/b/../../../x",
    "/abs",
    "/etc/passwd",
    "//server/share/x",
    "C:\\x",
    "C:x",
    "c:/x",
    "a\\..\\..\\x",
    "..\\x",
    "nul\x00",
    "x\x00/../../y",
    "line\nbreak",
    "",
    ".",
    "..",
    "./x",
    "a/.",
    "a//b",
    "a/",
    "\ud800",
    "x" * 1025,
    "a#b/c?d=../../e",
    "x.txt?../../y",
]


@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=repr)
def test_names_that_could_leave_the_folder_are_refused(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path, name: str
) -> None:
    """Traversal, absolute, drive, backslash, NUL and empty-segment names: ArtifactNameError
    (a ValueError) for upload_file, upload_folder and download_file; nothing written outside.
    """
    before = _outside(tmp_path, run_folder)
    with pytest.raises(logbridge.ArtifactNameError) as err:
        run.upload_file(name, source)
    assert isinstance(err.value, ValueError)
    with pytest.raises(logbridge.ArtifactNameError):
        run.upload_file(name, io.BytesIO(b"stream"))
    with pytest.raises(logbridge.ArtifactNameError):
        run.upload_folder(name, tmp_path)
    with pytest.raises(logbridge.ArtifactNameError):
        run.download_file(name, tmp_path / "out")
    assert _outside(tmp_path, run_folder) == before
    assert not Path("/abs").exists()
    assert run.get_file_names() == []


LITERAL_NAMES = [
    "%2e%2e%2fescape.txt",
    "%2e%2e/%2e%2e/x.txt",
    "..%2f..%2fy.txt",
    "%252e%252e%252f.txt",
    "report.html#fragment",
    "data.csv?version=2",
    "a#b/c?d=%2e%2e",
    "...",
    "..a",
    "a..",
    " .. ",
    "~/x",
    "$HOME",
]


@pytest.mark.parametrize("name", LITERAL_NAMES, ids=repr)
def test_encoded_and_url_like_names_are_kept_literally_inside(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path, name: str
) -> None:
    """Nothing is decoded: '%2e%2e%2f' is a file of that name, '#' and '?' are characters.

    The file lies at exactly that relative path in the run's folder and downloads intact.
    """
    before = _outside(tmp_path, run_folder)
    run.upload_file(name, source)
    assert (run_folder / name).read_text() == "payload"
    assert run.get_file_names() == [name]
    out = run.download_file(name, tmp_path / "downloaded")
    assert out == tmp_path / "downloaded"
    assert out.read_text() == "payload"
    out.unlink()
    assert _outside(tmp_path, run_folder) == before


def test_a_planted_folder_symlink_does_not_lead_out(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path
) -> None:
    """A symlink inside the run's folder to a folder outside: writing through it is refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (run_folder / "link").symlink_to(outside)
    (run_folder / "relative").symlink_to("../../..")
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    before = _outside(tmp_path, run_folder)
    for name in ("link/escaped.txt", "link/sub/escaped.txt", "relative/escaped.txt"):
        with pytest.raises(logbridge.ArtifactNameError, match="leads outside"):
            run.upload_file(name, source)
    with pytest.raises(logbridge.ArtifactNameError, match="leads outside"):
        run.upload_folder("link", folder)
    assert list(outside.iterdir()) == []
    assert _outside(tmp_path, run_folder) == before


def test_a_planted_file_symlink_is_neither_overwritten_nor_read(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path
) -> None:
    """A symlink to a file outside, also through a chain of links: no upload overwrites the
    target, no download copies it out.
    """
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (run_folder / "model.bin").symlink_to(secret)
    (run_folder / "hop").symlink_to(run_folder / "model.bin")
    before = _outside(tmp_path, run_folder)
    for name in ("model.bin", "hop"):
        with pytest.raises(logbridge.ArtifactNameError, match="leads outside"):
            run.upload_file(name, source)
        with pytest.raises(logbridge.ArtifactNameError, match="leads outside"):
            run.download_file(name, tmp_path / "stolen.txt")
    assert secret.read_text() == "secret"
    assert not (tmp_path / "stolen.txt").exists()
    assert _outside(tmp_path, run_folder) == before


def test_a_symlink_that_stays_inside_is_followed(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path
) -> None:
    """A link from one folder of the run to another is harmless and works."""
    (run_folder / "real").mkdir()
    (run_folder / "alias").symlink_to(run_folder / "real")
    run.upload_file("alias/file.txt", source)
    assert (run_folder / "real" / "file.txt").read_text() == "payload"


def test_download_of_a_name_leading_outside_copies_nothing(
    tmp_path: Path, run: logbridge.Run, run_folder: Path
) -> None:
    """download_file('../../store.db') and friends are refused before anything is read."""
    before = _outside(tmp_path, run_folder)
    for name in ("../../store.db", "../../../source.txt", "/etc/passwd", "..", "a/../../b"):
        with pytest.raises(logbridge.ArtifactNameError):
            run.download_file(name, tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    assert _outside(tmp_path, run_folder) == before


@pytest.mark.parametrize(
    "name",
    ["a" * 255, "é" * 127, "d" * 255 + "/" + "f" * 255],
    ids=["255-ascii", "254-bytes-utf8", "255-folder-and-file"],
)
def test_segments_up_to_255_bytes_are_stored(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path, name: str
) -> None:
    """A name part as long as the file system allows (255 bytes) uploads and downloads."""
    run.upload_file(name, source)
    assert (run_folder / name).read_text() == "payload"
    assert run.download_file(name, tmp_path / "out").read_text() == "payload"


@pytest.mark.parametrize(
    "name",
    ["a" * 256, "é" * 128, "ok/" + "b" * 300 + "/c", "\U0001f600" * 64],
    ids=["256-ascii", "256-bytes-utf8", "300-in-the-middle", "64-emoji"],
)
def test_segments_over_255_bytes_are_refused_up_front(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path, name: str
) -> None:
    """Longer name parts would fail with ENAMETOOLONG: an ArtifactNameError instead, for
    upload and download alike, and nothing is created.
    """
    for call in (
        lambda: run.upload_file(name, source),
        lambda: run.download_file(name, tmp_path / "out"),
    ):
        with pytest.raises(logbridge.ArtifactNameError, match="longer than 255 bytes"):
            call()
    assert list(run_folder.iterdir()) == []


def test_a_path_too_long_for_the_file_system_is_an_artifact_name_error(
    tmp_path: Path, run: logbridge.Run, run_folder: Path, source: Path
) -> None:
    """1,023 characters of 4-byte emoji in 255-byte parts pass the name rules but exceed
    PATH_MAX: the ENAMETOOLONG becomes an ArtifactNameError, nothing lands outside.
    """
    name = "/".join(["\U0001f600" * 63] * 16)
    assert len(name) == 1023
    assert len(os.fsencode(run_folder / name)) > 4096
    before = _outside(tmp_path, run_folder)
    with pytest.raises(logbridge.ArtifactNameError, match="too long for the file system"):
        run.upload_file(name, source)
    assert _outside(tmp_path, run_folder) == before
    assert run.get_file_names() == []


def test_a_file_where_a_folder_is_needed_is_a_name_error(
    run: logbridge.Run, run_folder: Path, source: Path
) -> None:
    """'a' then 'a/b', or 'd/x' then 'd': the names clash; an ArtifactNameError says so."""
    run.upload_file("a", source)
    with pytest.raises(logbridge.ArtifactNameError, match="stands where it needs a folder"):
        run.upload_file("a/b", source)
    run.upload_file("d/x", source)
    with pytest.raises(logbridge.ArtifactNameError, match="a folder where it needs a file"):
        run.upload_file("d", source)
    assert run.get_file_names() == ["a", "d/x"]
    assert sorted(p.name for p in run_folder.iterdir()) == ["a", "d"]
