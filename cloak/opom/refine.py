"""Refining a person's universal mask for many photos together (``cloak protect --refine``).

:func:`refine_jointly` gives every photo its own copy of the mask, fitted to it by the steps of
:func:`cloak.opom.learn_mask` (paste path, DI, TI, MI, FIM sign step) as its
:class:`RefineRecipe` says (what to push from, DI draws per step, scale invariance, Nesterov
look-ahead), pushes each protected feature from the person's clean features and the protected
photos apart
from EACH OTHER (anti-linkage, :func:`cloak.objective.linkage_term`); :class:`BatchRefiner`
carries that across the batches of a long run (:func:`protected_features` of earlier batches,
the :func:`nearest_references` among them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from cloak.device import module_device
from cloak.objective import linkage_term, rescaled
from cloak.opom.attributes import DEFAULT_ATTRIBUTE_WEIGHT, AttributeSurrogate
from cloak.opom.config import OpomConfig
from cloak.opom.learn import entropy_gradient, precision_autocast, prepare
from cloak.opom.training import TrainingFace, protected_frames
from cloak.steps import InputDiversity, fim_step, project, translation_invariance
from cloak.subspace import SUBSPACES, Subspace, subspace_distance

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["MAX_REFERENCES", "BatchRefiner", "RefineRecipe", "nearest_references",
           "protected_features", "refine_jointly"]


@dataclass(frozen=True)
class RefineRecipe:
    """How :func:`refine_jointly` fits each photo's mask, beyond the optimiser settings
    (``cloak protect --refine`` uses :data:`cloak.masking.REFINE`).

    Attributes:
        subspace: None to push each photo away from its own clean feature; ``"center"``,
            ``"affine"`` or ``"convex"`` to push it away from that subspace of the person's
            clean features (:func:`cloak.subspace.subspace_distance`) instead.
        draws: DI draws per member and step (>= 1): each surrogate and attribute predictor
            sees the protected photos through ``draws`` independent DI transforms and its
            gradients are averaged (a smoother, less surrogate-specific direction, at
            ``draws`` times the cost). With DI off every draw is the same and the masks equal
            those of one draw.
        scale_invariance: SI (Lin et al., ICLR 2020): each surrogate's draw ``k`` (0, 1, ...)
            sees the protected photos with their pixel values times ``0.5 ** k`` (a darker
            copy of the same face), so the averaged direction also suits other contrasts.
            With one draw it changes nothing. Attribute predictors see every draw unscaled.
        nesterov: NI (Lin et al., ICLR 2020): each step's gradient is taken at the masks
            moved ahead along the momentum, ``project(delta + step_size * mu * momentum)``,
            instead of at the masks themselves (the same cost). The first step (zero
            momentum) is unchanged.

    Raises:
        ValueError: ``draws`` below 1 or an unknown ``subspace``, when the recipe is made.
    """

    subspace: Subspace | None = None
    draws: int = 1
    scale_invariance: bool = False
    nesterov: bool = False

    def __post_init__(self) -> None:
        if self.draws < 1:
            raise ValueError(f"a refinement recipe needs at least one draw, got {self.draws}")
        if self.subspace is not None and self.subspace not in SUBSPACES:
            raise ValueError(f"unknown refinement subspace {self.subspace!r}; choose one of "
                             f"{SUBSPACES} or None")

    def settings(self) -> dict[str, Any]:
        """The recipe as the settings a protected copy's record keeps (JSON values):
        ``refine_from``, ``refine_draws``, ``refine_si``, ``refine_ni``."""
        return {"refine_from": self.subspace, "refine_draws": self.draws,
                "refine_si": self.scale_invariance, "refine_ni": self.nesterov}


def _per_photo_scale(grad: torch.Tensor) -> torch.Tensor:
    """(N, ...) -> (N, 1, ...): each photo's mean absolute value (at least 1e-12)."""
    return grad.abs().mean(tuple(range(1, grad.ndim)), keepdim=True).clamp_min(1e-12)


