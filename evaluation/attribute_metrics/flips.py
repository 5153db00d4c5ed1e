"""Unlabelled faces: how predictions change against the clean photo's (the reference)."""

from __future__ import annotations

from typing import Any

import numpy as np

from evaluation.attribute_metrics.arrays import as_vector
from evaluation.attribute_metrics.bootstrap import Estimate, draw_counts, estimate, ratio

__all__ = ["flip_rate", "mean_age_shift"]


def flip_rate(reference: Any, predicted: Any, *, n_boot: int = 2000, level: float = 0.95,
              seed: int = 0) -> Estimate:
    """Share of faces whose predicted class differs from the reference (clean-photo) class.

    Args:
        reference: (N,) int classes on the clean photos (see :func:`predicted_classes`).
        predicted: (N,) int classes on the same faces under a condition.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        the rate in [0, 1] with its interval.
    """
    ref, pred = as_vector(reference, "reference"), as_vector(predicted, "predicted")
    if ref.shape != pred.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {ref.shape[0]} reference faces")
    flipped = (ref != pred).astype(np.float64)
    return estimate(lambda w: ratio(w @ flipped, w.sum(axis=1)),
                     draw_counts(len(ref), n_boot, seed), len(ref), level)


def mean_age_shift(reference_years: Any, age_years: Any, *, n_boot: int = 2000,
                   level: float = 0.95, seed: int = 0) -> Estimate:
    """Mean absolute change of the predicted age from the reference (clean-photo) prediction.

    Args:
        reference_years: (N,) predicted ages on the clean photos, years.
        age_years: (N,) predicted ages on the same faces under a condition.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        the mean shift in years with its interval.
    """
    ref, pred = as_vector(reference_years, "reference"), as_vector(age_years, "age_years")
    if ref.shape != pred.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {ref.shape[0]} reference faces")
    shift = np.abs(pred - ref)
    return estimate(lambda w: ratio(w @ shift, w.sum(axis=1)),
                     draw_counts(len(ref), n_boot, seed), len(ref), level)

