"""A protection run for the page: :func:`cloak.photos.protect` with ``cloak protect``'s default
settings, then the check of its copies against the uploaded originals
(:func:`cloak.report.check_run`, as ``cloak protect --report`` checks), in a child process whose
progress a thread relays into a :class:`ProtectJob` the page polls.

A child process (spawned, so no torch state is forked) keeps the server responsive, and can be
stopped at once when the session is reset or the server exits; it ignores Ctrl-C, which the
server handles by stopping it and removing the session folders.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["JobSettings", "Progress", "ProtectJob"]

#: Seconds between checks that the child is still alive while it reports nothing.
_POLL = 0.2


@dataclass(frozen=True)
class JobSettings:
    """How runs are executed (not what they compute: the mask settings are always the
    defaults of ``cloak protect``).

    Attributes:
        device: torch device of the models and the optimiser (``"cpu"``, ``"cuda"``, ...).
        threads: torch CPU threads in the child, or None for torch's choice.
    """

    device: str = "cpu"
    threads: int | None = None


class _QueueReporter:
    """A :class:`cloak.photos.Reporter` that sends what it receives to the parent."""

    def __init__(self, messages: Any) -> None:
        self.messages = messages

    def progress(self, stage: str, done: int, total: int) -> None:
        self.messages.put(("progress", stage, done, total))

    def note(self, message: str) -> None:
        self.messages.put(("note", message))

    def file_done(self, result: Any) -> None:
        self.messages.put(("file", result.to_json()))


class _CheckReporter(_QueueReporter):
    """Relays the check's progress and notices, not its file results: the page shows the
    protection's result per file, and a copy the check cannot use simply has no verdicts."""

    def file_done(self, result: Any) -> None:
        """Ignored."""