#: At most this many protected photos refined earlier (per surrogate, the nearest to the
#: group's clean faces) join a group's anti-linkage term in :func:`refine_jointly`: the ones a
#: face search would link first. It keeps the Gram matrix small and well conditioned (the
#: surrogates' features have 128 to 512 dimensions).
MAX_REFERENCES = 24


def nearest_references(references: torch.Tensor, clean: torch.Tensor,
                       limit: int = MAX_REFERENCES) -> torch.Tensor:
    """The ``limit`` rows of ``references`` most similar to any row of ``clean``.

    Args:
        references: (M, d) L2-normalised features (protected photos refined earlier).
        clean: (N, d) L2-normalised features (the group's clean faces).
        limit: rows kept (>= 0).

    Returns:
        (min(M, limit), d): all of ``references`` when M <= ``limit``, else the rows of highest
        cosine similarity to their nearest row of ``clean``, most similar first.
    """
    if len(references) <= limit:
        return references
    return references[(references @ clean.T).amax(1).topk(limit).indices]


def _balanced_sum(grads: Iterable[torch.Tensor], config: OpomConfig) -> torch.Tensor:
    """The sum of one member's gradients, one per DI draw (each (N, ...)), scaled to unit
    mean magnitude per photo when ``config.balance``."""
    grad = sum(grads)
    return grad / _per_photo_scale(grad) if config.balance else grad


def _push_gradient(inputs: torch.Tensor, surrogate: Recognizer, person: torch.Tensor,
                   fixed: torch.Tensor | None, subspace: Subspace | None,
                   diversity: InputDiversity, config: OpomConfig,
                   scale: float = 1.0) -> torch.Tensor:
    """One DI draw of one surrogate's refinement gradient with respect to ``inputs`` (N, 3,
    FRAME_SIZE, FRAME_SIZE), the surrogate seeing ``inputs * scale``: each protected feature
    pushed from ``person`` (N, d) own clean features when ``subspace`` is None, else from that
    subspace of ``person`` (K, d), plus ``config.linkage`` times the anti-linkage term over the
    N features and ``fixed`` (M, d) references, scaled to the push's gradient
    (:func:`refine_jointly`)."""
    with precision_autocast(config, inputs.device):
        z = surrogate.embed(diversity(inputs * scale)).float()
    leaf = z.detach().requires_grad_(True)
    pool = leaf if fixed is None or not len(fixed) else torch.cat([leaf, fixed])
    with torch.enable_grad():
        value = ((leaf - person).square().sum(1) if subspace is None
                 else subspace_distance(leaf, person, subspace))
        (v,) = torch.autograd.grad(value.mean(), leaf)
        if config.linkage > 0 and len(pool) >= 2:
            (g,) = torch.autograd.grad(linkage_term(pool), leaf)
            v = v + config.linkage * rescaled(g, v.norm())
    (grad,) = torch.autograd.grad(z, inputs, grad_outputs=v)
    return grad


