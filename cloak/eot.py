"""Differentiable, randomised real-world transforms for expectation over transformation (EOT).

A shared photo is re-encoded, resized and sometimes blurred before anyone runs a recognizer on
it (:mod:`evaluation.transforms` holds the exact versions the benchmark applies). Learning a mask
through random differentiable stand-ins of those transforms (Athalye et al., "Synthesizing
Robust Adversarial Examples", ICML 2018) makes it survive them. Each transform is a plain function
with per-image parameters plus a thin module that holds a range and a seeded ``torch.Generator``
and draws the parameters, in the style of kornia:

- :func:`jpeg_differentiable` / :class:`RandomJPEG`: kornia's differentiable JPEG codec
  (``kornia.enhance.jpeg_codec_differentiable``; Reich et al., "Differentiable JPEG: The Devil is
  in the Details", WACV 2024): standard IJG tables, 4:2:0 chroma, DCT rounding replaced by a cubic
  pseudo-rounding whose gradient is not zero. On central 224 x 224 crops of 4 LFW photos it is
  0.7 / 0.8 / 1.0 / 1.3 / 1.4 levels (mean absolute difference) from Pillow's JPEG at quality
  95 / 85 / 75 / 50 / 30, where Pillow's JPEG itself moves the pixels by 1.1 / 1.7 / 2.2 / 3.0 /
  3.8 levels; one 224 x 224 image costs about 11 ms forward and 27 ms forward and backward on one
  CPU thread.
- :func:`resize_down_up` / :class:`RandomResize`: antialiased shrink and enlarge back
  (``torch.nn.functional.interpolate`` with ``antialias=True``, Pillow's filters). ``"bicubic"``
  is 0.37 levels from the benchmark's Pillow-bicubic resize at 0.5x and 0.25x; the default
  ``"bilinear"`` is smoother (2.0 / 3.2 levels from it) and so removes more of a mask.
- :func:`gaussian_blur` / :class:`RandomGaussianBlur`: kornia ``gaussian_blur2d``.
- :class:`RandomRealWorld`: each of the three, per image, with its own probability, in the order
  a shared photo meets them: blur (editing), resize (the platform), JPEG (the final encode).

Images are (N, 3, H, W) float RGB in [0, 255]; every output is clipped to [0, 255] and is
differentiable in the images (not in the drawn parameters). Every random module draws the same
amount of numbers from its generator on every call, whatever its probabilities, so the same seed
gives the same sequence of transforms.

>>> gen = torch.Generator().manual_seed(0)
>>> eot = RandomRealWorld(p_jpeg=1.0, p_resize=1.0, p_blur=1.0, generator=gen)
>>> frames = torch.full((2, 3, 32, 32), 128.0, requires_grad=True)
>>> out = eot(frames)
>>> out.shape, bool(torch.isfinite(torch.autograd.grad(out.sum(), frames)[0]).all())
(torch.Size([2, 3, 32, 32]), True)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from kornia.filters import gaussian_blur2d
from torch import nn

__all__ = [
    "RandomGaussianBlur",
    "RandomJPEG",
    "RandomRealWorld",
    "RandomResize",
    "gaussian_blur",
    "jpeg_differentiable",
    "resize_down_up",
]

#: Smallest sigma handed to kornia (which needs sigma > 0): its kernel is exactly a unit impulse.
_SIGMA_FLOOR = 1e-3

_RESAMPLING = ("bilinear", "bicubic")


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if images.ndim != 4 or images.shape[1] != 3 or not images.is_floating_point():
        raise ValueError(f"images must be float (N, 3, H, W) in [0, 255], got "
                         f"{images.dtype} {tuple(images.shape)}")


def _per_image(values: torch.Tensor | float, images: torch.Tensor, what: str) -> torch.Tensor:
    """A parameter as an (N,) float64 CPU tensor: one value per image (a scalar is broadcast)."""
    values = torch.as_tensor(values, dtype=torch.float64).detach().cpu().reshape(-1)
    n = images.shape[0]
    if values.numel() == 1:
        values = values.expand(n)
    if values.numel() != n:
        raise ValueError(f"{what} needs one value or one per image ({n}), got {values.numel()}")
    return values


def _check_range(bounds: tuple[float, float], low: float, high: float, what: str) -> None:
    if not low <= bounds[0] <= bounds[1] <= high:
        raise ValueError(f"{what} range must satisfy {low} <= low <= high <= {high}, got {bounds}")


def jpeg_differentiable(images: torch.Tensor, quality: torch.Tensor | float) -> torch.Tensor:
    """Differentiable JPEG encode and decode at ``quality`` (kornia's codec, 4:2:0 chroma).

    Args:
        images: (N, 3, H, W) float RGB in [0, 255].
        quality: JPEG quality in [1, 100], one for all images or one per image (N,).

    Returns:
        (N, 3, H, W) in [0, 255], differentiable in ``images``; not rounded to integer levels.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)

    >>> out = jpeg_differentiable(torch.full((1, 3, 16, 16), 100.0), 75)
    >>> round(float(out.mean()))
    100
    """
    _check_images(images)
    quality = _per_image(quality, images, "JPEG quality")
    if not bool(((quality >= 1) & (quality <= 100)).all()):
        raise ValueError(f"JPEG quality must be in [1, 100], got {quality.tolist()}")
    coded = jpeg_codec_differentiable(images / 255.0, quality.to(images))
    return (coded * 255.0).clamp(0.0, 255.0)


def resize_down_up(images: torch.Tensor, scale: torch.Tensor | float,
                   interpolation: str = "bilinear") -> torch.Tensor:
    """Shrink each image by its ``scale`` (antialiased) and enlarge it back to (H, W).

    The small side is ``max(1, round(scale * side))``; both passes run
    ``F.interpolate(..., antialias=True, align_corners=False)``, which uses Pillow's filters
    (triangle for ``"bilinear"``, the cubic with a = -0.5 for ``"bicubic"``), widened by the scale
    when shrinking. Images of different scales are resized one by one.

    Args:
        images: (N, 3, H, W) float RGB in [0, 255].
        scale: shrink factor in (0, 1], one for all images or one per image (N,).
        interpolation: ``"bilinear"`` or ``"bicubic"``.

    Returns:
        (N, 3, H, W) in [0, 255], differentiable in ``images``.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)
    """
    _check_images(images)
    if interpolation not in _RESAMPLING:
        raise ValueError(f"interpolation must be one of {_RESAMPLING}, got {interpolation!r}")
    scale = _per_image(scale, images, "resize scale")
    if not bool(((scale > 0) & (scale <= 1)).all()):
        raise ValueError(f"resize scale must be in (0, 1], got {scale.tolist()}")
    size = tuple(images.shape[-2:])
    out = []
    for image, s in zip(images, scale.tolist(), strict=True):
        small = (max(1, round(s * size[0])), max(1, round(s * size[1])))
        down = F.interpolate(image[None], size=small, mode=interpolation, align_corners=False,
                             antialias=True)
        out.append(F.interpolate(down, size=size, mode=interpolation, align_corners=False,
                                 antialias=True))
    return torch.cat(out).clamp(0.0, 255.0)


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor | float) -> torch.Tensor:
    """Gaussian blur of each image with its own ``sigma`` (kornia, reflected border).

    The kernel spans ``+/- ceil(4 * max(sigma))`` pixels (scipy's default truncation); a sigma of
    0 leaves its image unchanged.

    Args:
        images: (N, 3, H, W) float RGB in [0, 255].
        sigma: standard deviation in pixels, >= 0, one for all images or one per image (N,).

    Returns:
        (N, 3, H, W) in [0, 255], differentiable in ``images``.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)
    """
    _check_images(images)
    sigma = _per_image(sigma, images, "blur sigma")
    if not bool((sigma >= 0).all()):
        raise ValueError(f"blur sigma must be >= 0, got {sigma.tolist()}")
    radius = max(1, math.ceil(4 * float(sigma.max())))
    if 2 * radius + 1 > min(images.shape[-2:]):
        raise ValueError(f"blur sigma {float(sigma.max())} needs a kernel of {2 * radius + 1} "
                         f"pixels, more than the image side {min(images.shape[-2:])}")
    sigmas = sigma.clamp_min(_SIGMA_FLOOR)[:, None].expand(-1, 2).to(images)
    return gaussian_blur2d(images, 2 * radius + 1, sigmas, border_type="reflect").clamp(0, 255)


class RandomJPEG(nn.Module):
    """Differentiable JPEG at an integer quality drawn uniformly per image from ``quality``.

    Args:
        quality: (low, high) inclusive quality range within [1, 100].
        generator: seeded CPU generator; ``None`` uses torch's global one.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)
    """

    def __init__(self, quality: tuple[int, int] = (50, 95),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check_range(quality, 1, 100, "JPEG quality")
        self.quality, self.generator = (int(quality[0]), int(quality[1])), generator

    def sample(self, n: int) -> torch.Tensor:
        """(n,) float64 qualities (integers), one per image."""
        low, high = self.quality
        return torch.randint(low, high + 1, (n,), generator=self.generator).double()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return jpeg_differentiable(images, self.sample(images.shape[0]))


class RandomResize(nn.Module):
    """Antialiased shrink and enlarge back, scale drawn uniformly per image from ``scale``.

    Args:
        scale: (low, high) range within (0, 1].
        generator: seeded CPU generator; ``None`` uses torch's global one.
        interpolation: ``"bilinear"`` or ``"bicubic"``.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)
    """

    def __init__(self, scale: tuple[float, float] = (0.25, 1.0),
                 generator: torch.Generator | None = None,
                 interpolation: str = "bilinear") -> None:
        super().__init__()
        _check_range(scale, 1e-6, 1.0, "resize scale")
        if interpolation not in _RESAMPLING:
            raise ValueError(f"interpolation must be one of {_RESAMPLING}, got {interpolation!r}")
        self.scale, self.generator, self.interpolation = scale, generator, interpolation

    def sample(self, n: int) -> torch.Tensor:
        """(n,) float64 scales, one per image."""
        low, high = self.scale
        return low + (high - low) * torch.rand(n, generator=self.generator, dtype=torch.float64)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return resize_down_up(images, self.sample(images.shape[0]), self.interpolation)


class RandomGaussianBlur(nn.Module):
    """Gaussian blur, sigma drawn uniformly per image from ``sigma``.

    Args:
        sigma: (low, high) range in pixels, low >= 0.
        generator: seeded CPU generator; ``None`` uses torch's global one.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W)
    """

    def __init__(self, sigma: tuple[float, float] = (0.0, 1.5),
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        _check_range(sigma, 0.0, math.inf, "blur sigma")
        self.sigma, self.generator = sigma, generator

    def sample(self, n: int) -> torch.Tensor:
        """(n,) float64 sigmas, one per image."""
        low, high = self.sigma
        return low + (high - low) * torch.rand(n, generator=self.generator, dtype=torch.float64)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return gaussian_blur(images, self.sample(images.shape[0]))


def _apply_to(images: torch.Tensor, chosen: torch.Tensor,
              transform: Callable[..., torch.Tensor], params: torch.Tensor,
              *args: str) -> torch.Tensor:
    """``transform`` on the chosen images only (with their parameters), the others unchanged."""
    if not bool(chosen.any()):
        return images
    index = chosen.nonzero()[:, 0].to(images.device)
    changed = transform(images[index], params[chosen], *args)
    return images.index_put((index,), changed)


class RandomRealWorld(nn.Module):
    """What sharing may do to a photo: random blur, then resize, then JPEG, each per image.

    On every call, 6 numbers per image are drawn from ``generator``: whether to blur, resize and
    encode it (with probabilities ``p_blur``, ``p_resize``, ``p_jpeg``), a sigma, a scale and a
    quality; the chosen transforms run on the chosen images only.

    Args:
        p_jpeg: probability of JPEG for each image, in [0, 1].
        p_resize: probability of the down-up resize, in [0, 1].
        p_blur: probability of the Gaussian blur, in [0, 1].
        generator: seeded CPU generator; ``None`` uses torch's global one.
        quality: JPEG quality range, see :class:`RandomJPEG`.
        scale: resize scale range, see :class:`RandomResize`.
        sigma: blur sigma range, see :class:`RandomGaussianBlur`.

    Shape:
        (N, 3, H, W) -> (N, 3, H, W), float RGB in [0, 255].
    """

    def __init__(self, p_jpeg: float = 0.5, p_resize: float = 0.5, p_blur: float = 0.5,
                 generator: torch.Generator | None = None, *,
                 quality: tuple[int, int] = (50, 95), scale: tuple[float, float] = (0.25, 1.0),
                 sigma: tuple[float, float] = (0.0, 1.5)) -> None:
        super().__init__()
        for name, p in (("p_jpeg", p_jpeg), ("p_resize", p_resize), ("p_blur", p_blur)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {p}")
        self.probs = torch.tensor([p_blur, p_resize, p_jpeg], dtype=torch.float64)
        self.generator = generator
        self.blur = RandomGaussianBlur(sigma, generator)
        self.resize = RandomResize(scale, generator)
        self.jpeg = RandomJPEG(quality, generator)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        _check_images(images)
        n = images.shape[0]
        draws = torch.rand(3, n, generator=self.generator, dtype=torch.float64)
        chosen = draws < self.probs[:, None]
        sigma, scale, quality = self.blur.sample(n), self.resize.sample(n), self.jpeg.sample(n)
        out = _apply_to(images, chosen[0], gaussian_blur, sigma)
        out = _apply_to(out, chosen[1], resize_down_up, scale, self.resize.interpolation)
        return _apply_to(out, chosen[2], jpeg_differentiable, quality)
