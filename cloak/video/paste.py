"""Masks pasted into 8-bit video frames, each through its face's alignment.

A face's matrix maps display pixels (the video turned upright) to the canonical frame;
:func:`display_matrix` folds the video's rotation into it, so stored frames are never turned.
:func:`paste_faces` gives what :func:`cloak.faces.align.paste_back` gives on the whole frame,
rounded to 8 bits, converting only the windows the faces' frames cover to float (and, in a
yuv420p frame, to RGB and back).

>>> display_matrix(90, 4, 2).tolist()
[[0.0, -1.0, 1.0], [1.0, 0.0, 0.0]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from attackers.frame import FRAME_SIZE
from cloak.faces.align import WINDOW_MARGIN, compose, feather_weight, frames_footprint, translation
from cloak.video.colour import put_window, window_rgb

if TYPE_CHECKING:
    from cloak.mask import Mask
    from cloak.video.container import ColorTags
    from cloak.video.tracks import FaceInFrame

__all__ = ["display_matrix", "paste_faces"]


def display_matrix(rotation: int, width: int, height: int) -> torch.Tensor:
    """(2, 3) float64 map from stored pixels to displayed pixels (exact quarter turns).

    The same turn as :func:`cloak.video.reading.to_display` on pixel centres, so a matrix ``M`` from
    display pixels to the canonical frame becomes ``M o display_matrix(...)`` from stored pixels.

    Args:
        rotation: :attr:`VideoInfo.rotation` (0, 90, 180, 270 degrees clockwise).
        width, height: the stored frame size.
    """
    maps = {0: [[1, 0, 0], [0, 1, 0]], 90: [[0, -1, height - 1], [1, 0, 0]],
            180: [[-1, 0, width - 1], [0, -1, height - 1]], 270: [[0, 1, 0], [-1, 0, width - 1]]}
    if rotation not in maps:
        raise ValueError(f"rotation must be 0, 90, 180 or 270, got {rotation}")
    return torch.tensor(maps[rotation], dtype=torch.float64)


def _windows(matrices: torch.Tensor, height: int, width: int,
             align: int = 1) -> list[tuple[list[int], tuple[int, int, int, int]]]:
    """Faces grouped by overlapping footprints: (face indices, (x0, y0, x1, y1)) per group,
    corners rounded out to multiples of ``align`` (the frame's sides are multiples of it)."""
    groups = []
    for k in range(matrices.shape[0]):
        x0, y0, x1, y1 = frames_footprint(matrices[k:k + 1], height, width, WINDOW_MARGIN)
        groups.append(([k], (x0 - x0 % align, y0 - y0 % align, x1 + -x1 % align,
                             y1 + -y1 % align)))
    merged = True
    while merged:
        merged = False
        for i in range(len(groups)):
            for j in range(i + 1, len(groups)):
                (a, (ax0, ay0, ax1, ay1)), (b, (bx0, by0, bx1, by1)) = groups[i], groups[j]
                if ax0 < bx1 and bx0 < ax1 and ay0 < by1 and by0 < ay1:
                    groups[i] = (a + b, (min(ax0, bx0), min(ay0, by0), max(ax1, bx1),
                                         max(ay1, by1)))
                    del groups[j]
                    merged = True
                    break
            if merged:
                break
    return groups


def _weighted(mask: Mask) -> torch.Tensor:
    """(1, 3, S, S) float32 on the mask's device: the mask times its feather weight, what
    paste_back warps and adds (its warped weight only marks touched pixels for clipping, which
    8-bit windows do not need)."""
    weight = feather_weight(mask.feather).to(mask.delta.device)
    return (mask.delta.float() * weight)[None]


def _sampling_grid(matrix: torch.Tensor, x0: int, y0: int, x1: int,
                   y1: int) -> torch.Tensor:
    """(1, y1 - y0, x1 - x0, 2) float32: where the window pixels in ``[x0, x1) x [y0, y1)`` land
    in the canonical frame, normalised to [-1, 1] (corner-aligned pixel centres).

    The grid ``F.affine_grid`` gives for the same map, computed in float64 as two outer sums
    (one per output coordinate) instead of a batched matrix product over every pixel: five
    times cheaper on a CPU, and equal to it within float32 rounding.

    Args:
        matrix: (2, 3) float64 window-to-frame pixel matrix, on the CPU.
    """
    scale = 2.0 / max(FRAME_SIZE - 1, 1)
    affine = matrix * scale
    affine[:, 2] -= 1.0
    xs = torch.arange(x0, x1, dtype=torch.float64)
    ys = torch.arange(y0, y1, dtype=torch.float64)
    grid = torch.empty(1, y1 - y0, x1 - x0, 2)
    for axis in (0, 1):
        grid[0, :, :, axis] = (affine[axis, 0] * xs)[None, :] + (
            affine[axis, 1] * ys + affine[axis, 2])[:, None]
    return grid


def _add_warped(window: torch.Tensor, pair: torch.Tensor, matrix: torch.Tensor) -> None:
    """Add one face's feathered mask to a float window in place (no clipping).

    The warp of :func:`cloak.faces.align.paste_back` (bilinear, zero padding, corner-aligned
    pixel centres), on the window pixels the frame's corners cover, sampled with
    ``F.grid_sample`` directly (kornia's wrapper costs more than the sampling on small windows).

    Args:
        window: (3, h, w) float32 pixels, written in place, on ``pair``'s device.
        pair: (1, 3, S, S) from :func:`_weighted`.
        matrix: (2, 3) float64 window-to-frame matrix, on the CPU.
    """
    h, w = window.shape[-2:]
    x0, y0, x1, y1 = frames_footprint(matrix[None], h, w)
    if x1 <= x0 or y1 <= y0:
        return
    grid = _sampling_grid(matrix, x0, y0, x1, y1).to(pair.device)
    out = F.grid_sample(pair, grid, mode="bilinear", padding_mode="zeros",
                        align_corners=True)[0]
    window[:, y0:y1, x0:x1] += out


def paste_faces(image: np.ndarray, faces: Sequence[FaceInFrame], masks: dict[str, Mask],
                to_display: torch.Tensor, color: ColorTags | None = None
                ) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Paste each face's person's mask into an 8-bit frame, in place.

    The faces are grouped by overlapping footprints (the image windows their canonical frames
    cover); each group's window is converted to float once, every face's feathered mask is
    warped in and added as :func:`cloak.faces.align.paste_back` does (bilinear, feathered), the
    sum is clipped to [0, 255] and rounded back to 8 bits. The result equals ``paste_back`` of
    all the faces on the whole frame, rounded (8-bit pixels are already in [0, 255], so the
    clipping can skip paste_back's bookkeeping of touched pixels); pixels outside the windows
    are never touched. The windows are pasted on the masks' device.

    A yuv420p frame (``color`` given) is pasted in RGB too: each window (with even corners)
    is converted to RGB as the decoder converts whole frames, pasted, and converted back
    (:mod:`cloak.video.colour`); the rest of the frame keeps its decoded YUV values.

    Args:
        image: (H, W, 3) uint8 RGB frame as stored, or with ``color`` its (H * 3/2, W) uint8
            yuv420p planes (even H and W); written in place.
        faces: faces of this frame whose ``person`` is in ``masks``.
        masks: person name -> mask.
        to_display: :func:`display_matrix` of the video.
        color: the colour tags of a yuv420p ``image``; None for RGB.

    Returns:
        per window written: ``(x0, y0, x1, y1)`` in stored pixels (x1, y1 exclusive) and its
        (h, w, 3) uint8 RGB pixels after pasting.
    """
    if not faces:
        return []
    planar = color is not None
    height, width = (image.shape[0] * 2 // 3, image.shape[1]) if planar else image.shape[:2]
    matrices = compose(torch.stack([f.matrix for f in faces]).double(), to_display)
    pairs = {person: _weighted(masks[person]) for person in {f.person for f in faces}}
    device = next(iter(pairs.values())).device
    pasted = []
    for members, box in _windows(matrices, height, width, 2 if planar else 1):
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            continue
        pixels = window_rgb(image, box, color) if planar else image[y0:y1, x0:x1]
        window = torch.from_numpy(pixels).permute(2, 0, 1).to(device, torch.float32)
        local = compose(matrices[members], translation(x0, y0))
        for k, matrix in zip(members, local, strict=True):
            _add_warped(window, pairs[faces[k].person], matrix)
        pixels[...] = window.clamp_(0, 255).round_().to(torch.uint8).permute(1, 2, 0).cpu()
        if planar:
            put_window(image, box, pixels, color)
        pasted.append((box, pixels))
    return pasted
