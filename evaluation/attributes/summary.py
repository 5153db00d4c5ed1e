"""Summaries of finished records: counts, timings and attribute metrics per condition and
predictor (UTKFace), flip rates and identity PSR (LFW), and the cost of the attribute cloak."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from evaluation.attribute_metrics.labels import FaceLabels
from evaluation.attribute_metrics.report import attribute_report
from evaluation.attributes.conditions import ATTRIBUTE_CLOAK, fold_name, named, with_style
from evaluation.attributes.settings import AttributeSettings
from evaluation.physical_masks import STYLES

__all__ = ["summarise_lfw", "summarise_utkface"]


def _complete(record: dict[str, Any], conditions: Sequence[str]) -> bool:
    """Whether every condition of a face (or probe) record has predictions."""
    return record.get("detected", True) and all(
        "predictions" in record["conditions"].get(c, {}) for c in conditions)


def _stack(entries: Sequence[dict[str, Any]], predictor: str) -> dict[str, np.ndarray]:
    """A predictor's outputs over faces as arrays ((N,) or (N, K))."""
    keys = entries[0]["predictions"][predictor].keys()
    return {k: np.array([e["predictions"][predictor][k] for e in entries]) for k in keys}


def _counts(faces: Sequence[dict[str, Any]], conditions: Sequence[str]) -> dict[str, Any]:
    """Failure counts over detected faces (or probes)."""
    detected = [f for f in faces if f.get("detected", True)]
    return {
        "mask_failed": {s: sum(any("failed" in f["conditions"].get(c.name, {})
                                   for c in with_style(s)) for f in detected)
                        for s in STYLES if any(named(c).style == s for c in conditions)},
        "not_redetected": {c: sum(not f["conditions"][c].get("redetected", True)
                                  for f in detected if "predictions" in f["conditions"].get(c, {}))
                           for c in conditions if c != "clean"},
        "cloak_on_clean_alignment": {
            c: sum(bool(f["conditions"].get(c, {}).get("cloak_on_clean_alignment"))
                   for f in detected) for c in conditions if named(c).cloak_on_mask},
        "make_s": {c: _mean([f["conditions"][c]["make_s"] for f in detected
                             if "make_s" in f["conditions"].get(c, {})])
                   for c in conditions if c != "clean"},
    }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def summarise_utkface(run: dict[str, Any], settings: AttributeSettings) -> dict[str, Any]:
    """Counts and, per condition and predictor, :func:`attribute_report` on the scored faces."""
    faces = run["faces"]
    scored = [f for f in faces if _complete(f, settings.conditions)]
    summary: dict[str, Any] = {
        "files": run["files"], "malformed": len(run["malformed"]),
        "not_detected": sum(not f["detected"] for f in faces), "scored": len(scored),
        **_counts(faces, settings.conditions),
        "seconds_per_face": _mean([f["seconds"] for f in faces]), "metrics": {}}
    if not scored:
        return summary
    labels = FaceLabels(
        age=np.array([f["labels"]["age"] for f in scored], dtype=np.int64),
        male=np.array([f["labels"]["male"] for f in scored], dtype=bool),
        race=np.array([-1 if f["labels"]["race"] is None else f["labels"]["race"]
                       for f in scored], dtype=np.int64))
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    clean_pvi: dict[str, float | None] = {}
    for condition in settings.conditions:
        row = {}
        for name in settings.predictors:
            preds = _stack([f["conditions"][condition] for f in scored], name)
            pvi = clean_pvi.get(name)
            report = attribute_report(preds, labels, clean_pvi=pvi, **boot)
            if condition == "clean":
                value = report["labelled"].get("pvi", {}).get("value")
                clean_pvi[name] = value if value is not None else math.nan
            row[name] = report["labelled"]
        summary["metrics"][condition] = row
    if ATTRIBUTE_CLOAK in settings.conditions:
        summary["attribute_cloak"] = _attribute_cloak_summary(scored, settings, labels)
    return summary


