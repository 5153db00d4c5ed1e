"""Faces found in a video: MTCNN on every ``stride``-th frame (and the last), embedded for
naming the tracks later; the first stage of :mod:`cloak.video.tracks`.

:func:`detect_faces` (or :class:`StepDetector`, frame by frame, several frames at once in helper
threads) runs MTCNN on every ``stride``-th frame (and on the last frame) and, given a
recognizer, embeds the detected faces (every face, or every face every few steps plus each face
that just appeared: ``embed_every``). Embeddings are personal data (DESIGN section 7): they
stay in memory, in :class:`Observation`, and are never written.

>>> # det, rec = attackers.load("mtcnn"), attackers.load("sface")
>>> # found = detect_faces((b.frames for b in read_frames(path)), det, recognizer=rec)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from cloak.device import module_device

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN, Detection
    from attackers.recognizers.base import Recognizer

__all__ = [
    "DEFAULT_EMBED_EVERY",
    "DEFAULT_FULL_EVERY",
    "DEFAULT_STRIDE",
    "FaceDetections",
    "Observation",
    "StepDetector",
    "box_iou",
    "detect_faces",
]

#: Frames between detections: the largest stride that linked every face of the fast crossing
#: (:mod:`cloak.video.tracks` notes).
DEFAULT_STRIDE = 4
#: Detection steps between embeddings of every face (:class:`StepDetector`).
DEFAULT_EMBED_EVERY = 4
#: Face frames embedded per recognizer call (sface costs about half as much per face in twelves).
_EMBED_BATCH = 12
#: Detection steps between detections with the full pyramid (:class:`StepDetector`): on 720p a
#: full step costs about twice a coarse one (faces over 80 pixels in view), so 4 instead of 2
#: takes a fifth off the detection pass; a face under 80 pixels that appears is found within
#: 16 frames (stride 4) instead of 8, and once found is followed at every step.
DEFAULT_FULL_EVERY = 4
#: Between full detections the pyramid starts at this share of the smallest face of the step
#: before, and never above ``_COARSE_MAX`` times ``min_face`` (:class:`StepDetector`).
_COARSE_SHARE = 0.5
_COARSE_MAX = 4.0


@dataclass(frozen=True)
class Observation:
    """One face found at one detection step.

    Attributes:
        frame: index of the frame in the video (0-based).
        box: (4,) float32 ``x1, y1, x2, y2`` in video-frame pixels.
        landmarks: (5, 2) float32 ``(x, y)`` video-frame pixels, MTCNN order.
        score: detector face probability in [0, 1].
        embedding: (D,) float32 unit-length recognizer features, or None when not embedded.
            Personal data: kept in memory only.
    """

    frame: int
    box: torch.Tensor
    landmarks: torch.Tensor
    score: float
    embedding: torch.Tensor | None = field(default=None, repr=False)


@dataclass(frozen=True)
class FaceDetections:
    """The faces found by :func:`detect_faces`.

    Attributes:
        frame_count: frames in the video.
        stride: frames between detection steps.
        steps: the detected frame indices, increasing (every ``stride``-th and the last).
        faces: per step, its observations (possibly none).
    """

    frame_count: int
    stride: int
    steps: tuple[int, ...]
    faces: tuple[tuple[Observation, ...], ...]


class StepDetector:
    """Detect (and embed) faces frame by frame: the incremental form of :func:`detect_faces`.

    Feed every frame index in order to :meth:`wants`; give the frames it wants (and the last
    frame of the video) to :meth:`add`; :meth:`finish` returns the detections. Frames are not
    kept afterwards.

    Detection steps come in groups of ``full_every``: the first step of a group looks for faces
    down to ``min_face`` pixels; each other step starts the detector's image pyramid at half the
    smallest face found at the step before (at least ``min_face``, at most four times it), so
    when every face in view is large, the costly fine levels of the pyramid, which only find
    small faces, are left out (at 720p with faces over 80 pixels, such a step costs about half
    a full one). A small face that appears just after a group's first step is found at the next
    group, ``full_every * stride`` frames later at most. Groups are independent, so up to
    ``workers`` of them run at once in helper threads (torch releases the GIL; run with
    ``torch.set_num_threads(1)`` so that each takes one core). Results do not depend on
    ``workers``. A step whose pyramid starts above ``min_face`` builds MTCNN's pyramid level
    from level (``chained_pyramid``) instead of each level from the whole frame: a third
    cheaper at 720p, the same faces, landmarks no further from the truth on the video
    benchmark's clip (docs/BENCHMARKS.md "video-speed"). Steps that look for the smallest
    faces keep the exact pyramid (chained, the worst landmark error on 50-pixel faces grew from
    3.7 to 6.3 canonical-frame pixels, the mean from 2.30 to 2.33).

    Embedding is the costly part of a detection step after MTCNN itself (sface costs about a
    third of a 720p MTCNN call per face), and a track is named from the mean of its
    embeddings, so not every detection needs one: with ``embed_every = k``, faces are embedded
    at every k-th detection step, and at the other steps only faces that overlap no face of the
    previous step (IoU below 0.3: a face that just appeared), so every track gets an embedding
    at its first step or within k steps. Faces are embedded twelve at a time.

    Args:
        detector: MTCNN (``attackers.load("mtcnn")``).
        stride: frames between detections, at least 1.
        recognizer: embeds faces for :func:`~cloak.video.tracks.identify_tracks`
            (``attackers.load("sface")``), or None.
        min_face: faces whose box is narrower or shorter than this many pixels are dropped;
            the detector's image pyramid starts at this size (never below the detector's own
            ``min_face_size``), so a larger value is faster.
        embed_every: embed all faces every this many detection steps (see above), at least 1.
        full_every: detection steps per group (see above; 1: every step looks for faces down
            to ``min_face``).
        workers: groups detected at once (0 or 1: in the calling thread).
    """

    def __init__(self, detector: MTCNN, *, stride: int = DEFAULT_STRIDE,
                 recognizer: Recognizer | None = None, min_face: int = 20,
                 embed_every: int = DEFAULT_EMBED_EVERY, full_every: int = DEFAULT_FULL_EVERY,
                 workers: int = 0) -> None:
        if stride < 1:
            raise ValueError(f"stride must be at least 1, got {stride}")
        if embed_every < 1 or full_every < 1:
            raise ValueError(f"embed_every and full_every must be at least 1, got "
                             f"{embed_every}, {full_every}")
        self.detector = detector
        self.stride = stride
        self.recognizer = recognizer
        self.min_face = min_face
        self.embed_every = embed_every
        self.full_every = full_every
        self.workers = workers
        #: per detection step so far, the face size (pixels) the detector's pyramid started at
        self.pyramids: list[float] = []
        self._pool: ThreadPoolExecutor | None = None
        self._running: deque[tuple[list[int], list[torch.Tensor], Future]] = deque()
        self._pending: list[tuple[int, torch.Tensor]] = []
        self._last_added = -1
        self._steps: list[int] = []
        self._found: list[list[Detection]] = []
        self._to_embed: list[tuple[tuple[int, int], torch.Tensor]] = []
        self._embeddings: dict[tuple[int, int], torch.Tensor] = {}
        self._previous = torch.zeros(0, 4)

    def wants(self, index: int) -> bool:
        """Whether frame ``index`` is a detection step (the last frame always is: see add)."""
        return index % self.stride == 0

    def add(self, index: int, image: torch.Tensor) -> None:
        """Detect faces in frame ``index`` (indices must increase).

        Args:
            index: the frame's index in the video.
            image: (3, H, W) float32 RGB in [0, 255], upright.
        """
        if index <= self._last_added:
            raise ValueError(f"frame {index} given after frame {self._last_added}")
        self._last_added = index
        self._pending.append((index, image))
        if len(self._pending) >= self.full_every:
            self._submit()

    def finish(self, frame_count: int) -> FaceDetections:
        """The detections of a video of ``frame_count`` frames, all frames added.

        Raises:
            ValueError: no frame, or the last frame was not added.
        """
        self._submit()
        self._collect(0)
        self.close()
        if frame_count < 1:
            raise ValueError("no frames to detect faces in")
        if not self._steps or self._steps[-1] != frame_count - 1:
            raise ValueError(f"the last frame ({frame_count - 1}) was not given to the detector")
        self._embed()
        faces = tuple(tuple(Observation(index, d.box, d.landmarks, d.score,
                                        self._embeddings.get((step, k)))
                            for k, d in enumerate(found))
                      for step, (index, found) in enumerate(zip(self._steps, self._found,
                                                                strict=True)))
        return FaceDetections(frame_count, self.stride, tuple(self._steps), faces)

    def close(self) -> None:
        """Stop the helper threads (batches not yet finished are dropped)."""
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None
        self._running.clear()

    def _detect(self, images: list[torch.Tensor]) -> list[tuple[list[Detection], float]]:
        """Detect a group of consecutive steps: the first fully, the others coarser.

        Returns:
            per step, its detections and the face size the pyramid started at.
        """
        finest = max(float(self.min_face), self.detector.min_face_size)
        found: list[tuple[list[Detection], float]] = []
        with torch.no_grad():
            for image in images:
                pyramid = finest
                if found and found[-1][0]:
                    smallest = min(float(min(d.box[2] - d.box[0], d.box[3] - d.box[1]))
                                   for d in found[-1][0])
                    pyramid = min(max(finest, _COARSE_SHARE * smallest), _COARSE_MAX * finest)
                detections = self.detector.detect([image], min_face_size=pyramid,
                                                  chained_pyramid=pyramid > finest)[0]
                found.append(([_on_cpu(d) for d in detections], pyramid))
        return found

    def _submit(self) -> None:
        """Start detecting the pending frames; keep at most ``workers`` batches running."""
        if not self._pending:
            return
        indices = [i for i, _ in self._pending]
        images = [img for _, img in self._pending]
        self._pending = []
        future: Future = Future()
        if self.workers > 1:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cloak-detect")
            future = self._pool.submit(self._detect, images)
        else:
            future.set_result(self._detect(images))
        self._running.append((indices, images, future))
        self._collect(max(self.workers, 1))

    def _collect(self, keep: int) -> None:
        """Finish the oldest batches, in order, until at most ``keep`` are running."""
        while len(self._running) > keep:
            indices, images, future = self._running.popleft()
            for index, image, (detections, pyramid) in zip(indices, images, future.result(),
                                                           strict=True):
                self.pyramids.append(pyramid)
                self._record(index, image, detections)

    def _record(self, index: int, image: torch.Tensor, detections: list[Detection]) -> None:
        """Keep the step's faces; queue those the policy embeds (see the class notes)."""
        from cloak.faces.align import similarity_to_frame, to_frame

        kept = [d for d in detections
                if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= self.min_face]
        boxes = torch.stack([d.box for d in kept]) if kept else torch.zeros(0, 4)
        step = len(self._steps)
        if self.recognizer is not None and kept:
            if step % self.embed_every == 0 or not len(self._previous):
                chosen = list(range(len(kept)))
            else:
                overlap = box_iou(boxes, self._previous).max(1).values
                chosen = [k for k in range(len(kept)) if overlap[k] < 0.3]
            if chosen:
                marks = torch.stack([kept[k].landmarks for k in chosen])
                with torch.no_grad():
                    frames = to_frame(image, similarity_to_frame(marks)).clamp(0, 255)
                self._to_embed += [((step, k), f) for k, f in zip(chosen, frames, strict=True)]
                if len(self._to_embed) >= _EMBED_BATCH:
                    self._embed()
        self._steps.append(index)
        self._found.append(kept)
        self._previous = boxes

    def _embed(self) -> None:
        """Embed the queued face frames in one recognizer call (cheaper per face)."""
        if not self._to_embed or self.recognizer is None:
            return
        frames = torch.stack([f for _, f in self._to_embed])
        with torch.no_grad():
            features = self.recognizer.embed(frames.to(module_device(self.recognizer))).cpu()
        for (key, _), feature in zip(self._to_embed, features, strict=True):
            self._embeddings[key] = feature
        self._to_embed = []


