"""Everything the benchmarks keep on disk between runs, and the keys that name it.

- :func:`key_digest`: the first 16 hex digits of a SHA-256 over a JSON key (sorted keys,
  ``str`` for other values): the folder name that only the same settings share.
- :func:`files_digest`: SHA-256 over files' names and contents (names distractor caches).
- :class:`ArrayCache`: one numpy array (``.npy``, no pickle) with a JSON sidecar that must equal
  the expected one (distractor landmarks and features).
- :class:`RecordStore`: finished per-item records, one JSON file each
  (``cache_dir/runs/<digest>/<name>.json``), so an interrupted run resumes.
- :class:`MaskStore`: learned masks as ``.npy`` float32 with a JSON sidecar
  (``cache_dir/masks/<digest>/<name>.npy``; the OPOM and robustness benchmarks share it).
- :class:`CloakMaskStore`: learned masks as ``.cloak`` files (``cache_dir/video-masks/<digest>``).

Nothing stored here holds a feature of a protected person.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evaluation.report import write_json

if TYPE_CHECKING:
    from cloak.mask import Mask

__all__ = ["ArrayCache", "CloakMaskStore", "MaskStore", "RecordStore", "files_digest",
           "key_digest"]

log = logging.getLogger(__name__)


def key_digest(key: dict[str, Any]) -> str:
    """First 16 hex digits of a SHA-256 over ``key`` as sorted JSON (``str`` for other values):
    the name of a cache folder that only the same settings share.

    >>> key_digest({"b": 1, "a": [1, 2]}) == key_digest({"a": [1, 2], "b": 1})
    True
    """
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def files_digest(files: Sequence[Path]) -> str:
    """SHA-256 (64 hex digits) over the files' names and contents, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def _save_array(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` (``.npy``, no pickle) through a temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, array, allow_pickle=False)
    tmp.replace(path)


def _read_pair(array_path: Path, meta_path: Path, what: str,
               action: str) -> tuple[Any, np.ndarray] | None:
    """The JSON sidecar and the array, or None when either is absent or unreadable."""
    if not (array_path.exists() and meta_path.exists()):
        return None
    try:
        return (json.loads(meta_path.read_text(encoding="utf-8")),
                np.load(array_path, allow_pickle=False))
    except (OSError, ValueError) as err:
        log.warning("%s: unreadable %s (%s); %s", array_path, what, err, action)
        return None


class ArrayCache:
    """A numpy array on disk (``folder/stem.npy``) with a JSON sidecar (``folder/stem.json``)
    that must equal ``meta`` for the array to be reused.

    Args:
        folder: the cache folder.
        stem: file name without suffix.
        meta: the JSON-able sidecar the array must have been saved with.
    """

    def __init__(self, folder: Path, stem: str, meta: dict[str, Any]) -> None:
        self.array_path = folder / f"{stem}.npy"
        self.meta_path = folder / f"{stem}.json"
        self.meta = meta

    def load(self, rows: int) -> np.ndarray | None:
        """The stored array if its sidecar matches and it has ``rows`` rows; else None."""
        pair = _read_pair(self.array_path, self.meta_path, "cache", "rebuilding")
        if pair is None:
            return None
        meta, array = pair
        if meta != self.meta or len(array) != rows:
            log.warning("%s: cache does not match its sidecar or the files; rebuilding",
                        self.array_path)
            return None
        return array

    def save(self, array: np.ndarray) -> None:
        """Store ``array`` and the sidecar."""
        _save_array(self.array_path, array)
        write_json(self.meta_path, self.meta)


