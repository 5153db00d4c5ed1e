"""Finding the photos of a run: the inputs walked, files under the output folder left out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cloak.imageio import FoundFile, iter_photo_paths
from cloak.photos.outputs import is_within, output_relative

__all__ = ["discover"]


def discover(inputs: Sequence[Path], output: Path | None) -> list[tuple[FoundFile, Path]]:
    """The files of ``inputs`` (folders walked recursively by
    :func:`~cloak.imageio.iter_photo_paths`), each once, in discovery order, with its path
    relative to the output folder (:func:`~cloak.photos.outputs.output_relative`); files under
    ``output`` are left out, so an output folder inside an input folder is never re-protected.
    """
    several = len(inputs) > 1
    out = output.resolve() if output is not None else None
    files = []
    for root in inputs:
        root_dir = Path(root) if Path(root).is_dir() else None
        for found in iter_photo_paths([root]):
            if out is not None and is_within(found.path.resolve(), out):
                continue
            files.append((found, output_relative(found, several, root_dir)))
    seen: set[Path] = set()
    unique = []
    for found, relative in files:
        key = found.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((found, relative))
    return unique

