"""Attribute leakage: does a cloak protect sex, age and race better than a physical face mask?

After Seneviratne et al., "Does a Face Mask Protect my Privacy?" (AJCAI 2021), with cloaks
added. Every face is shown to three attribute predictors (:data:`PREDICTORS`, all black boxes
here: the cloak is learned against identity recognizers only) under each condition of
:data:`CONDITIONS`:

- ``clean``: the photo as it is;
- ``mask-paper``, ``mask-surgical``, ``mask-cloth``: a synthetic physical mask drawn on the photo
  (:func:`evaluation.physical_masks.mask_faces`, 68 dlib landmarks; seeded per face, the same
  mask in the ``cloak+mask`` condition of that style);
- ``cloak``: an OPOM mask (:func:`cloak.opom.learn_mask`, surrogates and settings of
  ``MODES[mode]``, ``fast`` by default) pasted by :func:`cloak.opom.protect_photo`;
- ``cloak+mask-<style>``: the person wears the physical mask in the photo, then the photo is
  cloaked: the cloak of the ``cloak`` condition (learned from the clean photo or photos, as a
  universal mask is learned once and reused) is pasted into the masked photo, at the face MTCNN
  finds in the masked photo (the clean photo's alignment where it finds none, counted as
  ``cloak_on_clean_alignment``). One cloak per face or person serves every cloaked condition,
  on UTKFace and LFW alike (until 2026-11-23 UTKFace learned a separate cloak on each masked
  photo: four cloaks per face);
- ``cloak-attr`` (only when asked for; not in the default :data:`CONDITIONS`): the cloak with
  the attribute term (:class:`cloak.opom.AttributeSurrogate`, ``--protect-attributes``) on
  ``protect_attributes``, scored leave-one-out over the attribute predictors: each fold of
  :data:`ATTRIBUTE_FOLDS` learns its own cloak (same recognizers, seed and steps as ``cloak``)
  with some predictors (torch, white-box) in the loss and is scored only by the others, so no
  predictor is ever scored on a cloak it helped to make. Fold 1: age-gender and
  faceres-attributes in the loss (sex, age), gear scored; fold 2: gear in the loss (sex, age
  and race), age-gender and faceres-attributes scored. Race is predicted by gear alone, so it
  is pushed only in fold 2 and scored only in fold 1 (where no race predictor is in the loss):
  the race row of ``cloak-attr`` measures the side effect of the sex/age term, not race
  protection. The ``cloak-attr`` row takes each predictor's figures from the fold that held it
  out; every fold also stores all predictors' outputs (white-box ones included, reported as
  such). Its identity cost: per fold and for ``cloak``, the cosine between the clean and the
  protected face's features on black-box recognizers (``identity_recognizers``, sharing no
  weights with any surrogate), and the SSIM of the protected photo to the clean one.

Every condition's photo is rounded to 8 bits, as a written file would be, and the face is
detected and aligned again (MTCNN, the face nearest the centre), as an attacker would do. A face
not found again is counted per condition (``not_redetected``) and still predicted, on the clean
photo's alignment (an attacker who knows where the face is): attribute metrics are thus never
flattered by a detector miss, and the count says how often an attacker would have had no face.

UTKFace (``utkface/balanced`` and ``utkface/random``; labels in the file names, one photo per
person): each 200x200 chip gets a ``pad``-pixel border (black by default, ``pad_mode``) before
MTCNN; without it MTCNN puts the eyes on the eyebrows. The attacker pads the same way. Masks are
drawn on the padded photo and cropped back to the chip; the cloak works on the chip itself (as
the tool would on a 200x200 photo). UTKFace has one photo per person, so each face's cloak is
learned from that single photo and applied to it: a one-photo cloak, the most favourable case
for the cloak (it is tested on its training photo). Faces are taken in a fixed pseudo-random
order (SHA-256 of the path inside the dataset), so ``limit`` gives a sample that mixes sexes,
races and ages. A file whose name does not parse (one in ``random``) is skipped and listed; a
face MTCNN does not find on the clean chip is counted (``not_detected``); a face whose physical
mask fails (landmarks) is counted per style (``mask_failed``). Metrics are computed on the faces
that have every condition (``scored``), so all conditions compare the same faces:
:func:`evaluation.attribute_metrics.attribute_report` gives sex accuracy, race accuracy (gear),
age MAE, 7-bin age accuracy, each with its baseline (majority share; MAE of the median age),
95% percentile-bootstrap intervals over faces (the same draws for every condition), the privacy
vulnerability index (PVI) and its relative reduction against ``clean``.

LFW (no attribute labels): :func:`evaluation.protocol.split_photos` as in the OPOM benchmark
(per identity, sorted, the first ``n_train`` photos with a face learn the cloak, the next
``n_probe`` are probes). One cloak per person, learned from the clean training photos, is
pasted into every probe (masked or not). The predictions on the clean probes are the reference;
per condition the flip rates of the predicted sex, race and age bin and the mean shift of the
predicted age are reported, with intervals over probes. Identity leakage on the same photos:
each condition's probe frame (the one the predictors saw) is searched by the black-box
recognizers (:meth:`AttributeSettings.lfw_recognizers`: every recognizer of the OPOM
benchmark that is not one of the cloak's surrogates) in the OPOM benchmark's gallery (the
person's other clean probes + the LFW distractors, :func:`evaluation.opom_benchmark.
distractor_features`); PSR@1 per recognizer and their mean, 95% bootstrap intervals over
identities. Unlike the OPOM benchmark, a probe whose face is not found again is searched with
the clean photo's alignment (not counted as protected), so these PSR are never flattered by a
detector miss. ``cloak-attr`` gets no identity PSR (faceres-attributes shares faceres's
weights); its identity cost is the cosine table.

Every finished face (UTKFace) or identity (LFW) is written to
``cache_dir/runs/<settings digest>/`` (LFW: its own digest, which also covers the identity
recognizers and distractors) as JSON (file names, labels, predictions as plain floats,
re-detection flags, timings; no pixels, crops or features), so an interrupted run resumes. The
attribute cloak's settings enter the digest only when ``cloak-attr`` is run, so the records of
other runs keep their digest.

>>> # result = run_attribute_benchmark(AttributeSettings(limit=20, lfw_limit=2))
>>> # write_report(result, Path("docs/results/attribute_benchmark.json"),
>>> #              Path("docs/BENCHMARKS.md"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from attackers import zoo
from cloak.fileio import write_bytes_atomic
from evaluation.attribute_metrics import (
    FaceLabels,
    UtkLabels,
    attribute_report,
    parse_utkface_name,
)
from evaluation.lfw import central_faces, identity_folders, load_rgb
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW, DEFAULT_UTKFACE
from evaluation.physical_masks import STYLES, mask_faces
from evaluation.protocol import split_photos
from evaluation.report import markdown_table, write_json, write_markdown_section
from evaluation.store import RecordStore

if TYPE_CHECKING:
    from attackers.attributes.base import AttributePredictor
    from attackers.detectors.mtcnn import MTCNN
    from attackers.landmarks import Landmarker
    from attackers.recognizers.base import Recognizer
    from cloak.faces import AlignedFace
    from cloak.opom import AttributeSurrogate, OpomConfig

__all__ = [
    "ALL_CONDITIONS",
    "ATTRIBUTE_CLOAK",
    "ATTRIBUTE_FOLDS",
    "CONDITIONS",
    "DEFAULT_CACHE",
    "DEFAULT_LFW",
    "DEFAULT_UTKFACE",
    "PREDICTED",
    "PREDICTORS",
    "UTK_DATASETS",
    "AttributeSettings",
    "FaceConditions",
    "condition_photos",
    "report_markdown",
    "run_attribute_benchmark",
    "utkface_faces",
    "write_report",
]

log = logging.getLogger(__name__)


#: The default conditions, in report order.
CONDITIONS: tuple[str, ...] = ("clean", *(f"mask-{s}" for s in STYLES), "cloak",
                               *(f"cloak+mask-{s}" for s in STYLES))
#: The attribute-aware cloak's condition (run only when asked for).
ATTRIBUTE_CLOAK = "cloak-attr"
#: Every condition, in report order.
ALL_CONDITIONS: tuple[str, ...] = ("clean", *(f"mask-{s}" for s in STYLES), "cloak",
                                   ATTRIBUTE_CLOAK, *(f"cloak+mask-{s}" for s in STYLES))
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


def _style(condition: str) -> str | None:
    """The physical mask style of a condition, or None."""
    return condition.rsplit("mask-", 1)[1] if "mask-" in condition else None


def _cloaked(condition: str) -> bool:
    return condition.startswith("cloak")


def _fold_key(scored: Sequence[str]) -> str:
    """Name of the ``cloak-attr`` photo made for one fold: ``cloak-attr/<scored predictors>``."""
    return f"{ATTRIBUTE_CLOAK}/{'+'.join(scored)}"


def _weights_of(name: str) -> str:
    return _SAME_WEIGHTS.get(name, name)


@dataclass(frozen=True)
class AttributeSettings:
    """What :func:`run_attribute_benchmark` runs.

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
        from cloak.opom import MODES

        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {tuple(MODES)}")
        changes: dict[str, Any] = {"seed": self.seed}
        if self.steps is not None:
            changes["steps"] = self.steps
        return replace(MODES[self.mode].config, **changes)

    def surrogates(self) -> tuple[str, ...]:
        """Zoo names of the mode's surrogate recognizers."""
        from cloak.opom import MODES

        return MODES[self.mode].surrogates

    def lfw_recognizers(self) -> tuple[str, ...]:
        """Black-box recognizers of the LFW identity PSR: the OPOM benchmark's
        (:data:`evaluation.opom_benchmark.BLACK_BOXES`) that are not one of the cloak's
        surrogates (fast mode: sface, mobilefacenet, faceres)."""
        from evaluation.folds import BLACK_BOXES, model_of

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
            folds[_fold_key(kept)] = {"surrogates": plan, "scored": kept}
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


