"""Scanning and writing a run's photos on a Dask cluster (``cloak protect --engine dask``).

The cluster (:mod:`cloak.cluster`) runs the per-photo work: one task per photo scans it
(:func:`~cloak.photos.scan.scan_file`), and, once this process has decided whose photos these
are and obtained the mask, one task per photo to write reads, masks and writes it
(:func:`~cloak.photos.write.write_copy`). The mask and the options are scattered once to every
worker; the detector and the recognizer are loaded once per worker process. Everything else
stays here: identification, learning, refinement with ``refine`` (its batches keep the
protected photos apart from each other, so they are refined in order here and each job
carries its refined masks to the worker; :meth:`PhotoWriter.planned
<cloak.photos.write.PhotoWriter.planned>`), the decisions of
:class:`~cloak.photos.write.PhotoWriter` and the manifest, which this process writes from the
workers' results in discovery order, so an interrupted run resumes and a rerun skips finished
photos as with the local engine. Workers read the photos and write the copies at the paths
this process sees: with ``--scheduler``, they need the same file system.

Each scan task runs torch on the thread count of this process (``--threads``, default torch's
choice): detection depends on it, and with the same count (and refinement here as in the local
engine) the outputs are byte-identical to the local engine's. Face embeddings travel between
this process and the workers in memory (pickled over the cluster's connections) and are never
written (shared/DESIGN.md section 7).
"""

from __future__ import annotations

import functools
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cloak.cluster import submit_tasks, task_submitter
from cloak.imageio import FoundFile
from cloak.mask import Mask
from cloak.photos.options import FileResult, ProtectOptions, Reporter
from cloak.photos.scan import Models, Scan, scan_file
from cloak.photos.write import PhotoWriter, WriteJob, write_copy

if TYPE_CHECKING:
    from distributed import Client

__all__ = ["scan_on_cluster", "write_on_cluster"]


@functools.cache
def _worker_models() -> Models:
    """The detector and recognizer of this worker process, loaded on first use."""
    return Models(Reporter())


def _scan_task(file: tuple[FoundFile, Path], min_face: int, threads: int) -> Scan:
    torch.set_num_threads(threads)
    return scan_file(*file, _worker_models(), min_face)


def _write_task(job: WriteJob, mask: Mask, options: ProtectOptions,
                threads: int) -> tuple[str | None, float]:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    error = write_copy(job, mask, options.jpeg_quality, options.keep_location)
    return error, time.perf_counter() - start


def scan_on_cluster(client: Client, files: Sequence[tuple[FoundFile, Path]],
                    min_face: int) -> Iterator[Scan]:
    """Scan every file on the cluster of ``client`` (a ``distributed.Client``).

    Yields:
        one :class:`~cloak.photos.scan.Scan` per file, in the order of ``files``.
    """
    futures = submit_tasks(client, "cloak-scan", _scan_task, files,
                           [min_face, torch.get_num_threads()])
    for future in futures:
        yield future.result()


def write_on_cluster(client: Client, writer: PhotoWriter, scans: Sequence[Scan],
                     mask: Mask, options: ProtectOptions) -> Iterator[FileResult]:
    """Write the scanned photos' protected copies on the cluster of ``client``.

    ``writer`` decides what each photo needs and refines its masks (:meth:`PhotoWriter.planned
    <cloak.photos.write.PhotoWriter.planned>`) and records each output written
    (:meth:`PhotoWriter.finish <cloak.photos.write.PhotoWriter.finish>`) in this process; each
    job is submitted as soon as it is planned, so workers write while this process refines.

    Yields:
        one :class:`~cloak.photos.options.FileResult` per scan, in the order of ``scans``.
    """
    submit = task_submitter(client, "cloak-write", _write_task,
                            [mask, options, torch.get_num_threads()])
    waiting: deque = deque()   # (scan, result, job, future or None), in the order of scans

    def settled(scan: Scan, result: FileResult, job: WriteJob | None, future) -> FileResult:
        if job is None:
            return result
        error, seconds = future.result()
        return writer.finish(scan, result, job, error, seconds)

    for scan, (result, job) in zip(scans, writer.planned(scans), strict=True):
        waiting.append((scan, result, job, None if job is None else submit(job)))
        while waiting and (waiting[0][3] is None or waiting[0][3].done()):
            yield settled(*waiting.popleft())
    while waiting:
        yield settled(*waiting.popleft())
