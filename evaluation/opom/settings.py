"""What the OPOM benchmark runs: :class:`BenchmarkSettings`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.opom.conditions import CONDITIONS, DEFAULT_CONDITIONS
from evaluation.paths import DEFAULT_CACHE, DEFAULT_LFW
from evaluation.protocol.folds import FOLD_PLANS, Fold, check_folds
from evaluation.protocol.lfw import distractor_files, identity_folders

if TYPE_CHECKING:
    from cloak.opom import OpomConfig

__all__ = ["DEFAULT_REFINE_STEPS", "TRAIN_POOL", "BenchmarkSettings"]

#: Photos with a face before the probes (the 10-photo training set of the OPOM protocol).
TRAIN_POOL = 10
#: Steps of per-probe refinement in the ``refine`` condition.
DEFAULT_REFINE_STEPS = 10
#: Fields of :class:`BenchmarkSettings` that override the mode's optimiser settings.
OVERRIDES = ("steps", "eps", "step_size", "momentum", "diversity", "ti_kernel", "paste",
             "feather", "balance", "eot", "linkage", "views", "precision")


@dataclass(frozen=True)
class BenchmarkSettings:
    """What :func:`evaluation.opom.run.run_benchmark` runs.

    The field names are part of the record store's key (:func:`evaluation.opom.run.record_store`):
    renaming one orphans the stored records.

    Attributes:
        lfw: the ``lfw`` folder (``identities/`` and ``distractors/``).
        limit: only the first ``limit`` identities (sorted by name); None = all.
        people: only these identities (folder names); None = all.
        distractors: only the first ``distractors`` distractor files; None = all 2,679.
        conditions: a subset of :data:`~evaluation.opom.conditions.CONDITIONS`, reported in
            that order.
        loo: a key of :data:`~evaluation.protocol.folds.FOLD_PLANS` (ignored when ``folds`` is
            given).
        folds: an explicit fold design (checked by :func:`~evaluation.protocol.folds.check_folds`).
        mode: a key of :data:`cloak.opom.MODES`: the optimiser's settings (its surrogates are
            replaced by each fold's); default the one ``cloak protect`` ships.
        steps, eps, step_size, momentum, diversity, ti_kernel, paste, feather, balance, eot,
            linkage, views, precision: overrides of the mode's
            :class:`~cloak.opom.OpomConfig` fields (None = the mode's value).
        paste_mode: resampling of the mask into the probe photo (``"bilinear"``/``"nearest"``).
        refine_steps: per-probe steps of the ``refine`` condition (recorded in its entries; a
            stored entry made with other steps is computed again).
        seed: seeds the masks, the noise and the bootstrap.
        n_train, n_probe: photos per identity that learn the mask / are probes. The probes
            follow the first ``max(n_train, TRAIN_POOL)`` photos with a face, so an enrolment
            from fewer photos (``n_train = 1``) is tested on the same probes as from 10.
        n_boot: bootstrap replicates.
        cache_dir: where distractor landmarks and features are cached.
        batch: images per detector / recognizer call.
        progress: show progress bars.
    """

    lfw: Path = DEFAULT_LFW
    limit: int | None = None
    people: tuple[str, ...] | None = None
    distractors: int | None = None
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    loo: str = "two"
    folds: tuple[Fold, ...] | None = None
    mode: str = "balanced"
    steps: int | None = None
    eps: float | None = None
    step_size: float | None = None
    momentum: float | None = None
    diversity: float | None = None
    ti_kernel: int | None = None
    paste: str | None = None
    feather: float | None = None
    balance: bool | None = None
    eot: bool | None = None
    linkage: float | None = None
    views: bool | None = None
    precision: str | None = None
    paste_mode: str = "bilinear"
    refine_steps: int = DEFAULT_REFINE_STEPS
    seed: int = 0
    n_train: int = 10
    n_probe: int = 5
    n_boot: int = 2000
    cache_dir: Path = DEFAULT_CACHE
    batch: int = 16
    progress: bool = True

    def fold_plan(self) -> tuple[Fold, ...]:
        """The folds to run (``folds`` or ``FOLD_PLANS[loo]``), checked."""
        if self.folds is None and self.loo not in FOLD_PLANS:
            raise ValueError(f"unknown leave-one-out plan {self.loo!r}; choose one of "
                             f"{tuple(FOLD_PLANS)}")
        folds = self.folds if self.folds is not None else FOLD_PLANS[self.loo]
        check_folds(folds)
        return folds

    def config(self, subspace: str = "center",
               terms: tuple[str, ...] | None = None) -> OpomConfig:
        """The optimiser settings: the mode's, with the overrides, ``subspace`` and ``seed``.

        Args:
            subspace: the OPOM subspace model (``center``, ``affine``, ``convex``).
            terms: only these optional objective terms of :data:`cloak.opom.TERMS` on
                (:func:`cloak.opom.with_terms`); None = the mode's objective as shipped.
        """
        from cloak.masking import resolve_mode

        changes = {n: getattr(self, n) for n in OVERRIDES}
        return resolve_mode(self.mode, terms=terms, subspace=subspace, seed=self.seed,
                            **changes)[0]

    def photo_sets(self) -> tuple[list[Path], list[Path]]:
        """The identity folders (sorted, filtered by ``people`` and ``limit``) and distractors.

        Raises:
            FileNotFoundError: an LFW folder is missing or empty; ValueError: ``people`` names
                an identity that does not exist.
        """
        distractors = distractor_files(self.lfw, self.distractors)
        people = identity_folders(self.lfw, self.people)[:self.limit]
        if not people or not distractors:
            raise FileNotFoundError(f"{self.lfw}: no identities or no distractor photos")
        return people, distractors

    def check(self) -> None:
        """Raise ValueError naming every invalid setting."""
        bad = [c for c in self.conditions if c not in CONDITIONS]
        if bad or not self.conditions:
            raise ValueError(f"unknown or no conditions {bad}; choose from {CONDITIONS}")
        for name in ("limit", "distractors"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.refine_steps < 1:
            raise ValueError(f"refine_steps must be >= 1, got {self.refine_steps}")
        if self.paste_mode not in ("bilinear", "nearest"):
            raise ValueError(f"paste_mode must be 'bilinear' or 'nearest', got {self.paste_mode!r}")
        self.fold_plan()
        self.config()
