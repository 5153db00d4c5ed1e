"""Synthetic physical face masks drawn from 68 landmarks, as in Seneviratne et al., "Does a Face
Mask Protect my Privacy?: Deep Learning to Predict Protected Attributes from Masked Face Images"
(AJCAI 2021), which filled the jaw line up to the nose bridge of dlib's 68 points.

Styles (:data:`STYLES`; points 0-based, iBUG order, see :mod:`attackers.landmarks`):

- ``"paper"``: the polygon of the jaw line closed through the nose bridge (28), one flat colour
  (white unless ``colour`` is given);
- ``"surgical"``: the same polygon with the corner at the nose bridge rounded, light blue,
  green or white (random within ranges unless ``colour``), darker towards the chin and the
  sides, three curved pleats (a shadow under a highlight) and faint fibre noise;
- ``"cloth"``: the surgical outline filled with stripes, checks or dots in random colours and
  scale, with the same shading and noise.

The jaw line runs from point 1 to 15, where ear loops sit, not from 0 to 16: those two sit
beside the eyes, and on 285 faces (186 LFW photos, 99 UTKFace chips) straight edges from them to
28 covered an eye landmark on 97 faces and an eye centre on 12; from 1 and 15, on none.

Face axes: ``x`` along the jaw (point 0 to 16), ``y`` perpendicular towards the chin, origin at
28, so patterns turn with the face. Edges are anti-aliased: the polygon is filled on a 4x
supersampled canvas (Pillow) and block-averaged into an alpha map; the texture is
alpha-composited onto the photo. The coverage mask is ``alpha > 0``; every pixel outside it is
returned bit-exactly. The same seed gives the same pixels; :func:`mask_faces` draws face ``j``
of photo ``i`` from ``numpy.random.default_rng([seed, i, j])``.

>>> # marks = Landmarker()
>>> # results = mask_faces(images, align_faces(images, detector), "surgical", seed=0,
>>> #                      landmarker=marks)
>>> # failed = [r.failed for r in results if not r.ok]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from attackers.landmarks import FaceLandmarks, Landmarker

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import Detection
    from cloak.faces import AlignedFace

__all__ = ["STYLES", "SUPERSAMPLE", "MaskedFace", "draw_mask", "mask_faces", "mask_outline"]

#: Mask styles, in report order.
STYLES: tuple[str, ...] = ("paper", "surgical", "cloth")
#: Supersampling factor of the polygon fill (per axis).
SUPERSAMPLE = 4
#: Points of the rounded corner at the nose bridge.
_ROUNDING_STEPS = 12
#: Surgical mask colour families: RGB lower and upper bounds.
_SURGICAL_COLOURS = {
    "blue": ((140, 190, 220), (180, 220, 245)),
    "green": ((145, 200, 180), (185, 230, 210)),
    "white": ((228, 230, 230), (248, 250, 250)),
}


@dataclass
class MaskedFace:
    """One face of a batch with a synthetic mask drawn on, or why it could not be.

    Attributes:
        image_index: index of the photo in the batch.
        face_index: index of the face in that photo's list; None for a photo without faces.
        style: the mask style.
        landmarks: the 68-point result (None when the photo had no face).
        image: (3, H, W) float32 RGB in [0, 255], the photo with this face masked (other
            faces untouched); None when failed.
        coverage: (H, W) bool, the pixels the mask touched; None when failed.
        failed: the reason, or None.
    """

    image_index: int
    face_index: int | None
    style: str
    landmarks: FaceLandmarks | None
    image: torch.Tensor | None = None
    coverage: torch.Tensor | None = None
    failed: str | None = None

    @property
    def ok(self) -> bool:
        return self.failed is None


def _face_axes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Origin (28), unit x (jaw 0 -> 16), unit y (towards the chin), face width, mask height."""
    ux = points[16] - points[0]
    width = float(np.linalg.norm(ux))
    ux = ux / width
    uy = np.array([-ux[1], ux[0]])
    height = max(float((points[8] - points[28]) @ uy), 1.0)
    return points[28], ux, uy, width, height


