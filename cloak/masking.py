"""A person's mask as the product handles it: settings, learning, reuse and refinement.

The optimiser (:mod:`cloak.opom`) turns training faces into a mask tensor; this module is what
the photo pipeline (:mod:`cloak.photos`), video enrolment (:mod:`cloak.video.enroll`) and
``--refine`` share around it:

- settings: a ``--mode`` preset with overrides resolved to optimiser settings and surrogate
  names (:func:`resolve_mode`, :class:`LearnSettings`);
- learning: :class:`MaskLearner` loads the ensemble once and learns a person's
  :class:`~cloak.mask.Mask` from their training faces, recording its settings
  (:func:`mask_settings`) in the mask;
- reuse: which settings an existing mask was learned with (:func:`mask_matches`,
  :func:`mask_attribute_plan`, :func:`mask_config`) and a digest of its values
  (:func:`mask_digest`);
- refinement: :class:`MaskRefiner` fits a copy of the mask to each face, batch after batch,
  pushing it from the center of the person's faces and keeping the protected faces apart from
  each other (``--refine``).

>>> config, surrogates = resolve_mode("fast", seed=3)
>>> config.steps, config.seed, surrogates
(20, 3, ('facenet', 'dlib-resnet'))
>>> # learner = MaskLearner(LearnSettings(mode="fast"), attackers.load)
>>> # mask = learner("alice", [training_face(photo, face) for photo, face in pairs])
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from cloak.mask import Mask
from cloak.opom import (
    DEFAULT_ATTRIBUTE_WEIGHT,
    MODES,
    PRECISIONS,
    TERMS_OFF,
    AttributeSurrogate,
    BatchRefiner,
    Mode,
    OpomConfig,
    RefineRecipe,
    TrainingFace,
    attribute_names,
    learn_mask,
    with_terms,
)

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = [
    "LearnSettings",
    "MaskLearner",
    "MaskRefiner",
    "attribute_surrogates",
    "get_mode",
    "mask_attribute_plan",
    "mask_config",
    "mask_digest",
    "mask_matches",
    "mask_settings",
    "resolve_mode",
]

#: Loads a model by zoo name (``attackers.load`` or a wrapper that reports fetches).
Loader = Callable[[str], Any]


# -- settings ----------------------------------------------------------------------------------


def get_mode(mode: str) -> Mode:
    """The :data:`~cloak.opom.MODES` preset named ``mode``.

    Raises:
        ValueError: unknown mode (the message lists the valid ones).
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return MODES[mode]


def resolve_mode(mode: str, surrogates: Sequence[str] | None = None,
                 terms: Iterable[str] | None = None,
                 **changes: Any) -> tuple[OpomConfig, tuple[str, ...]]:
    """The optimiser settings and surrogate names of a ``--mode`` preset with overrides.

    Args:
        mode: a key of :data:`~cloak.opom.MODES`.
        surrogates: zoo names of the white-box recognizers, or None (or empty) for the preset's.
        terms: the optional objective terms (of :data:`cloak.opom.TERMS`) to use instead of the
            preset's (:func:`cloak.opom.with_terms`, applied after ``changes``; empty = OPOM's
            objective alone), or None for the preset's.
        **changes: :class:`~cloak.opom.OpomConfig` fields to override (``seed=1``,
            ``steps=10``, ...); a None value keeps the preset's.

    Returns:
        ``(config, surrogate names)``.

    Raises:
        ValueError: unknown mode or invalid settings (the message names them).
        TypeError: ``changes`` names something that is not a field of OpomConfig.
    """
    preset = get_mode(mode)
    config = dataclasses.replace(preset.config,
                                 **{k: v for k, v in changes.items() if v is not None})
    if terms is not None:
        config = with_terms(config, terms)
    return config, tuple(surrogates) if surrogates else tuple(preset.surrogates)


