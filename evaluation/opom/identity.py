"""One identity of the OPOM benchmark: its conditions' entries (ranks, quality, timings)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from tqdm import tqdm

from attackers import zoo
from cloak.device import module_device
from cloak.quality import photo_quality
from evaluation.opom.conditions import CONDITION_BY_NAME, Protection
from evaluation.opom.settings import BenchmarkSettings
from evaluation.protocol.folds import WHITE_BOXES, Fold, all_tested
from evaluation.protocol.lfw import Photo
from evaluation.protocol.ranks import identity_ranks, outside_ranks
from evaluation.protocol.recognition import embed, paste_and_round, redetect
from evaluation.store import MaskStore
from evaluation.verification import gallery_ranks

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.opom import OpomConfig

__all__ = ["IdentityJob", "mask_store", "run_identity"]


def mask_store(settings: BenchmarkSettings, config: OpomConfig,
               surrogates: Iterable[str] = ()) -> MaskStore:
    """Where the universal masks learned with ``config`` are kept, by the OPOM and the
    robustness benchmarks alike (so they share their convex masks): keyed by the optimiser
    settings and the weights of MTCNN, every white box and any other ``surrogates`` (zoo
    names); each mask's sidecar names its training photos and surrogates
    (:class:`~evaluation.store.MaskStore`)."""
    models = sorted({*WHITE_BOXES, *surrogates, "mtcnn"})
    return MaskStore(settings.cache_dir, {"config": config.as_record(),
                                          "weights": {m: zoo.weights_digests(m) for m in models}})


@dataclass
class IdentityJob:
    """What the conditions of one identity share: photos, models, clean features, masks.

    Attributes:
        person: the identity's name.
        probes: the probe photos.
        train: the photos that learn the masks.
        settings: the benchmark's settings.
        folds: the leave-one-out folds.
        recognizers: the tested black boxes by name.
        surrogates: the folds' white boxes by name.
        gallery: per tested recognizer, (N, D) distractor features.
        detector: MTCNN, to find the protected faces again.
        bar: the identities' progress bar (None: no progress shown).
    """

    person: str
    probes: Sequence[Photo]
    train: Sequence[Photo]
    settings: BenchmarkSettings
    folds: Sequence[Fold]
    recognizers: dict[str, Recognizer]
    surrogates: dict[str, Recognizer]
    gallery: dict[str, torch.Tensor]
    detector: MTCNN
    bar: tqdm | None = None
    #: the tested recognizers, fold by fold
    tested: list[str] = field(init=False)
    #: per tested recognizer, (P, D) features of the clean probes
    clean: dict[str, torch.Tensor] = field(init=False)
    #: the training photos as the optimiser takes them (:func:`cloak.opom.training_face`)
    faces: list[Any] = field(init=False)
    _masks: dict[tuple[str, str], tuple[torch.Tensor, float]] = field(
        init=False, default_factory=dict, repr=False)
    _refined: dict[tuple[str, str], tuple[list[torch.Tensor], list[float]]] = field(
        init=False, default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        from cloak.opom import training_face

        self.tested = all_tested(self.folds)
        frames = [p.face.frame for p in self.probes]
        self.clean = {n: embed(self.recognizers[n], frames) for n in self.tested}
        self.faces = [training_face(p.pixels, p.face) for p in self.train]

    def ranks(self, queries: torch.Tensor, name: str) -> list[int]:
        """Ranks of (P, D) queries against the person's other clean probes + distractors."""
        return identity_ranks(queries, self.clean[name], self.gallery[name]).tolist()

    def mask(self, condition: str, config: OpomConfig, fold: Fold) -> tuple[torch.Tensor, float]:
        """The fold's universal mask for ``config`` and its learning seconds (one mask per
        distinct optimiser setting: conditions with equal settings share it). Masks are kept
        on disk (:func:`mask_store`: learned masks are seeded, so a stored one is the one
        learning would give again) and a run that asks again reuses them."""
        from cloak.opom import learn_mask

        key = (repr(config), fold.name)
        if key not in self._masks:
            store = mask_store(self.settings, config, self.surrogates)
            name = f"{self.person}__{fold.name}"
            meta = {"photos": [p.path.name for p in self.train],
                    "surrogates": list(fold.surrogates)}
            stored = store.load(name, meta)
            if stored is None:
                step_bar = None if self.bar is None else tqdm(
                    total=config.steps, desc=f"{self.person} {condition} {fold.name}",
                    unit="step", leave=False)
                start = time.perf_counter()
                delta = learn_mask(self.faces, [self.surrogates[s] for s in fold.surrogates],
                                   config, progress=None if step_bar is None else
                                   lambda *_, b=step_bar: b.update())
                stored = delta, time.perf_counter() - start
                store.save(name, delta, meta, stored[1])
                if step_bar is not None:
                    step_bar.close()
            device = module_device(self.surrogates[fold.surrogates[0]])
            self._masks[key] = stored[0].to(device), stored[1]
        return self._masks[key]

    def refined(self, condition: str, config: OpomConfig,
                fold: Fold) -> tuple[list[torch.Tensor], list[float]]:
        """The fold's convex mask refined on each probe alone (:func:`cloak.opom.refine_mask`,
        ``settings.refine_steps`` steps) and the seconds each refinement took; computed once per
        fold and optimiser setting, shared by the conditions that rearrange them."""
        from cloak.opom import refine_mask, training_face

        key = (repr(config), fold.name)
        if key not in self._refined:
            universal, _ = self.mask(condition, config, fold)
            masks, seconds = [], []
            for probe in self.probes:
                start = time.perf_counter()
                masks.append(refine_mask(
                    training_face(probe.pixels, probe.face), universal,
                    [self.surrogates[s] for s in fold.surrogates], config,
                    self.settings.refine_steps))
                seconds.append(time.perf_counter() - start)
            self._refined[key] = masks, seconds
        return self._refined[key]

    def search(self, protection: Protection, entry: dict[str, Any]) -> None:
        """Paste each probe's mask, round to 8 bits, re-detect, embed with the protection's
        recognizers, and add their ranks (both directions), undetected probes, quality and
        paste seconds to ``entry``.

        With ``protection.on_training`` the masks go on the training photos instead, each
        searched among ALL the person's clean probes + distractors
        (:func:`~evaluation.protocol.ranks.outside_ranks`)."""
        searched = self.train if protection.on_training else self.probes
        photos, seconds = [], []
        for probe, delta in zip(searched, protection.deltas, strict=True):
            out, took = paste_and_round([probe], delta, self.settings.config().feather,
                                        self.settings.paste_mode)
            photos += out
            seconds += took
        for probe, out in zip(searched, photos, strict=True):
            q = photo_quality(probe.pixels, out)
            entry["quality"].append({"psnr": q.psnr, "ssim": q.ssim, "linf": q.linf})
        frames = redetect(photos, self.detector)
        for name in protection.tested:
            queries = embed(self.recognizers[name], frames)
            entry["ranks"][name] = (
                outside_ranks(queries, self.clean[name], self.gallery[name]).tolist()
                if protection.on_training else self.ranks(queries, name))
            entry["linkage"][name] = gallery_ranks(queries, queries, self.gallery[name]).tolist()
            entry["undetected"][name] = int(torch.isnan(queries[:, 0]).sum())
        entry["protect_s"] += seconds


def run_identity(job: IdentityJob, conditions: Sequence[str]) -> dict[str, Any]:
    """The given conditions for one identity: a record of file names and, per condition, ranks
    per recognizer, quality and timings (no features)."""
    record: dict[str, Any] = {"person": job.person, "train": [p.path.name for p in job.train],
                              "probes": [p.path.name for p in job.probes], "conditions": {}}
    for condition in conditions:
        record["conditions"][condition] = CONDITION_BY_NAME[condition].entry(job)
    return record