def mask_outline(points: torch.Tensor | np.ndarray, style: str) -> np.ndarray:
    """Polygon of a mask style in photo pixels.

    Args:
        points: (68, 2) landmarks ``(x, y)``, pixel-index coordinates.
        style: one of :data:`STYLES`.

    Returns:
        (K, 2) float64 vertices: ``"paper"`` jaw 1-15 then the nose bridge 28 (K = 16); the
        others jaw 1-15 then the corner at 28 rounded by a quadratic Bezier from 30% of the way
        towards 15 to 30% of the way towards 1 (K = 15 + :data:`_ROUNDING_STEPS`).
    """
    _check_style(style)
    p = np.asarray(points, dtype=np.float64)
    if style == "paper":
        return np.concatenate([p[1:16], p[28:29]])
    start, end = p[28] + 0.3 * (p[15] - p[28]), p[28] + 0.3 * (p[1] - p[28])
    t = np.linspace(0, 1, _ROUNDING_STEPS)[:, None]
    top = (1 - t) ** 2 * start + 2 * t * (1 - t) * p[28] + t**2 * end
    return np.concatenate([p[1:16], top])


def _alpha(outline: np.ndarray, x0: int, y0: int, w: int, h: int) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of a polygon over the window at (x0, y0) of size w x h."""
    canvas = Image.new("L", (w * SUPERSAMPLE, h * SUPERSAMPLE), 0)
    # pixel-index coordinates -> canvas coordinates (pixel i spans [i - 0.5, i + 0.5])
    verts = (outline - [x0, y0] + 0.5) * SUPERSAMPLE
    ImageDraw.Draw(canvas).polygon([tuple(v) for v in verts.tolist()], fill=255)
    return np.asarray(canvas.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0


def _shading(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Brightness factor in face axes (``u`` in face widths, ``v`` in mask heights)."""
    return 1.0 - 0.10 * np.clip(v, 0, 1) - 0.20 * np.clip(2 * np.abs(u), 0, 1) ** 4


def _surgical(u: np.ndarray, v: np.ndarray, rng: np.random.Generator,
              colour: np.ndarray | None) -> np.ndarray:
    if colour is None:
        family = list(_SURGICAL_COLOURS)[rng.integers(len(_SURGICAL_COLOURS))]
        low, high = _SURGICAL_COLOURS[family]
        colour = rng.uniform(low, high)
    light = _shading(u, v)
    bend = rng.uniform(0.05, 0.12)
    for centre in (0.33, 0.50, 0.67) + rng.normal(0, 0.02, 3):
        d = (v - centre - bend * u**2) / 0.018
        light = light * (1 - 0.22 * np.exp(-d**2)) * (1 + 0.07 * np.exp(-(d + 2) ** 2))
    return colour * light[..., None] + rng.normal(0, 1.5, (*u.shape, 1))


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 255] from hue, saturation 0.3-0.9, value 0.3-0.95."""
    hue, sat, val = rng.uniform(0, 1), rng.uniform(0.3, 0.9), rng.uniform(0.3, 0.95)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return 255 * val * (1 - sat * np.clip(np.minimum(k, 4 - k), 0, 1))


def _cloth(a: np.ndarray, b: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Patterned fabric; ``a``, ``b`` face axes in face widths (isotropic), ``v`` in heights."""
    first, second = _random_colour(rng), _random_colour(rng)
    period = rng.uniform(0.06, 0.14)
    angle = rng.uniform(-math.pi / 4, math.pi / 4)
    s = a * math.cos(angle) + b * math.sin(angle)
    t = -a * math.sin(angle) + b * math.cos(angle)
    pattern = ("stripes", "checks", "dots")[rng.integers(3)]
    if pattern == "stripes":
        mix = 0.5 + 0.5 * np.tanh(4 * np.sin(2 * math.pi * t / period))
    elif pattern == "checks":
        bands = [0.5 + 0.5 * np.tanh(4 * np.sin(2 * math.pi * x / period)) for x in (s, t)]
        mix = (bands[0] + bands[1]) / 2
    else:
        radius = period * rng.uniform(0.18, 0.32)
        ds = (s / period - np.round(s / period)) * period
        dt = (t / period - np.round(t / period)) * period
        mix = np.clip((radius - np.hypot(ds, dt)) / (0.25 * radius) + 0.5, 0, 1)
    fabric = first * (1 - mix[..., None]) + second * mix[..., None]
    return fabric * _shading(a, v)[..., None] + rng.normal(0, 2.5, (*a.shape, 1))


