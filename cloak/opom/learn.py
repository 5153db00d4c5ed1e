"""The OPOM optimiser: :func:`learn_mask` (one universal mask) and :func:`refine_mask` (that
mask fitted to one photo); :mod:`cloak.opom.refine` refines it for many photos together.

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
from cloak.steps import (
    InputDiversity,
    Momentum,
    PhotoTurns,
    fim_step,
    random_start,
    translation_invariance,
)
from cloak.subspace import Subspace
from cloak.views import RandomViews

if TYPE_CHECKING:
    from attackers.recognizers.base import Recognizer

__all__ = ["learn_mask", "refine_mask"]

def precision_autocast(config: OpomConfig,
                       device: torch.device) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``config.precision`` on ``device`` (nothing for float32)."""
    if config.precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, config.precision))


def entropy_gradient(inputs: torch.Tensor, member: AttributeSurrogate,
                     diversity: InputDiversity, config: OpomConfig,
                     per_photo: bool) -> torch.Tensor:
    """Gradient of one attribute predictor's :func:`attribute_entropy` with respect to
    ``inputs`` (N, 3, FRAME_SIZE, FRAME_SIZE), through its own DI draw, under ``config``'s
    precision: of the photos' mean entropy, or with ``per_photo`` of their sum (each photo's
    gradient then its own entropy's, whatever N)."""
    with precision_autocast(config, inputs.device):
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
        with precision_autocast(config, inputs.device):
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
        grad = entropy_gradient(inputs, member, diversity, config, per_photo=False)
        if balance:
            grad = grad / grad.abs().mean().clamp_min(1e-12)
        total += grad * (attribute_weight / norm)
    return total, sum(losses) / len(losses)


class Prepared(NamedTuple):
    """What :func:`prepare` returns (shared by :mod:`cloak.opom.refine`)."""

    device: torch.device
    faces: list[TrainingFace]
    generator: torch.Generator
    features: list[torch.Tensor]
    diversity: InputDiversity
    eot: RandomRealWorld | None


def prepare(faces: Sequence[TrainingFace], surrogates: Sequence[Recognizer],
            config: OpomConfig, others: Sequence[torch.nn.Module] = ()) -> Prepared:
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
    return Prepared(device, faces, generator, features,
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
    device, faces, generator, features, diversity, eot = prepare(
        faces, surrogates, config, [a.predictor for a in attribute_surrogates])
    if anchors is not None:
        anchors = [a.to(device) for a in anchors]
    momentum = Momentum(config.momentum) if config.momentum > 0 else None
    delta = (random_start((3, FRAME_SIZE, FRAME_SIZE), config.eps, generator) if start is None
             else start.detach().float().clamp(-config.eps, config.eps)).to(device)
    views = RandomViews(generator) if config.views else None
    pool = list(faces) * (math.ceil(MIN_VIEWS / len(faces)) if views is not None else 1)
    turns = PhotoTurns(len(pool), config.per_step, generator)
    for step in range(config.steps):
        delta.requires_grad_(True)
        kind = config.subspace
        if kind == "convex" and step < config.warmup:
            kind = "center"
        chosen = [pool[i] for i in turns.next()]
        seen = chosen if views is None else [views(f) for f in chosen]
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