# ----------------------------------------------------------------------------- faces


def _pad(image: torch.Tensor, pad: int, mode: str) -> torch.Tensor:
    """(3, H, W) -> (3, H + 2 pad, W + 2 pad) with a black or replicated border."""
    if pad == 0:
        return image
    if mode == "constant":
        return F.pad(image, (pad,) * 4)
    return F.pad(image[None], (pad,) * 4, mode="replicate")[0]


def _crop(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Undo :func:`_pad` on (..., H, W)."""
    return image if pad == 0 else image[..., pad:-pad, pad:-pad]


def _unpadded(face: AlignedFace, pad: int) -> AlignedFace:
    """A face found on a padded photo, in the coordinates of the photo without the border."""
    from attackers.detectors.mtcnn import Detection
    from cloak.faces import AlignedFace

    if pad == 0:
        return face
    matrix = face.matrix.clone()
    matrix[:, 2] += matrix[:, :2] @ torch.full((2,), float(pad))
    d = face.detection
    return AlignedFace(face.frame, matrix, Detection(d.box - pad, d.score, d.landmarks - pad))


#: Learns (or looks up) the cloak for one photo: (photo index, the clean photo's pixels
#: (3, H, W) in [0, 255], its face in photo coordinates, ``"cloak"`` or a ``cloak-attr`` fold
#: key) -> (3, 224, 224) mask in pixel levels. Called once per photo and key.
CloakSource = Callable[[int, torch.Tensor, "AlignedFace", str], torch.Tensor]


@dataclass
class FaceConditions:
    """One photo under every condition, as the attacker receives it.

    Conditions are keyed by name; ``cloak-attr`` by one key per fold (``cloak-attr/<scored
    predictors>``).

    Attributes:
        pixels: condition -> (3, H, W) float32 photo, whole numbers in [0, 255] (8-bit).
        coverage: mask style -> (H, W) bool, the pixels the physical mask touched.
        found: condition -> the face MTCNN finds again on the condition's photo (padded
            coordinates), None where it finds none; ``clean``: the given face.
        frames: condition -> (3, 224, 224) float32 canonical frame the predictors see: the
            re-detected face, else the clean photo's alignment applied to the condition's photo.
        failed: condition -> why it could not be made (a physical mask that failed).
        cloak_on_clean_alignment: ``cloak+mask`` conditions whose cloak was placed with the
            clean photo's alignment (no face found on the masked photo).
        make_s: condition -> seconds to make its pixels (mask drawing; cloak learning + paste).
    """

    pixels: dict[str, torch.Tensor] = field(default_factory=dict)
    coverage: dict[str, torch.Tensor] = field(default_factory=dict)
    found: dict[str, AlignedFace | None] = field(default_factory=dict)
    frames: dict[str, torch.Tensor] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    cloak_on_clean_alignment: list[str] = field(default_factory=list)
    make_s: dict[str, float] = field(default_factory=dict)


def _to_8bit(image: torch.Tensor) -> torch.Tensor:
    return image.round().clamp(0, 255)


def condition_photos(photos: Sequence[torch.Tensor], faces: Sequence[AlignedFace],
                     conditions: Sequence[str], *, detector: MTCNN, landmarker: Landmarker,
                     cloak: CloakSource | None, seeds: Sequence[int], feather: float,
                     pad: int = 0, pad_mode: str = "constant", batch: int = 16,
                     attribute_folds: Sequence[str] = ()) -> list[FaceConditions]:
    """Make every condition of each photo, round it to 8 bits and detect the face again.

    Args:
        photos: each (3, H, W) float32 RGB in [0, 255] (whole numbers: decoded files).
        faces: per photo, its face as found by MTCNN on the photo padded by ``pad``
            (coordinates of the padded photo).
        conditions: a subset of :data:`CONDITIONS`.
        detector: MTCNN, for the re-detection.
        landmarker: dlib's 68 points, for the physical masks.
        cloak: gives the cloak of a photo (needed when a condition is cloaked).
        seeds: per photo, the seed of its physical masks (``mask_faces(seed=...)``).
        feather: feather width of the cloak's paste, frame pixels.
        pad: border added before every detection and mask drawing.
        pad_mode: ``"constant"`` (black) or ``"replicate"``.
        batch: photos per detector call.
        attribute_folds: the ``cloak-attr`` fold keys to make when ``cloak-attr`` is asked for
            (each a cloak of the clean photo from ``cloak``).

    Returns:
        one :class:`FaceConditions` per photo.
    """
    from cloak.faces.align import to_frame
    from cloak.opom import protect_photo

    if len(photos) != len(faces) or len(photos) != len(seeds):
        raise ValueError(f"{len(photos)} photos, {len(faces)} faces and {len(seeds)} seeds")
    cloaked = [k for c in conditions if _cloaked(c)
               for k in (attribute_folds if c == ATTRIBUTE_CLOAK else (c,))]
    if cloaked and cloak is None:
        raise ValueError("cloaked conditions need a cloak source")
    out = [FaceConditions() for _ in photos]
    for photo, face, item in zip(photos, faces, out, strict=True):
        item.pixels["clean"], item.frames["clean"], item.found["clean"] = photo, face.frame, face
    styles = [s for s in STYLES if any(_style(c) == s for c in conditions)]
    for style in styles:
        name = f"mask-{style}"
        for i, (photo, face, item) in enumerate(zip(photos, faces, out, strict=True)):
            start = time.perf_counter()
            (drawn,) = mask_faces([_pad(photo, pad, pad_mode)], [[face]], style, seed=seeds[i],
                                  landmarker=landmarker)
            if drawn.ok and not _crop(drawn.coverage, pad).any():
                drawn.failed = "mask outside the photo"
            if not drawn.ok:
                item.failed[name] = item.failed[f"cloak+{name}"] = drawn.failed
                continue
            item.pixels[name] = _to_8bit(_crop(drawn.image, pad))
            item.coverage[style] = _crop(drawn.coverage, pad)
            item.make_s[name] = time.perf_counter() - start
    _redetect(out, [f"mask-{s}" for s in styles], detector, pad, pad_mode, batch)
    learned: dict[tuple[int, str], tuple[torch.Tensor, float]] = {}

    def delta_of(i: int, key: str) -> tuple[torch.Tensor, float]:
        """The clean photo's cloak ``key`` and the seconds it took (learned once per photo)."""
        if (i, key) not in learned:
            start = time.perf_counter()
            delta = cloak(i, photos[i], _unpadded(faces[i], pad), key)  # type: ignore[misc]
            learned[i, key] = delta, time.perf_counter() - start
        return learned[i, key]

    for condition in cloaked:
        source = condition.removeprefix("cloak+") if condition.startswith("cloak+") else "clean"
        for i, (face, item) in enumerate(zip(faces, out, strict=True)):
            if source not in item.pixels or cloak is None:
                continue
            delta, learn_s = delta_of(i, "cloak" if condition.startswith("cloak+") else condition)
            start = time.perf_counter()
            where = item.found[source]
            if where is None:
                where = face
                item.cloak_on_clean_alignment.append(condition)
            where = _unpadded(where, pad)
            item.pixels[condition] = _to_8bit(protect_photo(item.pixels[source], [where], delta,
                                                            feather=feather))
            item.make_s[condition] = learn_s + time.perf_counter() - start
    _redetect(out, cloaked, detector, pad, pad_mode, batch)
    for face, item in zip(faces, out, strict=True):
        for condition in dict.fromkeys([*conditions, *cloaked]):
            if condition == "clean" or condition not in item.pixels:
                continue
            found = item.found[condition]
            item.frames[condition] = found.frame if found is not None else to_frame(
                _pad(item.pixels[condition], pad, pad_mode), face.matrix[None])[0].clamp(0, 255)
    return out


