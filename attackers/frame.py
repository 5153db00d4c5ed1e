"""The canonical face frame: one square aligned frame in which masks live.

Coordinates are pixel-index coordinates (the centre of pixel ``i`` is at ``i``), the convention of
OpenCV's ``warpAffine`` and of kornia's ``warp_affine`` with ``align_corners=True``.

The frame is :data:`FRAME_SIZE` pixels square. Its 5-point template is the ArcFace 112 template
(eyes, nose tip, mouth corners) scaled about its centre by :data:`FRAME_SCALE` and resized to the
frame, so every model's crop ("ArcFace 112", "x0.8", "x0.75") lies inside the frame.

A model's crop is a :class:`CropSpec` ``(size, scale, shift)``: the ArcFace template scaled about
its centre by ``scale`` inside a ``size x size`` image, optionally with the crop's centre moved
``shift`` ArcFace-112 pixels down the face (dlib's chips sit lower than ArcFace crops).
:func:`crop_matrix` gives the similarity transform from frame pixels to crop pixels, so a crop
is one differentiable warp away.

>>> crop_matrix(CropSpec(112, 1.0)).shape
torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import kornia.geometry.transform as KT
import torch

__all__ = [
    "ARCFACE_112",
    "FRAME_SCALE",
    "FRAME_SIZE",
    "CropSpec",
    "crop_matrix",
    "frame_template",
    "template_in_crop",
    "warp_to_crop",
]

#: ArcFace 5-point template in a 112x112 crop: left eye, right eye, nose, left/right mouth corner.
ARCFACE_112 = torch.tensor(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655],
     [70.7299, 92.2041]], dtype=torch.float64)
_CENTRE_112 = 56.0

#: Side of the canonical frame in pixels.
FRAME_SIZE = 224
#: Scale of the ArcFace template inside the frame (smaller = more context around the face).
FRAME_SCALE = 0.7


@dataclass(frozen=True)
class CropSpec:
    """A model's input crop: the ArcFace template scaled by ``scale`` in a ``size`` square.

    Attributes:
        size: side of the crop in pixels.
        scale: template scale (1.0 = ArcFace 112 proportions; < 1 = more context).
        shift: vertical offset of the crop centre below the template centre, in ArcFace-112
            pixels (before scaling).
    """

    size: int
    scale: float = 1.0
    shift: float = 0.0


def template_in_crop(crop: CropSpec) -> torch.Tensor:
    """The 5 template points in ``crop``'s pixel coordinates.

    Returns:
        float64 tensor of shape (5, 2), (x, y).
    """
    centre = torch.tensor([_CENTRE_112, _CENTRE_112 + crop.shift], dtype=torch.float64)
    return ((ARCFACE_112 - centre) * crop.scale + _CENTRE_112) * (crop.size / 112.0)


def frame_template() -> torch.Tensor:
    """The 5 template points in canonical-frame pixels, float64 (5, 2)."""
    return template_in_crop(CropSpec(FRAME_SIZE, FRAME_SCALE))


def crop_matrix(crop: CropSpec) -> torch.Tensor:
    """Affine matrix taking canonical-frame pixels to ``crop`` pixels.

    The map is a pure scale plus translation: ``p_crop = a * p_frame + b``.

    Returns:
        float32 tensor of shape (2, 3).
    """
    a = (crop.scale * crop.size / 112.0) / (FRAME_SCALE * FRAME_SIZE / 112.0)
    c_crop = _CENTRE_112 * crop.size / 112.0
    c_frame = _CENTRE_112 * FRAME_SIZE / 112.0
    bx = c_crop - a * c_frame
    by = bx - crop.shift * crop.scale * crop.size / 112.0
    return torch.tensor([[a, 0.0, bx], [0.0, a, by]], dtype=torch.float32)


def warp_to_crop(frames: torch.Tensor, crop: CropSpec) -> torch.Tensor:
    """Differentiably resample canonical frames into a model's crop (bilinear).

    Args:
        frames: (N, C, FRAME_SIZE, FRAME_SIZE) float tensor, any value range.
        crop: the model's crop.

    Returns:
        (N, C, crop.size, crop.size) tensor, same dtype and range.
    """
    m = crop_matrix(crop).to(frames).expand(frames.shape[0], 2, 3)
    return KT.warp_affine(frames, m, (crop.size, crop.size), mode="bilinear",
                          padding_mode="border", align_corners=True)
