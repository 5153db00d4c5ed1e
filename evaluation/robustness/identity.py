"""One identity of the robustness benchmark: every condition's ranks, genuine pair scores,
mask-estimation correlations and timings (no features, no masks)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from evaluation.mask_attacks import estimate_mask, mask_correlation, subtract_mask
from evaluation.protocol.folds import Fold, all_tested
from evaluation.protocol.lfw import Photo
from evaluation.protocol.recognition import embed, paste_and_round
from evaluation.robustness.settings import RobustnessSettings
from evaluation.robustness.views import frames_after, jitter_offsets
from evaluation.store import MaskStore
from evaluation.verification import gallery_ranks, genuine_scores

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = ["Models", "fold_mask", "run_identity"]


@dataclass
class Models:
    """The models of a robustness run.

    Attributes:
        detector: MTCNN.
        recognizers: the tested black boxes by name.
        surrogates: the folds' white boxes by name.
    """

    detector: MTCNN
    recognizers: dict[str, Recognizer]
    surrogates: dict[str, Recognizer]


def _entry(queries: dict[str, torch.Tensor], enrolled: dict[str, torch.Tensor],
           gallery: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Ranks and undetected counts of each recognizer's queries against its gallery."""
    return {"ranks": {n: gallery_ranks(q, enrolled[n], gallery[n]).tolist()
                      for n, q in queries.items()},
            "undetected": {n: int(torch.isnan(q[:, 0]).sum()) for n, q in queries.items()}}


