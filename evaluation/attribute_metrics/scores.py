"""Labelled attribute scores: sex, race and 7-bin age accuracy and the age MAE, each with its
baseline and normalised predictability."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attackers.attributes.base import AGE_BINS, RACES
from evaluation.attribute_metrics.arrays import as_numpy, as_vector, json_float
from evaluation.attribute_metrics.bootstrap import (
    Estimate,
    Stat,
    draw_counts,
    estimate,
    interval,
    ratio,
)
from evaluation.attribute_metrics.labels import age_bin, predicted_classes

__all__ = ["AttributeScore", "age_bin_accuracy", "age_mae", "normalised_accuracy",
           "normalised_mae", "race_accuracy", "sex_accuracy"]


def normalised_accuracy(accuracy: Any, chance: Any) -> Any:
    """``(accuracy - chance) / (1 - chance)``: 0 at chance, 1 when perfect, < 0 below chance.

    Args:
        accuracy: float or array in [0, 1].
        chance: chance accuracy (float or array broadcastable to ``accuracy``), in [0, 1].

    Returns:
        float (scalar inputs) or array; NaN where ``chance == 1``. Not clipped.
    """
    a, c = np.asarray(accuracy, dtype=np.float64), np.asarray(chance, dtype=np.float64)
    return _scalar_or_array(ratio(a - c, 1.0 - c))


def normalised_mae(mae: Any, baseline: Any) -> Any:
    """``1 - mae / baseline``: 0 at the baseline MAE, 1 when exact, < 0 when worse.

    Args:
        mae: float or array, years >= 0.
        baseline: MAE of always guessing the median label age, broadcastable to ``mae``.

    Returns:
        float (scalar inputs) or array; NaN where ``baseline == 0``. Not clipped.
    """
    m, b = np.asarray(mae, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    return _scalar_or_array(1.0 - ratio(m, b))


@dataclass(frozen=True, eq=False)
class AttributeScore:
    """One attribute predicted against labels.

    Attributes:
        attribute: ``"sex"``, ``"race"``, ``"age"`` (MAE) or ``"age_bin"`` (7-bin accuracy).
        metric: ``"accuracy"`` (in [0, 1]) or ``"mae_years"``.
        score: the metric with its interval.
        baseline: chance accuracy (the majority-class share of the labels) or, for the MAE, the
            MAE of always guessing the median label age.
        predictability: normalised score (:func:`normalised_accuracy`, :func:`normalised_mae`),
            unclipped, with its interval (baseline recomputed in every replicate).
        replicates: (n_boot,) bootstrap replicates of ``predictability``.
        resampling: (faces drawn, n_boot, seed): scores with equal keys share their draws.
    """

    attribute: str
    metric: str
    score: Estimate
    baseline: float
    predictability: Estimate
    replicates: np.ndarray = field(repr=False)
    resampling: tuple[int, int, int]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the replicates)."""
        return {"metric": self.metric, **self.score.as_dict(),
                "baseline": json_float(self.baseline),
                "predictability": self.predictability.as_dict()}


def _class_score(attribute: str, predicted: np.ndarray, labels: np.ndarray, n_classes: int,
                 n_boot: int, level: float, seed: int) -> AttributeScore:
    """Accuracy of ``predicted`` against ``labels`` (-1 = unknown, drawn but not counted)."""
    predicted, labels = as_vector(predicted, attribute), as_vector(labels, attribute)
    if predicted.shape != labels.shape:
        raise ValueError(f"{attribute}: {predicted.shape[0]} predictions for "
                         f"{labels.shape[0]} labels")
    if np.any(labels >= n_classes) or np.any(labels < -1):
        raise ValueError(f"{attribute}: labels must be in 0..{n_classes - 1} (or -1 = unknown)")
    known = labels >= 0
    if not known.any():
        raise ValueError(f"{attribute}: no face has a label")
    correct = (known & (predicted == labels)).astype(np.float64)
    onehot = (labels[:, None] == np.arange(n_classes)[None]).astype(np.float64)   # (N, K)
    known_f = known.astype(np.float64)

    def accuracy(w: np.ndarray) -> np.ndarray:
        return ratio(w @ correct, w @ known_f)

    def chance(w: np.ndarray) -> np.ndarray:
        return ratio((w @ onehot).max(axis=1), w @ known_f)

    def predictability(w: np.ndarray) -> np.ndarray:
        return np.asarray(normalised_accuracy(accuracy(w), chance(w)))

    return _score(attribute, "accuracy", accuracy, chance, predictability, len(labels),
                  int(known.sum()), n_boot, level, seed)


