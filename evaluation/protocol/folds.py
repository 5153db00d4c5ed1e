"""The recognizers of the LFW protocol and the leave-one-out folds that pair them.

A black box is a recognizer the benchmarks test (search protected photos with); a white box is
one that can be a surrogate (learn masks). Leave-one-out (shared/DESIGN.md section 3): a
recognizer is only tested on masks made by surrogates of other models (dlib-resnet and
dlib-native are one model). :data:`FOLD_PLANS`:

- ``"one"`` (fold A only): surrogates facenet, faceres, mobilefacenet; tested: dlib-native,
  sface;
- ``"two"`` (A and B): B = surrogates dlib-resnet, sface; tested: facenet, faceres,
  mobilefacenet; each of the five models is tested exactly once;
- ``"full"``: one fold per tested recognizer, the four other models as surrogates.

Tested recognizers run their reference runtime where the zoo has one (dlib-native = dlib-bin;
sface, mobilefacenet = onnxruntime); facenet and faceres have only the torch port. That choice,
:data:`BLACK_BOXES` and :func:`model_of` live in :mod:`attackers.black_boxes`, shared with
``cloak check``.

:data:`EXTRA_SURROGATES` are white boxes outside the plans that
:func:`with_extra_surrogates` can add to every fold whose tested recognizers are of another
model family. Families (:func:`model_of`): dlib-resnet and dlib-native run the same weights;
faceres-deep is faceres' network (same graph, node names and heads from the same HSE project)
with other weights. The pairwise cosine similarities of 50 LFW photos (25 people x 2, 1,225
pairs; ``scripts/zoo_family.py``, docs/BENCHMARKS.md ``zoo-family``) correlate at Pearson r
1.000 for dlib-resnet vs dlib-native (one model) but 0.71 for faceres vs faceres-deep, no closer
than unrelated models (sface vs mobilefacenet 0.83, facenet vs mobilefacenet 0.72), so
faceres-deep is not a copy; it is counted as faceres' family anyway, the cautious choice for
leave-one-out. mobileface (becauseofAI MobileFace, 256-d) correlates at r 0.45-0.61 with every
other model and is its own family.

>>> [f.name for f in FOLD_PLANS["two"]]
['A', 'B']
>>> model_of("dlib-resnet") == model_of("dlib-native")
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attackers.black_boxes import BLACK_BOXES, RECOGNIZERS, load_black_box, model_of

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["BLACK_BOXES", "EXTRA_SURROGATES", "FOLD_PLANS", "WHITE_BOXES", "Fold", "check_folds",
           "load_black_boxes", "load_surrogates", "model_of", "all_tested",
           "with_extra_surrogates"]

#: White-box recognizers that can be surrogates (the fold plans use these).
WHITE_BOXES: tuple[str, ...] = ("facenet", "dlib-resnet", "sface", "mobilefacenet", "faceres")
#: More white boxes that can join the folds' surrogates (:func:`with_extra_surrogates`): the
#: recognizers ``cloak check`` asks beyond the black boxes (all white boxes of the zoo).
EXTRA_SURROGATES: tuple[str, ...] = tuple(n for n in RECOGNIZERS if n not in BLACK_BOXES)


@dataclass(frozen=True)
class Fold:
    """One leave-one-out fold: masks made by ``surrogates`` are tested on ``tested``.

    Attributes:
        name: short label used in the report.
        surrogates: white-box zoo names that learn the masks.
        tested: black-box names (keys of :data:`BLACK_BOXES`) that search the protected probes.
    """

    name: str
    surrogates: tuple[str, ...]
    tested: tuple[str, ...]


_FOLD_A = Fold("A", ("facenet", "faceres", "mobilefacenet"), ("dlib-native", "sface"))
_FOLD_B = Fold("B", ("dlib-resnet", "sface"), ("facenet", "faceres", "mobilefacenet"))
#: The fold plans behind ``--loo``.
FOLD_PLANS: dict[str, tuple[Fold, ...]] = {
    "one": (_FOLD_A,),
    "two": (_FOLD_A, _FOLD_B),
    "full": tuple(Fold(f"LOO-{t}", tuple(w for w in WHITE_BOXES if model_of(w) != model_of(t)),
                       (t,)) for t in BLACK_BOXES),
}


def check_folds(folds: Sequence[Fold]) -> None:
    """Raise ValueError unless the folds are a valid leave-one-out design.

    Every surrogate is a white box (:data:`WHITE_BOXES` or :data:`EXTRA_SURROGATES`), every
    tested name a black box, no tested recognizer shares a model family with a surrogate of its
    fold, and no recognizer is tested in two folds.
    """
    if not folds:
        raise ValueError("no folds given")
    seen: set[str] = set()
    white = WHITE_BOXES + EXTRA_SURROGATES
    for fold in folds:
        unknown = [s for s in fold.surrogates if s not in white]
        unknown += [t for t in fold.tested if t not in BLACK_BOXES]
        if unknown or not fold.surrogates or not fold.tested:
            raise ValueError(f"fold {fold.name}: needs surrogates among {white} and tested "
                             f"recognizers among {tuple(BLACK_BOXES)}; got unknown {unknown}")
        shared = {model_of(s) for s in fold.surrogates} & {model_of(t) for t in fold.tested}
        if shared:
            raise ValueError(f"fold {fold.name}: {sorted(shared)} would be both surrogate and "
                             "tested (leave-one-out forbids it)")
        twice = seen & set(fold.tested)
        if twice:
            raise ValueError(f"fold {fold.name}: {sorted(twice)} already tested in another fold")
        seen |= set(fold.tested)


def with_extra_surrogates(folds: Sequence[Fold], extra: Sequence[str]) -> tuple[Fold, ...]:
    """The folds with each of ``extra`` appended to the surrogates of every fold whose tested
    recognizers are of other model families (and that lacks it).

    Args:
        folds: a fold design.
        extra: white-box zoo names (:data:`WHITE_BOXES` or :data:`EXTRA_SURROGATES`).

    Returns:
        the folds, unchanged where no extra model may join.

    Raises:
        ValueError: a name in ``extra`` is not a white box.

    >>> [f.surrogates[-1] for f in with_extra_surrogates(FOLD_PLANS["two"], ["faceres-deep"])]
    ['faceres-deep', 'sface']
    """
    white = WHITE_BOXES + EXTRA_SURROGATES
    unknown = [e for e in extra if e not in white]
    if unknown:
        raise ValueError(f"unknown extra surrogates {unknown}; choose from {', '.join(white)}")
    out = []
    for fold in folds:
        tested = {model_of(t) for t in fold.tested}
        added = tuple(e for e in dict.fromkeys(extra)
                      if e not in fold.surrogates and model_of(e) not in tested)
        out.append(Fold(fold.name, fold.surrogates + added, fold.tested))
    return tuple(out)


def all_tested(folds: Iterable[Fold]) -> list[str]:
    """The tested recognizers of all folds, fold by fold."""
    return [t for fold in folds for t in fold.tested]


def load_black_boxes(names: Iterable[str]) -> dict[str, Recognizer]:
    """The tested recognizers by name, each on its :data:`BLACK_BOXES` runtime."""
    return {n: load_black_box(n) for n in names}


def load_surrogates(folds: Iterable[Fold]) -> dict[str, Recognizer]:
    """The folds' surrogates (white boxes) by zoo name."""
    import attackers

    return {s: attackers.load(s) for fold in folds for s in fold.surrogates}
