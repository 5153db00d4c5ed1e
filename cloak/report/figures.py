"""The report's pictures: the amplified difference image, downscaled thumbnails as ``data:``
URIs, and the plot of protection per recognizer (matplotlib, the ``report`` extra).

>>> import torch
>>> a = torch.zeros(3, 4, 4)
>>> b = a.clone(); b[1, 2, 3] = 4.0
>>> difference_image(a, b, scale=255 / 8)[2].tolist()      # eps 8 -> 255: 4 levels -> 128
[0, 0, 0, 128]
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

import numpy as np
import torch
from PIL import Image

from cloak.quality import STRIP_ROWS

__all__ = ["QUALITY_MAX_SIDE", "THUMB_SIDE", "difference_image", "image_uri", "protection_plot"]

#: Longest side in pixels of every picture embedded in the report.
THUMB_SIDE = 512
#: Longest side in pixels at which SSIM and PSNR are measured: larger photos are compared on
#: copies area-averaged to this size (:meth:`cloak.imageio.Photo.downscaled`, both alike), which
#: bounds the time (SSIM of a 48 MP photo at full resolution: minutes on one core).
QUALITY_MAX_SIDE = 1600
#: JPEG quality of the embedded photo thumbnails (the difference image is PNG, exact).
_THUMB_QUALITY = 85


def difference_image(original: torch.Tensor, protected: torch.Tensor,
                     scale: float) -> np.ndarray:
    """``|protected - original|``, largest over the colour channels, times ``scale``, clipped.

    Args:
        original: (3, H, W) RGB in [0, 255], uint8 (exact) or float; compared
            :data:`~cloak.quality.STRIP_ROWS` rows at a time.
        protected: same shape.
        scale: amplification: ``255 / eps`` shows a change of eps levels as white.

    Returns:
        (H, W) uint8 grey in [0, 255]; 0 exactly where no channel changed.
    """
    exact = original.dtype == protected.dtype == torch.uint8
    dtype = torch.int16 if exact else torch.float32
    picture = np.empty(original.shape[1:], np.uint8)
    for top in range(0, original.shape[1], STRIP_ROWS):  # bounded memory on large photos
        rows = slice(top, top + STRIP_ROWS)
        change = (protected[:, rows].to(dtype) - original[:, rows].to(dtype)).abs().amax(dim=0)
        picture[rows] = (change * scale).round().clamp(0, 255).to(torch.uint8).numpy()
    return picture


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def image_uri(pixels: torch.Tensor | np.ndarray, max_side: int = THUMB_SIDE) -> str:
    """A picture as a ``data:`` URI, its longer side at most ``max_side``.

    Args:
        pixels: a photo, (3, H, W) RGB in [0, 255], uint8 or float -> JPEG
            (Lanczos-downscaled); or a
            difference image, (H, W) uint8 -> PNG, downscaled by block averages, so a block
            stays 0 exactly when every pixel in it is 0.
        max_side: longest side of the embedded picture, in pixels.

    Returns:
        ``data:image/jpeg;base64,...`` or ``data:image/png;base64,...``.
    """
    if isinstance(pixels, torch.Tensor):
        if pixels.dtype != torch.uint8:
            pixels = pixels.round().clamp(0, 255).to(torch.uint8)
        rgb = pixels.permute(1, 2, 0).contiguous().numpy()
        image, fmt, resample = Image.fromarray(rgb), "JPEG", Image.Resampling.LANCZOS
    else:
        image, fmt, resample = Image.fromarray(pixels), "PNG", Image.Resampling.BOX
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), resample)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **({"quality": _THUMB_QUALITY} if fmt == "JPEG" else {}))
    return _data_uri(buffer.getvalue(), f"image/{fmt.lower()}")


def protection_plot(rates: Mapping[str, tuple[int, int]]) -> str:
    """A bar chart of the share of photos each recognizer was fooled on, as a PNG ``data:`` URI.

    Args:
        rates: recognizer -> (photos protected from it, photos checked), checked >= 1.

    Returns:
        ``data:image/png;base64,...``.

    Raises:
        ImportError: matplotlib is not installed (``pip install 'cloak[report]'``).
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state

    names = list(rates)
    shares = [100.0 * rates[n][0] / rates[n][1] for n in names]
    figure = Figure(figsize=(6.0, 0.45 * len(names) + 1.2), dpi=100)
    axes = figure.add_subplot()
    bars = axes.barh(names, shares, color="#2f6f9f")
    axes.bar_label(bars, [f"{rates[n][0]}/{rates[n][1]}" for n in names], padding=3)
    axes.set_xlim(0, 110)
    axes.set_xlabel("photos protected (%): the recognizer did not match the person")
    axes.invert_yaxis()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return _data_uri(buffer.getvalue(), "image/png")
