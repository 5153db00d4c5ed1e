"""Alignment between photos and the canonical face frame, and pasting frame deltas back.

A face's *matrix* is the (2, 3) similarity transform taking photo pixels to canonical-frame
pixels (pixel-index coordinates, see :mod:`attackers.frame`), fitted to its 5 landmarks.
:func:`to_frame` resamples photos into frames with it; :func:`paste_back` carries a frame-space
delta (a mask) back into the photo with its inverse. :func:`frames_footprint` is the photo
window a frame covers (where a mask can land), and :func:`compose` / :func:`translation` chain
matrices, e.g. to re-base them to such a window.

>>> m = similarity_to_frame(frame_template()[None].float())
>>> torch.allclose(m, torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]), atol=1e-4)
True
"""

from __future__ import annotations

import math

import kornia.geometry.transform as KT
import torch

from attackers.frame import FRAME_SIZE, frame_template

__all__ = ["WINDOW_MARGIN", "bounding_window", "compose", "feather_weight", "frames_footprint",
           "invert", "paste_back", "similarity_to_frame", "to_frame", "translation"]

#: Pixels kept around a frame's footprint (:func:`frames_footprint`) when a photo or video frame
#: is cut to the window its faces' frames cover.
WINDOW_MARGIN = 2


def similarity_to_frame(landmarks: torch.Tensor) -> torch.Tensor:
    """Least-squares similarity (rotation, uniform scale, translation) from photo to frame.

    The closed-form 2D case of Umeyama (1991) without reflection: minimises
    ``sum_k |s R p_k + t - q_k|^2`` over the 5 landmarks ``p_k`` and the frame template ``q_k``.

    Args:
        landmarks: (N, 5, 2) photo pixels (x, y), order as in
            :class:`~attackers.detectors.mtcnn.Detection`.

    Returns:
        (N, 2, 3) matrices, dtype of ``landmarks``, taking photo pixels to frame pixels.

    Shape:
        (N, 5, 2) -> (N, 2, 3)
    """
    if landmarks.ndim != 3 or landmarks.shape[1:] != (5, 2):
        raise ValueError(f"landmarks must be (N, 5, 2), got {tuple(landmarks.shape)}")
    src = landmarks.double()
    dst = frame_template().to(src)[None]
    src_mean, dst_mean = src.mean(1, keepdim=True), dst.mean(1, keepdim=True)
    p, q = src - src_mean, dst - dst_mean
    norm = (p * p).sum((1, 2))
    a = (p * q).sum((1, 2)) / norm                                    # s cos(theta)
    b = (p[..., 0] * q[..., 1] - p[..., 1] * q[..., 0]).sum(1) / norm  # s sin(theta)
    rot = torch.stack([torch.stack([a, -b], -1), torch.stack([b, a], -1)], 1)  # (N, 2, 2)
    t = dst_mean[:, 0] - (rot @ src_mean[:, 0, :, None])[..., 0]
    return torch.cat([rot, t[..., None]], 2).to(landmarks.dtype)


def invert(matrices: torch.Tensor) -> torch.Tensor:
    """Inverse of (N, 2, 3) affine matrices, as (N, 2, 3)."""
    lin = torch.linalg.inv(matrices[:, :, :2])
    return torch.cat([lin, -(lin @ matrices[:, :, 2:])], 2)


def compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """``outer o inner`` of affine maps: apply ``inner``, then ``outer``.

    Args:
        outer: (..., 2, 3) matrices.
        inner: (2, 3) or (..., 2, 3) matrices (cast to ``outer``'s dtype and device).

    Returns:
        (..., 2, 3) matrices, dtype and device of ``outer``.

    >>> m = torch.tensor([[2.0, 0, 1], [0, 2, 0]])
    >>> compose(m, translation(3, 4, torch.float32)).tolist()
    [[2.0, 0.0, 7.0], [0.0, 2.0, 8.0]]
    """
    inner = inner.to(outer)
    return torch.cat([outer[..., :2] @ inner[..., :2],
                      outer[..., :2] @ inner[..., 2:] + outer[..., 2:]], -1)


