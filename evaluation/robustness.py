"""Robustness of OPOM universal masks on LFW: transforms, purifiers, matching directions,
verification, the mask-estimation attack and the per-photo baseline (issue 5).

The identities, photo split (10 training photos, 5 probes), distractor gallery, leave-one-out
folds and optimiser settings are those of :mod:`evaluation.opom_benchmark` (convex subspace, mode
``fast`` unless told otherwise). Per identity and fold, one universal mask is learned from the 10
training photos by the fold's surrogates (:func:`cloak.opom.learn_mask`), and the fold's tested
black boxes are run on:

1. transforms (:data:`TRANSFORMS`): each probe is protected (:func:`cloak.opom.protect_photo` on
   its central face), rounded to 8 bits, transformed (:mod:`evaluation.transforms`: JPEG 95 / 85
   / 75 / 50, bicubic down-and-up 0.5x / 0.25x, Gaussian blur sigma 1), detected and aligned
   again (MTCNN, the face nearest the photo centre) and searched in the person's other CLEAN
   probes + the distractors. ``jitter``: the five landmarks found again are each moved by
   ``U[-jitter_px, jitter_px]`` photo pixels per coordinate (seeded per person and probe, the
   same offsets on the clean and the protected photo) before alignment, as a less precise
   detector would. The same transforms are run on the clean probes, so the table shows what a
   transform does on its own. ``none`` on protected probes is the OPOM benchmark's condition.
2. purifiers (:data:`PURIFIERS`): median 3 x 3, bilateral (OpenCV's tutorial setting), JPEG 30,
   applied like the transforms.
3. matching directions (:mod:`evaluation.verification`): protected probe vs clean gallery (=
   ``protected/none``), clean probe vs a gallery of the person's other probes protected, and
   protected vs protected.
4. verification: thresholds per black box at each FAR of :attr:`RobustnessSettings.fars`,
   calibrated on all unordered pairs of clean distractor photos (2,679 different people: 3.6
   million impostor pairs); a genuine pair is (probe ``i`` protected, probe ``j != i`` clean);
   protection rate = share of genuine pairs rejected, beside the clean false-reject rate (probe
   ``i`` clean, probe ``j`` clean) at the same threshold.
5. mask estimation (:mod:`evaluation.mask_attacks`): the attacker holds the first ``k`` of the
   person's 10 training photos protected (k in :attr:`RobustnessSettings.ks`), detects and aligns
   each, estimates the mask as the mean residual after each denoiser, subtracts it from each
   protected probe's aligned frame (the ``none`` re-detection) and searches it. The control runs
   the same attack with the CLEAN training photos on the clean probes. The correlation of each
   estimate with the true frame-space mask (feathered as pasted) is recorded, and an oracle
   subtracts the true mask itself (the most an estimate could achieve).
6. per-photo baseline (Fawkes / LowKey style): for each probe its own mask, learned by the same
   surrogates with the same settings from that one photo (``learn_mask([training_face(probe)])``),
   pasted like the universal one. Seconds per protected photo: baseline = learn + paste; universal
   = learn / n_train + paste (amortised over the training photos) and paste alone (the mask
   exists), timed in the same run on the same machine.

Masks are stored as numpy ``.npy`` float32 (``allow_pickle=False``) with a JSON sidecar (the
photos that learned them, the surrogates, the learning seconds) under
``cache_dir/robustness/masks/<digest>/<person>__<fold>[__<probe>].npy``, the digest covering the
optimiser settings and the weights of the detector and every white box, so reruns with other
conditions reuse them. Finished identities (ranks, genuine pair scores, correlations, timings; no
features, no masks) are stored by :class:`evaluation.report.RecordStore` under
``cache_dir/robustness/runs/<digest>/<person>.json``, so an interrupted run resumes.

>>> # result = run_robustness(RobustnessSettings(BenchmarkSettings(limit=2, loo="one")))
>>> # write_report(result, Path("docs/results/robustness.json"), Path("docs/BENCHMARKS.md"))
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from attackers import zoo
from evaluation.lfw import central_faces
from evaluation.mask_attacks import DENOISERS, estimate_mask, mask_correlation, subtract_mask
from evaluation.opom_benchmark import (
    _STORE_IGNORES,
    BLACK_BOXES,
    WHITE_BOXES,
    BenchmarkSettings,
    Fold,
    _embed,
    _paste_probes,
    _person_generator,
    _usable_photos,
    distractor_features,
)
from evaluation.protocol import bootstrap_interval, psr, split_photos
from evaluation.report import RecordStore, key_digest, markdown_table, publish, write_json
from evaluation.transforms import TRANSFORMS as PHOTO_TRANSFORMS
from evaluation.verification import (
    far_threshold,
    gallery_ranks,
    genuine_scores,
    impostor_scores,
    rejection_rate,
)

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer

__all__ = [
    "DIRECTIONS",
    "KS",
    "PURIFIERS",
    "TRANSFORMS",
    "MaskStore",
    "RobustnessSettings",
    "report_markdown",
    "run_robustness",
    "write_report",
]

log = logging.getLogger(__name__)

#: Transform conditions in report order: ``none`` (as written), the exact photo transforms of
#: :mod:`evaluation.transforms`, and ``jitter`` (landmarks moved before alignment).
TRANSFORMS: tuple[str, ...] = ("none", "jpeg95", "jpeg85", "jpeg75", "jpeg50", "resize0.5",
                               "resize0.25", "blur1", "jitter")
#: Purifiers an attacker applies before recognition.
PURIFIERS: tuple[str, ...] = ("median3", "bilateral", "jpeg30")
#: Matching directions beside protected probe vs clean gallery (``protected/none``).
DIRECTIONS: tuple[str, ...] = ("clean-vs-protected", "protected-vs-protected")
#: How many protected photos the mask-estimation attacker holds.
KS: tuple[int, ...] = (2, 5, 10)


@dataclass(frozen=True)
class RobustnessSettings:
    """What :func:`run_robustness` runs.

    Attributes:
        opom: the OPOM benchmark's settings: LFW folder, identities (``limit``, ``people``),
            distractors, folds (``loo``/``folds``), optimiser (``mode`` and overrides, ``seed``;
            the subspace is always convex), split (``n_train``, ``n_probe``), ``n_boot``,
            ``cache_dir`` (distractor features as in the OPOM benchmark; masks and records under
            ``cache_dir/robustness``), ``batch``, ``progress``. Its ``conditions`` are unused.
        transforms: transform and purifier conditions, names of :data:`TRANSFORMS` +
            :data:`PURIFIERS`, run on protected and clean probes.
        jitter_px: landmark jitter of the ``jitter`` condition, photo pixels (>= 0).
        ks: photos the mask-estimation attacker holds, each in [1, n_train].
        denoisers: the attack's denoisers (keys of :data:`evaluation.mask_attacks.DENOISERS`).
        fars: false-accept rates of the verification thresholds, each in (0, 1).
        baseline: run the per-photo baseline.
    """

    opom: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    transforms: tuple[str, ...] = TRANSFORMS + PURIFIERS
    jitter_px: float = 2.0
    ks: tuple[int, ...] = KS
    denoisers: tuple[str, ...] = tuple(DENOISERS)
    fars: tuple[float, ...] = (1e-2, 1e-3)
    baseline: bool = True

    def check(self) -> None:
        """Raise ValueError naming every invalid setting."""
        problems = []
        known = TRANSFORMS + PURIFIERS
        bad = [t for t in self.transforms if t not in known]
        if bad or "none" not in self.transforms:
            problems.append(f"transforms must include 'none' and come from {known}; got unknown "
                            f"{bad}")
        if not self.jitter_px >= 0:
            problems.append(f"jitter_px must be >= 0, got {self.jitter_px}")
        if not all(1 <= k <= self.opom.n_train for k in self.ks):
            problems.append(f"ks must lie in [1, n_train = {self.opom.n_train}], got {self.ks}")
        bad = [d for d in self.denoisers if d not in DENOISERS]
        if bad or not self.denoisers:
            problems.append(f"unknown or no denoisers {bad}; choose from {tuple(DENOISERS)}")
        if not all(0 < f < 1 for f in self.fars) or not self.fars:
            problems.append(f"fars must lie in (0, 1), got {self.fars}")
        if problems:
            raise ValueError("invalid robustness settings: " + "; ".join(problems))
        self.opom.fold_plan()
        self.opom.config("convex")


# ----------------------------------------------------------------------------- stores


class MaskStore:
    """Learned masks on disk: ``<name>.npy`` (float32, no pickle) + ``<name>.json`` sidecar.

    The folder is ``cache_dir/robustness/masks/<first 16 hex digits of a SHA-256 over key>``.
    A mask is reused only when its sidecar's ``meta`` equals the one asked for (the photos and
    surrogates that learned it) and the array has the expected shape.

    Args:
        cache_dir: the benchmark's cache folder.
        key: JSON-able description of what every mask depends on (optimiser settings, weights).
    """

    def __init__(self, cache_dir: Path, key: dict[str, Any]) -> None:
        self.folder = cache_dir / "robustness" / "masks" / key_digest(key)

    def load(self, name: str, meta: dict[str, Any]) -> tuple[torch.Tensor, float] | None:
        """The stored mask ``name`` and its learning seconds, or None (absent, stale, unreadable).

        Args:
            name: file stem, e.g. ``"Colin_Powell__A"``.
            meta: what the mask must have been learned from (compared with the sidecar).

        Returns:
            ((3, 224, 224) float32 mask in pixel levels, seconds it took to learn) or None.
        """
        from attackers.frame import FRAME_SIZE

        array_path, meta_path = self.folder / f"{name}.npy", self.folder / f"{name}.json"
        if not (array_path.exists() and meta_path.exists()):
            return None
        try:
            side = json.loads(meta_path.read_text(encoding="utf-8"))
            array = np.load(array_path, allow_pickle=False)
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable stored mask (%s); learning it again", array_path, err)
            return None
        if side.get("meta") != json.loads(json.dumps(meta)) or array.shape != (
                3, FRAME_SIZE, FRAME_SIZE) or array.dtype != np.float32:
            log.warning("%s: stored mask does not match its photos or shape; learning it again",
                        array_path)
            return None
        return torch.from_numpy(array), float(side["learn_s"])

    def save(self, name: str, mask: torch.Tensor, meta: dict[str, Any], learn_s: float) -> None:
        """Store ``mask`` (3, 224, 224) with its sidecar (``meta`` and ``learn_s``), atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        array_path = self.folder / f"{name}.npy"
        tmp = self.folder / f"{name}.tmp.npy"
        np.save(tmp, mask.detach().cpu().float().numpy(), allow_pickle=False)
        tmp.replace(array_path)
        write_json(self.folder / f"{name}.json", {
            "array": "(3, 224, 224) float32 mask in pixel levels, canonical frame",
            "meta": meta, "learn_s": learn_s})


