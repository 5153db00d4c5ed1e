"""Safe file access: atomic writes (a reader never sees a half-written file, an interrupted run
leaves none), :func:`not_regular`, the check that keeps named pipes, sockets and devices from
being opened (opening a FIFO blocks until someone writes to it), and :func:`folder_lock`, which
keeps two runs from writing into one output folder at once.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> with atomic_writer(target) as fh:
...     _ = fh.write(b"done")
>>> target.read_bytes()
b'done'
"""

from __future__ import annotations

import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["LOCK_NAME", "FolderBusy", "atomic_writer", "folder_lock", "not_regular",
           "write_bytes_atomic"]

#: The lock file :func:`folder_lock` holds in an output folder (hidden: never taken as an input).
LOCK_NAME = ".cloak-lock"

_KINDS = ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a folder"))


def not_regular(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` is not a regular file to read (symlinks followed), or None when it is one.

    Only ``os.stat`` is called: nothing is opened, so a FIFO cannot block the caller.

    Returns:
        e.g. ``"not a regular file (a named pipe)"``, ``"no such file"``; None for a regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "no such file"
    except OSError as err:
        return f"cannot open ({err.strerror or err})"
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    return f"not a regular file ({kind})"


@contextmanager
def atomic_writer(dest: Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``dest`` for binary writing; on success move it onto ``dest``.

    The data is flushed and fsynced, the file gets the usual permissions (0666 minus the umask,
    where ``mkstemp`` alone would give 0600), then ``os.replace`` puts it in place in one step.
    On any exception the temporary file is removed and ``dest`` is left as it was. Missing
    parent folders are created.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(dest: Path, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically (see :func:`atomic_writer`)."""
    with atomic_writer(dest) as handle:
        handle.write(data)


class FolderBusy(RuntimeError):
    """Another process holds the folder's lock: one line naming the folder and what to do."""


@contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<folder>/.cloak-lock`` (created, with the folder) while
    the block runs; the lock goes with the process, so a crashed run leaves no stale lock.

    A folder where the lock file cannot be created (read-only, full, not a folder) is not
    locked: no other run can write there either, and each write reports its own error.

    Raises:
        FolderBusy: another process holds the lock (it is not waited for).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd: int | None = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW,
                                 0o666)
    except OSError:
        fd = None
    if fd is None:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise FolderBusy(f"{folder}: another cloak run is writing to this folder (it holds "
                             f"{folder / LOCK_NAME}); wait for it to finish") from None
        yield
    finally:
        os.close(fd)
