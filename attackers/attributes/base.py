"""The attribute-predictor interface: sex, age and race of faces in the canonical frame.

Every predictor takes canonical frames (see :mod:`attackers.frame`), cuts its own crop with a
fixed similarity transform, and returns a dict of tensors, one row per face. The keys are shared
so that predictors can be compared; each predictor lists the ones it fills in ``outputs``:

- ``"sex_male_prob"``: (N,) probability that the face is male, in [0, 1];
- ``"age_years"``: (N,) expected age in years (the mean of the model's age distribution);
- ``"age_bins"``: (N, 7) probabilities over :data:`AGE_BINS`, summed from a distribution over
  single years (only models that have one);
- ``"race"``: (N, 5) probabilities over :data:`RACES` (UTKFace's coding).

White-box predictors are differentiable: gradients of every output reach the frame pixels.

>>> expected_age(torch.tensor([[0.5, 0.5]]), torch.tensor([20.0, 40.0]))
tensor([30.])
"""

from __future__ import annotations

import torch
from torch import nn

from attackers.frame import FRAME_SIZE, CropSpec

__all__ = ["AGE_BINS", "RACES", "AttributePredictor", "bin_ages", "check_frames", "expected_age"]

#: Age groups of ``"age_bins"``, inclusive years; ``None`` = no upper end.
AGE_BINS: tuple[tuple[int, int | None], ...] = (
    (0, 3), (4, 12), (13, 19), (20, 30), (31, 45), (46, 60), (61, None))

#: Classes of ``"race"``, in UTKFace's order (its file names code race 0-4 this way).
RACES: tuple[str, ...] = ("white", "black", "asian", "indian", "other")


def expected_age(probs: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
    """Mean of age distributions.

    Args:
        probs: (N, K) probabilities, rows summing to 1.
        ages: (K,) the age in years that each class stands for.

    Returns:
        (N,) ``sum_k probs[:, k] * ages[k]``.
    """
    return probs @ ages.to(probs)


def bin_ages(probs: torch.Tensor, ages: torch.Tensor) -> torch.Tensor:
    """Sum a distribution over ages into :data:`AGE_BINS`.

    A class of age ``a`` years falls in the bin ``(lo, hi)`` with ``lo <= a < hi + 1``, so a
    class of 0.25 years counts as 0-3.

    Args:
        probs: (N, K) probabilities over the classes.
        ages: (K,) the age in years of each class.

    Returns:
        (N, 7) probabilities over :data:`AGE_BINS` (rows keep their sum).
    """
    ages = ages.to(probs)
    columns = []
    for lo, hi in AGE_BINS:
        inside = ages >= lo
        if hi is not None:
            inside &= ages < hi + 1
        columns.append(probs[:, inside].sum(dim=1))
    return torch.stack(columns, dim=1)


class AttributePredictor(nn.Module):
    """A model that predicts sex, age and/or race from canonical frames.

    Subclasses set :attr:`name`, :attr:`crop`, :attr:`outputs` and implement ``_predict``.

    Attributes:
        name: zoo name.
        crop: the model's input crop relative to the canonical frame (where a model has two
            crops of one region at two sizes, the larger).
        outputs: the keys :meth:`predict` returns (see the module docstring).
        differentiable: False for black boxes (reference runtimes, no gradients).
    """

    name: str = ""
    crop: CropSpec
    outputs: tuple[str, ...] = ()
    differentiable: bool = True

    def _predict(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """The model's outputs for checked frames (subclasses implement this)."""
        raise NotImplementedError

    def predict(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        """Attributes of faces in canonical frames.

        Args:
            frames: (N, 3, FRAME_SIZE, FRAME_SIZE) float32 RGB in [0, 255].

        Returns:
            one tensor per key of :attr:`outputs`, each with N rows; differentiable in
            ``frames`` unless the predictor is a black box.

        Raises:
            ValueError: ``frames`` is not a batch of canonical frames.
        """
        check_frames(frames, self.name)
        if self.differentiable:
            return self._predict(frames)
        with torch.no_grad():
            return self._predict(frames.detach())

    def forward(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.predict(frames)


def check_frames(frames: torch.Tensor, model: str) -> None:
    """Raise a ValueError naming ``model`` unless ``frames`` is (N, 3, FRAME_SIZE, FRAME_SIZE)."""
    if frames.dim() != 4 or tuple(frames.shape[1:]) != (3, FRAME_SIZE, FRAME_SIZE):
        raise ValueError(f"{model}: expects canonical frames (N, 3, {FRAME_SIZE}, {FRAME_SIZE}), "
                         f"got {tuple(frames.shape)}")
