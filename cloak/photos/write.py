"""Writing the protected copies: the person's faces (every face with ``all_faces``) masked,
all other pixels the input's; format, size and mode kept (:func:`~cloak.imageio.write_photo`).

With ``refine`` each face first gets its own copy of the mask refined by a few more steps
(:class:`~cloak.masking.MaskRefiner`: stronger protection, seconds per face on a CPU; the saved
mask stays the universal one). The photos to write are refined in batches of about
:data:`REFINE_BATCH` faces, in order, in this process: each batch's protected faces are pushed
apart from each other and from those of the batches before and of the copies an interrupted
run already wrote, so the person's protected photos do not match each other (linkage), and
every face is pushed away from the center of the person's clean faces of the run. A photo
in which none of the person's faces is found is not written (status ``"not-person"``): its
faces belong to other people.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cloak.errors import CloakError
from cloak.imageio import read_photo, write_photo
from cloak.mask import Mask
from cloak.masking import REFINE, MaskRefiner, mask_digest
from cloak.photos.manifest import Manifest
from cloak.photos.options import FileResult, ProtectOptions, Reporter
from cloak.photos.paste import photo_training_face, protected_pixels
from cloak.photos.scan import Scan

if TYPE_CHECKING:
    from cloak.opom import TrainingFace

__all__ = ["REFINE_BATCH", "PhotoWriter", "WriteJob", "write_copy"]

#: Faces refined together by ``refine`` (a photo's faces are never split; a photo with more
#: faces is a batch of its own). The 62-person benchmark refines its 5 probes per person as
#: one batch (condition ``refine-joint``).
REFINE_BATCH = 8


@dataclass(frozen=True)
class WriteJob:
    """One protected copy to write.

    Attributes:
        source: the input photo.
        dest: the output file.
        matrices: (N, 2, 3) float32 photo-to-frame similarities of the faces to mask.
        deltas: (N, 3, FRAME_SIZE, FRAME_SIZE) float32 CPU, each face's refined mask
            (``refine``), or None to paste the person's mask itself.
    """

    source: Path
    dest: Path
    matrices: torch.Tensor
    deltas: torch.Tensor | None = None


def write_copy(job: WriteJob, mask: Mask, jpeg_quality: int, keep_location: bool) -> str | None:
    """Read, mask (with the job's refined masks when it has them) and write one photo.

    Returns:
        None when written, else the one-line reason it failed (naming the output when the
        output is at fault).
    """
    try:
        photo = read_photo(job.source)
        delta = mask.delta if job.deltas is None else job.deltas
        pixels = protected_pixels(photo, job.matrices, delta, mask.feather)
        write_photo(photo, pixels, job.dest, jpeg_quality=jpeg_quality,
                    keep_location=keep_location)
    except CloakError as err:  # the output's own error (cannot write) names the output
        return _failure(err, job.source)
    except OSError as err:
        return _cannot_write(err)
    return None


def _failure(err: CloakError, source: Path) -> str:
    """The one-line reason of a failed write; another file than ``source`` is named."""
    return err.reason if err.path == source else f"{err.path}: {err.reason}"


def _writes(batch: Sequence[tuple[FileResult, WriteJob | None]]) -> bool:
    """Whether plans have anything to write (and so to refine)."""
    return any(job is not None for _, job in batch)


def _readable_faces(path: Path, matrices: Iterable[torch.Tensor]) -> list[TrainingFace]:
    """The faces at ``matrices`` ((2, 3) photo-to-frame each) of the photo at ``path``, cut for
    refinement (:func:`~cloak.photos.paste.photo_training_face`); none when it cannot be read."""
    try:
        photo = read_photo(path)
    except CloakError:
        return []
    return [photo_training_face(photo, m) for m in matrices]


def _cannot_write(err: OSError) -> str:
    return f"cannot write the output ({err.strerror or err})"


class PhotoWriter:
    """Decides what each scanned photo needs and records each output written in the output
    folder's manifest; writes them (:func:`write_copy`) when called.

    An output is recorded with a key of what made it (the mask's digest and the options that
    change pixels), so a rerun with the same key skips it (status ``"up-to-date"``). Calling it
    with the scanned photos writes them one after the other; :meth:`planned` is what another
    engine writes from.

    Args:
        output: the output folder.
        options: the run's options (``all_faces``, ``jpeg_quality``, ``keep_location``,
            ``force``, ``refine`` are read).
        mask: the person's mask, or None when there is none (every write then fails).
        person: the person's identity label, or None.
        originals: resolved paths of every input file (never overwritten).
        reporter: receives the manifest's notices and the refinement's progress (stage
            ``"refining"``, in optimiser steps).
        load: loads a model by zoo name (for ``refine``).
    """

    def __init__(self, output: Path, options: ProtectOptions, mask: Mask | None,
                 person: int | None, originals: set[Path], reporter: Reporter,
                 load: Callable[[str], Any]) -> None:
        self.output, self.options, self.mask, self.person = output, options, mask, person
        self.originals = originals
        self.key = {"mask_sha256": None if mask is None else mask_digest(mask),
                    "jpeg_quality": options.jpeg_quality,
                    "keep_location": options.keep_location, "all_faces": options.all_faces,
                    "feather": None if mask is None else mask.feather,
                    **({"refine": options.refine, "refine_batch": REFINE_BATCH,
                        **REFINE.settings()} if options.refine else {})}
        self.refiner = (None if mask is None or not options.refine
                        else MaskRefiner(mask, options.refine, load))
        self.manifest = Manifest(output, reporter)
        self.reporter = reporter
        self.claimed: dict[Path, Path] = {}  # output -> the input written there

    def plan(self, scan: Scan) -> tuple[FileResult, WriteJob | None]:
        """What one scanned photo needs: its result, and the copy to write (None when it is
        finished: failed, not the person's, or written by an earlier run)."""
        options, path = self.options, scan.found.path
        chosen = [k for k, label in enumerate(scan.label)
                  if options.all_faces or label == self.person]
        others = len(scan.faces) - len(chosen)
        result = FileResult(path, "failed", faces=len(chosen), other_faces=others,
                            seconds=scan.seconds)
        if self.mask is None:
            result.reason = "no mask: the person's face could not be learned from these photos"
            return result, None
        if not chosen:
            result.status = "not-person"
            result.reason = (f"{others} face{'s' if others != 1 else ''} of other people, left "
                             "untouched; not written (use --all-faces to protect them)")
            return result, None
        dest = self.output / scan.relative
        resolved = dest.resolve()
        if resolved in self.originals:
            result.reason = f"the output {dest} would overwrite an input photo; not written"
            return result, None
        if resolved in self.claimed:
            result.reason = f"the output {dest} is already written for {self.claimed[resolved]}"
            return result, None
        self.claimed[resolved] = path
        matrices = result.matrices = torch.stack([scan.faces[k].matrix for k in chosen])
        start = time.perf_counter()
        try:
            if not options.force and self.manifest.is_done(scan.relative, path, dest, self.key):
                result.status, result.output = "up-to-date", dest
                return result, None
        except OSError as err:
            result.reason = _cannot_write(err)
            return result, None
        finally:
            result.seconds += time.perf_counter() - start
        return result, WriteJob(path, dest, matrices)

    def finish(self, scan: Scan, result: FileResult, job: WriteJob, error: str | None,
               seconds: float) -> FileResult:
        """Complete ``result`` with how writing ``job`` went (``error``, after ``seconds``);
        record a written output in the manifest."""
        start = time.perf_counter()
        try:
            if error is None:
                self.manifest.record(scan.relative, job.source, self.key)
                result.status, result.output = "protected", job.dest
            else:
                result.reason = error
        except OSError as err:
            result.reason = _cannot_write(err)
        result.seconds += seconds + time.perf_counter() - start
        return result

    def planned(self, scans: Sequence[Scan]) -> Iterator[tuple[FileResult, WriteJob | None]]:
        """:meth:`plan` of each scan, in order; with ``refine``, each job carries its faces'
        refined masks.

        With ``refine`` every scan is planned first; when there is anything left to write, the
        copies already written for this key (an interrupted run's) are remembered by the
        refiner, and the person's faces of all the scans (written or not, so that a resumed
        run pushes from the same center) are added to it; then the jobs are refined in batches
        of about :data:`REFINE_BATCH` faces, and each batch's plans are yielded when it is
        refined. A photo that cannot be read for refinement fails here with the reader's
        reason.
        """
        plans = [self.plan(scan) for scan in scans]
        if self.refiner is None:
            yield from plans
            return
        if _writes(plans):
            self._remember_written([r for r, job in plans if r.status == "up-to-date"])
            self._add_person(scans)
        batches: list[list[tuple[FileResult, WriteJob | None]]] = [[]]
        faces = 0
        for result, job in plans:
            size = 0 if job is None else len(job.matrices)
            if faces and faces + size > REFINE_BATCH:
                batches.append([])
                faces = 0
            batches[-1].append((result, job))
            faces += size
        steps = self.refiner.steps
        total = steps * sum(map(_writes, batches))
        done = 0
        for batch in batches:
            yield from self._refined(batch, lambda step, _, base=done: self.reporter.progress(
                "refining", base + step, total))
            done += steps * _writes(batch)

    def _remember_written(self, done: Sequence[FileResult]) -> None:
        """Let the refiner keep new copies apart from these finished outputs (read back; one
        that cannot be read is left out)."""
        assert self.refiner is not None
        self.refiner.remember([face for result in done
                               for face in _readable_faces(result.output, result.matrices)])

    def _add_person(self, scans: Sequence[Scan]) -> None:
        """Give the refiner the person's clean faces of these scans, one photo at a time
        (progress stage ``"finding the person's center"``; a photo that cannot be read is left
        out)."""
        assert self.refiner is not None
        theirs = [(scan, [f for f, label in zip(scan.faces, scan.label, strict=True)
                          if label == self.person]) for scan in scans]
        theirs = [(scan, faces) for scan, faces in theirs if faces]
        for done, (scan, faces) in enumerate(theirs, 1):
            self.refiner.add_person(_readable_faces(scan.found.path, [f.matrix for f in faces]))
            self.reporter.progress("finding the person's center", done, len(theirs))

    def _refined(self, batch: list[tuple[FileResult, WriteJob | None]],
                 progress: Callable[[int, int], None],
                 ) -> list[tuple[FileResult, WriteJob | None]]:
        """The batch's plans with every job's refined masks (its share of the seconds added to
        its result; ``progress`` after each step); a photo that cannot be read has failed."""
        assert self.refiner is not None
        start = time.perf_counter()
        counted = _writes(batch)   # its steps are in the progress total
        faces, owners = [], []
        for k, (result, job) in enumerate(batch):
            if job is None:
                continue
            try:
                photo = read_photo(job.source)
            except CloakError as err:
                result.reason = _failure(err, job.source)
                batch[k] = (result, None)
                continue
            faces += [photo_training_face(photo, m) for m in job.matrices]
            owners.append(k)
        if not faces:
            if counted:   # every photo failed to read: its steps are done all the same
                progress(self.refiner.steps, self.refiner.steps)
            return batch
        deltas = self.refiner(faces, progress).float().cpu()
        share = (time.perf_counter() - start) / len(faces)
        first = 0
        for k in owners:
            result, job = batch[k]
            count = len(job.matrices)
            batch[k] = (result, replace(job, deltas=deltas[first:first + count].clone()))
            result.seconds += share * count
            first += count
        return batch

    def __call__(self, scans: Sequence[Scan]) -> Iterator[FileResult]:
        """Protect and write the scanned photos in this process, in order (or decide that a
        photo needs no writing).

        Yields:
            one :class:`~cloak.photos.options.FileResult` per scan.
        """
        for scan, (result, job) in zip(scans, self.planned(scans), strict=True):
            if job is None or self.mask is None:
                yield result
                continue
            start = time.perf_counter()
            error = write_copy(job, self.mask, self.options.jpeg_quality,
                               self.options.keep_location)
            yield self.finish(scan, result, job, error, time.perf_counter() - start)
