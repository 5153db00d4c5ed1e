"""Run the same per-video work over many videos: in this process, or on a Dask cluster.

Each video is one job: :func:`process_video` analyses it, renders the protected copy and returns
a :class:`JobOutcome`; a video that cannot be decoded or written is reported there, not raised,
so a batch goes on with the next one. The engines only differ in where jobs run:

- :func:`run_local`: one after the other in this process, each with all the threads of
  :class:`~cloak.video.protect.VideoOptions`;
- :func:`run_dask`: on a ``dask.distributed`` cluster (:mod:`cloak.cluster`: by default a
  ``LocalCluster`` of two worker processes with one thread each; or any running scheduler by
  address), one job per task, the enrolled people scattered once to every worker, models
  loaded once per worker process.

With the same options and thread counts both give the same tracks, the same per-frame identity
assignments and bit-identical output files (tests/test_video_engine.py). The enrolled people's
reference features travel to the workers in memory (pickled over the cluster's connections) and
are never written (shared/DESIGN.md section 7).

>>> # jobs = [VideoJob(Path("a.mp4"), Path("out/a.mp4"))]
>>> # for outcome in run_dask(jobs, people, VideoOptions(threads=1)):
>>> #     print(outcome.source, outcome.error or outcome.result.frames)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cloak.cluster import dask_client, process_model, require_dask, submit_tasks
from cloak.errors import CloakError
from cloak.video.protect import EnrolledPerson, VideoOptions, VideoResult, protect_video

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = ["JobOutcome", "VideoJob", "process_video", "run_dask", "run_local"]

#: Called with (stage, frames done, frames in all) for the video being processed (local only).
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class VideoJob:
    """One video to protect.

    Attributes:
        source: the input video.
        dest: the output file (written atomically).
    """

    source: Path
    dest: Path


@dataclass(frozen=True)
class JobOutcome:
    """How one job ended: a result, or the one-line reason it failed.

    Attributes:
        source: the input video.
        result: the :class:`~cloak.video.protect.VideoResult`, or None on failure.
        error: the failure, naming the file (a :class:`~cloak.errors.CloakError`), or None.
    """

    source: Path
    result: VideoResult | None = None
    error: str | None = None


def process_video(job: VideoJob, people: Sequence[EnrolledPerson], options: VideoOptions,
                  detector: MTCNN | None = None, recognizer: Recognizer | None = None,
                  progress: Progress | None = None) -> JobOutcome:
    """Protect one video; report a video that cannot be read or written instead of raising.

    Args:
        job: the video and its output.
        people: the enrolled people.
        options: how to process it.
        detector, recognizer: MTCNN and sface; None loads them once per process.
        progress: called with ("detecting" | "writing", frames done, frames in all).
    """
    if detector is None or recognizer is None:
        detector, recognizer = _models(options.device)
    try:
        result = protect_video(job.source, job.dest, people, detector, recognizer, options,
                               progress)
    except CloakError as err:
        return JobOutcome(job.source, error=str(err))
    return JobOutcome(job.source, result)


def _models(device: str) -> tuple[MTCNN, Recognizer]:
    """MTCNN and sface on ``device``, loaded once per process (each Dask worker loads its
    own)."""
    return process_model("mtcnn", device), process_model("sface", device)


def _worker_job(job: VideoJob, people: Sequence[EnrolledPerson],
                options: VideoOptions) -> JobOutcome:
    """A Dask task: one video on one worker thread (torch on one thread)."""
    import torch

    torch.set_num_threads(1)
    return process_video(job, people, options)


def run_local(jobs: Sequence[VideoJob], people: Sequence[EnrolledPerson],
              options: VideoOptions, detector: MTCNN, recognizer: Recognizer,
              progress: Callable[[VideoJob], Progress | None] | None = None
              ) -> Iterator[JobOutcome]:
    """Process the jobs one after the other in this process.

    Args:
        jobs: the videos.
        people: the enrolled people.
        options: how to process them.
        detector, recognizer: MTCNN and sface.
        progress: called with each job before it starts; returns that job's frame progress
            callback (or None).

    Yields:
        one :class:`JobOutcome` per job, in order.
    """
    for job in jobs:
        yield process_video(job, people, options, detector, recognizer,
                            progress(job) if progress is not None else None)


def run_dask(jobs: Sequence[VideoJob], people: Sequence[EnrolledPerson], options: VideoOptions,
             *, workers: int = 2, address: str | None = None) -> Iterator[JobOutcome]:
    """Process the jobs on a Dask cluster, one task per video.

    Args:
        jobs: the videos.
        people: the enrolled people (scattered once to every worker).
        options: how to process each video (its ``threads`` per worker task).
        workers: worker processes of the ``LocalCluster`` started when ``address`` is None
            (one thread each).
        address: a running scheduler (``"tcp://host:8786"``) to use instead; its workers need
            cloak installed and the model cache (``CLOAK_CACHE``) reachable.

    Yields:
        one :class:`JobOutcome` per job, as tasks finish.

    Raises:
        cloak.cluster.EngineError: ``dask.distributed`` is not installed.
    """
    require_dask()
    if not jobs:
        return
    from distributed import as_completed

    with dask_client(workers, address) as client:
        futures = submit_tasks(client, "cloak-video", _worker_job, jobs, [list(people), options])
        for future in as_completed(futures):
            yield future.result()