def _score(attribute: str, metric: str, value: Stat, baseline: Stat, predictability: Stat,
           n: int, counted: int, n_boot: int, level: float, seed: int) -> AttributeScore:
    """Assemble an :class:`AttributeScore` from its statistics of weighted faces."""
    all_faces = np.ones((1, n))
    counts = draw_counts(n, n_boot, seed)
    replicates = predictability(counts)
    return AttributeScore(
        attribute=attribute, metric=metric, score=estimate(value, counts, counted, level),
        baseline=float(baseline(all_faces)[0]),
        predictability=Estimate(float(predictability(all_faces)[0]),
                                *interval(replicates, level), counted),
        replicates=replicates, resampling=(n, n_boot, seed))


def sex_accuracy(male_prob: Any, male: Any, *, n_boot: int = 2000, level: float = 0.95,
                 seed: int = 0) -> AttributeScore:
    """Sex accuracy (male where ``male_prob >= 0.5``); chance = majority-sex share of the labels.

    Args:
        male_prob: (N,) predicted probability of male, in [0, 1].
        male: (N,) bool labels.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        the score, baseline and normalised predictability with intervals.
    """
    return _class_score("sex", predicted_classes(male_prob, "sex_male_prob"),
                        as_vector(male, "male").astype(np.int64), 2, n_boot, level, seed)


def race_accuracy(race_probs: Any, race: Any, *, n_boot: int = 2000, level: float = 0.95,
                  seed: int = 0) -> AttributeScore:
    """Race accuracy (argmax over :data:`RACES`); chance = majority-race share of the labels.

    Args:
        race_probs: (N, 5) predicted probabilities over :data:`RACES`.
        race: (N,) int labels in 0..4, -1 where unknown (drawn in the bootstrap, not counted).
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        the score (over faces with a race label), baseline and predictability with intervals.
    """
    probs = as_numpy(race_probs)
    if probs.ndim != 2 or probs.shape[1] != len(RACES):
        raise ValueError(f"race: expected (N, {len(RACES)}) probabilities, got {probs.shape}")
    return _class_score("race", predicted_classes(probs, "race"), as_numpy(race).astype(np.int64),
                        len(RACES), n_boot, level, seed)


def age_bin_accuracy(predicted_bins: Any, age: Any, *, n_boot: int = 2000, level: float = 0.95,
                     seed: int = 0) -> AttributeScore:
    """7-bin age accuracy over :data:`AGE_BINS`; chance = majority-bin share of the labels.

    Args:
        predicted_bins: (N,) int in [0, 6]: argmax of ``"age_bins"`` or :func:`age_bin` of
            ``"age_years"`` (see :func:`predicted_classes`).
        age: (N,) label ages in years.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        the score, baseline and normalised predictability with intervals.
    """
    return _class_score("age_bin", as_numpy(predicted_bins).astype(np.int64), age_bin(age),
                        len(AGE_BINS), n_boot, level, seed)


def age_mae(age_years: Any, age: Any, *, n_boot: int = 2000, level: float = 0.95,
            seed: int = 0) -> AttributeScore:
    """Mean absolute error of predicted ages; baseline = MAE of always guessing the median age.

    The baseline is recomputed on every replicate's drawn faces (their own median).

    Args:
        age_years: (N,) predicted ages in years.
        age: (N,) label ages in years.
        n_boot: bootstrap replicates.
        level: interval coverage, in (0, 1).
        seed: seed of the face draws.

    Returns:
        MAE in years, baseline MAE and ``1 - MAE / baseline`` with intervals.
    """
    pred, true = as_vector(age_years, "age_years"), as_vector(age, "age").astype(np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"age: {pred.shape[0]} predictions for {true.shape[0]} labels")
    error = np.abs(pred - true)
    order = np.argsort(true, kind="stable")
    sorted_ages = true[order]

    def mae(w: np.ndarray) -> np.ndarray:
        return ratio(w @ error, w.sum(axis=1))

    def baseline(w: np.ndarray) -> np.ndarray:
        # Lower weighted median: any guess between the two middle ages gives the same MAE.
        cumulative = np.cumsum(w[:, order], axis=1)
        middle = np.argmax(cumulative >= cumulative[:, -1:] / 2, axis=1)
        median = sorted_ages[middle]
        return ratio((w * np.abs(true[None] - median[:, None])).sum(axis=1), w.sum(axis=1))

    def predictability(w: np.ndarray) -> np.ndarray:
        return np.asarray(normalised_mae(mae(w), baseline(w)))

    return _score("age", "mae_years", mae, baseline, predictability, len(true), len(true),
                  n_boot, level, seed)



def _scalar_or_array(x: np.ndarray) -> Any:
    """A 0-d array as a float, anything else unchanged."""
    return float(x) if x.ndim == 0 else x

