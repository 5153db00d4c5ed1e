"""Labeled Faces in the Wild as laid out in ``shared/data/lfw`` (see its README).

``identities/<Person>/<Person>_NNNN.jpg`` (62 people, up to 30 photos each) and
``distractors/*.jpg`` (2,679 other people, one photo each); photos are 250x250 with the labelled
person's face near the centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from cloak.faces import AlignedFace

__all__ = ["LfwPhoto", "central_face_index", "central_faces", "identity_folders", "identity_photos",
           "load_rgb"]


@dataclass(frozen=True)
class LfwPhoto:
    """One labelled LFW photo."""

    path: Path
    person: str


def identity_folders(root: Path, names: Sequence[str] | None = None) -> list[Path]:
    """The person folders under ``root/identities``, sorted by name.

    Args:
        root: the ``lfw`` folder.
        names: keep only these people (folder names); None = all.

    Raises:
        FileNotFoundError: ``root/identities`` is missing; ValueError: ``names`` holds a person
            that has no folder (all such names are listed).
    """
    folder = root / "identities"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: LFW identities folder not found")
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    if names is None:
        return people
    unknown = sorted(set(names) - {p.name for p in people})
    if unknown:
        raise ValueError(f"{folder}: no identities named {', '.join(unknown)}")
    return [p for p in people if p.name in names]


def identity_photos(root: Path, per_person: int | None = None,
                    people: int | None = None) -> list[LfwPhoto]:
    """Photos under ``root/identities``, sorted by person then file name.

    Args:
        root: the ``lfw`` folder.
        per_person: keep at most this many photos per person (first ones by name).
        people: keep at most this many people (first ones by name).
    """
    persons = identity_folders(root)[:people]
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


def central_faces(images: Sequence[torch.Tensor], detector: MTCNN,
                  batch: int = 16) -> list[AlignedFace | None]:
    """The face nearest the centre of each photo (the labelled person), None where none is found.

    Args:
        images: (3, H, W) float32 RGB photos in [0, 255].
        detector: MTCNN.
        batch: photos per detector call.
    """
    from cloak.faces import align_faces

    found: list[AlignedFace | None] = []
    for i in range(0, len(images), batch):
        chunk = images[i:i + batch]
        with torch.no_grad():
            per_image = align_faces(chunk, detector)
        for image, faces in zip(chunk, per_image, strict=True):
            if not faces:
                found.append(None)
                continue
            boxes = torch.stack([f.detection.box for f in faces])
            found.append(faces[central_face_index(boxes, tuple(image.shape[1:]))])
    return found
