"""dlib's own runtime (dlib-bin) on the face descriptor weights, as a black box.

Same weights, crop and output as :mod:`attackers.recognizers.dlib_resnet`; the crops are rounded
to uint8 (dlib takes ``rgb_pixel`` images) and run through
``dlib.face_recognition_model_v1.compute_face_descriptor`` on a batch of 150x150 chips.

>>> # rec = load(attackers.zoo.fetch("dlib-native")); rec.embed(frames)  # (N, 128), unit rows
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import dlib
import numpy as np
import torch

from attackers.frame import CropSpec
from attackers.recognizers.base import BlackBoxRecognizer
from attackers.recognizers.dlib_resnet import DLIB_CROP

__all__ = ["DlibNative", "load", "to_uint8_chips"]


def to_uint8_chips(crops: torch.Tensor) -> list[np.ndarray]:
    """Round crops to the uint8 HxWx3 RGB arrays dlib takes.

    Args:
        crops: (N, 3, S, S) float RGB in [0, 255]; values are rounded and clipped.

    Returns:
        N contiguous uint8 arrays of shape (S, S, 3).
    """
    pixels = crops.detach().round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    return [np.ascontiguousarray(p) for p in pixels.cpu().numpy()]


class DlibNative(BlackBoxRecognizer):
    """dlib's ``face_recognition_model_v1`` behind the :class:`Recognizer` interface.

    Args:
        weights: path to ``dlib_face_recognition_resnet_model_v1.dat``.
        crop: the chip relative to the canonical frame (that of ``dlib-resnet``).
    """

    name = "dlib-native"
    dim = 128

    def __init__(self, weights: str | Path, crop: CropSpec = DLIB_CROP) -> None:
        super().__init__()
        self.crop = crop
        self.weights = Path(weights)
        try:
            self.runtime = dlib.face_recognition_model_v1(str(self.weights))
        except RuntimeError as exc:
            raise ValueError(f"{self.weights}: dlib cannot load it: {exc}") from None

    def forward_crop(self, crops: torch.Tensor) -> torch.Tensor:
        """Raw 128-d descriptors of 150x150 chips from dlib's runtime.

        Args:
            crops: (N, 3, 150, 150) float32 RGB in [0, 255] (rounded to uint8 for dlib).

        Returns:
            (N, 128) float32 on the device of ``crops``.
        """
        if crops.shape[1:] != (3, 150, 150):
            raise ValueError(f"dlib chips must be (N, 3, 150, 150), got {tuple(crops.shape)}")
        if crops.shape[0] == 0:
            return crops.new_zeros(0, self.dim)
        descriptors = self.runtime.compute_face_descriptor(to_uint8_chips(crops))
        out = np.array([np.asarray(d, dtype=np.float32) for d in descriptors])
        return torch.from_numpy(out).to(crops.device)


def load(files: Mapping[str, Path]) -> DlibNative:
    """Build :class:`DlibNative` (zoo loader of ``dlib-native``, reference of ``dlib-resnet``).

    Args:
        files: ``{"weights": path to dlib_face_recognition_resnet_model_v1.dat}``.
    """
    return DlibNative(files["weights"])
