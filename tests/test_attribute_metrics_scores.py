"""Labelled attribute scores against hand computations on six faces (conftest)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import AGE, AGE_P, AGE_PRED, FAST, MALE, MALE_PROB, RACE, RACE_P, RACE_PROBS, SEX_P

from evaluation.attribute_metrics.labels import predicted_classes
from evaluation.attribute_metrics.scores import (
    age_bin_accuracy,
    age_mae,
    normalised_accuracy,
    normalised_mae,
    race_accuracy,
    sex_accuracy,
)


def test_sex_accuracy_by_hand():
    score = sex_accuracy(MALE_PROB, MALE, **FAST)
    assert score.score.value == pytest.approx(5 / 6)
    assert score.baseline == pytest.approx(4 / 6)
    assert score.predictability.value == pytest.approx(SEX_P)
    assert score.score.n == 6 and score.metric == "accuracy"


def test_race_accuracy_skips_unknown_race():
    score = race_accuracy(RACE_PROBS, RACE, **FAST)
    assert score.score.value == pytest.approx(3 / 5)
    assert score.baseline == pytest.approx(2 / 5)
    assert score.predictability.value == pytest.approx(RACE_P)
    assert score.score.n == 5
    with pytest.raises(ValueError, match="no face has a label"):
        race_accuracy(RACE_PROBS, np.full(6, -1), **FAST)
    with pytest.raises(ValueError, match=r"\(N, 5\)"):
        race_accuracy(RACE_PROBS[:, :4], RACE, **FAST)


def test_age_mae_and_bins_by_hand():
    score = age_mae(AGE_PRED, AGE, **FAST)
    assert score.score.value == pytest.approx(32 / 6)
    assert score.baseline == pytest.approx(115 / 6)
    assert score.predictability.value == pytest.approx(AGE_P)
    assert score.metric == "mae_years"

    bins = age_bin_accuracy(predicted_classes(AGE_PRED, "age_years"), AGE, **FAST)
    assert bins.score.value == pytest.approx(2 / 6)
    assert bins.baseline == pytest.approx(2 / 6)
    assert bins.predictability.value == pytest.approx(0.0)
    # argmax of (N, 7) probabilities gives the same classes as binning the expected ages
    probs = np.eye(7)[[1, 1, 3, 4, 4, 5]]
    assert predicted_classes(probs, "age_bins").tolist() == [1, 1, 3, 4, 4, 5]


def test_normalisation_not_clipped_and_degenerate():
    assert normalised_accuracy(0.9, 0.6) == pytest.approx(0.75)
    assert normalised_accuracy(0.3, 0.6) == pytest.approx(-0.75)     # below chance stays < 0
    assert math.isnan(normalised_accuracy(1.0, 1.0))                  # one class only
    assert normalised_mae(5.0, 20.0) == pytest.approx(0.75)
    assert normalised_mae(30.0, 20.0) == pytest.approx(-0.5)
    assert math.isnan(normalised_mae(1.0, 0.0))                       # one age only
    # all labels female, every face called male: accuracy 0, chance 1 -> NaN predictability
    score = sex_accuracy(np.full(4, 0.9), np.zeros(4, bool), **FAST)
    assert score.score.value == 0.0 and math.isnan(score.predictability.value)