def _redetect(items: Sequence[FaceConditions], conditions: Sequence[str], detector: MTCNN,
              pad: int, pad_mode: str, batch: int) -> None:
    """Detect the face again on each made condition's photo (padded); fill ``found``."""
    jobs = [(item, c) for item in items for c in conditions if c in item.pixels]
    found = central_faces([_pad(item.pixels[c], pad, pad_mode) for item, c in jobs], detector,
                           batch)
    for (item, condition), face in zip(jobs, found, strict=True):
        item.found[condition] = face


# ----------------------------------------------------------------------------- predictions


def _predict(predictors: dict[str, AttributePredictor], frames: Sequence[torch.Tensor],
             batch: int) -> dict[str, list[dict[str, Any]]]:
    """Per predictor, one dict of plain floats (lists for class probabilities) per frame.

    Values are rounded to 6 decimals (probabilities, years): enough for every metric, and the
    JSON stays small.
    """
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in predictors}
    for i in range(0, len(frames), batch):
        stack = torch.stack(list(frames[i:i + batch]))
        for name, model in predictors.items():
            with torch.no_grad():
                result = {k: v.detach().double().numpy() for k, v in model.predict(stack).items()}
            for row in range(len(stack)):
                out[name].append({k: (round(float(v[row]), 6) if v.ndim == 1
                                      else np.round(v[row], 6).tolist())
                                  for k, v in result.items()})
    return out


def _condition_records(made: Sequence[FaceConditions], conditions: Sequence[str],
                       predictors: dict[str, AttributePredictor], batch: int,
                       folds: Mapping[str, Sequence[str]] | None = None,
                       identity: Mapping[str, Recognizer] | None = None) -> list[dict[str, Any]]:
    """Predictions and flags of each photo's conditions (JSON-ready, no pixels).

    Args:
        made: the photos under each condition (:func:`condition_photos`).
        conditions: the conditions to record.
        predictors: report name -> attribute predictor.
        batch: frames per predictor call.
        folds: ``cloak-attr`` fold key -> the predictors it is scored by. The ``cloak-attr``
            record takes each predictor's outputs from the fold that scores it and keeps every
            fold under ``"folds"`` (all predictors' outputs, ``redetected``, ``make_s``).
        identity: black-box recognizers: with them, ``cloak`` and each fold also get
            ``"identity"`` (recognizer -> cosine of the clean and the protected frame's
            features) and ``"ssim"`` (of the protected photo to the clean one).
    """
    from evaluation.quality import ssim

    folds = folds or {}
    keys = [c for c in conditions if c != ATTRIBUTE_CLOAK] + (
        list(folds) if ATTRIBUTE_CLOAK in conditions else [])
    jobs = [(k, c) for k, item in enumerate(made) for c in keys if c in item.frames]
    preds = _predict(predictors, [made[k].frames[c] for k, c in jobs], batch)
    entries: list[dict[str, Any]] = [{} for _ in made]
    for j, (k, condition) in enumerate(jobs):
        entries[k][condition] = {
            "redetected": made[k].found[condition] is not None,
            "make_s": made[k].make_s.get(condition, 0.0),
            "predictions": {name: preds[name][j] for name in predictors}}
    if identity:
        costed = [(k, c) for k, c in jobs if c == "cloak" or c in folds]
        for name, model in identity.items():
            with torch.no_grad():
                clean = model.embed(torch.stack([made[k].frames["clean"] for k, _ in costed]))
                cloaked = model.embed(torch.stack([made[k].frames[c] for k, c in costed]))
            cosines = (clean * cloaked).sum(dim=1).tolist()
            for (k, c), cosine in zip(costed, cosines, strict=True):
                entries[k][c].setdefault("identity", {})[name] = round(cosine, 6)
        for k, c in costed:
            entries[k][c]["ssim"] = round(ssim(made[k].pixels["clean"], made[k].pixels[c]), 6)
    records: list[dict[str, Any]] = []
    for item, entry in zip(made, entries, strict=True):
        record = {c: entry[c] for c in conditions if c in entry}
        made_folds = {key.split("/", 1)[1]: entry[key] for key in folds if key in entry}
        if made_folds:
            scorer = {p: key.split("/", 1)[1] for key, scored in folds.items() for p in scored}
            record[ATTRIBUTE_CLOAK] = {
                "redetected": all(f["redetected"] for f in made_folds.values()),
                "make_s": sum(f["make_s"] for f in made_folds.values()),
                "predictions": {p: made_folds[scorer[p]]["predictions"][p]
                                for p in predictors if scorer.get(p) in made_folds},
                "folds": made_folds}
        for condition, reason in item.failed.items():
            if condition in conditions:
                record[condition] = {"failed": reason}
        for condition in item.cloak_on_clean_alignment:
            if condition in record:
                record[condition]["cloak_on_clean_alignment"] = True
        records.append(record)
    return records


