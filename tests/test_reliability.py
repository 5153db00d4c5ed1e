"""Outputs under failure (issue 12): a full disk, a read-only output folder, two runs at once.

Real photos, real detector and recognizer, a constant mask (given, so nothing is learned and a
failed write is the only thing that goes wrong). The full disk and the read-only folder are
simulated by patching the photo writer to raise what the system raises (ENOSPC once part of the
data is written; EROFS before anything is); a chmod read-only folder is also tried for real
where the tests do not run as root (root writes through a read-only mode).
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import torch
from click.testing import CliRunner
from conftest import lfw_photos

import cloak.imageio
from attackers.frame import FRAME_SIZE
from cloak.cli import main
from cloak.fileio import LOCK_NAME, FolderBusy, folder_lock
from cloak.imageio import read_photo
from cloak.mask import Mask, save_mask
from cloak.photos import MANIFEST_NAME, Manifest, ProtectOptions, Reporter, protect

PERSON = "Colin_Powell"
COUNT = 3

pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    """A folder of COUNT photos of PERSON and a constant +8 mask for them, saved to a file."""
    root = tmp_path_factory.mktemp("reliability")
    photos = root / "photos"
    photos.mkdir()
    for path in lfw_photos(PERSON, COUNT):
        shutil.copy2(path, photos / path.name)
    mask = Mask(torch.full((3, FRAME_SIZE, FRAME_SIZE), 8.0), 8.0, "center", ["facenet"], PERSON,
                0, settings={"feather": 24.0})
    return {"photos": photos, "mask": mask, "mask_file": save_mask(mask, root / "m.cloak")}


def visible(folder: Path) -> list[str]:
    """Every entry under ``folder`` but the lock file (temporary files included), sorted."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                  if p.name != LOCK_NAME)


class _FullDisk:
    """A writer's handle whose first write stores half the data, then fails with ENOSPC."""

    def __init__(self, handle: BinaryIO, folder: Path, seen: list[list[str]]) -> None:
        self.handle, self.folder, self.seen = handle, folder, seen

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.handle.write(data[:len(data) // 2])
        self.handle.flush()
        self.seen.append(os.listdir(self.folder))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fileno(self) -> int:
        """None to give: Pillow then writes through :meth:`write` instead of the descriptor."""
        raise io.UnsupportedOperation("fileno")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


def full_disk(seen: list[list[str]]) -> Callable[[Path], Any]:
    """The real atomic writer, its handle failing as a full disk would."""
    real = cloak.imageio.atomic_writer

    @contextmanager
    def writer(dest: Path) -> Iterator[_FullDisk]:
        with real(dest) as handle:
            yield _FullDisk(handle, dest.parent, seen)

    return writer


def read_only(seen: list[list[str]]) -> Callable[[Path], Any]:
    """A writer that cannot create its temporary file: a read-only file system."""

    @contextmanager
    def writer(dest: Path) -> Iterator[BinaryIO]:
        seen.append([])
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dest.parent))
        yield  # pragma: no cover - never reached

    return writer


@pytest.mark.data
@pytest.mark.parametrize("failure, reason", [(full_disk, "No space left on device"),
                                             (read_only, "Read-only file system")])
def test_failed_writes_leave_nothing_and_a_rerun_finishes(setup: dict, tmp_path: Path,
                                                          monkeypatch, failure, reason) -> None:
    """Each photo fails on its own error line naming its output; no file (partial or temporary)
    is left; the inputs are untouched; a rerun once the disk is fine writes everything."""
    photos = setup["photos"]
    before = {p.name: p.read_bytes() for p in photos.iterdir()}
    out = tmp_path / "out"
    seen: list[list[str]] = []
    monkeypatch.setattr(cloak.imageio, "atomic_writer", failure(seen))
    failed = protect([photos], ProtectOptions(mask=setup["mask"], output=out))
    monkeypatch.undo()
    assert len(seen) == COUNT, [(r.status, r.reason) for r in failed.files]
    if failure is full_disk:  # a temporary file with part of the data existed when it failed
        assert all(any(name.endswith(".part") for name in names) for names in seen), seen
    assert [r.status for r in failed.files] == ["failed"] * COUNT
    assert [r.reason for r in failed.files] == [
        f"{out / r.path.name}: cannot write ({reason})" for r in failed.files]
    assert visible(out) == [], "a file was left behind"

    rerun = protect([photos], ProtectOptions(mask=setup["mask"], output=out))
    assert [r.status for r in rerun.files] == ["protected"] * COUNT
    assert visible(out) == sorted([MANIFEST_NAME, *before])
    for name in before:
        assert read_photo(out / name).pixels.shape == read_photo(photos / name).pixels.shape
    assert {p.name: p.read_bytes() for p in photos.iterdir()} == before, "an input was modified"


