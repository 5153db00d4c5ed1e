"""Scanning: each photo read once, its faces detected, sized, aligned and embedded.

Faces are detected on a working copy whose longest side is at most :data:`DETECT_MAX_SIDE`
pixels, their landmarks mapped back to full resolution; faces narrower than ``min_face`` photo
pixels are dropped; each remaining face is embedded with :data:`~cloak.identity.CLUSTER_MODEL`.
Embeddings stay in memory and are never written (DESIGN section 7); the photo itself is not
kept.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.errors import CloakError
from cloak.identity import CLUSTER_MODEL
from cloak.imageio import FoundFile, Photo, read_photo
from cloak.photos.options import FileResult, Reporter
from cloak.photos.outputs import output_path

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = ["DETECT_MAX_SIDE", "Face", "Models", "Scan", "find_faces", "report_scans", "scan_file",
           "scan_photos"]

#: Longest side in pixels of the working copy that faces are detected on.
DETECT_MAX_SIDE = 1600


@dataclass
class Face:
    """A face found in a photo, with its alignment in full-resolution photo pixels.

    Attributes:
        matrix: (2, 3) float32 similarity taking photo pixels to frame pixels.
        size: shorter side of the detector's box, photo pixels.
    """

    matrix: torch.Tensor
    size: float


@dataclass
class Scan:
    """One input file after scanning (the photo itself is not kept).

    Attributes:
        found: the file as discovered.
        relative: its output's path relative to the output folder
            (:func:`~cloak.photos.outputs.output_path`).
        faces: the faces kept.
        embeddings: (k, d) features of ``faces``; personal data, in memory only.
        seconds: time spent reading and scanning it.
        result: set once the file is finished (failed, skipped, written).
        notes: conversions worth knowing (from :attr:`cloak.imageio.Photo.warnings`).
        label: identity group of each face (:func:`~cloak.photos.identify.identify_person`).
    """

    found: FoundFile
    relative: Path
    faces: list[Face] = field(default_factory=list)
    embeddings: torch.Tensor | None = None
    seconds: float = 0.0
    result: FileResult | None = None
    notes: list[str] = field(default_factory=list)
    label: list[int] = field(default_factory=list)


class Models:
    """The detector and the identity recognizer, loaded on first use.

    Args:
        reporter: receives the notices of model fetches.
        device: the torch device every model loaded here runs on (black boxes stay on the CPU).
    """

    def __init__(self, reporter: Reporter, device: torch.device | str = "cpu") -> None:
        self.reporter, self.device = reporter, device
        self._detector: MTCNN | None = None
        self._recognizer: Recognizer | None = None

    def load(self, name: str) -> Any:
        """A zoo model on :attr:`device`, fetched (with notices) if needed."""
        import attackers

        return attackers.load(name, progress=self.reporter.note, device=self.device)

    @property
    def detector(self) -> MTCNN:
        if self._detector is None:
            self._detector = self.load("mtcnn")
        return self._detector

    @property
    def recognizer(self) -> Recognizer:
        if self._recognizer is None:
            self._recognizer = self.load(CLUSTER_MODEL)
        return self._recognizer


def find_faces(photo: Photo, models: Models, min_face: int) -> tuple[list[Face], torch.Tensor]:
    """Detect, size-filter and embed the faces of ``photo``.

    The detector and recognizer run on their device; the faces and embeddings come back on
    the CPU (they are kept per photo and clustered there).

    Returns:
        the faces (full-resolution alignment) and their (k, d) embeddings.

    Raises:
        CloakError: no face found, or every face is smaller than ``min_face``.
    """
    from cloak.faces import align_faces
    from cloak.faces.align import similarity_to_frame

    small, _ = photo.downscaled(DETECT_MAX_SIDE)
    sx, sy = small.shape[-1] / photo.width, small.shape[-2] / photo.height
    with torch.no_grad():
        aligned = align_faces([small], models.detector, min_face=0)[0]
    if not aligned:
        raise CloakError(photo.path, "no face found")
    faces, frames = [], []
    largest = 0.0
    for face in aligned:
        box = face.detection.box
        size = min((box[2] - box[0]).item() / sx, (box[3] - box[1]).item() / sy)
        largest = max(largest, size)
        if size < min_face:
            continue
        # pixel centres: i in the copy covers photo pixels around (i + 0.5) / s - 0.5
        landmarks = face.detection.landmarks.double().cpu()
        scale = torch.tensor([sx, sy], dtype=torch.float64)
        matrix = similarity_to_frame((landmarks[None] + 0.5) / scale - 0.5)[0].float()
        faces.append(Face(matrix, size))
        frames.append(face.frame)
    if not faces:
        raise CloakError(photo.path, f"face too small ({largest:.0f} px, need {min_face})")
    with torch.no_grad():
        embeddings = models.recognizer.embed(torch.stack(frames))
    return faces, embeddings.cpu()


def scan_file(found: FoundFile, relative: Path, models: Models, min_face: int) -> Scan:
    """Read one file and find its faces; a file that is skipped or fails gets its result.

    Args:
        found, relative: one file from :func:`~cloak.photos.discover.discover`.
        models: the detector and recognizer.
        min_face: smallest face kept, photo pixels.
    """
    scan = Scan(found, relative)
    start = time.perf_counter()
    if found.skip_reason is not None:
        scan.result = FileResult(found.path, "skipped", reason=found.skip_reason)
    else:
        try:
            photo = read_photo(found.path)
            scan.relative = output_path(relative, photo)
            scan.notes = list(photo.warnings)
            scan.faces, scan.embeddings = find_faces(photo, models, min_face)
            del photo
        except CloakError as err:
            scan.result = FileResult(found.path, "failed", reason=err.reason)
    scan.seconds = time.perf_counter() - start
    if scan.result is not None:
        scan.result.seconds = scan.seconds
    return scan


def report_scans(scans: Iterable[Scan], total: int, reporter: Reporter) -> list[Scan]:
    """Collect scans in order, reporting progress ("finding faces") and each finished file."""
    collected = []
    reporter.progress("finding faces", 0, total)
    for done, scan in enumerate(scans, 1):
        if scan.result is not None:
            reporter.file_done(scan.result)
        collected.append(scan)
        reporter.progress("finding faces", done, total)
    return collected


def scan_photos(files: Sequence[tuple[FoundFile, Path]], models: Models, min_face: int,
                reporter: Reporter) -> list[Scan]:
    """Read every file once and find its faces (:func:`scan_file`), in this process.

    Args:
        files: from :func:`~cloak.photos.discover.discover`.
        models: the detector and recognizer.
        min_face: smallest face kept, photo pixels.
        reporter: receives progress ("finding faces") and each failed or skipped file.
    """
    return report_scans((scan_file(found, relative, models, min_face)
                         for found, relative in files), len(files), reporter)
