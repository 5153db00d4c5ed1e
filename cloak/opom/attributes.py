"""The attribute term: white-box attribute predictors pushed towards uninformative outputs.

An :class:`AttributeSurrogate` joins the optimiser's ensemble (:func:`cloak.opom.learn_mask`)
as a further member; its loss, maximised, is :func:`attribute_entropy`, the mean over photos and
attributes of the entropy of the predicted distribution (sex: male/female, age: 7 age groups,
race: 5 classes) divided by its maximum (``log K``), so 1 = a uniform guess. Each mode names
its predictors per attribute (:attr:`cloak.opom.Mode.attribute_surrogates`).

On 99 UTKFace faces (one-photo cloaks, mode fast, eps 8, each predictor scored only on cloaks it
was not in) the identity cloak alone does most of the hiding; the term adds 2-4 points of
black-box sex accuracy drop on two predictors (within noise) and nothing on the third, and
weakens identity protection slightly; white-box, it drives the predictors in the loss to chance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from attackers.attributes.base import AttributePredictor

__all__ = ["ATTRIBUTES", "DEFAULT_ATTRIBUTE_WEIGHT", "AttributeSurrogate", "attribute_entropy",
           "attribute_names"]

#: Attributes the attribute term can protect, in the order they are recorded.
ATTRIBUTES: tuple[str, ...] = ("sex", "age", "race")
#: Per attribute, the predictor outputs that carry it as probabilities (the first one a
#: predictor has is used): ``"sex_male_prob"`` (N,); ``"age_bins"`` or gear's ``"age_groups"``
#: (N, 7); ``"race"`` (N, 5).
_ATTRIBUTE_OUTPUTS: dict[str, tuple[str, ...]] = {
    "sex": ("sex_male_prob",), "age": ("age_bins", "age_groups"), "race": ("race",)}
#: Weight of each attribute predictor's balanced gradient against 1 per recognizer.
DEFAULT_ATTRIBUTE_WEIGHT = 1.0
_TINY = 1e-12  # probabilities are clamped here inside the log


def attribute_names(names: Iterable[str]) -> tuple[str, ...]:
    """Validate attribute names: the distinct ones, in the order of :data:`ATTRIBUTES`.

    >>> attribute_names(["race", "sex", "sex"])
    ('sex', 'race')

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    chosen = set(names)
    unknown = sorted(chosen - set(ATTRIBUTES))
    if unknown:
        raise ValueError(f"unknown attributes {unknown}; choose from {', '.join(ATTRIBUTES)}")
    return tuple(a for a in ATTRIBUTES if a in chosen)


def _attribute_output(outputs: Iterable[str], attribute: str) -> str | None:
    """The output key that carries ``attribute`` among ``outputs``, or None."""
    return next((k for k in _ATTRIBUTE_OUTPUTS[attribute] if k in outputs), None)


def attribute_entropy(outputs: Mapping[str, torch.Tensor],
                      attributes: Sequence[str]) -> torch.Tensor:
    """Normalised entropy of an attribute predictor's outputs, averaged over attributes.

    Per attribute, the entropy of the predicted distribution divided by ``log K``: sex
    ``[1 - p, p]`` from ``"sex_male_prob"`` (K = 2), age from ``"age_bins"`` or
    ``"age_groups"`` (K = 7), race from ``"race"`` (K = 5). 1 = a uniform guess (nothing
    leaks), 0 = certainty. Differentiable (probabilities are clamped at 1e-12 inside the log).

    Args:
        outputs: a predictor's :meth:`~attackers.attributes.base.AttributePredictor.predict`.
        attributes: non-empty subset of :data:`ATTRIBUTES`, each carried by ``outputs``.

    Returns:
        (N,) mean over ``attributes`` of the normalised entropies, in [0, 1].

    Raises:
        ValueError: no attribute, or one that ``outputs`` does not carry.

    >>> attribute_entropy({"sex_male_prob": torch.tensor([0.5, 1.0])}, ["sex"])
    tensor([1., 0.])
    """
    if not attributes:
        raise ValueError("attribute_entropy needs at least one attribute")
    terms = []
    for attribute in attributes:
        key = _attribute_output(outputs, attribute)
        if key is None:
            raise ValueError(f"the predictor's outputs {sorted(outputs)} do not carry "
                             f"{attribute!r}")
        probs = outputs[key]
        if key == "sex_male_prob":
            probs = torch.stack([1.0 - probs, probs], dim=1)
        entropy = -(probs * probs.clamp_min(_TINY).log()).sum(dim=1)
        terms.append(entropy / math.log(probs.shape[1]))
    return torch.stack(terms).mean(dim=0)


@dataclass(frozen=True)
class AttributeSurrogate:
    """A white-box attribute predictor in the ensemble and the attributes it is pushed on.

    Attributes:
        predictor: differentiable :class:`~attackers.attributes.base.AttributePredictor`.
        attributes: non-empty subset of :data:`ATTRIBUTES` that the predictor outputs
            (normalised by :func:`attribute_names`).

    Raises:
        ValueError: no attribute, an unknown one, one the predictor does not output, or a
            black-box predictor.
    """

    predictor: AttributePredictor
    attributes: tuple[str, ...]

    def __post_init__(self) -> None:
        attributes = attribute_names(self.attributes)
        name = self.predictor.name
        if not attributes:
            raise ValueError(f"{name}: an attribute surrogate needs at least one attribute")
        missing = [a for a in attributes if _attribute_output(self.predictor.outputs, a) is None]
        if missing:
            raise ValueError(f"{name} does not predict {missing} (outputs "
                             f"{list(self.predictor.outputs)})")
        if not self.predictor.differentiable:
            raise ValueError(f"{name} is a black box: attribute surrogates must be white-box")
        object.__setattr__(self, "attributes", attributes)

