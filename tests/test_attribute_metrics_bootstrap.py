"""The percentile bootstrap over faces, recomputed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AGE, AGE_PRED, MALE, MALE_PROB

from evaluation.attribute_metrics.scores import age_mae, sex_accuracy


def test_bootstrap_is_the_documented_percentile_bootstrap():
    n, n_boot, seed = 6, 300, 7
    score = sex_accuracy(MALE_PROB, MALE, n_boot=n_boot, seed=seed)
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    correct = np.array([1, 1, 0, 1, 1, 1], dtype=float)
    low, high = np.quantile(correct[draws].mean(1), [0.025, 0.975])
    assert (score.score.low, score.score.high) == pytest.approx((low, high))

    age = age_mae(AGE_PRED, AGE, n_boot=n_boot, seed=seed)
    err = np.abs(AGE_PRED - AGE)
    labels = AGE[draws].astype(float)
    base = np.abs(labels - np.median(labels, axis=1, keepdims=True)).mean(1)
    pred = 1 - err[draws].mean(1) / base
    finite = pred[np.isfinite(pred)]
    assert (age.predictability.low, age.predictability.high) == pytest.approx(
        tuple(np.quantile(finite, [0.025, 0.975])))


def test_bootstrap_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(1)
    prob = rng.random(200)
    male = (prob + rng.normal(0, 0.3, 200)) > 0.5
    a = sex_accuracy(prob, male, n_boot=1000, seed=3)
    b = sex_accuracy(prob, male, n_boot=1000, seed=3)
    c = sex_accuracy(prob, male, n_boot=1000, seed=4)
    for est in (a.score, a.predictability):
        assert est.low < est.value < est.high
    assert (a.score.low, a.score.high) == (b.score.low, b.score.high)
    assert (a.score.low, a.score.high) != (c.score.low, c.score.high)
    assert a.score.high - a.score.low < 0.2                           # 200 faces: a few %
