"""The UTKFace part: labelled chips, one photo per person, so each face's cloak is learned from
the very photo it protects."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from evaluation.attribute_metrics.labels import UtkLabels, parse_utkface_name
from evaluation.attributes.models import Models, learn
from evaluation.attributes.photos import condition_photos, face_seed, pad_photo
from evaluation.attributes.records import condition_records
from evaluation.attributes.settings import AttributeSettings
from evaluation.protocol.lfw import central_faces, load_rgb
from evaluation.store import RecordStore

if TYPE_CHECKING:
    from cloak.faces import AlignedFace

__all__ = ["run_utkface", "utkface_faces"]


def utkface_faces(folder: Path, limit: int | None = None
                  ) -> tuple[list[tuple[Path, UtkLabels]], list[dict[str, str]]]:
    """The photos of a UTKFace folder in the benchmark's fixed order, with their labels.

    The order is the SHA-256 of each photo's path relative to ``folder`` (pseudo-random but
    fixed, so a limited run is a sample mixing sexes, races and ages, and a longer run extends
    it). The first ``limit`` files are taken; those whose name does not parse
    (:func:`~evaluation.attribute_metrics.labels.parse_utkface_name`) are set aside with the reason.

    Args:
        folder: e.g. ``utkface/balanced``.
        limit: files to take; None = all.

    Returns:
        (labelled, malformed): ``(path, labels)`` in order, and ``{"file", "reason"}`` per
        skipped file (``file`` relative to ``folder``).

    Raises:
        FileNotFoundError: the folder is missing or holds no ``*.jpg``.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: UTKFace folder not found")
    files = sorted(folder.rglob("*.jpg"), key=lambda p: hashlib.sha256(
        p.relative_to(folder).as_posix().encode()).hexdigest())
    if not files:
        raise FileNotFoundError(f"{folder}: no *.jpg photos")
    labelled, malformed = [], []
    for path in files[:limit]:
        try:
            labelled.append((path, parse_utkface_name(path)))
        except ValueError as err:
            malformed.append({"file": path.relative_to(folder).as_posix(), "reason": str(err)})
    return labelled, malformed


def run_utkface(dataset: str, settings: AttributeSettings, models: Models, runs: RecordStore,
                say: Callable[[str], None]) -> dict[str, Any]:
    """Records of one UTKFace folder (from the cache or computed) and the malformed names."""
    from cloak.opom import training_face

    folder = settings.utkface / dataset
    labelled, malformed = utkface_faces(folder, settings.limit)
    config = settings.config()
    folds = {k: f["scored"] for k, f in settings.attribute_folds().items()}
    part = f"utkface-{dataset}"
    records: dict[str, dict[str, Any]] = {}
    pending = []
    for path, labels in labelled:
        name = path.relative_to(folder).as_posix()
        done = runs.load(f"{part}/{name}")
        if done is not None:
            records[name] = done
        else:
            pending.append((name, path, labels))

    def cloak(_: int, pixels: torch.Tensor, face: AlignedFace, key: str) -> torch.Tensor:
        return learn([training_face(pixels, face)], key, models, settings)

    bar = tqdm(total=len(labelled), initial=len(records), desc=f"utkface {dataset}",
               unit="face", disable=not settings.progress)
    for i in range(0, len(pending), settings.batch):
        chunk = pending[i:i + settings.batch]
        start = time.perf_counter()
        chips = [load_rgb(path) for _, path, _ in chunk]
        found = central_faces([pad_photo(c, settings.pad, settings.pad_mode) for c in chips],
                              models.detector, settings.batch)
        kept = [k for k, f in enumerate(found) if f is not None]
        made = condition_photos(
            [chips[k] for k in kept], [found[k] for k in kept], settings.conditions,
            detector=models.detector, landmarker=models.landmarker, cloak=cloak,
            seeds=[face_seed(settings.seed, f"{dataset}/{chunk[k][0]}") for k in kept],
            feather=config.feather, pad=settings.pad, pad_mode=settings.pad_mode,
            batch=settings.batch, attribute_folds=list(folds))
        per_face = iter(condition_records(made, settings.conditions, models.predictors,
                                          settings.batch, folds, models.identity))
        seconds = (time.perf_counter() - start) / len(chunk)
        for k, (name, _, labels) in enumerate(chunk):
            record = {"file": name, "labels": asdict(labels), "detected": k in kept,
                      "seconds": seconds}
            if k in kept:
                record["conditions"] = next(per_face)
            runs.save(f"{part}/{name}", record)
            records[name] = record
        bar.update(len(chunk))
        say(f"utkface {dataset}: {len(records)}/{len(labelled)} faces, {seconds:.1f} s/face")
    bar.close()
    ordered = [records[p.relative_to(folder).as_posix()] for p, _ in labelled]
    return {"files": len(labelled) + len(malformed), "malformed": malformed, "faces": ordered}

