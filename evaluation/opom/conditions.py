"""The OPOM benchmark's conditions: how the probes of one identity are protected.

Each condition is a small object behind one interface (:class:`Condition`): it makes one
:class:`Protection` per leave-one-out fold (the probes' masks), or none at all (``clean``), and
:meth:`Condition.entry` turns it into the identity record's entry (ranks per recognizer in both
directions, undetected probes, quality, timings).

- ``clean``: the probe as it is;
- ``noise``: uniform noise ``U[-eps, eps]`` in the canonical frame (seeded per person), pasted
  like a mask;
- ``center`` / ``affine`` / ``convex``: an OPOM mask learned with that subspace model
  (:func:`cloak.opom.learn_mask`) from the training photos by the fold's surrogates, with the
  mode's objective as shipped;
- ``refine``: the ``convex`` mask refined for each probe by ``refine_steps`` more steps on that
  probe alone (:func:`cloak.opom.refine_mask`, what ``cloak protect --refine`` did before it
  refined a run's photos together): a mask per photo; its ``learn_s`` is the universal mask's,
  ``refine_s`` per probe;
- ``refine-joint`` (only when asked for): the ``convex`` mask refined for all the probes at
  once by ``refine_steps`` steps, one mask each, pushed apart from each other by the mode's
  anti-linkage term (:func:`cloak.opom.refine_jointly`): what ``cloak protect --refine`` did
  with a run of up to 8 faces before it pushed from the person's center;
- ``refine-joint-center`` / ``refine-joint-convex`` (only when asked for): ``refine-joint``
  with each probe pushed away from the center (or convex hull) of the probes' clean features
  instead of its own clean feature (``-center``: what ``--refine`` now does with a run of up
  to 8 faces, but here the center holds the gallery's photos); ``refine-joint-train-center`` /
  ``refine-joint-train-convex``: from that subspace of the TRAINING photos' clean features,
  photos no gallery holds (the fair measure of pushing from the person's center);
  ``refine-joint-train-center-draws3``: ``refine-joint-train-center`` with each surrogate's
  gradient averaged over 3 DI draws per step (what ``cloak protect --refine`` shipped before
  scale invariance); ``refine-joint-train-center-draws3-si``: the same with scale invariance,
  draw ``k`` seeing the probes' pixel values times ``0.5 ** k`` (what ``--refine`` shipped
  before Nesterov); ``refine-joint-train-center-draws3-si-ni``: the same with each step's
  gradient taken ahead along the momentum (what ``--refine`` ships,
  :data:`cloak.masking.REFINE`);
- ``refine-batch2`` (only when asked for): the same, in batches of 2 probes (2, 2, 1), each
  pushed apart from the batches before it, as ``cloak protect --refine`` carries anti-linkage
  across its batches;
- ``convex-train`` (a diagnostic, only when asked for): the convex mask on the training photos
  it was learned from, each searched among all the person's clean probes + distractors;
- ``refine-shift2`` / ``refine-shift4`` / ``refine-swap`` (diagnostics, only when asked for):
  the same refined masks moved by 2 or 4 pixels in x and y, or each pasted on the person's
  NEXT probe instead of its own: how tied a per-photo mask is to its photo;
- the ablations :data:`ABLATIONS`: the convex mask with only the named optional terms of
  :data:`cloak.opom.TERMS` on (``opom`` = none: the OPOM objective alone);
- ``convex-all-photos`` (only when asked for): the convex mask learned from all the training
  photos at every step (``per_step`` 0, as balanced mode learned before it took 5 per step).

A masked condition's entry records its optimiser settings (``config``); a stored entry whose
settings differ from today's is computed again (:meth:`Condition.is_current`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from cloak.masking import REFINE
from cloak.opom import BatchRefiner, RefineRecipe, protected_features, training_face
from evaluation.protocol.ranks import person_generator

if TYPE_CHECKING:
    from cloak.opom import OpomConfig
    from evaluation.opom.identity import IdentityJob
    from evaluation.opom.settings import BenchmarkSettings

__all__ = ["ABLATIONS", "CONDITIONS", "CONDITION_BY_NAME", "DEFAULT_CONDITIONS", "Condition",
           "Protection"]


@dataclass
class Protection:
    """One fold's masks for a person's probes.

    Attributes:
        fold: the fold's name (None: no fold learned it, e.g. noise).
        tested: the recognizers that search the protected probes.
        deltas: per probe (per training photo with ``on_training``), its (3, 224, 224) mask
            in pixel levels.
        learn_s: seconds the fold's mask took to learn (None: nothing learned).
        on_training: the masks go on the training photos, not the probes (a diagnostic).
    """

    fold: str | None
    tested: Sequence[str]
    deltas: list[torch.Tensor]
    learn_s: float | None
    on_training: bool = False


class Condition:
    """How one condition protects an identity's probes.

    Attributes:
        name: the condition's name in the JSON and the report.
        masked: the folds learn its masks (its entries record the optimiser settings, its
            recognizers their fold).
    """

    name: str
    masked: bool = False

    def config(self, settings: BenchmarkSettings) -> OpomConfig | None:
        """The optimiser settings of a masked condition (None: nothing is learned)."""
        return None

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        """The probes' masks per fold (may add fields to ``entry``)."""
        raise NotImplementedError

    def entry(self, job: IdentityJob) -> dict[str, Any]:
        """The identity record's entry: protect, re-detect, embed and rank the probes."""
        entry: dict[str, Any] = {"ranks": {}, "linkage": {}, "undetected": {}}
        config = self.config(job.settings)
        if config is not None:
            entry["config"] = config.as_record()
        protections = self.protections(job, entry)
        entry.update(quality=[], protect_s=[], learn_s={})
        for protection in protections:
            job.search(protection, entry)
            if protection.fold is not None:
                entry["learn_s"][protection.fold] = protection.learn_s
        return entry

    def is_current(self, entry: dict[str, Any] | None, settings: BenchmarkSettings) -> bool:
        """True when a stored entry was made with today's settings: it exists, has the
        protected-vs-protected ranks, and (masked conditions) the same optimiser settings and
        refinement steps."""
        if entry is None or "linkage" not in entry:
            return False
        config = self.config(settings)
        if config is not None and entry.get("config") != config.as_record():
            return False
        return entry.get("refine_steps", settings.refine_steps) == settings.refine_steps


