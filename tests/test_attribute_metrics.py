"""Attribute leakage metrics against hand computations on six faces, and UTKFace name parsing on
the real file names in ../shared/data/utkface."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import shared_data

from attackers.attributes.base import RACES
from evaluation.attribute_metrics import (
    FaceLabels,
    UtkLabels,
    age_bin,
    age_bin_accuracy,
    age_mae,
    attribute_report,
    flip_rate,
    mean_age_shift,
    normalised_accuracy,
    normalised_mae,
    parse_utkface_name,
    predicted_classes,
    privacy_vulnerability_index,
    pvi_estimate,
    pvi_weights,
    race_accuracy,
    relative_reduction,
    sex_accuracy,
    utkface_labels,
)

# Six faces. Sex: predicted male [1, 0, 1, 0, 1, 0] (>= 0.5), labels male [T, F, F, F, T, F]:
# 5 of 6 right; chance = female share 4/6; predictability (5/6 - 4/6) / (1 - 4/6) = 0.5.
MALE_PROB = np.array([0.9, 0.2, 0.6, 0.4, 0.5, 0.1])
MALE = np.array([True, False, False, False, True, False])
# Race: argmax [0, 1, 2, 2, 3, 4]; labels [0, 1, 1, ?, 3, 2]: 3 of the 5 known right;
# chance = 2/5 (race 1); predictability (0.6 - 0.4) / 0.6 = 1/3.
RACE_PROBS = np.eye(5)[[0, 1, 2, 2, 3, 4]] * 0.6 + 0.08
RACE = np.array([0, 1, 1, -1, 3, 2])
# Age: errors [2, 0, 5, 5, 10, 10] -> MAE 32/6; median label 27.5, deviations
# [25.5, 19.5, 2.5, 2.5, 22.5, 42.5] -> baseline 115/6; predictability 1 - 32/115.
AGE_PRED = np.array([4.0, 8.0, 20.0, 35.0, 40.0, 60.0])
AGE = np.array([2, 8, 25, 30, 50, 70])
# Age bins: labels [0, 1, 3, 3, 5, 6], predicted from AGE_PRED [1, 1, 3, 4, 4, 5]: 2 of 6 right;
# chance 2/6 (bin 3); predictability 0.
SEX_P, RACE_P, AGE_P = 0.5, 1 / 3, 1 - 32 / 115

FAST = {"n_boot": 500, "seed": 0}


def test_age_bin_edges():
    ages = [0, 3, 3.5, 4, 12, 12.9, 13, 19, 19.99, 20, 30, 31, 45, 46, 60, 61, 116]
    assert age_bin(np.array(ages)).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    with pytest.raises(ValueError, match="finite and >= 0"):
        age_bin(np.array([20.0, -1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        age_bin(np.array([np.nan]))


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


def test_attribute_report_json_ready():
    labels = FaceLabels(age=AGE, male=MALE, race=RACE)
    preds = {"sex_male_prob": torch.tensor(MALE_PROB, requires_grad=True),
             "age_years": torch.tensor(AGE_PRED), "race": torch.tensor(RACE_PROBS)}
    cond = {"sex_male_prob": np.array([0.4, 0.3, 0.7, 0.6, 0.49, 0.1]), "age_years": AGE_PRED,
            "race": RACE_PROBS}
    clean = attribute_report(preds, labels, **FAST)
    report = attribute_report(cond, labels, reference=preds, clean_pvi=clean["labelled"]["pvi"]
                              ["value"], **FAST)
    json.dumps(report, allow_nan=False)
    lab = clean["labelled"]
    assert lab["sex"]["value"] == pytest.approx(5 / 6)
    assert lab["sex"]["baseline"] == pytest.approx(4 / 6)
    assert lab["race"]["predictability"]["value"] == pytest.approx(RACE_P)
    assert lab["age"]["value"] == pytest.approx(32 / 6)
    assert lab["age_bin"]["source"] == "age_years" and lab["age_bin"]["value"] == pytest.approx(
        2 / 6)
    assert lab["pvi"]["value"] == pytest.approx((SEX_P + RACE_P + AGE_P) / 3)
    assert lab["pvi"]["weights"] == pytest.approx({"sex": 1 / 3, "race": 1 / 3, "age": 1 / 3})
    # the condition: sex accuracy 2/6 (chance 4/6) -> predictability -1, counted as 0
    cond_pvi = (RACE_P + AGE_P) / 3
    assert report["labelled"]["sex"]["predictability"]["value"] == pytest.approx(-1.0)
    assert report["labelled"]["pvi"]["value"] == pytest.approx(cond_pvi)
    assert report["labelled"]["pvi"]["relative_reduction"] == pytest.approx(
        1 - cond_pvi / lab["pvi"]["value"])
    flips = report["flips"]
    assert flips["sex"]["value"] == pytest.approx(3 / 6)
    assert flips["race"]["value"] == 0.0 and flips["age_shift_years"]["value"] == 0.0
    assert flips["age_bin"]["source"] == "age_years"

    # a predictor without race (age-gender): PVI over sex and age; LFW-style flips only
    no_race = {k: v for k, v in cond.items() if k != "race"}
    lab2 = attribute_report(no_race, labels, **FAST)["labelled"]
    assert "race" not in lab2 and set(lab2["pvi"]["weights"]) == {"sex", "age"}
    assert set(attribute_report(no_race, reference=no_race, **FAST)) == {
        "n_faces", "n_boot", "level", "seed", "flips"}
    with pytest.raises(ValueError, match="no predictability"):
        attribute_report(no_race, labels, weights={"race": 1.0}, **FAST)
    with pytest.raises(ValueError, match="need labels or reference"):
        attribute_report(no_race)
    with pytest.raises(ValueError, match="5 labels for 6"):
        attribute_report(no_race, FaceLabels(AGE[:5], MALE[:5], RACE[:5]))


@pytest.mark.parametrize("name, message", [
    ("abc_0_0_20170116174525125.jpg.chip.jpg", "age field 'abc'"),
    ("25_2_0_20170116174525125.jpg.chip.jpg", "gender field '2'"),
    ("25_0_7_20170116174525125.jpg.chip.jpg", "race field '7'"),
    ("25_0_0_x2017.jpg.chip.jpg", "date field"),
    ("25_0_0_1_20170116174525125.jpg.chip.jpg", "5 fields"),
    ("portrait.jpg", "1 fields"),
])
def test_malformed_names_raise(name, message):
    with pytest.raises(ValueError, match=message) as err:
        parse_utkface_name(f"/some/folder/{name}")
    assert str(err.value).startswith(name)


def test_parse_names_without_race():
    assert parse_utkface_name("39_1_20170116174525125.jpg.chip.jpg") == UtkLabels(39, False, None)
    labels = utkface_labels(["39_1_20170116174525125.jpg.chip.jpg",
                             "1_0_4_20161221193016140.jpg.chip.jpg"])
    assert labels.race.tolist() == [-1, 4] and labels.male.tolist() == [False, True]


@pytest.mark.data
def test_parse_real_utkface_names():
    balanced = shared_data("utkface", "balanced")
    for sex_folder, male in (("males", True), ("females", False)):
        for race in RACES:
            paths = sorted((balanced / sex_folder / race).glob("*.jpg"))[:3]
            assert paths, f"no photos in {balanced / sex_folder / race}"
            for path in paths:
                label = parse_utkface_name(path)
                assert label.male == male and label.race == RACES.index(race), path.name
                assert 0 <= label.age <= 116
    names = sorted(shared_data("utkface", "random").glob("*.jpg"))
    good = [p for p in names if not p.name.startswith("61_3_")]
    labels = utkface_labels(good)
    assert len(labels) == len(good) >= 1000 and labels.race.min() >= 0
    assert 0.3 < labels.male.mean() < 0.7
    # the one random-set name with three fields has gender 3: malformed, not a missing race
    for path in set(names) - set(good):
        with pytest.raises(ValueError, match="gender field '3'"):
            parse_utkface_name(path)
