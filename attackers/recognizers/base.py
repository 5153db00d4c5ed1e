"""The recognizer interface shared by white-box torch ports and black-box runtimes.

Every recognizer takes faces in the canonical frame (see :mod:`attackers.frame`), cuts its own
crop with a fixed similarity transform, normalises inside, and returns L2-normalised features.

>>> # rec = attackers.load("sface"); rec.embed(frames)  # frames: (N, 3, 224, 224) in [0, 255]
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from attackers.frame import CropSpec, warp_to_crop

__all__ = ["Recognizer", "BlackBoxRecognizer"]


class Recognizer(nn.Module):
    """A face recognizer that maps canonical frames to unit-length features.

    Subclasses set :attr:`name`, :attr:`crop`, :attr:`dim` and implement :meth:`forward_crop`.
    White-box recognizers are differentiable: gradients of :meth:`embed` reach the input pixels.

    Attributes:
        name: zoo name.
        crop: the model's input crop relative to the canonical frame.
        dim: feature dimension.
        differentiable: False for black boxes (no gradients).
    """

    name: str = ""
    crop: CropSpec
    dim: int
    differentiable: bool = True

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw (unnormalised) features of model-sized crops.

        Args:
            crops: (N, 3, S, S) float32 RGB in [0, 255], S = ``self.crop.size``.

        Returns:
            (N, dim) float32 features.
        """
        raise NotImplementedError

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """L2-normalised features of canonical frames.

        Args:
            frames: (N, 3, FRAME_SIZE, FRAME_SIZE) float32 RGB in [0, 255].

        Returns:
            (N, dim) float32, each row of unit length.
        """
        return F.normalize(self.forward_crop(warp_to_crop(frames, self.crop)), dim=1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.embed(frames)


class BlackBoxRecognizer(Recognizer):
    """A recognizer run by its reference runtime: same :meth:`embed`, no gradients."""

    differentiable = False

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return super().embed(frames.detach())
