"""The OPOM optimiser: one universal mask per person, learned against a surrogate ensemble.

OPOM (Zhong & Deng, "OPOM: Customized Invisible Cloak towards Face Privacy Protection", TPAMI
2022) learns one perturbation ``delta`` from a handful of a person's photos that pushes every
protected feature away from the person's feature subspace (:mod:`cloak.subspace`). Here the mask
lives in the canonical frame (:mod:`attackers.frame`), 3 x 224 x 224 in pixel levels, and the
ensemble shares it: each surrogate sees the protected frame through its own differentiable crop.

Each step (:func:`learn_mask`):

1. protected frames: the mask is carried into each training photo and back (``paste="photo"``,
   the path that ships: frame -> photo pixels by :func:`~cloak.faces.align.paste_back`, bilinear
   and feathered -> re-aligned by :func:`~cloak.faces.align.to_frame`), or added in the frame
   directly (``paste="frame"``, feathered the same way);
2. per surrogate: input diversity (DI), ONE batched forward and backward, loss = mean over the
   photos of the squared distance of each protected feature to the person's clean features
   ``A_s`` (class center for the first ``warmup`` steps when the subspace is the convex hull: a
   clean feature is a vertex of the hull, where the distance and its gradient are 0); each
   surrogate's gradient is scaled to unit mean magnitude (``balance``) and the S are averaged;
3. gradient with respect to the shared mask -> TI smoothing -> MI momentum -> FIM sign step ->
   projection to the eps ball (:mod:`cloak.steps`).

The attribute term (``--protect-attributes``, optional): white-box attribute predictors
(:class:`AttributeSurrogate`, from :mod:`attackers.attributes`) join the ensemble as further
members, each pushed towards uninformative outputs on the attributes it is given: its loss,
maximised, is :func:`attribute_entropy`, the mean over photos and attributes of the entropy of
the predicted distribution (sex: male/female, age: 7 age groups, race: 5 classes) divided by its
maximum (``log K``), so 1 = a uniform guess. Each predictor gets its own DI draw and one batched
forward and backward like a recognizer, its gradient is balanced to unit mean magnitude the same
way, and the members are averaged with weights 1 (recognizer) and ``attribute_weight``
(predictor): ``g = (sum_s g_s + w sum_a g_a) / (S + w A)``. Each mode names its predictors per
attribute (:attr:`Mode.attribute_surrogates`).

What it buys (``scripts/attribute_benchmark.py --datasets balanced --limit 100 --lfw-limit 0
--conditions clean cloak cloak-attr --protect-attributes sex --threads 1``: 99 UTKFace faces,
one-photo cloaks, mode fast, eps 8, w 1, every predictor scored only on cloaks it was not in):
black-box sex accuracy clean / identity cloak / with the term: age-gender 0.83 / 0.71 / 0.67,
faceres-attributes 0.76 / 0.61 / 0.59, gear 0.72 / 0.71 / 0.71 (95% intervals about +/- 0.09).
The identity cloak alone does most of it; the term adds 2-4 points on the first two, within
noise, and nothing on gear (which was trained on UTKFace), nor with 40 steps or w = 3 (scratch,
60 faces). White-box, the term drives the predictors in the loss to chance (0.52-0.63). Cost:
the black-box cosine of the clean to the cloaked face rises from 0.45 to 0.48-0.51 (sface) and
from 0.32 to 0.35-0.39 (mobilefacenet), i.e. weaker identity protection; SSIM is unchanged
(0.870 vs 0.871-0.873).

Modes (:data:`MODES`). One step on 10 photos costs, in CPU seconds of one thread on this
project's 2-core machine: dlib-resnet 0.24, faceres 0.47, mobilefacenet 0.64, sface 0.76,
facenet 0.84, plus 0.08 for the photo paste path. So ``fast`` (facenet, dlib-resnet; 20 steps)
takes about 25 s, ``balanced`` (the default: facenet, dlib-resnet, faceres, mobilefacenet; 40
steps) about 90 s and ``strong`` (all five; 100 steps; EOT) about 6 min on one thread; two
idle cores are faster. All use eps 8, steps of 2 levels, the convex hull, the photo paste path,
MI (mu 1), DI on every image (p 1), TI (7 px kernel), balanced gradients, and the optional
objective terms anti-linkage (weight 1, :mod:`cloak.objective`) and random views
(:mod:`cloak.views`): on 8 LFW people in balanced mode they moved mean PSR@1 from 0.41 to 0.47
and protected-vs-protected PSR@1 from 0.09 to 0.14 (docs/BENCHMARKS.md, "opom-ablation"),
within the intervals of so few people. ``strong`` also
learns through random blur, resize and JPEG (``eot``): on 10 LFW people (docs/BENCHMARKS.md,
"Robustness") EOT kept mean PSR@1 after a 0.25x down-up resize at 0.52 against 0.38 without it,
for 0.32 against 0.37 on untouched photos (within each other's intervals) and about 1.2x the
learning time; JPEG 75 leaves both masks at 0.96-0.98 of their untouched PSR. Image quality is
unchanged: on the same 10 people in the OPOM protocol ("opom-eot" vs "opom") SSIM 0.933 vs
0.929, PSNR 34.9 vs 35.1 dB, PSR@1 0.336 vs 0.348.

What the settings buy (scratch study on 4 LFW people, 30 steps, center subspace, 10 photos
learn, 5 new photos probed against 2,679 distractors; PSR@1 on the recognizers left out):
step 2 + TI 7 + DI 1 gave 0.375 vs 0.30 (surrogates facenet, faceres, mobilefacenet; tested
dlib, sface) and 0.25 vs 0.23 (surrogates dlib, sface; tested facenet, faceres,
mobilefacenet): small, within the spread between people. Neutral or worse: nearest-neighbour
paste, a 15 px TI kernel, a pull towards the population's mean face, a per-photo
feature-disruption term, random mask-to-face jitter, flips and photometric jitter of the
training faces. The limit is generalisation to new photos, not optimisation: on a white-box
surrogate the mask moves the training photos' cosine to the class center by -0.93 but new
photos' by only -0.54.

>>> # faces = [training_face(photo, face) for photo, face in pairs]
>>> # surrogates = [attackers.load(n) for n in MODES["balanced"].surrogates]
>>> # delta = learn_mask(faces, surrogates, MODES["balanced"].config)   # (3, 224, 224)
>>> # out = protect_photo(photo, [face], delta)                        # (3, H, W) in [0, 255]
>>> # plan = MODES["balanced"].attribute_plan(["sex"])      # {"age-gender": ("sex",), ...}
>>> # hide = [AttributeSurrogate(attackers.load(n), a) for n, a in plan.items()]
>>> # delta = learn_mask(faces, surrogates, config, attribute_surrogates=hide)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F

from attackers.frame import FRAME_SIZE
from cloak.faces.align import feather_weight, invert, paste_back, to_frame
from cloak.objective import feature_gradient
from cloak.robust import RandomRealWorld
from cloak.steps import InputDiversity, Momentum, fim_step, random_start, translation_invariance
from cloak.subspace import SUBSPACES, Subspace
from cloak.views import RandomViews

if TYPE_CHECKING:
    from attackers.attributes.base import AttributePredictor
    from attackers.recognizers.base import Recognizer
    from cloak.faces import AlignedFace

__all__ = [
    "ATTRIBUTES",
    "DEFAULT_ATTRIBUTE_WEIGHT",
    "DEFAULT_FEATHER",
    "MIN_VIEWS",
    "MODES",
    "TERMS",
    "TERMS_OFF",
    "AttributeSurrogate",
    "Mode",
    "OpomConfig",
    "PastePath",
    "TrainingFace",
    "attribute_entropy",
    "attribute_names",
    "learn_mask",
    "protect_photo",
    "protected_frames",
    "refine_mask",
    "training_face",
    "with_terms",
]

#: How the optimiser sees the mask: through the photo's pixels (as shipped) or in the frame.
PastePath = Literal["photo", "frame"]
_PASTE_PATHS: tuple[str, ...] = get_args(PastePath)

#: Feather width in frame pixels: the mask fades to 0 over the frame's outer 24 pixels, mostly
#: hair and background that the recognizers' crops barely see. Measured against 8 px on 4 LFW
#: people: the same PSR, SSIM of the protected region 0.888 vs 0.859.
DEFAULT_FEATHER = 24.0

#: With ``views``, training photos are repeated until the optimiser sees at least this many
#: views per step (a one-photo enrolment learns from 4 views of its photo).
MIN_VIEWS = 4

#: Region pixels per frame pixel above which a training region is downscaled (big faces).
_MAX_REGION_SCALE = 2.0
_REGION_MARGIN = 2  # photo pixels kept around the frame's footprint


@dataclass(frozen=True)
class OpomConfig:
    """Settings of one mask optimisation.

    Attributes:
        eps: L-inf budget in pixel levels (of 255).
        steps: number of update steps.
        step_size: FIM step in pixel levels.
        subspace: ``"center"``, ``"affine"`` or ``"convex"`` (:mod:`cloak.subspace`).
        warmup: steps that use the class center first when ``subspace`` is ``"convex"``.
        momentum: MI decay mu (0 = plain FIM on the raw gradient sign).
        diversity: DI probability per image and surrogate (0 = off).
        ti_kernel: TI Gaussian kernel side in pixels (0 = off; odd otherwise).
        paste: ``"photo"`` (frame -> photo -> frame, the shipped path) or ``"frame"``.
        feather: width in frame pixels over which the mask fades out at the frame border.
        balance: scale each surrogate's gradient to unit mean absolute value before averaging,
            so that no model's gradient scale decides the sign alone (False: the gradient of
            the mean loss).
        eot: expectation over transformation: every step, each protected training photo goes
            through a random blur, down-up resize and JPEG (:class:`cloak.robust.RandomRealWorld`,
            each with probability 1/2, JPEG quality 50-95) before the surrogates see it, so the
            mask is learned to survive what sharing does to a photo.
        linkage: weight of the anti-linkage term (:func:`cloak.objective.linkage_term`, the
            Gram log-determinant of the protected training features, which pushes the person's
            protected photos apart from each other), relative to the subspace term; 0 = off.
        views: learn on a random view of each training photo at every step
            (:class:`cloak.views.RandomViews`: mirror, alignment jitter, lighting); with fewer
            than :data:`MIN_VIEWS` photos, each photo is used several times (one-photo
            enrolment).
        anchor: weight of the targeted pull towards a stranger's features
            (:func:`cloak.objective.anchor_term`; :func:`learn_mask` then needs ``anchors``);
            0 = off.
        seed: seeds the random start and DI; the same seed gives the same mask.
    """

    eps: float = 8.0
    steps: int = 40
    step_size: float = 2.0
    subspace: Subspace = "convex"
    warmup: int = 5
    momentum: float = 1.0
    diversity: float = 1.0
    ti_kernel: int = 7
    paste: PastePath = "photo"
    feather: float = DEFAULT_FEATHER
    balance: bool = True
    eot: bool = False
    linkage: float = 0.0
    views: bool = False
    anchor: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not (self.eps > 0 and math.isfinite(self.eps)):
            problems.append(f"eps must be > 0, got {self.eps}")
        if self.steps < 0 or self.warmup < 0:
            problems.append(f"steps and warmup must be >= 0, got {self.steps}, {self.warmup}")
        if not self.step_size > 0:
            problems.append(f"step_size must be > 0, got {self.step_size}")
        if self.subspace not in SUBSPACES:
            problems.append(f"unknown subspace {self.subspace!r}; choose one of {SUBSPACES}")
        if self.momentum < 0:
            problems.append(f"momentum must be >= 0, got {self.momentum}")
        if not 0.0 <= self.diversity <= 1.0:
            problems.append(f"diversity must be in [0, 1], got {self.diversity}")
        if self.ti_kernel != 0 and (self.ti_kernel < 3 or self.ti_kernel % 2 == 0):
            problems.append(f"ti_kernel must be 0 or odd and >= 3, got {self.ti_kernel}")
        if self.paste not in _PASTE_PATHS:
            problems.append(f"unknown paste path {self.paste!r}; choose one of {_PASTE_PATHS}")
        if self.feather < 0:
            problems.append(f"feather must be >= 0, got {self.feather}")
        for name in ("linkage", "anchor"):
            weight = getattr(self, name)
            if not (weight >= 0 and math.isfinite(weight)):
                problems.append(f"{name} weight must be >= 0, got {weight}")
        if problems:
            raise ValueError("invalid OPOM settings: " + "; ".join(problems))


#: The objective's optional terms (fields of :class:`OpomConfig`) and the value each takes when
#: it is switched on without a value of its own (:func:`with_terms`).
TERMS: dict[str, float | bool] = {"linkage": 1.0, "views": True, "anchor": 1.0}
#: What a term's field holds when the term is off (also what a mask file that predates the term
#: implies).
TERMS_OFF: dict[str, float | bool] = {"linkage": 0.0, "views": False, "anchor": 0.0}


def with_terms(config: OpomConfig, terms: Iterable[str]) -> OpomConfig:
    """``config`` with exactly the named optional terms on (an ablation).

    A named term keeps ``config``'s value when it is on there, else takes :data:`TERMS`'s; the
    other terms are switched off.

    >>> c = with_terms(OpomConfig(linkage=2.0, views=True), ["linkage"])
    >>> c.linkage, c.views
    (2.0, False)

    Raises:
        ValueError: an unknown term (the message lists the valid ones).
    """
    chosen = set(terms)
    unknown = sorted(chosen - set(TERMS))
    if unknown:
        raise ValueError(f"unknown objective terms {unknown}; choose from {', '.join(TERMS)}")
    values = {name: (getattr(config, name) if getattr(config, name) != TERMS_OFF[name]
                     else TERMS[name]) if name in chosen else TERMS_OFF[name] for name in TERMS}
    return replace(config, **values)


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


@dataclass(frozen=True)
class Mode:
    """A named preset: the optimiser settings and the zoo names of the surrogates to load.

    Attributes:
        config: the optimiser settings.
        surrogates: zoo names of the white-box recognizers.
        attribute_surrogates: per attribute of :data:`ATTRIBUTES`, the zoo names of the
            white-box attribute predictors that the attribute term pushes on it (used only when
            attributes are protected, :meth:`attribute_plan`).
    """

    config: OpomConfig
    surrogates: tuple[str, ...]
    attribute_surrogates: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def attribute_plan(self, attributes: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Which predictor is pushed on which of ``attributes``.

        Args:
            attributes: attributes to protect (subset of :data:`ATTRIBUTES`; may be empty).

        Returns:
            zoo name -> its attributes (in :data:`ATTRIBUTES` order), predictors in the order
            they first appear in :attr:`attribute_surrogates`; empty when ``attributes`` is.

        Raises:
            ValueError: an unknown attribute, or one this mode has no predictor for.
        """
        chosen = attribute_names(attributes)
        uncovered = [a for a in chosen if not self.attribute_surrogates.get(a)]
        if uncovered:
            raise ValueError(f"this mode has no attribute predictor for {uncovered}")
        plan: dict[str, list[str]] = {}
        for attribute in chosen:
            for name in self.attribute_surrogates[attribute]:
                plan.setdefault(name, []).append(attribute)
        order = [n for a in ATTRIBUTES for n in self.attribute_surrogates.get(a, ())]
        return {n: tuple(plan[n]) for n in sorted(plan, key=order.index)}