class Clean(Condition):
    """The probes as they are: ranked against the gallery, the same in both directions."""

    name = "clean"

    def entry(self, job: IdentityJob) -> dict[str, Any]:
        ranks = {n: job.ranks(job.clean[n], n) for n in job.tested}
        return {"ranks": ranks, "linkage": ranks, "undetected": {}}


class Noise(Condition):
    """Uniform noise ``U[-eps, eps]`` in the canonical frame, seeded by the seed and the person."""

    name = "noise"

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        from attackers.frame import FRAME_SIZE
        from cloak.steps import random_start

        noise = random_start((3, FRAME_SIZE, FRAME_SIZE), job.settings.config().eps,
                             person_generator(job.person, job.settings.seed))
        return [Protection(None, job.tested, [noise] * len(job.probes), None)]


class UniversalMask(Condition):
    """One mask per fold, learned from the training photos and pasted on every probe.

    Args:
        name: the condition's name.
        subspace: the OPOM subspace model.
        terms: only these optional objective terms (None: the mode's objective as shipped).
        change: :class:`~cloak.opom.OpomConfig` fields set after the mode's (e.g.
            ``{"per_step": 0}``); None: none.
    """

    masked = True

    def __init__(self, name: str, subspace: str, terms: tuple[str, ...] | None = None,
                 change: dict[str, Any] | None = None) -> None:
        self.name, self.subspace, self.terms = name, subspace, terms
        self.change = change or {}

    def config(self, settings: BenchmarkSettings) -> OpomConfig:
        return dataclasses.replace(settings.config(self.subspace, self.terms), **self.change)

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        config = self.config(job.settings)
        out = []
        for fold in job.folds:
            delta, learn_s = job.mask(self.name, config, fold)
            out.append(Protection(fold.name, fold.tested, [delta] * len(job.probes), learn_s))
        return out


class OnTraining(UniversalMask):
    """Diagnostic: the convex mask pasted on the training photos it was learned from, each
    searched among all the person's clean probes + distractors: how well one mask fits the
    photos it has seen, beside how it carries to new photos (``convex``)."""

    def __init__(self) -> None:
        super().__init__("convex-train", "convex")

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        return [Protection(p.fold, p.tested, [p.deltas[0]] * len(job.train), p.learn_s, True)
                for p in super().protections(job, entry)]


class Refine(UniversalMask):
    """The convex mask refined on each probe alone (a mask per photo).

    Args:
        name: the condition's name.
    """

    def __init__(self, name: str = "refine") -> None:
        super().__init__(name, "convex")

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        settings = job.settings
        entry.update(refine_steps=settings.refine_steps, refine_s=[])
        config = self.config(settings)
        out = []
        for fold in job.folds:
            _, learn_s = job.mask(self.name, config, fold)
            refined, seconds = job.refined(self.name, config, fold)
            entry["refine_s"] += seconds
            out.append(Protection(fold.name, fold.tested, self.arrange(refined), learn_s))
        return out

    def arrange(self, refined: list[torch.Tensor]) -> list[torch.Tensor]:
        """Which mask each probe gets, from the probes' own refined masks (P of them)."""
        return refined


