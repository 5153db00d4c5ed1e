"""The attribute benchmark's conditions: names, order and what each does to a photo."""

from __future__ import annotations

import pytest

from evaluation.attributes import ALL_CONDITIONS, CONDITIONS
from evaluation.attributes.conditions import (
    ATTRIBUTE_CLOAK,
    fold_key,
    fold_name,
    named,
    with_style,
)
from evaluation.physical_masks import STYLES


def test_names_and_order():
    masks = [f"mask-{s}" for s in STYLES]
    cloaked = [f"cloak+mask-{s}" for s in STYLES]
    assert ALL_CONDITIONS == ("clean", *masks, "cloak", ATTRIBUTE_CLOAK, *cloaked)
    assert CONDITIONS == ("clean", *masks, "cloak", *cloaked)
    assert all(named(n).name == n for n in ALL_CONDITIONS)
    with pytest.raises(ValueError, match="unknown condition 'mask-latex'"):
        named("mask-latex")


def test_what_each_condition_does():
    clean, paper, cloak = named("clean"), named("mask-paper"), named("cloak")
    both = named("cloak+mask-paper")
    assert (clean.style, clean.cloaked, clean.source) == (None, False, "clean")
    assert (paper.style, paper.cloaked) == ("paper", False)
    assert (cloak.style, cloak.cloaked, cloak.source) == (None, True, "clean")
    assert (both.style, both.cloaked, both.source) == ("paper", True, "mask-paper")
    assert [n for n in ALL_CONDITIONS if named(n).cloak_on_mask] == [
        f"cloak+mask-{s}" for s in STYLES]
    assert [c.name for c in with_style("cloth")] == ["mask-cloth", "cloak+mask-cloth"]
    assert [n for n in ALL_CONDITIONS if not named(n).searched] == [ATTRIBUTE_CLOAK]


def test_photo_keys_and_cloaks():
    folds = [fold_key(["gear"]), fold_key(["age-gender", "faceres-attributes"])]
    assert folds == ["cloak-attr/gear", "cloak-attr/age-gender+faceres-attributes"]
    assert [fold_name(k) for k in folds] == ["gear", "age-gender+faceres-attributes"]
    attr = named(ATTRIBUTE_CLOAK)
    assert attr.photo_keys(folds) == tuple(folds)
    assert [attr.cloak_key(k) for k in folds] == folds        # each fold pastes its own cloak
    assert named("cloak+mask-surgical").photo_keys(folds) == ("cloak+mask-surgical",)
    assert named("cloak+mask-surgical").cloak_key("cloak+mask-surgical") == "cloak"
    assert named("cloak").cloak_key("cloak") == "cloak"
    with pytest.raises(ValueError, match="no cloak"):
        named("mask-paper").cloak_key("mask-paper")
