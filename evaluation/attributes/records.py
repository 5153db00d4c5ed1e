"""What is recorded per photo (predictions and flags of each condition, JSON-ready, no pixels)
and where finished records are stored so an interrupted run resumes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from attackers import zoo
from evaluation.attributes.conditions import ATTRIBUTE_CLOAK, fold_name, named
from evaluation.attributes.settings import PREDICTORS, AttributeSettings
from evaluation.store import RecordStore

if TYPE_CHECKING:
    from attackers.attributes.base import AttributePredictor
    from attackers.recognizers.base import Recognizer
    from evaluation.attributes.photos import FaceConditions

__all__ = ["condition_records", "record_store"]


def _predict(predictors: dict[str, AttributePredictor], frames: Sequence[torch.Tensor],
             batch: int) -> dict[str, list[dict[str, Any]]]:
    """Per predictor, one dict of plain floats (lists for class probabilities) per frame.

    Values are rounded to 6 decimals (probabilities, years): enough for every metric, and the
    JSON stays small.
    """
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in predictors}
    for i in range(0, len(frames), batch):
        stack = torch.stack(list(frames[i:i + batch]))
        for name, model in predictors.items():
            with torch.no_grad():
                result = {k: v.detach().double().numpy() for k, v in model.predict(stack).items()}
            for row in range(len(stack)):
                out[name].append({k: (round(float(v[row]), 6) if v.ndim == 1
                                      else np.round(v[row], 6).tolist())
                                  for k, v in result.items()})
    return out


def condition_records(made: Sequence[FaceConditions], conditions: Sequence[str],
                       predictors: dict[str, AttributePredictor], batch: int,
                       folds: Mapping[str, Sequence[str]] | None = None,
                       identity: Mapping[str, Recognizer] | None = None) -> list[dict[str, Any]]:
    """Predictions and flags of each photo's conditions (JSON-ready, no pixels).

    Args:
        made: the photos under each condition
            (:func:`~evaluation.attributes.photos.condition_photos`).
        conditions: the conditions to record.
        predictors: report name -> attribute predictor.
        batch: frames per predictor call.
        folds: ``cloak-attr`` fold key -> the predictors it is scored by. The ``cloak-attr``
            record takes each predictor's outputs from the fold that scores it and keeps every
            fold under ``"folds"`` (all predictors' outputs, ``redetected``, ``make_s``).
        identity: black-box recognizers: with them, ``cloak`` and each fold also get
            ``"identity"`` (recognizer -> cosine of the clean and the protected frame's
            features) and ``"ssim"`` (of the protected photo to the clean one).
    """
    from cloak.quality import ssim

    folds = folds or {}
    chosen = [named(c) for c in conditions]
    keys = [c.name for c in chosen if not c.per_fold] + [
        key for c in chosen if c.per_fold for key in c.photo_keys(list(folds))]
    jobs = [(k, c) for k, item in enumerate(made) for c in keys if c in item.frames]
    preds = _predict(predictors, [made[k].frames[c] for k, c in jobs], batch)
    entries: list[dict[str, Any]] = [{} for _ in made]
    for j, (k, key) in enumerate(jobs):
        entries[k][key] = {
            "redetected": made[k].found[key] is not None,
            "make_s": made[k].make_s.get(key, 0.0),
            "predictions": {name: preds[name][j] for name in predictors}}
    if identity:
        costed = [(k, c) for k, c in jobs if c == "cloak" or c in folds]
        for name, model in identity.items():
            with torch.no_grad():
                clean = model.embed(torch.stack([made[k].frames["clean"] for k, _ in costed]))
                cloaked = model.embed(torch.stack([made[k].frames[c] for k, c in costed]))
            cosines = (clean * cloaked).sum(dim=1).tolist()
            for (k, c), cosine in zip(costed, cosines, strict=True):
                entries[k][c].setdefault("identity", {})[name] = round(cosine, 6)
        for k, c in costed:
            entries[k][c]["ssim"] = round(ssim(made[k].pixels["clean"], made[k].pixels[c]), 6)
    records: list[dict[str, Any]] = []
    for item, entry in zip(made, entries, strict=True):
        record = {c: entry[c] for c in conditions if c in entry}
        made_folds = {fold_name(key): entry[key] for key in folds if key in entry}
        if made_folds:
            scorer = {p: fold_name(key) for key, scored in folds.items() for p in scored}
            record[ATTRIBUTE_CLOAK] = {
                "redetected": all(f["redetected"] for f in made_folds.values()),
                "make_s": sum(f["make_s"] for f in made_folds.values()),
                "predictions": {p: made_folds[scorer[p]]["predictions"][p]
                                for p in predictors if scorer.get(p) in made_folds},
                "folds": made_folds}
        for key, reason in item.failed.items():
            if key in conditions:
                record[key] = {"failed": reason}
        for key in item.cloak_on_clean_alignment:
            if key in record:
                record[key]["cloak_on_clean_alignment"] = True
        records.append(record)
    return records


#: Settings that do not change a finished record (see :func:`record_store`).
_STORE_IGNORES = ("utkface", "lfw", "datasets", "limit", "lfw_limit", "n_boot", "cache_dir",
                  "batch", "progress", "lfw_distractors")  # the LFW key names the distractors
#: Settings of the attribute cloak: they key the store only when ``cloak-attr`` is run.
_ATTRIBUTE_SETTINGS = ("protect_attributes", "attribute_weight", "identity_recognizers")


def record_store(settings: AttributeSettings, distractors: Sequence[Path] | None = None
                 ) -> RecordStore:
    """Where finished faces (or, with ``distractors``, LFW identities) are stored, one JSON file
    each, so a rerun resumes.

    Keyed by everything that changes a record: the settings (except the data folders,
    ``datasets``, ``limit``, ``lfw_limit``, ``n_boot``, ``cache_dir``, ``batch`` and
    ``progress``; the attribute cloak's settings only when ``cloak-attr`` is run, so other
    runs keep the key they had before it existed), the optimiser settings and the weights of
    every model involved; for LFW also the identity recognizers' weights and the distractor
    files.
    """
    folds = settings.attribute_folds()
    ignored = _STORE_IGNORES if folds else _STORE_IGNORES + _ATTRIBUTE_SETTINGS
    models = sorted({PREDICTORS[p][0] for p in settings.predictors}
                    | set(settings.surrogates()) | {"mtcnn", "shape68"})
    key: dict[str, Any] = {
        "settings": {k: v for k, v in asdict(settings).items() if k not in ignored},
        "config": settings.config().as_record(),
        "surrogates": settings.surrogates(),
        "weights": {m: zoo.weights_digests(m) for m in models},
    }
    if any(named(c).cloak_on_mask for c in settings.conditions):
        key["cloak+mask"] = "the clean photo's cloak pasted into the masked photo"
    if folds:
        extra = {n for f in folds.values() for n in f["surrogates"]}
        extra |= set(settings.identity_recognizers)
        key["attribute_folds"] = folds
        key["weights"].update({m: zoo.weights_digests(m) for m in sorted(extra)})
    if distractors is not None:
        from evaluation.protocol.folds import BLACK_BOXES

        key["lfw_identity"] = {
            "weights": {n: zoo.weights_digests(BLACK_BOXES[n][0])
                        for n in settings.lfw_recognizers()},
            "distractors": [p.name for p in distractors]}
    return RecordStore(settings.cache_dir, key)

