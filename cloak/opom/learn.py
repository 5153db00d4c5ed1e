"""The OPOM optimiser: :func:`learn_mask` (one universal mask) and :func:`refine_mask`.

Each step of :func:`learn_mask`:

1. protected frames (:func:`~cloak.opom.training.protected_frames`): the mask is carried into
   each training photo and back (``paste="photo"``, the path that ships: frame -> photo pixels
   by :func:`~cloak.faces.align.paste_back`, bilinear and feathered -> re-aligned by
   :func:`~cloak.faces.align.to_frame`), or added in the frame directly (``paste="frame"``,
   feathered the same way);
2. per surrogate: input diversity (DI), ONE batched forward and backward, loss = mean over the
   photos of the squared distance of each protected feature to the person's clean features
   ``A_s`` (class center for the first ``warmup`` steps when the subspace is the convex hull: a
   clean feature is a vertex of the hull, where the distance and its gradient are 0); each
   surrogate's gradient is scaled to unit mean magnitude (``balance``) and the S are averaged;
3. gradient with respect to the shared mask -> TI smoothing -> MI momentum -> FIM sign step ->
   projection to the eps ball (:mod:`cloak.steps`).

With ``config.precision`` bfloat16, every member's forward (and so its backward) runs under
``torch.autocast``; features and outputs are turned back to float32 before the objective.

With the attribute term, each attribute predictor (:class:`~cloak.opom.AttributeSurrogate`)
gets its own DI draw and one batched forward and backward like a recognizer, its gradient is
balanced to unit mean magnitude the same way, and the members are averaged with weights 1
(recognizer) and ``attribute_weight`` (predictor): ``g = (sum_s g_s + w sum_a g_a) / (S + w A)``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

import torch

from attackers.frame import FRAME_SIZE
from cloak.device import module_device
from cloak.eot import RandomRealWorld
from cloak.objective import feature_gradient
from cloak.opom.attributes import DEFAULT_ATTRIBUTE_WEIGHT, AttributeSurrogate, attribute_entropy
from cloak.opom.config import MIN_VIEWS, OpomConfig
from cloak.opom.training import TrainingFace, protected_frames
from cloak.steps import InputDiversity, Momentum, fim_step, random_start, translation_invariance
from cloak.subspace import Subspace, subspace_distance
from cloak.views import RandomViews

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["MAX_REFERENCES", "BatchRefiner", "learn_mask", "nearest_references",
           "protected_features", "refine_jointly", "refine_mask"]

def _autocast(config: OpomConfig, device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``config.precision`` on ``device`` (nothing for float32)."""
    if config.precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, config.precision))


def _entropy_gradient(inputs: torch.Tensor, member: AttributeSurrogate,
                      diversity: InputDiversity, config: OpomConfig,
                      per_photo: bool) -> torch.Tensor:
    """Gradient of one attribute predictor's :func:`attribute_entropy` with respect to
    ``inputs`` (N, 3, FRAME_SIZE, FRAME_SIZE), through its own DI draw, under ``config``'s
    precision: of the photos' mean entropy, or with ``per_photo`` of their sum (each photo's
    gradient then its own entropy's, whatever N)."""
    with _autocast(config, inputs.device):
        outputs = member.predictor.predict(diversity(inputs))
    entropy = attribute_entropy({k: v.float() for k, v in outputs.items()}, member.attributes)
    (grad,) = torch.autograd.grad(entropy.sum() if per_photo else entropy.mean(), inputs)
    return grad