def _mean_interval(values: Sequence[float], n_boot: int, seed: int,
                   level: float = 0.95) -> dict[str, float | None]:
    """Mean with a percentile-bootstrap interval over the values (``None`` when empty)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"value": None, "low": None, "high": None}
    draws = np.random.default_rng(seed).integers(0, data.size, size=(n_boot, data.size))
    means = data[draws].mean(axis=1)
    tail = 50.0 * (1.0 - level)
    return {"value": float(data.mean()), "low": float(np.percentile(means, tail)),
            "high": float(np.percentile(means, 100.0 - tail))}


def _attribute_cloak_summary(entries: Sequence[dict[str, Any]], settings: AttributeSettings,
                             labels: FaceLabels | None) -> dict[str, Any]:
    """Identity cost and quality of ``cloak`` and of each ``cloak-attr`` fold, and (with labels)
    every predictor's metrics on each fold's photos, white-box ones included.

    Args:
        entries: scored face (UTKFace) or probe (LFW) records.
        settings: the run's settings.
        labels: the faces' labels (UTKFace), or None (LFW).

    Returns:
        ``{"cloak": {"identity": {recognizer: mean cosine}, "ssim"}, "folds": {name:
        {"surrogates", "scored", "identity", "ssim", "metrics"?}}}``; means carry 95%
        bootstrap intervals over the entries.
    """
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}

    def cost(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"identity": {n: _mean_interval([r["identity"][n] for r in rows], **boot)
                             for n in settings.identity_recognizers},
                "ssim": _mean_interval([r["ssim"] for r in rows], **boot)}

    out: dict[str, Any] = {"folds": {}}
    if "cloak" in settings.conditions and entries:
        out["cloak"] = cost([e["conditions"]["cloak"] for e in entries])
    for key, fold in settings.attribute_folds().items():
        name = fold_name(key)
        rows = [e["conditions"][ATTRIBUTE_CLOAK]["folds"][name] for e in entries]
        summary: dict[str, Any] = {"surrogates": fold["surrogates"], "scored": fold["scored"]}
        if rows:
            summary.update(cost(rows))
            if labels is not None:
                summary["metrics"] = {
                    p: attribute_report(_stack(rows, p), labels, **boot)["labelled"]
                    for p in settings.predictors}
        out["folds"][name] = summary
    return out

def _identity_psr(identities: Sequence[dict[str, Any]], settings: AttributeSettings
                  ) -> dict[str, Any]:
    """PSR@1 per condition: per recognizer and their mean, with 95% bootstrap intervals over
    identities, on the scored probes (every condition made)."""
    from evaluation.protocol.ranks import bootstrap_interval

    names = settings.lfw_recognizers()
    per_person = [[p for p in r["probes"] if _complete(p, settings.conditions)]
                  for r in identities]
    per_person = [probes for probes in per_person if probes]
    out: dict[str, Any] = {}
    if not per_person:
        return out
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    trials = np.array([[len(probes)] * len(names) for probes in per_person])      # (I, R)
    for condition in settings.conditions:
        if not named(condition).searched:
            continue
        hits = np.array([[sum(p["conditions"][condition]["ranks"][n] >= 1 for p in probes)
                          for n in names] for probes in per_person])              # (I, R)
        row: dict[str, Any] = {"recognizers": {}}
        for r, name in enumerate(names):
            low, high = bootstrap_interval(hits[:, r], trials[:, r], **boot)
            row["recognizers"][name] = {"value": float(hits[:, r].sum() / trials[:, r].sum()),
                                        "low": low, "high": high}
        low, high = bootstrap_interval(hits, trials, **boot)
        row["mean"] = {"value": float(np.mean(hits.sum(0) / trials.sum(0))), "low": low,
                       "high": high}
        out[condition] = row
    return out


def summarise_lfw(run: dict[str, Any], settings: AttributeSettings) -> dict[str, Any]:
    """Counts and flip rates per condition and predictor against the clean probes."""
    probes = [p for r in run["identities"] for p in r["probes"]]
    scored = [p for p in probes if _complete(p, settings.conditions)]
    summary: dict[str, Any] = {
        "identities": len(run["identities"]), "skipped": len(run["skipped"]),
        "probes": len(probes), "scored": len(scored), **_counts(probes, settings.conditions),
        "learn_s_per_identity": _mean([r["learn_s"] for r in run["identities"]]),
        "seconds_per_identity": _mean([r["seconds"] for r in run["identities"]]),
        "flips": {}}
    if not scored:
        return summary
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    for condition in settings.conditions:
        if condition == "clean":
            continue
        summary["flips"][condition] = {
            name: attribute_report(
                _stack([p["conditions"][condition] for p in scored], name),
                reference=_stack([p["conditions"]["clean"] for p in scored], name),
                **boot)["flips"]
            for name in settings.predictors}
    summary["identity_psr"] = _identity_psr(run["identities"], settings)
    if ATTRIBUTE_CLOAK in settings.conditions:
        summary["attribute_cloak"] = _attribute_cloak_summary(scored, settings, None)
    return summary