def _stores(settings: RobustnessSettings, folds: Sequence[Fold],
            distractor_files: Sequence[Path]) -> tuple[RecordStore, MaskStore]:
    """The identity records' store and the mask store for these settings.

    Masks depend on the optimiser settings (convex) and the weights of the detector and every
    white box (so any fold plan reuses them; each mask's sidecar names its photos and
    surrogates, checked on loading); records also on the folds, the
    distractor files, the black boxes' weights and the conditions (not on ``fars``: records
    hold the genuine pair scores, thresholds are applied in the summary).
    """
    opom = settings.opom
    weights = {m: zoo.weights_digests(m) for m in sorted({*WHITE_BOXES, "mtcnn"})}
    masks = MaskStore(opom.cache_dir, {
        "config": asdict(opom.config("convex")), "weights": weights})
    tested = sorted({BLACK_BOXES[t][0] for f in folds for t in f.tested})
    records = RecordStore(opom.cache_dir / "robustness", {
        "settings": {k: v for k, v in asdict(opom).items() if k not in _STORE_IGNORES},
        "config": asdict(opom.config("convex")),
        "folds": [asdict(f) for f in folds],
        "distractors": [p.name for p in distractor_files],
        "weights": {**weights, **{m: zoo.weights_digests(m) for m in tested}},
        "robustness": {k: v for k, v in asdict(settings).items() if k not in ("opom", "fars")},
    })
    return records, masks


