"""The rules of ``cloak check`` on face features: is a photo matched to the person?

A photo may hold several faces: it is matched when any of its faces is (an attacker searching
for the person finds the photo through any face). Each rule compares the photo's faces with a
gallery of the person's faces (clean references, or the person's other protected photos):

- ``far``: the best cosine similarity of a photo face to a person face (max over references:
  an attacker holding several reference photos accepts when any one matches) is strictly above
  the recognizer's threshold at FAR 1e-3 (:mod:`cloak.check.thresholds`);
- ``top1``: in a search over the person's faces plus distractor faces (other people), the
  nearest neighbour of a photo face is the person's: no distractor scores strictly higher than
  the best person face (ties count for the person, as in the benchmarks'
  :func:`evaluation.verification.gallery_ranks`). Without distractors the nearest is always the
  person's, so the rule says nothing (:attr:`Verdict.rank` is None).

>>> faces = torch.tensor([[1.0, 0.0]])
>>> person = torch.tensor([[0.6, 0.8]])
>>> verdict = judge(faces, person, torch.tensor([[0.8, 0.6]]), threshold=0.5)
>>> verdict.far_matched, verdict.rank, verdict.top1_matched
(True, 1, False)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["RULES", "Verdict", "judge"]

#: The rules a verdict can be read with (``both``: matched when either rule matches).
RULES: tuple[str, ...] = ("far", "top1", "both")


@dataclass(frozen=True)
class Verdict:
    """One photo against one gallery of the person's faces, for one recognizer.

    Attributes:
        similarity: best cosine similarity of a photo face to a person face, in [-1, 1].
        threshold: the recognizer's threshold at FAR 1e-3.
        rank: for the photo face that ranks the person best, how many distractor faces score
            strictly higher than its best person face (0 = the nearest is the person's); None
            without distractors.
    """

    similarity: float
    threshold: float
    rank: int | None

    @property
    def far_matched(self) -> bool:
        """The ``far`` rule: similarity strictly above the threshold."""
        return self.similarity > self.threshold

    @property
    def top1_matched(self) -> bool | None:
        """The ``top1`` rule: the nearest face is the person's; None without distractors."""
        return None if self.rank is None else self.rank == 0

    def matched(self, rule: str) -> bool:
        """Matched under ``rule`` (of :data:`RULES`); ``top1`` without distractors falls back to
        ``far``, and ``both`` is then ``far`` alone."""
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r}; choose one of {', '.join(RULES)}")
        top1 = self.top1_matched
        if rule == "far" or top1 is None:
            return self.far_matched
        return top1 if rule == "top1" else top1 or self.far_matched

    def to_json(self) -> dict[str, float | int | bool | None]:
        """Similarity, threshold, rank and each rule's answer (no features)."""
        return {"similarity": round(self.similarity, 6), "threshold": self.threshold,
                "rank": self.rank, "far_matched": self.far_matched,
                "top1_matched": self.top1_matched}


def judge(faces: torch.Tensor, person: torch.Tensor, distractors: torch.Tensor | None,
          threshold: float) -> Verdict:
    """Judge one photo's faces against a gallery of the person's faces.

    Args:
        faces: (k, D) L2-normalised features of the photo's faces, k >= 1.
        person: (m, D) L2-normalised features of the person's faces in the gallery, m >= 1.
        distractors: (n, D) L2-normalised features of other people's faces, or None.
        threshold: cosine similarity above which a pair matches.

    Returns:
        the :class:`Verdict`.
    """
    if faces.ndim != 2 or person.ndim != 2 or not len(faces) or not len(person):
        raise ValueError(f"faces {tuple(faces.shape)} and person {tuple(person.shape)} must be "
                         "non-empty (k, D) and (m, D)")
    best = (faces.double() @ person.double().T).max(1).values            # (k,)
    rank = None
    if distractors is not None and len(distractors):
        above = (faces.double() @ distractors.double().T) > best[:, None]  # (k, n)
        rank = int(above.sum(1).min())
    return Verdict(float(best.max()), float(threshold), rank)