@dataclass(frozen=True)
class LearnSettings:
    """How to learn a mask: a :data:`~cloak.opom.MODES` preset plus overrides.

    Attributes:
        mode: ``"fast"``, ``"balanced"`` or ``"strong"``.
        eps: L-inf budget in pixel levels (of 255), or None for the preset's (8).
        steps: optimisation steps, or None for the preset's.
        seed: random seed; the same seed gives the same mask.
        surrogates: zoo names of white-box recognizers, or None for the preset's.
        protect_attributes: attributes (of :data:`cloak.opom.ATTRIBUTES`: sex, age, race)
            whose predictors the mask also pushes towards uninformative outputs, with the
            mode's attribute predictors (:meth:`attribute_plan`); empty = identity only.
            Normalised to the order of :data:`~cloak.opom.ATTRIBUTES`.
        terms: the optional objective terms (of :data:`cloak.opom.TERMS`) to use instead of
            the mode's (:func:`cloak.opom.with_terms`; empty = OPOM's objective alone), or
            None for the mode's.
        device: the torch device the models and the optimiser run on (``"cpu"``, ``"cuda"``,
            ...; :func:`cloak.device.resolve_device` turns ``--device auto`` into one). Not
            one of the mask's settings: masks learned on any device are the same mask.
        precision: the surrogates' number format while learning (:attr:`OpomConfig.precision`:
            ``"float32"`` or ``"bfloat16"``).
        per_step: training photos each step learns from (:attr:`OpomConfig.per_step`; 0 =
            all), or None for the preset's.

    Raises:
        ValueError: an unknown attribute.
    """

    mode: str = "balanced"
    eps: float | None = None
    steps: int | None = None
    seed: int = 0
    surrogates: tuple[str, ...] | None = None
    protect_attributes: tuple[str, ...] = ()
    terms: tuple[str, ...] | None = None
    device: str = "cpu"
    precision: str = "float32"
    per_step: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "protect_attributes", attribute_names(self.protect_attributes))

    def attribute_plan(self) -> dict[str, tuple[str, ...]]:
        """Zoo name of each attribute predictor of the mode -> the attributes it is pushed on
        (empty when no attribute is protected; see :meth:`cloak.opom.Mode.attribute_plan`).

        Raises:
            ValueError: unknown mode.
        """
        return get_mode(self.mode).attribute_plan(self.protect_attributes)

    def resolve(self) -> tuple[OpomConfig, tuple[str, ...]]:
        """The optimiser settings and surrogate names this asks for (:func:`resolve_mode`).

        Raises:
            ValueError: unknown mode or invalid settings (message names the setting).
        """
        return resolve_mode(self.mode, self.surrogates, self.terms, seed=self.seed,
                            eps=None if self.eps is None else float(self.eps),
                            steps=None if self.steps is None else int(self.steps),
                            precision=self.precision,
                            per_step=None if self.per_step is None else int(self.per_step))


# -- what a mask records -----------------------------------------------------------------------


def mask_settings(config: OpomConfig, mode: str,
                  attributes: Mapping[str, tuple[str, ...]] | None = None,
                  ) -> dict[str, str | int | float]:
    """The optimiser settings recorded in a mask file besides eps, seed, subspace, surrogates.

    ``mode`` first, then every other field of ``config`` (non-scalar values as strings). With
    an attribute term (``attributes``: predictor -> its attributes, as
    :meth:`LearnSettings.attribute_plan` gives it), also ``protect_attributes`` (e.g.
    ``"sex,age"``), ``attribute_surrogates`` (e.g. ``"age-gender=sex+age,gear=sex+age"``) and
    ``attribute_weight``; masks without one record none of these.

    >>> mask_settings(OpomConfig(steps=20), "fast")["steps"]
    20
    """
    skip = {"eps", "seed", "subspace"}
    values: dict[str, str | int | float] = {
        k: v if isinstance(v, (str, int, float)) else str(v)
        for k, v in config.as_record().items() if k not in skip}
    if attributes:
        protected = attribute_names(a for chosen in attributes.values() for a in chosen)
        values.update(
            protect_attributes=",".join(protected),
            attribute_surrogates=",".join(f"{n}={'+'.join(a)}" for n, a in attributes.items()),
            attribute_weight=DEFAULT_ATTRIBUTE_WEIGHT)
    return {"mode": mode, **values}


