"""Settings of one mask optimisation (:class:`OpomConfig`) and its optional objective terms.

>>> config = OpomConfig(steps=20)
>>> with_terms(config, ["linkage"]).linkage
1.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, get_args

from cloak.subspace import SUBSPACES, Subspace

__all__ = ["DEFAULT_FEATHER", "MIN_VIEWS", "PASTE_PATHS", "PRECISIONS", "RECORDED_WHEN_ON",
           "TERMS", "TERMS_OFF", "OpomConfig", "PastePath", "Precision", "with_terms"]

#: Number formats the surrogates can run in while a mask is learned (:attr:`OpomConfig.precision`).
Precision = Literal["float32", "bfloat16"]
#: The valid :data:`Precision` values.
PRECISIONS: tuple[str, ...] = get_args(Precision)

#: How the optimiser sees the mask: through the photo's pixels (as shipped) or in the frame.
PastePath = Literal["photo", "frame"]
#: The valid :data:`PastePath` values.
PASTE_PATHS: tuple[str, ...] = get_args(PastePath)

#: Feather width in frame pixels: the mask fades to 0 over the frame's outer 24 pixels, mostly
#: hair and background that the recognizers' crops barely see. Measured against 8 px on 4 LFW
#: people: the same PSR, SSIM of the protected region 0.888 vs 0.859.
DEFAULT_FEATHER = 24.0

#: With ``views``, training photos are repeated until the optimiser sees at least this many
#: views per step (a one-photo enrolment learns from 4 views of its photo).
MIN_VIEWS = 4

#: Settings newer than the stored mask files and benchmark records, with their default value:
#: :meth:`OpomConfig.as_record` leaves them out while they have it, so what was stored before
#: them still matches.
RECORDED_WHEN_ON: dict[str, Any] = {"precision": "float32", "per_step": 0}


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
            through a random blur, down-up resize and JPEG (:class:`cloak.eot.RandomRealWorld`,
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
        precision: the number format of the surrogates' forward and backward passes while
            learning: ``"float32"``, or ``"bfloat16"`` (``torch.autocast``: convolutions and
            matrix products in bfloat16; learning was 1.2x faster on a 2-core CPU with
            AVX-512 BF16, docs/BENCHMARKS.md "protect-timing"; the features and the objective
            stay float32). The mask differs from a float32 one
            within the benchmark's noise (docs/BENCHMARKS.md "issue16-screens-2"). Recorded
            only when not float32 (:meth:`as_record`).
        seed: seeds the random start and DI; the same seed gives the same mask.
        per_step: training photos (views, with ``views``) each step learns from: 0 = all of
            them every step; k > 0 = k of them, taken in turn from a fresh seeded shuffle of
            all of them whenever the shuffle runs out, so every photo is seen equally often
            and a step costs k photos' passes however many photos there are. Balanced mode
            learns from 5 of 10 photos per step, half the cost, protecting the same within
            the benchmark's noise (docs/BENCHMARKS.md "issue14-per-step"). Recorded only
            when not 0 (:meth:`as_record`).
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
    precision: Precision = "float32"
    seed: int = 0
    per_step: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not (self.eps > 0 and math.isfinite(self.eps)):
            problems.append(f"eps must be > 0, got {self.eps}")
        if self.per_step < 0:
            problems.append(f"per_step must be >= 0, got {self.per_step}")
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
        if self.paste not in PASTE_PATHS:
            problems.append(f"unknown paste path {self.paste!r}; choose one of {PASTE_PATHS}")
        if self.feather < 0:
            problems.append(f"feather must be >= 0, got {self.feather}")
        for name in ("linkage", "anchor"):
            weight = getattr(self, name)
            if not (weight >= 0 and math.isfinite(weight)):
                problems.append(f"{name} weight must be >= 0, got {weight}")
        if self.precision not in PRECISIONS:
            problems.append(f"unknown precision {self.precision!r}; choose one of {PRECISIONS}")
        if problems:
            raise ValueError("invalid OPOM settings: " + "; ".join(problems))

    def as_record(self) -> dict[str, Any]:
        """The settings as a dict (``dataclasses.asdict``), without those of
        :data:`RECORDED_WHEN_ON` that have their default: what mask files and benchmark records
        store.

        >>> "precision" in OpomConfig().as_record()
        False
        >>> OpomConfig(precision="bfloat16").as_record()["precision"]
        'bfloat16'
        """
        return {k: v for k, v in asdict(self).items()
                if not (k in RECORDED_WHEN_ON and v == RECORDED_WHEN_ON[k])}


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