#: Attribute predictors per attribute: every white-box one of the zoo that predicts it
#: (measured cost of one step on 10 photos, CPU seconds of one thread: age-gender 0.3,
#: faceres-attributes 0.45, gear 1.1).
_ATTRIBUTE_SURROGATES: dict[str, tuple[str, ...]] = {
    "sex": ("age-gender", "faceres-attributes", "gear"),
    "age": ("age-gender", "faceres-attributes", "gear"),
    "race": ("gear",),
}

#: The presets behind ``--mode``; ``"balanced"`` is the default.
MODES: dict[str, Mode] = {
    "fast": Mode(OpomConfig(steps=20, linkage=1.0, views=True), ("facenet", "dlib-resnet"),
                 _ATTRIBUTE_SURROGATES),
    "balanced": Mode(OpomConfig(steps=40, linkage=1.0, views=True),
                     ("facenet", "dlib-resnet", "faceres", "mobilefacenet"),
                     _ATTRIBUTE_SURROGATES),
    "strong": Mode(OpomConfig(steps=100, eot=True, linkage=1.0, views=True),
                   ("facenet", "dlib-resnet", "faceres", "mobilefacenet", "sface"),
                   _ATTRIBUTE_SURROGATES),
}


@dataclass
class TrainingFace:
    """A training photo's face: the photo region the canonical frame covers, and its alignment.

    Attributes:
        region: (3, h, w) float32 RGB in [0, 255], the photo cropped to the frame's footprint
            (downscaled when the face is much larger than the frame, so big photos stay cheap).
        matrix: (2, 3) float32 similarity taking region pixels to frame pixels.
    """

    region: torch.Tensor
    matrix: torch.Tensor

    def clean_frame(self) -> torch.Tensor:
        """The unprotected canonical frame, (3, FRAME_SIZE, FRAME_SIZE) in [0, 255]."""
        return to_frame(self.region, self.matrix[None])[0].clamp(0, 255)


