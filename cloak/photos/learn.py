"""The person's mask for a run: a given one, an earlier run's with the same settings, or one
learned from up to :data:`TRAIN_FACES` of their faces (one per photo, the most typical first)
and saved as soon as it exists, so an interrupted run reuses it. The run gets it on its device
(``LearnSettings.device``), where it is refined and pasted.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cloak.errors import CloakError
from cloak.imageio import read_photo
from cloak.mask import Mask, MaskError, load_mask, save_mask
from cloak.masking import LearnSettings, MaskLearner, mask_matches
from cloak.opom import TrainingFace
from cloak.photos.options import ProtectOptions, Reporter, Summary
from cloak.photos.paste import photo_training_face
from cloak.photos.scan import Scan

__all__ = ["TRAIN_FACES", "learn_from_scans", "obtain_mask", "training_set"]

#: Most faces a mask is learned from (OPOM uses 10 photos per person).
TRAIN_FACES = 10


def training_set(scans: Sequence[Scan], person: int,
                 limit: int = TRAIN_FACES) -> list[tuple[Scan, int]]:
    """Up to ``limit`` of the person's faces, one per photo: those nearest the group's mean.

    Returns:
        (scan, index of the face in ``scan.faces``) pairs, in scan order.
    """
    picks = []
    for scan in scans:
        if scan.result is None and person in scan.label:
            for k, label in enumerate(scan.label):
                if label == person:
                    picks.append((scan, k))
    if not picks:
        return []
    feats = torch.stack([s.embeddings[k] for s, k in picks])
    centre = torch.nn.functional.normalize(feats.mean(0), dim=0)
    similarity = (feats @ centre).tolist()
    best: dict[int, tuple[float, int]] = {}
    for index, ((scan, _), sim) in enumerate(zip(picks, similarity, strict=True)):
        key = id(scan)
        if key not in best or sim > best[key][0]:
            best[key] = (sim, index)
    chosen = sorted(best.values(), key=lambda t: (-t[0], t[1]))[:limit]
    return [picks[i] for _, i in sorted(chosen, key=lambda t: t[1])]


def learn_from_scans(scans: Sequence[Scan], person: int, learn: LearnSettings, name: str,
                     reporter: Reporter) -> tuple[Mask | None, float, set[Path]]:
    """Learn the person's mask from their faces (:func:`training_set`,
    :class:`~cloak.masking.MaskLearner`).

    Returns:
        (mask, seconds spent learning, paths of the photos learned from); (None, 0, {}) when no
        training face can be read.
    """
    import attackers

    faces: list[TrainingFace] = []
    used: set[Path] = set()
    for scan, k in training_set(scans, person):
        try:
            photo = read_photo(scan.found.path)
        except CloakError as err:
            reporter.note(f"{err}: not used for learning")
            continue
        faces.append(photo_training_face(photo, scan.faces[k].matrix))
        used.add(scan.found.path)
        del photo
    if not faces:
        return None, 0.0, used

    def load(zoo_name: str) -> Any:
        return attackers.load(zoo_name, progress=reporter.note)

    learner = MaskLearner(learn, load)
    reporter.note(f"learning {name}'s mask from {len(faces)} photos with {learner.describe()}")
    start = time.perf_counter()
    reporter.progress("learning mask", 0, learner.config.steps)
    mask = learner(name, faces,
                   lambda step, steps, _loss: reporter.progress("learning mask", step, steps))
    return mask, time.perf_counter() - start, used


def obtain_mask(scans: Sequence[Scan], person: int | None, options: ProtectOptions,
                name: str, mask_path: Path, reporter: Reporter, summary: Summary) -> Mask | None:
    """The given mask, an earlier run's matching mask at ``mask_path``, or a newly learned one
    (saved there), its delta on ``options.learn.device``; None when there is none to give,
    reuse or learn. Fills the mask fields of ``summary``."""
    mask = _run_mask(scans, person, options, name, mask_path, reporter, summary)
    return None if mask is None else dataclasses.replace(
        mask, delta=mask.delta.to(options.learn.device))


def _run_mask(scans: Sequence[Scan], person: int | None, options: ProtectOptions,
              name: str, mask_path: Path, reporter: Reporter, summary: Summary) -> Mask | None:
    """:func:`obtain_mask`'s mask, on the CPU."""
    if options.mask is not None:
        summary.mask_source, summary.mask_path = "given", options.mask_path
        return options.mask
    config, names = options.learn.resolve()
    if mask_path.exists() and not options.force:
        try:
            earlier = load_mask(mask_path)
        except MaskError as err:
            reporter.note(f"{err}; learning a new mask")
        else:
            if mask_matches(earlier, config, names, options.learn.mode,
                            options.learn.attribute_plan()):
                reporter.note(f"reusing {mask_path} (learned earlier with the same settings)")
                summary.mask_source = "reused"
                summary.mask_path = mask_path
                return earlier
            reporter.note(f"{mask_path} was learned with other settings; learning a new mask")
    if person is None:
        return None
    mask, summary.learn_seconds, _ = learn_from_scans(scans, person, options.learn, name, reporter)
    if mask is None:
        return None
    summary.training_faces = int(mask.settings["training_faces"])
    mask_path.parent.mkdir(parents=True, exist_ok=True)
    save_mask(mask, mask_path)
    summary.mask_source = "learned"
    summary.mask_path = mask_path
    return mask

