"""Flip rates and age shifts against hand computations on six faces (conftest)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import AGE_PRED, FAST, MALE_PROB, RACE_PROBS

from evaluation.attribute_metrics.flips import flip_rate, mean_age_shift
from evaluation.attribute_metrics.labels import predicted_classes


def test_flip_rates_by_hand():
    cond_prob = np.array([0.4, 0.3, 0.7, 0.6, 0.49, 0.1])           # classes [0, 0, 1, 1, 0, 0]
    rate = flip_rate(predicted_classes(MALE_PROB, "sex_male_prob"),
                     predicted_classes(cond_prob, "sex_male_prob"), **FAST)
    assert rate.value == pytest.approx(3 / 6) and rate.n == 6
    cond_race = np.eye(5)[[0, 1, 1, 2, 0, 4]]                       # flips at faces 2 and 4
    assert flip_rate(predicted_classes(RACE_PROBS, "race"),
                     predicted_classes(cond_race, "race"), **FAST).value == pytest.approx(2 / 6)
    shift = mean_age_shift(AGE_PRED, AGE_PRED + np.array([1, -1, 0, 4, -6, 2]), **FAST)
    assert shift.value == pytest.approx(14 / 6)