def _on_cpu(detection: Detection) -> Detection:
    """The detection with its box and landmarks on the CPU (tracks are linked there)."""
    from attackers.detectors.mtcnn import Detection

    return Detection(detection.box.cpu(), detection.score, detection.landmarks.cpu())


def detect_faces(batches: Iterable[torch.Tensor], detector: MTCNN, *,
                 stride: int = DEFAULT_STRIDE, recognizer: Recognizer | None = None,
                 min_face: int = 20, embed_every: int = 1) -> FaceDetections:
    """Detect (and embed) the faces of every ``stride``-th frame and of the last frame.

    Frames are consumed batch by batch and not kept, so a long video needs the memory of one
    batch. :class:`StepDetector` does the same frame by frame.

    Args:
        batches: consecutive frames from the first, each batch (N, 3, H, W) float32 RGB in
            [0, 255], upright (:func:`cloak.video.reading.to_display`).
        detector: MTCNN (``attackers.load("mtcnn")``).
        stride: frames between detections, at least 1.
        recognizer: embeds each face for :func:`~cloak.video.tracks.identify_tracks`
            (``attackers.load("sface")``), or None.
        min_face: faces whose box is narrower or shorter than this many pixels are dropped.
        embed_every: see :class:`StepDetector` (1: every detected face is embedded).

    Returns:
        the :class:`FaceDetections`.

    Raises:
        ValueError: stride below 1, or no frame at all.
    """
    steps = StepDetector(detector, stride=stride, recognizer=recognizer, min_face=min_face,
                         embed_every=embed_every, full_every=1)
    count = 0
    last: torch.Tensor | None = None
    for batch in batches:
        for k in range(batch.shape[0]):
            if steps.wants(count + k):
                steps.add(count + k, batch[k])
        count += batch.shape[0]
        if batch.shape[0]:
            last = batch[-1].clone()  # not a view: the batch itself can go
    if last is None:
        raise ValueError("no frames to detect faces in")
    if not steps.wants(count - 1):
        steps.add(count - 1, last)
    return steps.finish(count)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Args:
        a: (M, 4) ``x1, y1, x2, y2``.
        b: (K, 4).

    Returns:
        (M, K) in [0, 1].
    """
    lo = torch.maximum(a[:, None, :2], b[None, :, :2])
    hi = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    union = area_a[:, None] + area_b[None] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(union))
