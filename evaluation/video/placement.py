"""Where the masks of ``cloak video`` land, against a generated clip's ground truth."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cloak.video.tracks import FaceInFrame
    from evaluation.video_clips import SyntheticClip

__all__ = ["PLACEMENT_TOLERANCE", "mask_assignment"]

#: Landmarks of a masked face within this share of the true face width count as on that face.
PLACEMENT_TOLERANCE = 0.25


def mask_assignment(plan: Sequence[Sequence[FaceInFrame]], clip: SyntheticClip,
                    enrolled: set[str]) -> dict[str, Any]:
    """Where the masks of a protection plan land, against a clip's ground truth.

    A masked face (``person`` not None) is on actor ``a`` when its landmarks are, on average,
    within :data:`PLACEMENT_TOLERANCE` face widths of ``a``'s true landmarks (the nearest
    actor). It is right when ``a`` is that person.

    Args:
        plan: per frame, the faces the pipeline masks (display coordinates).
        clip: the clip's ground truth.
        enrolled: names of the enrolled people.

    Returns:
        ``right`` (face-frames of enrolled people in full view that carry their own mask),
        ``needed`` (face-frames of enrolled people in full view), ``right_share``,
        ``wrong_frames`` (frames with a mask on anyone but its person, or on no face),
        ``wrong_faces`` (such masks), ``landmark_error`` (mean distance in pixels between the
        landmarks the right masks were placed with and the true ones).
    """
    right = needed = wrong_frames = wrong_faces = 0
    errors: list[float] = []
    for frame, faces in enumerate(plan):
        hit: set[int] = set()
        wrong = 0
        for face in faces:
            if face.person is None:
                continue
            distance = (clip.landmarks[frame] - face.landmarks[None]).norm(dim=-1).mean(-1)
            actor = int(distance.argmin())
            width = float(clip.boxes[frame, actor, 2] - clip.boxes[frame, actor, 0])
            if distance[actor] <= PLACEMENT_TOLERANCE * width and (
                    clip.labels[actor] == face.person):
                hit.add(actor)
                errors.append(float(distance[actor]))
            else:
                wrong += 1
        for actor, label in enumerate(clip.labels):
            if label in enrolled and bool(clip.visible[frame, actor]):
                needed += 1
                right += actor in hit
        wrong_frames += wrong > 0
        wrong_faces += wrong
    return {"right": right, "needed": needed,
            "right_share": right / needed if needed else math.nan,
            "wrong_frames": wrong_frames, "wrong_faces": wrong_faces,
            "landmark_error": float(np.mean(errors)) if errors else math.nan}
