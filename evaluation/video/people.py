"""The video benchmark's enrolled people and their masks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import torch

from evaluation.protocol.folds import Fold
from evaluation.protocol.lfw import Photo, identity_folders, split_person
from evaluation.store import CloakMaskStore
from evaluation.video.settings import VideoBenchmarkSettings

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN
    from attackers.recognizers.base import Recognizer
    from cloak.mask import Mask
    from cloak.opom import OpomConfig

__all__ = ["Person", "enrolled_people", "learn_masks", "mask_store"]

#: Files looked at per identity: the first ones by name, all detected at once.
SCAN = 20


@dataclass
class Person:
    """An enrolled identity.

    Attributes:
        name: the identity's name.
        train: the 10 photos that learn the mask and name the person's track.
        probes: the 5 probe photos (the clip shows probe 0).
        references: (10, D) sface features of the training photos (memory only).
    """

    name: str
    train: list[Photo]
    probes: list[Photo]
    references: torch.Tensor


def enrolled_people(settings: VideoBenchmarkSettings, detector: MTCNN, sface: Recognizer,
                    say: Callable[[str], None]) -> tuple[list[Person], list[dict[str, str]]]:
    """The identities with 15 photos with a face among their first :data:`SCAN` files, in order,
    until enough (an even number), or the named ones in the order given; and the skipped ones.

    Raises:
        ValueError: fewer than 2 identities qualify.
    """
    candidates = identity_folders(settings.lfw, settings.names)
    if settings.names is not None:                      # in the order the names were given
        by_name = {p.name: p for p in candidates}
        candidates = [by_name[n] for n in settings.names]
    wanted = len(candidates) if settings.names is not None else settings.people // 2 * 2
    chosen, skipped = [], []
    for person_dir in candidates:
        if len(chosen) == wanted:
            break
        split, reason, _ = split_person(person_dir, detector, 10, 5, scan=SCAN)
        if split is None:
            skipped.append({"person": person_dir.name, "reason": reason})
            continue
        with torch.no_grad():
            refs = sface.embed(torch.stack([p.face.frame for p in split.train]))
        chosen.append(Person(split.person, split.train, split.probes, refs))
        say(f"{split.person}: 10 training photos, 5 probes")
    if len(chosen) < 2:
        raise ValueError(f"{settings.lfw / 'identities'}: fewer than 2 identities with 15 "
                         "photos with a face")
    return chosen[:len(chosen) // 2 * 2], skipped


def _config(settings: VideoBenchmarkSettings) -> OpomConfig:
    """The mode's optimiser settings with the benchmark's seed and steps."""
    from cloak.masking import resolve_mode

    return resolve_mode(settings.mode, seed=settings.seed, steps=settings.steps)[0]


def mask_store(settings: VideoBenchmarkSettings, folds: Sequence[Fold]) -> CloakMaskStore:
    """The cached masks, keyed by everything that changes a mask (optimiser settings, folds,
    surrogate weights)."""
    from attackers import zoo

    key = {"config": _config(settings).as_record(),
           "folds": [asdict(f) for f in folds],
           "weights": {s: zoo.weights_digests(s) for f in folds for s in f.surrogates}}
    return CloakMaskStore(settings.cache_dir, key)


def learn_masks(person: Person, settings: VideoBenchmarkSettings, folds: Sequence[Fold],
                surrogates: dict[str, Recognizer], store: CloakMaskStore) -> dict[str, Mask]:
    """Per fold, the person's mask: from the store, or learned from their 10 training photos."""
    from cloak.mask import Mask
    from cloak.opom import learn_mask, training_face

    masks = {}
    config = _config(settings)
    photos = ",".join(p.path.name for p in person.train)
    for fold in folds:
        name = f"{person.name}-{fold.name}"
        stored = store.load(name, photos)
        if stored is not None:
            masks[fold.name] = stored
            continue
        start = time.perf_counter()
        delta = learn_mask([training_face(p.pixels, p.face) for p in person.train],
                           [surrogates[s] for s in fold.surrogates], config)
        mask = Mask(delta.float().contiguous(), float(config.eps), config.subspace,
                    list(fold.surrogates), person.name, config.seed,
                    settings={"mode": settings.mode, "steps": config.steps,
                              "feather": config.feather, "photos": photos,
                              "learn_s": round(time.perf_counter() - start, 1)})
        store.save(name, mask)
        masks[fold.name] = mask
    return masks