def mask_matches(mask: Mask, config: OpomConfig, surrogates: Sequence[str], mode: str,
                 attributes: Mapping[str, tuple[str, ...]] | None = None) -> bool:
    """True when ``mask`` was learned with exactly these settings (so it can be reused).

    A mask file from before an optional objective term (:data:`cloak.opom.TERMS`) existed
    records none of it, which means the term was off; ``training_faces`` is not compared.
    """
    settings = {**TERMS_OFF, **{k: v for k, v in mask.settings.items() if k != "training_faces"}}
    return (mask.eps == config.eps and mask.seed == config.seed
            and mask.subspace == config.subspace and mask.surrogates == list(surrogates)
            and settings == mask_settings(config, mode, attributes))


def mask_attribute_plan(mask: Mask) -> dict[str, tuple[str, ...]]:
    """The attribute term a mask was learned with (predictor -> attributes), from its
    ``attribute_surrogates`` setting (``"age-gender=sex+age,gear=sex"``); empty without one."""
    recorded = str(mask.settings.get("attribute_surrogates", ""))
    return {name: tuple(chosen.split("+")) for name, chosen in
            (item.split("=", 1) for item in recorded.split(",") if "=" in item)}


def mask_config(mask: Mask) -> OpomConfig:
    """The settings to go on optimising a mask with: the preset of the mode it records
    (``"balanced"`` when it records none or an unknown one) with the mask's eps, seed,
    feather and precision (float32 when it records none or an unknown one)."""
    mode = str(mask.settings.get("mode", "balanced"))
    precision = str(mask.settings.get("precision", "float32"))
    config, _ = resolve_mode(mode if mode in MODES else "balanced", eps=mask.eps,
                             seed=mask.seed, feather=mask.feather,
                             precision=precision if precision in PRECISIONS else "float32")
    return config


def mask_digest(mask: Mask) -> str:
    """sha256 (hex) of the mask's values and eps: equal digests give equal outputs."""
    digest = hashlib.sha256(mask.delta.detach().cpu().contiguous().numpy().tobytes())
    digest.update(repr(float(mask.eps)).encode())
    return digest.hexdigest()


# -- learning and refining ---------------------------------------------------------------------


def attribute_surrogates(attributes: Mapping[str, tuple[str, ...]],
                         load: Loader) -> list[AttributeSurrogate]:
    """The attribute term's white-box predictors (``load(zoo name)``) with their attributes."""
    return [AttributeSurrogate(load(name), chosen) for name, chosen in attributes.items()]


class MaskLearner:
    """Learns masks with one :class:`LearnSettings`: its settings resolved and its models loaded.

    Args:
        learn: the preset, overrides and device.
        load: loads a model by zoo name; called here for each surrogate, then each attribute
            predictor, which are then moved to ``learn.device``.

    Raises:
        ValueError: unknown mode or invalid settings.
    """

    def __init__(self, learn: LearnSettings, load: Loader) -> None:
        self.learn = learn
        self.config, self.names = learn.resolve()
        self.attributes = learn.attribute_plan()

        def on_device(name: str) -> Any:
            return load(name).to(learn.device)

        self.surrogates: list[Recognizer] = [on_device(n) for n in self.names]
        self.attribute_surrogates = attribute_surrogates(self.attributes, on_device)

    def describe(self) -> str:
        """The ensemble and budget, e.g. ``"facenet, dlib-resnet (40 steps, eps 8)"``."""
        hiding = "" if not self.attributes else (
            f", hiding {', '.join(self.learn.protect_attributes)} from "
            f"{', '.join(self.attributes)}")
        return (f"{', '.join(self.names)}{hiding} ({self.config.steps} steps, "
                f"eps {self.config.eps:g})")

    def __call__(self, person: str, faces: Sequence[TrainingFace],
                 progress: Callable[[int, int, float], None] | None = None,
                 extra_settings: Mapping[str, str | int | float] | None = None) -> Mask:
        """Learn ``person``'s mask from their training faces (:func:`cloak.opom.learn_mask`).

        Args:
            person: the person's name (stored in the mask).
            faces: their training faces, at least one.
            progress: called after each step with (step, steps, loss).
            extra_settings: recorded in the mask after :func:`mask_settings` and
                ``training_faces`` (the number of faces).

        Returns:
            the mask: delta (3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], on the CPU
            (as a mask file holds it).
        """
        delta = learn_mask(faces, self.surrogates, self.config, progress,
                           attribute_surrogates=self.attribute_surrogates)
        settings = {**mask_settings(self.config, self.learn.mode, self.attributes),
                    "training_faces": len(faces), **(extra_settings or {})}
        return Mask(delta=delta.float().cpu().contiguous(), eps=float(self.config.eps),
                    subspace=self.config.subspace, surrogates=list(self.names), person=person,
                    seed=self.config.seed, settings=settings)


