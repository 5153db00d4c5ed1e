"""What the page downloads: PNG previews of photos and the zip of the protected photos.

>>> zip_names([("a.jpg", ".jpg"), ("a.jpg", ".jpg"), ("../Ada Lovelace.gif", ".png")])
['a.jpg', 'a_2.jpg', 'Ada_Lovelace.png']
"""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

import torch
from PIL import Image

from cloak.imageio import read_photo
from cloak.photos import safe_name

__all__ = ["PREVIEW_SIDE", "preview_png", "write_zip", "zip_names"]

#: Longest side of a preview, in pixels.
PREVIEW_SIDE = 1024


def preview_png(path: Path, max_side: int = PREVIEW_SIDE) -> bytes:
    """A PNG of the photo at ``path`` as the page shows it: upright, RGB, its longer side at
    most ``max_side`` pixels (area-averaged; smaller photos are not resampled, so the preview
    of a protected 8-bit photo holds its pixels exactly).

    Raises:
        cloak.errors.ImageError: the file cannot be read.
    """
    rgb, _ = read_photo(path).downscaled(max_side)
    pixels = rgb.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def zip_names(files: Sequence[tuple[str, str]]) -> list[str]:
    """Entry names for (name shown, suffix of the written file) pairs: the name's stem made a
    safe flat file name (:func:`cloak.photos.safe_name`) with the written file's suffix (a GIF
    written as PNG ends in .png), repeats numbered."""
    taken: set[str] = set()
    entries = []
    for name, suffix in files:
        stem = safe_name(PurePosixPath(name.replace("\\", "/")).stem)
        entry, n = f"{stem}{suffix}", 1
        while entry.lower() in taken:
            n += 1
            entry = f"{stem}_{n}{suffix}"
        taken.add(entry.lower())
        entries.append(entry)
    return entries


def write_zip(files: Sequence[tuple[str, Path]], dest: Path) -> None:
    """Write a zip of ``files`` ((entry name, file) pairs) to ``dest``, replacing it in one
    step; photos are stored as they are (already compressed)."""
    partial = dest.with_name(f"{dest.name}.part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for entry, path in files:
            archive.write(path, entry)
    os.replace(partial, dest)
