"""Protect the known people of a video: each one's mask on every frame of their face track.

Two passes over each video (decoding is cheap next to detection):

1. :func:`analyse_video`: detect faces on every ``stride``-th frame (MTCNN) and embed them
   (sface), link the detections into tracks, and name each track ONCE after the enrolled person
   its embeddings resemble most (:mod:`cloak.video.tracks`), so a person's mask never jumps to
   someone else mid-track; only the frames that are detected are converted to RGB;
2. :func:`render_video`: decode again and paste each named track's mask through the track's
   smoothed alignment (:func:`cloak.faces.align.paste_back`, bilinear and feathered, as for
   photos); faces of unknown people stay untouched; frames, timestamps, rotation and audio are
   kept (:class:`cloak.video.writing.VideoWriter`). 8-bit 4:2:0 frames (most H.264) stay in
   YUV: only the windows the masks cover go to RGB and back (:mod:`cloak.video.colour`), so
   the rest of each frame reaches the encoder exactly as decoded.

Speed: frames stay 8-bit; only the frames detected are converted for the detector; the mask is
pasted in float only on the window its canonical frames cover, with rotation folded into the
alignment, so frames are never turned (:mod:`cloak.video.paste`); MTCNN runs on several frames
at once in helper threads and three detection steps of four skip the pyramid's fine levels
when all faces in view are large, and build it level from level
(:class:`~cloak.video.detection.StepDetector`); faces are embedded
every fourth step, twelve at a time; decoding runs ahead in a helper thread and encoding catches
up in another (:mod:`cloak.video.overlap`); x264 runs its ``veryfast`` preset at CRF 16 (as good
as ``medium`` at CRF 18, :mod:`cloak.video.writing`). On a 1280x720, 25 fps clip of two enrolled
people and a stranger (evaluation/video_clips.py) this takes 58 CPU ms per frame (analysis 31,
render 27), 16.6 frames per second on a shared 2-core CPU, every mask on the right face
(docs/BENCHMARKS.md, "video-speed").

A person is enrolled with their mask (a ``.cloak`` file) and reference features computed from a
few of their photos; the features stay in memory (shared/DESIGN.md section 7).

>>> # person = enroll_person(load_mask("alice.cloak"), photos, detector, sface)
>>> # result = protect_video(Path("in.mp4"), Path("out/in.mp4"), [person], detector, sface)
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cloak.device import module_device
from cloak.identity import CLUSTER_THRESHOLD, cluster_faces, main_identity
from cloak.video.container import VideoInfo, probe
from cloak.video.detection import (
    DEFAULT_EMBED_EVERY,
    DEFAULT_FULL_EVERY,
    DEFAULT_STRIDE,
    FaceDetections,
    StepDetector,
)
from cloak.video.overlap import Background, prefetch
from cloak.video.paste import display_matrix, paste_faces
from cloak.video.reading import DecodedFrame, iter_frames
from cloak.video.tracks import (
    FaceInFrame,
    Track,
    TrackIdentity,
    faces_per_frame,
    identify_tracks,
    link_tracks,
)
from cloak.video.writing import DEFAULT_CRF, DEFAULT_PRESET

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.mask import Mask

__all__ = [
    "EnrolledPerson",
    "VideoAnalysis",
    "VideoOptions",
    "VideoResult",
    "analyse_video",
    "enroll_person",
    "protect_video",
    "render_video",
    "track_summaries",
    "upright",
]

#: Called with (stage, frames done, frames in all) while a video is processed.
Progress = Callable[[str, int, int], None]
#: Frames decoded ahead of the main thread, and frames queued for the encoder.
_QUEUE_DEPTH = 6


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
        min_face: faces smaller than this many pixels are ignored (and not looked for: the
            detector's pyramid starts at this size, so a larger value is faster).
        embed_every: detection steps between embeddings of every face
            (:class:`~cloak.video.detection.StepDetector`).
        full_every: detection steps between detections that look for faces down to
            ``min_face``; in between, the detector looks for faces from half the smallest face
            in view (:class:`~cloak.video.detection.StepDetector`).
        crf, preset: x264 quality (:data:`~cloak.video.writing.DEFAULT_CRF` = visually lossless at
            the default preset) and speed preset.
        threads: threads per video: MTCNN runs on this many batches of frames at once, and
            FFmpeg and x264 get this many threads; 0 = as many as there are cores. Each detector
            call uses torch's own thread count: set ``torch.set_num_threads(1)`` (as ``cloak
            video`` does) so that the threads share the cores instead of fighting over them.
            Outputs are bit-identical between runs with the same thread counts (x264 encodes
            differently with a different number of threads).
        device: the torch device of the models that :mod:`cloak.video.engine` loads (MTCNN,
            sface); the masks are pasted on the detector's device.
    """

    stride: int = DEFAULT_STRIDE
    threshold: float = CLUSTER_THRESHOLD
    min_face: int = 20
    embed_every: int = DEFAULT_EMBED_EVERY
    full_every: int = DEFAULT_FULL_EVERY
    crf: int = DEFAULT_CRF
    preset: str = DEFAULT_PRESET
    threads: int = 0
    device: str = "cpu"