class JointRefine(UniversalMask):
    """The convex mask refined for all the person's probes at once, one mask each, with the
    mode's anti-linkage term across them (:func:`cloak.opom.refine_jointly`) and the given
    :class:`~cloak.opom.RefineRecipe`; each probe's ``refine_s`` is its share of the batch's
    seconds.

    With ``batch``, the probes are refined as ``cloak protect --refine`` refines a longer run:
    in batches of ``batch`` probes, in order, each batch pushed apart from the protected
    probes of the batches before it (``references``, :func:`cloak.opom.protected_features`).
    With the recipe's ``subspace``, each probe is pushed away from that subspace of the
    probes' clean features instead of its own clean feature (a screen); with ``training`` too,
    from that subspace of the training photos' clean features: the person's photos that the
    gallery does not hold. The name says the recipe: ``-train-center`` (or ``-center``),
    ``-draws3``, ``-si``, ``-ni``.

    Args:
        batch: probes per batch, or None for all at once.
        recipe: what to push from, DI draws per step, SI and NI (None: the plain one).
        training: take the recipe's subspace from the training photos.
    """

    def __init__(self, batch: int | None = None, recipe: RefineRecipe | None = None,
                 training: bool = False) -> None:
        recipe = recipe or RefineRecipe()
        name = "refine-joint" if batch is None else f"refine-batch{batch}"
        if recipe.subspace is not None:
            name += f"-train-{recipe.subspace}" if training else f"-{recipe.subspace}"
        name += f"-draws{recipe.draws}" if recipe.draws > 1 else ""
        name += "-si" if recipe.scale_invariance else ""
        super().__init__(name + ("-ni" if recipe.nesterov else ""), "convex")
        self.batch, self.recipe, self.training = batch, recipe, training

    def protections(self, job: IdentityJob, entry: dict[str, Any]) -> list[Protection]:
        settings = job.settings
        entry.update(refine_steps=settings.refine_steps, refine_s=[])
        config = self.config(settings)
        faces = [training_face(p.pixels, p.face) for p in job.probes]
        size = self.batch or len(faces)
        out = []
        for fold in job.folds:
            universal, learn_s = job.mask(self.name, config, fold)
            surrogates = [job.surrogates[s] for s in fold.surrogates]
            person = (protected_features(job.faces, None, surrogates, config)
                       if self.training else None)
            refine = BatchRefiner(universal, surrogates, config, settings.refine_steps,
                                  person=person, recipe=self.recipe)
            start = time.perf_counter()
            masks = [m for first in range(0, len(faces), size)
                     for m in refine(faces[first:first + size])]
            entry["refine_s"] += [(time.perf_counter() - start) / len(faces)] * len(faces)
            out.append(Protection(fold.name, fold.tested, masks, learn_s))
        return out


class ShiftedRefine(Refine):
    """Diagnostic: each probe's own refined mask, moved by ``shift`` frame pixels right and
    down (``torch.roll``; what wraps around lands in the feathered border, where the paste
    weight is about 0). How much of the per-photo gain survives a small misplacement.

    Args:
        shift: pixels in x and in y (a move of ``shift * sqrt(2)`` pixels).
    """

    def __init__(self, shift: int) -> None:
        super().__init__(f"refine-shift{shift}")
        self.shift = shift

    def arrange(self, refined: list[torch.Tensor]) -> list[torch.Tensor]:
        return [torch.roll(d, (self.shift, self.shift), dims=(-2, -1)) for d in refined]


class SwappedRefine(Refine):
    """Diagnostic: each probe gets the NEXT probe's refined mask (the same person's other
    photo; the last probe gets the first's). How much of the per-photo gain belongs to the
    photo it was fitted on."""

    def __init__(self) -> None:
        super().__init__("refine-swap")

    def arrange(self, refined: list[torch.Tensor]) -> list[torch.Tensor]:
        return refined[1:] + refined[:1]


#: Objective ablations: the convex mask with the mode's optimiser settings and only the named
#: optional terms of :data:`cloak.opom.TERMS` on (``opom`` = none: the OPOM objective alone).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "opom": (), "opom+linkage": ("linkage",), "opom+views": ("views",),
    "opom+linkage+views": ("linkage", "views")}
#: Every condition by name, in report order.
CONDITION_BY_NAME: dict[str, Condition] = {c.name: c for c in (
    Clean(), Noise(), *(UniversalMask(s, s) for s in ("center", "affine", "convex")),
    OnTraining(), Refine(), ShiftedRefine(2), ShiftedRefine(4), SwappedRefine(), JointRefine(),
    JointRefine(batch=2), JointRefine(recipe=RefineRecipe("center")),
    JointRefine(recipe=RefineRecipe("convex")),
    *(JointRefine(recipe=recipe, training=True) for recipe in (
        RefineRecipe("center"), RefineRecipe("convex"), RefineRecipe("center", draws=3),
        RefineRecipe("center", draws=3, scale_invariance=True), REFINE)),
    *(UniversalMask(name, "convex", terms) for name, terms in ABLATIONS.items()),
    UniversalMask("convex-all-photos", "convex", change={"per_step": 0}))}
#: Condition names in report order.
CONDITIONS: tuple[str, ...] = tuple(CONDITION_BY_NAME)
#: What runs when no conditions are named: the shipped mask beside clean and noise.
DEFAULT_CONDITIONS: tuple[str, ...] = ("clean", "noise", "convex")