def _compose(outer: torch.Tensor, inner: torch.Tensor) -> torch.Tensor:
    """``outer o inner`` for (2, 3) affine matrices (float64)."""
    bottom = torch.tensor([[0.0, 0.0, 1.0]], dtype=torch.float64)
    full = torch.cat([outer.double(), bottom]) @ torch.cat([inner.double(), bottom])
    return full[:2]


def training_face(photo_pixels: torch.Tensor, face: AlignedFace) -> TrainingFace:
    """Crop a photo to the footprint of ``face``'s canonical frame, keeping the alignment.

    The region is the bounding box of the frame's corners mapped into the photo, plus 2 pixels,
    clipped to the photo. When a region pixel is smaller than half a frame pixel (a face more
    than twice the frame's size), the region is downscaled (bilinear with antialiasing) to two
    region pixels per frame pixel: the mask is then still upsampled into the region, as it is into
    the full photo, and the optimisation stays cheap on large photos.

    Args:
        photo_pixels: (3, H, W) float32 RGB in [0, 255], the whole photo.
        face: one of the photo's aligned faces (its ``matrix`` maps photo pixels to the frame).

    Returns:
        the :class:`TrainingFace`.
    """
    if photo_pixels.ndim != 3 or photo_pixels.shape[0] != 3:
        raise ValueError(f"photo_pixels must be (3, H, W), got {tuple(photo_pixels.shape)}")
    h, w = photo_pixels.shape[-2:]
    matrix = face.matrix.double()
    last = FRAME_SIZE - 1.0
    corners = torch.tensor([[0.0, 0.0, 1.0], [last, 0.0, 1.0], [0.0, last, 1.0],
                            [last, last, 1.0]], dtype=torch.float64)
    xy = corners @ invert(matrix[None])[0].T
    x0 = max(0, math.floor(xy[:, 0].min().item()) - _REGION_MARGIN)
    y0 = max(0, math.floor(xy[:, 1].min().item()) - _REGION_MARGIN)
    x1 = min(w, math.ceil(xy[:, 0].max().item()) + _REGION_MARGIN + 1)
    y1 = min(h, math.ceil(xy[:, 1].max().item()) + _REGION_MARGIN + 1)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the face's frame does not overlap the photo")
    region = photo_pixels[:, y0:y1, x0:x1].float()
    shift = torch.tensor([[1.0, 0.0, x0], [0.0, 1.0, y0]], dtype=torch.float64)
    matrix = _compose(matrix, shift)                                  # region -> frame
    frame_per_region = math.sqrt(abs(torch.linalg.det(matrix[:, :2]).item()))
    factor = _MAX_REGION_SCALE * frame_per_region                     # new / old region size
    if factor < 1.0:
        size = (max(1, round((y1 - y0) * factor)), max(1, round((x1 - x0) * factor)))
        region = F.interpolate(region[None], size=size, mode="bilinear", antialias=True,
                               align_corners=False)[0].clamp(0, 255)
        sx, sy = (x1 - x0) / size[1], (y1 - y0) / size[0]
        # small pixel centre x_s lies at (x_s + 0.5) * sx - 0.5 in the region (half-pixel grid)
        up = torch.tensor([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]],
                          dtype=torch.float64)
        matrix = _compose(matrix, up)
    return TrainingFace(region.contiguous(), matrix.float())


