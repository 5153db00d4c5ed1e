"""What the attacker's detector sees of a probe after a transform, a purifier or landmark jitter.

A condition of :data:`~evaluation.robustness.settings.TRANSFORMS` +
:data:`~evaluation.robustness.settings.PURIFIERS` is ``none`` (the photo as written), ``jitter``
(the landmarks found again moved before alignment, as a less precise detector would) or a photo
transform of :data:`evaluation.transforms.TRANSFORMS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from evaluation.protocol.lfw import central_faces
from evaluation.protocol.ranks import person_generator
from evaluation.protocol.recognition import redetect
from evaluation.transforms import TRANSFORMS as PHOTO_TRANSFORMS

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN

__all__ = ["frames_after", "jitter_offsets"]


def jitter_offsets(person: str, count: int, px: float, seed: int) -> torch.Tensor:
    """(count, 5, 2) landmark offsets ``U[-px, px]``, seeded by ``seed`` and the person."""
    generator = person_generator(person, seed)
    return (torch.rand((count, 5, 2), generator=generator) * 2 - 1) * px


def frames_after(photos: Sequence[torch.Tensor], condition: str, detector: MTCNN,
                 offsets: torch.Tensor | None = None) -> list[torch.Tensor | None]:
    """Aligned frames (3, 224, 224) of the photos after a condition; None where no face is found.

    Args:
        photos: (3, H, W) photos in [0, 255], 8-bit levels.
        condition: ``none``, ``jitter`` or a name of :data:`evaluation.transforms.TRANSFORMS`.
        detector: MTCNN.
        offsets: (len(photos), 5, 2) landmark offsets in photo pixels (needed by ``jitter``).
    """
    from cloak.faces.align import similarity_to_frame, to_frame

    if condition not in ("none", "jitter"):
        photos = [PHOTO_TRANSFORMS[condition](p) for p in photos]
    if condition != "jitter":
        return redetect(photos, detector)
    faces = central_faces(photos, detector)
    if offsets is None:
        raise ValueError("the jitter condition needs landmark offsets")
    frames: list[torch.Tensor | None] = []
    for photo, face, offset in zip(photos, faces, offsets, strict=True):
        if face is None:
            frames.append(None)
            continue
        matrix = similarity_to_frame((face.detection.landmarks + offset)[None])
        frames.append(to_frame(photo, matrix)[0].clamp(0, 255))
    return frames
