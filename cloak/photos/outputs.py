"""Where outputs go: the default output folder and person name, each photo's output path, and
the refusal of an output folder that would overwrite inputs.

>>> safe_name("Ada Lovelace/2024")
'Ada_Lovelace_2024'
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from cloak.imageio import FoundFile, Photo
from cloak.photos.options import UsageError

__all__ = ["check_output", "default_name", "default_output", "is_within", "output_path",
           "output_relative", "safe_name"]


def safe_name(name: str) -> str:
    """``name`` made safe as a file name: runs of other than letters, digits, ``.-_`` -> ``_``.

    >>> safe_name("Ada Lovelace/2024")
    'Ada_Lovelace_2024'
    """
    cleaned = re.sub(r"[^\w.-]+", "_", name).strip("._")
    return cleaned or "person"


def is_within(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both resolved by the caller)."""
    return path == folder or folder in path.parents


def default_output(inputs: Sequence[Path]) -> Path:
    """The default output folder for ``inputs``.

    - one folder ``D``: ``D_cloaked`` beside it;
    - one file ``F``: ``<F's stem>_cloaked`` beside it;
    - several inputs in one folder ``P``: ``P_cloaked`` beside ``P``.

    Raises:
        UsageError: several inputs in different folders (give an output folder).
    """
    paths = [Path(os.path.abspath(p)) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    if len(paths) == 1:
        only = paths[0]
        name = only.name if only.is_dir() else only.stem
        return only.parent / f"{name}_cloaked"
    parents = {p.parent for p in paths}
    if len(parents) > 1:
        raise UsageError("the inputs lie in different folders; choose an output folder with "
                         "-o/--output")
    parent = parents.pop()
    return parent.parent / f"{parent.name}_cloaked"


def default_name(inputs: Sequence[Path]) -> str:
    """The person's default name: the input folder's name, or the first file's folder name."""
    first = Path(os.path.abspath(inputs[0]))
    folder = first if first.is_dir() else first.parent
    return safe_name(folder.name)


def check_output(inputs: Sequence[Path], output: Path) -> None:
    """Refuse an output folder that is an input, holds an input folder, or is an input file.

    Raises:
        UsageError: it would (the message says why).
    """
    out = output.resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"{output}: the output must be a folder, not a file")
    for item in inputs:
        path = Path(item).resolve()
        if path.is_dir() and is_within(path, out):
            raise UsageError(f"{output}: the output folder would be the input folder {item} or "
                             "contain it; originals are never overwritten: choose another "
                             "output folder")
        if path.is_file() and path.parent == out:
            raise UsageError(f"{output}: the output folder is the folder of the input {item}; "
                             "originals are never overwritten: choose another output folder")


def output_relative(found: FoundFile, several: bool, input_root: Path | None) -> Path:
    """Where ``found`` goes under the output folder (mirrors folders; several inputs nest)."""
    if several and input_root is not None:
        return Path(input_root.name) / found.relative
    return found.relative


def output_path(relative: Path, photo: Photo) -> Path:
    """The output's relative path: a file written as PNG instead of its own format gets .png."""
    if photo.out_format == "PNG" and photo.format != "PNG":
        return relative.with_suffix(".png")
    return relative

