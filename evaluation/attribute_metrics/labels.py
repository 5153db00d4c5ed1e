"""Labels of the attribute benchmark: UTKFace file names, age bins and the class a predictor's
output predicts."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from attackers.attributes.base import AGE_BINS, RACES
from evaluation.attribute_metrics.arrays import as_numpy, as_vector

__all__ = ["FaceLabels", "UtkLabels", "age_bin", "parse_utkface_name", "predicted_classes",
           "utkface_labels"]

#: First year of every age bin but the first (bin ``k`` holds ``starts[k-1] <= age < starts[k]``).
_BIN_STARTS = np.array([lo for lo, _ in AGE_BINS[1:]], dtype=np.float64)


@dataclass(frozen=True)
class UtkLabels:
    """Labels of one UTKFace photo.

    Attributes:
        age: years, >= 0.
        male: True for gender 0 in the file name.
        race: index into :data:`~attackers.attributes.base.RACES`, None where the name has no
            race field.
    """

    age: int
    male: bool
    race: int | None


def parse_utkface_name(path: str | Path) -> UtkLabels:
    """Labels from a UTKFace file name ``age_gender_race_date.jpg.chip.jpg``.

    Gender is 0 (male) or 1 (female), race 0-4 in :data:`RACES` order. A few names of the
    original set lack the race field (``age_gender_date...``); those get ``race=None``.

    Args:
        path: the photo's path or file name (only the name is read).

    Returns:
        the parsed labels.

    Raises:
        ValueError: the name does not follow the pattern (the message names the file).
    """
    name = Path(path).name
    fields = name.split("_")
    if len(fields) not in (3, 4):
        raise ValueError(f"{name}: not a UTKFace name age_gender_race_date.jpg.chip.jpg "
                         f"({len(fields)} fields separated by '_', expected 4, or 3 without race)")
    age, gender, date = fields[0], fields[1], fields[-1]
    race = fields[2] if len(fields) == 4 else None
    if not age.isdigit():
        raise ValueError(f"{name}: age field {age!r} is not a whole number of years")
    if gender not in ("0", "1"):
        raise ValueError(f"{name}: gender field {gender!r} must be 0 (male) or 1 (female)")
    if race is not None and race not in [str(i) for i in range(len(RACES))]:
        raise ValueError(f"{name}: race field {race!r} must be 0-{len(RACES) - 1} ({RACES})")
    if not date.split(".")[0].isdigit():
        raise ValueError(f"{name}: date field {date!r} does not start with digits")
    return UtkLabels(age=int(age), male=gender == "0", race=None if race is None else int(race))


@dataclass(frozen=True)
class FaceLabels:
    """Labels of N faces as arrays.

    Attributes:
        age: (N,) int years, >= 0.
        male: (N,) bool.
        race: (N,) int index into :data:`RACES`, -1 where unknown.
    """

    age: np.ndarray
    male: np.ndarray
    race: np.ndarray

    def __len__(self) -> int:
        return len(self.age)


def utkface_labels(paths: Iterable[str | Path]) -> FaceLabels:
    """Parse UTKFace file names (see :func:`parse_utkface_name`) into :class:`FaceLabels`."""
    parsed = [parse_utkface_name(p) for p in paths]
    return FaceLabels(age=np.array([p.age for p in parsed], dtype=np.int64),
                      male=np.array([p.male for p in parsed], dtype=bool),
                      race=np.array([-1 if p.race is None else p.race for p in parsed],
                                    dtype=np.int64))


def age_bin(ages: np.ndarray) -> np.ndarray:
    """Index of the :data:`AGE_BINS` group of each age (0-3, 4-12, 13-19, 20-30, 31-45, 46-60, 61+).

    A bin ``(lo, hi)`` holds ``lo <= age < hi + 1``, as in
    :func:`attackers.attributes.base.bin_ages`: 3.5 years is 0-3, 12.9 is 4-12.

    Args:
        ages: (N,) years, finite and >= 0 (ints or expected ages as floats).

    Returns:
        (N,) int64 in [0, 6].

    Raises:
        ValueError: an age is negative or not finite.
    """
    a = np.asarray(ages, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"ages must be finite and >= 0, got min {a.min() if a.size else None}")
    return np.searchsorted(_BIN_STARTS, a, side="right").astype(np.int64)


def predicted_classes(output: Any, key: str) -> np.ndarray:
    """Predicted class per face from one predictor output.

    Args:
        output: the predictor's tensor or array for ``key``.
        key: ``"sex_male_prob"`` ((N,) in [0, 1] -> 1 = male where >= 0.5), ``"age_years"``
            ((N,) -> :func:`age_bin`), or a probability output ((N, K), such as ``"race"``,
            ``"age_bins"``, ``"age_groups"`` -> argmax).

    Returns:
        (N,) int64 class indices.
    """
    x = as_numpy(output)
    if key == "sex_male_prob":
        return (as_vector(x, key) >= 0.5).astype(np.int64)
    if key == "age_years":
        return age_bin(as_vector(x, key))
    if x.ndim != 2:
        raise ValueError(f"{key}: expected (N, K) class probabilities, got shape {x.shape}")
    return x.argmax(axis=1).astype(np.int64)