def draw_mask(image: torch.Tensor, points: torch.Tensor | np.ndarray, style: str,
              rng: np.random.Generator | int = 0,
              colour: Sequence[float] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw one synthetic mask onto a photo.

    Args:
        image: (3, H, W) float RGB in [0, 255].
        points: (68, 2) landmarks ``(x, y)`` of the face, photo pixels.
        style: one of :data:`STYLES`.
        rng: a numpy Generator, or a seed for one.
        colour: RGB in [0, 255] of ``"paper"`` (default white) and ``"surgical"`` (default
            random); ignored by ``"cloth"``.

    Returns:
        (masked, coverage): (3, H, W) float32 photo in [0, 255] equal to ``image`` bit-exactly
        outside ``coverage``; (H, W) bool, the pixels with alpha > 0 (all False when the mask
        falls outside the photo).

    Shape:
        (3, H, W), (68, 2) -> (3, H, W), (H, W)
    """
    _check_style(style)
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be (3, H, W), got {tuple(image.shape)}")
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    image = image.float()
    h, w = image.shape[1:]
    coverage = torch.zeros(h, w, dtype=torch.bool)
    p = np.asarray(points, dtype=np.float64)
    outline = mask_outline(p, style)
    x0, y0 = (max(0, math.floor(c) - 1) for c in outline.min(0))
    x1, y1 = min(w, math.ceil(outline[:, 0].max()) + 2), min(h, math.ceil(outline[:, 1].max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return image.clone(), coverage
    alpha = _alpha(outline, x0, y0, x1 - x0, y1 - y0)
    origin, ux, uy, width, height = _face_axes(p)
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rel = np.stack([xs - origin[0], ys - origin[1]], -1)
    a, b = rel @ ux / width, rel @ uy / width
    v = b * width / height
    if style == "paper":
        fill = np.broadcast_to(np.asarray(colour if colour is not None else (255.0,) * 3,
                                          dtype=np.float64), (*a.shape, 3))
    elif style == "surgical":
        fill = _surgical(a, v, rng, None if colour is None else np.asarray(colour, float))
    else:
        fill = _cloth(a, b, v, rng)
    tex = torch.from_numpy(np.clip(fill, 0, 255).astype(np.float32)).permute(2, 0, 1)
    weight = torch.from_numpy(alpha)
    window = image[:, y0:y1, x0:x1]
    blended = window * (1 - weight) + tex * weight
    touched = weight > 0
    masked = image.clone()
    masked[:, y0:y1, x0:x1] = torch.where(touched, blended, window)
    coverage[y0:y1, x0:x1] = touched
    return masked, coverage


def _box_and_five(face: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    detection = getattr(face, "detection", face)
    return detection.box, getattr(detection, "landmarks", None)


def mask_faces(images: Sequence[torch.Tensor],
               faces: Sequence[Sequence[AlignedFace | Detection]], style: str, seed: int = 0,
               *, landmarker: Landmarker | None = None,
               colour: Sequence[float] | None = None) -> list[MaskedFace]:
    """Draw a mask style onto every face of a batch of photos, one result per face.

    Each face's result is its photo with only that face masked. A photo without faces gives one
    failed result (``face_index`` None); a face whose landmarks fail, or whose mask falls
    outside the photo, gives a failed result with the reason: callers count and report them.

    Args:
        images: each (3, H, W) float RGB in [0, 255].
        faces: per photo, its faces (:class:`~cloak.faces.AlignedFace` from
            :func:`~cloak.faces.align_faces`, or MTCNN
            :class:`~attackers.detectors.mtcnn.Detection`).
        style: one of :data:`STYLES`.
        seed: face ``j`` of photo ``i`` draws from ``numpy.random.default_rng([seed, i, j])``.
        landmarker: a :class:`~attackers.landmarks.Landmarker` (built once if None).
        colour: see :func:`draw_mask`.

    Returns:
        results in photo order, then face order.
    """
    _check_style(style)
    if len(images) != len(faces):
        raise ValueError(f"{len(images)} photos but {len(faces)} face lists")
    landmarker = landmarker or Landmarker()
    results: list[MaskedFace] = []
    for i, (image, found) in enumerate(zip(images, faces, strict=True)):
        if not found:
            results.append(MaskedFace(i, None, style, None, failed="no face detected"))
            continue
        pairs = [_box_and_five(f) for f in found]
        marks = landmarker.locate(image, [b for b, _ in pairs], [f for _, f in pairs])
        for j, mark in enumerate(marks):
            if not mark.ok:
                results.append(MaskedFace(i, j, style, mark, failed=mark.failed))
                continue
            rng = np.random.default_rng([seed, i, j])
            masked, coverage = draw_mask(image, mark.points, style, rng, colour)
            if not coverage.any():
                results.append(MaskedFace(i, j, style, mark, failed="mask outside the photo"))
                continue
            results.append(MaskedFace(i, j, style, mark, masked, coverage))
    return results


def _check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown mask style {style!r}; valid styles: {', '.join(STYLES)}")
