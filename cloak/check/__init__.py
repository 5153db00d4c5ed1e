"""``cloak check``: would face recognizers still match protected photos to the person?

For each protected photo, each zoo recognizer that was not a surrogate of its mask
(:data:`attackers.black_boxes.RECOGNIZERS`, on the runtimes the benchmarks use) compares the
photo's faces with the person's clean reference photos:

- :mod:`~cloak.check.thresholds`: the benchmark-calibrated thresholds (FAR 1e-3) it judges with;
- :mod:`~cloak.check.verdict`: the rules on features: ``far`` (best similarity to a reference
  above the threshold) and ``top1`` (the nearest of references plus distractors is a reference);
- :mod:`~cloak.check.photos`: reading photos into per-recognizer face features (in memory only,
  DESIGN section 7) and finding the mask file beside the protected photos;
- :mod:`~cloak.check.run`: :func:`check_photos`, the whole check, and
  :func:`read_distractors` to read distractors once for many checks;
- :mod:`~cloak.check.result`: its :class:`CheckResult` (per photo and recognizer; JSON);
- :mod:`~cloak.check.table`: the result as a terminal table.

The recognizers are the zoo's, not the attacker's: passing is evidence, not a guarantee.

>>> # result = check_photos([Path("alice_cloaked")], [Path("alice")], Path("alice.cloak"))
>>> # result.passed, result.to_json()["recognizers"]
"""

from cloak.check.photos import find_mask
from cloak.check.result import CheckResult, PhotoCheck
from cloak.check.run import Distractors, check_photos, read_distractors
from cloak.check.verdict import RULES, Verdict, judge

__all__ = ["RULES", "CheckResult", "Distractors", "PhotoCheck", "Verdict", "check_photos",
           "find_mask", "judge", "read_distractors"]
