"""The mask-estimation attack on a universal mask: estimate it from protected photos, subtract it.

A universal mask (:mod:`cloak.opom`) is the same frame-space pattern on every protected photo of a
person. An attacker who holds ``k`` of them detects and aligns each into the canonical frame, as
the recognizers do, and separates the mask from the faces with a denoiser: the residual
``frame - denoise(frame)`` holds the mask's fine structure plus the face's own fine detail; the
face detail differs between photos while the mask does not, so the mean residual over ``k``
photos estimates the mask (:func:`estimate_mask`). Subtracting the estimate from a new protected
photo's aligned frame (:func:`subtract_mask`) is the attack. The denoiser only sees high
frequencies, so the estimate misses the mask's smooth part; it also keeps the fine detail that
aligned faces share (eye and mouth edges), so subtracting it changes clean faces too, which the
benchmark measures on clean photos as a control.

Denoisers (:data:`DENOISERS`), each on (N, 3, H, W) frames in [0, 255], per channel, reflected
border (scipy):

- ``median9``: median over a 9 x 9 window;
- ``gauss2``: Gaussian blur, sigma 2 pixels, truncated at 4 sigma.

Why these sizes: OPOM masks (fast mode, convex, eps 8, TI kernel 7) have structure several pixels
wide, so small denoisers leave most of the mask in the "denoised" frame. On 2 LFW people (fold A,
k = 10, dlib-native and sface, 20 protected probes) the estimate's correlation with the true mask
and the probes still missed at top-1 (10 without attack) were: median 3: 0.23 / 0.12, 10 missed;
median 5: 8; median 7: 0.38 / 0.25, 7; median 9: 0.41 / 0.28, 6; median 11: 7; Gaussian sigma 1:
0.34 / 0.22, 8; sigma 2: 0.39 / 0.27, 6; sigma 3: 7; sigma 4: 7. Subtracting the TRUE mask from
the re-aligned frames left 1 of the 20 missed: a better estimate would break the mask.

>>> frames = torch.full((4, 3, 16, 16), 100.0) + torch.randn(4, 3, 16, 16) * 2
>>> mask = torch.randn(3, 16, 16).sign() * 8
>>> estimate = estimate_mask((frames + mask).clamp(0, 255), "median9")
>>> estimate.shape, mask_correlation(estimate, mask) > 0.8
(torch.Size([3, 16, 16]), True)
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from scipy.ndimage import gaussian_filter, median_filter

__all__ = ["DENOISERS", "denoise", "estimate_mask", "mask_correlation", "subtract_mask"]


def _median(frames: np.ndarray, size: int) -> np.ndarray:
    return median_filter(frames, size=(1, 1, size, size), mode="reflect")


def _gaussian(frames: np.ndarray, sigma: float) -> np.ndarray:
    return gaussian_filter(frames, sigma=(0, 0, sigma, sigma), mode="reflect", truncate=4.0)


#: The attack's denoisers by name: (N, 3, H, W) float64 array -> the same shape.
DENOISERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "median9": partial(_median, size=9),
    "gauss2": partial(_gaussian, sigma=2.0),
}


def _check_frames(frames: torch.Tensor) -> None:
    if not isinstance(frames, torch.Tensor) or frames.ndim != 4 or frames.shape[1] != 3:
        shape = tuple(frames.shape) if isinstance(frames, torch.Tensor) else type(frames).__name__
        raise ValueError(f"frames must be a (N, 3, H, W) tensor, got {shape}")
    if len(frames) == 0:
        raise ValueError("no frames given")


def denoise(frames: torch.Tensor, denoiser: str) -> torch.Tensor:
    """Apply the named denoiser of :data:`DENOISERS` to each frame.

    Args:
        frames: (N, 3, H, W) float RGB in [0, 255].
        denoiser: a key of :data:`DENOISERS`.

    Returns:
        (N, 3, H, W) float32.
    """
    _check_frames(frames)
    if denoiser not in DENOISERS:
        raise ValueError(f"unknown denoiser {denoiser!r}; choose one of {tuple(DENOISERS)}")
    smooth = DENOISERS[denoiser](frames.detach().cpu().double().numpy())
    return torch.from_numpy(smooth).float()


def estimate_mask(frames: torch.Tensor, denoiser: str) -> torch.Tensor:
    """Estimate a mask shared by aligned frames: the mean of ``frame - denoise(frame)``.

    Args:
        frames: (k, 3, S, S) float aligned protected frames in [0, 255], k >= 1.
        denoiser: a key of :data:`DENOISERS`.

    Returns:
        (3, S, S) float32 estimate in pixel levels (signed).
    """
    return (frames.detach().cpu().float() - denoise(frames, denoiser)).mean(0)


def subtract_mask(frames: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
    """Remove an estimated mask from aligned frames, clipped to the pixel range.

    Args:
        frames: (N, 3, S, S) float aligned frames in [0, 255].
        estimate: (3, S, S) mask estimate in pixel levels (:func:`estimate_mask`).

    Returns:
        (N, 3, S, S) float32 in [0, 255].
    """
    _check_frames(frames)
    if estimate.shape != frames.shape[1:]:
        raise ValueError(f"estimate {tuple(estimate.shape)} does not fit frames "
                         f"{tuple(frames.shape)}")
    return (frames.float() - estimate.to(frames.device).float()).clamp(0, 255)


def mask_correlation(estimate: torch.Tensor, mask: torch.Tensor) -> float:
    """Pearson correlation of two masks over all their elements (1 = same pattern up to scale).

    Args:
        estimate, mask: tensors of one shape, e.g. (3, S, S), neither constant.

    Returns:
        the correlation in [-1, 1].
    """
    if estimate.shape != mask.shape:
        raise ValueError(f"shapes differ: {tuple(estimate.shape)} and {tuple(mask.shape)}")
    a = estimate.detach().double().flatten()
    b = mask.detach().double().flatten().to(a.device)
    a, b = a - a.mean(), b - b.mean()
    denominator = float(a.norm() * b.norm())
    if denominator == 0.0:
        raise ValueError("a constant mask has no correlation")
    return float(a @ b) / denominator
