"""Faces: detection (MTCNN), 5-point alignment into the canonical frame, pasting back.

Light on import (no torch): the detector and the warps load in the functions that need them.

>>> # det = attackers.load("mtcnn")
>>> # faces = align_faces([img], det)[0]   # img: (3, H, W) float32 RGB in [0, 255]
>>> # faces[0].frame.shape == (3, 224, 224)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from attackers.detectors.mtcnn import MTCNN, Detection

__all__ = ["AlignedFace", "align_faces"]


@dataclass
class AlignedFace:
    """A detected face resampled into the canonical frame.

    Attributes:
        frame: (3, FRAME_SIZE, FRAME_SIZE) float32 RGB in [0, 255].
        matrix: (2, 3) float32 similarity taking photo pixels to frame pixels.
        detection: the detector's box, score and landmarks in photo pixels.
    """

    frame: torch.Tensor
    matrix: torch.Tensor
    detection: Detection


def align_faces(images: Sequence[torch.Tensor], detector: MTCNN,
                min_face: int = 20) -> list[list[AlignedFace]]:
    """Detect the faces of each photo and align each into the canonical frame.

    Args:
        images: each (3, H, W) float32 RGB in [0, 255]; sizes may differ.
        detector: an MTCNN (``attackers.load("mtcnn")``).
        min_face: faces whose box is narrower or shorter than this (photo pixels) are dropped.

    Returns:
        per image, its faces by decreasing detection score (empty where none is found), on
        the detector's device.
    """
    import torch

    from cloak.faces.align import similarity_to_frame, to_frame

    result: list[list[AlignedFace]] = []
    for image, detections in zip(images, detector.detect(images), strict=True):
        kept = [d for d in detections
                if min(d.box[2] - d.box[0], d.box[3] - d.box[1]) >= min_face]
        if not kept:
            result.append([])
            continue
        matrices = similarity_to_frame(torch.stack([d.landmarks for d in kept]))
        frames = to_frame(image.to(matrices.device).float(), matrices).clamp(0, 255)
        faces = zip(frames, matrices, kept, strict=True)
        result.append([AlignedFace(f, m, d) for f, m, d in faces])
    return result
