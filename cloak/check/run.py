"""``cloak check`` as a function: :func:`check_photos` reads the photos, judges every protected
photo with every recognizer that did not make its mask, and returns a :class:`CheckResult`.

Distractors can be read once (:func:`read_distractors`) and given to many checks (a service
checking many people, or a benchmark checking many masks); their features stay in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from attackers.black_boxes import RECOGNIZERS, load_black_box, model_of
from cloak.check.photos import FaceFeatures, photo_files, read_faces
from cloak.check.result import CheckResult, InputFailure, PhotoCheck, RecognizerCheck
from cloak.check.thresholds import load_thresholds
from cloak.check.verdict import RULES, judge
from cloak.errors import CloakError
from cloak.imageio import FoundFile
from cloak.mask import load_mask
from cloak.photos.identify import identify_person
from cloak.photos.options import MIN_FACE, FileResult, Reporter, UsageError
from cloak.photos.scan import Models

__all__ = ["Distractors", "check_photos", "read_distractors"]


@dataclass(frozen=True)
class Distractors:
    """Other people's faces for the ``top1`` rule, read once.

    Attributes:
        photos: distractor photos with a face.
        features: recognizer name -> (n, D) float32 L2-normalised features of every face found
            in them; personal data of those people, in memory only.
    """

    photos: int
    features: dict[str, torch.Tensor]

    @property
    def faces(self) -> int:
        return len(next(iter(self.features.values()))) if self.features else 0


def _read_all(inputs: Sequence[Path], role: str, stage: str,
              read: Callable[[FoundFile], FaceFeatures], reporter: Reporter,
              result: CheckResult) -> list[FaceFeatures]:
    """Read every photo of ``inputs`` (progress ``stage``); failures of protected photos and
    references are recorded in ``result`` (one line each), a distractor's is a notice."""
    files = photo_files(inputs)
    done: list[FaceFeatures] = []
    reporter.progress(stage, 0, len(files))
    for count, found in enumerate(files, 1):
        try:
            done.append(read(found))
        except CloakError as err:
            if role == "distractor":
                reporter.note(f"{err}: not used as a distractor")
            elif found.skip_reason is not None:
                reporter.file_done(FileResult(found.path, "skipped", reason=err.reason))
            else:
                result.failures.append(InputFailure(found.path, role, err.reason))
                reporter.file_done(FileResult(found.path, "failed", reason=err.reason))
        reporter.progress(stage, count, len(files))
    return done


def _distractors(paths: Sequence[Path], names: Sequence[str],
                 read: Callable[[FoundFile], FaceFeatures], reporter: Reporter) -> Distractors:
    """Every face of the distractor photos under each recognizer (a photo that cannot be used
    is a notice, not a failure)."""
    others = _read_all(paths, "distractor", "reading distractors", read, reporter,
                       CheckResult("far", {}))
    return Distractors(len(others), {n: _stack(others, n) for n in names} if others else {})


def _recognizer_names(surrogates: list[str] | None, all_recognizers: bool) -> list[str]:
    """The recognizers to check with: those sharing no model with a surrogate."""
    if surrogates is None or all_recognizers:
        return list(RECOGNIZERS)
    made = {model_of(s) for s in surrogates}
    return [n for n in RECOGNIZERS if model_of(n) not in made]


def _stack(items: Sequence[FaceFeatures], name: str) -> torch.Tensor | None:
    """All faces' features of ``items`` under recognizer ``name``; None when there are none."""
    rows = [item.features[name] for item in items]
    return torch.cat(rows) if rows else None


