"""Photos as ``cloak check`` sees them: each face's features under each recognizer, and the
mask file found beside the protected photos.

Photos are discovered as ``cloak protect`` discovers them (:func:`cloak.photos.discover.discover`),
read once (:func:`~cloak.imageio.read_photo`), their faces found and aligned as ``cloak
protect`` finds them (:func:`cloak.photos.scan.find_faces`) and each face cut from the
full-resolution photo into the canonical frame (:func:`cloak.photos.paste.photo_training_face`).
Features stay in memory and are never written (DESIGN section 7).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cloak.errors import CloakError
from cloak.imageio import FoundFile, read_photo
from cloak.mask import MASK_SUFFIX
from cloak.photos.discover import discover
from cloak.photos.options import UsageError
from cloak.photos.paste import photo_training_face
from cloak.photos.scan import Models, Scan, find_faces

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["FaceFeatures", "embed_frames", "find_mask", "photo_files", "read_faces"]


@dataclass
class FaceFeatures:
    """The faces of one photo: its scan (faces and identity embeddings, for
    :func:`~cloak.photos.identify.identify_person`) and each recognizer's features.

    Attributes:
        scan: the photo's :class:`~cloak.photos.scan.Scan` (its ``embeddings``: the identity
            model's (k, d) features).
        features: recognizer name -> (k, D) float32 L2-normalised features of the k faces;
            personal data, in memory only.
    """

    scan: Scan
    features: dict[str, torch.Tensor] = field(default_factory=dict)


def photo_files(inputs: Sequence[Path]) -> list[FoundFile]:
    """The photos among ``inputs`` (files or folders, walked as ``cloak protect`` walks them),
    each once; mask files (``*.cloak``) are left out."""
    return [found for found, _ in discover(inputs, None)
            if found.path.suffix.lower() != MASK_SUFFIX]


def embed_frames(recognizer: Recognizer, frames: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """(N, D) float32 L2-normalised features of (N, 3, 224, 224) frames, ``batch`` per call."""
    with torch.no_grad():
        return torch.cat([recognizer.embed(frames[i:i + batch]).float().cpu()
                          for i in range(0, len(frames), batch)])


def read_faces(found: FoundFile, models: Models, recognizers: Mapping[str, Recognizer],
               min_face: int) -> FaceFeatures:
    """Read one photo, find its faces and embed them with every recognizer.

    Raises:
        CloakError: the file is skipped (not an image), unreadable, has no face, or only faces
            smaller than ``min_face`` photo pixels (one line naming the file and the reason).
    """
    if found.skip_reason is not None:
        raise CloakError(found.path, found.skip_reason)
    photo = read_photo(found.path)
    scan = Scan(found, found.relative, notes=list(photo.warnings))
    scan.faces, scan.embeddings = find_faces(photo, models, min_face)
    frames = torch.stack([photo_training_face(photo, face.matrix).clean_frame()
                          for face in scan.faces])
    del photo
    return FaceFeatures(scan, {name: embed_frames(recognizer, frames)
                               for name, recognizer in recognizers.items()})


def _nearest_masks(photo: Path, top: Path) -> list[Path]:
    """The mask files of the nearest folder holding any, from ``photo``'s folder up to ``top``."""
    folder = photo.parent
    while True:
        masks = sorted(p for p in folder.glob(f"*{MASK_SUFFIX}")
                       if p.is_file() and not p.name.startswith("."))
        if masks or folder == top or folder == folder.parent:
            return masks
        folder = folder.parent


def find_mask(protected: Sequence[Path]) -> Path | None:
    """The single mask file beside or above the protected photos, or None when there is none.

    ``cloak protect`` writes ``<name>.cloak`` into its output folder. For each photo the folders
    from its own up to the input it was found under (a folder given, or a photo's own folder)
    are searched; the nearest folder holding ``*.cloak`` files wins.

    Raises:
        UsageError: several different mask files were found (choose one with ``--mask``).
    """
    found: set[Path] = set()
    for root in protected:
        root = Path(root)
        for item in photo_files([root]):
            top = root.resolve() if root.is_dir() else item.path.resolve().parent
            found.update(_nearest_masks(item.path.resolve(), top))
    if len(found) > 1:
        raise UsageError(f"several mask files beside the protected photos "
                         f"({', '.join(str(p) for p in sorted(found))}): choose one with --mask")
    return next(iter(found), None)
