"""Atomic file writes: a reader never sees a half-written file, an interrupted run leaves none.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
>>> with atomic_writer(target) as fh:
...     _ = fh.write(b"done")
>>> target.read_bytes()
b'done'
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_writer", "write_bytes_atomic"]


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
