"""Image quality of protected photos against their originals: PSNR, SSIM and L-inf.

Computed on the full-resolution photos (the whole picture, not the face crop), pixel values in
[0, 255]. SSIM is kornia's (Gaussian window 11, sigma 1.5, K1 = 0.01, K2 = 0.03, Wang et al.
2004) over the valid windows only (no zero padding at the border), averaged over the map and the
RGB channels. The photos may be of any dtype (uint8 views cost nothing); they are converted to
float64 :data:`STRIP_ROWS` rows at a time, so memory stays bounded on large photos: SSIM's
strips overlap by ``SSIM_WINDOW - 1`` rows (the mean is the whole map's, to rounding), PSNR of a
photo taller than one strip adds up the squared errors strip by strip.

>>> import torch
>>> a = torch.full((3, 32, 32), 100.0)
>>> round(photo_quality(a, a + 1).psnr, 2)          # 20 log10(255 / 1)
48.13
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from kornia.metrics import psnr as kornia_psnr
from kornia.metrics import ssim as kornia_ssim

__all__ = ["PhotoQuality", "linf", "photo_quality", "psnr", "ssim"]

#: SSIM window side in pixels (the Gaussian window of Wang et al. 2004).
SSIM_WINDOW = 11
#: Rows converted to float64 and compared at once (SSIM reads ``SSIM_WINDOW - 1`` more).
STRIP_ROWS = 512


def _batch(original: torch.Tensor, protected: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if original.shape != protected.shape:
        raise ValueError(f"original {tuple(original.shape)} and protected "
                         f"{tuple(protected.shape)} differ in shape")
    if original.ndim == 3:
        original, protected = original[None], protected[None]
    if original.ndim != 4:
        raise ValueError(f"photos must be (3, H, W) or (N, 3, H, W), got {tuple(original.shape)}")
    return original, protected


def _strips(a: torch.Tensor, b: torch.Tensor,
            overlap: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Float64 row strips of (N, C, H, W) ``a`` and ``b``: :data:`STRIP_ROWS` rows each, plus
    ``overlap`` rows shared with the next strip."""
    for top in range(0, max(1, a.shape[-2] - overlap), STRIP_ROWS):
        rows = slice(top, top + STRIP_ROWS + overlap)
        yield a[..., rows, :].double(), b[..., rows, :].double()


def psnr(original: torch.Tensor, protected: torch.Tensor, max_val: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(max_val^2 / MSE)`` over all pixels.

    Args:
        original: (3, H, W) or (N, 3, H, W) in [0, ``max_val``], any dtype.
        protected: same shape.
        max_val: the peak value.

    Returns:
        PSNR in dB; ``inf`` when the photos are identical.
    """
    a, b = _batch(original, protected)
    if a.shape[-2] <= STRIP_ROWS:  # one strip: kornia's own formula
        return float(kornia_psnr(b.double(), a.double(), max_val))
    squared = sum(float(((y - x) ** 2).sum()) for x, y in _strips(a, b))
    return 10 * math.log10(max_val ** 2 * a.numel() / squared) if squared else math.inf


def ssim(original: torch.Tensor, protected: torch.Tensor, max_val: float = 255.0) -> float:
    """Mean structural similarity (kornia, valid windows) over pixels and channels.

    Args:
        original: (3, H, W) or (N, 3, H, W) in [0, ``max_val``], any dtype, H and W >= 11.
        protected: same shape.
        max_val: the peak value.

    Returns:
        SSIM in [-1, 1]; 1 for identical photos.
    """
    a, b = _batch(original, protected)
    if min(a.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs photos of at least {SSIM_WINDOW} pixels a side, got "
                         f"{tuple(a.shape[-2:])}")
    total, count = 0.0, 0
    for x, y in _strips(a, b, overlap=SSIM_WINDOW - 1):
        window = kornia_ssim(x, y, SSIM_WINDOW, max_val=max_val, padding="valid")
        total, count = total + float(window.sum()), count + window.numel()
    return total / count


def linf(original: torch.Tensor, protected: torch.Tensor) -> float:
    """Largest absolute pixel change, in pixel levels."""
    return max(float((x - y).abs().max()) for x, y in _strips(*_batch(original, protected)))


@dataclass(frozen=True)
class PhotoQuality:
    """Quality of one protected photo against its original.

    Attributes:
        psnr: dB (``inf`` when unchanged).
        ssim: mean SSIM in [-1, 1].
        linf: largest pixel change in levels.
    """

    psnr: float
    ssim: float
    linf: float


def photo_quality(original: torch.Tensor, protected: torch.Tensor) -> PhotoQuality:
    """PSNR, SSIM and L-inf of a protected photo (3, H, W) against its original, in [0, 255]."""
    return PhotoQuality(psnr(original, protected), ssim(original, protected),
                        linf(original, protected))
