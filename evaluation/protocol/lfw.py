"""Labeled Faces in the Wild as laid out in ``shared/data/lfw`` (see its README).

``identities/<Person>/<Person>_NNNN.jpg`` (62 people, up to 30 photos each) and
``distractors/*.jpg`` (2,679 other people, one photo each); photos are 250x250 with the labelled
person's face near the centre.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from evaluation.protocol.ranks import Split, split_photos

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from cloak.faces import AlignedFace

__all__ = ["LfwPhoto", "Photo", "central_face_index", "central_faces", "distractor_files",
           "identity_folders", "identity_photos", "load_rgb", "split_person", "usable_photos"]


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


def distractor_files(root: Path, limit: int | None = None) -> list[Path]:
    """The first ``limit`` (None = all) photos of ``root/distractors``, sorted by name.

    Raises:
        FileNotFoundError: ``root/distractors`` is missing.
    """
    folder = root / "distractors"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: LFW folder not found")
    return sorted(folder.glob("*.jpg"))[:limit]


@dataclass
class Photo:
    """A photo with its labelled face.

    Attributes:
        path: the file.
        pixels: (3, H, W) float32 RGB in [0, 255].
        face: the face nearest the photo centre (:func:`central_faces`).
    """

    path: Path
    pixels: torch.Tensor
    face: AlignedFace


def usable_photos(paths: Sequence[Path], needed: int, detector: MTCNN) -> tuple[list[Photo],
                                                                                float]:
    """The first ``needed`` photos (in order) with a face, and seconds of detection per photo.

    Photos are read and detected ``needed - found`` at a time, so no more than needed are read
    when every photo has a face.
    """
    usable: list[Photo] = []
    start, seen, i = time.perf_counter(), 0, 0
    while len(usable) < needed and i < len(paths):
        chunk = paths[i:i + needed - len(usable)]
        images = [load_rgb(p) for p in chunk]
        for path, image, face in zip(chunk, images, central_faces(images, detector),
                                     strict=True):
            if face is not None:
                usable.append(Photo(path, image, face))
        seen += len(chunk)
        i += len(chunk)
    return usable, (time.perf_counter() - start) / max(seen, 1)


def split_person(folder: Path, detector: MTCNN, n_train: int, n_probe: int, *,
                 scan: int | None = None) -> tuple[Split[Photo] | None, str, float]:
    """One identity's training photos and probes: the protocol's one way to pick them.

    Args:
        folder: the person's folder (``identities/<Person>``).
        detector: MTCNN.
        n_train: photos with a face that come first (the training pool).
        n_probe: the probes, the next photos with a face.
        scan: look only at the first ``scan`` files, all detected at once; None = every file,
            read until ``n_train + n_probe`` photos with a face are found.

    Returns:
        (the :class:`~evaluation.protocol.Split` or None when too few photos have a face, why
        it was skipped (empty when it was not), seconds of detection per photo read).
    """
    paths = sorted(folder.glob("*.jpg"))[:scan]
    needed = n_train + n_probe
    usable, per_photo = usable_photos(paths, needed if scan is None else len(paths), detector)
    split = split_photos(folder.name, usable, n_train, n_probe)
    if split is not None:
        return split, "", per_photo
    reason = (f"{len(usable)} photos with a face, {needed} needed" if scan is None else
              f"{len(usable)} of the first {scan} photos have a face")
    return None, reason, per_photo
