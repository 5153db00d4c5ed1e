"""The robustness benchmark's summary over identities: PSR tables, verification, mask
estimation and the per-photo baseline."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from evaluation.protocol.folds import Fold, all_tested
from evaluation.protocol.ranks import bootstrap_interval, psr_table
from evaluation.robustness.settings import DIRECTIONS, RobustnessSettings
from evaluation.verification import far_threshold, impostor_scores, rejection_rate

__all__ = ["psr_row", "summarise", "verification_summary", "verification_thresholds"]


def verification_thresholds(gallery: dict[str, torch.Tensor],
                fars: Sequence[float]) -> dict[str, dict[str, dict[str, float]]]:
    """Per recognizer and FAR (as text): the threshold and the FAR it gives on the calibration."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, features in gallery.items():
        impostor = impostor_scores(features)
        out[name] = {}
        for far in fars:
            t = far_threshold(impostor, far)
            out[name][f"{far:g}"] = {"threshold": t, "far": float((impostor > t).mean()),
                                     "pairs": int(impostor.size)}
    return out


def psr_row(records: Sequence[dict[str, Any]], name: str, tested: Sequence[str],
            n_boot: int, seed: int) -> dict[str, Any]:
    """PSR@1 per recognizer (with probes and undetected probes) and mean over recognizers, with
    bootstrap intervals over identities, of condition ``name`` of the records."""
    entries = [r["conditions"][name] for r in records]
    names = [t for t in tested if t in entries[0]["ranks"]]
    ranks = {n: np.array([e["ranks"][n] for e in entries]) for n in names}    # (I, P)
    per, mean = psr_table(ranks, (1,), n_boot=n_boot, seed=seed)
    for n in names:
        per[n].update(probes=int(ranks[n].size),
                      undetected=sum(e["undetected"][n] for e in entries))
    return {"recognizers": per, "mean": mean}


def _rate_interval(rejected: np.ndarray, pairs: np.ndarray, n_boot: int,
                   seed: int) -> list[float]:
    low, high = bootstrap_interval(rejected, pairs, n_boot=n_boot, seed=seed)
    return [low, high]


#: The interval's key of each verification rate.
_CI = {"protection_rate": "protection_ci", "clean_frr": "clean_frr_ci"}


def verification_summary(records: Sequence[dict[str, Any]], tested: Sequence[str],
                  thresholds: dict[str, dict[str, dict[str, float]]], n_boot: int,
                  seed: int) -> dict[str, Any]:
    """Per FAR: per recognizer and mean, protection rate and clean false-reject rate."""
    out: dict[str, Any] = {}
    for far in next(iter(thresholds.values())):
        row: dict[str, Any] = {"recognizers": {}}
        counts = {}
        for n in tested:
            t = thresholds[n][far]["threshold"]
            per_kind = {}
            for kind in ("protected", "clean"):
                scores = [np.array([np.nan if s is None else s for s in r["verification"][n][kind]])
                          for r in records]
                rejected = np.array([rejection_rate(s, t) * len(s) for s in scores])
                pairs = np.array([len(s) for s in scores], dtype=np.float64)
                per_kind[kind] = (rejected, pairs)
            counts[n] = per_kind
            row["recognizers"][n] = {
                "threshold": t, "far_on_calibration": thresholds[n][far]["far"],
                "protection_rate": float(per_kind["protected"][0].sum()
                                         / per_kind["protected"][1].sum()),
                _CI["protection_rate"]: _rate_interval(*per_kind["protected"], n_boot, seed),
                "clean_frr": float(per_kind["clean"][0].sum() / per_kind["clean"][1].sum()),
                _CI["clean_frr"]: _rate_interval(*per_kind["clean"], n_boot, seed),
                "pairs": int(per_kind["protected"][1].sum())}
        mean: dict[str, Any] = {}
        for kind, rate in (("protected", "protection_rate"), ("clean", "clean_frr")):
            hits = np.stack([counts[n][kind][0] for n in tested], 1)             # (I, R)
            trials = np.stack([counts[n][kind][1] for n in tested], 1)
            mean[rate] = float(np.mean([row["recognizers"][n][rate] for n in tested]))
            mean[_CI[rate]] = _rate_interval(hits, trials, n_boot, seed)
        row["mean"] = mean
        out[far] = row
    return out


def summarise(records: Sequence[dict[str, Any]], settings: RobustnessSettings,
               folds: Sequence[Fold],
               thresholds: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """PSR tables, verification, mask estimation and the per-photo baseline, over identities."""
    opom = settings.opom
    tested = all_tested(folds)

    def row(name: str) -> dict[str, Any]:
        return psr_row(records, name, tested, opom.n_boot, opom.seed)

    conditions = {f"protected/{t}": row(f"protected/{t}") for t in settings.transforms}
    conditions |= {f"clean/{t}": row(f"clean/{t}") for t in settings.transforms}
    conditions |= {f"direction/{d}": row(f"direction/{d}") for d in DIRECTIONS}
    estimation: dict[str, Any] = {}
    for d in settings.denoisers:
        for k in settings.ks:
            key = f"{d}/k{k}"
            correlations = [r["estimation"][f.name][key]["correlation"] for r in records
                            for f in folds]
            found = [c for c in correlations if c is not None]
            estimation[key] = {
                "denoiser": d, "k": k, "protected": row(f"estimate/{key}"),
                "control": row(f"control/{key}"),
                "correlation": float(np.mean(found)) if found else None,
                "photos": float(np.mean([r["estimation"][f.name][key]["photos"]
                                         for r in records for f in folds]))}
    estimation["oracle"] = {"protected": row("estimate/oracle")}
    stronger = {str(k): min(settings.denoisers, key=lambda d, k=k: estimation[
        f"{d}/k{k}"]["protected"]["mean"]["psr@1"]) for k in settings.ks}
    timing = [r["timing"][f.name] for r in records for f in folds]
    learn = np.array([t["learn_s"] for t in timing])
    apply = np.array([s for t in timing for s in t["apply_s"]])
    per_photo: dict[str, Any] = {
        "universal": conditions["protected/none"],
        "seconds": {
            "universal_learn_s_per_mask": float(learn.mean()),
            "universal_apply_s_per_photo": float(apply.mean()),
            "universal_amortised_s_per_photo": float(learn.mean() / opom.n_train + apply.mean()),
            "learn_s_per_fold": {f.name: float(np.mean([r["timing"][f.name]["learn_s"]
                                                        for r in records])) for f in folds},
            "masks_reused": int(sum(t["reused"] for t in timing))}}
    if settings.baseline:
        own = np.array([a + b for t in timing for a, b in zip(t["baseline_learn_s"],
                                                              t["baseline_apply_s"],
                                                              strict=True)])
        seconds = per_photo["seconds"]
        seconds.update(
            baseline_s_per_photo=float(own.mean()),
            baseline_learn_s_per_photo=float(np.mean([s for t in timing
                                                      for s in t["baseline_learn_s"]])),
            baseline_masks_reused=int(sum(sum(t["baseline_reused"]) for t in timing)),
            ratio_vs_amortised=float(own.mean() / seconds["universal_amortised_s_per_photo"]),
            ratio_vs_applied=float(own.mean() / seconds["universal_apply_s_per_photo"]))
        per_photo["baseline"] = row("per-photo")
    return {"conditions": conditions,
            "verification": verification_summary(records, tested, thresholds, opom.n_boot,
                                                 opom.seed),
            "estimation": estimation, "stronger_denoiser": stronger, "per_photo": per_photo}
