"""Enrol a person from a video: learn their mask from sharp, varied frames of one face track.

1. :func:`find_tracks` runs the first pass of ``cloak video`` (detection every ``stride`` frames,
   tracks; no recognizer) and lists each track with its frames and face size, so the user can
   say which track is the person (``cloak enroll NAME --from-video FILE`` prints them).
2. :func:`pick_track_faces` decodes the track's detected frames again and keeps, for each of
   ``count`` consecutive, equally long stretches of the track, its sharpest face: sharpness is
   the variance of the Laplacian of the aligned canonical face (grey, inner 60%, where the face
   is), the usual focus measure (Pech-Pacheco et al., ICPR 2000), computed in the canonical frame
   so that faces of any size compare fairly (a small face upsampled to the frame is blurrier and
   loses to a larger one). One face per stretch spreads the choice over the whole track, and so
   over the poses and expressions the person shows in it.
3. :func:`learn_track_mask` learns the mask from those faces exactly as photo enrolment does
   (:class:`~cloak.masking.MaskLearner` with the :class:`~cloak.masking.LearnSettings` preset)
   and returns a :class:`~cloak.mask.Mask` in the same file format, with ``training_faces`` and the
   frames used recorded in its settings.

For ``cloak enroll --from-video``, :func:`find_track_faces` does steps 1-2 with detection
spread over threads, :func:`track_rows` lists the tracks and :func:`save_faces` keeps the faces
learned from.

>>> # analysis = find_tracks(Path("talk.mp4"), detector)
>>> # picked = pick_track_faces(analysis, track_id=1)
>>> # mask = learn_track_mask("alice", picked, LearnSettings(mode="fast"))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.photos import TRAIN_FACES, safe_name
from cloak.video.overlap import prefetch
from cloak.video.protect import (
    VideoAnalysis,
    VideoOptions,
    analyse_video,
    track_summaries,
    upright,
)
from cloak.video.reading import iter_frames

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN, Detection
    from cloak.mask import Mask
    from cloak.masking import LearnSettings
    from cloak.opom import TrainingFace
    from cloak.video.detection import Observation

__all__ = [
    "PickedFace",
    "find_track_faces",
    "find_tracks",
    "learn_track_mask",
    "pick_track_faces",
    "save_faces",
    "sharpness",
    "track_rows",
]

#: Called with (stage, done, total).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class PickedFace:
    """One face chosen to learn from.

    Attributes:
        frame: index of the video frame.
        sharpness: :func:`sharpness` of its canonical face.
        face: the training face (the frame's region around the face and its alignment).
        canonical: (3, FRAME_SIZE, FRAME_SIZE) float32 RGB in [0, 255], the aligned face.
    """

    frame: int
    sharpness: float
    face: TrainingFace
    canonical: torch.Tensor


def sharpness(frames: torch.Tensor) -> torch.Tensor:
    """Variance of the Laplacian of the grey inner 60% of canonical faces (higher: sharper).

    Args:
        frames: (N, 3, S, S) float RGB in [0, 255], aligned canonical faces.

    Returns:
        (N,) float32 variances in grey levels squared.

    >>> flat = torch.full((1, 3, 224, 224), 128.0)
    >>> float(sharpness(flat)[0])
    0.0
    """
    import torch.nn.functional as F

    grey = (0.299 * frames[:, 0] + 0.587 * frames[:, 1] + 0.114 * frames[:, 2])[:, None]
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]],
                          dtype=grey.dtype)[None, None]
    size = frames.shape[-1]
    lo, hi = round(0.2 * size), round(0.8 * size)
    response = F.conv2d(grey[:, :, lo:hi, lo:hi], kernel)
    return response.flatten(1).var(dim=1).float()


def find_tracks(source: Path, detector: MTCNN, options: VideoOptions | None = None,
                progress: Progress | None = None) -> VideoAnalysis:
    """The face tracks of a video (no recognizer: tracks are unnamed).

    Args:
        source: the video.
        detector: MTCNN.
        options: detection settings (stride, min_face, threads).
        progress: called with ("detecting", frames done, frames in all).

    Raises:
        cloak.video.container.VideoError: the video cannot be decoded.
    """
    return analyse_video(source, [], detector, None, options, progress)


def pick_track_faces(analysis: VideoAnalysis, track_id: int, count: int = 10,
                     progress: Progress | None = None) -> list[PickedFace]:
    """The sharpest face of each of ``count`` equal stretches of a track (see the module notes).

    Args:
        analysis: from :func:`find_tracks` of the video.
        track_id: the :attr:`~cloak.video.tracks.Track.id` to learn from.
        count: faces wanted (fewer when the track has fewer detections).
        progress: called with ("reading track", frames done, frames in all).

    Returns:
        the picked faces, by frame.

    Raises:
        ValueError: no such track.
        cloak.video.container.VideoError: the video cannot be decoded.
    """
    from cloak.faces import AlignedFace
    from cloak.faces.align import similarity_to_frame, to_frame
    from cloak.opom import training_face

    tracks = {t.id: t for t in analysis.tracks}
    if track_id not in tracks:
        known = ", ".join(str(t) for t in tracks) or "none"
        raise ValueError(f"{analysis.info.path}: no track {track_id} (tracks: {known})")
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}")
    observations = tracks[track_id].observations
    stretch = {o.frame: k * count // len(observations) for k, o in enumerate(observations)}
    by_frame = {o.frame: o for o in observations}
    best: dict[int, PickedFace] = {}
    say = progress or (lambda *_: None)
    decoded = prefetch(iter_frames(analysis.info.path, select=by_frame.__contains__), 4)
    with closing(decoded):
        for frame in decoded:
            if frame.index not in by_frame:
                continue
            obs = by_frame[frame.index]
            image = upright(frame, analysis.info.rotation)
            matrix = similarity_to_frame(obs.landmarks[None])
            with torch.no_grad():
                canonical = to_frame(image, matrix)[0].clamp(0, 255)
            score = float(sharpness(canonical[None])[0])
            part = stretch[frame.index]
            if part not in best or score > best[part].sharpness:
                aligned = AlignedFace(canonical, matrix[0], _detection(obs))
                best[part] = PickedFace(frame.index, score, training_face(image, aligned),
                                        canonical)
            say("reading track", frame.index + 1, observations[-1].frame + 1)
            if frame.index >= observations[-1].frame:
                break
    return sorted(best.values(), key=lambda p: p.frame)


def _detection(observation: Observation) -> Detection:
    """The detector record of an observation (box, score, landmarks)."""
    from attackers.detectors.mtcnn import Detection

    return Detection(observation.box, observation.score, observation.landmarks)


def learn_track_mask(name: str, picked: Sequence[PickedFace], learn: LearnSettings,
                     progress: Callable[[int, int, float], None] | None = None,
                     load: Callable[[str], object] | None = None) -> Mask:
    """Learn ``name``'s mask from picked track faces, as photo enrolment learns it.

    The same steps as ``cloak enroll PHOTOS`` (:mod:`cloak.photos`, :class:`MaskLearner
    <cloak.masking.MaskLearner>`): the preset's surrogates (and attribute predictors when
    ``learn`` protects attributes), :func:`cloak.opom.learn_mask`, the same settings recorded
    in the mask.

    Args:
        name: the person's name (stored in the mask).
        picked: from :func:`pick_track_faces`.
        learn: the optimiser preset and overrides (``cloak enroll --mode`` ...).
        progress: called after each step with (step, steps, loss).
        load: loads a model by zoo name (default ``attackers.load``).

    Returns:
        the mask (``settings`` as photo enrolment writes them, plus ``source_frames``).

    Raises:
        ValueError: no face picked.
    """
    import attackers
    from cloak.masking import MaskLearner

    if not picked:
        raise ValueError(f"no face of {name} to learn from")
    learner = MaskLearner(learn, load or attackers.load)
    return learner(name, [p.face for p in picked], progress,
                   extra_settings={"source_frames": ",".join(str(p.frame) for p in picked)})


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
        (:func:`pick_track_faces`), or None without ``track``.

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
