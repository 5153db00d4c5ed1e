"""Face tracks through a video: detect on a stride, link, interpolate, smooth, name.

The pipeline is offline: a first pass over the decoded frames detects faces, then tracks are
built with look-ahead, then a second pass applies masks with :func:`faces_per_frame`.

1. :func:`detect_faces` (or :class:`StepDetector`, frame by frame, several frames at once in
   helper threads) runs MTCNN on every ``stride``-th frame (and on the last frame) and, given a
   recognizer, embeds the detected faces (every face, or every face every few steps plus each
   face that just appeared: ``embed_every``). Embeddings are personal data (DESIGN section 7):
   they stay in memory, in :class:`Observation`, and are never written.
2. :func:`link_tracks` links the detections of consecutive detection steps into :class:`Track`
   objects. Each live track predicts its box at the new step by constant velocity from its last
   two detections; the cost of giving detection ``j`` to track ``i`` is ``1 - IoU`` when the
   predicted box and the detection overlap by at least ``min_iou``, else ``1 + d`` when their
   centres are ``d`` box widths apart with ``d <= max_shift`` (so any overlapping pair beats any
   merely nearby one), else forbidden; the pairing of least total cost is solved exactly
   (``scipy.optimize.linear_sum_assignment``). An unpaired detection starts a new track; a
   track left unpaired for more than ``max_missed`` consecutive steps ends.
3. :func:`track_landmarks` turns a track's sparse detections into landmarks for every frame:
   linear interpolation between detections, continued at the end velocities for up to
   ``stride - 1`` frames before the first and after the last detection (frames where the face
   may already or still be visible without having been detected), then each of the 5
   landmarks smoothed over the frames by local quadratic regression with Gaussian weights of
   ``sigma`` frames (which leaves motion at constant acceleration untouched, so smoothing adds
   no lag, even at the track's ends, and removes the velocity kinks of the interpolation).
4. :func:`identify_tracks` names each track once, from all its embeddings: the enrolled person
   with the highest mean cosine similarity between the track's embeddings and the person's
   reference features (average linkage, as :func:`cloak.identity.cluster_faces` groups faces),
   if it reaches the threshold; else unknown. Never frame by frame.
5. :func:`faces_per_frame` lists, for each frame, the faces to mask: track, person and the
   video-frame-to-canonical-frame matrix from the smoothed landmarks.

Measured on 9 synthetic 1280x720 clips of real LFW faces (:mod:`evaluation.video_clips`,
H.264 CRF 18): two people crossing plus a stranger (faces 110-180 pixels wide, peak speed 26
pixels per frame, or 52 in a fast variant) and a talking head (faces about 300 pixels). Mean
landmark error against the ground truth / jitter (frame-to-frame motion the true motion does
not explain), in pixels, normal crossing | fast crossing:

=======  ===========================  ===========================
stride   sigma 0 (no smoothing)       sigma 2 (default)
=======  ===========================  ===========================
1        2.32 / 2.07 | 2.36 / 2.38    1.88 / 0.47 | 1.94 / 0.63
2        2.19 / 1.26 | 2.45 / 2.16    1.99 / 0.52 | 2.23 / 0.69
4        2.59 / 1.11 | 4.98 / 3.48    2.48 / 0.52 | 4.73 / 1.43
8        5.28 / 1.74 | links fail     5.17 / 1.26 | links fail
=======  ===========================  ===========================

Every face kept one track of its own up to stride 4 at both speeds; at stride 6 and 8 the
fast crossing breaks into fragments and swaps (normal speed still links at stride 8).

>>> # det, rec = attackers.load("mtcnn"), attackers.load("sface")
>>> # found = detect_faces((b.frames for b in read_frames(path)), det, recognizer=rec)
>>> # tracks = link_tracks(found)
>>> # names = identify_tracks(tracks, {"alice": alice_features})
>>> # masks_for = faces_per_frame(tracks, names, found.frame_count, found.stride)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from cloak.identity import CLUSTER_THRESHOLD

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN, Detection
    from attackers.recognizers.base import Recognizer

__all__ = [
    "DEFAULT_EMBED_EVERY",
    "DEFAULT_FULL_EVERY",
    "DEFAULT_SIGMA",
    "DEFAULT_STRIDE",
    "FaceDetections",
    "FaceInFrame",
    "Observation",
    "StepDetector",
    "Track",
    "TrackIdentity",
    "box_iou",
    "detect_faces",
    "faces_per_frame",
    "identify_tracks",
    "link_tracks",
    "smooth_landmarks",
    "track_landmarks",
]

#: Frames between detections: the largest stride that linked every face of the fast crossing
#: (module notes).
DEFAULT_STRIDE = 4
#: Standard deviation in frames of the Gaussian weights of landmark smoothing: 3 and 4 smooth
#: slow motion more but lag behind the fast crossing's acceleration (module notes).
DEFAULT_SIGMA = 2.0
#: Detection steps between embeddings of every face (:class:`StepDetector`).
DEFAULT_EMBED_EVERY = 4
#: Face frames embedded per recognizer call (sface: 45 ms a face alone, 26 in twelves).
_EMBED_BATCH = 12
#: Detection steps between detections with the full pyramid (:class:`StepDetector`).
DEFAULT_FULL_EVERY = 2
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


@dataclass
class Track:
    """One face followed through consecutive detection steps.

    Attributes:
        id: number of the track, 0-based, in order of first appearance.
        observations: its detections, by increasing frame.
    """

    id: int
    observations: list[Observation]

    @property
    def first(self) -> int:
        """Frame of the first detection."""
        return self.observations[0].frame

    @property
    def last(self) -> int:
        """Frame of the last detection."""
        return self.observations[-1].frame

    def predict_box(self, frame: int) -> torch.Tensor:
        """(4,) box expected at ``frame``: constant velocity from the last two detections."""
        last = self.observations[-1]
        if len(self.observations) == 1:
            return last.box
        prev = self.observations[-2]
        velocity = (last.box - prev.box) / (last.frame - prev.frame)
        return last.box + velocity * (frame - last.frame)


@dataclass(frozen=True)
class TrackIdentity:
    """Who a track is, decided once over the whole track.

    Attributes:
        track_id: the :attr:`Track.id`.
        person: the enrolled person's name, or None (unknown: below the threshold for every
            person, or no embedding).
        scores: per enrolled person, the mean cosine similarity between the track's embeddings
            and the person's reference features, in [-1, 1].
        embedded: how many of the track's detections had an embedding.
    """

    track_id: int
    person: str | None
    scores: dict[str, float]
    embedded: int


@dataclass(frozen=True)
class FaceInFrame:
    """A face to mask in one frame.

    Attributes:
        track_id: the :attr:`Track.id`.
        person: the track's enrolled person, or None.
        matrix: (2, 3) float32 similarity taking video-frame pixels to canonical-frame pixels
            (:func:`cloak.faces.align.similarity_to_frame` of ``landmarks``).
        landmarks: (5, 2) float32 smoothed landmarks in video-frame pixels.
    """

    track_id: int
    person: str | None
    matrix: torch.Tensor
    landmarks: torch.Tensor


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
    ``workers``.

    Embedding is the costly part of a detection step after MTCNN itself (sface costs about a
    third of a 720p MTCNN call per face), and a track is named from the mean of its
    embeddings, so not every detection needs one: with ``embed_every = k``, faces are embedded
    at every k-th detection step, and at the other steps only faces that overlap no face of the
    previous step (IoU below 0.3: a face that just appeared), so every track gets an embedding
    at its first step or within k steps. Faces are embedded twelve at a time.

    Args:
        detector: MTCNN (``attackers.load("mtcnn")``).
        stride: frames between detections, at least 1.
        recognizer: embeds faces for :func:`identify_tracks` (``attackers.load("sface")``), or
            None.
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
                found.append((self.detector.detect([image], min_face_size=pyramid)[0], pyramid))
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
        with torch.no_grad():
            features = self.recognizer.embed(torch.stack([f for _, f in self._to_embed]))
        for (key, _), feature in zip(self._to_embed, features, strict=True):
            self._embeddings[key] = feature
        self._to_embed = []


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
        recognizer: embeds each face for :func:`identify_tracks` (``attackers.load("sface")``),
            or None.
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


def link_tracks(detections: FaceDetections, *, min_iou: float = 0.3, max_shift: float = 1.0,
                max_missed: int = 2) -> list[Track]:
    """Link detections of consecutive steps into tracks (see the module notes for the cost).

    Args:
        detections: from :func:`detect_faces`.
        min_iou: least overlap of a track's predicted box and a detection to pair by overlap.
        max_shift: otherwise, largest distance between their centres, in widths of the
            predicted box, to pair by distance.
        max_missed: a track ends when left unpaired for more than this many consecutive steps.

    Returns:
        the tracks, by first appearance (ties: by detection score).
    """
    from scipy.optimize import linear_sum_assignment

    tracks: list[Track] = []
    live: list[tuple[Track, int]] = []  # (track, consecutive missed steps)
    for frame, found in zip(detections.steps, detections.faces, strict=True):
        paired: dict[int, int] = {}
        if live and found:
            cost = _pair_cost(torch.stack([t.predict_box(frame) for t, _ in live]),
                              torch.stack([o.box for o in found]), min_iou, max_shift)
            rows, cols = linear_sum_assignment(cost.nan_to_num(1e6).numpy())
            paired = {int(c): int(r) for r, c in zip(rows, cols, strict=True)
                      if not cost[r, c].isnan()}
        kept: list[tuple[Track, int]] = []
        for i, (track, missed) in enumerate(live):
            if i in paired.values():
                kept.append((track, 0))
            elif missed < max_missed:
                kept.append((track, missed + 1))
        for j, obs in enumerate(found):
            if j in paired:
                live[paired[j]][0].observations.append(obs)
            else:
                track = Track(len(tracks), [obs])
                tracks.append(track)
                kept.append((track, 0))
        live = kept
    return tracks


def smooth_landmarks(landmarks: torch.Tensor, sigma: float) -> torch.Tensor:
    """Smooth a landmark sequence of consecutive frames by local quadratic regression.

    Each frame's landmarks are replaced by the value at that frame of the least-squares parabola
    through the sequence with Gaussian weights ``exp(-(dt / sigma)^2 / 2)`` (``dt`` in frames,
    cut at ``4 sigma``): a Savitzky-Golay filter with Gaussian weights. Motion at constant
    acceleration passes unchanged, also at the ends of the sequence, so smoothing adds no lag.
    Cost and memory are linear in the length (one 1-D convolution per power of ``dt``).

    Args:
        landmarks: (F, 5, 2) landmarks of F consecutive frames.
        sigma: standard deviation of the weights in frames; 0 returns the input.

    Returns:
        (F, 5, 2) smoothed landmarks, dtype of ``landmarks``.
    """
    import math

    import torch.nn.functional as F

    if sigma < 0:
        raise ValueError(f"sigma must be >= 0 frames, got {sigma}")
    count = landmarks.shape[0]
    if sigma == 0 or count <= 2:
        return landmarks.clone()
    radius = math.ceil(4 * sigma)
    u = torch.arange(-radius, radius + 1, dtype=torch.float64) / sigma
    kernels = torch.stack([torch.exp(-0.5 * u * u) * u ** p for p in range(5)])[:, None]
    ones = torch.ones(1, 1, count, dtype=torch.float64)
    # moments[p][i] = sum_j w(dt_ij) dt_ij^p, with dt_ij = (j - i) / sigma over frames j that exist
    moments = F.conv1d(F.pad(ones, (radius, radius)), kernels)[0]              # (5, F)
    series = landmarks.double().reshape(count, -1).T[:, None]                 # (10, 1, F)
    rhs = F.conv1d(F.pad(series, (radius, radius)), kernels[:3])              # (10, 3, F)
    index = torch.arange(3)
    normal = moments[index[:, None] + index[None, :]].permute(2, 0, 1)        # (F, 3, 3)
    # a tiny ridge on slope and curvature keeps a 1- or 2-frame window solvable
    normal = normal + torch.diag(torch.tensor([0.0, 1e-9, 1e-9], dtype=torch.float64))
    fitted = torch.linalg.solve(normal, rhs.permute(2, 1, 0))[:, 0]          # (F, 10)
    return fitted.reshape(landmarks.shape).to(landmarks.dtype)


def track_landmarks(track: Track, frame_count: int, stride: int, *,
                    sigma: float = DEFAULT_SIGMA) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmarks of a track at every frame it covers (see the module notes).

    The detections' landmarks are interpolated linearly to every frame from ``stride - 1``
    frames before the first detection to ``stride - 1`` frames after the last (continuing the
    first and last segments' velocity there; a lone detection is held), then smoothed by
    :func:`smooth_landmarks`.

    Args:
        track: a track from :func:`link_tracks`.
        frame_count: frames in the video (the covered range is clipped to it).
        stride: the detection stride.
        sigma: smoothing, :func:`smooth_landmarks`.

    Returns:
        frames (F,) int64, consecutive, and landmarks (F, 5, 2) float32 in video-frame pixels.
    """
    times = torch.tensor([o.frame for o in track.observations], dtype=torch.float64)
    samples = torch.stack([o.landmarks for o in track.observations]).double()
    start = max(0, track.first - (stride - 1))
    stop = min(frame_count - 1, track.last + (stride - 1))
    frames = torch.arange(start, stop + 1, dtype=torch.int64)
    if samples.shape[0] == 1:
        dense = samples.expand(frames.numel(), -1, -1)
    else:
        t = frames.double()
        right = torch.searchsorted(times, t, right=True).clamp(1, times.numel() - 1)
        left = right - 1
        weight = ((t - times[left]) / (times[right] - times[left]))[:, None, None]
        dense = samples[left] + weight * (samples[right] - samples[left])  # extrapolates at ends
    return frames, smooth_landmarks(dense, sigma).float()


