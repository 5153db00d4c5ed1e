"""Receiving uploaded photos: a streaming multipart parser (python-multipart) that writes each
file straight into its session's private folder while counting its bytes, so a file over the
limit is never kept whole and nothing is spooled anywhere else.

>>> display_name("C:\\\\Users\\\\ada\\\\IMG_01.jpg")
'IMG_01.jpg'
>>> megabytes(25 * 1024 * 1024), megabytes(1536 * 1024), megabytes(120_000)
('25', '1.5', '0.11')
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, MultipartState, parse_options_header

__all__ = ["FIELD", "MAX_PARTS", "Received", "UploadError", "display_name", "megabytes",
           "receive_files"]

#: The form field the page sends its photos in.
FIELD = "photos"
#: Most parts one request may hold.
MAX_PARTS = 1000
#: Longest header block of one part, in bytes.
_MAX_HEADERS = 16 * 1024
#: Longest name shown for a file, in characters.
_MAX_NAME = 120
#: Why a file was refused, until its end gives the words (with its full size).
_TOO_LARGE, _OVER_BUDGET = "too large", "over budget"


class UploadError(ValueError):
    """The request is not a multipart form this page sends (one line, for the page)."""


@dataclass
class Received:
    """One uploaded file as received.

    Attributes:
        name: its name as sent, made safe to show (:func:`display_name`); never a path.
        path: where its bytes were written (a numbered file in the session's folder), or None
            when it was refused.
        size: its length in bytes (counted to the end even when refused).
        refusal: why it was refused (one line, without the name), or None.
    """

    name: str
    path: Path | None
    size: int = 0
    refusal: str | None = None


def display_name(raw: str) -> str:
    """A file name as a browser sends it, safe to show: its last path component, Unicode NFC,
    control and format characters removed, at most 120 characters. Never used as a path."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in unicodedata.normalize("NFC", name)
                   if unicodedata.category(c)[0] != "C").strip()
    return (name[:_MAX_NAME - 3] + "...") if len(name) > _MAX_NAME else (name or "unnamed")


def megabytes(size: int) -> str:
    """``size`` bytes in MB (MiB) as the page writes it: ``25``, ``1.5``, ``0.11``."""
    value = size / 2**20
    return f"{value:.{1 if value >= 10 else 2}f}".rstrip("0").rstrip(".")


class _Receiver:
    """The parser's callbacks: the current part's headers, file and byte count."""

    def __init__(self, folder: Path, max_file: int, budget: int) -> None:
        self.folder, self.max_file, self.budget = folder, max_file, budget
        self.files: list[Received] = []
        self.kept = 0  # bytes of the files kept so far in this request
        self.headers: list[tuple[bytes, bytes]] = []
        self.field, self.value = b"", b""
        self.header_bytes = 0
        self.current: Received | None = None
        self.handle: BinaryIO | None = None

    def on_part_begin(self) -> None:
        self.headers, self.current, self.header_bytes = [], None, 0

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.field += data[start:end]
        self._count_header(end - start)

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.value += data[start:end]
        self._count_header(end - start)

    def _count_header(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > _MAX_HEADERS:
            raise UploadError("a part's headers are too long")

    def on_header_end(self) -> None:
        self.headers.append((self.field.lower(), self.value))
        self.field, self.value = b"", b""

    def on_headers_finished(self) -> None:
        disposition = next((v for k, v in self.headers if k == b"content-disposition"), b"")
        _, options = parse_options_header(disposition)
        filename = options.get(b"filename", b"").decode("utf-8", "replace")
        if options.get(b"name") != FIELD.encode() or not filename:
            return  # another field, or an empty file input: ignored
        if len(self.files) >= MAX_PARTS:
            raise UploadError(f"more than {MAX_PARTS} files in one upload")
        path = self.folder / f"incoming-{len(self.files)}"
        self.current = Received(display_name(filename), path)
        self.files.append(self.current)
        self.handle = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        part = self.current
        if part is None:
            return
        part.size += end - start
        if self.handle is None:
            return  # refused: counted, not kept
        if part.size > self.max_file:
            self._refuse(part, _TOO_LARGE)
        elif self.kept + part.size > self.budget:
            self._refuse(part, _OVER_BUDGET)
        else:
            self.handle.write(data[start:end])

    def _refuse(self, part: Received, reason: str) -> None:
        self.close_file()
        assert part.path is not None
        part.path.unlink(missing_ok=True)
        part.path, part.refusal = None, reason

    def on_part_end(self) -> None:
        part = self.current
        if part is not None and self.handle is not None:
            self.kept += part.size
        elif part is not None and part.refusal == _TOO_LARGE:
            part.refusal = (f"too large: {megabytes(part.size)} MB, the limit is "
                            f"{megabytes(self.max_file)} MB per photo")
        elif part is not None:
            part.refusal = ("not added: with it the photos of this page would pass "
                            f"{megabytes(self.budget)} MB (the space left); press 'Start "
                            "over' to make room")
        self.close_file()
        self.current = None

    def close_file(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None

    def discard(self) -> None:
        """Remove every file this request wrote (the request failed)."""
        self.close_file()
        for part in self.files:
            if part.path is not None:
                part.path.unlink(missing_ok=True)


async def receive_files(content_type: str, chunks: AsyncIterator[bytes], folder: Path,
                        max_file: int, budget: int) -> list[Received]:
    """Read a ``multipart/form-data`` body and store the files of its :data:`FIELD` field.

    Each file is written to ``folder/incoming-N`` (mode 0600) as it arrives; a file that grows
    past ``max_file`` bytes, or that would bring this request's kept bytes past ``budget``, is
    deleted at once and the rest of it only counted. Other fields are ignored.

    Args:
        content_type: the request's Content-Type header (with the boundary).
        chunks: the request body.
        folder: the session's folder for incoming files (private).
        max_file: largest file kept, in bytes.
        budget: most bytes kept from this request in all.

    Returns:
        the files in the order sent, refused ones with their reason.

    Raises:
        UploadError: not a multipart form, malformed, or too many parts (nothing is kept).
    """
    kind, params = parse_options_header(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        raise UploadError("expected a multipart/form-data upload of photos")
    receiver = _Receiver(folder, max_file, budget)
    parser = MultipartParser(params[b"boundary"], {
        "on_part_begin": receiver.on_part_begin, "on_part_data": receiver.on_part_data,
        "on_part_end": receiver.on_part_end, "on_header_field": receiver.on_header_field,
        "on_header_value": receiver.on_header_value, "on_header_end": receiver.on_header_end,
        "on_headers_finished": receiver.on_headers_finished})
    try:
        async for chunk in chunks:
            parser.write(chunk)
        parser.finalize()
        if parser.state != MultipartState.END:
            raise UploadError("the upload ended before its last file was complete")
    except FormParserError:
        receiver.discard()
        raise UploadError("the upload is not a well-formed multipart form") from None
    except BaseException:  # UploadError, a dropped connection, a full disk: nothing is kept
        receiver.discard()
        raise
    receiver.close_file()
    return receiver.files