# ----------------------------------------------------------------------------- one identity


@dataclass
class _Models:
    detector: MTCNN
    recognizers: dict[str, Recognizer]
    surrogates: dict[str, Recognizer]


def _jitter_offsets(person: str, count: int, px: float, seed: int) -> torch.Tensor:
    """(count, 5, 2) landmark offsets ``U[-px, px]``, seeded by ``seed`` and the person."""
    generator = _person_generator(person, seed)
    return (torch.rand((count, 5, 2), generator=generator) * 2 - 1) * px


def _frames_after(photos: Sequence[torch.Tensor], condition: str, detector: MTCNN,
                  offsets: torch.Tensor | None = None) -> list[torch.Tensor | None]:
    """Aligned frames (3, 224, 224) of the photos after a condition; None where no face is found.

    Args:
        photos: (3, H, W) photos in [0, 255], 8-bit levels.
        condition: ``none``, ``jitter`` or a name of :data:`evaluation.transforms.TRANSFORMS`.
        detector: MTCNN.
        offsets: (len(photos), 5, 2) landmark offsets in photo pixels (needed by ``jitter``).
    """
    from cloak.faces.align import similarity_to_frame, to_frame

    if condition not in ("none", "jitter"):
        photos = [PHOTO_TRANSFORMS[condition](p) for p in photos]
    faces = central_faces(photos, detector)
    if condition != "jitter":
        return [None if f is None else f.frame for f in faces]
    if offsets is None:
        raise ValueError("the jitter condition needs landmark offsets")
    frames: list[torch.Tensor | None] = []
    for photo, face, offset in zip(photos, faces, offsets, strict=True):
        if face is None:
            frames.append(None)
            continue
        matrix = similarity_to_frame((face.detection.landmarks + offset)[None])
        frames.append(to_frame(photo, matrix)[0].clamp(0, 255))
    return frames


