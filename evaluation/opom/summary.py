"""The OPOM benchmark's summary over identities: PSR per condition and recognizer, quality,
timings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.opom.conditions import CONDITION_BY_NAME
from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.folds import Fold, all_tested
from evaluation.protocol.ranks import psr_table

__all__ = ["summarise"]


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _quality(entries: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """PSNR, SSIM and L-inf of the protected photos: mean and worst."""
    quality = [q for e in entries for q in e["quality"]]
    psnrs = [q["psnr"] for q in quality]
    return {"psnr_mean": _finite(float(np.mean(psnrs))), "psnr_min": _finite(min(psnrs)),
            "ssim_mean": float(np.mean([q["ssim"] for q in quality])),
            "ssim_min": min(q["ssim"] for q in quality),
            "linf_mean": float(np.mean([q["linf"] for q in quality])),
            "linf_max": max(q["linf"] for q in quality), "photos": len(quality)}


def summarise(records: Sequence[dict[str, Any]], settings: BenchmarkSettings,
              folds: Sequence[Fold]) -> dict[str, Any]:
    """Per condition: PSR@1/5 per recognizer and mean with bootstrap intervals, in both
    directions (protected probe vs clean gallery: ``recognizers``/``mean``; vs the person's
    other protected probes: ``linkage``/``linkage_mean``), quality and timings."""
    tested = all_tested(folds)
    fold_of = {t: fold.name for fold in folds for t in fold.tested}
    summary: dict[str, Any] = {}
    for condition in settings.conditions:
        masked = CONDITION_BY_NAME[condition].masked
        entries = [r["conditions"][condition] for r in records]
        row: dict[str, Any] = {}
        for key, into in (("ranks", "recognizers"), ("linkage", "linkage")):
            ranks = {n: np.array([e[key][n] for e in entries]) for n in tested}       # (I, P)
            per, mean = psr_table(ranks, (1, 5), n_boot=settings.n_boot, seed=settings.seed)
            for name in tested:
                per[name].update(fold=fold_of[name] if masked else None,
                                 undetected=sum(e["undetected"].get(name, 0) for e in entries),
                                 probes=int(ranks[name].size))
            row[into] = per
            row["mean" if key == "ranks" else "linkage_mean"] = mean
        if condition != "clean":
            row["quality"] = _quality(entries)
            row["protect_s_per_photo"] = float(np.mean([s for e in entries
                                                        for s in e["protect_s"]]))
            refine = [s for e in entries for s in e.get("refine_s", [])]
            if refine:
                row["refine_s_per_photo"] = float(np.mean(refine))
            learn = [s for e in entries for s in e["learn_s"].values()]
            row["learn_s_per_mask"] = float(np.mean(learn)) if learn else None
            row["learn_s_per_fold"] = {
                f.name: float(np.mean([e["learn_s"][f.name] for e in entries]))
                for f in folds if learn}
        summary[condition] = row
    return summary