@pytest.mark.data
def test_read_only_output_folder(setup: dict, tmp_path: Path) -> None:
    """A real read-only output folder: one error per photo, nothing written; then writable, the
    rerun finishes."""
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o555)
    try:
        if os.access(out, os.W_OK):  # root (with CAP_DAC_OVERRIDE) writes through the mode
            pytest.skip("this user can write into a read-only folder (root?)")
        failed = protect([setup["photos"]], ProtectOptions(mask=setup["mask"], output=out))
        assert [r.status for r in failed.files] == ["failed"] * COUNT
        assert all("cannot write (Permission denied)" in r.reason for r in failed.files)
        assert visible(out) == []
    finally:
        out.chmod(0o755)
    rerun = protect([setup["photos"]], ProtectOptions(mask=setup["mask"], output=out))
    assert [r.status for r in rerun.files] == ["protected"] * COUNT


@pytest.mark.data
def test_second_run_on_the_same_output_is_refused(setup: dict, tmp_path: Path) -> None:
    """A run paused after its first output: a second run (the real command) on the same folder
    is refused with one clear line and writes nothing; the first then finishes every photo."""
    out = tmp_path / "out"
    paused, resume = threading.Event(), threading.Event()

    class PauseAfterFirstOutput(Reporter):
        def progress(self, stage: str, done: int, total: int) -> None:
            if stage == "writing" and done == 1:
                paused.set()
                resume.wait(300)

    first: dict[str, Any] = {}

    def run_first() -> None:
        first["summary"] = protect([setup["photos"]], ProtectOptions(mask=setup["mask"],
                                                                     output=out),
                                   PauseAfterFirstOutput())

    thread = threading.Thread(target=run_first)
    thread.start()
    try:
        assert paused.wait(300), "the first run never wrote its first output"
        written = visible(out)
        second = CliRunner().invoke(main, ["protect", str(setup["photos"]), "--mask",
                                           str(setup["mask_file"]), "-o", str(out), "-q"])
        assert second.exit_code == 1, second.output
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and f"{out}: another cloak run is writing to this folder" \
            in lines[0], second.stderr
        assert visible(out) == written, "the refused run wrote something"
    finally:
        resume.set()
        thread.join(300)
    assert [r.status for r in first["summary"].files] == ["protected"] * COUNT
    again = protect([setup["photos"]], ProtectOptions(mask=setup["mask"], output=out))
    assert [r.status for r in again.files] == ["up-to-date"] * COUNT, "the lock was not released"


def test_folder_lock(tmp_path: Path) -> None:
    """The lock is exclusive while held, released after; an unwritable place is not locked."""
    with folder_lock(tmp_path / "out"):
        with pytest.raises(FolderBusy, match="another cloak run"), folder_lock(tmp_path / "out"):
            pass
    with folder_lock(tmp_path / "out"):
        pass
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with folder_lock(blocker / "out"):  # cannot be created: nothing to lock, no error
        pass


@pytest.mark.timeout(60)  # a progress file that were opened as a named pipe would block
def test_manifest_that_is_a_named_pipe_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / MANIFEST_NAME)
    notes: list[str] = []

    class Notes(Reporter):
        def note(self, message: str) -> None:
            notes.append(message)

    assert Manifest(tmp_path, Notes()).entries == {}
    assert notes == [f"{tmp_path / MANIFEST_NAME}: not a regular file (a named pipe); finished "
                     "outputs are redone"]
