"""``cloak enroll --from-video`` around :mod:`cloak.video.enrol`: find a video's face tracks
and pick one track's faces with detection spread over threads, list the tracks, save the faces
learned from.

>>> # analysis, picked = find_track_faces(Path("talk.mp4"), detector, stride=4, track=1)
>>> # rows = track_rows(analysis)
>>> # save_faces(picked, Path("alice_faces"), "alice")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.photos import TRAIN_FACES, safe_name
from cloak.video.enrol import PickedFace, find_tracks, pick_track_faces
from cloak.video.protect import VideoAnalysis, VideoOptions, track_summaries

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN

__all__ = ["find_track_faces", "save_faces", "track_rows"]


def find_track_faces(video: Path, detector: MTCNN, stride: int, track: int | None,
                     progress: Callable[[str, int, int], None] | None = None
                     ) -> tuple[VideoAnalysis, list[PickedFace] | None]:
    """The video's face tracks and, when ``track`` is given, the faces to learn from in it.

    Detection spreads frames over threads (:class:`~cloak.video.protect.VideoOptions`), so torch
    runs on one thread meanwhile; its thread count is restored afterwards.

    Args:
        video: the video file.
        detector: MTCNN.
        stride: detect faces every this many frames (as ``cloak video`` does).
        track: the track to learn from, or None to only find the tracks.
        progress: called with (stage, frames done, frames in all).

    Returns:
        the analysis and the :data:`cloak.photos.TRAIN_FACES` faces picked from ``track``
        (:func:`cloak.video.enrol.pick_track_faces`), or None without ``track``.

    Raises:
        cloak.video.container.VideoError: the video cannot be decoded.
        ValueError: no such track.
    """
    learn_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        analysis = find_tracks(video, detector, VideoOptions(stride=stride), progress)
        picked = None if track is None else pick_track_faces(analysis, track, TRAIN_FACES,
                                                             progress)
    finally:
        torch.set_num_threads(learn_threads)
    return analysis, picked


def track_rows(analysis: VideoAnalysis) -> list[dict[str, Any]]:
    """The tracks as listed to choose from: :func:`cloak.video.protect.track_summaries` without
    ``person`` and ``scores`` (nobody is enrolled yet)."""
    return [{k: v for k, v in t.items() if k not in ("person", "scores")}
            for t in track_summaries(analysis)]


def save_faces(picked: Sequence[PickedFace], folder: Path, name: str) -> None:
    """Save each picked face's aligned canonical face as ``<folder>/<name>_<frame>.png``
    (``name`` made safe for a file name; frame zero-padded to 6 digits), creating the folder."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for face in picked:
        pixels = face.canonical.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0)
        Image.fromarray(pixels.numpy()).save(folder / f"{safe_name(name)}_{face.frame:06d}.png")