def identify_tracks(tracks: Sequence[Track], enrolled: Mapping[str, torch.Tensor], *,
                    threshold: float = CLUSTER_THRESHOLD) -> list[TrackIdentity]:
    """Name each track after the enrolled person it resembles most over all its detections.

    A track's score for a person is the mean cosine similarity over every pair of one of the
    track's embeddings and one of the person's reference features (average linkage, the
    measure :func:`cloak.identity.cluster_faces` thresholds). The track goes to the person
    with the highest score if it reaches ``threshold``; otherwise it stays unknown.

    Args:
        tracks: from :func:`link_tracks`, detected with a recognizer.
        enrolled: person name -> (R, D) unit-length reference features of the same recognizer,
            from other photos of the person. Personal data: keep in memory.
        threshold: least mean cosine similarity (:data:`cloak.identity.CLUSTER_THRESHOLD` for
            sface).

    Returns:
        one :class:`TrackIdentity` per track, in order.
    """
    names = list(enrolled)
    centres = [enrolled[n].float().mean(0) for n in names]
    result = []
    for track in tracks:
        found = [o.embedding for o in track.observations if o.embedding is not None]
        if not found or not names:
            result.append(TrackIdentity(track.id, None, {}, len(found)))
            continue
        mean = torch.stack(found).float().mean(0)
        scores = {n: float(mean @ c) for n, c in zip(names, centres, strict=True)}
        best = max(names, key=lambda n: scores[n])
        person = best if scores[best] >= threshold else None
        result.append(TrackIdentity(track.id, person, scores, len(found)))
    return result


