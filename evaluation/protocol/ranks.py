"""The OPOM identification protocol: photo splits, galleries, protection success rate, bootstrap.

Per identity the first ``n_train`` usable photos (sorted by name, a face found) learn the mask
and the next ``n_probe`` are probes. A probe is ranked against a gallery made of the person's
OTHER clean probe photos plus every distractor; the identity is found at top-k when one of its
gallery photos is among the ``k`` most similar entries (cosine). The protection success rate
PSR@k is the share of probes whose identity is NOT found at top-k (Zhong & Deng, "OPOM",
TPAMI 2022, section 5). Intervals come from a percentile bootstrap over identities.

>>> import torch
>>> clean = torch.eye(3)[:2]                    # two clean probes of the person: e0, e1
>>> distractors = torch.eye(3)[2:]              # one distractor: e2
>>> queries = torch.tensor([[0.0, 0.6, 0.8], [0.6, 0.0, 0.8]])
>>> identity_ranks(queries, clean, distractors).tolist()   # the distractor beats the genuine
[1, 1]
>>> psr(identity_ranks(queries, clean, distractors), k=1)
1.0
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np
import torch

__all__ = [
    "Split",
    "bootstrap_interval",
    "gallery_for_probe",
    "identity_ranks",
    "outside_ranks",
    "person_generator",
    "psr",
    "psr_table",
    "split_photos",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Split(Generic[T]):
    """One identity's photos for the protocol.

    Attributes:
        person: the identity's name.
        train: the photos that learn the mask.
        probes: the photos that are protected and searched for.
    """

    person: str
    train: list[T]
    probes: list[T]


def split_photos(person: str, usable: Sequence[T], n_train: int = 10,
                 n_probe: int = 5) -> Split[T] | None:
    """Split a person's usable photos (in order) into training photos and probes.

    Args:
        person: the identity's name.
        usable: the person's photos in which a face was found, sorted by file name.
        n_train: photos that learn the mask (the first ones).
        n_probe: probes (the next ones; later photos are not used).

    Returns:
        the :class:`Split`, or None when fewer than ``n_train + n_probe`` photos are usable (the
        identity is left out of the benchmark).
    """
    if n_train < 1 or n_probe < 2:
        raise ValueError(f"need n_train >= 1 and n_probe >= 2 (a probe needs another probe in "
                         f"its gallery), got {n_train}, {n_probe}")
    if len(usable) < n_train + n_probe:
        return None
    return Split(person, list(usable[:n_train]), list(usable[n_train:n_train + n_probe]))


def gallery_for_probe(clean: torch.Tensor, distractors: torch.Tensor,
                      probe: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The gallery one probe is searched in: the person's other clean probes + the distractors.

    Args:
        clean: (P, D) L2-normalised features of the person's clean probe photos.
        distractors: (N, D) L2-normalised features of the distractor photos.
        probe: index of the probe in ``clean`` (its own photo is left out).

    Returns:
        (gallery, genuine): (P - 1 + N, D) features, the P - 1 genuine rows first, and a
        (P - 1 + N,) bool tensor that is True on the person's rows.
    """
    if not 0 <= probe < len(clean):
        raise IndexError(f"probe {probe} out of range for {len(clean)} probes")
    others = torch.cat([clean[:probe], clean[probe + 1:]])
    genuine = torch.zeros(len(others) + len(distractors), dtype=torch.bool)
    genuine[:len(others)] = True
    return torch.cat([others, distractors.to(others)]), genuine


def identity_ranks(queries: torch.Tensor, clean: torch.Tensor,
                   distractors: torch.Tensor) -> torch.Tensor:
    """For each probe, how many gallery entries of other people outrank its best genuine match.

    Probe ``i`` (query row ``i``: its clean or protected feature) is compared by cosine with
    :func:`gallery_for_probe` ``(clean, distractors, i)``. Its rank is the number of distractors
    more similar than the most similar of the person's other photos: 0 means the person is the
    top-1 match, and the person is found at top-k exactly when ``rank < k``. Ties count for the
    person (a distractor must score strictly higher), so PSR is never overstated by ties.

    Args:
        queries: (P, D) L2-normalised probe features; a row of NaN stands for a probe in which no
            face was found (it gets rank N, the person is found nowhere).
        clean: (P, D) L2-normalised clean features of the same probes (their gallery entries).
        distractors: (N, D) L2-normalised distractor features.

    Returns:
        (P,) int64 ranks in [0, N].
    """
    if queries.shape != clean.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and clean {tuple(clean.shape)} differ")
    ranks = torch.empty(len(queries), dtype=torch.int64)
    for i in range(len(queries)):
        if torch.isnan(queries[i]).any():
            ranks[i] = len(distractors)
            continue
        gallery, genuine = gallery_for_probe(clean, distractors, i)
        sims = gallery.double() @ queries[i].double()
        best = sims[genuine].max()
        ranks[i] = int((sims[~genuine] > best).sum())
    return ranks


