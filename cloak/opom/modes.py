"""The presets behind ``--mode`` (:data:`MODES`): optimiser settings and surrogate names.

One step on 10 photos costs, in CPU seconds of one thread: dlib-resnet 0.24, faceres 0.47,
mobilefacenet 0.64, sface 0.76, facenet 0.84, plus 0.08 for the photo paste path. So ``fast``
(facenet, dlib-resnet; 20 steps) takes about 25 s, ``balanced`` (the default: facenet,
dlib-resnet, faceres, mobilefacenet; 40 steps, each on 5 of the photos, ``per_step``) about
45 s and ``strong`` (all five; 100 steps; EOT) about 6 min on one thread. All use eps 8,
steps of 2 levels, the convex hull, the photo paste path, MI (mu 1), DI on every image (p 1),
TI (7 px kernel), balanced gradients, and the optional objective terms anti-linkage (weight 1,
:mod:`cloak.objective`) and random views (:mod:`cloak.views`); ``strong`` also learns through
random blur, resize and JPEG (``eot``, :mod:`cloak.eot`). What each buys is measured in
docs/BENCHMARKS.md ("opom-ablation", "Robustness").

>>> MODES["fast"].surrogates
('facenet', 'dlib-resnet')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cloak.opom.attributes import ATTRIBUTES, attribute_names
from cloak.opom.config import OpomConfig

__all__ = ["MODES", "Mode"]

@dataclass(frozen=True)
class Mode:
    """A named preset: the optimiser settings and the zoo names of the surrogates to load.

    Attributes:
        config: the optimiser settings.
        surrogates: zoo names of the white-box recognizers.
        attribute_surrogates: per attribute of :data:`ATTRIBUTES`, the zoo names of the
            white-box attribute predictors that the attribute term pushes on it (used only when
            attributes are protected, :meth:`attribute_plan`).
    """

    config: OpomConfig
    surrogates: tuple[str, ...]
    attribute_surrogates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def attribute_plan(self, attributes: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Which predictor is pushed on which of ``attributes``.

        Args:
            attributes: attributes to protect (subset of :data:`ATTRIBUTES`; may be empty).

        Returns:
            zoo name -> its attributes (in :data:`ATTRIBUTES` order), predictors in the order
            they first appear in :attr:`attribute_surrogates`; empty when ``attributes`` is.

        Raises:
            ValueError: an unknown attribute, or one this mode has no predictor for.
        """
        chosen = attribute_names(attributes)
        uncovered = [a for a in chosen if not self.attribute_surrogates.get(a)]
        if uncovered:
            raise ValueError(f"this mode has no attribute predictor for {uncovered}")
        plan: dict[str, list[str]] = {}
        for attribute in chosen:
            for name in self.attribute_surrogates[attribute]:
                plan.setdefault(name, []).append(attribute)
        order = [n for a in ATTRIBUTES for n in self.attribute_surrogates.get(a, ())]
        return {n: tuple(plan[n]) for n in sorted(plan, key=order.index)}


#: Attribute predictors per attribute: every white-box one of the zoo that predicts it
#: (measured cost of one step on 10 photos, CPU seconds of one thread: age-gender 0.3,
#: faceres-attributes 0.45, gear 1.1).
_ATTRIBUTE_SURROGATES: dict[str, tuple[str, ...]] = {
    "sex": ("age-gender", "faceres-attributes", "gear"),
    "age": ("age-gender", "faceres-attributes", "gear"),
    "race": ("gear",),
}

#: The presets behind ``--mode``; ``"balanced"`` is the default.
MODES: dict[str, Mode] = {
    "fast": Mode(OpomConfig(steps=20, linkage=1.0, views=True), ("facenet", "dlib-resnet"),
                 _ATTRIBUTE_SURROGATES),
    "balanced": Mode(OpomConfig(steps=40, linkage=1.0, views=True, per_step=5),
                     ("facenet", "dlib-resnet", "faceres", "mobilefacenet"),
                     _ATTRIBUTE_SURROGATES),
    "strong": Mode(OpomConfig(steps=100, eot=True, linkage=1.0, views=True),
                   ("facenet", "dlib-resnet", "faceres", "mobilefacenet", "sface"),
                   _ATTRIBUTE_SURROGATES),
}

