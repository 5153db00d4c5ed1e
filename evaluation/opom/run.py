"""Running the OPOM benchmark over the LFW identities, resuming from stored records.

Every finished identity is written to ``cache_dir/runs/<settings digest>/<person>.json``
(:func:`record_store`: ranks, quality, timings; no features), so an interrupted run resumes
where it stopped, and a run that asks for conditions a stored record lacks computes only those.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from attackers import zoo
from evaluation.opom.conditions import CONDITION_BY_NAME
from evaluation.opom.identity import IdentityJob, run_identity
from evaluation.opom.settings import TRAIN_POOL, BenchmarkSettings
from evaluation.opom.summary import summarise
from evaluation.protocol.folds import (
    BLACK_BOXES,
    Fold,
    all_tested,
    load_black_boxes,
    load_surrogates,
)
from evaluation.protocol.gallery import distractor_features
from evaluation.protocol.lfw import split_person
from evaluation.store import RecordStore

__all__ = ["STORE_IGNORES", "record_store", "run_benchmark"]

log = logging.getLogger(__name__)

#: Settings that do not change a finished identity's record (see :func:`record_store`).
STORE_IGNORES = ("limit", "people", "progress", "cache_dir", "batch", "n_boot", "folds", "lfw",
                 "conditions", "refine_steps", "linkage", "views", "precision")


def record_store(settings: BenchmarkSettings, folds: Sequence[Fold],
                 distractor_files: Sequence[Path]) -> RecordStore:
    """Where finished identities are stored, one JSON file each, so a rerun resumes.

    A record holds file names, ranks, quality figures and timings per condition, never a
    feature. The store is keyed by what changes every condition's result: the settings (except
    :data:`STORE_IGNORES`: ``limit``, ``people``, ``conditions``, ``progress``, ``cache_dir``,
    ``batch`` and ``n_boot`` change none; ``linkage``, ``views``, ``precision``, ``refine_steps``
    change only masked conditions, whose entries record their optimiser settings and refinement
    steps, see
    :meth:`~evaluation.opom.conditions.Condition.is_current`), the folds, the distractor files
    and the weights of every model involved.
    """
    models = sorted({BLACK_BOXES[t][0] for f in folds for t in f.tested}
                    | {s for f in folds for s in f.surrogates} | {"mtcnn"})
    return RecordStore(settings.cache_dir, {
        "settings": {k: v for k, v in asdict(settings).items() if k not in STORE_IGNORES},
        "folds": [asdict(f) for f in folds],
        "distractors": [p.name for p in distractor_files],
        "weights": {m: zoo.weights_digests(m) for m in models},
    })


def _only(record: dict[str, Any], conditions: Sequence[str]) -> dict[str, Any]:
    """``record`` with only the given conditions."""
    return {**record, "conditions": {c: record["conditions"][c] for c in conditions}}


def run_benchmark(settings: BenchmarkSettings,
                  log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the OPOM protocol on LFW and return the results (JSON-ready; no features inside).

    Args:
        settings: what to run (:class:`~evaluation.opom.settings.BenchmarkSettings`).
        log_line: called with one line per finished identity (e.g. ``tqdm.write``); default:
            the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config`` (optimiser settings), ``folds``, ``people``,
        ``skipped`` (identity, reason), ``distractors`` (files, with a face), per-identity
        ``identities`` records (ranks, quality, timings) and ``summary`` per condition (PSR@1/5
        per recognizer and mean with bootstrap intervals, quality, timings).

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import attackers

    settings.check()
    folds = settings.fold_plan()
    say = log_line or log.info
    started = time.perf_counter()
    people, distractor_files = settings.photo_sets()

    detector = attackers.load("mtcnn")
    tested = all_tested(folds)
    recognizers = load_black_boxes(tested)
    needs_masks = any(CONDITION_BY_NAME[c].masked for c in settings.conditions)
    surrogates = load_surrogates(folds) if needs_masks else {}
    gallery = distractor_features(distractor_files, tested, recognizers, detector,
                                  settings.cache_dir, settings.batch, settings.progress)

    records, skipped, detect_s = [], [], []
    pool = max(settings.n_train, TRAIN_POOL)
    runs = record_store(settings, folds, distractor_files)
    bar = tqdm(people, desc="identities", unit="person", disable=not settings.progress)
    for person_dir in bar:
        done = runs.load(person_dir.name)
        missing = [c for c in settings.conditions if done is None
                   or not CONDITION_BY_NAME[c].is_current(done["conditions"].get(c), settings)]
        if done is not None and not missing:
            records.append(_only(done, settings.conditions))
            detect_s.append(done["detect_s_per_photo"])
            continue
        start = time.perf_counter()
        split, reason, per_photo = split_person(person_dir, detector, pool, settings.n_probe)
        if split is None:
            skipped.append({"person": person_dir.name, "reason": reason})
            continue
        detect_s.append(per_photo)
        job = IdentityJob(split.person, split.probes, split.train[:settings.n_train], settings,
                          folds, recognizers, surrogates, gallery, detector,
                          bar if settings.progress else None)
        record = run_identity(job, missing)
        record["seconds"] = time.perf_counter() - start
        record["detect_s_per_photo"] = per_photo
        if done is not None:         # conditions added to a stored identity: keep both
            record["conditions"] = {**done["conditions"], **record["conditions"]}
            record["seconds"] += done["seconds"]
        runs.save(record["person"], record)
        records.append(_only(record, settings.conditions))
        clean = record["conditions"].get("clean", {}).get("ranks", {})
        say(f"{split.person}: {record['seconds']:.1f} s; clean top-1 misses "
            f"{sum(r >= 1 for v in clean.values() for r in v)}")
    if not records:
        raise ValueError(f"no identity of {settings.lfw / 'identities'} has "
                         f"{pool + settings.n_probe} photos with a face")
    runs.tell_resumed(say)

    return {
        "benchmark": "opom: LFW identification protection (leave-one-out black boxes)",
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in asdict(settings).items() if k != "folds"},
        "config": {k: v for k, v in settings.config().as_record().items() if k != "subspace"},
        "folds": [asdict(f) for f in folds],
        "people": [r["person"] for r in records],
        "skipped": skipped,
        "distractors": {"files": len(distractor_files),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "detect_s_per_photo": float(np.mean(detect_s)),
        "seconds_per_identity": float(np.mean([r["seconds"] for r in records])),
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "identities": records,
        "summary": summarise(records, settings, folds),
    }