def translation(x: float, y: float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """(2, 3) matrix of the shift by ``(x, y)`` pixels.

    ``compose(matrices, translation(x0, y0))`` re-bases photo-to-frame matrices to a window of
    the photo whose top-left pixel is ``(x0, y0)``.
    """
    return torch.tensor([[1.0, 0.0, x], [0.0, 1.0, y]], dtype=dtype)


def bounding_window(points: torch.Tensor, height: int, width: int,
                    margin: int = 0) -> tuple[int, int, int, int]:
    """The image window that holds some points.

    Args:
        points: (K, 2) pixel coordinates (x, y), K >= 1.
        height, width: the image's size in pixels.
        margin: pixels added on every side.

    Returns:
        ``(x0, y0, x1, y1)``, x1 and y1 exclusive: the points' bounding box widened to whole
        pixels, plus ``margin``, clipped to the image. Empty (``x1 <= x0`` or ``y1 <= y0``) when
        the points lie outside the image.

    >>> bounding_window(torch.tensor([[2.5, 3.0], [10.2, 7.9]]), 8, 100, margin=1)
    (1, 2, 13, 8)
    """
    x0 = max(0, math.floor(points[:, 0].min().item()) - margin)
    y0 = max(0, math.floor(points[:, 1].min().item()) - margin)
    x1 = min(width, math.ceil(points[:, 0].max().item()) + margin + 1)
    y1 = min(height, math.ceil(points[:, 1].max().item()) + margin + 1)
    return x0, y0, x1, y1


def frames_footprint(matrices: torch.Tensor, height: int, width: int,
                     margin: int = 0) -> tuple[int, int, int, int]:
    """The photo window that the canonical frames of some faces cover (where a mask can land).

    Args:
        matrices: (N, 2, 3) photo-to-frame matrices, N >= 1 (any float dtype; the corners are
            mapped in float64).
        height, width: the photo's size in pixels.
        margin: photo pixels added on every side.

    Returns:
        ``(x0, y0, x1, y1)``, x1 and y1 exclusive: the :func:`bounding_window` of the frames'
        corner pixel centres mapped into the photo. Empty (``x1 <= x0`` or ``y1 <= y0``) when
        the frames lie outside the photo.

    >>> frames_footprint(torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]), 500, 300, margin=2)
    (0, 0, 226, 226)
    """
    last = FRAME_SIZE - 1.0
    corners = torch.tensor([[0.0, 0.0, 1.0], [last, 0.0, 1.0], [0.0, last, 1.0],
                            [last, last, 1.0]], dtype=torch.float64, device=matrices.device)
    xy = torch.cat([corners @ m.T for m in invert(matrices.double())])
    return bounding_window(xy, height, width, margin)


def to_frame(images: torch.Tensor, matrices: torch.Tensor, mode: str = "bilinear",
             padding_mode: str = "zeros") -> torch.Tensor:
    """Differentiably resample photos into canonical frames.

    Args:
        images: (N, 3, H, W), or (3, H, W) / (1, 3, H, W) shared by all matrices; any range.
        matrices: (N, 2, 3) photo-to-frame matrices (:func:`similarity_to_frame`).
        mode: ``"bilinear"`` or ``"nearest"``.
        padding_mode: value outside the photo: ``"zeros"``, ``"border"`` or ``"reflection"``.

    Returns:
        (N, 3, FRAME_SIZE, FRAME_SIZE) frames, dtype of ``images``.
    """
    if images.ndim == 3:
        images = images[None]
    n = matrices.shape[0]
    if images.shape[0] == 1 and n != 1:
        images = images.expand(n, -1, -1, -1)
    if images.shape[0] != n:
        raise ValueError(f"{images.shape[0]} images for {n} matrices")
    return KT.warp_affine(images, matrices.to(images), (FRAME_SIZE, FRAME_SIZE), mode=mode,
                          padding_mode=padding_mode, align_corners=True)


def feather_weight(feather: float, size: int = FRAME_SIZE) -> torch.Tensor:
    """Frame-space blending weight: 1 inside, smoothly down to 0 at the frame's edge.

    With ``d`` the distance in pixels from a pixel centre to the nearest edge pixel's centre,
    the weight is ``smoothstep(d / feather)`` (``3t^2 - 2t^3``, t clipped to [0, 1]): exactly 0
    on the outermost pixel ring, 1 from ``feather`` pixels inward. ``feather = 0`` gives 1
    everywhere (a hard edge).

    Returns:
        (size, size) float32 in [0, 1].
    """
    if feather < 0:
        raise ValueError(f"feather must be >= 0 pixels, got {feather}")
    i = torch.arange(size, dtype=torch.float32)
    d = torch.minimum(i, size - 1 - i)
    d = torch.minimum(d[:, None], d[None, :])
    if feather == 0:
        return torch.ones(size, size)
    t = (d / feather).clamp(0, 1)
    return t * t * (3 - 2 * t)


def paste_back(image: torch.Tensor, frame_delta: torch.Tensor, matrices: torch.Tensor,
               feather: float = 8.0, mode: str = "bilinear") -> torch.Tensor:
    """Add frame-space deltas to a photo through the inverse alignment of each face.

    Each face's delta is multiplied by :func:`feather_weight` in the frame, then resampled into
    the photo by kornia ``warp_affine`` with the inverse matrix (``align_corners=True``, zero
    padding): ``"bilinear"`` interpolates the 4 nearest frame pixels of each photo pixel's
    pre-image, which averages neighbouring delta values (so a +/-eps pattern shrinks where the
    photo face is not much larger than the frame); ``"nearest"`` copies the nearest frame pixel,
    keeping each value intact. Deltas of several faces add up. The result is clipped to
    [0, 255] only where some delta landed: photo pixels whose pre-image falls outside the
    frame's feathered interior keep their exact input value. Within one face,
    ``|change| <= max |delta|``. Differentiable with respect to ``frame_delta``.

    Args:
        image: (3, H, W) float photo in [0, 255].
        frame_delta: (3, FRAME_SIZE, FRAME_SIZE) shared by all faces, or (N, 3, FRAME_SIZE,
            FRAME_SIZE), in pixel units.
        matrices: (N, 2, 3) photo-to-frame matrices of the faces.
        feather: width in frame pixels of the border over which the delta fades to 0.
        mode: ``"bilinear"`` or ``"nearest"``.

    Returns:
        (3, H, W) photo, dtype of ``image``.
    """
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"paste_back mode must be 'bilinear' or 'nearest', got {mode!r}")
    n = matrices.shape[0]
    if frame_delta.ndim == 3:
        frame_delta = frame_delta[None].expand(n, -1, -1, -1)
    if frame_delta.shape[0] != n:
        raise ValueError(f"{frame_delta.shape[0]} frame deltas for {n} matrices")
    h, w = image.shape[-2:]
    weight = feather_weight(feather).to(image)
    weighted = frame_delta.to(image) * weight
    back = invert(matrices.double())
    canvas = torch.zeros_like(image)
    touched = torch.zeros(h, w, dtype=torch.bool, device=image.device)
    for k in range(n):
        x0, y0, x1, y1 = frames_footprint(matrices[k:k + 1], h, w)
        if x1 <= x0 or y1 <= y0:
            continue
        # frame -> window pixels: the inverse matrix, shifted to the window's origin
        to_window = back[k].clone()
        to_window[0, 2] -= x0
        to_window[1, 2] -= y0
        pair = torch.cat([weighted[k], weight[None]])[None]
        out = KT.warp_affine(pair, to_window[None].to(image), (y1 - y0, x1 - x0), mode=mode,
                             padding_mode="zeros", align_corners=True)[0]
        canvas[:, y0:y1, x0:x1] = canvas[:, y0:y1, x0:x1] + out[:3]
        touched[y0:y1, x0:x1] |= out[3] > 0
    return torch.where(touched, (image + canvas).clamp(0, 255), image)