def _ensemble_gradient(frames: torch.Tensor, surrogates: Sequence[Recognizer],
                       features: Sequence[torch.Tensor], kind: Subspace,
                       diversity: InputDiversity, config: OpomConfig,
                       anchors: Sequence[torch.Tensor] | None = None,
                       attribute_surrogates: Sequence[AttributeSurrogate] = (),
                       attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
                       ) -> tuple[torch.Tensor, float]:
    """Gradient of the ensemble objective with respect to the protected frames.

    Each member (S recognizers, then A attribute predictors) gets its own DI draw and one
    batched forward and backward; a recognizer's objective is the subspace term plus
    ``config``'s anti-linkage and anchor terms, combined in feature space
    (:func:`cloak.objective.feature_gradient`); each member's gradient is scaled to unit mean
    absolute value when ``config.balance``. The members are averaged with weight 1 per
    recognizer and ``attribute_weight`` per predictor: ``(sum_s g_s + w sum_a g_a) / (S + w A)``
    (without ``balance``, the gradient of the same weighted mean of the losses).

    Args:
        frames: (N, 3, FRAME_SIZE, FRAME_SIZE) protected frames in [0, 255], detached.
        surrogates: S white-box recognizers; ``features[s]`` their clean features (n, d_s).
        kind: subspace of the loss.
        diversity: the DI module.
        config: ``balance``, ``linkage`` and ``anchor`` are read.
        anchors: per recognizer, the (d_s,) anchor feature (needed when ``config.anchor``).
        attribute_surrogates: A white-box attribute predictors; each one's loss is the mean
            over the photos of :func:`attribute_entropy` on its attributes.
        attribute_weight: w above.

    Returns:
        (gradient of the frames' shape, objective = mean over the recognizers of the mean
        distance).
    """
    inputs = frames.requires_grad_(True)
    total, losses = torch.zeros_like(frames), []
    norm = len(surrogates) + attribute_weight * len(attribute_surrogates)
    balance = config.balance
    for s, (surrogate, clean_features) in enumerate(zip(surrogates, features, strict=True)):
        with _autocast(config, inputs.device):
            z = surrogate.embed(diversity(inputs)).float()
        v, loss = feature_gradient(z, clean_features, kind, linkage=config.linkage,
                                   anchor=None if anchors is None else anchors[s],
                                   anchor_weight=config.anchor)
        (grad,) = torch.autograd.grad(z, inputs, grad_outputs=v)
        if balance:
            grad = grad / grad.abs().mean().clamp_min(1e-12)
        total += grad / norm
        losses.append(loss)
    for member in attribute_surrogates:
        grad = _entropy_gradient(inputs, member, diversity, config, per_photo=False)
        if balance:
            grad = grad / grad.abs().mean().clamp_min(1e-12)
        total += grad * (attribute_weight / norm)
    return total, sum(losses) / len(losses)


class _Prepared(NamedTuple):
    device: torch.device
    faces: list[TrainingFace]
    generator: torch.Generator
    features: list[torch.Tensor]
    diversity: InputDiversity
    eot: RandomRealWorld | None


def _prepare(faces: Sequence[TrainingFace], surrogates: Sequence[Recognizer],
             config: OpomConfig, others: Sequence[torch.nn.Module] = ()) -> _Prepared:
    """What every optimisation starts from: the models in eval mode and frozen, the faces on
    the first surrogate's device, ``config.seed``'s CPU generator, each surrogate's (n, d)
    clean features of the faces, and the DI and EOT (``config.eot``) draws on that generator."""
    for model in [*surrogates, *others]:
        model.eval()
        model.requires_grad_(False)
    device = module_device(surrogates[0])
    faces = [f.to(device) for f in faces]
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        clean = torch.stack([f.clean_frame() for f in faces])
        features = [s.embed(clean) for s in surrogates]
    return _Prepared(device, faces, generator, features,
                     InputDiversity(config.diversity, generator),
                     RandomRealWorld(generator=generator) if config.eot else None)


