"""Each photo under every condition, as the attacker receives it: masks drawn, cloaks pasted,
rounded to 8 bits and the face detected again."""

from __future__ import annotations

import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from evaluation.attributes.conditions import Condition, named, with_style
from evaluation.physical_masks import STYLES, mask_faces
from evaluation.protocol.lfw import central_faces

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.landmarks import Landmarker
    from cloak.faces import AlignedFace

__all__ = ["CloakSource", "FaceConditions", "condition_photos", "face_seed", "pad_photo"]


def pad_photo(image: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """(3, H, W) -> (3, H + 2 pad, W + 2 pad) with a black or replicated border."""
    if pad == 0:
        return image
    if mode == "constant":
        return F.pad(image, (pad,) * 4)
    return F.pad(image[None], (pad,) * 4, mode="replicate")[0]


def _crop(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Undo :func:`pad_photo` on (..., H, W)."""
    return image if pad == 0 else image[..., pad:-pad, pad:-pad]


def _unpadded(face: AlignedFace, pad: int) -> AlignedFace:
    """A face found on a padded photo, in the coordinates of the photo without the border."""
    from attackers.detectors.mtcnn import Detection
    from cloak.faces import AlignedFace

    if pad == 0:
        return face
    matrix = face.matrix.clone()
    matrix[:, 2] += matrix[:, :2] @ torch.full((2,), float(pad))
    d = face.detection
    return AlignedFace(face.frame, matrix, Detection(d.box - pad, d.score, d.landmarks - pad))


#: Learns (or looks up) the cloak for one photo: (photo index, the clean photo's pixels
#: (3, H, W) in [0, 255], its face in photo coordinates, ``"cloak"`` or a ``cloak-attr`` fold
#: key) -> (3, 224, 224) mask in pixel levels. Called once per photo and key.
CloakSource = Callable[[int, torch.Tensor, "AlignedFace", str], torch.Tensor]


@dataclass
class FaceConditions:
    """One photo under every condition, as the attacker receives it.

    Conditions are keyed by name; ``cloak-attr`` by one key per fold (``cloak-attr/<scored
    predictors>``).

    Attributes:
        pixels: condition -> (3, H, W) float32 photo, whole numbers in [0, 255] (8-bit).
        coverage: mask style -> (H, W) bool, the pixels the physical mask touched.
        found: condition -> the face MTCNN finds again on the condition's photo (padded
            coordinates), None where it finds none; ``clean``: the given face.
        frames: condition -> (3, 224, 224) float32 canonical frame the predictors see: the
            re-detected face, else the clean photo's alignment applied to the condition's photo.
        failed: condition -> why it could not be made (a physical mask that failed).
        cloak_on_clean_alignment: ``cloak+mask`` conditions whose cloak was placed with the
            clean photo's alignment (no face found on the masked photo).
        make_s: condition -> seconds to make its pixels (mask drawing; cloak learning + paste).
    """

    pixels: dict[str, torch.Tensor] = field(default_factory=dict)
    coverage: dict[str, torch.Tensor] = field(default_factory=dict)
    found: dict[str, AlignedFace | None] = field(default_factory=dict)
    frames: dict[str, torch.Tensor] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cloak_on_clean_alignment: list[str] = field(default_factory=list)
    make_s: dict[str, float] = field(default_factory=dict)


def _to_8bit(image: torch.Tensor) -> torch.Tensor:
    """Whole pixel levels in [0, 255], as a written 8-bit file holds."""
    return image.round().clamp(0, 255)


def condition_photos(photos: Sequence[torch.Tensor], faces: Sequence[AlignedFace],
                     conditions: Sequence[str], *, detector: MTCNN, landmarker: Landmarker,
                     cloak: CloakSource | None, seeds: Sequence[int], feather: float,
                     pad: int = 0, pad_mode: str = "constant", batch: int = 16,
                     attribute_folds: Sequence[str] = ()) -> list[FaceConditions]:
    """Make every condition of each photo, round it to 8 bits and detect the face again.

    Args:
        photos: each (3, H, W) float32 RGB in [0, 255] (whole numbers: decoded files).
        faces: per photo, its face as found by MTCNN on the photo padded by ``pad``
            (coordinates of the padded photo).
        conditions: names of :data:`~evaluation.attributes.conditions.ALL_CONDITIONS`.
        detector: MTCNN, for the re-detection.
        landmarker: dlib's 68 points, for the physical masks.
        cloak: gives the cloak of a photo (needed when a condition is cloaked).
        seeds: per photo, the seed of its physical masks (``mask_faces(seed=...)``).
        feather: feather width of the cloak's paste, frame pixels.
        pad: border added before every detection and mask drawing.
        pad_mode: ``"constant"`` (black) or ``"replicate"``.
        batch: photos per detector call.
        attribute_folds: the ``cloak-attr`` fold keys to make when ``cloak-attr`` is asked for
            (each a cloak of the clean photo from ``cloak``).

    Returns:
        one :class:`FaceConditions` per photo.
    """
    from cloak.faces.align import to_frame

    if len(photos) != len(faces) or len(photos) != len(seeds):
        raise ValueError(f"{len(photos)} photos, {len(faces)} faces and {len(seeds)} seeds")
    chosen = [named(c) for c in conditions]
    cloaked = [(c, key) for c in chosen if c.cloaked for key in c.photo_keys(attribute_folds)]
    if cloaked and cloak is None:
        raise ValueError("cloaked conditions need a cloak source")
    out = [FaceConditions() for _ in photos]
    for photo, face, item in zip(photos, faces, out, strict=True):
        item.pixels["clean"], item.frames["clean"], item.found["clean"] = photo, face.frame, face
    styles = [s for s in STYLES if any(c.style == s for c in chosen)]
    for style in styles:
        _draw_masks(photos, faces, out, style, landmarker, seeds, pad, pad_mode)
    _redetect(out, [f"mask-{s}" for s in styles], detector, pad, pad_mode, batch)
    if cloak is not None:
        _paste_cloaks(photos, faces, out, cloaked, cloak, feather, pad)
    keys = [key for _, key in cloaked]
    _redetect(out, keys, detector, pad, pad_mode, batch)
    for face, item in zip(faces, out, strict=True):
        for key in dict.fromkeys([*conditions, *keys]):
            if key == "clean" or key not in item.pixels:
                continue
            found = item.found[key]
            item.frames[key] = found.frame if found is not None else to_frame(
                pad_photo(item.pixels[key], pad, pad_mode), face.matrix[None])[0].clamp(0, 255)
    return out


def _draw_masks(photos: Sequence[torch.Tensor], faces: Sequence[AlignedFace],
                out: Sequence[FaceConditions], style: str, landmarker: Landmarker,
                seeds: Sequence[int], pad: int, pad_mode: str) -> None:
    """Draw the physical mask ``style`` on each photo (``mask-<style>``); where it fails, mark
    every condition of that style failed."""
    name = f"mask-{style}"
    for i, (photo, face, item) in enumerate(zip(photos, faces, out, strict=True)):
        start = time.perf_counter()
        (drawn,) = mask_faces([pad_photo(photo, pad, pad_mode)], [[face]], style, seed=seeds[i],
                              landmarker=landmarker)
        if drawn.ok and not _crop(drawn.coverage, pad).any():
            drawn.failed = "mask outside the photo"
        if not drawn.ok:
            for failed in with_style(style):
                item.failed[failed.name] = drawn.failed
            continue
        item.pixels[name] = _to_8bit(_crop(drawn.image, pad))
        item.coverage[style] = _crop(drawn.coverage, pad)
        item.make_s[name] = time.perf_counter() - start


def _paste_cloaks(photos: Sequence[torch.Tensor], faces: Sequence[AlignedFace],
                  out: Sequence[FaceConditions], cloaked: Sequence[tuple[Condition, str]],
                  cloak: CloakSource, feather: float, pad: int) -> None:
    """Paste each photo's cloak into the photo of each cloaked condition's source, at the face
    found there (the clean photo's alignment where none is found)."""
    from cloak.opom import protect_photo

    learned: dict[tuple[int, str], tuple[torch.Tensor, float]] = {}

    def delta_of(i: int, key: str) -> tuple[torch.Tensor, float]:
        """The clean photo's cloak ``key`` and the seconds it took (learned once per photo)."""
        if (i, key) not in learned:
            start = time.perf_counter()
            delta = cloak(i, photos[i], _unpadded(faces[i], pad), key)
            learned[i, key] = delta, time.perf_counter() - start
        return learned[i, key]

    for made, key in cloaked:
        source = made.source
        for i, (face, item) in enumerate(zip(faces, out, strict=True)):
            if source not in item.pixels:
                continue
            delta, learn_s = delta_of(i, made.cloak_key(key))
            start = time.perf_counter()
            where = item.found[source]
            if where is None:
                where = face
                item.cloak_on_clean_alignment.append(key)
            where = _unpadded(where, pad)
            item.pixels[key] = _to_8bit(protect_photo(item.pixels[source], [where], delta,
                                                      feather=feather))
            item.make_s[key] = learn_s + time.perf_counter() - start


def _redetect(items: Sequence[FaceConditions], keys: Sequence[str], detector: MTCNN,
              pad: int, pad_mode: str, batch: int) -> None:
    """Detect the face again on each made photo of ``keys`` (padded); fill ``found``."""
    jobs = [(item, c) for item in items for c in keys if c in item.pixels]
    found = central_faces([pad_photo(item.pixels[c], pad, pad_mode) for item, c in jobs],
                          detector, batch)
    for (item, key), face in zip(jobs, found, strict=True):
        item.found[key] = face


def face_seed(seed: int, key: str) -> int:
    """A per-face seed for :func:`mask_faces` from the run's seed and the face's name."""
    return seed * 2**32 + zlib.crc32(key.encode())

