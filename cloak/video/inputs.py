"""What a ``cloak video`` run reads (videos, reference photos), and where each copy goes.

>>> # videos = find_videos([Path("holiday")])
>>> # photos = reference_photos(Path("alice/"), on_unreadable=print)
>>> # jobs, skipped = plan_jobs(videos, default_output([Path("holiday")]), force=False)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from cloak.errors import ImageError
from cloak.imageio import iter_photo_paths, read_photo
from cloak.video.engine import VideoJob
from cloak.video.writing import OUTPUT_FORMATS

__all__ = ["VIDEO_SUFFIXES", "default_output", "find_videos", "output_path", "plan_jobs",
           "reference_photos"]

#: File suffixes (lower case) taken as videos inside an input folder.
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts")


def find_videos(inputs: Sequence[Path]) -> list[tuple[Path, Path]]:
    """The videos to protect: each file given, and each entry with a video suffix under a folder.

    Folders are walked recursively in sorted order; hidden files and folders (name starting with
    ".") are left out. A named pipe or other special file is kept, so that opening it refuses it
    in one line instead of skipping it silently.

    Args:
        inputs: files and folders.

    Returns:
        (video, its path relative to its input folder, or its file name when given directly),
        in input order.
    """
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        if item.is_dir():
            found += [(p, p.relative_to(item)) for p in sorted(item.rglob("*"))
                      if not p.is_dir() and p.suffix.lower() in VIDEO_SUFFIXES
                      and not any(part.startswith(".") for part in p.relative_to(item).parts)]
        else:
            found.append((item, Path(item.name)))
    return found


def default_output(inputs: Sequence[Path]) -> Path:
    """The output folder when none is given: ``<input>_cloaked`` beside a first input that is a
    folder, else ``cloaked`` beside the first file."""
    first = inputs[0]
    return first.with_name(f"{first.name}_cloaked") if first.is_dir() else first.parent / "cloaked"


def output_path(output: Path, relative: Path) -> Path:
    """Where the protected copy of the video at ``relative`` goes under the folder ``output``:
    the same relative path, with its suffix kept when it names an output container
    (:data:`cloak.video.writing.OUTPUT_FORMATS`) and ``.mp4`` otherwise."""
    suffix = relative.suffix.lower() if relative.suffix.lower() in OUTPUT_FORMATS else ".mp4"
    return output / relative.with_suffix(suffix)


def plan_jobs(videos: Sequence[tuple[Path, Path]], output: Path,
              force: bool) -> tuple[list[VideoJob], list[VideoJob]]:
    """One job per video from :func:`find_videos`, writing under ``output``.

    Args:
        videos: (video, relative path) pairs.
        output: the output folder.
        force: rewrite outputs that already exist.

    Returns:
        the jobs to run, and the jobs left out because their output exists (only without
        ``force``), each in the order of ``videos``.
    """
    jobs: list[VideoJob] = []
    skipped: list[VideoJob] = []
    for path, relative in videos:
        job = VideoJob(path, output_path(output, relative))
        (skipped if job.dest.exists() and not force else jobs).append(job)
    return jobs, skipped


def reference_photos(photos: Path,
                     on_unreadable: Callable[[ImageError], None]) -> list[torch.Tensor]:
    """The photos of a person's ``--reference``, to enrol them with
    (:func:`cloak.video.protect.enroll_person`).

    Args:
        photos: a photo, or a folder walked as ``cloak protect`` walks it
            (:func:`cloak.imageio.iter_photo_paths`; files it skips are left out).
        on_unreadable: called with the error of each photo that cannot be read (it is left out).

    Returns:
        (3, H, W) float32 RGB photos in [0, 255].
    """
    found = []
    for entry in iter_photo_paths([photos]):
        if entry.skip_reason is None:
            try:
                found.append(read_photo(entry.path).pixels)
            except ImageError as err:
                on_unreadable(err)
    return found
