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