#: How ``--refine`` refines (:class:`cloak.opom.RefineRecipe`), each part measured on the LFW
#: benchmark: every face pushed away from the center of the person's clean faces of the run
#: (docs/BENCHMARKS.md "issue16-refine-center"); each model's gradient averaged over 3 DI draws
#: per step, three times the cost of one, for a direction that carries better to recognizers
#: the mask never saw ("issue16-refine-draws"); draw ``k`` seeing the faces' pixel values
#: times ``0.5 ** k`` (scale invariance, "issue16-refine-si") and each step's gradient taken
#: ahead along the momentum (Nesterov, "issue16-refine-ni"), both at no cost.
REFINE = RefineRecipe(subspace="center", draws=3, scale_invariance=True, nesterov=True)


class MaskRefiner:
    """Refines a person's mask for the faces of one run (``--refine``), batch after batch.

    Each call refines one batch of faces together (:class:`cloak.opom.BatchRefiner`): every
    face gets its own copy of the mask, fitted to it, and the batch's protected faces are pushed
    apart from each other and from the protected faces this refiner has seen before (earlier
    batches, and copies written by an interrupted run, :meth:`remember`), so that the person's
    protected photos do not match each other. Each face is pushed away from the CENTER of the
    person's clean faces of the run (:meth:`add_person`; before any, of the batch's), where a face
    search looks for the person, rather than from its own clean feature (docs/BENCHMARKS.md
    "issue16-refine-center"). Each step averages every model's gradient over 3 random
    resize-and-pad views (DI) of the faces, view ``k`` darkened by ``0.5 ** k``, taken ahead
    along the momentum (:data:`REFINE`). The refiner uses the
    mask's surrogates and attribute predictors (loaded on first use; the refinement runs on
    their device) and :func:`mask_config`'s settings. The refined copies are pasted on their
    faces and never saved; the features it remembers stay in memory (shared/DESIGN.md
    section 7).

    Args:
        mask: the person's mask.
        steps: refinement steps per batch (>= 1).
        load: loads a model by zoo name.
    """

    def __init__(self, mask: Mask, steps: int, load: Loader) -> None:
        self.mask, self.steps, self._load = mask, steps, load
        self._batches: BatchRefiner | None = None

    def _refiner(self) -> BatchRefiner:
        if self._batches is None:
            self._batches = BatchRefiner(
                self.mask.delta, [self._load(n) for n in self.mask.surrogates],
                mask_config(self.mask), self.steps,
                attribute_surrogates(mask_attribute_plan(self.mask), self._load),
                recipe=REFINE)
        return self._batches

    def __call__(self, faces: Sequence[TrainingFace],
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """(N, 3, FRAME_SIZE, FRAME_SIZE) float32 on the models' device: the mask refined for
        each of N faces, together (``progress(step, steps)`` after each step); the protected
        faces are remembered for the next batch."""
        return self._refiner()(faces, progress)

    def remember(self, faces: Sequence[TrainingFace]) -> None:
        """Push later batches away from these already protected faces too (cut from copies
        written by an interrupted run)."""
        if faces:
            self._refiner().remember(faces)

    def add_person(self, faces: Sequence[TrainingFace]) -> None:
        """Count these clean faces among the person's faces of the run, whose center later
        batches are pushed away from (one photo's faces at a time keeps memory small)."""
        if faces:
            self._refiner().add_person(faces)