def protected_frames(faces: Sequence[TrainingFace], delta: torch.Tensor, paste: PastePath,
                     feather: float = DEFAULT_FEATHER,
                     transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     ) -> torch.Tensor:
    """The canonical frames of the training faces with the mask applied, differentiably.

    Args:
        faces: the training faces.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels.
        paste: ``"photo"``: paste the mask into each region (bilinear, feathered, clipped to
            [0, 255]) and re-align the region; ``"frame"``: add the feathered mask to each clean
            frame and clip to [0, 255].
        feather: feather width in frame pixels.
        transform: applied to each protected image where a shared photo would meet it: to each
            protected region (1, 3, h, w) before re-alignment (``"photo"``), or to the protected
            frames (``"frame"``); differentiable, [0, 255] in and out (e.g. EOT).

    Returns:
        (N, 3, FRAME_SIZE, FRAME_SIZE) float32 in [0, 255], differentiable in ``delta``.
    """
    keep: Callable[[torch.Tensor], torch.Tensor] = transform or (lambda images: images)
    if paste == "frame":
        clean = torch.stack([f.clean_frame() for f in faces])
        return keep((clean + delta * feather_weight(feather).to(delta)).clamp(0, 255))
    if paste != "photo":
        raise ValueError(f"unknown paste path {paste!r}; choose one of {_PASTE_PATHS}")
    frames = []
    for face in faces:
        region = paste_back(face.region, delta, face.matrix[None], feather=feather,
                            mode="bilinear")
        frames.append(to_frame(keep(region[None])[0], face.matrix[None])[0])
    return torch.stack(frames)


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
        z = surrogate.embed(diversity(inputs))
        v, loss = feature_gradient(z, clean_features, kind, linkage=config.linkage,
                                   anchor=None if anchors is None else anchors[s],
                                   anchor_weight=config.anchor)
        (grad,) = torch.autograd.grad(z, inputs, grad_outputs=v)
        if balance:
            grad = grad / grad.abs().mean().clamp_min(1e-12)
        total += grad / norm
        losses.append(loss)
    for member in attribute_surrogates:
        outputs = member.predictor.predict(diversity(inputs))
        (grad,) = torch.autograd.grad(attribute_entropy(outputs, member.attributes).mean(),
                                      inputs)
        if balance:
            grad = grad / grad.abs().mean().clamp_min(1e-12)
        total += grad * (attribute_weight / norm)
    return total, sum(losses) / len(losses)


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
    DI draw from one ``torch.Generator`` seeded with it; without attribute surrogates the mask
    is the one learned before the attribute term existed.

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
        the mask, (3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels.
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
    for model in [*surrogates, *(a.predictor for a in attribute_surrogates)]:
        model.eval()
        model.requires_grad_(False)
    generator = torch.Generator().manual_seed(config.seed)
    with torch.no_grad():
        clean = torch.stack([f.clean_frame() for f in faces])
        features = [s.embed(clean) for s in surrogates]
    diversity = InputDiversity(config.diversity, generator)
    eot = RandomRealWorld(generator=generator) if config.eot else None
    momentum = Momentum(config.momentum) if config.momentum > 0 else None
    delta = (random_start((3, FRAME_SIZE, FRAME_SIZE), config.eps, generator) if start is None
             else start.detach().float().clamp(-config.eps, config.eps))
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
        (3, FRAME_SIZE, FRAME_SIZE) float32 in [-eps, eps], pixel levels.
    """
    if steps < 1:
        raise ValueError(f"refinement needs at least one step, got {steps}")
    return learn_mask([face], surrogates, replace(config, steps=steps, views=False),
                      attribute_surrogates=attribute_surrogates,
                      attribute_weight=attribute_weight, start=universal)


def protect_photo(photo_pixels: torch.Tensor, faces: Sequence[AlignedFace], delta: torch.Tensor,
                  feather: float = DEFAULT_FEATHER, mode: str = "bilinear") -> torch.Tensor:
    """Apply a mask to the chosen faces of a photo (the shipped path, :func:`paste_back`).

    Args:
        photo_pixels: (3, H, W) float32 RGB in [0, 255].
        faces: the faces to protect (others stay untouched); may be empty.
        delta: (3, FRAME_SIZE, FRAME_SIZE) mask in pixel levels.
        feather: feather width in frame pixels.
        mode: ``"bilinear"`` or ``"nearest"`` resampling of the mask into the photo.

    Returns:
        (3, H, W) float32 in [0, 255]; pixels outside the faces' frames are the input's exactly.
        Rounding to 8 bits is the writer's job.
    """
    if not faces:
        return photo_pixels.clone()
    matrices = torch.stack([f.matrix for f in faces])
    return paste_back(photo_pixels, delta.detach(), matrices, feather=feather, mode=mode)