def refine_jointly(faces: Sequence[TrainingFace], universal: torch.Tensor,
                   surrogates: Sequence[Recognizer], config: OpomConfig, steps: int,
                   attribute_surrogates: Sequence[AttributeSurrogate] = (),
                   attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
                   references: Sequence[torch.Tensor] | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   person: Sequence[torch.Tensor] | None = None,
                   recipe: RefineRecipe = RefineRecipe()) -> torch.Tensor:
    """The person's universal mask refined for N photos at once: one mask per photo, and the
    protected photos pushed apart from EACH OTHER (anti-linkage).

    Each photo's mask starts from ``universal`` and is pushed, as by :func:`refine_mask`, away
    from that photo's own clean feature; with ``config.linkage > 0``, each surrogate's N
    protected features, with the :func:`nearest_references` among the ``references`` (held
    fixed), are also pushed apart by :func:`cloak.objective.linkage_term`, scaled to the
    distance term's gradient as in :func:`cloak.objective.feature_gradient`. Attribute
    predictors, their weight, gradient balancing (``config.balance``, per photo) and MI
    momentum (per photo) are as in :func:`learn_mask`, and so are DI, TI, EOT (``config.eot``),
    the paste path and ``precision``; views are off (each mask fits its photo as it is). With
    one photo and no references (or linkage 0) every photo's mask is exactly what
    :func:`refine_mask` gives it. Per-photo refinement alone leaves a person's protected photos
    linked (they still match each other, docs/BENCHMARKS.md "issue16-joint"); this is the batch
    counterpart, and ``references`` carry it across batches (``cloak protect --refine``).

    Args:
        faces: N >= 1 training faces (:func:`training_face`) of one person.
        universal: the person's mask, (3, FRAME_SIZE, FRAME_SIZE) in [-eps, eps].
        surrogates: white-box recognizers, all on one device.
        config: the optimiser settings (``steps`` and ``views`` are not read).
        steps: refinement steps (>= 1).
        attribute_surrogates, attribute_weight: as for :func:`learn_mask`.
        references: per surrogate, (M_s, d_s) L2-normalised protected features of the person's
            photos refined before (constants), or None.
        progress: called after each step with ``(step, steps)``.
        person: with ``recipe.subspace``, per surrogate, (K_s, d_s) L2-normalised clean
            features of the person (constants) whose subspace that is (e.g. all the person's
            photos of a run); None: the N photos' own clean features.
        recipe: what each photo is pushed from, DI draws per step, SI and NI
            (:class:`RefineRecipe`; ``cloak protect --refine`` uses
            :data:`cloak.masking.REFINE`; docs/BENCHMARKS.md "issue16-refine-center",
            "issue16-refine-draws", "issue16-refine-si", "issue16-refine-ni").

    Returns:
        (N, 3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels, on the
        surrogates' device.
    """
    subspace, draws = recipe.subspace, recipe.draws
    if steps < 1:
        raise ValueError(f"refinement needs at least one step, got {steps}")
    if not faces or not surrogates:
        raise ValueError("refine_jointly needs at least one face and one surrogate")
    if references is not None and len(references) != len(surrogates):
        raise ValueError("refine_jointly needs one set of references per surrogate")
    if person is not None and (subspace is None or len(person) != len(surrogates)):
        raise ValueError("refine_jointly's person features need a subspace and one set per "
                         "surrogate")
    device, faces, _, features, diversity, eot = prepare(
        faces, surrogates, config, [a.predictor for a in attribute_surrogates])
    others = ([None] * len(surrogates) if references is None else
              [nearest_references(r.to(device), own) for r, own in zip(references, features,
                                                                      strict=True)])
    pushed = features if person is None else [a.to(device) for a in person]
    n = len(faces)
    norm = len(surrogates) + attribute_weight * len(attribute_surrogates)
    delta = universal.detach().float().clamp(-config.eps, config.eps).to(device)
    delta = delta[None].repeat(n, 1, 1, 1)
    momentum = torch.zeros_like(delta)
    for step in range(steps):
        at = (project(delta + config.step_size * config.momentum * momentum, config.eps)
              if recipe.nesterov else delta).requires_grad_(True)
        frames = torch.cat([protected_frames([f], d, config.paste, config.feather, eot)
                            for f, d in zip(faces, at, strict=True)])
        inputs = frames.detach().requires_grad_(True)
        total = torch.zeros_like(inputs)
        for surrogate, own, fixed in zip(surrogates, pushed, others, strict=True):
            total += _balanced_sum(
                (_push_gradient(inputs, surrogate, own, fixed, subspace, diversity, config,
                                0.5 ** k if recipe.scale_invariance else 1.0)
                 for k in range(draws)), config) / norm
        for member in attribute_surrogates:
            total += _balanced_sum(
                (entropy_gradient(inputs, member, diversity, config, per_photo=True)
                 for _ in range(draws)), config) * (attribute_weight / norm)
        (grad,) = torch.autograd.grad(frames, at, grad_outputs=total)
        grad = translation_invariance(grad, config.ti_kernel)
        momentum = config.momentum * momentum + grad / _per_photo_scale(grad)
        delta = fim_step(delta, momentum, config.step_size, config.eps)
        if progress is not None:
            progress(step + 1, steps)
    return delta.detach()