def _entry(queries: dict[str, torch.Tensor], enrolled: dict[str, torch.Tensor],
           gallery: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Ranks and undetected counts of each recognizer's queries against its gallery."""
    return {"ranks": {n: gallery_ranks(q, enrolled[n], gallery[n]).tolist()
                      for n, q in queries.items()},
            "undetected": {n: int(torch.isnan(q[:, 0]).sum()) for n, q in queries.items()}}


def _merge(record: dict[str, Any], name: str, entry: dict[str, Any]) -> None:
    """Add a fold's recognizers to condition ``name`` of the record."""
    into = record["conditions"].setdefault(name, {"ranks": {}, "undetected": {}})
    into["ranks"].update(entry["ranks"])
    into["undetected"].update(entry["undetected"])


def _scores(values: np.ndarray) -> list[float | None]:
    """JSON-ready pair scores: None where a photo had no face."""
    return [None if math.isnan(v) else float(v) for v in values]


def _mask(masks: MaskStore, name: str, photos: Sequence[Any], fold: Fold,
          models: _Models, settings: RobustnessSettings) -> tuple[torch.Tensor, float, bool]:
    """The mask learned from ``photos`` by the fold's surrogates: stored, or learned and stored.

    Returns:
        (mask (3, 224, 224), seconds to learn it (training faces + optimisation), reused).
    """
    from cloak.opom import learn_mask, training_face

    meta = {"photos": [p.path.name for p in photos], "surrogates": list(fold.surrogates)}
    stored = masks.load(name, meta)
    if stored is not None:
        return stored[0], stored[1], True
    start = time.perf_counter()
    faces = [training_face(p.pixels, p.face) for p in photos]
    delta = learn_mask(faces, [models.surrogates[s] for s in fold.surrogates],
                       settings.opom.config("convex"))
    learn_s = time.perf_counter() - start
    masks.save(name, delta, meta, learn_s)
    return delta, learn_s, False


def _subtracted(frames: Sequence[torch.Tensor | None],
                estimate: torch.Tensor) -> list[torch.Tensor | None]:
    """Each aligned frame (3, 224, 224) minus the estimate (clipped); None stays None."""
    kept = [i for i, f in enumerate(frames) if f is not None]
    out: list[torch.Tensor | None] = [None] * len(frames)
    if kept:
        cleaned = subtract_mask(torch.stack([frames[i] for i in kept]), estimate)
        for row, i in enumerate(kept):
            out[i] = cleaned[row]
    return out


def _estimation(record: dict[str, Any], prefix: str, sample: Sequence[torch.Tensor | None],
                probes: Sequence[torch.Tensor | None], names: Sequence[str],
                models: _Models, enrolled: dict[str, torch.Tensor],
                gallery: dict[str, torch.Tensor], settings: RobustnessSettings,
                true_mask: torch.Tensor | None) -> dict[str, Any]:
    """The mask-estimation attack for every denoiser and k; ranks go to ``prefix/<d>/k<k>``.

    Args:
        sample: the attacker's aligned frames (None = no face found), in order; the first ``k``
            with a face are used.
        probes: the aligned frames of the probes to attack (None = no face found).
        true_mask: (3, 224, 224) the mask as pasted (feathered), for the correlation; None for the
            clean control.

    Returns:
        per ``<d>/k<k>``: photos used and the estimate's correlation with ``true_mask``.
    """
    found = [f for f in sample if f is not None]
    info: dict[str, Any] = {}
    for denoiser in settings.denoisers:
        for k in settings.ks:
            key = f"{denoiser}/k{k}"
            if not found:
                info[key] = {"photos": 0, "correlation": None}
                continue
            estimate = estimate_mask(torch.stack(found[:k]), denoiser)
            attacked = _subtracted(probes, estimate)
            queries = {n: _embed(models.recognizers[n], attacked) for n in names}
            _merge(record, f"{prefix}/{key}", _entry(queries, enrolled, gallery))
            info[key] = {"photos": len(found[:k]), "correlation": None if true_mask is None
                         else mask_correlation(estimate, true_mask)}
    return info


def _run_identity(person: str, train: Sequence[Any], probes: Sequence[Any],
                  settings: RobustnessSettings, folds: Sequence[Fold], models: _Models,
                  gallery: dict[str, torch.Tensor], masks: MaskStore,
                  say: Callable[[str], None]) -> dict[str, Any]:
    """Every condition of one identity: ranks, genuine pair scores, correlations, timings."""
    from cloak.faces.align import feather_weight

    opom = settings.opom
    config = opom.config("convex")
    tested = [t for f in folds for t in f.tested]
    recognizers = models.recognizers
    record: dict[str, Any] = {
        "person": person, "train": [p.path.name for p in train],
        "probes": [p.path.name for p in probes], "conditions": {}, "verification": {},
        "estimation": {}, "timing": {}}
    clean_frames = [p.face.frame for p in probes]
    clean = {n: _embed(recognizers[n], clean_frames) for n in tested}
    offsets = _jitter_offsets(person, len(probes), settings.jitter_px, opom.seed)
    clean_photos = [p.pixels for p in probes]
    for condition in settings.transforms:
        frames = _frames_after(clean_photos, condition, models.detector, offsets)
        queries = {n: _embed(recognizers[n], frames) for n in tested}
        _merge(record, f"clean/{condition}", _entry(queries, clean, gallery))
    for n in tested:
        record["verification"][n] = {"clean": _scores(genuine_scores(clean[n], clean[n]))}
    record["estimation"]["control"] = _estimation(
        record, "control", [p.face.frame for p in train], clean_frames, tested, models, clean,
        gallery, settings, None)

    for fold in folds:
        names = list(fold.tested)
        delta, learn_s, reused = _mask(masks, f"{person}__{fold.name}", train, fold, models,
                                       settings)
        photos, apply_s = _paste_probes(probes, delta, config.feather, opom.paste_mode)
        protected: dict[str, torch.Tensor] = {}
        for condition in settings.transforms:
            frames = _frames_after(photos, condition, models.detector, offsets)
            queries = {n: _embed(recognizers[n], frames) for n in names}
            _merge(record, f"protected/{condition}", _entry(queries, clean, gallery))
            if condition == "none":
                protected, none_frames = queries, frames
        _merge(record, "direction/clean-vs-protected",
               _entry({n: clean[n] for n in names}, protected, gallery))
        _merge(record, "direction/protected-vs-protected", _entry(protected, protected, gallery))
        for n in names:
            record["verification"][n]["protected"] = _scores(genuine_scores(protected[n],
                                                                            clean[n]))
        protected_train, _ = _paste_probes(train, delta, config.feather, opom.paste_mode)
        sample = _frames_after(protected_train, "none", models.detector)
        true_mask = delta * feather_weight(config.feather)
        record["estimation"][fold.name] = _estimation(
            record, "estimate", sample, none_frames, names, models, clean, gallery, settings,
            true_mask)
        queries = {n: _embed(recognizers[n], _subtracted(none_frames, true_mask)) for n in names}
        _merge(record, "estimate/oracle", _entry(queries, clean, gallery))
        timing: dict[str, Any] = {"learn_s": learn_s, "reused": reused, "apply_s": apply_s}
        if settings.baseline:
            own_photos, own_learn, own_apply, own_reused = [], [], [], []
            for probe in probes:
                own, seconds, was_stored = _mask(
                    masks, f"{person}__{fold.name}__{probe.path.stem}", [probe], fold, models,
                    settings)
                out, applied = _paste_probes([probe], own, config.feather, opom.paste_mode)
                own_photos += out
                own_learn.append(seconds)
                own_apply += applied
                own_reused.append(was_stored)
            frames = _frames_after(own_photos, "none", models.detector, offsets)
            queries = {n: _embed(recognizers[n], frames) for n in names}
            _merge(record, "per-photo", _entry(queries, clean, gallery))
            timing.update(baseline_learn_s=own_learn, baseline_apply_s=own_apply,
                          baseline_reused=own_reused)
        record["timing"][fold.name] = timing
        ranks = record["conditions"]["protected/none"]["ranks"]
        misses = sum(r >= 1 for n in names for r in ranks[n])
        say(f"{person} fold {fold.name}: mask {'reused' if reused else f'{learn_s:.1f} s'}; "
            f"protected top-1 misses {misses} of {len(names) * len(probes)}")
    return record


# ----------------------------------------------------------------------------- summary


def _psr_row(records: Sequence[dict[str, Any]], name: str, tested: Sequence[str],
             n_boot: int, seed: int) -> dict[str, Any]:
    """PSR@1 per recognizer and mean over recognizers, with bootstrap intervals over identities."""
    entries = [r["conditions"][name] for r in records]
    names = [t for t in tested if t in entries[0]["ranks"]]
    ranks = {n: np.array([e["ranks"][n] for e in entries]) for n in names}    # (I, P)
    row: dict[str, Any] = {"recognizers": {}}
    for n in names:
        hits = (ranks[n] >= 1).sum(1)
        low, high = bootstrap_interval(hits, np.full(len(hits), ranks[n].shape[1]),
                                       n_boot=n_boot, seed=seed)
        row["recognizers"][n] = {"psr@1": psr(ranks[n], 1), "ci@1": [low, high],
                                 "probes": int(ranks[n].size),
                                 "undetected": sum(e["undetected"][n] for e in entries)}
    hits = np.stack([(ranks[n] >= 1).sum(1) for n in names], 1)                 # (I, R)
    trials = np.stack([np.full(len(hits), ranks[n].shape[1]) for n in names], 1)
    low, high = bootstrap_interval(hits, trials, n_boot=n_boot, seed=seed)
    row["mean"] = {"psr@1": float(np.mean([psr(ranks[n], 1) for n in names])),
                   "ci@1": [low, high]}
    return row


def _rate_interval(rejected: np.ndarray, pairs: np.ndarray, n_boot: int,
                   seed: int) -> list[float]:
    low, high = bootstrap_interval(rejected, pairs, n_boot=n_boot, seed=seed)
    return [low, high]


#: The interval's key of each verification rate.
_CI = {"protection_rate": "protection_ci", "clean_frr": "clean_frr_ci"}


def _verification(records: Sequence[dict[str, Any]], tested: Sequence[str],
                  thresholds: dict[str, dict[str, dict[str, float]]], n_boot: int,
                  seed: int) -> dict[str, Any]:
    """Per FAR: per recognizer and mean, protection rate and clean false-reject rate."""
    out: dict[str, Any] = {}
    for far in next(iter(thresholds.values())):
        row: dict[str, Any] = {"recognizers": {}}
        counts = {}
        for n in tested:
            t = thresholds[n][far]["threshold"]
            per_kind = {}
            for kind in ("protected", "clean"):
                scores = [np.array([np.nan if s is None else s for s in r["verification"][n][kind]])
                          for r in records]
                rejected = np.array([rejection_rate(s, t) * len(s) for s in scores])
                pairs = np.array([len(s) for s in scores], dtype=np.float64)
                per_kind[kind] = (rejected, pairs)
            counts[n] = per_kind
            row["recognizers"][n] = {
                "threshold": t, "far_on_calibration": thresholds[n][far]["far"],
                "protection_rate": float(per_kind["protected"][0].sum()
                                         / per_kind["protected"][1].sum()),
                _CI["protection_rate"]: _rate_interval(*per_kind["protected"], n_boot, seed),
                "clean_frr": float(per_kind["clean"][0].sum() / per_kind["clean"][1].sum()),
                _CI["clean_frr"]: _rate_interval(*per_kind["clean"], n_boot, seed),
                "pairs": int(per_kind["protected"][1].sum())}
        mean: dict[str, Any] = {}
        for kind, rate in (("protected", "protection_rate"), ("clean", "clean_frr")):
            hits = np.stack([counts[n][kind][0] for n in tested], 1)             # (I, R)
            trials = np.stack([counts[n][kind][1] for n in tested], 1)
            mean[rate] = float(np.mean([row["recognizers"][n][rate] for n in tested]))
            mean[_CI[rate]] = _rate_interval(hits, trials, n_boot, seed)
        row["mean"] = mean
        out[far] = row
    return out


def _summarise(records: Sequence[dict[str, Any]], settings: RobustnessSettings,
               folds: Sequence[Fold],
               thresholds: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """PSR tables, verification, mask estimation and the per-photo baseline, over identities."""
    opom = settings.opom
    tested = [t for f in folds for t in f.tested]

    def row(name: str) -> dict[str, Any]:
        return _psr_row(records, name, tested, opom.n_boot, opom.seed)

    conditions = {f"protected/{t}": row(f"protected/{t}") for t in settings.transforms}
    conditions |= {f"clean/{t}": row(f"clean/{t}") for t in settings.transforms}
    conditions |= {f"direction/{d}": row(f"direction/{d}") for d in DIRECTIONS}
    estimation: dict[str, Any] = {}
    for d in settings.denoisers:
        for k in settings.ks:
            key = f"{d}/k{k}"
            correlations = [r["estimation"][f.name][key]["correlation"] for r in records
                            for f in folds]
            found = [c for c in correlations if c is not None]
            estimation[key] = {
                "denoiser": d, "k": k, "protected": row(f"estimate/{key}"),
                "control": row(f"control/{key}"),
                "correlation": float(np.mean(found)) if found else None,
                "photos": float(np.mean([r["estimation"][f.name][key]["photos"]
                                         for r in records for f in folds]))}
    estimation["oracle"] = {"protected": row("estimate/oracle")}
    stronger = {str(k): min(settings.denoisers, key=lambda d, k=k: estimation[
        f"{d}/k{k}"]["protected"]["mean"]["psr@1"]) for k in settings.ks}
    timing = [r["timing"][f.name] for r in records for f in folds]
    learn = np.array([t["learn_s"] for t in timing])
    apply = np.array([s for t in timing for s in t["apply_s"]])
    per_photo: dict[str, Any] = {
        "universal": conditions["protected/none"],
        "seconds": {
            "universal_learn_s_per_mask": float(learn.mean()),
            "universal_apply_s_per_photo": float(apply.mean()),
            "universal_amortised_s_per_photo": float(learn.mean() / opom.n_train + apply.mean()),
            "learn_s_per_fold": {f.name: float(np.mean([r["timing"][f.name]["learn_s"]
                                                        for r in records])) for f in folds},
            "masks_reused": int(sum(t["reused"] for t in timing))}}
    if settings.baseline:
        own = np.array([a + b for t in timing for a, b in zip(t["baseline_learn_s"],
                                                              t["baseline_apply_s"],
                                                              strict=True)])
        seconds = per_photo["seconds"]
        seconds.update(
            baseline_s_per_photo=float(own.mean()),
            baseline_learn_s_per_photo=float(np.mean([s for t in timing
                                                      for s in t["baseline_learn_s"]])),
            baseline_masks_reused=int(sum(sum(t["baseline_reused"]) for t in timing)),
            ratio_vs_amortised=float(own.mean() / seconds["universal_amortised_s_per_photo"]),
            ratio_vs_applied=float(own.mean() / seconds["universal_apply_s_per_photo"]))
        per_photo["baseline"] = row("per-photo")
    return {"conditions": conditions,
            "verification": _verification(records, tested, thresholds, opom.n_boot, opom.seed),
            "estimation": estimation, "stronger_denoiser": stronger, "per_photo": per_photo}


# ----------------------------------------------------------------------------- run


def _thresholds(gallery: dict[str, torch.Tensor],
                fars: Sequence[float]) -> dict[str, dict[str, dict[str, float]]]:
    """Per recognizer and FAR (as text): the threshold and the FAR it gives on the calibration."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, features in gallery.items():
        impostor = impostor_scores(features)
        out[name] = {}
        for far in fars:
            t = far_threshold(impostor, far)
            out[name][f"{far:g}"] = {"threshold": t, "far": float((impostor > t).mean()),
                                     "pairs": int(impostor.size)}
    return out


def run_robustness(settings: RobustnessSettings,
                   log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the robustness benchmark on LFW and return the results (JSON-ready; no features).

    Args:
        settings: what to run (:class:`RobustnessSettings`).
        log_line: called with one line per finished identity and fold (e.g. ``tqdm.write``);
            default: the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config``, ``folds``, ``people``, ``skipped``, ``distractors``,
        ``thresholds`` (per recognizer and FAR), per-identity ``identities`` records and
        ``summary`` (``conditions``: PSR@1 per recognizer and mean with 95% bootstrap intervals
        for ``protected/<t>``, ``clean/<t>``, ``direction/<d>``; ``verification`` per FAR;
        ``estimation`` per ``<denoiser>/k<k>`` and ``oracle``; ``stronger_denoiser`` per k;
        ``per_photo``: PSR and seconds of the universal mask and the per-photo baseline).

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import attackers

    settings.check()
    opom = settings.opom
    folds = opom.fold_plan()
    say = log_line or log.info
    started = time.perf_counter()
    people, distractor_files = opom.photo_sets()

    tested = [t for fold in folds for t in fold.tested]
    models = _Models(attackers.load("mtcnn"),
                     {n: attackers.load(BLACK_BOXES[n][0], reference=BLACK_BOXES[n][1])
                      for n in tested},
                     {s: attackers.load(s) for fold in folds for s in fold.surrogates})
    gallery = distractor_features(distractor_files, tested, models.recognizers, models.detector,
                                  opom.cache_dir, opom.batch, opom.progress)
    thresholds = _thresholds(gallery, settings.fars)
    runs, masks = _stores(settings, folds, distractor_files)

    records, skipped = [], []
    needed = opom.n_train + opom.n_probe
    for person_dir in tqdm(people, desc="identities", unit="person", disable=not opom.progress):
        done = runs.load(person_dir.name)
        if done is not None:
            records.append(done)
            continue
        start = time.perf_counter()
        usable, _ = _usable_photos(sorted(person_dir.glob("*.jpg")), needed, models.detector)
        split = split_photos(person_dir.name, usable, opom.n_train, opom.n_probe)
        if split is None:
            skipped.append({"person": person_dir.name,
                            "reason": f"{len(usable)} photos with a face, {needed} needed"})
            continue
        record = _run_identity(split.person, split.train, split.probes, settings, folds, models,
                               gallery, masks, say)
        record["seconds"] = time.perf_counter() - start
        runs.save(record["person"], record)
        records.append(record)
    if not records:
        raise ValueError(f"no identity of {opom.lfw / 'identities'} has {needed} photos "
                         "with a face")
    if runs.reused:
        say(f"resumed {runs.reused} stored identities from {runs.folder}")

    return {
        "benchmark": "robustness: OPOM universal masks under transforms, purifiers, matching "
                     "directions, verification, mask estimation; per-photo baseline (LFW)",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v)
                        for k, v in asdict(opom).items() if k not in ("folds", "conditions")},
                     **{k: v for k, v in asdict(settings).items() if k != "opom"}},
        "config": asdict(opom.config("convex")),
        "folds": [asdict(f) for f in folds],
        "people": [r["person"] for r in records],
        "skipped": skipped,
        "distractors": {"files": len(distractor_files),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "thresholds": thresholds,
        "records_folder": str(runs.folder),
        "masks_folder": str(masks.folder),
        "seconds_per_identity": float(np.mean([r["seconds"] for r in records])),
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "identities": records,
        "summary": _summarise(records, settings, folds, thresholds),
    }


# ----------------------------------------------------------------------------- report


def _cell(stats: dict[str, Any], rate: str = "psr@1", ci: str = "ci@1") -> str:
    low, high = stats[ci]
    return f"{stats[rate]:.3f} [{low:.2f}, {high:.2f}]"


def _label(name: str) -> str:
    kind, condition = name.split("/", 1)
    if kind == "direction":
        return {"clean-vs-protected": "clean probe vs protected gallery",
                "protected-vs-protected": "protected probe vs protected gallery"}[condition]
    what = "untouched" if condition == "none" else condition
    if condition in PURIFIERS:
        what = f"purifier {condition}"
    return f"{kind}: {what}"


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``robustness`` section of docs/BENCHMARKS.md: PSR per condition, verification, mask
    estimation and the per-photo baseline."""
    summary, settings, config = result["summary"], result["settings"], result["config"]
    tested = [t for f in result["folds"] for t in f["tested"]]
    fold_of = {t: f["name"] for f in result["folds"] for t in f["tested"]}
    header = ["condition", *[f"{t} ({fold_of[t]})" for t in tested], "mean"]

    def psr_cells(row: dict[str, Any]) -> list[str]:
        return [*[_cell(row["recognizers"][t]) for t in tested], _cell(row["mean"])]

    rows = [[_label(name), *psr_cells(row)] for name, row in summary["conditions"].items()]
    main = markdown_table(header, rows)

    ver_rows = []
    for far, row in summary["verification"].items():
        for t in [*tested, "mean"]:
            stats = row["mean"] if t == "mean" else row["recognizers"][t]
            threshold = "-" if t == "mean" else (
                f"{stats['threshold']:.3f} (FAR {stats['far_on_calibration']:.1e})")
            ver_rows.append([far, t, threshold,
                             _cell(stats, "protection_rate", "protection_ci"),
                             _cell(stats, "clean_frr", "clean_frr_ci")])
    verification = markdown_table(
        ["FAR", "recognizer", "threshold (FAR on calibration pairs)",
         "protected genuine pairs rejected", "clean genuine pairs rejected (FRR)"], ver_rows)

    est_rows = []
    for key, entry in summary["estimation"].items():
        if key == "oracle":
            continue
        corr = "-" if entry["correlation"] is None else f"{entry['correlation']:.2f}"
        est_rows.append([f"{entry['denoiser']}, k = {entry['k']}", f"{entry['photos']:.1f}", corr,
                         *psr_cells(entry["protected"]), _cell(entry["control"]["mean"])])
    est_rows.append(["oracle: the true mask subtracted", "-", "1", *psr_cells(
        summary["estimation"]["oracle"]["protected"]), "-"])
    estimation = markdown_table(
        ["attack", "photos used", "corr. with mask", *[f"{t} after attack" for t in tested],
         "mean after attack", "control: clean probes, mean PSR"], est_rows)
    stronger = ", ".join(f"k = {k}: {d}" for k, d in summary["stronger_denoiser"].items())

    per = summary["per_photo"]
    sec = per["seconds"]
    base_rows = [["universal mask, learning amortised over the training photos",
                  *psr_cells(per["universal"]), f"{sec['universal_amortised_s_per_photo']:.2f}"],
                 ["universal mask, already learned (paste only)", *psr_cells(per["universal"]),
                  f"{sec['universal_apply_s_per_photo']:.3f}"]]
    ratio = ""
    if "baseline" in per:
        base_rows.append(["per-photo mask (one optimisation per photo)",
                          *psr_cells(per["baseline"]), f"{sec['baseline_s_per_photo']:.2f}"])
        ratio = (f"\n\nPer-photo / universal seconds per protected photo: "
                 f"{sec['ratio_vs_amortised']:.1f}x (amortised), {sec['ratio_vs_applied']:.0f}x "
                 f"(mask already learned). Universal mask learning: "
                 f"{sec['universal_learn_s_per_mask']:.1f} s per mask on "
                 f"{settings['n_train']} photos ("
                 + ", ".join(f"fold {f} {s:.1f} s" for f, s in sec["learn_s_per_fold"].items())
                 + f"); per-photo learning {sec['baseline_learn_s_per_photo']:.1f} s. Masks "
                 f"reused from an earlier run (their stored learning time counts): "
                 f"{sec['masks_reused']} universal, {sec['baseline_masks_reused']} per-photo.")
    baseline = markdown_table(
        ["method", *[f"{t} PSR@1" for t in tested], "mean PSR@1", "seconds per protected photo"],
        base_rows) + ratio

    thresholds = next(iter(result["thresholds"].values()))
    pairs = next(iter(thresholds.values()))["pairs"]
    folds = "\n".join(f"- fold {f['name']}: surrogates {', '.join(f['surrogates'])} -> tested on "
                      f"{', '.join(f['tested'])}" for f in result["folds"])
    skipped = "; ".join(f"{s['person']} ({s['reason']})" for s in result["skipped"]) or "none"
    dist = result["distractors"]
    intro = (
        f"`{command or 'run_robustness'}`: {len(result['people'])} identities (skipped: "
        f"{skipped}); the OPOM benchmark's split ({settings['n_train']} training photos learn "
        f"one universal mask per fold, {settings['n_probe']} probes), gallery (the person's "
        f"other probes + {dist['with_face']} distractors) and leave-one-out folds. Optimiser: "
        f"mode {settings['mode']}, convex, eps {config['eps']:g}/255, {config['steps']} steps, "
        f"expectation over transformation {config.get('eot', False)}, seed {config['seed']}. "
        f"Each probe is protected, rounded to 8 bits, transformed, then "
        f"detected and aligned again (MTCNN) and searched by each black box; a probe with no "
        f"face found counts as protected. `jitter`: the 5 landmarks found again moved by "
        f"U[-{settings['jitter_px']:g}, {settings['jitter_px']:g}] photo pixels each before "
        f"alignment. `clean:` rows run the same transform on the unprotected probe.\n\n"
        f"Folds:\n{folds}\n")
    learned = ("robust option: learned with expectation over transformation"
               if config.get("eot") else "default optimiser")
    return (
        f"## Robustness of universal masks (LFW, {learned})\n\n{intro}\n"
        f"PSR@1 [95% bootstrap interval over identities] (protected / clean probes vs a clean "
        f"gallery unless the row says otherwise):\n\n{main}\n\n"
        f"Verification: thresholds per black box at each FAR, calibrated on {pairs} pairs of "
        f"clean distractor photos (all different people); a genuine pair is a probe (protected, "
        f"or clean for the false-reject rate) against each of the person's other clean "
        f"probes; a pair is accepted when its cosine is above the threshold:\n\n"
        f"{verification}\n\n"
        f"Mask-estimation attack: the attacker detects and aligns the first k of the person's "
        f"training photos, protected, estimates the mask as the mean of (frame - denoised "
        f"frame) and subtracts it from each protected probe's aligned frame. Control: the same "
        f"attack from the clean training photos on the clean probes. Oracle: the true mask "
        f"(feathered) subtracted instead of an estimate. Stronger denoiser (lower "
        f"mean PSR) per k: {stronger}.\n\n{estimation}\n\n"
        f"Per-photo baseline (Fawkes / LowKey style: the same surrogates and settings, one "
        f"optimisation per probe) against the universal mask, timed in the same run:\n\n"
        f"{baseline}\n\n"
        f"Wall time {result['wall_s']:.0f} s ({result['seconds_per_identity']:.1f} s per "
        f"identity); {result['torch_threads']} torch threads on a shared 2-core CPU.\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "robustness") -> str:
    """Write the JSON results and one section of the markdown report; return the section.

    Args:
        result: :func:`run_robustness`'s return value.
        json_path: where the JSON goes (None = not written).
        markdown_path: the markdown report (None = not written).
        command: the command line, quoted in both.
        section: name of the report's section (``<!-- BEGIN name -->``) that is replaced.
    """
    return publish(result, report_markdown(result, command), json_path, markdown_path, command,
                   section)