def faces_per_frame(tracks: Sequence[Track], identities: Sequence[TrackIdentity],
                    frame_count: int, stride: int, *, sigma: float = DEFAULT_SIGMA
                    ) -> list[list[FaceInFrame]]:
    """For every frame, the faces to mask there, from :func:`track_landmarks`.

    Args:
        tracks: from :func:`link_tracks`.
        identities: from :func:`identify_tracks`, one per track in the same order.
        frame_count: frames in the video.
        stride: the detection stride (tracks are continued ``stride - 1`` frames at each end).
        sigma: smoothing, :func:`smooth_landmarks`.

    Returns:
        per frame index, its faces in track order (possibly none).
    """
    from cloak.faces.align import similarity_to_frame

    if len(identities) != len(tracks):
        raise ValueError(f"{len(identities)} identities for {len(tracks)} tracks")
    result: list[list[FaceInFrame]] = [[] for _ in range(frame_count)]
    for track, who in zip(tracks, identities, strict=True):
        if who.track_id != track.id:
            raise ValueError(f"identity of track {who.track_id} given for track {track.id}")
        frames, landmarks = track_landmarks(track, frame_count, stride, sigma=sigma)
        matrices = similarity_to_frame(landmarks)
        for f, m, p in zip(frames.tolist(), matrices, landmarks, strict=True):
            result[f].append(FaceInFrame(track.id, who.person, m, p))
    return result


def _pair_cost(predicted: torch.Tensor, boxes: torch.Tensor, min_iou: float,
               max_shift: float) -> torch.Tensor:
    """(T, D) float64 pairing costs, NaN where forbidden (see :func:`link_tracks`)."""
    predicted, boxes = predicted.double(), boxes.double()
    iou = box_iou(predicted, boxes)
    centres_p = (predicted[:, :2] + predicted[:, 2:]) / 2
    centres_b = (boxes[:, :2] + boxes[:, 2:]) / 2
    width = (predicted[:, 2] - predicted[:, 0]).clamp(min=1.0)
    shift = (centres_p[:, None] - centres_b[None]).norm(dim=-1) / width[:, None]
    cost = torch.where(iou >= min_iou, 1 - iou, 1 + shift)
    return torch.where((iou >= min_iou) | (shift <= max_shift), cost, torch.nan)
