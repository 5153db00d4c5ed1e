"""Recognizer verdicts for a report: :func:`photo_checks`, the one adapter from ``cloak
check``'s :class:`~cloak.check.CheckResult` to the report's :class:`PhotoChecks` rows, and
:func:`check_run`, the check of a protection run's copies against its own originals (what
``cloak protect --report`` and ``cloak serve`` show).

>>> # rows = photo_checks(check_photos([Path("out")], [Path("refs")], None),
>>> #                     {Path("out/a.jpg"): "a.jpg"})
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from attackers.zoo import FetchError
from cloak.check import CheckResult, check_photos
from cloak.errors import CloakError
from cloak.mask import MaskError
from cloak.photos.options import Reporter, UsageError
from cloak.report.inputs import PhotoChecks, PhotoPair

__all__ = ["SAME_PHOTO_NOTE", "RunChecks", "check_run", "photo_checks"]

#: What the verdicts of :func:`check_run` mean, one line for the page.
SAME_PHOTO_NOTE = ("Verdicts of cloak check, rule far (a recognizer matches a protected photo "
                   "when it is more similar to a reference than the recognizer's threshold at "
                   "1 false accept in 1,000), by the recognizers that did not make the mask. "
                   "The references are the originals themselves: a strict test, the very same "
                   "photo. The top-1 rule needs photos of other people: run cloak check "
                   "--distractors.")


def photo_checks(result: CheckResult, names: Mapping[Path, str]) -> list[PhotoChecks]:
    """``cloak check``'s verdicts as report rows: per photo checked, recognizer -> protected
    (True: not matched to the references under the result's rule).

    Args:
        result: what :func:`~cloak.check.check_photos` returned.
        names: photo path -> the :attr:`PhotoPair.name` the report shows it under (paths
            compared resolved); a photo not in it is named by its path.
    """
    resolved = {Path(path).resolve(): name for path, name in names.items()}
    return [PhotoChecks(resolved.get(photo.path.resolve(), str(photo.path)),
                        {n: not photo.matched(n, result.rule) for n in result.recognizers})
            for photo in result.photos]


@dataclass(frozen=True)
class RunChecks:
    """The verdicts of a run's copies for a report.

    Attributes:
        rows: per protected photo checked, its verdicts; None when the check could not run.
        note: one line for the page: what the verdicts mean, or why there are none.
    """

    rows: list[PhotoChecks] | None
    note: str


def check_run(pairs: Sequence[PhotoPair], mask: Path | None,
              reporter: Reporter | None = None) -> RunChecks:
    """Check the protected copies of a run against their own originals (rule ``far``, the
    recognizers that did not make ``mask``): :func:`~cloak.check.check_photos`.

    Args:
        pairs: the run's originals and protected copies (originals of other people's photos
            are not among them, so the person is the run's).
        mask: the run's mask file (its surrogates are left out), or None: every recognizer.
        reporter: receives the check's progress ("reading references", "checking photos")
            and notices.

    Returns:
        the rows and :data:`SAME_PHOTO_NOTE` (and each copy that could not be checked, with
        its reason), or no rows and a one-line reason when the check cannot run
        (no copy, no recognizer left, a model that cannot be fetched, no face in the
        originals, ...).
    """
    if not pairs:
        return RunChecks(None, "No recognizer verdicts: no protected photo to check.")
    try:
        result = check_photos([p.protected for p in pairs if p.original is not None],
                              [p.original for p in pairs if p.original is not None], mask,
                              rule="far", reporter=reporter)
    except (CloakError, MaskError, FetchError, UsageError) as err:
        return RunChecks(None, f"No recognizer verdicts: the check failed ({err}).")
    names = {p.protected: p.name for p in pairs}
    if not result.photos:
        return RunChecks(None, "No recognizer verdicts: "
                         + "; ".join([*result.notes, *(f.reason for f in result.failures)]
                                     or ["no protected copy could be checked"]) + ".")
    unchecked = "".join(f" {names.get(f.path, f.path)}: not checked ({f.reason})."
                        for f in result.failures if f.role == "protected")
    return RunChecks(photo_checks(result, names), SAME_PHOTO_NOTE + unchecked)