@dataclass(frozen=True)
class VideoAnalysis:
    """What the first pass found in a video (in memory; embeddings are personal data).

    Attributes:
        info: the video's :func:`~cloak.video.container.probe`.
        detections: faces per detection step.
        tracks: the linked face tracks.
        identities: who each track is (one per track, same order).
        plan: per frame, the faces to mask there, in display coordinates
            (:func:`~cloak.video.tracks.faces_per_frame`).
        seconds: wall time of the pass.
    """

    info: VideoInfo
    detections: FaceDetections
    tracks: list[Track]
    identities: list[TrackIdentity]
    plan: list[list[FaceInFrame]]
    seconds: float

    def track_frames(self) -> dict[int, tuple[int, int]]:
        """Per track id, the first and last frame at which it is in :attr:`plan`."""
        spans: dict[int, tuple[int, int]] = {}
        for index, faces in enumerate(self.plan):
            for face in faces:
                first, _ = spans.get(face.track_id, (index, index))
                spans[face.track_id] = (first, index)
        return spans


@dataclass
class VideoResult:
    """What happened to one video (JSON-ready through :meth:`to_json`; no face data).

    ``masked_pixels`` is :func:`render_video`'s digest of the pixels the masks changed.
    """

    path: Path
    output: Path
    frames: int = 0
    seconds: float = 0.0
    tracks: list[dict[str, Any]] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    masked_pixels: str = ""

    def to_json(self) -> dict[str, Any]:
        fps = self.frames / self.seconds if self.seconds > 0 else None
        return {"input": str(self.path), "output": str(self.output), "frames": self.frames,
                "seconds": round(self.seconds, 3),
                "frames_per_second": None if fps is None else round(fps, 2),
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "masked_pixels": self.masked_pixels, "tracks": self.tracks}


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
        features = recognizer.embed(torch.stack(frames).to(module_device(recognizer))).cpu()
    labels = cluster_faces(features).tolist()
    owners, sizes, start = [], [], 0
    for faces in per_photo:
        owners.append(labels[start:start + len(faces)])
        sizes.append([float(f.detection.box[2] - f.detection.box[0]) for f in faces])
        start += len(faces)
    person, _ = main_identity(owners, sizes)
    chosen = torch.tensor([label == person for label in labels])
    return EnrolledPerson(mask.person, mask, features[chosen])


