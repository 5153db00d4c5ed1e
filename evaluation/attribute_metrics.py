"""Attribute leakage: how well sex, race and age predictors still work on protected faces.

The benchmark compares attribute predictors (:mod:`attackers.attributes`) on faces that are
clean, wear a synthetic physical mask, are cloaked, or both, as in Seneviratne et al., "Does a
Face Mask Protect my Privacy?" (AJCAI 2021). Two settings:

- labelled faces (UTKFace, labels in the file names, :func:`parse_utkface_name`): sex, race and
  7-bin age accuracy and the age MAE, each beside its baseline on the same labels (majority-class
  share; the MAE of always guessing the median label age);
- unlabelled faces (LFW): the predictions on the clean photos are the reference, and we report
  how often the predicted class flips and the mean absolute shift of the predicted age.

Predicted classes: male when ``sex_male_prob >= 0.5``; race and age bin by argmax (or
:func:`age_bin` of ``age_years``).

Normalised predictability puts the attributes on one scale, 0 = baseline, 1 = perfect:
``(accuracy - chance) / (1 - chance)`` for classes and ``1 - MAE / baseline_MAE`` for age. It is
not clipped: a value below 0 means worse than the baseline (for instance a predictor that says
"male" for every face of a female-majority set). It is NaN where the baseline is perfect (one
class only, or one age only). The privacy vulnerability index (PVI) is a weighted mean of
``max(0, predictability)`` over sex, race and age (equal weights by default), in [0, 1]; age
enters through the MAE, which uses the whole error and not only bin hits.

Intervals are percentile bootstrap over faces: each replicate draws the N faces with replacement
(``numpy.random.default_rng(seed)``) and recomputes the statistic and its baseline on the drawn
faces (faces without the label, such as UTKFace names without race, are drawn but not counted).
The draws depend only on (N, n_boot, seed), so metrics of one condition made with one seed
resample the same faces, and the PVI interval combines them face by face. Replicates whose
statistic is undefined (only one class drawn, so chance is 1) are dropped. Because of the
``max(0, .)``, a PVI near 0 has its interval's low end at 0. Memory is O(n_boot x N) float64:
:func:`attribute_report` on 2,000 faces with 2,000 replicates took 0.9 s, the process 0.4 GB.

>>> parse_utkface_name("26_1_2_20170116174525125.jpg.chip.jpg")
UtkLabels(age=26, male=False, race=2)
>>> age_bin(np.array([3, 4, 12, 13, 61])).tolist()
[0, 1, 1, 2, 6]
>>> round(normalised_accuracy(0.9, 0.6), 3)
0.75
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attackers.attributes.base import AGE_BINS, RACES

__all__ = [
    "ATTRIBUTES", "AttributeScore", "Estimate", "FaceLabels", "UtkLabels", "age_bin",
    "age_bin_accuracy", "age_mae", "attribute_report", "flip_rate", "mean_age_shift",
    "normalised_accuracy", "normalised_mae", "parse_utkface_name", "predicted_classes",
    "privacy_vulnerability_index", "pvi_estimate", "pvi_weights", "race_accuracy",
    "relative_reduction", "sex_accuracy", "utkface_labels",
]

#: Attributes of the privacy vulnerability index, in report order.
ATTRIBUTES: tuple[str, ...] = ("sex", "race", "age")
#: First year of every age bin but the first (bin ``k`` holds ``starts[k-1] <= age < starts[k]``).
_BIN_STARTS = np.array([lo for lo, _ in AGE_BINS[1:]], dtype=np.float64)


# --- labels ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class UtkLabels:
    """Labels of one UTKFace photo.

    Attributes:
        age: years, >= 0.
        male: True for gender 0 in the file name.
        race: index into :data:`~attackers.attributes.base.RACES`, None where the name has no
            race field.
    """

    age: int
    male: bool
    race: int | None


def parse_utkface_name(path: str | Path) -> UtkLabels:
    """Labels from a UTKFace file name ``age_gender_race_date.jpg.chip.jpg``.

    Gender is 0 (male) or 1 (female), race 0-4 in :data:`RACES` order. A few names of the
    original set lack the race field (``age_gender_date...``); those get ``race=None``.

    Args:
        path: the photo's path or file name (only the name is read).

    Returns:
        the parsed labels.

    Raises:
        ValueError: the name does not follow the pattern (the message names the file).
    """
    name = Path(path).name
    fields = name.split("_")
    if len(fields) not in (3, 4):
        raise ValueError(f"{name}: not a UTKFace name age_gender_race_date.jpg.chip.jpg "
                         f"({len(fields)} fields separated by '_', expected 4, or 3 without race)")
    age, gender, date = fields[0], fields[1], fields[-1]
    race = fields[2] if len(fields) == 4 else None
    if not age.isdigit():
        raise ValueError(f"{name}: age field {age!r} is not a whole number of years")
    if gender not in ("0", "1"):
        raise ValueError(f"{name}: gender field {gender!r} must be 0 (male) or 1 (female)")
    if race is not None and race not in [str(i) for i in range(len(RACES))]:
        raise ValueError(f"{name}: race field {race!r} must be 0-{len(RACES) - 1} ({RACES})")
    if not date.split(".")[0].isdigit():
        raise ValueError(f"{name}: date field {date!r} does not start with digits")
    return UtkLabels(age=int(age), male=gender == "0", race=None if race is None else int(race))


@dataclass(frozen=True)
class FaceLabels:
    """Labels of N faces as arrays.

    Attributes:
        age: (N,) int years, >= 0.
        male: (N,) bool.
        race: (N,) int index into :data:`RACES`, -1 where unknown.
    """

    age: np.ndarray
    male: np.ndarray
    race: np.ndarray

    def __len__(self) -> int:
        return len(self.age)


def utkface_labels(paths: Iterable[str | Path]) -> FaceLabels:
    """Parse UTKFace file names (see :func:`parse_utkface_name`) into :class:`FaceLabels`."""
    parsed = [parse_utkface_name(p) for p in paths]
    return FaceLabels(age=np.array([p.age for p in parsed], dtype=np.int64),
                      male=np.array([p.male for p in parsed], dtype=bool),
                      race=np.array([-1 if p.race is None else p.race for p in parsed],
                                    dtype=np.int64))


def age_bin(ages: np.ndarray) -> np.ndarray:
    """Index of the :data:`AGE_BINS` group of each age (0-3, 4-12, 13-19, 20-30, 31-45, 46-60, 61+).

    A bin ``(lo, hi)`` holds ``lo <= age < hi + 1``, as in
    :func:`attackers.attributes.base.bin_ages`: 3.5 years is 0-3, 12.9 is 4-12.

    Args:
        ages: (N,) years, finite and >= 0 (ints or expected ages as floats).

    Returns:
        (N,) int64 in [0, 6].

    Raises:
        ValueError: an age is negative or not finite.
    """
    a = np.asarray(ages, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"ages must be finite and >= 0, got min {a.min() if a.size else None}")
    return np.searchsorted(_BIN_STARTS, a, side="right").astype(np.int64)


def predicted_classes(output: Any, key: str) -> np.ndarray:
    """Predicted class per face from one predictor output.

    Args:
        output: the predictor's tensor or array for ``key``.
        key: ``"sex_male_prob"`` ((N,) in [0, 1] -> 1 = male where >= 0.5), ``"age_years"``
            ((N,) -> :func:`age_bin`), or a probability output ((N, K), such as ``"race"``,
            ``"age_bins"``, ``"age_groups"`` -> argmax).

    Returns:
        (N,) int64 class indices.
    """
    x = _numpy(output)
    if key == "sex_male_prob":
        return (_vector(x, key) >= 0.5).astype(np.int64)
    if key == "age_years":
        return age_bin(_vector(x, key))
    if x.ndim != 2:
        raise ValueError(f"{key}: expected (N, K) class probabilities, got shape {x.shape}")
    return x.argmax(axis=1).astype(np.int64)


# --- bootstrap ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A statistic over faces with its percentile-bootstrap interval.

    Attributes:
        value: the statistic on all faces.
        low: lower end of the interval (NaN when no replicate was defined).
        high: upper end.
        n: faces the statistic counts.
    """

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN becomes None."""
        return {"value": _json(self.value), "low": _json(self.low), "high": _json(self.high),
                "n": self.n}


#: A statistic of weighted faces: (B, N) draw counts -> (B,) values.
_Stat = Callable[[np.ndarray], np.ndarray]


def _draw_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float64: how often each face is drawn in each replicate (rows sum to n)."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need at least one face and one replicate, got {n} and {n_boot}")
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    flat = (draws + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def _interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite replicates; (NaN, NaN) when there are none."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _estimate(stat: _Stat, counts: np.ndarray, counted: int, level: float) -> Estimate:
    """Point value of ``stat`` on all faces and its interval over the replicates ``counts``.

    Args:
        stat: the statistic of weighted faces.
        counts: (n_boot, N) draw counts from :func:`_draw_counts`.
        counted: faces the statistic counts (for :attr:`Estimate.n`).
        level: interval coverage.
    """
    value = float(stat(np.ones((1, counts.shape[1])))[0])
    return Estimate(value, *_interval(stat(counts), level), counted)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=den > 0)


# --- labelled metrics -----------------------------------------------------------------------

def normalised_accuracy(accuracy: Any, chance: Any) -> Any:
    """``(accuracy - chance) / (1 - chance)``: 0 at chance, 1 when perfect, < 0 below chance.

    Args:
        accuracy: float or array in [0, 1].
        chance: chance accuracy (float or array broadcastable to ``accuracy``), in [0, 1].

    Returns:
        float (scalar inputs) or array; NaN where ``chance == 1``. Not clipped.
    """
    a, c = np.asarray(accuracy, dtype=np.float64), np.asarray(chance, dtype=np.float64)
    return _scalar_or_array(_ratio(a - c, 1.0 - c))


def normalised_mae(mae: Any, baseline: Any) -> Any:
    """``1 - mae / baseline``: 0 at the baseline MAE, 1 when exact, < 0 when worse.

    Args:
        mae: float or array, years >= 0.
        baseline: MAE of always guessing the median label age, broadcastable to ``mae``.

    Returns:
        float (scalar inputs) or array; NaN where ``baseline == 0``. Not clipped.
    """
    m, b = np.asarray(mae, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    return _scalar_or_array(1.0 - _ratio(m, b))


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
        return {"metric": self.metric, **self.score.as_dict(), "baseline": _json(self.baseline),
                "predictability": self.predictability.as_dict()}


def _class_score(attribute: str, predicted: np.ndarray, labels: np.ndarray, n_classes: int,
                 n_boot: int, level: float, seed: int) -> AttributeScore:
    """Accuracy of ``predicted`` against ``labels`` (-1 = unknown, drawn but not counted)."""
    predicted, labels = _vector(predicted, attribute), _vector(labels, attribute)
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
        return _ratio(w @ correct, w @ known_f)

    def chance(w: np.ndarray) -> np.ndarray:
        return _ratio((w @ onehot).max(axis=1), w @ known_f)

    def predictability(w: np.ndarray) -> np.ndarray:
        return np.asarray(normalised_accuracy(accuracy(w), chance(w)))

    return _score(attribute, "accuracy", accuracy, chance, predictability, len(labels),
                  int(known.sum()), n_boot, level, seed)


def _score(attribute: str, metric: str, value: _Stat, baseline: _Stat, predictability: _Stat,
           n: int, counted: int, n_boot: int, level: float, seed: int) -> AttributeScore:
    """Assemble an :class:`AttributeScore` from its statistics of weighted faces."""
    all_faces = np.ones((1, n))
    counts = _draw_counts(n, n_boot, seed)
    replicates = predictability(counts)
    return AttributeScore(
        attribute=attribute, metric=metric, score=_estimate(value, counts, counted, level),
        baseline=float(baseline(all_faces)[0]),
        predictability=Estimate(float(predictability(all_faces)[0]),
                                *_interval(replicates, level), counted),
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
                        _vector(male, "male").astype(np.int64), 2, n_boot, level, seed)


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
    probs = _numpy(race_probs)
    if probs.ndim != 2 or probs.shape[1] != len(RACES):
        raise ValueError(f"race: expected (N, {len(RACES)}) probabilities, got {probs.shape}")
    return _class_score("race", predicted_classes(probs, "race"), _numpy(race).astype(np.int64),
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
    return _class_score("age_bin", _numpy(predicted_bins).astype(np.int64), age_bin(age),
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
    pred, true = _vector(age_years, "age_years"), _vector(age, "age").astype(np.float64)
    if pred.shape != true.shape:
        raise ValueError(f"age: {pred.shape[0]} predictions for {true.shape[0]} labels")
    error = np.abs(pred - true)
    order = np.argsort(true, kind="stable")
    sorted_ages = true[order]

    def mae(w: np.ndarray) -> np.ndarray:
        return _ratio(w @ error, w.sum(axis=1))

    def baseline(w: np.ndarray) -> np.ndarray:
        # Lower weighted median: any guess between the two middle ages gives the same MAE.
        cumulative = np.cumsum(w[:, order], axis=1)
        middle = np.argmax(cumulative >= cumulative[:, -1:] / 2, axis=1)
        median = sorted_ages[middle]
        return _ratio((w * np.abs(true[None] - median[:, None])).sum(axis=1), w.sum(axis=1))

    def predictability(w: np.ndarray) -> np.ndarray:
        return np.asarray(normalised_mae(mae(w), baseline(w)))

    return _score("age", "mae_years", mae, baseline, predictability, len(true), len(true),
                  n_boot, level, seed)


# --- privacy vulnerability index -------------------------------------------------------------

def pvi_weights(weights: Mapping[str, float] | None = None,
                attributes: Iterable[str] = ATTRIBUTES) -> dict[str, float]:
    """Validated PVI weights, normalised to sum 1.

    Args:
        weights: attribute -> weight >= 0 over :data:`ATTRIBUTES`; attributes left out weigh 0.
            None: equal weights over ``attributes``.
        attributes: the attributes of the default weights.

    Returns:
        attribute -> weight, in :data:`ATTRIBUTES` order, summing to 1.

    Raises:
        ValueError: an unknown attribute, a negative or non-finite weight, or all weights 0.
    """
    if weights is None:
        weights = dict.fromkeys(attributes, 1.0)
    unknown = sorted(set(weights) - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown PVI attributes {unknown}; known: {list(ATTRIBUTES)}")
    bad = {a: w for a, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"PVI weights must be finite and >= 0, got {bad}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"PVI weights must not all be 0, got {dict(weights)}")
    return {a: float(weights[a]) / total for a in ATTRIBUTES if a in weights}


def privacy_vulnerability_index(predictability: Mapping[str, float],
                                weights: Mapping[str, float] | None = None) -> float:
    """PVI: weighted mean of ``max(0, predictability)`` over the attributes, in [0, 1].

    0 = no attribute predicted better than its baseline; 1 = every weighted attribute perfect.

    Args:
        predictability: attribute (``"sex"``, ``"race"``, ``"age"``) -> normalised
            predictability (unclipped).
        weights: see :func:`pvi_weights`; None = equal weights over the attributes given.

    Returns:
        the index; NaN when a weighted predictability is NaN.

    Raises:
        ValueError: invalid weights, or a positively weighted attribute missing.
    """
    w = pvi_weights(weights, predictability)
    missing = [a for a, v in w.items() if v > 0 and a not in predictability]
    if missing:
        raise ValueError(f"PVI weights name {missing}, which have no predictability")
    return float(sum(v * np.maximum(0.0, predictability[a]) for a, v in w.items() if v > 0))


def pvi_estimate(scores: Mapping[str, AttributeScore],
                 weights: Mapping[str, float] | None = None, *, level: float = 0.95) -> Estimate:
    """PVI with a bootstrap interval that resamples faces jointly across attributes.

    Args:
        scores: attribute -> score (``"sex"``, ``"race"``, ``"age"``), all made on the same
            faces with the same ``n_boot`` and seed.
        weights: see :func:`pvi_weights`; None = equal weights over the scores given.
        level: interval coverage, in (0, 1).

    Returns:
        the PVI, its interval, and n = faces drawn.

    Raises:
        ValueError: invalid weights, a missing attribute, or scores resampled differently.
    """
    keys = {s.resampling for s in scores.values()}
    if len(keys) != 1:
        raise ValueError(f"scores were resampled differently (faces, n_boot, seed): {keys}")
    (n, _, _), = keys
    value = privacy_vulnerability_index(
        {a: s.predictability.value for a, s in scores.items()}, weights)
    w = pvi_weights(weights, scores)
    replicates = sum(v * np.maximum(0.0, scores[a].replicates) for a, v in w.items() if v > 0)
    return Estimate(value, *_interval(np.asarray(replicates), level), n)


def relative_reduction(pvi_condition: float, pvi_clean: float) -> float:
    """Share of the clean PVI that a protection removes: ``(clean - condition) / clean``.

    1 = no attribute leaks above its baseline any more; 0 = no change; < 0 = more leakage.

    Args:
        pvi_condition: PVI on the protected faces, in [0, 1].
        pvi_clean: PVI on the clean faces, in [0, 1].

    Returns:
        the reduction; NaN when ``pvi_clean`` is 0 (nothing leaked to begin with, so the
        reduction is undefined) or either PVI is NaN.

    Raises:
        ValueError: a PVI outside [0, 1].
    """
    for name, v in (("pvi_condition", pvi_condition), ("pvi_clean", pvi_clean)):
        if not (math.isnan(v) or 0.0 <= v <= 1.0):
            raise ValueError(f"{name} must be in [0, 1], got {v}")
    if math.isnan(pvi_condition) or math.isnan(pvi_clean) or pvi_clean == 0.0:
        return math.nan
    return (pvi_clean - pvi_condition) / pvi_clean


# --- flips against reference predictions ----------------------------------------------------

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
    ref, pred = _vector(reference, "reference"), _vector(predicted, "predicted")
    if ref.shape != pred.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {ref.shape[0]} reference faces")
    flipped = (ref != pred).astype(np.float64)
    return _estimate(lambda w: _ratio(w @ flipped, w.sum(axis=1)),
                     _draw_counts(len(ref), n_boot, seed), len(ref), level)


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
    ref, pred = _vector(reference_years, "reference"), _vector(age_years, "age_years")
    if ref.shape != pred.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {ref.shape[0]} reference faces")
    shift = np.abs(pred - ref)
    return _estimate(lambda w: _ratio(w @ shift, w.sum(axis=1)),
                     _draw_counts(len(ref), n_boot, seed), len(ref), level)


# --- one condition --------------------------------------------------------------------------

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
    preds = {k: _numpy(v) for k, v in predictions.items()}
    n = _rows(preds, "predictions")
    report: dict[str, Any] = {"n_faces": n, "n_boot": n_boot, "level": level, "seed": seed}
    boot = {"n_boot": n_boot, "level": level, "seed": seed}
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"{len(labels)} labels for {n} predicted faces")
        report["labelled"] = _labelled(preds, labels, weights, clean_pvi, boot)
    if reference is not None:
        ref = {k: _numpy(v) for k, v in reference.items()}
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
            out["pvi"]["relative_reduction"] = _json(relative_reduction(pvi.value, clean_pvi))
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


# --- helpers --------------------------------------------------------------------------------

def _numpy(x: Any) -> np.ndarray:
    """A tensor (detached, on the CPU) or array-like as a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _vector(x: Any, name: str) -> np.ndarray:
    """``x`` as a 1-D array, or a ValueError naming it."""
    v = _numpy(x)
    if v.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array (N,), got shape {v.shape}")
    return v.astype(np.float64) if v.dtype.kind == "f" else v


def _rows(outputs: Mapping[str, np.ndarray], what: str) -> int:
    """The common row count of a predictor's outputs."""
    rows = {k: len(v) for k, v in outputs.items()}
    if not rows or len(set(rows.values())) != 1:
        raise ValueError(f"{what}: outputs must be non-empty with one row per face, got {rows}")
    return next(iter(rows.values()))


def _scalar_or_array(x: np.ndarray) -> Any:
    """A 0-d array as a float, anything else unchanged."""
    return float(x) if x.ndim == 0 else x


def _json(x: float) -> float | None:
    """NaN as None (JSON has no NaN), other floats unchanged."""
    return None if math.isnan(x) else float(x)
