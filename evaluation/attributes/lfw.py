"""The LFW part: no labels, so the clean probes' predictions are the reference; one cloak per
person learned from its training photos, and an identity search on the same probes."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from evaluation.attributes.conditions import named
from evaluation.attributes.models import Models, learn
from evaluation.attributes.photos import FaceConditions, condition_photos, face_seed
from evaluation.attributes.records import condition_records
from evaluation.attributes.settings import AttributeSettings
from evaluation.protocol.lfw import central_faces, identity_folders, load_rgb
from evaluation.protocol.ranks import Split, split_photos
from evaluation.store import RecordStore

if TYPE_CHECKING:
    from attackers.detectors.mtcnn import MTCNN

__all__ = ["run_lfw"]


def run_lfw(settings: AttributeSettings, models: Models, runs: RecordStore,
            say: Callable[[str], None]) -> dict[str, Any]:
    """Records of the LFW identities (from the cache or computed) and the skipped ones."""
    from cloak.opom import training_face

    people = identity_folders(settings.lfw)[:settings.lfw_limit]
    config = settings.config()
    folds = {k: f["scored"] for k, f in settings.attribute_folds().items()}
    chosen = [named(c) for c in settings.conditions]
    cloaks = dict.fromkeys(c.cloak_key(key) for c in chosen if c.cloaked
                           for key in c.photo_keys(list(folds)))
    records, skipped = [], []
    for person_dir in tqdm(people, desc="lfw", unit="person", disable=not settings.progress):
        done = runs.load(f"lfw/{person_dir.name}")
        if done is not None:
            records.append(done)
            continue
        start = time.perf_counter()
        split, usable = _person_split(person_dir, models.detector, settings)
        if split is None:
            skipped.append({"person": person_dir.name,
                            "reason": f"{usable} photos with a face, "
                                      f"{settings.n_train + settings.n_probe} needed"})
            continue
        learn_start = time.perf_counter()
        train = [training_face(img, f) for _, img, f in split.train]
        deltas = {key: learn(train, key, models, settings) for key in cloaks}
        learn_s = time.perf_counter() - learn_start if deltas else 0.0
        made = condition_photos(
            [img for _, img, _ in split.probes], [f for _, _, f in split.probes],
            settings.conditions, detector=models.detector, landmarker=models.landmarker,
            cloak=lambda _i, _p, _f, key, d=deltas: d[key],
            seeds=[face_seed(settings.seed, f"lfw/{p.name}") for p, _, _ in split.probes],
            feather=config.feather, batch=settings.batch, attribute_folds=list(folds))
        per_probe = condition_records(made, settings.conditions, models.predictors,
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
                    models: Models) -> None:
    """Add ``"ranks"`` (recognizer -> rank, :func:`evaluation.protocol.identity_ranks`) to each
    probe's recorded conditions but ``cloak-attr``: the condition's frame searched in the
    person's other clean probes + the distractors."""
    from evaluation.protocol.ranks import identity_ranks
    from evaluation.protocol.recognition import embed

    searched = [c for c in records[0] if named(c).searched] if records else []
    for name, model in models.lfw_recognizers.items():
        clean = embed(model, [item.frames["clean"] for item in made])
        for key in searched:
            frames = [item.frames.get(key) for item in made]
            queries = clean if key == "clean" else embed(model, frames)
            ranks = identity_ranks(queries, clean, models.gallery[name]).tolist()
            for frame, rank, record in zip(frames, ranks, records, strict=True):
                if frame is not None and "predictions" in record.get(key, {}):
                    record[key].setdefault("ranks", {})[name] = rank



def _person_split(person_dir: Path, detector: MTCNN, settings: AttributeSettings
                 ) -> tuple[Split | None, int]:
    """One person's training photos and probes: the photos (sorted by name) where MTCNN finds a
    face, read ``n_train + n_probe`` at a time until that many are found, split by
    :func:`evaluation.protocol.split_photos`.

    Returns:
        (split, photos with a face): the split holds ``(path, (3, H, W) pixels in [0, 255],
        face)`` per photo; None where fewer than ``n_train + n_probe`` have a face.
    """
    needed = settings.n_train + settings.n_probe
    usable = []
    paths = sorted(person_dir.glob("*.jpg"))
    for i in range(0, len(paths), needed):
        if len(usable) >= needed:
            break
        images = [load_rgb(p) for p in paths[i:i + needed]]
        faces = central_faces(images, detector, settings.batch)
        usable += [(p, img, f) for p, img, f in zip(paths[i:i + needed], images, faces,
                                                     strict=True) if f is not None]
    return split_photos(person_dir.name, usable, settings.n_train, settings.n_probe), len(usable)