def upright(frame: DecodedFrame, rotation: int) -> torch.Tensor:
    """The decoded frame turned upright for the detector.

    Args:
        frame: a decoded frame with its (H, W, 3) uint8 RGB ``image`` as stored.
        rotation: :attr:`VideoInfo.rotation` (0, 90, 180, 270 degrees clockwise).

    Returns:
        (3, H', W') float32 contiguous RGB in [0, 255], display orientation.
    """
    image = frame.image if rotation == 0 else np.rot90(frame.image, -rotation // 90, (0, 1))
    pixels = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    return pixels.to(torch.float32, memory_format=torch.contiguous_format)


def analyse_video(source: Path, people: Sequence[EnrolledPerson], detector: MTCNN,
                  recognizer: Recognizer | None, options: VideoOptions | None = None,
                  progress: Progress | None = None, info: VideoInfo | None = None
                  ) -> VideoAnalysis:
    """The first pass: faces, tracks, who each track is, and the faces to mask in each frame.

    Args:
        source: the input video.
        people: the enrolled people (distinct names); may be empty (tracks only).
        detector: MTCNN.
        recognizer: sface, or None to skip embeddings (every track is then unknown).
        options: :class:`VideoOptions` (default settings when None).
        progress: called with ("detecting", frames done, frames in all).
        info: the video's :func:`~cloak.video.container.probe`, if already known.

    Raises:
        cloak.video.container.VideoError: the video cannot be decoded.
    """
    options = options or VideoOptions()
    start = time.perf_counter()
    info = info or probe(source)
    say = progress or (lambda *_: None)
    steps = StepDetector(detector, stride=options.stride,
                         recognizer=recognizer if people else None,
                         min_face=options.min_face, embed_every=options.embed_every,
                         full_every=options.full_every,
                         workers=options.threads or os.cpu_count() or 1)
    count = 0
    decoded = prefetch(iter_frames(source, select=steps.wants, threads=options.threads),
                       _QUEUE_DEPTH)
    with closing(decoded):
        try:
            for frame in decoded:
                count = frame.index + 1
                if frame.image is not None:
                    steps.add(frame.index, upright(frame, info.rotation))
                if count % 25 == 0 or frame.last:
                    say("detecting", count, info.frame_count)
            detections = steps.finish(count)
        finally:
            steps.close()
    tracks = link_tracks(detections)
    identities = identify_tracks(tracks, {p.name: p.references for p in people},
                                 threshold=options.threshold)
    plan = faces_per_frame(tracks, identities, detections.frame_count, options.stride)
    return VideoAnalysis(info, detections, tracks, identities, plan,
                         time.perf_counter() - start)


def render_video(analysis: VideoAnalysis, dest: Path, masks: dict[str, Mask],
                 options: VideoOptions | None = None, progress: Progress | None = None) -> str:
    """The second pass: write ``dest`` with each named track's mask on its faces.

    Returns a digest of the pixels the masks changed (each frame's index, windows and their
    8-bit RGB contents after pasting; every other pixel is the decoder's): runs that give the same
    digest handed the encoder the same frames. The file itself may differ in a few bits between
    runs: this build of x264 is not bit-reproducible even on one thread (1-3 different streams
    in 8 encodes of the same frames in one process, each decoding to frames that differ by a
    level here and there).

    Args:
        analysis: from :func:`analyse_video` of the source.
        dest: the output file (suffix .mp4, .m4v, .mov or .mkv); written atomically.
        masks: person name -> mask; faces of other people and unknown faces stay untouched.
        options: :class:`VideoOptions` (default settings when None).
        progress: called with ("writing", frames done, frames in all).

    Returns:
        the digest (32 hex digits, BLAKE2b).

    Raises:
        cloak.video.container.VideoError: the video cannot be decoded or the output written.
    """
    import hashlib

    from cloak.video.writing import VideoWriter

    options = options or VideoOptions()
    info = analysis.info
    say = progress or (lambda *_: None)
    turn = display_matrix(info.rotation, info.width, info.height)
    digest = hashlib.blake2b(digest_size=16)
    decoded = prefetch(iter_frames(info.path, threads=options.threads, keep_yuv420p=True),
                       _QUEUE_DEPTH)
    with closing(decoded), VideoWriter(dest, info, crf=options.crf, preset=options.preset,
                                       threads=options.threads) as writer:
        def encode(image: np.ndarray, pts: int, planar: bool) -> None:
            (writer.write_planes if planar else writer.write_images)([image], [pts])

        with Background(encode, _QUEUE_DEPTH) as encoder:
            for frame in decoded:
                faces = [f for f in analysis.plan[frame.index] if f.person in masks]
                color = info.color if frame.planar else None
                for box, pixels in paste_faces(frame.image, faces, masks, turn, color):
                    digest.update(np.array([frame.index, *box]).tobytes())
                    digest.update(pixels.tobytes())
                encoder.put(frame.image, frame.pts, frame.planar)
                if (frame.index + 1) % 25 == 0 or frame.last:
                    say("writing", frame.index + 1, info.frame_count)
    return digest.hexdigest()


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
        the :class:`VideoResult`, with per track: id, person (or None), first and last
        detection, the frames it covers (``frames``: first and last; the mask is on every frame
        in between when the person is known), similarity scores.

    Raises:
        cloak.video.container.VideoError: the video cannot be decoded or the output written.
    """
    start = time.perf_counter()
    analysis = analyse_video(source, people, detector, recognizer, options, progress)
    middle = time.perf_counter()
    device = module_device(detector)  # the masks are pasted where the models run
    masks = {p.name: dataclasses.replace(p.mask, delta=p.mask.delta.to(device)) for p in people}
    digest = render_video(analysis, dest, masks, options, progress)
    end = time.perf_counter()
    result = VideoResult(source, dest, analysis.detections.frame_count, end - start,
                         stage_seconds={"analyse": middle - start, "render": end - middle},
                         masked_pixels=digest)
    result.tracks = track_summaries(analysis)
    return result


def track_summaries(analysis: VideoAnalysis) -> list[dict[str, Any]]:
    """JSON-ready per-track records (no face data).

    Each: ``track`` id, ``person`` (or None), ``first_frame`` / ``last_frame`` detected,
    ``frames`` [first, last] covered (masked when the person is known), ``detections``,
    ``face_size`` (median box width, pixels), ``first_centre`` (x, y of the first box, display
    pixels), ``scores`` (similarity to each enrolled person).
    """
    spans = analysis.track_frames()
    records = []
    for track, who in zip(analysis.tracks, analysis.identities, strict=True):
        boxes = torch.stack([o.box for o in track.observations])
        centre = (boxes[0, :2] + boxes[0, 2:]) / 2
        records.append({"track": track.id, "person": who.person, "first_frame": track.first,
                        "last_frame": track.last, "frames": list(spans[track.id]),
                        "detections": len(track.observations),
                        "face_size": round(float((boxes[:, 2] - boxes[:, 0]).median()), 1),
                        "first_centre": [round(float(v), 1) for v in centre],
                        "scores": {n: round(s, 3) for n, s in who.scores.items()}})
    return records
