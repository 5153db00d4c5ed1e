"""The rules of ``cloak check`` (:mod:`cloak.check.verdict`) on known feature vectors, and the
result's summary, JSON and table (:mod:`cloak.check.result`, :mod:`cloak.check.table`) on
verdicts built by hand."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cloak.check import RULES, CheckResult, PhotoCheck, Verdict, judge
from cloak.check.result import InputFailure, RecognizerCheck
from cloak.check.table import format_table


def unit(*angles_deg: float) -> torch.Tensor:
    """(n, 2) unit vectors at the given angles: cosine of two = cos(angle difference)."""
    rad = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    return torch.stack([rad.cos(), rad.sin()], 1).float()


def test_smoke() -> None:
    verdict = judge(unit(0), unit(60), None, threshold=0.4)
    assert verdict.similarity == pytest.approx(0.5, abs=1e-6)
    assert verdict.far_matched and verdict.rank is None and verdict.top1_matched is None


def test_far_is_max_over_references_and_strict() -> None:
    """The best reference counts; a similarity equal to the threshold does not match."""
    person = unit(90, 60, 170)                      # cosines with unit(0): 0, 0.5, -0.98
    assert judge(unit(0), person, None, 0.49).far_matched
    assert not judge(unit(0), person, None, 0.5).far_matched      # 0.5 is not > 0.5


def test_any_face_of_the_photo_counts() -> None:
    """A photo with two faces is judged by the face nearest the person."""
    faces = unit(180, 10)                           # a stranger and the person
    verdict = judge(faces, unit(0), unit(100), 0.9)
    assert verdict.similarity == pytest.approx(math.cos(math.radians(10)), abs=1e-6)
    assert verdict.far_matched and verdict.rank == 0


def test_top1_rank_counts_strictly_higher_distractors() -> None:
    """rank = distractors strictly above the best reference; a tie counts for the person."""
    person = unit(40)
    assert judge(unit(0), person, unit(30, 35, 80), 0.99).rank == 2
    tie = judge(unit(0), person, unit(-40, 80), 0.99)               # -40 ties with 40
    assert tie.rank == 0 and tie.top1_matched


@pytest.mark.parametrize("far, rank, expected", [
    # (far matched, rank) -> matched under far, top1, both
    (True, 0, (True, True, True)),
    (True, 3, (True, False, True)),
    (False, 0, (False, True, True)),
    (False, 3, (False, False, False)),
    (True, None, (True, True, True)),               # no distractors: top1 falls back to far
    (False, None, (False, False, False)),
])
def test_rules(far: bool, rank: int | None, expected: tuple[bool, bool, bool]) -> None:
    verdict = Verdict(0.6 if far else 0.4, 0.5, rank)
    assert tuple(verdict.matched(rule) for rule in RULES) == expected


def test_exception() -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        Verdict(0.5, 0.5, None).matched("top5")
    with pytest.raises(ValueError, match="non-empty"):
        judge(torch.zeros(0, 2), unit(0), None, 0.5)


def hand_result() -> CheckResult:
    """Two photos, two recognizers: a.jpg matched by sface only, b.jpg by nobody; linkage
    found by sface for a.jpg; one reference failed."""
    def check(sim: float, rank: int, linked_sim: float) -> RecognizerCheck:
        return RecognizerCheck(Verdict(sim, 0.5, rank), Verdict(linked_sim, 0.5, rank))

    photos = [PhotoCheck(Path("a.jpg"), 1, {"sface": check(0.7, 0, 0.8),
                                            "faceres": check(0.2, 4, 0.1)}),
              PhotoCheck(Path("b.jpg"), 2, {"sface": check(0.3, 2, 0.4),
                                            "faceres": check(0.1, 5, 0.2)})]
    return CheckResult("both", {"sface": 0.5, "faceres": 0.5}, ["facenet"], Path("m.cloak"),
                       excluded=["facenet"], photos=photos, reference_photos=3,
                       reference_faces=3, distractor_photos=9, distractor_faces=9,
                       failures=[InputFailure(Path("r.jpg"), "reference", "empty file")])


def test_summary_and_json() -> None:
    result = hand_result()
    data = result.to_json()
    assert data["summary"]["sface"] == {"photos": 2, "protected": 1, "protected_fraction": 0.5,
                                        "linkable": 2, "unlinked": 1, "unlinked_fraction": 0.5}
    assert data["summary"]["faceres"]["protected_fraction"] == 1.0
    assert [p["matched"] for p in data["photos"]] == [True, False]
    assert data["matched"] == 1 and data["failed"] == 1 and data["passed"] is False
    assert data["mask"] == {"path": "m.cloak", "known": True, "surrogates": ["facenet"]}
    assert data["failures"] == [{"path": "r.jpg", "role": "reference", "reason": "empty file"}]


def test_table_agrees_with_json() -> None:
    result = hand_result()
    lines = format_table(result).splitlines()
    assert lines[1].split() == ["photo", "sface", "faceres"]
    assert lines[2].split() == ["a.jpg", "MATCHED", "LINKED", "protected", "unlinked"]
    assert lines[3].split() == ["b.jpg", "protected", "unlinked", "protected", "unlinked"]
    assert "sface: 1/2 (50%) photos protected; 1/2 (50%) not linked" in lines[4]
    assert lines[-1].startswith("not passed: 1 of 2 photos matched, 1 inputs failed")
    result.failures.clear()
    result.photos.pop(0)
    assert format_table(result).splitlines()[-1].startswith("passed: no recognizer matched")


def test_rules_agree_with_the_benchmarks() -> None:
    """On the same features, ``top1`` is the benchmarks' rank-0 and ``far`` their acceptance:
    :func:`evaluation.verification.gallery_ranks` (query i against the others' rows and the
    distractors) and :func:`~evaluation.verification.rejection_rate` at a
    :func:`~evaluation.verification.far_threshold` calibrated on distractor pairs."""
    from evaluation.verification import (
        far_threshold,
        gallery_ranks,
        impostor_scores,
        rejection_rate,
    )

    generator = torch.Generator().manual_seed(0)
    person = torch.nn.functional.normalize(torch.randn(1, 16, generator=generator), dim=1)
    photos = torch.nn.functional.normalize(
        person + 0.9 * torch.randn(6, 16, generator=generator), dim=1)
    distractors = torch.nn.functional.normalize(torch.randn(40, 16, generator=generator), dim=1)
    ranks = gallery_ranks(photos, photos, distractors)
    threshold = far_threshold(impostor_scores(distractors), 0.05)
    for i in range(len(photos)):
        others = torch.cat([photos[:i], photos[i + 1:]])
        verdict = judge(photos[i:i + 1], others, distractors, threshold)
        assert verdict.rank == ranks[i]
        scores = (others.double() @ photos[i].double()).numpy()
        assert verdict.far_matched == (rejection_rate(scores.max(keepdims=True), threshold) == 0)
    assert 0 < int((ranks == 0).sum()) < len(photos)          # both outcomes occur