def check_photos(protected: Sequence[Path], references: Sequence[Path], mask: Path | None,
                 distractors: Sequence[Path] | Distractors = (), rule: str = "both", *,
                 all_recognizers: bool = False, min_face: int = MIN_FACE,
                 reporter: Reporter | None = None, device: str = "cpu") -> CheckResult:
    """Would face recognizers still match the protected photos to the person?

    Args:
        protected: protected photos and folders of them (walked as ``cloak protect`` walks).
        references: clean photos of the person, files or folders; of several people in them,
            the person is the one seen in the most photos (as ``cloak protect`` decides).
        mask: the mask file the photos were protected with (its surrogates are left out), or
            None: unknown, every recognizer is used.
        distractors: photos of other people (files or folders) for the ``top1`` rule, or
            :class:`Distractors` already read (with every recognizer used here); their
            features are held in memory only. Empty: ``top1`` cannot answer and the verdict
            falls back to ``far``.
        rule: ``"far"``, ``"top1"`` or ``"both"`` (matched when either rule matches).
        all_recognizers: also use recognizers that made the mask (optimistic for them).
        min_face: smallest face used, photo pixels.
        reporter: receives progress ("reading references", "reading distractors", "checking
            photos"), notices and each failed or skipped file.
        device: torch device of the detector and the identity model.

    Returns:
        the :class:`CheckResult`.

    Raises:
        UsageError: no inputs, an unknown rule, or no recognizer left besides the surrogates.
        cloak.mask.MaskError: the mask file cannot be read.
        attackers.zoo.FetchError: a model cannot be fetched.
    """
    reporter = reporter or Reporter()
    if rule not in RULES:
        raise UsageError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
    if not protected or not references:
        raise UsageError("give protected photos and --reference photos of the person")
    surrogates = None if mask is None else list(load_mask(mask).surrogates)
    names = _recognizer_names(surrogates, all_recognizers)
    if not names:
        raise UsageError(f"every recognizer of the zoo made this mask ({', '.join(surrogates)})"
                         ": none is left to check with independently; use --all-recognizers "
                         "for an optimistic check against them")
    thresholds = load_thresholds()
    result = CheckResult(rule, {n: thresholds[n] for n in names}, surrogates, mask,
                         excluded=[n for n in RECOGNIZERS if n not in names])
    if surrogates is None:
        result.notes.append("mask unknown: every recognizer is used, also any that made the "
                            "mask (its verdicts are then optimistic)")
    models = Models(reporter, device)
    recognizers = {n: load_black_box(n, reporter.note) for n in names}

    def read(found: FoundFile) -> FaceFeatures:
        return read_faces(found, models, recognizers, min_face)

    refs = _read_all(references, "reference", "reading references", read, reporter, result)
    person = identify_person([r.scan for r in refs], reporter)
    gallery = {}
    if person is not None:
        mine = [[k for k, label in enumerate(r.scan.label) if label == person] for r in refs]
        gallery = {n: torch.cat([r.features[n][rows] for r, rows in zip(refs, mine, strict=True)
                                 if rows]) for n in names}
        result.reference_photos = sum(bool(rows) for rows in mine)
        result.reference_faces = sum(len(rows) for rows in mine)
    if not isinstance(distractors, Distractors):
        distractors = _distractors(distractors, names, read, reporter)
    missing = [n for n in names if distractors.photos and n not in distractors.features]
    if missing:
        raise UsageError(f"the distractors were read without {', '.join(missing)}")
    result.distractor_photos, result.distractor_faces = distractors.photos, distractors.faces
    if not result.top1_available:
        result.notes.append("no --distractors: the top-1 rule needs other people to search "
                            "among (the nearest of the references alone is always one of "
                            "them), so the verdict uses the far rule alone")
    shots = _read_all(protected, "protected", "checking photos", read, reporter, result)
    if not gallery:
        result.notes.append("no usable face of the person in the references: nothing to "
                            "compare the protected photos with")
        return result
    strangers = {n: distractors.features.get(n) for n in names}
    for i, shot in enumerate(shots):
        rest = [s for j, s in enumerate(shots) if j != i]
        checks = {}
        for n in names:
            usual = judge(shot.features[n], gallery[n], strangers[n], thresholds[n])
            linked = _stack(rest, n)
            linkage = None if linked is None else judge(shot.features[n], linked, strangers[n],
                                                        thresholds[n])
            checks[n] = RecognizerCheck(usual, linkage)
        result.photos.append(PhotoCheck(shot.scan.found.path, len(shot.scan.faces), checks))
    return result


def read_distractors(paths: Sequence[Path], names: Sequence[str] = tuple(RECOGNIZERS), *,
                     min_face: int = MIN_FACE, reporter: Reporter | None = None,
                     device: str = "cpu") -> Distractors:
    """Read other people's photos once for many :func:`check_photos` calls.

    Args:
        paths: photos and folders of photos (a photo without a face is left out, with a notice).
        names: the recognizers (keys of :data:`~attackers.black_boxes.RECOGNIZERS`) to embed
            with.
        min_face: smallest face used, photo pixels.
        reporter: receives progress ("reading distractors") and notices.
        device: torch device of the detector and the identity model.
    """
    reporter = reporter or Reporter()
    models = Models(reporter, device)
    recognizers = {n: load_black_box(n, reporter.note) for n in names}
    return _distractors(paths, names,
                        lambda found: read_faces(found, models, recognizers, min_face), reporter)
