"""The recognizers a cloak is measured against, each on the runtime it is measured with.

One source of truth for the product's ``cloak check`` (:mod:`cloak.check`) and the benchmarks
(:mod:`evaluation.protocol.folds`): a recognizer name maps to its zoo model and whether the
zoo's reference runtime is used (dlib-native = dlib-bin; sface and mobilefacenet =
onnxruntime; facenet and faceres have only the torch port). dlib-resnet and dlib-native are
the same weights, so they count as one model (:func:`model_of`).

>>> BLACK_BOXES["sface"]
('sface', True)
>>> model_of("dlib-resnet") == model_of("dlib-native")
True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["BLACK_BOXES", "RECOGNIZERS", "load_black_box", "model_of"]

#: Recognizers that can be tested: name -> (zoo name, use the zoo's reference runtime).
BLACK_BOXES: dict[str, tuple[str, bool]] = {
    "dlib-native": ("dlib-native", False),
    "sface": ("sface", True),
    "mobilefacenet": ("mobilefacenet", True),
    "facenet": ("facenet", False),
    "faceres": ("faceres", False),
}
#: Every recognizer that can judge a cloak: the benchmarks' :data:`BLACK_BOXES` and the zoo's
#: white boxes that the benchmarks' fold plans leave out (torch runtime); ``cloak check`` asks
#: all of these that share no model with the mask's surrogates.
RECOGNIZERS: dict[str, tuple[str, bool]] = {
    **BLACK_BOXES,
    "faceres-deep": ("faceres-deep", False),
    "mobileface": ("mobileface", False),
}
#: Model families: dlib-resnet and dlib-native run the same weights; faceres-deep is faceres'
#: network with other weights, counted as one family for leave-one-out (evaluation.protocol.folds).
_SAME_MODEL = {"dlib-native": "dlib", "dlib-resnet": "dlib", "faceres-deep": "faceres"}


def model_of(name: str) -> str:
    """The model family of a recognizer name (dlib-resnet and dlib-native are ``"dlib"``,
    faceres-deep is ``"faceres"``)."""
    return _SAME_MODEL.get(name, name)


def load_black_box(name: str, progress: Callable[[str], None] | None = None) -> Recognizer:
    """Recognizer ``name`` (a key of :data:`RECOGNIZERS`) on its runtime, fetched if needed.

    Raises:
        KeyError: ``name`` is not a key of :data:`RECOGNIZERS`.
    """
    import attackers

    zoo_name, reference = RECOGNIZERS[name]
    return attackers.load(zoo_name, progress, reference=reference)