# ----------------------------------------------------------------------------- run cache


#: Settings that do not change a finished record (see :func:`_record_store`).
_STORE_IGNORES = ("utkface", "lfw", "datasets", "limit", "lfw_limit", "n_boot", "cache_dir",
                  "batch", "progress", "lfw_distractors")  # the LFW key names the distractors
#: Settings of the attribute cloak: they key the store only when ``cloak-attr`` is run.
_ATTRIBUTE_SETTINGS = ("protect_attributes", "attribute_weight", "identity_recognizers")


def _record_store(settings: AttributeSettings, distractors: Sequence[Path] | None = None
                  ) -> RecordStore:
    """Where finished faces (or, with ``distractors``, LFW identities) are stored, one JSON file
    each, so a rerun resumes.

    Keyed by everything that changes a record: the settings (except the data folders,
    ``datasets``, ``limit``, ``lfw_limit``, ``n_boot``, ``cache_dir``, ``batch`` and
    ``progress``; the attribute cloak's settings only when ``cloak-attr`` is run, so other
    runs keep the key they had before it existed), the optimiser settings and the weights of
    every model involved; for LFW also the identity recognizers' weights and the distractor
    files.
    """
    folds = settings.attribute_folds()
    ignored = _STORE_IGNORES if folds else _STORE_IGNORES + _ATTRIBUTE_SETTINGS
    models = sorted({PREDICTORS[p][0] for p in settings.predictors}
                    | set(settings.surrogates()) | {"mtcnn", "shape68"})
    key: dict[str, Any] = {
        "settings": {k: v for k, v in asdict(settings).items() if k not in ignored},
        "config": asdict(settings.config()),
        "surrogates": settings.surrogates(),
        "weights": {m: zoo.weights_digests(m) for m in models},
    }
    if any(c.startswith("cloak+") for c in settings.conditions):
        key["cloak+mask"] = "the clean photo's cloak pasted into the masked photo"
    if folds:
        extra = {n for f in folds.values() for n in f["surrogates"]}
        extra |= set(settings.identity_recognizers)
        key["attribute_folds"] = folds
        key["weights"].update({m: zoo.weights_digests(m) for m in sorted(extra)})
    if distractors is not None:
        from evaluation.folds import BLACK_BOXES

        key["lfw_identity"] = {
            "weights": {n: zoo.weights_digests(BLACK_BOXES[n][0])
                        for n in settings.lfw_recognizers()},
            "distractors": [p.name for p in distractors]}
    return RecordStore(settings.cache_dir, key)


# ----------------------------------------------------------------------------- UTKFace


def utkface_faces(folder: Path, limit: int | None = None
                  ) -> tuple[list[tuple[Path, UtkLabels]], list[dict[str, str]]]:
    """The photos of a UTKFace folder in the benchmark's fixed order, with their labels.

    The order is the SHA-256 of each photo's path relative to ``folder`` (pseudo-random but
    fixed, so a limited run is a sample mixing sexes, races and ages, and a longer run extends
    it). The first ``limit`` files are taken; those whose name does not parse
    (:func:`~evaluation.attribute_metrics.parse_utkface_name`) are set aside with the reason.

    Args:
        folder: e.g. ``utkface/balanced``.
        limit: files to take; None = all.

    Returns:
        (labelled, malformed): ``(path, labels)`` in order, and ``{"file", "reason"}`` per
        skipped file (``file`` relative to ``folder``).

    Raises:
        FileNotFoundError: the folder is missing or holds no ``*.jpg``.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: UTKFace folder not found")
    files = sorted(folder.rglob("*.jpg"), key=lambda p: hashlib.sha256(
        p.relative_to(folder).as_posix().encode()).hexdigest())
    if not files:
        raise FileNotFoundError(f"{folder}: no *.jpg photos")
    labelled, malformed = [], []
    for path in files[:limit]:
        try:
            labelled.append((path, parse_utkface_name(path)))
        except ValueError as err:
            malformed.append({"file": path.relative_to(folder).as_posix(), "reason": str(err)})
    return labelled, malformed


def _face_seed(seed: int, key: str) -> int:
    """A per-face seed for :func:`mask_faces` from the run's seed and the face's name."""
    return seed * 2**32 + zlib.crc32(key.encode())


@dataclass
class _Models:
    detector: MTCNN
    landmarker: Landmarker
    predictors: dict[str, AttributePredictor]
    surrogates: list[Recognizer]
    #: ``cloak-attr`` fold key -> its attribute surrogates (empty: no ``cloak-attr``).
    attribute_folds: dict[str, list[AttributeSurrogate]] = field(default_factory=dict)
    #: black-box recognizers of the identity cost (empty: no ``cloak-attr``).
    identity: dict[str, Recognizer] = field(default_factory=dict)
    #: LFW identity PSR: black-box recognizers and their distractor features (N, D).
    lfw_recognizers: dict[str, Recognizer] = field(default_factory=dict)
    gallery: dict[str, torch.Tensor] = field(default_factory=dict)


def _learn(faces: Sequence[Any], key: str, models: _Models, settings: AttributeSettings
           ) -> torch.Tensor:
    """The cloak of one photo being made (``key``: a cloaked condition or a fold key)."""
    from cloak.opom import learn_mask

    return learn_mask(faces, models.surrogates, settings.config(),
                      attribute_surrogates=models.attribute_folds.get(key, ()),
                      attribute_weight=settings.attribute_weight)


def _run_utkface(dataset: str, settings: AttributeSettings, models: _Models, runs: RecordStore,
                 say: Callable[[str], None]) -> dict[str, Any]:
    """Records of one UTKFace folder (from the cache or computed) and the malformed names."""
    from cloak.opom import training_face

    folder = settings.utkface / dataset
    labelled, malformed = utkface_faces(folder, settings.limit)
    config = settings.config()
    folds = {k: f["scored"] for k, f in settings.attribute_folds().items()}
    part = f"utkface-{dataset}"
    records: dict[str, dict[str, Any]] = {}
    pending = []
    for path, labels in labelled:
        name = path.relative_to(folder).as_posix()
        done = runs.load(f"{part}/{name}")
        if done is not None:
            records[name] = done
        else:
            pending.append((name, path, labels))

    def cloak(_: int, pixels: torch.Tensor, face: AlignedFace, key: str) -> torch.Tensor:
        return _learn([training_face(pixels, face)], key, models, settings)

    bar = tqdm(total=len(labelled), initial=len(records), desc=f"utkface {dataset}",
               unit="face", disable=not settings.progress)
    for i in range(0, len(pending), settings.batch):
        chunk = pending[i:i + settings.batch]
        start = time.perf_counter()
        chips = [load_rgb(path) for _, path, _ in chunk]
        found = central_faces([_pad(c, settings.pad, settings.pad_mode) for c in chips],
                               models.detector, settings.batch)
        kept = [k for k, f in enumerate(found) if f is not None]
        made = condition_photos(
            [chips[k] for k in kept], [found[k] for k in kept], settings.conditions,
            detector=models.detector, landmarker=models.landmarker, cloak=cloak,
            seeds=[_face_seed(settings.seed, f"{dataset}/{chunk[k][0]}") for k in kept],
            feather=config.feather, pad=settings.pad, pad_mode=settings.pad_mode,
            batch=settings.batch, attribute_folds=list(folds))
        per_face = iter(_condition_records(made, settings.conditions, models.predictors,
                                           settings.batch, folds, models.identity))
        seconds = (time.perf_counter() - start) / len(chunk)
        for k, (name, _, labels) in enumerate(chunk):
            record = {"file": name, "labels": asdict(labels), "detected": k in kept,
                      "seconds": seconds}
            if k in kept:
                record["conditions"] = next(per_face)
            runs.save(f"{part}/{name}", record)
            records[name] = record
        bar.update(len(chunk))
        say(f"utkface {dataset}: {len(records)}/{len(labelled)} faces, {seconds:.1f} s/face")
    bar.close()
    ordered = [records[p.relative_to(folder).as_posix()] for p, _ in labelled]
    return {"files": len(labelled) + len(malformed), "malformed": malformed, "faces": ordered}


def _complete(record: dict[str, Any], conditions: Sequence[str]) -> bool:
    """Whether every condition of a face (or probe) record has predictions."""
    return record.get("detected", True) and all(
        "predictions" in record["conditions"].get(c, {}) for c in conditions)


def _stack(entries: Sequence[dict[str, Any]], predictor: str) -> dict[str, np.ndarray]:
    """A predictor's outputs over faces as arrays ((N,) or (N, K))."""
    keys = entries[0]["predictions"][predictor].keys()
    return {k: np.array([e["predictions"][predictor][k] for e in entries]) for k in keys}


