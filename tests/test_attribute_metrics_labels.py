"""UTKFace name parsing (on the real file names in ../shared/data/utkface too) and age bins."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import shared_data

from attackers.attributes.base import RACES
from evaluation.attribute_metrics.labels import (
    UtkLabels,
    age_bin,
    parse_utkface_name,
    utkface_labels,
)


def test_age_bin_edges():
    ages = [0, 3, 3.5, 4, 12, 12.9, 13, 19, 19.99, 20, 30, 31, 45, 46, 60, 61, 116]
    assert age_bin(np.array(ages)).tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6]
    with pytest.raises(ValueError, match="finite and >= 0"):
        age_bin(np.array([20.0, -1.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        age_bin(np.array([np.nan]))


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
