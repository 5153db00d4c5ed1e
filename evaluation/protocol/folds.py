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

>>> [f.name for f in FOLD_PLANS["two"]]
['A', 'B']
>>> model_of("dlib-resnet") == model_of("dlib-native")
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from attackers.black_boxes import BLACK_BOXES, load_black_box, model_of

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["BLACK_BOXES", "FOLD_PLANS", "WHITE_BOXES", "Fold", "check_folds", "load_black_boxes",
           "load_surrogates", "model_of", "all_tested"]

#: White-box recognizers that can be surrogates.
WHITE_BOXES: tuple[str, ...] = ("facenet", "dlib-resnet", "sface", "mobilefacenet", "faceres")


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

    Every surrogate is a white box, every tested name a black box, no tested recognizer shares a
    model with a surrogate of its fold, and no recognizer is tested in two folds.
    """
    if not folds:
        raise ValueError("no folds given")
    seen: set[str] = set()
    for fold in folds:
        unknown = [s for s in fold.surrogates if s not in WHITE_BOXES]
        unknown += [t for t in fold.tested if t not in BLACK_BOXES]
        if unknown or not fold.surrogates or not fold.tested:
            raise ValueError(f"fold {fold.name}: needs surrogates among {WHITE_BOXES} and tested "
                             f"recognizers among {tuple(BLACK_BOXES)}; got unknown {unknown}")
        shared = {model_of(s) for s in fold.surrogates} & {model_of(t) for t in fold.tested}
        if shared:
            raise ValueError(f"fold {fold.name}: {sorted(shared)} would be both surrogate and "
                             "tested (leave-one-out forbids it)")
        twice = seen & set(fold.tested)
        if twice:
            raise ValueError(f"fold {fold.name}: {sorted(twice)} already tested in another fold")
        seen |= set(fold.tested)


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
