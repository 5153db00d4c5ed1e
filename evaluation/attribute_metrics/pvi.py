"""The privacy vulnerability index (PVI): a weighted mean of the attributes' clipped
predictability, with an interval that resamples faces jointly across attributes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from evaluation.attribute_metrics.bootstrap import Estimate, interval
from evaluation.attribute_metrics.scores import AttributeScore

__all__ = ["ATTRIBUTES", "privacy_vulnerability_index", "pvi_estimate", "pvi_weights",
           "relative_reduction"]

#: Attributes of the privacy vulnerability index, in report order.
ATTRIBUTES: tuple[str, ...] = ("sex", "race", "age")


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
    return Estimate(value, *interval(np.asarray(replicates), level), n)


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