def _merge(record: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    """Add a fold's recognizers to condition ``name`` of the record."""
    into = record["conditions"].setdefault(name, {"ranks": {}, "undetected": {}})
    into["ranks"].update(entry["ranks"])
    into["undetected"].update(entry["undetected"])


def _scores(values: np.ndarray) -> list[float | None]:
    """JSON-ready pair scores: None where a photo had no face."""
    return [None if math.isnan(v) else float(v) for v in values]


def fold_mask(masks: MaskStore, name: str, photos: Sequence[Photo], fold: Fold,
          models: Models, settings: RobustnessSettings) -> tuple[torch.Tensor, float, bool]:
    """The mask learned from ``photos`` by the fold's surrogates: stored, or learned and stored.

    Returns:
        (mask (3, 224, 224), seconds to learn it (training faces + optimisation), reused).
    """
    from cloak.opom import learn_mask, training_face

    meta = {"photos": [p.path.name for p in photos], "surrogates": list(fold.surrogates)}
    stored = masks.load(name, meta)
    if stored is not None:
        return stored[0], stored[1], True
    start = time.perf_counter()
    faces = [training_face(p.pixels, p.face) for p in photos]
    delta = learn_mask(faces, [models.surrogates[s] for s in fold.surrogates],
                       settings.opom.config("convex"))
    learn_s = time.perf_counter() - start
    masks.save(name, delta, meta, learn_s)
    return delta, learn_s, False


def _subtracted(frames: Sequence[torch.Tensor | None],
                estimate: torch.Tensor) -> list[torch.Tensor | None]:
    """Each aligned frame (3, 224, 224) minus the estimate (clipped); None stays None."""
    kept = [i for i, f in enumerate(frames) if f is not None]
    out: list[torch.Tensor | None] = [None] * len(frames)
    if kept:
        cleaned = subtract_mask(torch.stack([frames[i] for i in kept]), estimate)
        for row, i in enumerate(kept):
            out[i] = cleaned[row]
    return out


def _estimation(record: dict[str, Any], prefix: str, sample: Sequence[torch.Tensor | None],
                probes: Sequence[torch.Tensor | None], names: Sequence[str],
                models: Models, enrolled: dict[str, torch.Tensor],
                gallery: dict[str, torch.Tensor], settings: RobustnessSettings,
                true_mask: torch.Tensor | None) -> dict[str, Any]:
    """The mask-estimation attack for every denoiser and k; ranks go to ``prefix/<d>/k<k>``.

    Args:
        sample: the attacker's aligned frames (None = no face found), in order; the first ``k``
            with a face are used.
        probes: the aligned frames of the probes to attack (None = no face found).
        true_mask: (3, 224, 224) the mask as pasted (feathered), for the correlation; None for the
            clean control.

    Returns:
        per ``<d>/k<k>``: photos used and the estimate's correlation with ``true_mask``.
    """
    found = [f for f in sample if f is not None]
    info: dict[str, Any] = {}
    for denoiser in settings.denoisers:
        for k in settings.ks:
            key = f"{denoiser}/k{k}"
            if not found:
                info[key] = {"photos": 0, "correlation": None}
                continue
            estimate = estimate_mask(torch.stack(found[:k]), denoiser)
            attacked = _subtracted(probes, estimate)
            queries = {n: embed(models.recognizers[n], attacked) for n in names}
            _merge(record, f"{prefix}/{key}", _entry(queries, enrolled, gallery))
            info[key] = {"photos": len(found[:k]), "correlation": None if true_mask is None
                         else mask_correlation(estimate, true_mask)}
    return info


def _per_photo(record: dict[str, Any], person: str, probes: Sequence[Photo], fold: Fold,
               settings: RobustnessSettings, models: Models, clean: dict[str, torch.Tensor],
               gallery: dict[str, torch.Tensor], masks: MaskStore,
               offsets: torch.Tensor) -> dict[str, Any]:
    """The per-photo baseline of one fold: each probe protected by its own mask, learned from
    that photo alone (ranks go to ``per-photo``); returns its timings."""
    feather = settings.opom.config("convex").feather
    own_photos, own_learn, own_apply, own_reused = [], [], [], []
    for probe in probes:
        own, seconds, was_stored = fold_mask(
            masks, f"{person}__{fold.name}__{probe.path.stem}", [probe], fold, models, settings)
        out, applied = paste_and_round([probe], own, feather, settings.opom.paste_mode)
        own_photos += out
        own_learn.append(seconds)
        own_apply += applied
        own_reused.append(was_stored)
    frames = frames_after(own_photos, "none", models.detector, offsets)
    queries = {n: embed(models.recognizers[n], frames) for n in fold.tested}
    _merge(record, "per-photo", _entry(queries, clean, gallery))
    return {"baseline_learn_s": own_learn, "baseline_apply_s": own_apply,
            "baseline_reused": own_reused}


def run_identity(person: str, train: Sequence[Photo], probes: Sequence[Photo],
                 settings: RobustnessSettings, folds: Sequence[Fold], models: Models,
                 gallery: dict[str, torch.Tensor], masks: MaskStore,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Every condition of one identity: ranks, genuine pair scores, correlations, timings."""
    from cloak.faces.align import feather_weight

    opom = settings.opom
    config = opom.config("convex")
    tested = all_tested(folds)
    recognizers = models.recognizers
    record: dict[str, Any] = {
        "person": person, "train": [p.path.name for p in train],
        "probes": [p.path.name for p in probes], "conditions": {}, "verification": {},
        "estimation": {}, "timing": {}}
    clean_frames = [p.face.frame for p in probes]
    clean = {n: embed(recognizers[n], clean_frames) for n in tested}
    offsets = jitter_offsets(person, len(probes), settings.jitter_px, opom.seed)
    clean_photos = [p.pixels for p in probes]
    for condition in settings.transforms:
        frames = frames_after(clean_photos, condition, models.detector, offsets)
        queries = {n: embed(recognizers[n], frames) for n in tested}
        _merge(record, f"clean/{condition}", _entry(queries, clean, gallery))
    for n in tested:
        record["verification"][n] = {"clean": _scores(genuine_scores(clean[n], clean[n]))}
    record["estimation"]["control"] = _estimation(
        record, "control", [p.face.frame for p in train], clean_frames, tested, models, clean,
        gallery, settings, None)

    for fold in folds:
        names = list(fold.tested)
        delta, learn_s, reused = fold_mask(masks, f"{person}__{fold.name}", train, fold, models,
                                       settings)
        photos, apply_s = paste_and_round(probes, delta, config.feather, opom.paste_mode)
        protected: dict[str, torch.Tensor] = {}
        for condition in settings.transforms:
            frames = frames_after(photos, condition, models.detector, offsets)
            queries = {n: embed(recognizers[n], frames) for n in names}
            _merge(record, f"protected/{condition}", _entry(queries, clean, gallery))
            if condition == "none":
                protected, none_frames = queries, frames
        _merge(record, "direction/clean-vs-protected",
               _entry({n: clean[n] for n in names}, protected, gallery))
        _merge(record, "direction/protected-vs-protected", _entry(protected, protected, gallery))
        for n in names:
            record["verification"][n]["protected"] = _scores(genuine_scores(protected[n],
                                                                            clean[n]))
        protected_train, _ = paste_and_round(train, delta, config.feather, opom.paste_mode)
        sample = frames_after(protected_train, "none", models.detector)
        true_mask = delta * feather_weight(config.feather)
        record["estimation"][fold.name] = _estimation(
            record, "estimate", sample, none_frames, names, models, clean, gallery, settings,
            true_mask)
        queries = {n: embed(recognizers[n], _subtracted(none_frames, true_mask)) for n in names}
        _merge(record, "estimate/oracle", _entry(queries, clean, gallery))
        timing: dict[str, Any] = {"learn_s": learn_s, "reused": reused, "apply_s": apply_s}
        if settings.baseline:
            timing.update(_per_photo(record, person, probes, fold, settings, models, clean,
                                     gallery, masks, offsets))
        record["timing"][fold.name] = timing
        ranks = record["conditions"]["protected/none"]["ranks"]
        misses = sum(r >= 1 for n in names for r in ranks[n])
        say(f"{person} fold {fold.name}: mask {'reused' if reused else f'{learn_s:.1f} s'}; "
            f"protected top-1 misses {misses} of {len(names) * len(probes)}")
    return record
