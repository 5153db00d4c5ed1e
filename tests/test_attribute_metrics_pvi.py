"""The privacy vulnerability index against hand computations on six faces (conftest)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import AGE, AGE_P, AGE_PRED, FAST, MALE, MALE_PROB, RACE, RACE_P, RACE_PROBS, SEX_P

from evaluation.attribute_metrics.pvi import (
    privacy_vulnerability_index,
    pvi_estimate,
    pvi_weights,
    relative_reduction,
)
from evaluation.attribute_metrics.scores import age_mae, race_accuracy, sex_accuracy


def test_pvi_equal_and_custom_weights():
    p = {"sex": SEX_P, "race": RACE_P, "age": AGE_P}
    assert privacy_vulnerability_index(p) == pytest.approx((SEX_P + RACE_P + AGE_P) / 3)
    custom = privacy_vulnerability_index(p, {"sex": 2.0, "race": 1.0, "age": 1.0})
    assert custom == pytest.approx((2 * SEX_P + RACE_P + AGE_P) / 4)
    only_sex = privacy_vulnerability_index(p, {"sex": 3.0})
    assert only_sex == pytest.approx(SEX_P)
    # negative predictability counts as 0 in the index
    assert privacy_vulnerability_index({"sex": -0.2, "race": 0.4, "age": 0.1}) == pytest.approx(
        0.5 / 3)
    # default weights cover the attributes given (a predictor without race)
    assert privacy_vulnerability_index({"sex": 0.4, "age": 0.2}) == pytest.approx(0.3)
    assert pvi_weights({"sex": 1, "race": 3}) == {"sex": 0.25, "race": 0.75}


@pytest.mark.parametrize("weights, message", [
    ({"sex": -1.0, "age": 2.0}, "finite and >= 0"),
    ({"sex": math.nan}, "finite and >= 0"),
    ({"sex": 0.0, "age": 0.0}, "not all be 0"),
    ({"sex": 1.0, "gender": 1.0}, "unknown PVI attributes"),
])
def test_invalid_weights_raise(weights, message):
    with pytest.raises(ValueError, match=message):
        pvi_weights(weights)


def test_pvi_missing_attribute_raises():
    with pytest.raises(ValueError, match="no predictability"):
        privacy_vulnerability_index({"sex": 0.5, "age": 0.5}, {"sex": 1, "race": 1})


def test_relative_reduction():
    assert relative_reduction(0.15, 0.6) == pytest.approx(0.75)
    assert relative_reduction(0.8, 0.4) == pytest.approx(-1.0)       # more leakage than clean
    assert math.isnan(relative_reduction(0.0, 0.0))                  # nothing leaked when clean
    with pytest.raises(ValueError, match=r"pvi_clean must be in \[0, 1\]"):
        relative_reduction(0.1, 1.5)


def test_pvi_interval_resamples_faces_jointly():
    scores = {"sex": sex_accuracy(MALE_PROB, MALE, **FAST),
              "race": race_accuracy(RACE_PROBS, RACE, **FAST),
              "age": age_mae(AGE_PRED, AGE, **FAST)}
    pvi = pvi_estimate(scores)
    assert pvi.value == pytest.approx((SEX_P + RACE_P + AGE_P) / 3)
    # replicates where a baseline is perfect (e.g. only males drawn) are undefined and dropped
    joint = sum(np.maximum(0, s.replicates) for s in scores.values()) / 3
    joint = joint[np.isfinite(joint)]
    assert 400 < len(joint) < 500
    assert (pvi.low, pvi.high) == pytest.approx(tuple(np.quantile(joint, [0.025, 0.975])))
    assert pvi.low <= pvi.value <= pvi.high
    other = {**scores, "age": age_mae(AGE_PRED, AGE, n_boot=500, seed=1)}
    with pytest.raises(ValueError, match="resampled differently"):
        pvi_estimate(other)
