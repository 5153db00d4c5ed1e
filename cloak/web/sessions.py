"""Sessions of the page: one private folder per browser session, its uploads, its protection run
and the state the page shows.

A session is found by a random id (``secrets.token_urlsafe(32)``) that only its browser holds
(a cookie); every folder lives under one private temporary folder (mode 0700) that
:meth:`SessionStore.close` removes, with every run stopped, when the server exits. Uploaded
files are stored under numbers (``0001.jpg``), never under the names they were sent with; the
names are kept in memory only, to show on the page.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloak.errors import ImageError
from cloak.imageio import read_photo
from cloak.web.files import write_zip, zip_names
from cloak.web.jobs import JobSettings, Progress, ProtectJob
from cloak.web.uploads import Received, megabytes
from cloak.web.verdicts import check_summary, photo_verdict

__all__ = ["MB", "PERSON", "Limits", "Session", "SessionBusy", "SessionStore", "Upload"]

MB = 2**20
#: The person's name in a session's mask file (``person.cloak``).
PERSON = "person"
#: File name suffix of a stored upload, by Pillow format (others: the format's name).
_SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif",
             "BMP": ".bmp"}


@dataclass(frozen=True)
class Limits:
    """What one session may hold.

    Attributes:
        max_file_bytes: largest photo accepted, in bytes.
        max_total_bytes: most bytes of photos one session holds in all.
        max_sessions: sessions kept at once; a new one replaces the least recently used idle
            one (its files are deleted).
    """

    max_file_bytes: int = 25 * MB
    max_total_bytes: int = 200 * MB
    max_sessions: int = 8


@dataclass(frozen=True)
class Upload:
    """One accepted photo: its number, the name shown, the stored file and its size (bytes)."""

    id: int
    name: str
    path: Path
    size: int


class SessionBusy(RuntimeError):
    """The session cannot do that now (a run is going on, nothing to protect, ...)."""


class Session:
    """One browser session: a private folder with ``incoming/`` (files being received),
    ``uploads/`` (accepted photos), ``run-N/`` (the latest run's outputs and mask) and the
    zip of the protected photos.

    Args:
        session_id: the random id its browser holds.
        folder: its private folder (created, mode 0700).
        limits: size limits.
    """

    def __init__(self, session_id: str, folder: Path, limits: Limits) -> None:
        self.id, self.folder, self.limits = session_id, folder, limits
        self.incoming, self.uploads_folder = folder / "incoming", folder / "uploads"
        for path in (folder, self.incoming, self.uploads_folder):
            path.mkdir(mode=0o700, exist_ok=True)
        #: Accepted photos by id; replaced, never changed in place, so readers need no lock.
        self.uploads: dict[int, Upload] = {}
        self.next_id = 1
        self.job: ProtectJob | None = None
        self.runs = 0
        self.lock = threading.Lock()
        #: Held while an upload is received, so two uploads never share the size budget.
        self.upload_lock = asyncio.Lock()
        self.last_used = time.monotonic()

    @property
    def run_folder(self) -> Path:
        """The latest run's output folder."""
        return self.folder / f"run-{self.runs}"

    @property
    def zip_path(self) -> Path:
        """The zip of the latest run's protected photos (built on first download)."""
        return self.folder / f"protected-{self.runs}.zip"

    @property
    def busy(self) -> bool:
        """True while a protection run waits or runs."""
        job = self.job
        return job is not None and job.active

    def progress(self) -> Progress | None:
        """The latest run's progress, or None when there is none."""
        job = self.job
        return None if job is None else job.snapshot()

    def remaining_bytes(self) -> int:
        """Bytes of photos this session may still receive."""
        used = sum(u.size for u in self.uploads.values())
        return max(0, self.limits.max_total_bytes - used)

    def admit(self, received: Sequence[Received]) -> list[dict[str, Any]]:
        """Keep the received files that :func:`cloak.imageio.read_photo` reads as a photo (the
        project's reader decides by content); delete the others.

        Returns:
            per file, in order: ``{"name", "accepted", "message"}`` (and ``"id"`` when
            accepted); the message is one line for the page.
        """
        outcomes = []
        for item in received:
            outcome: dict[str, Any] = {"name": item.name, "accepted": False}
            if item.path is None:
                outcome["message"] = f"{item.name}: {item.refusal}"
                outcomes.append(outcome)
                continue
            try:
                suffix = _SUFFIXES.get(fmt := read_photo(item.path).format, f".{fmt.lower()}")
            except ImageError as err:
                item.path.unlink(missing_ok=True)
                outcome["message"] = f"{item.name}: not accepted: {err.reason}"
                outcomes.append(outcome)
                continue
            with self.lock:
                upload_id, self.next_id = self.next_id, self.next_id + 1
                path = self.uploads_folder / f"{upload_id:04d}{suffix}"
                item.path.rename(path)
                self.uploads = {**self.uploads,
                                upload_id: Upload(upload_id, item.name, path, item.size)}
            outcome.update(id=upload_id, accepted=True, message=f"{item.name}: added")
            outcomes.append(outcome)
        return outcomes

    def protect(self, settings: JobSettings, gate: threading.Semaphore) -> None:
        """Start protecting every accepted photo into a new run folder (the previous run's
        outputs are deleted).

        Raises:
            SessionBusy: a run is going on, or there is no photo.
        """
        with self.lock:
            if self.busy:
                raise SessionBusy("a protection run is going on already")
            if not self.uploads:
                raise SessionBusy("add some photos first")
            self._clear_run()
            self.runs += 1
            self.job = ProtectJob(self.uploads_folder, self.run_folder, PERSON, settings, gate)

    def reset(self) -> None:
        """Stop any run and delete every photo and result of this session."""
        with self.lock:
            self._clear_run()
            uploads, self.uploads = self.uploads, {}
            for upload in uploads.values():
                upload.path.unlink(missing_ok=True)

    def _clear_run(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.job = None
        shutil.rmtree(self.run_folder, ignore_errors=True)
        self.zip_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Stop any run and delete the session's folder."""
        with self.lock:
            if self.job is not None:
                self.job.stop()
            shutil.rmtree(self.folder, ignore_errors=True)

    # -- what the page shows and downloads ------------------------------------------------

    def _results(self, progress: Progress | None) -> dict[int, dict[str, Any]]:
        """The file results of a run's ``progress`` by upload id."""
        by_name = {u.path.name: u.id for u in self.uploads.values()}
        results = {}
        for result in [] if progress is None else progress.files:
            upload_id = by_name.get(Path(result["input"]).name)
            if upload_id is not None:
                results[upload_id] = result
        return results

    def _outputs(self, results: dict[int, dict[str, Any]]) -> dict[int, Path]:
        """The protected copies among ``results`` (only files inside the run's folder)."""
        outputs = {}
        for upload_id, result in results.items():
            output = None if result["output"] is None else Path(result["output"])
            if output is not None and self.run_folder in output.parents:
                outputs[upload_id] = output
        return outputs

    def output_of(self, upload_id: int) -> Path | None:
        """The protected copy of an upload, when the latest run wrote one."""
        return self._outputs(self._results(self.progress())).get(upload_id)

    def mask_file(self) -> Path | None:
        """The latest run's mask file, when it learned one."""
        progress = self.progress()
        summary = None if progress is None else progress.summary
        mask = None if summary is None else summary["mask"]["path"]
        path = None if mask is None else Path(mask)
        return path if path is not None and path.parent == self.run_folder else None

    def protected_zip(self) -> Path | None:
        """The zip of the latest run's protected photos (named as uploaded, with the written
        format's suffix), or None when the run is not done or protected nothing."""
        with self.lock:
            progress = self.progress()
            if progress is None or progress.state != "done":
                return None
            outputs = self._outputs(self._results(progress))
            pairs = [(u, outputs[u.id]) for u in self.uploads.values() if u.id in outputs]
            if not pairs:
                return None
            if not self.zip_path.exists():
                names = zip_names([(u.name, out.suffix) for u, out in pairs])
                write_zip(list(zip(names, (out for _, out in pairs), strict=True)),
                          self.zip_path)
            return self.zip_path

    def public(self, text: str) -> str:
        """``text`` from the pipeline with stored paths replaced by the names shown."""
        for upload in self.uploads.values():
            text = text.replace(str(upload.path), upload.name)
        return text.replace(f"{self.folder}/", "").replace(str(self.folder), "")

    def state(self) -> dict[str, Any]:
        """Everything the page shows, JSON-ready: limits, photos, the run, per-photo results
        (``"check"``: the copy's verdicts, :func:`~cloak.web.verdicts.photo_verdict`, or None),
        the run's check (:func:`~cloak.web.verdicts.check_summary`, or None before it is
        done) and downloads."""
        job, uploads = self.progress(), self.uploads
        results = self._results(job)
        outputs = self._outputs(results)
        done = job is not None and job.state == "done"
        check = None if job is None else job.check
        verdicts = {} if check is None else check["photos"] or {}
        names = {u: out.relative_to(self.run_folder).as_posix() for u, out in outputs.items()}
        return {
            "limits": {"max_file_mb": megabytes(self.limits.max_file_bytes),
                       "max_total_mb": megabytes(self.limits.max_total_bytes)},
            "photos": [{"id": u.id, "name": u.name, "size_mb": megabytes(u.size)}
                       for u in uploads.values()],
            "job": None if job is None else {
                "state": job.state, "stage": job.stage, "done": job.done, "total": job.total,
                "error": None if job.error is None else self.public(job.error),
                "notes": [self.public(n) for n in job.notes]},
            "results": [{"id": u.id, "name": u.name, **_outcome(results[u.id], self.public),
                         "after": u.id in outputs,
                         "check": photo_verdict(verdicts[names[u.id]])
                         if names.get(u.id) in verdicts else None}
                        for u in uploads.values() if u.id in results],
            "check": None if check is None else {
                key: self.public(text) for key, text in check_summary(check).items()},
            "downloads": {"zip": done and bool(outputs),
                          "mask": done and self.mask_file() is not None},
        }


def _outcome(result: dict[str, Any], public: Any) -> dict[str, Any]:
    """A file result (:meth:`cloak.photos.FileResult.to_json`) in plain words."""
    status, faces = result["status"], result["faces"]
    reason = public(result["reason"] or "")
    if status in ("protected", "up-to-date"):
        message = f"Protected ({faces} face{'s' if faces != 1 else ''})."
    elif status == "not-person":
        message = ("Not protected: only other people's faces were found here; the page "
                   "protects the person seen in most of your photos.")
    elif status == "skipped":
        message = f"Skipped: {reason}."
    else:
        message = f"Not protected: {reason}."
    notes = " ".join(f"Note: {public(n)}." for n in result["notes"])
    return {"status": status, "faces": faces, "message": f"{message} {notes}".strip()}


class SessionStore:
    """Every session of a server, under one private temporary folder.

    Args:
        limits: size limits of each session.
        settings: how protection runs execute (default: on the CPU).
        parent: where the private folder is made (default: the system's temporary folder).
    """

    def __init__(self, limits: Limits = Limits(), settings: JobSettings | None = None,
                 parent: Path | None = None) -> None:
        self.limits, self.settings = limits, settings or JobSettings()
        self.root = Path(tempfile.mkdtemp(prefix="cloak-serve-", dir=parent))  # mode 0700
        self.sessions: dict[str, Session] = {}
        self.gate = threading.Semaphore(1)  # one protection run at a time
        self.lock = threading.Lock()
        self.closed = False

    def create(self) -> Session:
        """A new session with a fresh random id; the least recently used idle session is
        removed when :attr:`Limits.max_sessions` are open.

        Raises:
            SessionBusy: every session is running, or the store is closed.
        """
        with self.lock:
            if self.closed:
                raise SessionBusy("the server is shutting down")
            if len(self.sessions) >= self.limits.max_sessions:
                idle = [s for s in self.sessions.values() if not s.busy]
                if not idle:
                    raise SessionBusy("too many sessions are protecting photos; try later")
                oldest = min(idle, key=lambda s: s.last_used)
                del self.sessions[oldest.id]
                oldest.close()
            session_id = secrets.token_urlsafe(32)
            folder = Path(tempfile.mkdtemp(prefix="s-", dir=self.root))
            session = self.sessions[session_id] = Session(session_id, folder, self.limits)
            return session

    def get(self, session_id: str | None) -> Session | None:
        """The session with this id, or None (unknown, missing or closed)."""
        with self.lock:
            session = self.sessions.get(session_id or "")
        if session is not None:
            session.last_used = time.monotonic()
        return session

    def close(self) -> None:
        """Stop every run and delete every session's files (idempotent)."""
        with self.lock:
            self.closed = True
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()
        shutil.rmtree(self.root, ignore_errors=True)