def _protect_in_child(messages: Any, inputs: str, output: str, name: str,
                      settings: JobSettings) -> None:
    """The child process: protect the photos of ``inputs`` into ``output`` and report."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us on Ctrl-C
    import torch

    from attackers.zoo import FetchError
    from cloak.errors import CloakError
    from cloak.fileio import FolderBusy
    from cloak.mask import MaskError
    from cloak.masking import LearnSettings
    from cloak.photos import ProtectOptions, UsageError, protect
    from cloak.report import check_run
    from cloak.report.inputs import pairs_from_summary

    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    options = ProtectOptions(output=Path(output), name=name,
                             learn=LearnSettings(device=settings.device))
    try:
        summary = protect([Path(inputs)], options, _QueueReporter(messages))
    except (CloakError, MaskError, FetchError, FolderBusy, UsageError) as err:
        messages.put(("error", str(err)))
        return
    messages.put(("summary", summary.to_json()))
    messages.put(("progress", "loading recognizers", 0, 0))
    checks = check_run(pairs_from_summary(summary)[0], summary.mask_path,
                       _CheckReporter(messages))
    messages.put(("check", {"note": checks.note, "photos": None if checks.rows is None else
                            {row.photo: dict(row.verdicts) for row in checks.rows}}))


@dataclass
class Progress:
    """What the page shows of a run (:meth:`ProtectJob.snapshot`).

    Attributes:
        state: ``"waiting"`` (for another run), ``"running"``, ``"done"``, ``"failed"`` or
            ``"stopped"``.
        stage: the pipeline's stage (``"finding faces"``, ``"learning mask"``, ``"writing"``),
            then the check's (``"loading recognizers"``, ``"reading references"``,
            ``"checking photos"``), or ``"starting"``, or the state once it has ended.
        done, total: units of the stage finished, of how many (photos, or optimiser steps).
        notes: the pipeline's notices.
        files: each file's result (:meth:`cloak.photos.FileResult.to_json`), as reported.
        summary: :meth:`cloak.photos.Summary.to_json` once the photos are written.
        check: once checked, ``{"note": one line (what the verdicts mean, or why there are
            none), "photos": {copy's path in the output folder: {recognizer: protected}} or
            None}`` (:class:`cloak.report.checks.RunChecks`).
        error: why the run failed (one line), or None.
    """

    state: str = "waiting"  # waiting | running | done | failed | stopped
    stage: str = "waiting for another run to finish"
    done: int = 0
    total: int = 0
    notes: list[str] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    check: dict[str, Any] | None = None
    error: str | None = None


class ProtectJob:
    """One run of :func:`cloak.photos.protect` over a folder of photos, in a child process.

    Runs wait for ``gate`` (one run at a time on the machine), then start. Everything the
    child reports is kept in :meth:`snapshot`: the stage and its progress, notes, each file's
    result (:meth:`cloak.photos.FileResult.to_json`) and the summary
    (:meth:`cloak.photos.Summary.to_json`).

    Args:
        inputs: the folder of photos (read only).
        output: the output folder (created by the run).
        name: the person's name for the mask file ``output/<name>.cloak``.
        settings: device and threads.
        gate: taken for the whole run.
    """

    def __init__(self, inputs: Path, output: Path, name: str, settings: JobSettings,
                 gate: threading.Semaphore) -> None:
        self.args = (str(inputs), str(output), name, settings)
        self.gate = gate
        self.lock = threading.Lock()
        self.progress = Progress()
        self.process: multiprocessing.process.BaseProcess | None = None
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="cloak-protect", daemon=True)
        self.thread.start()

    @property
    def active(self) -> bool:
        """True while the run waits or runs."""
        with self.lock:
            return self.progress.state in ("waiting", "running")

    def snapshot(self) -> Progress:
        """A copy of the run's progress, safe to read while it goes on."""
        with self.lock:
            p = self.progress
            return Progress(p.state, p.stage, p.done, p.total, list(p.notes), list(p.files),
                             p.summary, p.check, p.error)

    def stop(self) -> None:
        """Stop the run (waiting or running) and wait until its process has ended."""
        with self.lock:
            self.stopping = True
            process = self.process
        if process is not None and process.is_alive():
            process.terminate()
        self.thread.join()

    def _run(self) -> None:
        while not self.gate.acquire(timeout=_POLL):
            with self.lock:
                if self.stopping:
                    self.progress.state = self.progress.stage = "stopped"
                    return
        try:
            context = multiprocessing.get_context("spawn")
            messages = context.Queue()
            with self.lock:
                if self.stopping:
                    self.progress.state = self.progress.stage = "stopped"
                    return
                self.progress.state, self.progress.stage = "running", "starting"
                process = self.process = context.Process(
                    target=_protect_in_child, args=(messages, *self.args), daemon=True)
                try:
                    process.start()
                except (OSError, RuntimeError) as err:  # no process: the run fails visibly
                    self.progress.error = f"the protection process cannot start ({err})"
                    self.progress.state = self.progress.stage = "failed"
                    return
            self._relay(messages, process)
            process.join()
            self._finish(process.exitcode)
        finally:
            self.gate.release()

    def _relay(self, messages: Any, process: multiprocessing.process.BaseProcess) -> None:
        """Apply the child's messages until it reports its end or dies."""
        while True:
            try:
                message = messages.get(timeout=_POLL)
            except queue.Empty:
                if process.is_alive():
                    continue
                try:  # it has ended: take what it sent last
                    message = messages.get(timeout=_POLL)
                except queue.Empty:
                    return
            if self._apply(message):
                return

    def _apply(self, message: tuple[Any, ...]) -> bool:
        """Record one message; True when it is the run's last."""
        kind, *body = message
        with self.lock:
            p = self.progress
            if kind == "progress":
                p.stage, p.done, p.total = body
            elif kind == "note":
                p.notes.append(body[0])
            elif kind == "file":
                p.files.append(body[0])
            elif kind == "summary":
                p.summary = body[0]
            elif kind == "check":
                p.check = body[0]
            elif kind == "error":
                p.error = body[0]
        return kind in ("check", "error")

    def _finish(self, exitcode: int | None) -> None:
        with self.lock:
            p = self.progress
            if p.summary is not None:
                p.state = p.stage = "done"
            elif self.stopping:
                p.state = p.stage = "stopped"
            else:
                p.state = p.stage = "failed"
                p.error = p.error or (f"the protection process stopped unexpectedly (exit "
                                      f"code {exitcode})")
