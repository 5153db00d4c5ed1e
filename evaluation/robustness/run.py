"""Running the robustness benchmark over the LFW identities, resuming from stored records."""

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
from evaluation.opom.identity import mask_store
from evaluation.opom.run import STORE_IGNORES
from evaluation.protocol.folds import (
    BLACK_BOXES,
    WHITE_BOXES,
    Fold,
    all_tested,
    load_black_boxes,
    load_surrogates,
)
from evaluation.protocol.gallery import distractor_features
from evaluation.protocol.lfw import split_person
from evaluation.robustness.identity import Models, run_identity
from evaluation.robustness.settings import RobustnessSettings
from evaluation.robustness.summary import summarise, verification_thresholds
from evaluation.store import MaskStore, RecordStore

__all__ = ["run_robustness", "stores"]

log = logging.getLogger(__name__)


def stores(settings: RobustnessSettings, folds: Sequence[Fold],
            distractor_files: Sequence[Path]) -> tuple[RecordStore, MaskStore]:
    """The identity records' store and the mask store for these settings.

    Masks depend on the optimiser settings (convex) and the weights of the detector and every
    white box (so any fold plan reuses them; each mask's sidecar names its photos and
    surrogates, checked on loading); records also on the folds, the
    distractor files, the black boxes' weights and the conditions (not on ``fars``: records
    hold the genuine pair scores, thresholds are applied in the summary).
    """
    opom = settings.opom
    weights = {m: zoo.weights_digests(m) for m in sorted({*WHITE_BOXES, "mtcnn"})}
    masks = mask_store(opom, opom.config("convex"))
    tested = sorted({BLACK_BOXES[t][0] for f in folds for t in f.tested})
    records = RecordStore(opom.cache_dir / "robustness", {
        "settings": {k: v for k, v in asdict(opom).items() if k not in STORE_IGNORES},
        "config": opom.config("convex").as_record(),
        "folds": [asdict(f) for f in folds],
        "distractors": [p.name for p in distractor_files],
        "weights": {**weights, **{m: zoo.weights_digests(m) for m in tested}},
        "robustness": {k: v for k, v in asdict(settings).items() if k not in ("opom", "fars")},
    })
    return records, masks


def run_robustness(settings: RobustnessSettings,
                   log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the robustness benchmark on LFW and return the results (JSON-ready; no features).

    Args:
        settings: what to run (:class:`~evaluation.robustness.settings.RobustnessSettings`).
        log_line: called with one line per finished identity and fold (e.g. ``tqdm.write``);
            default: the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config``, ``folds``, ``people``, ``skipped``, ``distractors``,
        ``thresholds`` (per recognizer and FAR), per-identity ``identities`` records and
        ``summary`` (``conditions``: PSR@1 per recognizer and mean with 95% bootstrap intervals
        for ``protected/<t>``, ``clean/<t>``, ``direction/<d>``; ``verification`` per FAR;
        ``estimation`` per ``<denoiser>/k<k>`` and ``oracle``; ``stronger_denoiser`` per k;
        ``per_photo``: PSR and seconds of the universal mask and the per-photo baseline).

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import attackers

    settings.check()
    opom = settings.opom
    folds = opom.fold_plan()
    say = log_line or log.info
    started = time.perf_counter()
    people, distractor_files = opom.photo_sets()

    tested = all_tested(folds)
    models = Models(attackers.load("mtcnn"), load_black_boxes(tested), load_surrogates(folds))
    gallery = distractor_features(distractor_files, tested, models.recognizers, models.detector,
                                  opom.cache_dir, opom.batch, opom.progress)
    thresholds = verification_thresholds(gallery, settings.fars)
    runs, masks = stores(settings, folds, distractor_files)

    records, skipped = [], []
    for person_dir in tqdm(people, desc="identities", unit="person", disable=not opom.progress):
        done = runs.load(person_dir.name)
        if done is not None:
            records.append(done)
            continue
        start = time.perf_counter()
        split, reason, _ = split_person(person_dir, models.detector, opom.n_train, opom.n_probe)
        if split is None:
            skipped.append({"person": person_dir.name, "reason": reason})
            continue
        record = run_identity(split.person, split.train, split.probes, settings, folds, models,
                               gallery, masks, say)
        record["seconds"] = time.perf_counter() - start
        runs.save(record["person"], record)
        records.append(record)
    if not records:
        raise ValueError(f"no identity of {opom.lfw / 'identities'} has "
                         f"{opom.n_train + opom.n_probe} photos with a face")
    runs.tell_resumed(say)

    return {
        "benchmark": "robustness: OPOM universal masks under transforms, purifiers, matching "
                     "directions, verification, mask estimation; per-photo baseline (LFW)",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v)
                        for k, v in asdict(opom).items() if k not in ("folds", "conditions")},
                     **{k: v for k, v in asdict(settings).items() if k != "opom"}},
        "config": opom.config("convex").as_record(),
        "folds": [asdict(f) for f in folds],
        "people": [r["person"] for r in records],
        "skipped": skipped,
        "distractors": {"files": len(distractor_files),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "thresholds": thresholds,
        "records_folder": str(runs.folder),
        "masks_folder": str(masks.folder),
        "seconds_per_identity": float(np.mean([r["seconds"] for r in records])),
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "identities": records,
        "summary": summarise(records, settings, folds, thresholds),
    }