def _counts(faces: Sequence[dict[str, Any]], conditions: Sequence[str]) -> dict[str, Any]:
    """Failure counts over detected faces (or probes)."""
    detected = [f for f in faces if f.get("detected", True)]
    return {
        "mask_failed": {s: sum(any("failed" in f["conditions"].get(c, {})
                                   for c in (f"mask-{s}", f"cloak+mask-{s}")) for f in detected)
                        for s in STYLES if any(_style(c) == s for c in conditions)},
        "not_redetected": {c: sum(not f["conditions"][c].get("redetected", True)
                                  for f in detected if "predictions" in f["conditions"].get(c, {}))
                           for c in conditions if c != "clean"},
        "cloak_on_clean_alignment": {
            c: sum(bool(f["conditions"].get(c, {}).get("cloak_on_clean_alignment"))
                   for f in detected) for c in conditions if c.startswith("cloak+")},
        "make_s": {c: _mean([f["conditions"][c]["make_s"] for f in detected
                             if "make_s" in f["conditions"].get(c, {})])
                   for c in conditions if c != "clean"},
    }


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _summarise_utkface(run: dict[str, Any], settings: AttributeSettings) -> dict[str, Any]:
    """Counts and, per condition and predictor, :func:`attribute_report` on the scored faces."""
    faces = run["faces"]
    scored = [f for f in faces if _complete(f, settings.conditions)]
    summary: dict[str, Any] = {
        "files": run["files"], "malformed": len(run["malformed"]),
        "not_detected": sum(not f["detected"] for f in faces), "scored": len(scored),
        **_counts(faces, settings.conditions),
        "seconds_per_face": _mean([f["seconds"] for f in faces]), "metrics": {}}
    if not scored:
        return summary
    labels = FaceLabels(
        age=np.array([f["labels"]["age"] for f in scored], dtype=np.int64),
        male=np.array([f["labels"]["male"] for f in scored], dtype=bool),
        race=np.array([-1 if f["labels"]["race"] is None else f["labels"]["race"]
                       for f in scored], dtype=np.int64))
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    clean_pvi: dict[str, float | None] = {}
    for condition in settings.conditions:
        row = {}
        for name in settings.predictors:
            preds = _stack([f["conditions"][condition] for f in scored], name)
            pvi = clean_pvi.get(name)
            report = attribute_report(preds, labels, clean_pvi=pvi, **boot)
            if condition == "clean":
                value = report["labelled"].get("pvi", {}).get("value")
                clean_pvi[name] = value if value is not None else math.nan
            row[name] = report["labelled"]
        summary["metrics"][condition] = row
    if ATTRIBUTE_CLOAK in settings.conditions:
        summary["attribute_cloak"] = _attribute_cloak_summary(scored, settings, labels)
    return summary


def _mean_interval(values: Sequence[float], n_boot: int, seed: int,
                   level: float = 0.95) -> dict[str, float | None]:
    """Mean with a percentile-bootstrap interval over the values (``None`` when empty)."""
    data = np.asarray(values, dtype=np.float64)
    if data.size == 0:
        return {"value": None, "low": None, "high": None}
    draws = np.random.default_rng(seed).integers(0, data.size, size=(n_boot, data.size))
    means = data[draws].mean(axis=1)
    tail = 50.0 * (1.0 - level)
    return {"value": float(data.mean()), "low": float(np.percentile(means, tail)),
            "high": float(np.percentile(means, 100.0 - tail))}


def _attribute_cloak_summary(entries: Sequence[dict[str, Any]], settings: AttributeSettings,
                             labels: FaceLabels | None) -> dict[str, Any]:
    """Identity cost and quality of ``cloak`` and of each ``cloak-attr`` fold, and (with labels)
    every predictor's metrics on each fold's photos, white-box ones included.

    Args:
        entries: scored face (UTKFace) or probe (LFW) records.
        settings: the run's settings.
        labels: the faces' labels (UTKFace), or None (LFW).

    Returns:
        ``{"cloak": {"identity": {recognizer: mean cosine}, "ssim"}, "folds": {name:
        {"surrogates", "scored", "identity", "ssim", "metrics"?}}}``; means carry 95%
        bootstrap intervals over the entries.
    """
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}

    def cost(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"identity": {n: _mean_interval([r["identity"][n] for r in rows], **boot)
                             for n in settings.identity_recognizers},
                "ssim": _mean_interval([r["ssim"] for r in rows], **boot)}

    out: dict[str, Any] = {"folds": {}}
    if "cloak" in settings.conditions and entries:
        out["cloak"] = cost([e["conditions"]["cloak"] for e in entries])
    for key, fold in settings.attribute_folds().items():
        name = key.split("/", 1)[1]
        rows = [e["conditions"][ATTRIBUTE_CLOAK]["folds"][name] for e in entries]
        summary: dict[str, Any] = {"surrogates": fold["surrogates"], "scored": fold["scored"]}
        if rows:
            summary.update(cost(rows))
            if labels is not None:
                summary["metrics"] = {
                    p: attribute_report(_stack(rows, p), labels, **boot)["labelled"]
                    for p in settings.predictors}
        out["folds"][name] = summary
    return out


# ----------------------------------------------------------------------------- LFW


