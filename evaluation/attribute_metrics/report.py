"""Every attribute metric of one predictor on one condition, JSON-ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from evaluation.attribute_metrics.arrays import as_numpy, json_float
from evaluation.attribute_metrics.flips import flip_rate, mean_age_shift
from evaluation.attribute_metrics.labels import FaceLabels, predicted_classes
from evaluation.attribute_metrics.pvi import pvi_estimate, pvi_weights, relative_reduction
from evaluation.attribute_metrics.scores import (
    AttributeScore,
    age_bin_accuracy,
    age_mae,
    race_accuracy,
    sex_accuracy,
)

__all__ = ["attribute_report"]


def attribute_report(predictions: Mapping[str, Any], labels: FaceLabels | None = None,
                     reference: Mapping[str, Any] | None = None, *,
                     weights: Mapping[str, float] | None = None, clean_pvi: float | None = None,
                     n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Every attribute metric of one predictor on one condition, JSON-ready.

    Args:
        predictions: one predictor's outputs on N faces (tensors or arrays, keys as in
            :mod:`attackers.attributes.base`).
        labels: labels of the N faces (UTKFace), or None (LFW).
        reference: the same predictor's outputs on the clean faces, or None.
        weights: PVI weights (see :func:`pvi_weights`); None = equal over the attributes the
            predictor outputs.
        clean_pvi: the PVI of the clean condition, for ``"pvi_relative_reduction"``.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws, shared by every metric.

    Returns:
        ``{"n_faces", "n_boot", "level", "seed"}``, plus, with labels, ``"labelled"``: per
        attribute ``sex``, ``race``, ``age`` (MAE), ``age_bin`` (each
        :meth:`AttributeScore.as_dict`; ``age_bin`` says its ``source`` output) and ``pvi``
        (value, interval, ``weights``, and ``relative_reduction`` when ``clean_pvi`` is given);
        with a reference, ``"flips"``: ``sex``, ``race``, ``age_bin`` (with ``source``) flip
        rates and ``age_shift_years``. Outputs the predictor lacks are left out; NaN is None.

    Raises:
        ValueError: neither labels nor reference, row counts that disagree, or invalid
            weights (including a positive weight on an attribute the predictor lacks).
    """
    if labels is None and reference is None:
        raise ValueError("need labels or reference predictions")
    preds = {k: as_numpy(v) for k, v in predictions.items()}
    n = _rows(preds, "predictions")
    report: dict[str, Any] = {"n_faces": n, "n_boot": n_boot, "level": level, "seed": seed}
    boot = {"n_boot": n_boot, "level": level, "seed": seed}
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} predicted faces")
        report["labelled"] = _labelled(preds, labels, weights, clean_pvi, boot)
    if reference is not None:
        ref = {k: as_numpy(v) for k, v in reference.items()}
        if _rows(ref, "reference") != n:
            raise ValueError(f"reference has {_rows(ref, 'reference')} faces, predictions {n}")
        report["flips"] = _flips(preds, ref, boot)
    return report


def _labelled(preds: dict[str, np.ndarray], labels: FaceLabels,
              weights: Mapping[str, float] | None, clean_pvi: float | None,
              boot: dict[str, Any]) -> dict[str, Any]:
    """The ``"labelled"`` part of :func:`attribute_report`."""
    scores: dict[str, AttributeScore] = {}
    if "sex_male_prob" in preds:
        scores["sex"] = sex_accuracy(preds["sex_male_prob"], labels.male, **boot)
    if "race" in preds and np.any(labels.race >= 0):
        scores["race"] = race_accuracy(preds["race"], labels.race, **boot)
    if "age_years" in preds:
        scores["age"] = age_mae(preds["age_years"], labels.age, **boot)
    out: dict[str, Any] = {a: s.as_dict() for a, s in scores.items()}
    source = next((k for k in ("age_bins", "age_years") if k in preds), None)
    if source is not None:
        bins = predicted_classes(preds[source], source)
        out["age_bin"] = {**age_bin_accuracy(bins, labels.age, **boot).as_dict(),
                          "source": source}
    if scores:
        w = pvi_weights(weights, scores)
        pvi = pvi_estimate(scores, w, level=boot["level"])
        out["pvi"] = {**pvi.as_dict(), "weights": w}
        if clean_pvi is not None:
            out["pvi"]["relative_reduction"] = json_float(relative_reduction(pvi.value, clean_pvi))
    return out


def _flips(preds: dict[str, np.ndarray], ref: dict[str, np.ndarray],
           boot: dict[str, Any]) -> dict[str, Any]:
    """The ``"flips"`` part of :func:`attribute_report`."""
    out: dict[str, Any] = {}
    for name, key in (("sex", "sex_male_prob"), ("race", "race")):
        if key in preds and key in ref:
            out[name] = flip_rate(predicted_classes(ref[key], key),
                                  predicted_classes(preds[key], key), **boot).as_dict()
    source = next((k for k in ("age_bins", "age_groups", "age_years")
                   if k in preds and k in ref), None)
    if source is not None:
        rate = flip_rate(predicted_classes(ref[source], source),
                         predicted_classes(preds[source], source), **boot)
        out["age_bin"] = {**rate.as_dict(), "source": source}
    if "age_years" in preds and "age_years" in ref:
        out["age_shift_years"] = mean_age_shift(ref["age_years"], preds["age_years"],
                                                **boot).as_dict()
    return out



def _rows(outputs: Mapping[str, np.ndarray], what: str) -> int:
    """The common row count of a predictor's outputs."""
    rows = {k: len(v) for k, v in outputs.items()}
    if not rows or len(set(rows.values())) != 1:
        raise ValueError(f"{what}: outputs must be non-empty with one row per face, got {rows}")
    return next(iter(rows.values()))

