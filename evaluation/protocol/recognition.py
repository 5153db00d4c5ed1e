"""The attacker's side of the LFW protocol: a protected photo as written, found again, embedded.

:func:`paste_and_round` protects photos through the shipped path
(:func:`cloak.opom.protect_photo` on the labelled face) and rounds them to 8 bits as a written
file would be; :func:`redetect` detects and aligns them again (MTCNN, the face nearest the
centre) as an attacker would; :func:`embed` turns aligned frames into L2-normalised features,
a NaN row where no face was found (such a query finds nobody:
:func:`evaluation.protocol.identity_ranks`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch

from evaluation.protocol.lfw import Photo, central_faces

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = ["embed", "paste_and_round", "redetect"]


def embed(recognizer: Recognizer, frames: Sequence[torch.Tensor | None],
          batch: int = 16) -> torch.Tensor:
    """(N, D) L2-normalised features of (3, 224, 224) frames, ``batch`` frames per call, without
    gradients; a NaN row where a frame is None (no face)."""
    out = torch.full((len(frames), recognizer.dim), math.nan)
    kept = [i for i, f in enumerate(frames) if f is not None]
    for start in range(0, len(kept), batch):
        chunk = kept[start:start + batch]
        with torch.no_grad():
            out[chunk] = recognizer.embed(torch.stack([frames[i] for i in chunk])).float()
    return out


def paste_and_round(photos: Sequence[Photo], delta: torch.Tensor, feather: float,
                    paste_mode: str = "bilinear") -> tuple[list[torch.Tensor], list[float]]:
    """Each photo with ``delta`` (3, 224, 224, pixel levels) pasted on its labelled face,
    rounded to 8 bits ((3, H, W) in [0, 255]), and the seconds each paste took.

    Args:
        photos: the photos and their faces.
        delta: the mask in the canonical frame.
        feather: the mask's fade width, frame pixels.
        paste_mode: resampling into the photo (``"bilinear"`` or ``"nearest"``).
    """
    from cloak.opom import protect_photo

    out, seconds = [], []
    for photo in photos:
        start = time.perf_counter()
        out.append(protect_photo(photo.pixels, [photo.face], delta, feather=feather,
                                 mode=paste_mode).round().clamp(0, 255))
        seconds.append(time.perf_counter() - start)
    return out, seconds


def redetect(photos: Sequence[torch.Tensor], detector: MTCNN) -> list[torch.Tensor | None]:
    """The aligned frame (3, 224, 224) of each photo's central face, found again; None where no
    face is found."""
    return [None if f is None else f.frame for f in central_faces(photos, detector)]
