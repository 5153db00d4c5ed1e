"""Labeled Faces in the Wild as laid out in ``shared/data/lfw`` (see its README).

``identities/<Person>/<Person>_NNNN.jpg`` (62 people, up to 30 photos each) and
``distractors/*.jpg`` (2,679 other people, one photo each); photos are 250x250 with the labelled
person's face near the centre.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = ["LfwPhoto", "central_face_index", "identity_photos", "load_rgb"]


@dataclass(frozen=True)
class LfwPhoto:
    """One labelled LFW photo."""

    path: Path
    person: str


def identity_photos(root: Path, per_person: int | None = None,
                    people: int | None = None) -> list[LfwPhoto]:
    """Photos under ``root/identities``, sorted by person then file name.

    Args:
        root: the ``lfw`` folder.
        per_person: keep at most this many photos per person (first ones by name).
        people: keep at most this many people (first ones by name).
    """
    folder = root / "identities"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: LFW identities folder not found")
    persons = sorted(p for p in folder.iterdir() if p.is_dir())[:people]
    photos = []
    for person in persons:
        files = sorted(person.glob("*.jpg"))[:per_person]
        photos.extend(LfwPhoto(f, person.name) for f in files)
    return photos


def load_rgb(path: Path) -> torch.Tensor:
    """A plain RGB JPEG as a float32 (3, H, W) tensor in [0, 255] (LFW files need no EXIF care)."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def central_face_index(boxes: torch.Tensor, image_size: tuple[int, int]) -> int:
    """Index of the box whose centre lies nearest the image centre (LFW's labelled face).

    Args:
        boxes: (K, 4) x1, y1, x2, y2 in pixels, K >= 1.
        image_size: (H, W).
    """
    h, w = image_size
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = (centres - torch.tensor([w / 2, h / 2])).norm(dim=1)
    return int(dist.argmin())