def _run_lfw(settings: AttributeSettings, models: _Models, runs: RecordStore,
             say: Callable[[str], None]) -> dict[str, Any]:
    """Records of the LFW identities (from the cache or computed) and the skipped ones."""
    from cloak.opom import training_face

    people = identity_folders(settings.lfw)[:settings.lfw_limit]
    config = settings.config()
    folds = {k: f["scored"] for k, f in settings.attribute_folds().items()}
    needed = settings.n_train + settings.n_probe
    records, skipped = [], []
    for person_dir in tqdm(people, desc="lfw", unit="person", disable=not settings.progress):
        done = runs.load(f"lfw/{person_dir.name}")
        if done is not None:
            records.append(done)
            continue
        start = time.perf_counter()
        usable = []
        paths = sorted(person_dir.glob("*.jpg"))
        for i in range(0, len(paths), needed):
            if len(usable) >= needed:
                break
            images = [load_rgb(p) for p in paths[i:i + needed]]
            faces = central_faces(images, models.detector, settings.batch)
            usable += [(p, img, f) for p, img, f in zip(paths[i:i + needed], images, faces,
                                                         strict=True) if f is not None]
        split = split_photos(person_dir.name, usable, settings.n_train, settings.n_probe)
        if split is None:
            skipped.append({"person": person_dir.name,
                            "reason": f"{len(usable)} photos with a face, {needed} needed"})
            continue
        learn_start = time.perf_counter()
        train = [training_face(img, f) for _, img, f in split.train]
        kinds = ["cloak"] if any(_cloaked(c) and c != ATTRIBUTE_CLOAK
                                 for c in settings.conditions) else []
        deltas = {kind: _learn(train, kind, models, settings) for kind in [*kinds, *folds]}
        learn_s = time.perf_counter() - learn_start if deltas else 0.0
        made = condition_photos(
            [img for _, img, _ in split.probes], [f for _, _, f in split.probes],
            settings.conditions, detector=models.detector, landmarker=models.landmarker,
            cloak=lambda _i, _p, _f, key, d=deltas: d[key if key in d else "cloak"],
            seeds=[_face_seed(settings.seed, f"lfw/{p.name}") for p, _, _ in split.probes],
            feather=config.feather, batch=settings.batch, attribute_folds=list(folds))
        per_probe = _condition_records(made, settings.conditions, models.predictors,
                                       settings.batch, folds, models.identity)
        _identity_ranks(made, per_probe, models)
        record = {"person": split.person, "train": [p.name for p, _, _ in split.train],
                  "probes": [{"file": p.name, "conditions": c}
                             for (p, _, _), c in zip(split.probes, per_probe, strict=True)],
                  "learn_s": learn_s, "seconds": time.perf_counter() - start}
        runs.save(f"lfw/{split.person}", record)
        records.append(record)
        say(f"lfw {split.person}: {record['seconds']:.1f} s")
    return {"people": len(people), "skipped": skipped, "identities": records}


def _identity_ranks(made: Sequence[FaceConditions], records: Sequence[dict[str, Any]],
                    models: _Models) -> None:
    """Add ``"ranks"`` (recognizer -> rank, :func:`evaluation.protocol.identity_ranks`) to each
    probe's recorded conditions but ``cloak-attr``: the condition's frame searched in the
    person's other clean probes + the distractors."""
    from evaluation.protocol import identity_ranks
    from evaluation.recognition import embed as _embed

    conditions = [c for c in records[0] if c != ATTRIBUTE_CLOAK] if records else []
    for name, model in models.lfw_recognizers.items():
        clean = _embed(model, [item.frames["clean"] for item in made])
        for condition in conditions:
            frames = [item.frames.get(condition) for item in made]
            queries = clean if condition == "clean" else _embed(model, frames)
            ranks = identity_ranks(queries, clean, models.gallery[name]).tolist()
            for frame, rank, record in zip(frames, ranks, records, strict=True):
                if frame is not None and "predictions" in record.get(condition, {}):
                    record[condition].setdefault("ranks", {})[name] = rank


def _identity_psr(identities: Sequence[dict[str, Any]], settings: AttributeSettings
                  ) -> dict[str, Any]:
    """PSR@1 per condition: per recognizer and their mean, with 95% bootstrap intervals over
    identities, on the scored probes (every condition made)."""
    from evaluation.protocol import bootstrap_interval

    names = settings.lfw_recognizers()
    per_person = [[p for p in r["probes"] if _complete(p, settings.conditions)]
                  for r in identities]
    per_person = [probes for probes in per_person if probes]
    out: dict[str, Any] = {}
    if not per_person:
        return out
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    trials = np.array([[len(probes)] * len(names) for probes in per_person])      # (I, R)
    for condition in settings.conditions:
        if condition == ATTRIBUTE_CLOAK:
            continue
        hits = np.array([[sum(p["conditions"][condition]["ranks"][n] >= 1 for p in probes)
                          for n in names] for probes in per_person])              # (I, R)
        row: dict[str, Any] = {"recognizers": {}}
        for r, name in enumerate(names):
            low, high = bootstrap_interval(hits[:, r], trials[:, r], **boot)
            row["recognizers"][name] = {"value": float(hits[:, r].sum() / trials[:, r].sum()),
                                        "low": low, "high": high}
        low, high = bootstrap_interval(hits, trials, **boot)
        row["mean"] = {"value": float(np.mean(hits.sum(0) / trials.sum(0))), "low": low,
                       "high": high}
        out[condition] = row
    return out


def _summarise_lfw(run: dict[str, Any], settings: AttributeSettings) -> dict[str, Any]:
    """Counts and flip rates per condition and predictor against the clean probes."""
    probes = [p for r in run["identities"] for p in r["probes"]]
    scored = [p for p in probes if _complete(p, settings.conditions)]
    summary: dict[str, Any] = {
        "identities": len(run["identities"]), "skipped": len(run["skipped"]),
        "probes": len(probes), "scored": len(scored), **_counts(probes, settings.conditions),
        "learn_s_per_identity": _mean([r["learn_s"] for r in run["identities"]]),
        "seconds_per_identity": _mean([r["seconds"] for r in run["identities"]]),
        "flips": {}}
    if not scored:
        return summary
    boot = {"n_boot": settings.n_boot, "seed": settings.seed}
    for condition in settings.conditions:
        if condition == "clean":
            continue
        summary["flips"][condition] = {
            name: attribute_report(
                _stack([p["conditions"][condition] for p in scored], name),
                reference=_stack([p["conditions"]["clean"] for p in scored], name),
                **boot)["flips"]
            for name in settings.predictors}
    summary["identity_psr"] = _identity_psr(run["identities"], settings)
    if ATTRIBUTE_CLOAK in settings.conditions:
        summary["attribute_cloak"] = _attribute_cloak_summary(scored, settings, None)
    return summary


# ----------------------------------------------------------------------------- run


