"""The mask pasted into a photo: on the window its faces' frames cover, in strips of rows.

Only that window is converted to float, so a face in a large photo costs little; every other
pixel is the input's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from cloak.faces.align import WINDOW_MARGIN, compose, frames_footprint, translation
from cloak.imageio import Photo
from cloak.opom import DEFAULT_FEATHER, TrainingFace, protect_photo, training_face

if TYPE_CHECKING:
    from cloak.faces import AlignedFace

__all__ = ["photo_training_face", "protected_pixels"]

_STRIP_ROWS = 1024  # rows of a photo window the mask is pasted into at once


def _rgb_window(photo: Photo, box: tuple[int, int, int, int]) -> torch.Tensor:
    """Float32 RGB (3, h, w) in [0, 255] of the photo window ``box = (x0, y0, x1, y1)``."""
    x0, y0, x1, y1 = box
    samples = photo.samples[:, y0:y1, x0:x1]
    window = samples.float() / 257.0 if photo.bit_depth == 16 else samples.float()
    return window.expand(3, -1, -1).contiguous()


def _shifted(matrices: torch.Tensor, x0: int, y0: int) -> torch.Tensor:
    """(N, 2, 3) photo-to-frame matrices re-based to the window whose top-left is (x0, y0)."""
    return compose(matrices, translation(x0, y0, matrices.dtype))

def _aligned(matrices: torch.Tensor) -> list[AlignedFace]:
    """AlignedFace records carrying only the matrices (all that pasting and cropping read)."""
    from attackers.detectors.mtcnn import Detection
    from cloak.faces import AlignedFace

    empty = torch.zeros(0)
    return [AlignedFace(frame=empty, matrix=m, detection=Detection(empty, 0.0, empty))
            for m in matrices]


def protected_pixels(photo: Photo, matrices: torch.Tensor, delta: torch.Tensor,
                     feather: float = DEFAULT_FEATHER) -> torch.Tensor:
    """The photo with the mask pasted on the given faces, ready for
    :func:`~cloak.imageio.write_photo`.

    The mask is applied with :func:`cloak.opom.protect_photo` (bilinear, feathered, clipped to
    [0, 255]) on the window that holds the faces' frames, in strips of at most 1024 rows (the
    result equals one call on the whole photo), on ``delta``'s device; every other pixel is the
    input's.
    8-bit RGB photos come back as uint8 (rounded half to even, as the writer rounds floats),
    greyscale and 16-bit photos as float32 so the writer keeps their exact grey levels.

    Args:
        photo: the photo as read.
        matrices: (N, 2, 3) photo-to-frame matrices of the faces to protect, N >= 0.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels, shared by the faces, or
            (N, 3, FRAME_SIZE, FRAME_SIZE), one per face.
        feather: feather width in frame pixels.

    Returns:
        (3, H, W) uint8 or float32 RGB in [0, 255].
    """
    exact = photo.is_grey
    full = photo.pixels if exact else photo.samples.clone()
    if matrices.shape[0] == 0:
        return full
    x0, y0, x1, y1 = frames_footprint(matrices, photo.height, photo.width, WINDOW_MARGIN)
    for top in range(y0, y1, _STRIP_ROWS):  # strips bound the memory of a face filling a photo
        bottom = min(y1, top + _STRIP_ROWS)
        window = protect_photo(_rgb_window(photo, (x0, top, x1, bottom)).to(delta.device),
                               _aligned(_shifted(matrices.to(delta.device), x0, top)), delta,
                               feather=feather).to(full.device)
        if exact:
            full[:, top:bottom, x0:x1] = window
        else:
            full[:, top:bottom, x0:x1] = window.round().clamp(0, 255).to(torch.uint8)
    return full


def photo_training_face(photo: Photo, matrix: torch.Tensor) -> TrainingFace:
    """:func:`cloak.opom.training_face` of one face of ``photo`` (``matrix``: (2, 3)
    photo-to-frame), cut from the face's window only (cheap on big photos)."""
    x0, y0, x1, y1 = frames_footprint(matrix[None], photo.height, photo.width, WINDOW_MARGIN)
    window = _rgb_window(photo, (x0, y0, x1, y1))
    return training_face(window, _aligned(_shifted(matrix[None], x0, y0))[0])

