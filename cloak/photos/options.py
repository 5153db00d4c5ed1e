"""What a photo run is given and what it reports: options, per-file results, the summary.

>>> FileResult(Path("a.jpg"), "skipped", reason="not an image").to_json()["status"]
'skipped'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from cloak.mask import Mask
from cloak.masking import LearnSettings

__all__ = ["MIN_FACE", "FileResult", "ProtectOptions", "Reporter", "Summary", "UsageError"]

#: Smallest face (shorter side of the detector's box, photo pixels) that is used or protected.
MIN_FACE = 20


class UsageError(ValueError):
    """The request itself is wrong (output over the input, ...): nothing was done."""


@dataclass
class FileResult:
    """What happened to one input file.

    Attributes:
        path: the input file.
        status: ``"protected"`` (written), ``"up-to-date"`` (written by an earlier run with the
            same mask and options), ``"not-person"`` (faces found, none of the person: not
            written), ``"used"`` (enroll: learned from), ``"not-needed"`` (enroll: the person's
            face, beyond :data:`~cloak.photos.learn.TRAIN_FACES`), ``"skipped"`` (not an image)
            or ``"failed"``.
        faces: faces protected (protect) or of the person (enroll).
        other_faces: faces found and left untouched.
        output: the protected copy, when there is one.
        seconds: time spent on this file (reading, finding faces, writing), learning excluded.
        reason: why it failed or was skipped.
        notes: conversions worth knowing (e.g. "CMYK converted to RGB").
        matrices: (N, 2, 3) photo-to-frame similarities of the faces masked in ``output``
            (for :mod:`cloak.report`), or None; alignment only, never in :meth:`to_json`.
    """

    path: Path
    status: str
    faces: int = 0
    other_faces: int = 0
    output: Path | None = None
    seconds: float = 0.0
    reason: str | None = None
    notes: list[str] = field(default_factory=list)
    matrices: torch.Tensor | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings); holds no face data."""
        return {"input": str(self.path), "status": self.status, "faces": self.faces,
                "other_faces": self.other_faces,
                "output": None if self.output is None else str(self.output),
                "seconds": round(self.seconds, 3), "reason": self.reason, "notes": self.notes}


@dataclass
class Summary:
    """The outcome of :func:`~cloak.photos.protect` or :func:`~cloak.photos.enroll`.

    Attributes:
        person: the person's name (as used for the mask file).
        output: the output folder (protect) or None (enroll).
        mask_path: the mask file written or used, or None when there is none (or a given mask
            came without its path).
        mask_sha256: :func:`~cloak.masking.mask_digest` of the mask, or None.
        mask_source: ``"learned"``, ``"reused"`` (an earlier run's mask with the same settings),
            ``"given"`` (``--mask``) or None.
        learn_seconds: time spent learning the mask (0 when none was learned).
        training_faces: faces the mask was learned from.
        person_photos: photos in which the person was found.
        files: per input file, in discovery order.
    """

    person: str
    output: Path | None = None
    mask_path: Path | None = None
    mask_sha256: str | None = None
    mask_source: str | None = None
    learn_seconds: float = 0.0
    training_faces: int = 0
    person_photos: int = 0
    files: list[FileResult] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Number of files that failed."""
        return sum(r.status == "failed" for r in self.files)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: mask, per-file results and totals; no embeddings, no face data."""
        totals: dict[str, Any] = {"files": len(self.files)}
        for result in self.files:
            totals[result.status] = totals.get(result.status, 0) + 1
        totals["seconds"] = round(self.learn_seconds + sum(r.seconds for r in self.files), 3)
        return {
            "person": self.person,
            "output": None if self.output is None else str(self.output),
            "mask": {"path": None if self.mask_path is None else str(self.mask_path),
                     "sha256": self.mask_sha256, "source": self.mask_source,
                     "learn_seconds": round(self.learn_seconds, 3),
                     "training_faces": self.training_faces},
            "person_photos": self.person_photos,
            "files": [r.to_json() for r in self.files],
            "totals": totals,
        }


class Reporter:
    """Receives what a run reports. This base class ignores everything; the CLI shows it.

    Methods are called from the running thread, in order; none may raise.
    """

    def progress(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of ``stage`` are finished ("finding faces", ...)."""

    def note(self, message: str) -> None:
        """A one-line notice (mask reused, model fetched, ...)."""

    def file_done(self, result: FileResult) -> None:
        """A file reached its final state (failures are reported here, one each)."""


@dataclass(frozen=True)
class ProtectOptions:
    """Options of :func:`~cloak.photos.protect`.

    Attributes:
        output: output folder, or None for :func:`~cloak.photos.outputs.default_output`.
        name: the person's name (mask file name), or None for the mask's or
            :func:`~cloak.photos.outputs.default_name`.
        mask: a mask to apply instead of learning one.
        mask_path: the file ``mask`` was read from (reported in the summary).
        learn: how to learn the mask when none is given.
        all_faces: protect every face found, not only the person's.
        jpeg_quality: JPEG quality of JPEG outputs, 1..100.
        keep_location: keep GPS EXIF in the outputs.
        force: redo everything: learn the mask again and rewrite finished outputs.
        min_face: smallest face protected, in photo pixels.
        refine: refinement steps per face (:class:`~cloak.masking.MaskRefiner`: the run's
            faces refined together, from the center of the person's faces, in batches kept
            apart from each other) with the mask's own
            surrogates and attribute predictors; 0 = paste the universal mask as it is.
        engine: where the photos are scanned and written: ``"local"`` (this process) or
            ``"dask"`` (a Dask cluster, :mod:`cloak.photos.engine`); the same outputs.
        workers: worker processes of the local Dask cluster (``engine="dask"``).
        scheduler: a running Dask scheduler's address to use instead of a local cluster.
    """

    output: Path | None = None
    name: str | None = None
    mask: Mask | None = None
    mask_path: Path | None = None
    learn: LearnSettings = LearnSettings()
    all_faces: bool = False
    jpeg_quality: int = 95
    keep_location: bool = False
    force: bool = False
    min_face: int = MIN_FACE
    refine: int = 0
    engine: str = "local"
    workers: int = 2
    scheduler: str | None = None