def run_attribute_benchmark(settings: AttributeSettings,
                            log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the attribute-leakage benchmark; return the results (JSON-ready; no pixels, crops or
    features inside).

    Args:
        settings: what to run (:class:`AttributeSettings`).
        log_line: called with one line per finished chunk of faces or identity (e.g.
            ``tqdm.write``); default: the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config`` (the cloak's optimiser settings and surrogates),
        ``utkface`` (per dataset: ``files``, ``malformed`` names, per-face ``faces`` records and
        a ``summary`` with counts, timings and metrics per condition and predictor), ``lfw``
        (``identities`` records, ``skipped`` and a ``summary`` with flip rates; absent when
        ``lfw_limit`` is 0), ``wall_s`` and the machine.

    Raises:
        ValueError: invalid settings; FileNotFoundError: data folders missing.
    """
    import attackers
    from attackers.landmarks import Landmarker

    settings.check()
    say = log_line or log.info
    started = time.perf_counter()
    cloaked = any(_cloaked(c) for c in settings.conditions)
    models = _Models(
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
    runs = _record_store(settings)
    result: dict[str, Any] = {
        "benchmark": "attributes: sex, age and race leakage under physical masks and cloaks",
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in asdict(settings).items()},
        "config": {**asdict(settings.config()), "surrogates": list(settings.surrogates()),
                   **({"attribute_folds": folds} if folds else {})},
        "predictors": {n: {"zoo": PREDICTORS[n][0],
                           "runtime": "reference" if PREDICTORS[n][1] else "zoo loader"}
                       for n in settings.predictors},
        "utkface": {}}
    for dataset in settings.datasets:
        run = _run_utkface(dataset, settings, models, runs, say)
        run["summary"] = _summarise_utkface(run, settings)
        result["utkface"][dataset] = run
    stores = [runs]
    if settings.lfw_limit != 0:
        from evaluation.folds import BLACK_BOXES
        from evaluation.gallery import distractor_features

        distractors = sorted((settings.lfw / "distractors").glob("*.jpg"))[
            :settings.lfw_distractors]
        if not distractors:
            raise FileNotFoundError(f"{settings.lfw / 'distractors'}: no distractor photos")
        names = settings.lfw_recognizers()
        models.lfw_recognizers = {n: attackers.load(BLACK_BOXES[n][0],
                                                    reference=BLACK_BOXES[n][1]) for n in names}
        models.gallery = distractor_features(distractors, names, models.lfw_recognizers,
                                             models.detector, settings.cache_dir, settings.batch,
                                             settings.progress)
        stores.append(_record_store(settings, distractors))
        run = _run_lfw(settings, models, stores[-1], say)
        run["summary"] = _summarise_lfw(run, settings)
        result["lfw"] = run
    for store in stores:
        if store.reused:
            say(f"resumed {store.reused} finished records from {store.folder}")
    result.update(cache={"folder": str(runs.folder), "lfw_folder": str(stores[-1].folder),
                         "reused": sum(s.reused for s in stores),
                         "written": sum(s.written for s in stores)},
                  wall_s=time.perf_counter() - started,
                  cpu=platform.processor() or platform.machine(),
                  torch_threads=torch.get_num_threads())
    return result


# ----------------------------------------------------------------------------- report


def _cell(stats: dict[str, Any] | None, digits: int = 3) -> str:
    """``value [low, high]``, or ``-`` where the statistic is missing or undefined."""
    if stats is None or stats.get("value") is None:
        return "-"
    low, high = stats.get("low"), stats.get("high")
    interval = "" if low is None or high is None else (
        f" [{low:.{max(digits - 1, 1)}f}, {high:.{max(digits - 1, 1)}f}]")
    return f"{stats['value']:.{digits}f}{interval}"


#: Labelled columns per predictor: (metric key, column label, digits).
_LABELLED = (("sex", "sex acc", 3), ("race", "race acc", 3), ("age", "age MAE (y)", 1),
             ("age_bin", "age-bin acc", 3))
_FLIPS = (("sex", "sex flips", 3), ("race", "race flips", 3), ("age_bin", "age-bin flips", 3),
          ("age_shift_years", "age shift (y)", 1))


def _utkface_table(summary: dict[str, Any], conditions: Sequence[str],
                   predictors: Sequence[str]) -> str:
    """Condition rows x predictor/attribute columns; a first row with the baselines."""
    metrics = summary["metrics"]
    columns = [(p, key, label, digits) for p in predictors for key, label, digits in _LABELLED
               if key in metrics["clean"][p]]
    header = ["condition", *[f"{p}: {label}" for p, _, label, _ in columns],
              *[f"{p}: PVI (reduction vs clean)" for p in predictors]]
    baseline = ["baseline (chance / median-age MAE)",
                *[f"{metrics['clean'][p][key]['baseline']:.{d}f}" for p, key, _, d in columns],
                *["0" for _ in predictors]]
    rows = [baseline]
    for condition in conditions:
        row = [condition, *[_cell(metrics[condition][p].get(key), d) for p, key, _, d in columns]]
        for p in predictors:
            pvi = metrics[condition][p].get("pvi")
            reduction = None if pvi is None else pvi.get("relative_reduction")
            row.append(_cell(pvi) + ("" if reduction is None else f" ({reduction:.0%})"))
        rows.append(row)
    return markdown_table(header, rows)


def _lfw_table(summary: dict[str, Any], predictors: Sequence[str]) -> str:
    flips = summary["flips"]
    first = next(iter(flips.values()))
    columns = [(p, key, label, d) for p in predictors for key, label, d in _FLIPS
               if key in first[p]]
    rows = [[condition, *[_cell(row[p].get(key), d) for p, key, _, d in columns]]
            for condition, row in flips.items()]
    return markdown_table(["condition", *[f"{p}: {label}" for p, _, label, _ in columns]], rows)


def _identity_table(psr: dict[str, Any]) -> str:
    names = list(next(iter(psr.values()))["recognizers"])
    rows = [[condition, *[_cell(row["recognizers"][n]) for n in names], _cell(row["mean"])]
            for condition, row in psr.items()]
    return markdown_table(["condition", *[f"{n} PSR@1" for n in names], "mean PSR@1"], rows)


def _attribute_cloak_table(cloak: dict[str, Any], metrics: dict[str, Any] | None,
                           predictors: Sequence[str]) -> str:
    """``cloak`` and each ``cloak-attr`` fold: what was in the loss, sex accuracy per predictor
    (``wb`` = in that cloak's loss, a white-box figure), identity cosines and SSIM."""
    folds = cloak["folds"]
    recognizers = list(next(iter(folds.values())).get("identity", {}))
    header = ["cloak", "attribute term", "scored by",
              *([f"{p}: sex acc" for p in predictors] if metrics is not None else []),
              *[f"{r}: cosine clean vs cloaked" for r in recognizers], "SSIM to clean"]
    rows = []
    if "cloak" in cloak:
        plain = metrics["cloak"] if metrics is not None else None
        rows.append(["cloak", "none", "-",
                     *([_cell(plain[p].get("sex")) for p in predictors] if plain else []),
                     *[_cell(cloak["cloak"]["identity"][r]) for r in recognizers],
                     _cell(cloak["cloak"]["ssim"])])
    for fold in folds.values():
        pushed = "; ".join(f"{n} ({', '.join(a)})" for n, a in fold["surrogates"].items())
        sex = []
        if metrics is not None:
            sex = [_cell(fold.get("metrics", {}).get(p, {}).get("sex"))
                   + (" wb" if p in fold["surrogates"] else "") for p in predictors]
        rows.append([f"{ATTRIBUTE_CLOAK} fold", pushed or "none (plain cloak)",
                     ", ".join(fold["scored"]), *sex,
                     *[_cell(fold.get("identity", {}).get(r)) for r in recognizers],
                     _cell(fold.get("ssim"))])
    return markdown_table(header, rows)


def _counts_table(result: dict[str, Any], conditions: Sequence[str]) -> str:
    parts = {f"UTKFace {d}": run["summary"] for d, run in result["utkface"].items()}
    if "lfw" in result:
        parts["LFW probes"] = result["lfw"]["summary"]
    rows = []
    for condition in conditions:
        if condition == "clean":
            continue
        row: list[Any] = [condition]
        for s in parts.values():
            style = _style(condition)
            failed = s["mask_failed"].get(style, 0) if style else 0
            on_clean = s["cloak_on_clean_alignment"].get(condition, 0)
            row.append(f"{s['not_redetected'][condition]} / {failed} / {on_clean}")
        row += ["-" if s["make_s"].get(condition) is None else f"{s['make_s'][condition]:.2f}"
                for s in parts.values()]
        rows.append(row)
    return markdown_table(["condition", *[f"{name}: not re-detected / mask failed / cloak on "
                                          "clean alignment" for name in parts],
                           *[f"{name}: s to make" for name in parts]], rows)


_ATTRIBUTE_NOTE = (
    "Attribute-aware cloak (`cloak-attr`, leave-one-out): each fold's cloak pushes the listed "
    "white-box predictors (torch) towards uninformative outputs besides the recognizers, and "
    "feeds the `cloak-attr` row above only for the predictors it was scored by; sex accuracy "
    "marked wb is that of a predictor in the fold's own loss (white box). Identity cost: mean "
    "cosine between the clean and the cloaked face's features on black-box recognizers (lower "
    "= stronger identity protection) and SSIM of the cloaked photo to the clean one; "
    "[95% bootstrap interval].")


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``attributes`` section of docs/BENCHMARKS.md: one table per UTKFace set, LFW flips,
    counts and time."""
    settings, config = result["settings"], result["config"]
    conditions, predictors = settings["conditions"], settings["predictors"]
    runtimes = ", ".join(f"{n} ({v['runtime']})" for n, v in result["predictors"].items())
    intro = (
        f"`{command or 'run_attribute_benchmark'}`. Predictors (black boxes; the cloak is "
        f"learned against identity recognizers only): {runtimes}. Cloak: mode {settings['mode']} "
        f"(surrogates {', '.join(config['surrogates'])}), {config['steps']} steps of "
        f"{config['step_size']:g}, eps {config['eps']:g}/255, feather {config['feather']:g} px, "
        f"seed {config['seed']}. Every condition's photo is rounded to 8 bits and the face is "
        f"detected again (MTCNN) as an attacker would; a face not found again is still "
        f"predicted on the clean photo's alignment and counted below. Physical masks are "
        f"synthetic (68 dlib landmarks), seeded per face; in `cloak+mask` the mask is drawn "
        f"first and the clean photo's cloak (the `cloak` condition's) pasted into the masked "
        f"photo.")
    if "attribute_folds" in config:
        folds = "; ".join(
            f"{', '.join(f['surrogates']) or 'none'} in the loss, scored by "
            f"{', '.join(f['scored'])}" for f in config["attribute_folds"].values())
        intro += (f" `cloak-attr`: the same cloak plus the attribute term on "
                  f"{', '.join(settings['protect_attributes'])} (weight "
                  f"{settings['attribute_weight']:g} per predictor against 1 per recognizer), "
                  f"leave-one-out over the attribute predictors (folds: {folds}).")
    intro += "\n"
    parts = [f"## Attribute leakage: physical masks vs cloaks\n\n{intro}"]
    for dataset, run in result["utkface"].items():
        s = run["summary"]
        malformed = "; ".join(m["file"] for m in run["malformed"]) or "none"
        head = (f"UTKFace `{dataset}`: {s['files']} files, {s['malformed']} skipped for a "
                f"malformed name ({malformed}), {s['not_detected']} not detected on the clean "
                f"chip (padded by {settings['pad']} px, {settings['pad_mode']}), "
                f"{s['scored']} scored (every condition made). One photo per person, so the "
                f"cloak is learned from the very photo it protects (a one-photo cloak). Cells: "
                f"value [95% bootstrap interval over faces]; PVI = privacy vulnerability index "
                f"(equal weights over the predictor's attributes), reduction relative to clean.")
        table = "(no face scored)" if not s["metrics"] else _utkface_table(s, conditions,
                                                                          predictors)
        parts.append(f"{head}\n\n{table}\n")
        if "attribute_cloak" in s:
            parts.append(_ATTRIBUTE_NOTE + "\n\n" + _attribute_cloak_table(
                s["attribute_cloak"], s["metrics"], predictors) + "\n")
    if "lfw" in result:
        s = result["lfw"]["summary"]
        skipped = "; ".join(f"{k['person']} ({k['reason']})" for k in result["lfw"]["skipped"])
        head = (f"LFW (no labels; reference = predictions on the clean probe): {s['identities']} "
                f"identities (skipped: {skipped or 'none'}), {s['probes']} probes, {s['scored']} "
                f"scored. Per identity one cloak learned from its first {settings['n_train']} "
                f"photos with a face, pasted into the next {settings['n_probe']} (the probes). "
                f"Flip rate = share of probes whose predicted class changes; age shift = mean "
                f"|change| of the predicted age, years; [95% bootstrap interval over probes].")
        table = "(no probe scored)" if not s["flips"] else _lfw_table(s, predictors)
        parts.append(f"{head}\n\n{table}\n")
        if s.get("identity_psr"):
            parts.append("Identity leakage on the same LFW probes: PSR@1 (share of probes whose "
                         "person is NOT the top-1 match; gallery = the person's other clean "
                         "probes + the distractors) per black-box recognizer, [95% bootstrap "
                         "interval over identities]; a face not found again is searched on the "
                         "clean photo's alignment:\n\n" + _identity_table(s["identity_psr"])
                         + "\n")
        if "attribute_cloak" in s:
            parts.append(_ATTRIBUTE_NOTE + "\n\n" + _attribute_cloak_table(
                s["attribute_cloak"], None, predictors) + "\n")
    parts.append("Counts per condition, and seconds per face to make its photo (mask: "
                 "landmarks + drawing; cloak: learning + paste on UTKFace, paste only on LFW, "
                 "whose cloaks are learned once per identity):\n\n"
                 + _counts_table(result, conditions) + "\n")
    per_face = [f"{d} {r['summary']['seconds_per_face']:.1f} s/face"
                for d, r in result["utkface"].items()
                if r["summary"]["seconds_per_face"] is not None]
    lfw = result.get("lfw", {}).get("summary", {})
    if lfw.get("seconds_per_identity") is not None:
        per_face.append(f"LFW {lfw['seconds_per_identity']:.1f} s/identity, of which "
                        f"{lfw['learn_s_per_identity']:.1f} s learning the cloak")
    parts.append(f"Wall time {result['wall_s']:.0f} s ({', '.join(per_face) or 'all cached'}, "
                 f"all conditions); {result['torch_threads']} torch threads.\n")
    return "\n".join(parts)


def _split_records(result: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The result without its per-face and per-identity records, and those records (each with
    its ``part``: ``utkface-<dataset>`` or ``lfw``)."""
    head = dict(result)
    head["utkface"] = {d: {k: v for k, v in run.items() if k != "faces"}
                       for d, run in result["utkface"].items()}
    records = [{"part": f"utkface-{d}", **face} for d, run in result["utkface"].items()
               for face in run["faces"]]
    if "lfw" in result:
        head["lfw"] = {k: v for k, v in result["lfw"].items() if k != "identities"}
        records += [{"part": "lfw", **r} for r in result["lfw"]["identities"]]
    return head, records


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "attributes") -> str:
    """Write the JSON results, the per-face records and one section of the markdown report.

    The records (predictions per face and condition) go to ``<json_path stem>.records.jsonl``,
    one compact JSON object per UTKFace face or LFW identity (about 4.5 kB a face, some 20 MB
    for the full run; indented inside the JSON they would take about 70 MB); the JSON file
    holds the settings, counts and metrics and names the records file.

    Args:
        result: :func:`run_attribute_benchmark`'s return value.
        json_path: where the JSON goes (None = neither it nor the records are written).
        markdown_path: the markdown report (None = not written).
        command: the command line, quoted in both.
        section: name of the report's section (``<!-- BEGIN name -->``) that is replaced.

    Returns:
        the markdown section.
    """
    body = report_markdown(result, command)
    if json_path is not None:
        head, records = _split_records(result)
        records_path = json_path.with_suffix(".records.jsonl")
        write_json(json_path, {"command": command, "records": records_path.name, **head})
        lines = "".join(json.dumps(r, separators=(",", ":"), allow_nan=False) + "\n"
                        for r in records)
        write_bytes_atomic(records_path, lines.encode("utf-8"))
    if markdown_path is not None:
        write_markdown_section(markdown_path, section, body)
    return body
