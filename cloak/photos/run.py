"""The two commands: :func:`protect` (``cloak protect``) and :func:`enroll` (``cloak enroll``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cloak.cluster import dask_client, require_dask
from cloak.fileio import folder_lock
from cloak.mask import MASK_SUFFIX, save_mask
from cloak.masking import LearnSettings, mask_digest
from cloak.photos.discover import discover
from cloak.photos.engine import scan_on_cluster, write_on_cluster
from cloak.photos.identify import identify_person
from cloak.photos.learn import TRAIN_FACES, learn_from_scans, obtain_mask
from cloak.photos.options import MIN_FACE, FileResult, ProtectOptions, Reporter, Summary, UsageError
from cloak.photos.outputs import check_output, default_name, default_output, safe_name
from cloak.photos.scan import Models, report_scans, scan_photos
from cloak.photos.write import PhotoWriter

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["enroll", "protect"]


@contextmanager
def _cluster(options: ProtectOptions) -> Iterator[Client | None]:
    """A client of the Dask cluster for ``engine="dask"``; None for the local engine."""
    if options.engine == "local":
        yield None
        return
    with dask_client(options.workers, options.scheduler) as client:
        yield client


def protect(inputs: Sequence[str | Path], options: ProtectOptions | None = None,
            reporter: Reporter | None = None) -> Summary:
    """Protect the person's photos among ``inputs`` (files or folders); see :mod:`cloak.photos`.

    Args:
        inputs: photos and folders of photos (folders are walked recursively).
        options: see :class:`ProtectOptions`.
        reporter: receives progress, notices and per-file results.

    Returns:
        the :class:`Summary`; ``summary.failed`` counts the files that failed.

    Raises:
        UsageError: the request is wrong (output would overwrite inputs, ...): nothing was done.
        cloak.cluster.EngineError: ``engine="dask"`` without dask.distributed installed.
        FolderBusy: another run holds the output folder's lock: nothing was done.
        ImageError: an input does not exist.
        MaskError: the mask cannot be saved.
        attackers.zoo.FetchError: a model cannot be fetched.
    """
    options = options or ProtectOptions()
    reporter = reporter or Reporter()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    options.learn.resolve()
    if options.engine == "dask":
        require_dask()
    output = Path(options.output) if options.output is not None else default_output(paths)
    check_output(paths, output)
    name = safe_name(options.name or (options.mask.person if options.mask else "")
                     or default_name(paths))
    with folder_lock(output):  # a second run on the same folder is refused, not interleaved
        files = discover(paths, output)
        originals = {found.path.resolve() for found, _ in files}
        summary = Summary(person=name, output=output)

        models = Models(reporter, options.learn.device)
        with _cluster(options) as client:
            if client is None:
                scans = scan_photos(files, models, options.min_face, reporter)
            else:
                scans = report_scans(scan_on_cluster(client, files, options.min_face),
                                     len(files), reporter)
            person = identify_person(scans, reporter)
            summary.person_photos = sum(person in s.label for s in scans if s.result is None)
            mask = obtain_mask(scans, person, options, name, output / f"{name}{MASK_SUFFIX}",
                               reporter, summary)
            if mask is not None:
                summary.mask_sha256 = mask_digest(mask)
            write = PhotoWriter(output, options, mask, person, originals, reporter, models.load)
            pending = [s for s in scans if s.result is None]
            results = (write(pending) if client is None or mask is None
                       else write_on_cluster(client, write, pending, mask, options))
            reporter.progress("writing", 0, len(pending))
            for done, (scan, result) in enumerate(zip(pending, results, strict=True), 1):
                scan.result = result
                scan.result.notes = scan.notes
                reporter.file_done(scan.result)
                reporter.progress("writing", done, len(pending))
        summary.files = [s.result for s in scans if s.result is not None]
    return summary


def enroll(name: str, inputs: Sequence[str | Path], output: Path,
           learn: LearnSettings | None = None, min_face: int = MIN_FACE,
           reporter: Reporter | None = None) -> Summary:
    """Learn ``name``'s mask from their photos among ``inputs`` and write it to ``output``.

    No photo is written. Whose photos these are is decided as in :func:`protect`.

    Args:
        name: the person's name (stored in the mask).
        inputs: photos and folders of photos.
        output: the mask file to write (replaced if it exists).
        learn: how to learn the mask.
        min_face: smallest face used, in photo pixels.
        reporter: receives progress, notices and per-file results.

    Returns:
        the :class:`Summary` (``output`` None, ``mask_path`` the file written, or None when no
        face of the person could be used).
    """
    learn = learn or LearnSettings()
    reporter = reporter or Reporter()
    learn.resolve()
    paths = [Path(p) for p in inputs]
    if not paths:
        raise UsageError("no input photos or folders given")
    summary = Summary(person=name)
    scans = scan_photos(discover(paths, None), Models(reporter, learn.device), min_face,
                        reporter)
    person = identify_person(scans, reporter)
    summary.person_photos = sum(person in s.label for s in scans if s.result is None)
    mask, used = None, set()
    if person is not None:
        mask, summary.learn_seconds, used = learn_from_scans(scans, person, learn, name,
                                                             reporter)
    if mask is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        save_mask(mask, output)
        summary.mask_path, summary.mask_source = output, "learned"
        summary.mask_sha256 = mask_digest(mask)
        summary.training_faces = int(mask.settings["training_faces"])
    for scan in scans:
        if scan.result is None:
            mine = sum(label == person for label in scan.label)
            status, reason = "used", None
            if not mine:
                status, reason = "not-person", "only other people's faces"
            elif scan.found.path not in used:
                status, reason = "not-needed", f"the mask is learned from {TRAIN_FACES} photos"
            scan.result = FileResult(scan.found.path, status, faces=mine,
                                     other_faces=len(scan.faces) - mine, seconds=scan.seconds,
                                     reason=reason, notes=scan.notes)
            reporter.file_done(scan.result)
    summary.files = [s.result for s in scans if s.result is not None]
    return summary

