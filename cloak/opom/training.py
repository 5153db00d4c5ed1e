"""Training faces (a photo's region around a face and its alignment) and the paste paths.

The optimiser sees a mask through :func:`protected_frames`: pasted into each training region
and re-aligned (``"photo"``, the path that ships), or added in the frame (``"frame"``);
:func:`protect_photo` applies a mask to a photo the way a protected copy is written.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from cloak.faces.align import (
    WINDOW_MARGIN,
    compose,
    feather_weight,
    frames_footprint,
    paste_back,
    to_frame,
    translation,
)
from cloak.opom.config import DEFAULT_FEATHER, PASTE_PATHS, PastePath

if TYPE_CHECKING:
    from cloak.faces import AlignedFace

__all__ = ["TrainingFace", "protect_photo", "protected_frames", "training_face"]

#: Region pixels per frame pixel above which a training region is downscaled (big faces).
_MAX_REGION_SCALE = 2.0


@dataclass
class TrainingFace:
    """A training photo's face: the photo region the canonical frame covers, and its alignment.

    Attributes:
        region: (3, h, w) float32 RGB in [0, 255], the photo cropped to the frame's footprint
            (downscaled when the face is much larger than the frame, so big photos stay cheap).
        matrix: (2, 3) float32 similarity taking region pixels to frame pixels.
    """

    region: torch.Tensor
    matrix: torch.Tensor

    def to(self, device: torch.device | str) -> TrainingFace:
        """This face with its region and matrix on ``device`` (itself when already there)."""
        return TrainingFace(self.region.to(device), self.matrix.to(device))

    def clean_frame(self) -> torch.Tensor:
        """The unprotected canonical frame, (3, FRAME_SIZE, FRAME_SIZE) in [0, 255]."""
        return to_frame(self.region, self.matrix[None])[0].clamp(0, 255)


def training_face(photo_pixels: torch.Tensor, face: AlignedFace) -> TrainingFace:
    """Crop a photo to the footprint of ``face``'s canonical frame, keeping the alignment.

    The region is the frame's footprint in the photo
    (:func:`~cloak.faces.align.frames_footprint`) plus 2 pixels, clipped to the photo. When a
    region pixel is smaller than half a frame pixel (a face more than twice the frame's size),
    the region is downscaled (bilinear with antialiasing) to two region pixels per frame pixel:
    the mask is then still upsampled into the region, as it is into the full photo, and the
    optimisation stays cheap on large photos.

    Args:
        photo_pixels: (3, H, W) float32 RGB in [0, 255], the whole photo.
        face: one of the photo's aligned faces (its ``matrix`` maps photo pixels to the frame).

    Returns:
        the :class:`TrainingFace`.
    """
    if photo_pixels.ndim != 3 or photo_pixels.shape[0] != 3:
        raise ValueError(f"photo_pixels must be (3, H, W), got {tuple(photo_pixels.shape)}")
    h, w = photo_pixels.shape[-2:]
    matrix = face.matrix.double()
    x0, y0, x1, y1 = frames_footprint(matrix[None], h, w, margin=WINDOW_MARGIN)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face's frame does not overlap the photo")
    region = photo_pixels[:, y0:y1, x0:x1].float()
    matrix = compose(matrix, translation(x0, y0))                     # region -> frame
    frame_per_region = math.sqrt(abs(torch.linalg.det(matrix[:, :2]).item()))
    factor = _MAX_REGION_SCALE * frame_per_region                     # new / old region size
    if factor < 1.0:
        size = (max(1, round((y1 - y0) * factor)), max(1, round((x1 - x0) * factor)))
        region = F.interpolate(region[None], size=size, mode="bilinear", antialias=True,
                               align_corners=False)[0].clamp(0, 255)
        sx, sy = (x1 - x0) / size[1], (y1 - y0) / size[0]
        # small pixel centre x_s lies at (x_s + 0.5) * sx - 0.5 in the region (half-pixel grid)
        up = torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]],
                          dtype=torch.float64)
        matrix = compose(matrix, up)
    return TrainingFace(region.contiguous(), matrix.float())


def protected_frames(faces: Sequence[TrainingFace], delta: torch.Tensor, paste: PastePath,
                     feather: float = DEFAULT_FEATHER,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     ) -> torch.Tensor:
    """The canonical frames of the training faces with the mask applied, differentiably.

    Args:
        faces: the training faces.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels.
        paste: ``"photo"``: paste the mask into each region (bilinear, feathered, clipped to
            [0, 255]) and re-align the region; ``"frame"``: add the feathered mask to each clean
            frame and clip to [0, 255].
        feather: feather width in frame pixels.
        transform: applied to each protected image where a shared photo would meet it: to each
            protected region (1, 3, h, w) before re-alignment (``"photo"``), or to the protected
            frames (``"frame"``); differentiable, [0, 255] in and out (e.g. EOT).

    Returns:
        (N, 3, FRAME_SIZE, FRAME_SIZE) float32 in [0, 255], differentiable in ``delta``.
    """
    keep: Callable[[torch.Tensor], torch.Tensor] = transform or (lambda images: images)
    if paste == "frame":
        clean = torch.stack([f.clean_frame() for f in faces])
        return keep((clean + delta * feather_weight(feather).to(delta)).clamp(0, 255))
    if paste != "photo":
        raise ValueError(f"unknown paste path {paste!r}; choose one of {PASTE_PATHS}")
    frames = []
    for face in faces:
        region = paste_back(face.region, delta, face.matrix[None], feather=feather,
                            mode="bilinear")
        frames.append(to_frame(keep(region[None])[0], face.matrix[None])[0])
    return torch.stack(frames)



def protect_photo(photo_pixels: torch.Tensor, faces: Sequence[AlignedFace], delta: torch.Tensor,
                  feather: float = DEFAULT_FEATHER, mode: str = "bilinear") -> torch.Tensor:
    """Apply a mask to the chosen faces of a photo (the shipped path, :func:`paste_back`).

    Args:
        photo_pixels: (3, H, W) float32 RGB in [0, 255].
        faces: the faces to protect (others stay untouched); may be empty.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels.
        feather: feather width in frame pixels.
        mode: ``"bilinear"`` or ``"nearest"`` resampling of the mask into the photo.

    Returns:
        (3, H, W) float32 in [0, 255]; pixels outside the faces' frames are the input's exactly.
        Rounding to 8 bits is the writer's job.
    """
    if not faces:
        return photo_pixels.clone()
    matrices = torch.stack([f.matrix for f in faces])
    return paste_back(photo_pixels, delta.detach(), matrices, feather=feather, mode=mode)
