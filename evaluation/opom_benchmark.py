"""The OPOM protocol on LFW: how often black-box recognizers fail to find a protected person.

For each identity of ``lfw/identities`` (sorted), :func:`~evaluation.protocol.split_photos` takes
the first 10 photos with a face to learn a mask and the next 5 as probes (an identity with
fewer usable photos is skipped and listed). For each condition:

- ``clean``: the probe as it is;
- ``noise``: uniform noise ``U[-eps, eps]`` in the canonical frame (seeded per person), pasted
  like a mask;
- ``center`` / ``affine`` / ``convex``: an OPOM mask learned with that subspace model
  (:func:`cloak.opom.learn_mask`) from the 10 training photos by the fold's surrogates;
- ``refine``: the ``convex`` mask refined for each probe by ``refine_steps`` more steps on that
  probe alone (:func:`cloak.opom.refine_mask`, ``cloak protect --refine``): a mask per photo,
  no longer one universal mask; its ``learn_s`` is the universal mask's, ``refine_s`` per probe,

each probe is protected through the shipped path (:func:`cloak.opom.protect_photo` on its
central face), rounded to 8 bits as a written file would be, then detected and aligned again
(MTCNN, the face nearest the photo centre), as an attacker would do. Each black-box recognizer
searches it in a gallery of the person's other clean probes and all distractors (photos of
``lfw/distractors`` with a face) by cosine similarity; PSR@1 and PSR@5 (:mod:`evaluation.protocol`)
are reported per recognizer and averaged over recognizers, with percentile-bootstrap intervals
over identities. A probe in which no face is found again counts as protected (the attacker has
nothing to search with) and is counted in ``undetected``.

Leave-one-out (shared/DESIGN.md section 3): a recognizer is only tested on masks made by
surrogates of other models (dlib-resnet and dlib-native are one model). :data:`FOLD_PLANS`:

- ``"one"`` (fold A only): surrogates facenet, faceres, mobilefacenet; tested: dlib-native,
  sface;
- ``"two"`` (A and B, the default): B = surrogates dlib-resnet, sface; tested: facenet, faceres,
  mobilefacenet; each of the five models is tested exactly once, two masks per person and
  subspace;
- ``"full"``: one fold per tested recognizer, the four other models as surrogates (five masks
  per person and subspace).

Tested recognizers run their reference runtime where the zoo has one (dlib-native = dlib-bin;
sface, mobilefacenet = onnxruntime); facenet and faceres have only the torch port, run without
gradients.

Also measured: PSNR, SSIM and L-inf of each protected full photo against its original
(:mod:`evaluation.quality`, on the 8-bit pixels), seconds to learn a mask, to protect a photo
(paste + rounding) and to detect faces in a photo, and wall seconds per identity.

Every finished identity is written to ``cache_dir/runs/<settings digest>/<person>.json`` (ranks,
quality, timings; no features), so an interrupted run resumes where it stopped.

Distractor landmarks and features are cached under ``cache_dir`` as numpy arrays (loaded with
``allow_pickle=False``), each with a JSON sidecar holding the file list, a SHA-256 over the files'
names and contents and the model's weight digests; a cache whose sidecar does not match is rebuilt.
They describe public LFW photos only; no feature of a protected person is written.

>>> # result = run_benchmark(BenchmarkSettings(limit=3, loo="one", mode="fast"))
>>> # write_report(result, Path("results/opom_benchmark.json"), Path("docs/BENCHMARKS.md"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import platform
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from attackers import zoo
from evaluation.lfw import central_faces, identity_folders, load_rgb
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW
from evaluation.protocol import bootstrap_interval, identity_ranks, psr, split_photos
from evaluation.quality import photo_quality
from evaluation.report import RecordStore, markdown_table, publish, write_json
from evaluation.verification import gallery_ranks

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.faces import AlignedFace
    from cloak.opom import OpomConfig

__all__ = [
    "BLACK_BOXES",
    "CONDITIONS",
    "DEFAULT_CONDITIONS",
    "DEFAULT_REFINE_STEPS",
    "FOLD_PLANS",
    "WHITE_BOXES",
    "BenchmarkSettings",
    "Fold",
    "check_folds",
    "distractor_features",
    "model_of",
    "report_markdown",
    "run_benchmark",
    "write_report",
]

log = logging.getLogger(__name__)


#: Objective ablations: the convex mask with the mode's optimiser settings and only the named
#: optional terms of :data:`cloak.opom.TERMS` on (``opom`` = none: the OPOM objective alone).
ABLATIONS: dict[str, tuple[str, ...]] = {
    "opom": (), "opom+linkage": ("linkage",), "opom+views": ("views",),
    "opom+linkage+views": ("linkage", "views")}
#: Conditions in report order: ``center``, ``affine``, ``convex`` are OPOM subspace models with
#: the mode's objective as shipped, ``refine`` the convex mask refined per probe, then the
#: ablations.
CONDITIONS: tuple[str, ...] = ("clean", "noise", "center", "affine", "convex", "refine",
                               *ABLATIONS)
_SUBSPACES = ("center", "affine", "convex")
_MASKED = (*_SUBSPACES, "refine", *ABLATIONS)  # conditions whose masks the folds learn
#: What runs when no conditions are named: the shipped mask beside clean and noise.
DEFAULT_CONDITIONS: tuple[str, ...] = ("clean", "noise", "convex")
#: Photos with a face before the probes (the 10-photo training set of the OPOM protocol).
TRAIN_POOL = 10
#: Steps of per-probe refinement in the ``refine`` condition.
DEFAULT_REFINE_STEPS = 10
#: Recognizers that can be tested: name -> (zoo name, use the zoo's reference runtime).
BLACK_BOXES: dict[str, tuple[str, bool]] = {
    "dlib-native": ("dlib-native", False),
    "sface": ("sface", True),
    "mobilefacenet": ("mobilefacenet", True),
    "facenet": ("facenet", False),
    "faceres": ("faceres", False),
}
#: White-box recognizers that can be surrogates.
WHITE_BOXES: tuple[str, ...] = ("facenet", "dlib-resnet", "sface", "mobilefacenet", "faceres")
_SAME_MODEL = {"dlib-native": "dlib", "dlib-resnet": "dlib"}


def model_of(name: str) -> str:
    """The underlying model of a recognizer name (dlib-resnet and dlib-native are ``"dlib"``)."""
    return _SAME_MODEL.get(name, name)


@dataclass(frozen=True)
class Fold:
    """One leave-one-out fold: masks made by ``surrogates`` are tested on ``tested``.

    Attributes:
        name: short label used in the report.
        surrogates: white-box zoo names that learn the masks.
        tested: black-box names (keys of :data:`BLACK_BOXES`) that search the protected probes.
    """

    name: str
    surrogates: tuple[str, ...]
    tested: tuple[str, ...]


_FOLD_A = Fold("A", ("facenet", "faceres", "mobilefacenet"), ("dlib-native", "sface"))
_FOLD_B = Fold("B", ("dlib-resnet", "sface"), ("facenet", "faceres", "mobilefacenet"))
#: The fold plans behind ``--loo``.
FOLD_PLANS: dict[str, tuple[Fold, ...]] = {
    "one": (_FOLD_A,),
    "two": (_FOLD_A, _FOLD_B),
    "full": tuple(Fold(f"LOO-{t}", tuple(w for w in WHITE_BOXES if model_of(w) != model_of(t)),
                       (t,)) for t in BLACK_BOXES),
}


def check_folds(folds: Sequence[Fold]) -> None:
    """Raise ValueError unless the folds are a valid leave-one-out design.

    Every surrogate is a white box, every tested name a black box, no tested recognizer shares a
    model with a surrogate of its fold, and no recognizer is tested in two folds.
    """
    if not folds:
        raise ValueError("no folds given")
    seen: set[str] = set()
    for fold in folds:
        unknown = [s for s in fold.surrogates if s not in WHITE_BOXES]
        unknown += [t for t in fold.tested if t not in BLACK_BOXES]
        if unknown or not fold.surrogates or not fold.tested:
            raise ValueError(f"fold {fold.name}: needs surrogates among {WHITE_BOXES} and tested "
                             f"recognizers among {tuple(BLACK_BOXES)}; got unknown {unknown}")
        shared = {model_of(s) for s in fold.surrogates} & {model_of(t) for t in fold.tested}
        if shared:
            raise ValueError(f"fold {fold.name}: {sorted(shared)} would be both surrogate and "
                             "tested (leave-one-out forbids it)")
        twice = seen & set(fold.tested)
        if twice:
            raise ValueError(f"fold {fold.name}: {sorted(twice)} already tested in another fold")
        seen |= set(fold.tested)


@dataclass(frozen=True)
class BenchmarkSettings:
    """What :func:`run_benchmark` runs.

    Attributes:
        lfw: the ``lfw`` folder (``identities/`` and ``distractors/``).
        limit: only the first ``limit`` identities (sorted by name); None = all.
        people: only these identities (folder names); None = all.
        distractors: only the first ``distractors`` distractor files; None = all 2,679.
        conditions: a subset of :data:`CONDITIONS`, reported in that order.
        loo: a key of :data:`FOLD_PLANS` (ignored when ``folds`` is given).
        folds: an explicit fold design (checked by :func:`check_folds`).
        mode: a key of :data:`cloak.opom.MODES`: the optimiser's settings (its surrogates are
            replaced by each fold's); default the one ``cloak protect`` ships.
        steps, eps, step_size, momentum, diversity, ti_kernel, paste, feather, balance, eot,
            linkage, views: overrides of the mode's
            :class:`~cloak.opom.OpomConfig` fields (None = the mode's value).
        paste_mode: resampling of the mask into the probe photo (``"bilinear"``/``"nearest"``).
        refine_steps: per-probe steps of the ``refine`` condition (recorded in its entries; a
            stored entry made with other steps is computed again).
        seed: seeds the masks, the noise and the bootstrap.
        n_train, n_probe: photos per identity that learn the mask / are probes. The probes
            follow the first ``max(n_train, TRAIN_POOL)`` photos with a face, so an enrolment
            from fewer photos (``n_train = 1``) is tested on the same probes as from 10.
        n_boot: bootstrap replicates.
        cache_dir: where distractor landmarks and features are cached.
        batch: images per detector / recognizer call on the distractors.
        progress: show progress bars.
    """

    lfw: Path = DEFAULT_LFW
    limit: int | None = None
    people: tuple[str, ...] | None = None
    distractors: int | None = None
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    loo: str = "two"
    folds: tuple[Fold, ...] | None = None
    mode: str = "balanced"
    steps: int | None = None
    eps: float | None = None
    step_size: float | None = None
    momentum: float | None = None
    diversity: float | None = None
    ti_kernel: int | None = None
    paste: str | None = None
    feather: float | None = None
    balance: bool | None = None
    eot: bool | None = None
    linkage: float | None = None
    views: bool | None = None
    paste_mode: str = "bilinear"
    refine_steps: int = DEFAULT_REFINE_STEPS
    seed: int = 0
    n_train: int = 10
    n_probe: int = 5
    n_boot: int = 2000
    cache_dir: Path = DEFAULT_CACHE
    batch: int = 16
    progress: bool = True

    def fold_plan(self) -> tuple[Fold, ...]:
        """The folds to run (``folds`` or ``FOLD_PLANS[loo]``), checked."""
        if self.folds is None and self.loo not in FOLD_PLANS:
            raise ValueError(f"unknown leave-one-out plan {self.loo!r}; choose one of "
                             f"{tuple(FOLD_PLANS)}")
        folds = self.folds if self.folds is not None else FOLD_PLANS[self.loo]
        check_folds(folds)
        return folds

    def config(self, condition: str = "center") -> OpomConfig:
        """The optimiser settings of a masked condition: the mode's, with the overrides.

        ``center``, ``affine``, ``convex`` (and ``refine``'s start) use that subspace and the
        mode's objective as shipped; an ablation of :data:`ABLATIONS` uses the convex hull
        with only its terms on (:func:`cloak.opom.with_terms`).
        """
        from cloak.opom import MODES, with_terms

        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose one of {tuple(MODES)}")
        names = ("steps", "eps", "step_size", "momentum", "diversity", "ti_kernel", "paste",
                 "feather", "balance", "eot", "linkage", "views")
        changes = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        subspace = "convex" if condition in ("refine", *ABLATIONS) else condition
        config = replace(MODES[self.mode].config, subspace=subspace, seed=self.seed, **changes)
        return with_terms(config, ABLATIONS[condition]) if condition in ABLATIONS else config

    def photo_sets(self) -> tuple[list[Path], list[Path]]:
        """The identity folders (sorted, filtered by ``people`` and ``limit``) and distractors.

        Raises:
            FileNotFoundError: an LFW folder is missing or empty; ValueError: ``people`` names
                an identity that does not exist.
        """
        distractor_dir = self.lfw / "distractors"
        if not distractor_dir.is_dir():
            raise FileNotFoundError(f"{distractor_dir}: LFW folder not found")
        people = identity_folders(self.lfw, self.people)[:self.limit]
        distractor_files = sorted(distractor_dir.glob("*.jpg"))[:self.distractors]
        if not people or not distractor_files:
            raise FileNotFoundError(f"{self.lfw}: no identities or no distractor photos")
        return people, distractor_files

    def check(self) -> None:
        """Raise ValueError naming every invalid setting."""
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"unknown or no conditions {bad}; choose from {CONDITIONS}")
        for name in ("limit", "distractors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.refine_steps < 1:
            raise ValueError(f"refine_steps must be >= 1, got {self.refine_steps}")
        if self.paste_mode not in ("bilinear", "nearest"):
            raise ValueError(f"paste_mode must be 'bilinear' or 'nearest', got {self.paste_mode!r}")
        self.fold_plan()
        self.config()


# ----------------------------------------------------------------------------- faces and features


def _embed(recognizer: Recognizer, frames: Sequence[torch.Tensor | None],
           batch: int = 16) -> torch.Tensor:
    """(N, D) L2-normalised features of frames, ``batch`` frames per call; a NaN row where a
    frame is None (no face)."""
    out = torch.full((len(frames), recognizer.dim), math.nan)
    kept = [i for i, f in enumerate(frames) if f is not None]
    for start in range(0, len(kept), batch):
        chunk = kept[start:start + batch]
        with torch.no_grad():
            out[chunk] = recognizer.embed(torch.stack([frames[i] for i in chunk])).float()
    return out


def _files_digest(files: Sequence[Path]) -> str:
    """SHA-256 over the files' names and contents, in order."""
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


class _ArrayCache:
    """A numpy array on disk with a JSON sidecar that must match for the array to be reused."""

    def __init__(self, folder: Path, stem: str, meta: dict[str, Any]) -> None:
        self.array_path = folder / f"{stem}.npy"
        self.meta_path = folder / f"{stem}.json"
        self.meta = meta

    def load(self, rows: int) -> np.ndarray | None:
        if not (self.array_path.exists() and self.meta_path.exists()):
            return None
        try:
            meta = json.loads(self.meta_path.read_text(encoding="utf-8"))
            array = np.load(self.array_path, allow_pickle=False)
        except (OSError, ValueError) as err:
            log.warning("%s: unreadable cache (%s); rebuilding", self.array_path, err)
            return None
        if meta != self.meta or len(array) != rows:
            log.warning("%s: cache does not match its sidecar or the files; rebuilding",
                        self.array_path)
            return None
        return array

    def save(self, array: np.ndarray) -> None:
        self.array_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.array_path.with_suffix(".tmp.npy")
        np.save(tmp, array, allow_pickle=False)
        tmp.replace(self.array_path)
        write_json(self.meta_path, self.meta)


def distractor_features(files: Sequence[Path], tested: Sequence[str],
                        recognizers: dict[str, Recognizer], detector: MTCNN, cache_dir: Path,
                        batch: int = 16, progress: bool = True) -> dict[str, torch.Tensor]:
    """Features of the distractor photos for each tested recognizer, from the cache or computed.

    Args:
        files: the distractor photos, in order.
        tested: black-box names (keys of :data:`BLACK_BOXES`).
        recognizers: the loaded recognizers by name.
        detector: MTCNN, used only when the landmark cache is missing.
        cache_dir: cache folder.
        batch: photos per detector / recognizer call.
        progress: show progress bars.

    Returns:
        name -> (N, D) float32 L2-normalised features, one row per photo with a face (the same
        photos for every recognizer).
    """
    from cloak.faces.align import similarity_to_frame, to_frame

    digest = _files_digest(files)
    base = {"files": [p.name for p in files], "files_sha256": digest}
    tag = f"distractors-{len(files)}-{digest[:12]}"
    marks_cache = _ArrayCache(cache_dir, f"mtcnn-{tag}", {
        **base, "array": "(N, 5, 2) float32 landmarks of the central face, photo pixels; NaN "
                         "where no face", "detector": zoo.weights_digests("mtcnn")})
    landmarks = marks_cache.load(len(files))
    if landmarks is None:
        landmarks = np.full((len(files), 5, 2), np.nan, dtype=np.float32)
        for i in tqdm(range(0, len(files), batch), desc="detect distractors", unit="batch",
                      disable=not progress):
            images = [load_rgb(p) for p in files[i:i + batch]]
            for j, face in enumerate(central_faces(images, detector)):
                if face is not None:
                    landmarks[i + j] = face.detection.landmarks.numpy()
        marks_cache.save(landmarks)
    has_face = ~np.isnan(landmarks).any(axis=(1, 2))
    caches = {name: _ArrayCache(cache_dir, f"{name}-{tag}", {
        **base, "array": "(N, D) float32 L2-normalised features; NaN where no face",
        "recognizer": name, "zoo": BLACK_BOXES[name][0], "reference_runtime": BLACK_BOXES[name][1],
        "weights": zoo.weights_digests(BLACK_BOXES[name][0]),
        "landmarks": marks_cache.array_path.name}) for name in tested}
    features = {name: cache.load(len(files)) for name, cache in caches.items()}
    missing = [name for name, feats in features.items() if feats is None]
    if missing:
        fresh = {name: np.full((len(files), recognizers[name].dim), np.nan, dtype=np.float32)
                 for name in missing}
        rows = np.flatnonzero(has_face)
        for i in tqdm(range(0, len(rows), batch), desc=f"embed distractors ({', '.join(missing)})",
                      unit="batch", disable=not progress):
            chunk = rows[i:i + batch]
            images = [load_rgb(files[r]) for r in chunk]
            matrices = similarity_to_frame(torch.from_numpy(landmarks[chunk]))
            frames = [to_frame(img, m[None])[0].clamp(0, 255)
                      for img, m in zip(images, matrices, strict=True)]
            for name in missing:
                fresh[name][chunk] = _embed(recognizers[name], frames).numpy()
        for name in missing:
            caches[name].save(fresh[name])
            features[name] = fresh[name]
    return {name: torch.from_numpy(feats[has_face]) for name, feats in features.items()}


# ----------------------------------------------------------------------------- one identity


@dataclass
class _Photo:
    path: Path
    pixels: torch.Tensor
    face: AlignedFace


def _usable_photos(paths: Sequence[Path], needed: int, detector: MTCNN) -> tuple[list[_Photo],
                                                                                 float]:
    """The first ``needed`` photos (in order) with a face, and seconds of detection per photo."""
    usable: list[_Photo] = []
    start, seen, i = time.perf_counter(), 0, 0
    while len(usable) < needed and i < len(paths):
        chunk = paths[i:i + needed - len(usable)]
        images = [load_rgb(p) for p in chunk]
        for path, image, face in zip(chunk, images, central_faces(images, detector),
                                     strict=True):
            if face is not None:
                usable.append(_Photo(path, image, face))
        seen += len(chunk)
        i += len(chunk)
    return usable, (time.perf_counter() - start) / max(seen, 1)


def _person_generator(person: str, seed: int) -> torch.Generator:
    """A CPU generator seeded by ``seed`` and the person's name (the same draws every run)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(person.encode()))


def _noise(person: str, eps: float, seed: int) -> torch.Tensor:
    """Uniform noise U[-eps, eps] in the canonical frame, seeded by ``seed`` and the person."""
    from attackers.frame import FRAME_SIZE
    from cloak.steps import random_start

    return random_start((3, FRAME_SIZE, FRAME_SIZE), eps, _person_generator(person, seed))


def _paste_probes(probes: Sequence[_Photo], delta: torch.Tensor, feather: float,
                  paste_mode: str) -> tuple[list[torch.Tensor], list[float]]:
    """Each probe with ``delta`` pasted on its face, rounded to 8 bits ((3, H, W) in [0, 255]),
    and the seconds each paste took."""
    from cloak.opom import protect_photo

    photos, seconds = [], []
    for probe in probes:
        start = time.perf_counter()
        photos.append(protect_photo(probe.pixels, [probe.face], delta, feather=feather,
                                    mode=paste_mode).round().clamp(0, 255))
        seconds.append(time.perf_counter() - start)
    return photos, seconds


@dataclass
class _Protected:
    """Outcome of protecting one person's probes with one mask."""

    queries: dict[str, torch.Tensor]
    quality: list[dict[str, float]]
    protect_s: list[float] = field(default_factory=list)


def _protect_probes(probes: Sequence[_Photo], deltas: Sequence[torch.Tensor], feather: float,
                    paste_mode: str, tested: Sequence[str], recognizers: dict[str, Recognizer],
                    detector: MTCNN) -> _Protected:
    """Paste each probe's mask (``deltas``, one per probe) into it, round to 8 bits,
    re-detect, embed with ``tested``."""
    photos, seconds = [], []
    for probe, delta in zip(probes, deltas, strict=True):
        out, took = _paste_probes([probe], delta, feather, paste_mode)
        photos += out
        seconds += took
    quality = []
    for probe, out in zip(probes, photos, strict=True):
        q = photo_quality(probe.pixels, out)
        quality.append({"psnr": q.psnr, "ssim": q.ssim, "linf": q.linf})
    faces = central_faces(photos, detector)
    frames = [None if f is None else f.frame for f in faces]
    queries = {name: _embed(recognizers[name], frames) for name in tested}
    return _Protected(queries, quality, seconds)


def _ranks(queries: torch.Tensor, clean: torch.Tensor, gallery: torch.Tensor) -> list[int]:
    return identity_ranks(queries, clean, gallery).tolist()


def _run_identity(person: str, probes: Sequence[_Photo], train: Sequence[_Photo],
                  settings: BenchmarkSettings, folds: Sequence[Fold],
                  recognizers: dict[str, Recognizer], surrogates: dict[str, Recognizer],
                  gallery: dict[str, torch.Tensor], detector: MTCNN,
                  conditions: Sequence[str], bar: tqdm | None) -> dict[str, Any]:
    """The given conditions for one identity: ranks per recognizer, quality and timings."""
    from cloak.opom import learn_mask, refine_mask, training_face

    tested = [t for fold in folds for t in fold.tested]
    clean_frames = [p.face.frame for p in probes]
    clean = {name: _embed(recognizers[name], clean_frames) for name in tested}
    record: dict[str, Any] = {"person": person, "train": [p.path.name for p in train],
                              "probes": [p.path.name for p in probes], "conditions": {}}
    base = settings.config()
    faces = [training_face(p.pixels, p.face) for p in train]
    masks: dict[tuple[str, str], tuple[torch.Tensor, float]] = {}

    def mask(condition: str, fold: Fold) -> tuple[torch.Tensor, float]:
        """The fold's universal mask of a masked condition and its learning seconds (one mask
        per distinct optimiser setting: conditions with equal settings share it)."""
        config = settings.config(condition)
        key = (repr(config), fold.name)
        if key not in masks:
            step_bar = None if bar is None else tqdm(
                total=config.steps, desc=f"{person} {condition} {fold.name}", unit="step",
                leave=False)
            start = time.perf_counter()
            delta = learn_mask(faces, [surrogates[s] for s in fold.surrogates], config,
                               progress=None if step_bar is None else
                               lambda *_, b=step_bar: b.update())
            masks[key] = delta, time.perf_counter() - start
            if step_bar is not None:
                step_bar.close()
        return masks[key]

    for condition in conditions:
        entry: dict[str, Any] = {"ranks": {}, "linkage": {}, "undetected": {}}
        if condition == "clean":
            entry["ranks"] = {n: _ranks(clean[n], clean[n], gallery[n]) for n in tested}
            entry["linkage"] = entry["ranks"]
            record["conditions"][condition] = entry
            continue
        if condition in _MASKED:
            entry["config"] = asdict(settings.config(condition))
        if condition == "noise":
            noise = _noise(person, base.eps, settings.seed)
            runs = [(None, tested, [noise] * len(probes), None)]
        elif condition == "refine":
            entry.update(refine_steps=settings.refine_steps, refine_s=[])
            runs, config = [], settings.config("refine")
            for fold in folds:
                universal, learn_s = mask("refine", fold)
                refined = []
                for probe in probes:
                    start = time.perf_counter()
                    refined.append(refine_mask(
                        training_face(probe.pixels, probe.face), universal,
                        [surrogates[s] for s in fold.surrogates], config,
                        settings.refine_steps))
                    entry["refine_s"].append(time.perf_counter() - start)
                runs.append((fold.name, fold.tested, refined, learn_s))
        else:
            runs = []
            for fold in folds:
                delta, learn_s = mask(condition, fold)
                runs.append((fold.name, fold.tested, [delta] * len(probes), learn_s))
        entry.update(quality=[], protect_s=[], learn_s={})
        for fold_name, names, deltas, learn_s in runs:
            done = _protect_probes(probes, deltas, base.feather, settings.paste_mode, names,
                                   recognizers, detector)
            for name in names:
                entry["ranks"][name] = _ranks(done.queries[name], clean[name], gallery[name])
                entry["linkage"][name] = gallery_ranks(done.queries[name], done.queries[name],
                                                       gallery[name]).tolist()
                entry["undetected"][name] = int(torch.isnan(done.queries[name][:, 0]).sum())
            entry["quality"] += done.quality
            entry["protect_s"] += done.protect_s
            if fold_name is not None:
                entry["learn_s"][fold_name] = learn_s
        record["conditions"][condition] = entry
    return record


#: Settings that do not change a finished identity's record (see :func:`_record_store`).
_STORE_IGNORES = ("limit", "people", "progress", "cache_dir", "batch", "n_boot", "folds", "lfw",
                  "conditions", "refine_steps", "linkage", "views")


def _record_store(settings: BenchmarkSettings, folds: Sequence[Fold],
                  distractor_files: Sequence[Path]) -> RecordStore:
    """Where finished identities are stored, one JSON file each, so a rerun resumes.

    A record holds file names, ranks, quality figures and timings per condition, never a
    feature; a run that asks for conditions a stored record lacks computes only those and adds
    them. The store is keyed by what changes every condition's result: the settings (except
    ``limit``, ``people``, ``conditions``, ``progress``, ``cache_dir``, ``batch`` and
    ``n_boot``, which change none, and ``linkage``, ``views``, ``refine_steps``, which change
    only masked conditions: each masked entry records its optimiser settings and refinement
    steps, and :func:`_current` recomputes an entry whose settings differ), the folds, the
    distractor files and the weights of every model involved.
    """
    models = sorted({BLACK_BOXES[t][0] for f in folds for t in f.tested}
                    | {s for f in folds for s in f.surrogates} | {"mtcnn"})
    return RecordStore(settings.cache_dir, {
        "settings": {k: v for k, v in asdict(settings).items() if k not in _STORE_IGNORES},
        "folds": [asdict(f) for f in folds],
        "distractors": [p.name for p in distractor_files],
        "weights": {m: zoo.weights_digests(m) for m in models},
    })


def _current(entry: dict[str, Any] | None, condition: str,
             settings: BenchmarkSettings) -> bool:
    """True when a stored condition entry was made with today's settings: it exists, has the
    protected-vs-protected ranks, and (masked conditions) the same optimiser settings and
    refinement steps."""
    if entry is None or "linkage" not in entry:
        return False
    if condition in _MASKED and entry.get("config") != asdict(settings.config(condition)):
        return False
    return entry.get("refine_steps", settings.refine_steps) == settings.refine_steps


def _only(record: dict[str, Any], conditions: Sequence[str]) -> dict[str, Any]:
    """``record`` with only the given conditions."""
    return {**record, "conditions": {c: record["conditions"][c] for c in conditions}}


# ----------------------------------------------------------------------------- summary


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _psr_stats(ranks: dict[str, np.ndarray], settings: BenchmarkSettings
               ) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """PSR@1 and @5 with bootstrap intervals over identities, per recognizer and mean.

    Args:
        ranks: recognizer -> (I, P) ranks of I identities' P probes.
        settings: ``n_boot`` and ``seed`` of the bootstrap.

    Returns:
        (per recognizer ``{"psr@k", "ci@k"}``, the same for the mean over recognizers).
    """
    per: dict[str, dict[str, Any]] = {name: {} for name in ranks}
    mean: dict[str, Any] = {}
    for k in (1, 5):
        for name, r in ranks.items():
            hits = (r >= k).sum(1)
            per[name][f"psr@{k}"] = psr(r, k)
            per[name][f"ci@{k}"] = list(bootstrap_interval(
                hits, np.full(len(hits), r.shape[1]), n_boot=settings.n_boot,
                seed=settings.seed))
        hits = np.stack([(r >= k).sum(1) for r in ranks.values()], 1)               # (I, R)
        trials = np.stack([np.full(len(hits), r.shape[1]) for r in ranks.values()], 1)
        mean[f"psr@{k}"] = float(np.mean([psr(r, k) for r in ranks.values()]))
        mean[f"ci@{k}"] = list(bootstrap_interval(hits, trials, n_boot=settings.n_boot,
                                                  seed=settings.seed))
    return per, mean


def _summarise(records: Sequence[dict[str, Any]], settings: BenchmarkSettings,
               folds: Sequence[Fold]) -> dict[str, Any]:
    """PSR per recognizer and mean with bootstrap intervals, in both directions (protected
    probe vs clean gallery; vs the person's other protected probes: ``linkage``), quality and
    timings per condition."""
    tested = [t for fold in folds for t in fold.tested]
    fold_of = {t: fold.name for fold in folds for t in fold.tested}
    summary: dict[str, Any] = {}
    for condition in settings.conditions:
        entries = [r["conditions"][condition] for r in records]
        row: dict[str, Any] = {}
        for key, into in (("ranks", "recognizers"), ("linkage", "linkage")):
            ranks = {n: np.array([e[key][n] for e in entries]) for n in tested}       # (I, P)
            per, mean = _psr_stats(ranks, settings)
            for name in tested:
                per[name].update(fold=fold_of[name] if condition in _MASKED else None,
                                 undetected=sum(e["undetected"].get(name, 0) for e in entries),
                                 probes=int(ranks[name].size))
            row[into] = per
            row["mean" if key == "ranks" else "linkage_mean"] = mean
        if condition != "clean":
            quality = [q for e in entries for q in e["quality"]]
            psnrs = [q["psnr"] for q in quality]
            row["quality"] = {
                "psnr_mean": _finite(float(np.mean(psnrs))), "psnr_min": _finite(min(psnrs)),
                "ssim_mean": float(np.mean([q["ssim"] for q in quality])),
                "ssim_min": min(q["ssim"] for q in quality),
                "linf_mean": float(np.mean([q["linf"] for q in quality])),
                "linf_max": max(q["linf"] for q in quality), "photos": len(quality)}
            row["protect_s_per_photo"] = float(np.mean([s for e in entries
                                                        for s in e["protect_s"]]))
            refine = [s for e in entries for s in e.get("refine_s", [])]
            if refine:
                row["refine_s_per_photo"] = float(np.mean(refine))
            learn = [s for e in entries for s in e["learn_s"].values()]
            row["learn_s_per_mask"] = float(np.mean(learn)) if learn else None
            row["learn_s_per_fold"] = {
                f.name: float(np.mean([e["learn_s"][f.name] for e in entries]))
                for f in folds if learn}
        summary[condition] = row
    return summary


def run_benchmark(settings: BenchmarkSettings,
                  log_line: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the OPOM protocol on LFW and return the results (JSON-ready; no features inside).

    Args:
        settings: what to run (:class:`BenchmarkSettings`).
        log_line: called with one line per finished identity (e.g. ``tqdm.write``); default:
            the module logger at INFO.

    Returns:
        a dict with ``settings``, ``config`` (optimiser settings), ``folds``, ``people``,
        ``skipped`` (identity, reason), ``distractors`` (files, with a face), per-identity
        ``identities`` records (ranks, quality, timings) and ``summary`` per condition (PSR@1/5
        per recognizer and mean with bootstrap intervals, quality, timings).

    Raises:
        ValueError: invalid settings; FileNotFoundError: LFW folders missing.
    """
    import attackers

    settings.check()
    folds = settings.fold_plan()
    say = log_line or log.info
    started = time.perf_counter()
    people, distractor_files = settings.photo_sets()

    detector = attackers.load("mtcnn")
    tested = [t for fold in folds for t in fold.tested]
    recognizers = {n: attackers.load(BLACK_BOXES[n][0], reference=BLACK_BOXES[n][1])
                   for n in tested}
    needs_masks = any(c in _MASKED for c in settings.conditions)
    surrogates = {s: attackers.load(s) for fold in folds for s in fold.surrogates
                  } if needs_masks else {}
    gallery = distractor_features(distractor_files, tested, recognizers, detector,
                                  settings.cache_dir, settings.batch, settings.progress)

    records, skipped, detect_s = [], [], []
    pool = max(settings.n_train, TRAIN_POOL)
    needed = pool + settings.n_probe
    runs = _record_store(settings, folds, distractor_files)
    bar = tqdm(people, desc="identities", unit="person", disable=not settings.progress)
    for person_dir in bar:
        done = runs.load(person_dir.name)
        missing = [c for c in settings.conditions
                   if done is None or not _current(done["conditions"].get(c), c, settings)]
        if done is not None and not missing:
            records.append(_only(done, settings.conditions))
            detect_s.append(done["detect_s_per_photo"])
            continue
        start = time.perf_counter()
        usable, per_photo = _usable_photos(sorted(person_dir.glob("*.jpg")), needed, detector)
        split = split_photos(person_dir.name, usable, pool, settings.n_probe)
        if split is None:
            skipped.append({"person": person_dir.name,
                            "reason": f"{len(usable)} photos with a face, {needed} needed"})
            continue
        detect_s.append(per_photo)
        record = _run_identity(split.person, split.probes, split.train[:settings.n_train],
                               settings, folds,
                               recognizers, surrogates, gallery, detector, missing,
                               bar if settings.progress else None)
        record["seconds"] = time.perf_counter() - start
        record["detect_s_per_photo"] = per_photo
        if done is not None:         # conditions added to a stored identity: keep both
            record["conditions"] = {**done["conditions"], **record["conditions"]}
            record["seconds"] += done["seconds"]
        runs.save(record["person"], record)
        records.append(_only(record, settings.conditions))
        clean = record["conditions"].get("clean", {}).get("ranks", {})
        say(f"{split.person}: {record['seconds']:.1f} s; clean top-1 misses "
            f"{sum(r >= 1 for v in clean.values() for r in v)}")
    if not records:
        raise ValueError(f"no identity of {settings.lfw / 'identities'} has {needed} photos "
                         "with a face")
    if runs.reused:
        say(f"resumed {runs.reused} stored identities from {runs.folder}")

    return {
        "benchmark": "opom: LFW identification protection (leave-one-out black boxes)",
        "settings": {k: (str(v) if isinstance(v, Path) else v)
                     for k, v in asdict(settings).items() if k != "folds"},
        "config": {k: v for k, v in asdict(settings.config()).items() if k != "subspace"},
        "folds": [asdict(f) for f in folds],
        "people": [r["person"] for r in records],
        "skipped": skipped,
        "distractors": {"files": len(distractor_files),
                        "with_face": int(next(iter(gallery.values())).shape[0])},
        "detect_s_per_photo": float(np.mean(detect_s)),
        "seconds_per_identity": float(np.mean([r["seconds"] for r in records])),
        "wall_s": time.perf_counter() - started,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "identities": records,
        "summary": _summarise(records, settings, folds),
    }


# ----------------------------------------------------------------------------- report


def _cell(stats: dict[str, Any], k: int) -> str:
    low, high = stats[f"ci@{k}"]
    return f"{stats[f'psr@{k}']:.3f} [{low:.2f}, {high:.2f}]"


def report_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """The ``opom`` section of docs/BENCHMARKS.md: PSR tables, quality and time, the folds."""
    summary, config = result["summary"], result["config"]
    tested = [t for f in result["folds"] for t in f["tested"]]
    fold_of = {t: f["name"] for f in result["folds"] for t in f["tested"]}
    header = ["condition", *[f"{t} ({fold_of[t]})" for t in tested], "mean"]
    tables = []
    for k, per, mean, what in (
            (1, "recognizers", "mean", "protected probe vs clean gallery"),
            (1, "linkage", "linkage_mean", "protected probe vs the person's other PROTECTED "
                                           "probes + distractors (linkage)"),
            (5, "recognizers", "mean", "protected probe vs clean gallery")):
        rows = [[c, *[_cell(s[per][t], k) for t in tested], _cell(s[mean], k)]
                for c, s in summary.items()]
        tables.append(f"PSR@{k}, {what} [95% bootstrap interval over identities]:\n\n"
                      + markdown_table(header, rows))
    quality_rows = []
    for c, s in summary.items():
        if c == "clean":
            continue
        q = s["quality"]
        learn = "-" if s["learn_s_per_mask"] is None else ", ".join(
            f"{name} {sec:.1f}" for name, sec in s["learn_s_per_fold"].items())
        undetected = sum(r["undetected"] for r in s["recognizers"].values())
        protect = f"{s['protect_s_per_photo']:.3f}"
        if "refine_s_per_photo" in s:
            protect = f"{s['refine_s_per_photo']:.2f} refine + {protect}"
        quality_rows.append([c, q["psnr_mean"], q["ssim_mean"], q["ssim_min"], q["linf_max"],
                             learn, protect, undetected])
    quality = "" if not quality_rows else (
        "Quality of the protected full photos (8-bit) and time:\n\n" + markdown_table(
            ["condition", "PSNR dB (mean)", "SSIM (mean)", "SSIM (min)", "L-inf max",
             "learn s/mask (per fold)", "protect s/photo", "probes not re-detected"],
            quality_rows) + "\n\n")
    folds = "\n".join(f"- fold {f['name']}: surrogates {', '.join(f['surrogates'])} -> tested on "
                      f"{', '.join(f['tested'])}" for f in result["folds"])
    settings, dist = result["settings"], result["distractors"]
    skipped = "; ".join(f"{s['person']} ({s['reason']})" for s in result["skipped"]) or "none"
    runtimes = ", ".join(f"{t} = {'reference runtime' if BLACK_BOXES[t][1] else 'zoo loader'}"
                         for t in tested)
    intro = (
        f"`{command or 'run_benchmark'}`: {len(result['people'])} identities (skipped: {skipped}), "
        f"the first {settings['n_train']} photos with a face learn the mask and the next "
        f"{settings['n_probe']} are probes. Gallery per probe: the person's other clean probes + "
        f"{dist['with_face']} distractors with a face (of {dist['files']}). Protected probes are "
        f"pasted by `protect_photo` ({settings['paste_mode']}), rounded to 8 bits, then detected "
        f"and aligned again (MTCNN) before recognition; a probe with no face found counts as "
        f"protected. Optimiser: mode {settings['mode']}, eps {config['eps']:g}/255, "
        f"{config['steps']} steps of {config['step_size']:g}, momentum {config['momentum']:g}, "
        f"DI {config['diversity']:g}, TI kernel {config['ti_kernel']}, paste path "
        f"{config['paste']}, feather {config['feather']:g} px, convex warm-up "
        f"{config['warmup']}, surrogate gradients balanced {config.get('balance', False)}, "
        f"objective terms of the shipped mask (center/affine/convex/refine): anti-linkage "
        f"weight {config.get('linkage', 0):g}, views {config.get('views', False)}, seed "
        f"{config['seed']}. Ablations: `opom` = the convex mask with none of the optional "
        f"terms (the OPOM objective alone), `opom+T` = with term T only. Refine: the convex "
        f"mask plus {settings.get('refine_steps', '-')} "
        f"steps per probe on that probe alone (a mask per photo). Noise: "
        f"U[-eps, eps] in the canonical frame, pasted the same way. Recognizers: {runtimes}.\n\n"
        f"Leave-one-out folds (dlib-resnet and dlib-native count as one model):\n{folds}\n")
    timing = (f"Wall time {result['wall_s']:.0f} s ({result['seconds_per_identity']:.1f} s per "
              f"identity, all conditions and folds; detection "
              f"{result['detect_s_per_photo']:.2f} s per photo); {result['torch_threads']} torch "
              f"threads on a shared 2-core CPU.")
    return (f"## OPOM masks against black-box recognizers (LFW)\n\n{intro}\n{tables[0]}\n\n"
            f"{tables[1]}\n\n{tables[2]}\n\n{quality}{timing}\n")


def write_report(result: dict[str, Any], json_path: Path | None, markdown_path: Path | None,
                 command: str | None = None, section: str = "opom") -> str:
    """Write the JSON results and one section of the markdown report; return the section.

    Args:
        result: :func:`run_benchmark`'s return value.
        json_path: where the JSON goes (None = not written).
        markdown_path: the markdown report (None = not written).
        command: the command line, quoted in both.
        section: name of the report's section (``<!-- BEGIN name -->``) that is replaced.
    """
    return publish(result, report_markdown(result, command), json_path, markdown_path, command,
                   section)
