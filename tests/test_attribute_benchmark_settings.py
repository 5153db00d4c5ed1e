"""Attribute benchmark settings: checks and the leave-one-out folds of cloak-attr."""

from __future__ import annotations

import dataclasses

import pytest

import attackers
from evaluation.attributes import AttributeSettings
from evaluation.attributes.settings import ATTRIBUTE_FOLDS, PREDICTED, PREDICTORS


def test_settings_are_checked():
    for bad in ({"conditions": ("cloak",)}, {"datasets": ("all",)}, {"limit": 0},
                {"predictors": ()}, {"pad_mode": "reflect"}, {"mode": "turbo"},
                {"datasets": (), "lfw_limit": 0},
                {"conditions": ("clean", "cloak-attr"), "protect_attributes": ()},
                {"conditions": ("clean", "cloak-attr"), "protect_attributes": ("hair",)},
                {"conditions": ("clean", "cloak-attr"), "attribute_weight": 0.0},
                {"conditions": ("clean", "cloak-attr"), "identity_recognizers": ("faceres",)},
                {"conditions": ("clean", "cloak-attr"),
                 "identity_recognizers": ("dlib-native",)}):
        with pytest.raises(ValueError):
            AttributeSettings(**bad).check()


@pytest.mark.data
def test_attribute_folds(tmp_path):
    """Each fold scores the predictors the other fold pushes; a predictor gets only the asked
    attributes it outputs."""
    for name, attributes in PREDICTED.items():
        assert set(attackers.load(name).outputs) >= {
            {"sex": "sex_male_prob", "age": "age_years", "race": "race"}[a] for a in attributes}
    for surrogates, scored in ATTRIBUTE_FOLDS:
        assert not set(surrogates) & set(scored)
    assert set(PREDICTORS) == {p for _, scored in ATTRIBUTE_FOLDS for p in scored}
    base = AttributeSettings(cache_dir=tmp_path, conditions=("clean", "cloak", "cloak-attr"))
    folds = dataclasses.replace(base, protect_attributes=("race",)).attribute_folds()
    assert folds == {"cloak-attr/gear": {"surrogates": {}, "scored": ["gear"]},
                     "cloak-attr/age-gender+faceres-attributes": {
                         "surrogates": {"gear": ("race",)},
                         "scored": ["age-gender", "faceres-attributes"]}}
    only = dataclasses.replace(base, predictors=("gear",)).attribute_folds()
    assert list(only) == ["cloak-attr/gear"]
    assert only["cloak-attr/gear"]["surrogates"] == {
        "age-gender": ("sex", "age"), "faceres-attributes": ("sex", "age")}
    plain = dataclasses.replace(base, conditions=("clean", "cloak"))
    assert plain.attribute_folds() == {}
