"""The leave-one-out fold plans of the LFW protocol."""

from __future__ import annotations

import pytest

from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.folds import (
    BLACK_BOXES,
    FOLD_PLANS,
    Fold,
    all_tested,
    check_folds,
    model_of,
    with_extra_surrogates,
)


def test_fold_plans_are_leave_one_out():
    for folds in FOLD_PLANS.values():
        check_folds(folds)
        for fold in folds:
            models = {model_of(s) for s in fold.surrogates}
            assert not models & {model_of(t) for t in fold.tested}
    tested_twice = [t for f in FOLD_PLANS["two"] for t in f.tested]
    assert sorted(tested_twice) == sorted(BLACK_BOXES)            # every model tested once
    full = {f.tested[0]: f.surrogates for f in FOLD_PLANS["full"]}
    assert "dlib-resnet" not in full["dlib-native"] and len(full["dlib-native"]) == 4
    with pytest.raises(ValueError, match="leave-one-out"):
        check_folds([Fold("bad", ("dlib-resnet", "facenet"), ("dlib-native",))])
    with pytest.raises(ValueError, match="another fold"):
        check_folds([Fold("a", ("facenet",), ("sface",)), Fold("b", ("faceres",), ("sface",))])
    with pytest.raises(ValueError, match="unknown"):
        BenchmarkSettings(conditions=("clean", "blur")).check()


def test_tested_names_fold_by_fold():
    assert all_tested(FOLD_PLANS["two"]) == ["dlib-native", "sface", "facenet", "faceres",
                                               "mobilefacenet"]


def test_extra_surrogates_join_only_folds_of_other_families():
    """faceres-deep (faceres' family) joins fold A only; mobileface joins both folds."""
    two = FOLD_PLANS["two"]
    folds = with_extra_surrogates(two, ["faceres-deep", "mobileface", "mobileface"])
    check_folds(folds)
    assert folds[0].surrogates == two[0].surrogates + ("faceres-deep", "mobileface")
    assert folds[1].surrogates == two[1].surrogates + ("mobileface",)
    assert [f.tested for f in folds] == [f.tested for f in two]
    assert model_of("faceres-deep") == model_of("faceres")
    assert with_extra_surrogates(two, []) == two
    assert with_extra_surrogates(two, ["faceres"])[0] == two[0]        # already a surrogate
    full = {f.tested[0]: f.surrogates for f in with_extra_surrogates(FOLD_PLANS["full"],
                                                                      ["faceres-deep"])}
    assert "faceres-deep" not in full["faceres"] and "faceres-deep" in full["sface"]
    with pytest.raises(ValueError, match="unknown extra surrogates \\['sface-x'\\]"):
        with_extra_surrogates(two, ["sface-x"])
    with pytest.raises(ValueError, match="leave-one-out"):
        check_folds([Fold("bad", ("faceres-deep",), ("faceres",))])