class RecordStore:
    """Finished records of one benchmark run, one JSON file each, so a rerun resumes.

    The folder is ``cache_dir/runs/<key_digest(key)>``: ``key`` holds everything that changes a
    record (settings, optimiser settings, model weights, ...), so a run with other settings
    never reads these records.

    Args:
        cache_dir: the benchmark's cache folder.
        key: JSON-able description of what the records depend on (``str`` for other values).
    """

    def __init__(self, cache_dir: Path, key: dict[str, Any]) -> None:
        self.folder = cache_dir / "runs" / key_digest(key)
        self.reused = 0
        self.written = 0

    def load(self, name: str) -> dict[str, Any] | None:
        """The record ``name`` (a relative path without ``.json``), or None (absent, unreadable)."""
        path = self.folder / f"{name}.json"
        if not path.exists():
            return None
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable finished record (%s); running it again", path, err)
            return None
        self.reused += 1
        return record

    def save(self, name: str, record: dict[str, Any]) -> None:
        """Store record ``name`` (atomically)."""
        write_json(self.folder / f"{name}.json", record)
        self.written += 1

    def tell_resumed(self, say: Callable[[str], None], what: str = "identities") -> None:
        """Say how many stored records were reused, if any."""
        if self.reused:
            say(f"resumed {self.reused} stored {what} from {self.folder}")


class MaskStore:
    """Learned masks on disk: ``<name>.npy`` (float32, no pickle) + ``<name>.json`` sidecar.

    The folder is ``cache_dir/masks/<key_digest(key)>``. A mask is reused only when
    its sidecar's ``meta`` equals the one asked for (the photos and surrogates that learned it)
    and the array is (3, 224, 224) float32.

    Args:
        cache_dir: the benchmark's cache folder.
        key: JSON-able description of what every mask depends on (optimiser settings, weights).
    """

    def __init__(self, cache_dir: Path, key: dict[str, Any]) -> None:
        self.folder = cache_dir / "masks" / key_digest(key)

    def load(self, name: str, meta: dict[str, Any]) -> tuple[torch.Tensor, float] | None:
        """The stored mask ``name`` and its learning seconds, or None (absent, stale, unreadable).

        Args:
            name: file stem, e.g. ``"Colin_Powell__A"``.
            meta: what the mask must have been learned from (compared with the sidecar).

        Returns:
            ((3, 224, 224) float32 mask in pixel levels, seconds it took to learn) or None.
        """
        from attackers.frame import FRAME_SIZE

        pair = _read_pair(self.folder / f"{name}.npy", self.folder / f"{name}.json",
                          "stored mask", "learning it again")
        if pair is None:
            return None
        side, array = pair
        if side.get("meta") != json.loads(json.dumps(meta)) or array.shape != (
                3, FRAME_SIZE, FRAME_SIZE) or array.dtype != np.float32:
            log.warning("%s: stored mask does not match its photos or shape; learning it again",
                        self.folder / f"{name}.npy")
            return None
        return torch.from_numpy(array), float(side["learn_s"])

    def save(self, name: str, mask: torch.Tensor, meta: dict[str, Any], learn_s: float) -> None:
        """Store ``mask`` (3, 224, 224) with its sidecar (``meta`` and ``learn_s``), atomically."""
        _save_array(self.folder / f"{name}.npy", mask.detach().cpu().float().numpy())
        write_json(self.folder / f"{name}.json", {
            "array": "(3, 224, 224) float32 mask in pixel levels, canonical frame",
            "meta": meta, "learn_s": learn_s})


class CloakMaskStore:
    """Learned masks as ``.cloak`` files: ``cache_dir/video-masks/<key_digest(key)>/<name>.cloak``.

    A stored mask is reused only when its ``photos`` setting (the training file names joined by
    commas) equals the one asked for.

    Args:
        cache_dir: the benchmark's cache folder.
        key: JSON-able description of what every mask depends on (optimiser settings, folds,
            surrogate weights).
    """

    def __init__(self, cache_dir: Path, key: dict[str, Any]) -> None:
        self.folder = cache_dir / "video-masks" / key_digest(key)

    def load(self, name: str, photos: str) -> Mask | None:
        """The stored mask ``name`` if it was learned from ``photos``; None otherwise."""
        from cloak.mask import MaskError, load_mask

        path = self.folder / f"{name}.cloak"
        if not path.exists():
            return None
        try:
            mask = load_mask(path)
        except MaskError:
            return None
        return mask if mask.settings.get("photos") == photos else None

    def save(self, name: str, mask: Mask) -> None:
        """Store ``mask`` as ``name.cloak``."""
        from cloak.mask import save_mask

        self.folder.mkdir(parents=True, exist_ok=True)
        save_mask(mask, self.folder / f"{name}.cloak")
