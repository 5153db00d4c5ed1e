"""Exact real-world transforms of a protected photo: what sharing does to the file.

Each transform takes one full photo as a decoded 8-bit file would give it and returns the photo
that a viewer downloads after the platform processed it. They are exact and not differentiable
(Pillow, scipy, kornia under ``no_grad``); :mod:`cloak.eot` holds the differentiable,
randomised counterparts used while a mask is learned.

Conventions shared by every transform:

- input ``(3, H, W)`` float RGB in [0, 255]; it is first rounded to the nearest level and clipped
  to [0, 255] (``np.rint``), as writing the protected photo to a file would;
- output ``(3, H, W)`` float32 RGB in [0, 255], integer-valued, the same size as the input.

Choices (measured on LFW crops where a figure is given):

- JPEG: Pillow (libjpeg-turbo) encode and decode in memory, standard IJG tables scaled by the
  quality, chroma subsampled 4:2:0, which is what Pillow does by default at every quality and what
  sharing platforms re-encode with. Our own output keeps 4:4:4 (:func:`cloak.imageio.write_photo`).
- resize: Pillow ``BICUBIC`` down to ``round(f * side)`` and back up to the original size.
  Bicubic is Pillow's default for ``Image.resize`` and ``thumbnail`` (so what a Pillow-based web
  stack does unless told otherwise); Pillow widens the filter by the scale factor when it
  shrinks, so the downscale is antialiased. ``LANCZOS`` keeps a little more of the high
  frequencies a cloak lives in, so bicubic is the slightly harsher of the two.
- blur: scipy ``gaussian_filter`` per channel, reflected border, kernel truncated at 4 sigma.
- median: scipy ``median_filter`` per channel over a k x k window, reflected border.
- bilateral: :func:`kornia.filters.bilateral_blur` with the setting of OpenCV's tutorial,
  ``cv2.bilateralFilter(img, 9, 75, 75)``: a 9 x 9 window, colour sigma 75 levels on the L1
  colour distance (sum of the absolute RGB differences, as OpenCV uses for colour images) and
  spatial sigma 75 (nearly flat over the window). OpenCV's window is a disc of diameter 9, this
  one the full square.

>>> import torch
>>> photo = torch.full((3, 32, 48), 128.0)
>>> TRANSFORMS["jpeg75"](photo).shape
torch.Size([3, 32, 48])
>>> parse_transform("resize0.5")(photo).unique()
tensor([128.])
"""

from __future__ import annotations

import io
from collections.abc import Callable
from functools import partial

import numpy as np
import torch
from kornia.filters import bilateral_blur
from PIL import Image
from scipy.ndimage import gaussian_filter, median_filter

__all__ = ["TRANSFORMS", "bilateral", "blur", "jpeg", "median", "parse_transform", "resize"]

#: Pillow's ``subsampling`` code for 4:2:0 chroma subsampling.
_SUBSAMPLING_420 = 2


def _to_uint8(image: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 255] -> (H, W, 3) uint8, rounded and clipped like a file write."""
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must have shape (3, H, W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"image must be a float tensor in [0, 255], got {image.dtype}")
    rgb = image.detach().to("cpu", torch.float32).permute(1, 2, 0).numpy()
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _from_array(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) array in [0, 255] -> (3, H, W) float32, rounded and clipped to 8-bit levels."""
    levels = np.clip(np.rint(rgb), 0, 255).astype(np.float32)
    return torch.from_numpy(levels).permute(2, 0, 1).contiguous()


