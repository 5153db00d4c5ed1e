"""What a report is made of: the photo pairs, the files not written, and (optionally) what
``cloak check`` found per photo and recognizer.

>>> rows = [PhotoChecks("a.jpg", {"facenet": True, "sface": False}),
...         PhotoChecks("b.jpg", {"facenet": True, "sface": True})]
>>> protection_rates(rows)
{'facenet': (2, 2), 'sface': (1, 2)}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from cloak.photos.options import Summary

__all__ = ["NotWritten", "PhotoChecks", "PhotoPair", "pairs_from_summary", "protection_rates"]


@dataclass(frozen=True)
class PhotoPair:
    """An original photo and its protected copy.

    Attributes:
        name: how the report names it (the copy's path in the output folder).
        original: the input photo, or None when unknown (``cloak check --report`` of a photo
            whose original is not among the references): the copy is shown alone.
        protected: the protected copy.
        faces: (N, 2, 3) photo-to-frame similarities of the faces masked (the report draws
            the photo window each face's canonical frame covers: where the mask can land), or
            None when unknown.
    """

    name: str
    original: Path | None
    protected: Path
    faces: torch.Tensor | None = None


@dataclass(frozen=True)
class NotWritten:
    """An input without a protected copy, listed with its one-line reason.

    Attributes:
        name: the input's path.
        status: ``"failed"``, ``"not-person"`` or ``"skipped"``.
        reason: why.
    """

    name: str
    status: str
    reason: str


@dataclass(frozen=True)
class PhotoChecks:
    """What the recognizers made of one protected photo (``cloak check``).

    Attributes:
        photo: the :attr:`PhotoPair.name` it is about.
        verdicts: recognizer name -> True when the photo is protected from it (the recognizer
            did not match the person), False when it still matched.
    """

    photo: str
    verdicts: Mapping[str, bool]


def protection_rates(checks: Sequence[PhotoChecks]) -> dict[str, tuple[int, int]]:
    """Per recognizer, in order of first appearance: (photos protected, photos checked)."""
    rates: dict[str, tuple[int, int]] = {}
    for row in checks:
        for name, protected in row.verdicts.items():
            done, total = rates.get(name, (0, 0))
            rates[name] = (done + bool(protected), total + 1)
    return rates


def pairs_from_summary(summary: Summary) -> tuple[list[PhotoPair], list[NotWritten]]:
    """The pairs of a ``cloak protect`` run (its copies written now or by an earlier run with
    the same mask and options) and the inputs it did not write, in discovery order."""
    pairs, rest = [], []
    for result in summary.files:
        if result.output is not None and summary.output is not None:
            name = result.output.relative_to(summary.output).as_posix()
            pairs.append(PhotoPair(name, result.path, result.output, result.matrices))
        else:
            rest.append(NotWritten(str(result.path), result.status, result.reason or ""))
    return pairs, rest
