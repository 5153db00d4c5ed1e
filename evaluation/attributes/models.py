"""The models a run needs (detector, landmarks, attribute predictors, the cloak's surrogates,
the black-box recognizers) and the cloak learned with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from evaluation.attributes.conditions import named
from evaluation.attributes.settings import PREDICTORS, AttributeSettings

if TYPE_CHECKING:
    from attackers.attributes.base import AttributePredictor
    from attackers.detectors.mtcnn import MTCNN
    from attackers.landmarks import Landmarker
    from attackers.recognizers.base import Recognizer
    from cloak.opom import AttributeSurrogate

__all__ = ["Models", "learn", "load_lfw_models", "load_models"]


@dataclass
class Models:
    """Loaded models of one run.

    Attributes:
        detector: MTCNN, for detection and re-detection.
        landmarker: dlib's 68 points, for the physical masks.
        predictors: report name -> attribute predictor (black boxes).
        surrogates: the cloak's surrogate recognizers (empty: no cloaked condition).
        attribute_folds: ``cloak-attr`` fold key -> its attribute surrogates (empty: no
            ``cloak-attr``).
        identity: black-box recognizers of the identity cost (empty: no ``cloak-attr``).
        lfw_recognizers: LFW identity PSR: black-box recognizers (empty: no LFW part).
        gallery: LFW identity PSR: recognizer -> (N, D) distractor features.
    """

    detector: MTCNN
    landmarker: Landmarker
    predictors: dict[str, AttributePredictor]
    surrogates: list[Recognizer]
    attribute_folds: dict[str, list[AttributeSurrogate]] = field(default_factory=dict)
    identity: dict[str, Recognizer] = field(default_factory=dict)
    lfw_recognizers: dict[str, Recognizer] = field(default_factory=dict)
    gallery: dict[str, torch.Tensor] = field(default_factory=dict)


def load_models(settings: AttributeSettings) -> Models:
    """Every model of ``settings`` but the LFW identity search's (:func:`load_lfw_models`)."""
    import attackers
    from attackers.landmarks import Landmarker

    cloaked = any(named(c).cloaked for c in settings.conditions)
    models = Models(
        detector=attackers.load("mtcnn"), landmarker=Landmarker(),
        predictors={n: attackers.load(PREDICTORS[n][0], reference=PREDICTORS[n][1])
                    for n in settings.predictors},
        surrogates=[attackers.load(s) for s in settings.surrogates()] if cloaked else [])
    folds = settings.attribute_folds()
    if folds:
        from cloak.opom import AttributeSurrogate

        white_box = {n: m for n, m in models.predictors.items() if m.differentiable}
        for name in {n for f in folds.values() for n in f["surrogates"]} - set(white_box):
            white_box[name] = attackers.load(name)
        models.attribute_folds = {
            key: [AttributeSurrogate(white_box[n], a) for n, a in fold["surrogates"].items()]
            for key, fold in folds.items()}
        models.identity = {n: attackers.load(n) for n in settings.identity_recognizers}
    return models


def load_lfw_models(settings: AttributeSettings, models: Models) -> list[Path]:
    """Load the LFW identity search's black-box recognizers and their distractor features into
    ``models``; return the distractor photos (the first ``lfw_distractors``).

    Raises:
        FileNotFoundError: no distractor photo.
    """
    from evaluation.protocol.folds import load_black_boxes
    from evaluation.protocol.gallery import distractor_features

    distractors = sorted((settings.lfw / "distractors").glob("*.jpg"))[:settings.lfw_distractors]
    if not distractors:
        raise FileNotFoundError(f"{settings.lfw / 'distractors'}: no distractor photos")
    names = settings.lfw_recognizers()
    models.lfw_recognizers = load_black_boxes(names)
    models.gallery = distractor_features(distractors, names, models.lfw_recognizers,
                                         models.detector, settings.cache_dir, settings.batch,
                                         settings.progress)
    return distractors


def learn(faces: Sequence[Any], key: str, models: Models, settings: AttributeSettings
          ) -> torch.Tensor:
    """The cloak learned from ``faces`` (training faces, :func:`cloak.opom.training_face`):
    ``key`` ``"cloak"`` (the plain cloak) or a ``cloak-attr`` fold key; (3, 224, 224)."""
    from cloak.opom import learn_mask

    return learn_mask(faces, models.surrogates, settings.config(),
                      attribute_surrogates=models.attribute_folds.get(key, ()),
                      attribute_weight=settings.attribute_weight)
