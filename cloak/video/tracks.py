"""Face tracks through a video: detect on a stride, link, interpolate, smooth, name.

The pipeline is offline: a first pass over the decoded frames detects faces, then tracks are
built with look-ahead, then a second pass applies masks with :func:`faces_per_frame`.

1. :func:`cloak.video.detection.detect_faces` (or its
   :class:`~cloak.video.detection.StepDetector`) detects faces on every ``stride``-th frame
   and embeds them (:mod:`cloak.video.detection`).
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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from cloak.identity import CLUSTER_THRESHOLD
from cloak.video.detection import FaceDetections, Observation, box_iou

__all__ = [
    "DEFAULT_SIGMA",
    "FaceInFrame",
    "Track",
    "TrackIdentity",
    "faces_per_frame",
    "identify_tracks",
    "link_tracks",
    "smooth_landmarks",
    "track_landmarks",
]

#: Standard deviation in frames of the Gaussian weights of landmark smoothing: 3 and 4 smooth
#: slow motion more but lag behind the fast crossing's acceleration (module notes).
DEFAULT_SIGMA = 2.0


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


def link_tracks(detections: FaceDetections, *, min_iou: float = 0.3, max_shift: float = 1.0,
                max_missed: int = 2) -> list[Track]:
    """Link detections of consecutive steps into tracks (see the module notes for the cost).

    Args:
        detections: from :func:`~cloak.video.detection.detect_faces`.
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