def protected_features(faces: Sequence[TrainingFace], deltas: torch.Tensor | None,
                       surrogates: Sequence[Recognizer], config: OpomConfig) -> list[torch.Tensor]:
    """Each surrogate's features of the faces protected by their own masks (no DI, no EOT):
    the references of the next :func:`refine_jointly` batch.

    Args:
        faces: N training faces, on the surrogates' device.
        deltas: (N, 3, FRAME_SIZE, FRAME_SIZE) their masks (``config``'s paste path), or None
            for faces as they are (copies read back from written copies, or clean faces).
        surrogates: white-box recognizers.
        config: ``paste`` and ``feather`` are read.

    Returns:
        per surrogate, (N, d_s) L2-normalised features.
    """
    with torch.no_grad():
        frames = (torch.stack([f.clean_frame() for f in faces]) if deltas is None else
                  torch.cat([protected_frames([f], d, config.paste, config.feather)
                             for f, d in zip(faces, deltas, strict=True)]))
        return [s.embed(frames).float() for s in surrogates]


class BatchRefiner:
    """Refines a person's universal mask for a run's photos, batch after batch
    (:func:`refine_jointly`): each batch is pushed apart from the protected faces of the
    batches before it and of any faces :meth:`remember` was given, so that anti-linkage holds
    across batches (``cloak protect --refine``). The features it keeps stay in memory.

    Args:
        universal: the person's mask, (3, FRAME_SIZE, FRAME_SIZE) in [-eps, eps].
        surrogates, config, steps, attribute_surrogates, attribute_weight, person, recipe: as
            for :func:`refine_jointly`.
    """

    def __init__(self, universal: torch.Tensor, surrogates: Sequence[Recognizer],
                 config: OpomConfig, steps: int,
                 attribute_surrogates: Sequence[AttributeSurrogate] = (),
                 attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
                 person: Sequence[torch.Tensor] | None = None,
                 recipe: RefineRecipe = RefineRecipe()) -> None:
        self.universal, self.surrogates, self.config, self.steps = (universal, surrogates,
                                                                    config, steps)
        self.attribute_surrogates, self.attribute_weight = attribute_surrogates, attribute_weight
        self.person, self.recipe = person, recipe
        self.references: list[torch.Tensor] | None = None

    def __call__(self, faces: Sequence[TrainingFace],
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """(N, 3, FRAME_SIZE, FRAME_SIZE) float32 on the surrogates' device: the mask refined
        for each of N faces, together (``progress`` as for :func:`refine_jointly`); the
        protected faces are remembered for later batches."""
        deltas = refine_jointly(faces, self.universal, self.surrogates, self.config, self.steps,
                                self.attribute_surrogates, self.attribute_weight,
                                references=self.references, progress=progress,
                                person=self.person, recipe=self.recipe)
        self.remember(faces, deltas)
        return deltas

    def remember(self, faces: Sequence[TrainingFace], deltas: torch.Tensor | None = None) -> None:
        """Push later batches away from these faces too: protected by ``deltas`` (N, 3,
        FRAME_SIZE, FRAME_SIZE), or already protected (None: cut from written copies)."""
        self.references = self._joined(self.references, faces, deltas)

    def add_person(self, faces: Sequence[TrainingFace]) -> None:
        """Add these clean faces to the ``person`` features whose ``recipe.subspace`` later batches
        are pushed away from (call it for each of the person's photos, then refine)."""
        self.person = self._joined(self.person, faces, None)

    def _joined(self, kept: Sequence[torch.Tensor] | None, faces: Sequence[TrainingFace],
                deltas: torch.Tensor | None) -> list[torch.Tensor] | None:
        """Per surrogate, ``kept``'s features followed by those of ``faces``
        (:func:`protected_features`)."""
        if not faces:
            return None if kept is None else list(kept)
        device = module_device(self.surrogates[0])
        features = protected_features([f.to(device) for f in faces], deltas, self.surrogates,
                                      self.config)
        return (features if kept is None else
                [torch.cat(pair) for pair in zip(kept, features, strict=True)])
