"""Every metric of one predictor on one condition, JSON-ready, on six faces (conftest)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import AGE, AGE_P, AGE_PRED, FAST, MALE, MALE_PROB, RACE, RACE_P, RACE_PROBS, SEX_P

from evaluation.attribute_metrics.labels import FaceLabels
from evaluation.attribute_metrics.report import attribute_report


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