def jpeg(image: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode as JPEG at ``quality`` (4:2:0 chroma) and decode again, in memory, with Pillow.

    Args:
        image: (3, H, W) float RGB in [0, 255].
        quality: JPEG quality, 1..100.

    Returns:
        (3, H, W) float32 RGB in [0, 255], integer-valued.

    Raises:
        ValueError: for a quality outside 1..100 or a malformed image.
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be in 1..100, got {quality}")
    buffer = io.BytesIO()
    Image.fromarray(_to_uint8(image)).save(buffer, format="JPEG", quality=int(quality),
                                           subsampling=_SUBSAMPLING_420)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return _from_array(np.asarray(decoded.convert("RGB")))


def resize(image: torch.Tensor, factor: float) -> torch.Tensor:
    """Shrink by ``factor`` (antialiased Pillow bicubic), then enlarge back to the original size.

    The small side is ``max(1, round(factor * side))``; both passes use ``Image.BICUBIC``.

    Args:
        image: (3, H, W) float RGB in [0, 255].
        factor: scale of the shrunk photo, in (0, 1].

    Returns:
        (3, H, W) float32 RGB in [0, 255], integer-valued.

    Raises:
        ValueError: for a factor outside (0, 1] or a malformed image.
    """
    if not 0 < factor <= 1:
        raise ValueError(f"resize factor must be in (0, 1], got {factor}")
    pil = Image.fromarray(_to_uint8(image))
    small = (max(1, round(factor * pil.width)), max(1, round(factor * pil.height)))
    restored = pil.resize(small, Image.BICUBIC).resize(pil.size, Image.BICUBIC)
    return _from_array(np.asarray(restored))


def blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of each channel (scipy, reflected border, truncated at 4 sigma).

    Args:
        image: (3, H, W) float RGB in [0, 255].
        sigma: standard deviation in pixels, > 0.

    Returns:
        (3, H, W) float32 RGB in [0, 255], integer-valued.

    Raises:
        ValueError: for a sigma <= 0 or a malformed image.
    """
    if not sigma > 0:
        raise ValueError(f"blur sigma must be > 0, got {sigma}")
    rgb = _to_uint8(image).astype(np.float32)
    return _from_array(gaussian_filter(rgb, sigma=(sigma, sigma, 0), mode="reflect"))


def median(image: torch.Tensor, size: int) -> torch.Tensor:
    """Median of each channel over a ``size`` x ``size`` window (scipy, reflected border).

    Args:
        image: (3, H, W) float RGB in [0, 255].
        size: odd window side in pixels, >= 3.

    Returns:
        (3, H, W) float32 RGB in [0, 255], integer-valued.

    Raises:
        ValueError: for an even or too small window or a malformed image.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"median window must be odd and >= 3, got {size}")
    return _from_array(median_filter(_to_uint8(image), size=(size, size, 1), mode="reflect"))


def bilateral(image: torch.Tensor, size: int = 9, sigma_color: float = 75.0,
              sigma_space: float = 75.0) -> torch.Tensor:
    """Edge-preserving bilateral filter (kornia ``bilateral_blur``, L1 colour distance).

    A neighbour weighs ``g(dx, dy) * exp(-d^2 / (2 sigma_color^2))``, ``g`` the normalised Gaussian
    of ``sigma_space`` over the ``size`` x ``size`` window and ``d`` the sum of its absolute RGB
    differences from the centre pixel, in levels. The defaults are OpenCV's tutorial setting
    ``cv2.bilateralFilter(img, 9, 75, 75)`` (see the module docstring for the differences).

    Args:
        image: (3, H, W) float RGB in [0, 255].
        size: odd window side in pixels.
        sigma_color: colour standard deviation in levels, > 0.
        sigma_space: spatial standard deviation in pixels, > 0.

    Returns:
        (3, H, W) float32 RGB in [0, 255], integer-valued.

    Raises:
        ValueError: for an even window, a sigma <= 0 or a malformed image.
    """
    if size < 1 or size % 2 == 0:
        raise ValueError(f"bilateral window must be odd and >= 1, got {size}")
    if not (sigma_color > 0 and sigma_space > 0):
        raise ValueError(f"bilateral sigmas must be > 0, got {sigma_color} and {sigma_space}")
    levels = torch.from_numpy(_to_uint8(image)).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        out = bilateral_blur(levels, size, sigma_color, (sigma_space, sigma_space),
                             border_type="reflect", color_distance_type="l1")
    return _from_array(out[0].permute(1, 2, 0).numpy())


#: The benchmark's named transforms: name -> ``(3, H, W) [0, 255] -> (3, H, W) [0, 255]``.
TRANSFORMS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    **{f"jpeg{q}": partial(jpeg, quality=q) for q in (95, 85, 75, 50, 30)},
    **{f"resize{f}": partial(resize, factor=f) for f in (0.5, 0.25)},
    "blur1": partial(blur, sigma=1.0),
    "median3": partial(median, size=3),
    "bilateral": bilateral,
}


def parse_transform(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The transform registered as ``name`` in :data:`TRANSFORMS`.

    Raises:
        ValueError: naming the unknown transform and listing the valid names.
    """
    try:
        return TRANSFORMS[name]
    except KeyError:
        raise ValueError(f"unknown transform {name!r}; valid names: "
                         f"{', '.join(TRANSFORMS)}") from None
