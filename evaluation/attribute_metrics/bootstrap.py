"""Percentile bootstrap over faces: draw counts, statistics of weighted faces and their
intervals."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from evaluation.attribute_metrics.arrays import json_float

__all__ = ["Estimate", "Stat", "draw_counts", "estimate", "interval", "ratio"]


@dataclass(frozen=True)
class Estimate:
    """A statistic over faces with its percentile-bootstrap interval.

    Attributes:
        value: the statistic on all faces.
        low: lower end of the interval (NaN when no replicate was defined).
        high: upper end.
        n: faces the statistic counts.
    """

    value: float
    low: float
    high: float
    n: int

    def as_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN becomes None."""
        return {"value": json_float(self.value), "low": json_float(self.low),
                "high": json_float(self.high), "n": self.n}


#: A statistic of weighted faces: (B, N) draw counts -> (B,) values.
Stat = Callable[[np.ndarray], np.ndarray]


def draw_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) float64: how often each face is drawn in each replicate (rows sum to n)."""
    if n < 1 or n_boot < 1:
        raise ValueError(f"need at least one face and one replicate, got {n} and {n_boot}")
    draws = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    flat = (draws + n * np.arange(n_boot)[:, None]).ravel()
    return np.bincount(flat, minlength=n_boot * n).reshape(n_boot, n).astype(np.float64)


def interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Percentile interval of the finite replicates; (NaN, NaN) when there are none."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return math.nan, math.nan
    low, high = np.quantile(finite, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def estimate(stat: Stat, counts: np.ndarray, counted: int, level: float) -> Estimate:
    """Point value of ``stat`` on all faces and its interval over the replicates ``counts``.

    Args:
        stat: the statistic of weighted faces.
        counts: (n_boot, N) draw counts from :func:`draw_counts`.
        counted: faces the statistic counts (for :attr:`Estimate.n`).
        level: interval coverage.
    """
    value = float(stat(np.ones((1, counts.shape[1])))[0])
    return Estimate(value, *interval(stat(counts), level), counted)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den is 0."""
    out = np.full(np.broadcast(num, den).shape, np.nan)
    return np.divide(num, den, out=out, where=den > 0)

