"""What ``cloak check`` finds: per photo and recognizer, the verdicts; the result as JSON.

Nothing here holds a face feature: similarities, ranks and thresholds only (DESIGN section 7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from attackers.black_boxes import RECOGNIZERS
from cloak.check.thresholds import CHECK_FAR
from cloak.check.verdict import Verdict

__all__ = ["CheckResult", "InputFailure", "PhotoCheck", "RecognizerCheck"]


@dataclass(frozen=True)
class RecognizerCheck:
    """One protected photo under one recognizer.

    Attributes:
        usual: the photo against the person's clean references.
        linkage: the photo against the person's other protected photos (None when there are
            none to compare with).
    """

    usual: Verdict
    linkage: Verdict | None


@dataclass(frozen=True)
class PhotoCheck:
    """One protected photo: its faces and, per recognizer, the verdicts."""

    path: Path
    faces: int
    recognizers: dict[str, RecognizerCheck]

    def matched(self, name: str, rule: str) -> bool:
        """Recognizer ``name`` matches the photo to the person's references under ``rule``."""
        return self.recognizers[name].usual.matched(rule)

    def linked(self, name: str, rule: str) -> bool | None:
        """Recognizer ``name`` matches the photo to the person's other protected photos under
        ``rule`` (None: no other protected photo)."""
        linkage = self.recognizers[name].linkage
        return None if linkage is None else linkage.matched(rule)

    def to_json(self, rule: str) -> dict[str, Any]:
        return {"path": str(self.path), "faces": self.faces,
                "matched": any(self.matched(n, rule) for n in self.recognizers),
                "recognizers": {n: {
                    "matched": self.matched(n, rule), "linked": self.linked(n, rule),
                    "references": check.usual.to_json(),
                    "other_protected": None if check.linkage is None else check.linkage.to_json()}
                    for n, check in self.recognizers.items()}}


@dataclass(frozen=True)
class InputFailure:
    """An input that could not be used: ``role`` is ``"protected"`` or ``"reference"``."""

    path: Path
    role: str
    reason: str


@dataclass
class CheckResult:
    """The outcome of :func:`cloak.check.check_photos`.

    Attributes:
        rule: ``"far"``, ``"top1"`` or ``"both"`` (:data:`cloak.check.verdict.RULES`).
        thresholds: recognizer name -> threshold at FAR 1e-3, for the recognizers used.
        surrogates: the mask's surrogates, or None when the mask is unknown.
        mask_path: the mask file, or None.
        excluded: recognizers left out because they share a model with a surrogate.
        photos: the protected photos checked, in discovery order.
        reference_photos, reference_faces: the person's clean photos and faces compared with.
        distractor_photos, distractor_faces: the other people's (0 without ``--distractors``).
        failures: inputs that could not be used.
        notes: what a reader must know (fallbacks, unknown mask).
    """

    rule: str
    thresholds: dict[str, float]
    surrogates: list[str] | None = None
    mask_path: Path | None = None
    excluded: list[str] = field(default_factory=list)
    photos: list[PhotoCheck] = field(default_factory=list)
    reference_photos: int = 0
    reference_faces: int = 0
    distractor_photos: int = 0
    distractor_faces: int = 0
    failures: list[InputFailure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def recognizers(self) -> list[str]:
        """The recognizers used, in :data:`~attackers.black_boxes.RECOGNIZERS` order."""
        return list(self.thresholds)

    @property
    def top1_available(self) -> bool:
        """True when distractors were given, so the ``top1`` rule can answer."""
        return self.distractor_faces > 0

    @property
    def failed(self) -> int:
        """Inputs that could not be used."""
        return len(self.failures)

    @property
    def matched(self) -> int:
        """Protected photos that some recognizer matches to the references under the rule."""
        return sum(any(p.matched(n, self.rule) for n in self.recognizers) for p in self.photos)

    @property
    def passed(self) -> bool:
        """Some photo was checked, none is matched and no input failed."""
        return bool(self.photos) and not self.matched and not self.failed

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per recognizer: photos checked, protected (not matched) and not linked, as counts
        and fractions (linkage over the photos that have other protected photos)."""
        out = {}
        for name in self.recognizers:
            protected = sum(not p.matched(name, self.rule) for p in self.photos)
            links = [p.linked(name, self.rule) for p in self.photos]
            linkable = [x for x in links if x is not None]
            unlinked = sum(not x for x in linkable)
            out[name] = {"photos": len(self.photos), "protected": protected,
                         "protected_fraction": protected / len(self.photos) if self.photos
                         else None,
                         "linkable": len(linkable), "unlinked": unlinked,
                         "unlinked_fraction": unlinked / len(linkable) if linkable else None}
        return out

    def to_json(self) -> dict[str, Any]:
        """Everything as a JSON-ready dict (paths as strings); no face features."""
        return {
            "rule": self.rule, "far": CHECK_FAR, "top1_available": self.top1_available,
            "mask": {"path": None if self.mask_path is None else str(self.mask_path),
                     "known": self.surrogates is not None, "surrogates": self.surrogates},
            "recognizers": {n: {"zoo": RECOGNIZERS[n][0],
                                "reference_runtime": RECOGNIZERS[n][1],
                                "threshold": t} for n, t in self.thresholds.items()},
            "excluded": self.excluded,
            "references": {"photos": self.reference_photos, "faces": self.reference_faces},
            "distractors": {"photos": self.distractor_photos, "faces": self.distractor_faces},
            "photos": [p.to_json(self.rule) for p in self.photos],
            "summary": self.summary(),
            "failures": [{"path": str(f.path), "role": f.role, "reason": f.reason}
                         for f in self.failures],
            "notes": self.notes,
            "matched": self.matched, "failed": self.failed, "passed": self.passed,
        }
