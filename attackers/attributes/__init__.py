"""Attribute predictors: sex, age and race of faces in the canonical frame.

Each is a zoo model with role ``"attributes"`` (``attackers.load("age-gender")``, ``"gear"``,
``"faceres-attributes"``) and shares the :class:`~attackers.attributes.base.AttributePredictor`
interface: ``predict(frames)`` returns a dict of tensors (``"sex_male_prob"``, ``"age_years"``,
``"age_bins"``, ``"race"``, as each model can), differentiable in the frames.

>>> # attackers.load("gear").predict(frames)["race"].shape == (N, 5)
"""

from attackers.attributes.base import AGE_BINS, RACES, AttributePredictor

__all__ = ["AGE_BINS", "RACES", "AttributePredictor"]
