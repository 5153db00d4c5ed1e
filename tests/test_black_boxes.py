"""The recognizers a cloak is measured against (:mod:`attackers.black_boxes`), shared by
``cloak check`` and the benchmarks."""

from __future__ import annotations

from attackers import zoo
from attackers.black_boxes import BLACK_BOXES, RECOGNIZERS, model_of
from evaluation.protocol import folds


def test_one_source_of_truth() -> None:
    assert folds.BLACK_BOXES is BLACK_BOXES and folds.model_of is model_of


def test_each_runtime_exists_and_models_are_distinct() -> None:
    for zoo_name, reference in BLACK_BOXES.values():
        spec = zoo.get_spec(zoo_name)
        assert spec.role == "recognizer"
        assert spec.reference is not None if reference else True
    assert len({model_of(n) for n in BLACK_BOXES}) == len(BLACK_BOXES)
    assert model_of("dlib-resnet") == model_of("dlib-native") != model_of("facenet")


def test_every_judge_is_a_zoo_recognizer_and_the_black_boxes_come_first() -> None:
    assert list(RECOGNIZERS)[:len(BLACK_BOXES)] == list(BLACK_BOXES)
    for name, (zoo_name, reference) in RECOGNIZERS.items():
        assert zoo.get_spec(zoo_name).role == "recognizer"
        assert RECOGNIZERS[name] == BLACK_BOXES.get(name, (zoo_name, reference))
    assert model_of("faceres-deep") == model_of("faceres") != model_of("mobileface")