def learn_mask(faces: Sequence[TrainingFace], surrogates: Sequence[Recognizer],
               config: OpomConfig | None = None,
               progress: Callable[[int, int, float], None] | None = None,
               attribute_surrogates: Sequence[AttributeSurrogate] = (),
               attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
               start: torch.Tensor | None = None,
               anchors: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
    """Learn one person's universal mask (OPOM) from their training faces.

    The surrogates (and attribute surrogates) are put in eval mode and their parameters frozen
    (``requires_grad = False``). The clean features ``A_s`` (n, d_s) of each surrogate come
    from the clean frames without gradient. The result is deterministic for a given
    ``config.seed`` and attribute term (same machine, same thread count): the random start and
    DI draw from one CPU ``torch.Generator`` seeded with it. The optimisation runs on the first
    surrogate's device (:func:`cloak.device.module_device`; all models must be on it): the
    faces, ``start`` and ``anchors`` are moved there, and the draws are moved there from the
    CPU, so every device sees the same draws.

    Args:
        faces: the person's training faces (:func:`training_face`), n >= 1.
        surrogates: white-box recognizers (differentiable ``embed``).
        config: settings (default :class:`OpomConfig`).
        progress: called after each step with ``(step, steps, loss)``, where ``loss`` is the
            recognizers' objective (mean squared subspace distance) of the mask before that
            step's update.
        attribute_surrogates: white-box attribute predictors pushed towards uninformative
            outputs (the attribute term; see the module docstring), empty = off.
        attribute_weight: weight of each attribute predictor against 1 per recognizer (> 0).
        start: the mask to start from, (3, FRAME_SIZE, FRAME_SIZE) in [-eps, eps] (refining
            the person's universal mask for one photo, :func:`refine_mask`); default: a random
            start.
        anchors: per surrogate, the (d_s,) L2-normalised clean feature of the stranger the
            anchor term pulls towards (required when ``config.anchor > 0``, else ignored).

    Returns:
        the mask, (3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels, on the
        surrogates' device.
    """
    config = config or OpomConfig()
    if not faces:
        raise ValueError("learn_mask needs at least one training face")
    if not surrogates:
        raise ValueError("learn_mask needs at least one surrogate recognizer")
    blind = [s.name for s in surrogates if not s.differentiable]
    if blind:
        raise ValueError(f"surrogates must be white-box (differentiable): {blind} are black boxes")
    if not (attribute_weight > 0 and math.isfinite(attribute_weight)):
        raise ValueError(f"attribute_weight must be > 0, got {attribute_weight}")
    if start is not None and (start.shape != (3, FRAME_SIZE, FRAME_SIZE)
                              or float(start.abs().max()) > config.eps + 1e-4):
        raise ValueError(f"start must be a (3, {FRAME_SIZE}, {FRAME_SIZE}) mask within eps "
                         f"{config.eps}, got {tuple(start.shape)}")
    if config.anchor > 0 and (anchors is None or len(anchors) != len(surrogates)):
        raise ValueError("the anchor term needs one anchor feature per surrogate")
    device, faces, generator, features, diversity, eot = _prepare(
        faces, surrogates, config, [a.predictor for a in attribute_surrogates])
    if anchors is not None:
        anchors = [a.to(device) for a in anchors]
    momentum = Momentum(config.momentum) if config.momentum > 0 else None
    delta = (random_start((3, FRAME_SIZE, FRAME_SIZE), config.eps, generator) if start is None
             else start.detach().float().clamp(-config.eps, config.eps)).to(device)
    views = RandomViews(generator) if config.views else None
    pool = list(faces) * (math.ceil(MIN_VIEWS / len(faces)) if views is not None else 1)
    for step in range(config.steps):
        delta.requires_grad_(True)
        kind = config.subspace
        if kind == "convex" and step < config.warmup:
            kind = "center"
        seen = pool if views is None else [views(f) for f in pool]
        frames = protected_frames(seen, delta, config.paste, config.feather, eot)
        frame_grad, loss = _ensemble_gradient(frames.detach(), surrogates, features, kind,
                                              diversity, config,
                                              None if config.anchor == 0 else anchors,
                                              attribute_surrogates, attribute_weight)
        (grad,) = torch.autograd.grad(frames, delta, grad_outputs=frame_grad)
        grad = translation_invariance(grad, config.ti_kernel)
        if momentum is not None:
            grad = momentum(grad)
        delta = fim_step(delta, grad, config.step_size, config.eps)
        if progress is not None:
            progress(step + 1, config.steps, loss)
    return delta.detach()


def refine_mask(face: TrainingFace, universal: torch.Tensor, surrogates: Sequence[Recognizer],
                config: OpomConfig, steps: int,
                attribute_surrogates: Sequence[AttributeSurrogate] = (),
                attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT) -> torch.Tensor:
    """The person's universal mask refined for one photo (``--refine``).

    ``steps`` more OPOM steps (``config``'s settings otherwise) on this face alone, starting
    from ``universal``: the face's features are pushed away from its own clean features (the
    subspace of one point is that point), so the photo gets a mask fitted to it, as a per-photo
    cloak would, while starting from what generalises across the person's photos. The result
    is no longer universal: it belongs to this photo and is not saved as the person's mask.

    Args:
        face: the photo's face (:func:`training_face`).
        universal: the person's mask, (3, FRAME_SIZE, FRAME_SIZE) in [-eps, eps].
        surrogates, attribute_surrogates, attribute_weight: as for :func:`learn_mask`.
        config: the optimiser settings (``steps`` is replaced; ``views`` is switched off: the
            mask is fitted to this photo as it is, and anti-linkage needs two photos).
        steps: refinement steps (>= 1).

    Returns:
        (3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels, on the surrogates'
        device.
    """
    if steps < 1:
        raise ValueError(f"refinement needs at least one step, got {steps}")
    return learn_mask([face], surrogates, replace(config, steps=steps, views=False),
                      attribute_surrogates=attribute_surrogates,
                      attribute_weight=attribute_weight, start=universal)


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


def _push_gradient(inputs: torch.Tensor, surrogate: Recognizer, person: torch.Tensor,
                   fixed: torch.Tensor | None, subspace: Subspace | None,
                   diversity: InputDiversity, config: OpomConfig) -> torch.Tensor:
    """One DI draw of one surrogate's refinement gradient with respect to ``inputs`` (N, 3,
    FRAME_SIZE, FRAME_SIZE): each protected feature pushed from ``person`` (N, d) own clean
    features when ``subspace`` is None, else from that subspace of ``person`` (K, d), plus
    ``config.linkage`` times the anti-linkage term over the N features and ``fixed`` (M, d)
    references, scaled to the push's gradient (:func:`refine_jointly`)."""
    from cloak.objective import linkage_term, rescaled

    with _autocast(config, inputs.device):
        z = surrogate.embed(diversity(inputs)).float()
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
                   subspace: Subspace | None = None,
                   person: Sequence[torch.Tensor] | None = None,
                   draws: int = 1) -> torch.Tensor:
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
        subspace: None to push each photo away from its own clean feature; ``"center"``,
            ``"affine"`` or ``"convex"`` to push it away from that subspace of the person's
            clean features (:func:`cloak.subspace.subspace_distance`) instead (``cloak protect
            --refine`` pushes from the center, docs/BENCHMARKS.md "issue16-refine-center").
        person: with ``subspace``, per surrogate, (K_s, d_s) L2-normalised clean features of
            the person (constants) whose subspace that is (e.g. all the person's photos of a
            run); None: the N photos' own clean features.
        draws: DI draws per member and step: each surrogate and attribute predictor sees the
            protected photos through ``draws`` independent DI transforms and its gradients are
            averaged (a smoother, less surrogate-specific direction, at ``draws`` times the
            cost; ``cloak protect --refine`` uses :data:`cloak.masking.REFINE_DRAWS`,
            docs/BENCHMARKS.md "issue16-refine-draws"). With DI off every draw is the same and
            the masks equal those of one draw.

    Returns:
        (N, 3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels, on the
        surrogates' device.
    """
    if steps < 1 or draws < 1:
        raise ValueError(f"refinement needs at least one step and one draw, got {steps} "
                         f"steps and {draws} draws")
    if not faces or not surrogates:
        raise ValueError("refine_jointly needs at least one face and one surrogate")
    if references is not None and len(references) != len(surrogates):
        raise ValueError("refine_jointly needs one set of references per surrogate")
    if person is not None and (subspace is None or len(person) != len(surrogates)):
        raise ValueError("refine_jointly's person features need a subspace and one set per "
                         "surrogate")
    device, faces, _, features, diversity, eot = _prepare(
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
        delta.requires_grad_(True)
        frames = torch.cat([protected_frames([f], d, config.paste, config.feather, eot)
                            for f, d in zip(faces, delta, strict=True)])
        inputs = frames.detach().requires_grad_(True)
        total = torch.zeros_like(inputs)
        for surrogate, own, fixed in zip(surrogates, pushed, others, strict=True):
            grad = sum(_push_gradient(inputs, surrogate, own, fixed, subspace, diversity, config)
                       for _ in range(draws))
            if config.balance:
                grad = grad / _per_photo_scale(grad)
            total += grad / norm
        for member in attribute_surrogates:
            grad = sum(_entropy_gradient(inputs, member, diversity, config, per_photo=True)
                       for _ in range(draws))
            if config.balance:
                grad = grad / _per_photo_scale(grad)
            total += grad * (attribute_weight / norm)
        (grad,) = torch.autograd.grad(frames, delta, grad_outputs=total)
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
        surrogates, config, steps, attribute_surrogates, attribute_weight, subspace, person,
            draws: as for :func:`refine_jointly`.
    """

    def __init__(self, universal: torch.Tensor, surrogates: Sequence[Recognizer],
                 config: OpomConfig, steps: int,
                 attribute_surrogates: Sequence[AttributeSurrogate] = (),
                 attribute_weight: float = DEFAULT_ATTRIBUTE_WEIGHT,
                 subspace: Subspace | None = None,
                 person: Sequence[torch.Tensor] | None = None, draws: int = 1) -> None:
        self.universal, self.surrogates, self.config, self.steps = (universal, surrogates,
                                                                    config, steps)
        self.draws = draws
        self.attribute_surrogates, self.attribute_weight = attribute_surrogates, attribute_weight
        self.subspace, self.person = subspace, person
        self.references: list[torch.Tensor] | None = None

    def __call__(self, faces: Sequence[TrainingFace],
                 progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """(N, 3, FRAME_SIZE, FRAME_SIZE) float32 on the surrogates' device: the mask refined
        for each of N faces, together (``progress`` as for :func:`refine_jointly`); the
        protected faces are remembered for later batches."""
        deltas = refine_jointly(faces, self.universal, self.surrogates, self.config, self.steps,
                                self.attribute_surrogates, self.attribute_weight,
                                references=self.references, progress=progress,
                                subspace=self.subspace, person=self.person,
                                draws=self.draws)
        self.remember(faces, deltas)
        return deltas

    def remember(self, faces: Sequence[TrainingFace], deltas: torch.Tensor | None = None) -> None:
        """Push later batches away from these faces too: protected by ``deltas`` (N, 3,
        FRAME_SIZE, FRAME_SIZE), or already protected (None: cut from written copies)."""
        self.references = self._joined(self.references, faces, deltas)

    def add_person(self, faces: Sequence[TrainingFace]) -> None:
        """Add these clean faces to the ``person`` features whose ``subspace`` later batches
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
