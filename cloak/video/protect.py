"""Protect the known people of a video: each one's mask on every frame of their face track.

Two passes over each video (decoding is cheap next to detection):

1. detect faces on every ``stride``-th frame (MTCNN) and embed them (sface), link the detections
   into tracks, and name each track ONCE after the enrolled person its embeddings resemble most
   (:mod:`cloak.video.tracks`), so a person's mask never jumps to someone else mid-track;
2. decode again and paste each named track's mask through the track's smoothed alignment
   (:func:`cloak.faces.align.paste_back`, bilinear and feathered, as for photos); faces of
   unknown people stay untouched; frames, timestamps, rotation and audio are kept
   (:class:`cloak.video.io.VideoWriter`).

A person is enrolled with their mask (a ``.cloak`` file) and reference features computed from a
few of their photos; the features stay in memory (shared/DESIGN.md section 7).

>>> # person = enroll_person(load_mask("alice.cloak"), photos, detector, sface)
>>> # result = protect_video(Path("in.mp4"), Path("out/in.mp4"), [person], detector, sface)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.identity import CLUSTER_THRESHOLD, cluster_faces, main_identity
from cloak.video.io import DEFAULT_CRF, DEFAULT_PRESET, probe, read_frames, to_display, to_stored
from cloak.video.tracks import (
    DEFAULT_STRIDE,
    detect_faces,
    faces_per_frame,
    identify_tracks,
    link_tracks,
)

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer
    from cloak.faces.mtcnn import MTCNN
    from cloak.mask import Mask

__all__ = ["EnrolledPerson", "VideoOptions", "VideoResult", "enroll_person", "protect_video"]

#: Called with (stage, frames done, frames in all) while a video is processed.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EnrolledPerson:
    """A person to protect in videos.

    Attributes:
        name: the person's name (the mask's ``person``).
        mask: their mask.
        references: (R, D) unit-length sface features of their photos. Personal data: memory only.
    """

    name: str
    mask: Mask
    references: torch.Tensor


@dataclass(frozen=True)
class VideoOptions:
    """How videos are processed.

    Attributes:
        stride: frames between face detections (tracks are interpolated in between).
        threshold: least mean cosine similarity (sface) for a track to be named after a person.
        min_face: faces smaller than this many pixels are ignored.
        crf, preset: x264 quality (18 = visually lossless) and speed preset.
        batch_size: frames decoded at once.
    """

    stride: int = DEFAULT_STRIDE
    threshold: float = CLUSTER_THRESHOLD
    min_face: int = 20
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    batch_size: int = 8


@dataclass
class VideoResult:
    """What happened to one video (JSON-ready through :meth:`to_json`; no face data)."""

    path: Path
    output: Path
    frames: int = 0
    seconds: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        fps = self.frames / self.seconds if self.seconds > 0 else None
        return {"input": str(self.path), "output": str(self.output), "frames": self.frames,
                "seconds": round(self.seconds, 3),
                "frames_per_second": None if fps is None else round(fps, 2),
                "tracks": self.tracks}


def enroll_person(mask: Mask, photos: Sequence[torch.Tensor], detector: MTCNN,
                  recognizer: Recognizer) -> EnrolledPerson:
    """The mask's person with reference features from their photos.

    The person is the identity found in the most photos (:func:`cloak.identity.main_identity`),
    as ``cloak protect`` decides it; their faces' features are the references.

    Args:
        mask: the person's mask (its ``person`` names them).
        photos: (3, H, W) float32 RGB in [0, 255] photos of the person (other people may appear).
        detector: MTCNN.
        recognizer: sface (the features tracks are matched with).

    Raises:
        ValueError: no face in any photo.
    """
    from cloak.faces import align_faces

    with torch.no_grad():
        per_photo = align_faces(list(photos), detector)
        frames = [face.frame for faces in per_photo for face in faces]
        if not frames:
            raise ValueError(f"no face found in the {len(photos)} reference photos of "
                             f"{mask.person}")
        features = recognizer.embed(torch.stack(frames))
    labels = cluster_faces(features).tolist()
    owners, sizes, start = [], [], 0
    for faces in per_photo:
        owners.append(labels[start:start + len(faces)])
        sizes.append([float(f.detection.box[2] - f.detection.box[0]) for f in faces])
        start += len(faces)
    person, _ = main_identity(owners, sizes)
    chosen = torch.tensor([label == person for label in labels])
    return EnrolledPerson(mask.person, mask, features[chosen])


def protect_video(source: Path, dest: Path, people: Sequence[EnrolledPerson], detector: MTCNN,
                  recognizer: Recognizer, options: VideoOptions | None = None,
                  progress: Progress | None = None) -> VideoResult:
    """Write ``dest``: ``source`` with each enrolled person's mask on their face tracks.

    Args:
        source: the input video.
        dest: the output file (suffix .mp4, .m4v, .mov or .mkv); written atomically.
        people: the enrolled people (distinct names).
        detector: MTCNN; recognizer: sface.
        options: :class:`VideoOptions` (default settings when None).
        progress: called with ("detecting" | "writing", frames done, frames in all).

    Returns:
        the :class:`VideoResult`, with per track: id, person (or None), first and last frame,
        similarity scores.

    Raises:
        cloak.video.io.VideoError: the video cannot be decoded or the output written.
    """
    options = options or VideoOptions()
    start = time.perf_counter()
    info = probe(source)
    say = progress or (lambda *_: None)

    def upright(stage: str):
        for batch in read_frames(source, options.batch_size):
            yield batch, to_display(batch.frames, info.rotation)
            say(stage, batch.start_index + len(batch.frames), info.frame_count)

    detections = detect_faces((frames for _, frames in upright("detecting")), detector,
                              stride=options.stride, recognizer=recognizer,
                              min_face=options.min_face)
    tracks = link_tracks(detections)
    names = {p.name: p for p in people}
    identities = identify_tracks(tracks, {n: p.references for n, p in names.items()},
                                 threshold=options.threshold)
    plan = faces_per_frame(tracks, identities, detections.frame_count, options.stride)
    from cloak.faces.align import paste_back
    from cloak.video.io import VideoWriter

    with VideoWriter(dest, info, crf=options.crf, preset=options.preset) as writer:
        for batch, frames in upright("writing"):
            out = frames.clone()
            for k in range(len(out)):
                for name, person in names.items():
                    mine = [f.matrix for f in plan[batch.start_index + k] if f.person == name]
                    if mine:
                        out[k] = paste_back(out[k], person.mask.delta, torch.stack(mine),
                                            feather=person.mask.feather)
            writer.write(to_stored(out.round().clamp(0, 255), info.rotation), batch.pts)
    result = VideoResult(source, dest, detections.frame_count, time.perf_counter() - start)
    for track, who in zip(tracks, identities, strict=True):
        result.tracks.append({"track": track.id, "person": who.person, "first_frame": track.first,
                              "last_frame": track.last,
                              "scores": {n: round(s, 3) for n, s in who.scores.items()}})
    return result
