"""Random views of a training face: new "photos" of the person, synthesised inside the loop.

A universal mask fits the handful of photos it was learned on much better than the person's
next photo (the white-box cosine to the class centre moves -0.93 on training photos, -0.54 on
new ones: :mod:`cloak.opom`). :class:`RandomViews` turns each training face into a different
plausible photo at every step, so the mask is learned on many more views than photos (FaceCloak,
Yahn et al. 2026, learns from synthesised views of ONE photo):

- mirror (probability ``flip``): the photo flipped left-right, aligned as the aligner would align
  the mirror image (the face is mirrored in the canonical frame; the mask is not);
- alignment jitter: a random similarity of the alignment about the frame centre (rotation,
  scale, shift), the error between where landmarks put the frame on two photos of one pose;
- lighting: per photo a gamma, a gain per colour channel and a brightness offset on the clean
  photo pixels (the mask is added after, as on a real photo).

Blur, resizing and JPEG of the protected photo are the separate EOT option
(:class:`cloak.eot.RandomRealWorld`). Views act on the clean region and the alignment only,
so they are not differentiated through and cost one small warp per photo.

>>> from cloak.opom import TrainingFace
>>> face = TrainingFace(torch.full((3, 64, 64), 100.0), torch.tensor([[3.5, 0, 0], [0, 3.5, 0]]))
>>> view = RandomViews(torch.Generator().manual_seed(0))(face)
>>> view.region.shape, view.matrix.shape
(torch.Size([3, 64, 64]), torch.Size([2, 3]))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from attackers.frame import FRAME_SIZE

if TYPE_CHECKING:
    from cloak.opom import TrainingFace

__all__ = ["RandomViews", "mirror_matrix"]


def _full(matrix: torch.Tensor) -> torch.Tensor:
    """(2, 3) -> (3, 3) float64, on ``matrix``'s device."""
    bottom = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64, device=matrix.device)
    return torch.cat([matrix.double(), bottom])


def mirror_matrix(matrix: torch.Tensor, width: int, size: int = FRAME_SIZE) -> torch.Tensor:
    """The alignment of a photo flipped left-right, given the original photo's alignment.

    With ``F_w: x -> (w - 1) - x`` in the photo and ``F_s`` the same in the frame, the flipped
    photo's alignment is ``F_s o M o F_w``: a similarity again (two reflections), which puts the
    mirrored face upright in the frame as landmark alignment of the flipped photo would.

    Args:
        matrix: (2, 3) photo -> frame similarity.
        width: the photo's width in pixels.
        size: the frame's side in pixels.

    Returns:
        (2, 3) float32 flipped photo -> frame, on ``matrix``'s device.
    """
    flip_photo = torch.tensor([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                              dtype=torch.float64, device=matrix.device)
    flip_frame = torch.tensor([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]],
                              dtype=torch.float64, device=matrix.device)
    return (flip_frame @ _full(matrix) @ flip_photo)[:2].float()


class RandomViews:
    """Draws a random view of a training face (see the module docstring).

    Args:
        generator: seeded CPU generator (the optimiser's, so a seed gives one mask).
        flip: probability of the mirror image.
        max_angle: alignment jitter, rotation in degrees, ``U[-a, a]``.
        max_scale: alignment jitter, relative scale ``U[1 - s, 1 + s]``.
        max_shift: alignment jitter, shift in frame pixels ``U[-t, t]`` in x and y.
        max_gamma: lighting, ``gamma = exp(U[-g, g])`` on pixels scaled to [0, 1].
        max_gain: lighting, per-channel gain ``U[1 - c, 1 + c]``.
        max_brightness: lighting, offset ``U[-b, b]`` pixel levels.

    Seven numbers (plus one per channel) are drawn per call, whatever the probabilities.
    """

    def __init__(self, generator: torch.Generator, *, flip: float = 0.5, max_angle: float = 4.0,
                 max_scale: float = 0.04, max_shift: float = 3.0, max_gamma: float = 0.25,
                 max_gain: float = 0.08, max_brightness: float = 12.0) -> None:
        if not 0.0 <= flip <= 1.0:
            raise ValueError(f"flip probability must be in [0, 1], got {flip}")
        ranges = (max_angle, max_scale, max_shift, max_gamma, max_gain, max_brightness)
        if min(ranges) < 0 or max_scale >= 1 or max_gain >= 1:
            raise ValueError(f"view ranges must be >= 0 (scale and gain < 1), got {ranges}")
        self.generator, self.flip = generator, flip
        self.max_angle, self.max_scale, self.max_shift = max_angle, max_scale, max_shift
        self.max_gamma, self.max_gain, self.max_brightness = max_gamma, max_gain, max_brightness

    def _uniform(self, n: int) -> torch.Tensor:
        """n draws of U[-1, 1] (float64)."""
        return torch.rand(n, generator=self.generator, dtype=torch.float64) * 2 - 1

    def __call__(self, face: TrainingFace) -> TrainingFace:
        """A new :class:`~cloak.opom.TrainingFace`: region (3, h, w) in [0, 255], matrix (2, 3),
        on ``face``'s device (the draws come from the CPU generator)."""
        from cloak.opom import TrainingFace

        mirror = bool(torch.rand(1, generator=self.generator) < self.flip)
        angle, scale, sx, sy, gamma, brightness = self._uniform(6).tolist()
        gains = (1.0 + self.max_gain * self._uniform(3)).float().to(face.region.device)
        region, matrix = face.region, face.matrix
        if mirror:
            region, matrix = region.flip(-1), mirror_matrix(matrix, region.shape[-1])
        a = math.radians(angle * self.max_angle)
        s = 1.0 + scale * self.max_scale
        c = (FRAME_SIZE - 1) / 2
        cos, sin = s * math.cos(a), s * math.sin(a)
        rot = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64, device=matrix.device)
        centre = torch.tensor([c, c], dtype=torch.float64, device=matrix.device)
        shift = torch.tensor([sx, sy], dtype=torch.float64, device=matrix.device) * self.max_shift
        jitter = torch.cat([rot, (centre - rot @ centre + shift)[:, None]], 1)
        matrix = (_full(jitter) @ _full(matrix))[:2].float()
        lit = 255.0 * (region / 255.0).clamp_min(0).pow(math.exp(gamma * self.max_gamma))
        lit = lit * gains[:, None, None] + brightness * self.max_brightness
        return TrainingFace(lit.clamp(0, 255), matrix)
