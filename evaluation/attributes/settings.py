"""What the attribute benchmark runs: :class:`AttributeSettings`, the attribute predictors and
the leave-one-out folds of the attribute-aware cloak (``cloak-attr``)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evaluation.attributes.conditions import (
    ALL_CONDITIONS,
    ATTRIBUTE_CLOAK,
    CONDITIONS,
    fold_key,
)
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, DEFAULT_UTKFACE

if TYPE_CHECKING:
    from cloak.opom import OpomConfig

__all__ = ["ATTRIBUTE_FOLDS", "PREDICTED", "PREDICTORS", "UTK_DATASETS", "AttributeSettings"]

#: Leave-one-out plan of ``cloak-attr``: (attribute predictors in the loss, predictors scored).
ATTRIBUTE_FOLDS: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = (
    (("age-gender", "faceres-attributes"), ("gear",)),
    (("gear",), ("age-gender", "faceres-attributes")),
)
#: Attributes each predictor outputs (checked when a fold's surrogates are built).
PREDICTED: dict[str, tuple[str, ...]] = {
    "age-gender": ("sex", "age"), "gear": ("sex", "age", "race"),
    "faceres-attributes": ("sex", "age")}
#: Zoo models that share weights (a surrogate's twin is no black box).
_SAME_WEIGHTS: dict[str, str] = {"dlib-native": "dlib-resnet", "faceres-attributes": "faceres"}
#: Attribute predictors: report name -> (zoo name, use the zoo's reference runtime).
PREDICTORS: dict[str, tuple[str, bool]] = {
    "age-gender": ("age-gender", True),
    "gear": ("gear", False),
    "faceres-attributes": ("faceres-attributes", False),
}
#: UTKFace folders under ``utkface/``.
UTK_DATASETS: tuple[str, ...] = ("balanced", "random")
_PAD_MODES = ("constant", "replicate")


def _weights_of(name: str) -> str:
    """The zoo model whose weights ``name`` uses."""
    return _SAME_WEIGHTS.get(name, name)


@dataclass(frozen=True)
class AttributeSettings:
    """What :func:`~evaluation.attributes.run.run_attribute_benchmark` runs.

    Attributes:
        utkface: the ``utkface`` folder (``balanced/``, ``random/``).
        lfw: the ``lfw`` folder (``identities/``).
        datasets: UTKFace folders to run, a subset of :data:`UTK_DATASETS` (empty: none).
        limit: faces per UTKFace folder (the first in the fixed pseudo-random order); None = all.
        lfw_limit: LFW identities (first by name); None = all, 0 = no LFW part.
        lfw_distractors: only the first N LFW distractor photos in the identity gallery
            (None = all 2,679).
        conditions: a subset of :data:`ALL_CONDITIONS` containing ``"clean"``, reported in that
            order (default :data:`CONDITIONS`, without ``cloak-attr``).
        predictors: a subset of :data:`PREDICTORS`.
        mode: a key of :data:`cloak.opom.MODES`: the cloak's surrogates and optimiser settings.
        steps: override of the mode's optimiser steps (None = the mode's).
        pad: border in pixels added around each UTKFace chip before detection.
        pad_mode: ``"constant"`` (black) or ``"replicate"`` (edge pixels).
        seed: seeds the physical masks, the cloaks and the bootstrap.
        n_train, n_probe: LFW photos per identity that learn the cloak / are probes.
        n_boot: bootstrap replicates.
        cache_dir: ``runs/<digest>/`` below it holds the finished records.
        batch: faces per detector / predictor call.
        progress: show progress bars.
        protect_attributes: ``cloak-attr``: attributes its attribute term pushes (subset of
            :data:`cloak.opom.ATTRIBUTES`, non-empty).
        attribute_weight: ``cloak-attr``: weight of each attribute predictor's gradient against
            1 per recognizer (:func:`cloak.opom.learn_mask`).
        identity_recognizers: ``cloak-attr``: black-box recognizers (zoo names) whose cosine
            between clean and cloaked faces measures the identity cost; none may share weights
            with a surrogate.
    """

    utkface: Path = DEFAULT_UTKFACE
    lfw: Path = DEFAULT_LFW
    datasets: tuple[str, ...] = UTK_DATASETS
    limit: int | None = None
    lfw_limit: int | None = None
    lfw_distractors: int | None = None
    conditions: tuple[str, ...] = CONDITIONS
    predictors: tuple[str, ...] = tuple(PREDICTORS)
    mode: str = "fast"
    steps: int | None = None
    pad: int = 50
    pad_mode: str = "constant"
    seed: int = 0
    n_train: int = 10
    n_probe: int = 5
    n_boot: int = 2000
    cache_dir: Path = DEFAULT_CACHE
    batch: int = 16
    progress: bool = True
    protect_attributes: tuple[str, ...] = ("sex", "age", "race")
    attribute_weight: float = 1.0
    identity_recognizers: tuple[str, ...] = ("sface", "mobilefacenet")

    def config(self) -> OpomConfig:
        """The cloak's optimiser settings: the mode's, with ``steps`` and ``seed``."""
        from cloak.masking import resolve_mode

        return resolve_mode(self.mode, seed=self.seed, steps=self.steps)[0]

    def surrogates(self) -> tuple[str, ...]:
        """Zoo names of the mode's surrogate recognizers."""
        from cloak.masking import get_mode

        return get_mode(self.mode).surrogates

    def lfw_recognizers(self) -> tuple[str, ...]:
        """Black-box recognizers of the LFW identity PSR: the OPOM benchmark's
        (:data:`evaluation.protocol.folds.BLACK_BOXES`) that are not one of the cloak's
        surrogates (fast mode: sface, mobilefacenet, faceres)."""
        from evaluation.protocol.folds import BLACK_BOXES, model_of

        used = {model_of(s) for s in self.surrogates()}
        return tuple(n for n in BLACK_BOXES if model_of(n) not in used)

    def attribute_folds(self) -> dict[str, dict[str, Any]]:
        """The ``cloak-attr`` folds to make (none unless the condition is asked for).

        Returns:
            fold photo key -> ``{"surrogates": {zoo name: attributes pushed}, "scored":
            [predictors of ``predictors`` it is scored by]}``, for each fold of
            :data:`ATTRIBUTE_FOLDS` that scores at least one of ``predictors``; a predictor
            gets the attributes of ``protect_attributes`` that it outputs (a fold whose
            predictors output none of them is the plain cloak).
        """
        from cloak.opom import attribute_names

        if ATTRIBUTE_CLOAK not in self.conditions:
            return {}
        chosen = attribute_names(self.protect_attributes)
        folds = {}
        for surrogates, scored in ATTRIBUTE_FOLDS:
            kept = [p for p in scored if p in self.predictors]
            if not kept:
                continue
            plan = {}
            for name in surrogates:
                pushed = tuple(a for a in chosen if a in PREDICTED[name])
                if pushed:
                    plan[name] = pushed
            folds[fold_key(kept)] = {"surrogates": plan, "scored": kept}
        return folds

    def check(self) -> None:
        """Raise ValueError naming every invalid setting."""
        from cloak.opom import ATTRIBUTES

        problems = []
        bad = [c for c in self.conditions if c not in ALL_CONDITIONS]
        if bad or "clean" not in self.conditions:
            problems.append(f"conditions must include 'clean' and come from {ALL_CONDITIONS}; "
                            f"unknown: {bad}")
        if ATTRIBUTE_CLOAK in self.conditions:
            wrong = [a for a in self.protect_attributes if a not in ATTRIBUTES]
            if wrong or not self.protect_attributes:
                problems.append(f"protect_attributes must be a non-empty subset of {ATTRIBUTES}, "
                                f"got {self.protect_attributes}")
            if not (self.attribute_weight > 0 and math.isfinite(self.attribute_weight)):
                problems.append(f"attribute_weight must be > 0, got {self.attribute_weight}")
            used = {_weights_of(n) for n in self.surrogates()} | {
                _weights_of(n) for surrogates, _ in ATTRIBUTE_FOLDS for n in surrogates}
            shared = [n for n in self.identity_recognizers if _weights_of(n) in used]
            if shared or not self.identity_recognizers:
                problems.append(f"identity_recognizers must be non-empty and share no weights "
                                f"with a surrogate; {shared} do")
        bad = [d for d in self.datasets if d not in UTK_DATASETS]
        if bad:
            problems.append(f"unknown UTKFace datasets {bad}; choose from {UTK_DATASETS}")
        bad = [p for p in self.predictors if p not in PREDICTORS]
        if bad or not self.predictors:
            problems.append(f"unknown or no predictors {bad}; choose from {tuple(PREDICTORS)}")
        if self.limit is not None and self.limit < 1:
            problems.append(f"limit must be >= 1, got {self.limit}")
        if self.lfw_limit is not None and self.lfw_limit < 0:
            problems.append(f"lfw_limit must be >= 0, got {self.lfw_limit}")
        if self.lfw_distractors is not None and self.lfw_distractors < 1:
            problems.append(f"lfw_distractors must be >= 1, got {self.lfw_distractors}")
        if not self.datasets and self.lfw_limit == 0:
            problems.append("nothing to run: no UTKFace dataset and lfw_limit 0")
        if self.pad < 0 or self.pad_mode not in _PAD_MODES:
            problems.append(f"pad must be >= 0 and pad_mode one of {_PAD_MODES}, got "
                            f"{self.pad}, {self.pad_mode!r}")
        if self.seed < 0 or self.n_boot < 1 or self.batch < 1:
            problems.append(f"seed must be >= 0, n_boot and batch >= 1, got {self.seed}, "
                            f"{self.n_boot}, {self.batch}")
        if self.n_train < 1 or self.n_probe < 2:
            problems.append(f"need n_train >= 1 and n_probe >= 2, got {self.n_train}, "
                            f"{self.n_probe}")
        if problems:
            raise ValueError("invalid attribute benchmark settings: " + "; ".join(problems))
        self.config()
