"""What the robustness benchmark runs: :class:`RobustnessSettings` and the condition names."""

from __future__ import annotations

from dataclasses import dataclass, field

from evaluation.mask_attacks import DENOISERS
from evaluation.opom.settings import BenchmarkSettings

__all__ = ["DIRECTIONS", "KS", "PURIFIERS", "TRANSFORMS", "RobustnessSettings"]

#: Transform conditions in report order: ``none`` (as written), the exact photo transforms of
#: :mod:`evaluation.transforms`, and ``jitter`` (landmarks moved before alignment).
TRANSFORMS: tuple[str, ...] = ("none", "jpeg95", "jpeg85", "jpeg75", "jpeg50", "resize0.5",
                               "resize0.25", "blur1", "jitter")
#: Purifiers an attacker applies before recognition.
PURIFIERS: tuple[str, ...] = ("median3", "bilateral", "jpeg30")
#: Matching directions beside protected probe vs clean gallery (``protected/none``).
DIRECTIONS: tuple[str, ...] = ("clean-vs-protected", "protected-vs-protected")
#: How many protected photos the mask-estimation attacker holds.
KS: tuple[int, ...] = (2, 5, 10)


@dataclass(frozen=True)
class RobustnessSettings:
    """What :func:`evaluation.robustness.run.run_robustness` runs.

    Attributes:
        opom: the OPOM benchmark's settings: LFW folder, identities (``limit``, ``people``),
            distractors, folds (``loo``/``folds``), optimiser (``mode`` and overrides, ``seed``;
            the subspace is always convex), split (``n_train``, ``n_probe``), ``n_boot``,
            ``cache_dir`` (distractor features as in the OPOM benchmark; masks and records under
            ``cache_dir/robustness``), ``batch``, ``progress``. Its ``conditions`` are unused.
        transforms: transform and purifier conditions, names of :data:`TRANSFORMS` +
            :data:`PURIFIERS`, run on protected and clean probes.
        jitter_px: landmark jitter of the ``jitter`` condition, photo pixels (>= 0).
        ks: photos the mask-estimation attacker holds, each in [1, n_train].
        denoisers: the attack's denoisers (keys of :data:`evaluation.mask_attacks.DENOISERS`).
        fars: false-accept rates of the verification thresholds, each in (0, 1).
        baseline: run the per-photo baseline.
    """

    opom: BenchmarkSettings = field(default_factory=BenchmarkSettings)
    transforms: tuple[str, ...] = TRANSFORMS + PURIFIERS
    jitter_px: float = 2.0
    ks: tuple[int, ...] = KS
    denoisers: tuple[str, ...] = tuple(DENOISERS)
    fars: tuple[float, ...] = (1e-2, 1e-3)
    baseline: bool = True

    def check(self) -> None:
        """Raise ValueError naming every invalid setting."""
        problems = []
        known = TRANSFORMS + PURIFIERS
        bad = [t for t in self.transforms if t not in known]
        if bad or "none" not in self.transforms:
            problems.append(f"transforms must include 'none' and come from {known}; got unknown "
                            f"{bad}")
        if not self.jitter_px >= 0:
            problems.append(f"jitter_px must be >= 0, got {self.jitter_px}")
        if not all(1 <= k <= self.opom.n_train for k in self.ks):
            problems.append(f"ks must lie in [1, n_train = {self.opom.n_train}], got {self.ks}")
        bad = [d for d in self.denoisers if d not in DENOISERS]
        if bad or not self.denoisers:
            problems.append(f"unknown or no denoisers {bad}; choose from {tuple(DENOISERS)}")
        if not all(0 < f < 1 for f in self.fars) or not self.fars:
            problems.append(f"fars must lie in (0, 1), got {self.fars}")
        if problems:
            raise ValueError("invalid robustness settings: " + "; ".join(problems))
        self.opom.fold_plan()
        self.opom.config("convex")