def outside_ranks(queries: torch.Tensor, genuine: torch.Tensor,
                  distractors: torch.Tensor) -> torch.Tensor:
    """For photos of the person that are not in the gallery (e.g. the training photos searched
    among the person's clean probes), how many distractors outrank the best genuine match.

    The same rule as :func:`identity_ranks` (ties count for the person), with every row of
    ``genuine`` in every query's gallery.

    Args:
        queries: (Q, D) L2-normalised features; a NaN row (no face found) gets rank N.
        genuine: (G, D) L2-normalised features of the person's gallery photos, G >= 1.
        distractors: (N, D) L2-normalised distractor features.

    Returns:
        (Q,) int64 ranks in [0, N].
    """
    if len(genuine) == 0:
        raise ValueError("the gallery needs at least one photo of the person")
    best = (queries.double() @ genuine.double().T).max(1).values
    above = (queries.double() @ distractors.double().T) > best[:, None]
    ranks = above.sum(1)
    ranks[torch.isnan(queries).any(1)] = len(distractors)
    return ranks


def psr(ranks: torch.Tensor | np.ndarray, k: int) -> float:
    """Protection success rate at top-k: the share of probes whose identity is not in the top k.

    Args:
        ranks: ranks from :func:`identity_ranks`, any shape (all probes pooled).
        k: how many top matches the attacker looks at (>= 1).

    Returns:
        PSR in [0, 1].
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    values = np.asarray(ranks)
    if values.size == 0:
        raise ValueError("no ranks to score")
    return float((values >= k).mean())


def bootstrap_interval(successes: np.ndarray, trials: np.ndarray | None = None, *,
                       n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval over identities of a rate, or of a mean of rates.

    Each replicate draws ``I`` identities with replacement (a seeded numpy ``default_rng``) and
    computes, for every column ``r``, ``sum(successes[:, r]) / sum(trials[:, r])`` over the drawn
    identities, then the mean over columns. With one column this is the pooled rate (for
    example PSR: successes = protected probes, trials = probes, per identity); with one column per
    recognizer it is the mean PSR over recognizers, identities resampled jointly.

    Args:
        successes: (I,) or (I, R) counts per identity (and column).
        trials: same shape, the denominators; default 1 everywhere (``successes`` are rates).
        n_boot: number of replicates.
        level: coverage of the interval, in (0, 1).
        seed: seed of the resampling; the same seed gives the same interval.

    Returns:
        (low, high): the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the replicates.
    """
    s = np.asarray(successes, dtype=np.float64)
    t = np.ones_like(s) if trials is None else np.asarray(trials, dtype=np.float64)
    if s.shape != t.shape:
        raise ValueError(f"successes {s.shape} and trials {t.shape} differ in shape")
    if s.ndim == 1:
        s, t = s[:, None], t[:, None]
    if s.ndim != 2 or len(s) == 0:
        raise ValueError(f"successes must be (I,) or (I, R) with I >= 1, got {s.shape}")
    if not 0.0 < level < 1.0 or n_boot < 1:
        raise ValueError(f"need 0 < level < 1 and n_boot >= 1, got {level}, {n_boot}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(s), size=(n_boot, len(s)))
    rates = s[draws].sum(1) / t[draws].sum(1)          # (n_boot, R)
    stats = rates.mean(1)
    low, high = np.quantile(stats, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def person_generator(person: str, seed: int) -> torch.Generator:
    """A CPU generator seeded by ``seed`` and the person's name (the same draws every run)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(person.encode()))


def psr_table(ranks: dict[str, np.ndarray], ks: Sequence[int] = (1, 5), *, n_boot: int = 2000,
              seed: int = 0) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """PSR@k with bootstrap intervals over identities, per recognizer and their mean.

    Args:
        ranks: recognizer -> (I, P) ranks of I identities' P probes.
        ks: the k of each PSR@k.
        n_boot: bootstrap replicates (:func:`bootstrap_interval`).
        seed: the bootstrap's seed.

    Returns:
        (per recognizer ``{"psr@k": rate, "ci@k": [low, high], ...}``, the same for the mean
        over recognizers, identities resampled jointly).
    """
    per: dict[str, dict[str, Any]] = {name: {} for name in ranks}
    mean: dict[str, Any] = {}
    for k in ks:
        for name, r in ranks.items():
            hits = (r >= k).sum(1)
            per[name][f"psr@{k}"] = psr(r, k)
            per[name][f"ci@{k}"] = list(bootstrap_interval(
                hits, np.full(len(hits), r.shape[1]), n_boot=n_boot, seed=seed))
        hits = np.stack([(r >= k).sum(1) for r in ranks.values()], 1)               # (I, R)
        trials = np.stack([np.full(len(hits), r.shape[1]) for r in ranks.values()], 1)
        mean[f"psr@{k}"] = float(np.mean([psr(r, k) for r in ranks.values()]))
        mean[f"ci@{k}"] = list(bootstrap_interval(hits, trials, n_boot=n_boot, seed=seed))
    return per, mean
