"""Matching directions and verification operating points, computed on recognizer features.

Identification in three directions. A person has ``P`` probe photos; each is searched in a
gallery of the person's OTHER photos plus ``N`` distractors (cosine similarity), and its rank is
the number of distractors that score strictly higher than the best of the person's entries
(:func:`gallery_ranks`; PSR@1 = share of ranks >= 1, :func:`evaluation.protocol.psr`):

- protected probe vs clean gallery: ``gallery_ranks(protected, clean, distractors)`` (what
  :func:`evaluation.protocol.identity_ranks` computes);
- clean probe vs protected gallery (a database built from protected photos):
  ``gallery_ranks(clean, protected, distractors)``;
- protected vs protected (linking a person's protected photos to each other):
  ``gallery_ranks(protected, protected, distractors)``.

A feature row of NaN stands for a photo in which no face was found: as a query it finds nobody
(rank ``N``); as a gallery entry it was never enrolled (left out; when none of the person's other
entries is enrolled the rank is ``N``).

Verification: a pair is accepted when its cosine similarity is strictly above a threshold. The
threshold at a false-accept rate ``far`` is calibrated on impostor pairs (:func:`far_threshold`);
the benchmark uses every unordered pair of clean distractor photos (:func:`impostor_scores`;
LFW's distractors are 2,679 different people). A genuine pair with a photo without a face is
rejected.

>>> clean = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
>>> protected = torch.tensor([[0.0, 1.0], [float("nan"), float("nan")]])
>>> distractors = torch.tensor([[0.6, 0.8]])
>>> gallery_ranks(protected, clean, distractors).tolist()     # probe 0 is found by photo 1
[0, 1]
>>> gallery_ranks(clean, protected, distractors).tolist()     # photo 1 of the gallery: no face
[1, 0]
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "far_threshold",
    "gallery_ranks",
    "genuine_scores",
    "impostor_scores",
    "rejection_rate",
]


def _check_pair(queries: torch.Tensor, enrolled: torch.Tensor) -> None:
    if queries.ndim != 2 or queries.shape != enrolled.shape:
        raise ValueError(f"queries {tuple(queries.shape)} and enrolled {tuple(enrolled.shape)} "
                         "must both be (P, D)")


def gallery_ranks(queries: torch.Tensor, enrolled: torch.Tensor,
                  distractors: torch.Tensor) -> torch.Tensor:
    """For each query, how many distractors outrank the best of the person's other enrolled photos.

    Query ``i`` is compared by cosine with the rows ``j != i`` of ``enrolled`` that have a face
    and with every distractor. Ties count for the person (a distractor must score strictly
    higher), as in :func:`evaluation.protocol.identity_ranks`, which this equals when no row is
    NaN.

    Args:
        queries: (P, D) L2-normalised features of the probes as the attacker searches them; a
            NaN row = no face found (rank ``N``).
        enrolled: (P, D) L2-normalised features of the same photos as enrolled in the gallery;
            row ``i`` is left out of query ``i``'s gallery, a NaN row is not enrolled.
        distractors: (N, D) L2-normalised distractor features (no NaN).

    Returns:
        (P,) int64 ranks in [0, N]; the person is found at top-k exactly when ``rank < k``.
    """
    _check_pair(queries, enrolled)
    if len(queries) < 2:
        raise ValueError(f"need at least 2 photos of the person, got {len(queries)}")
    ranks = torch.full((len(queries),), len(distractors), dtype=torch.int64)
    has_face = ~torch.isnan(enrolled).any(1)
    for i in range(len(queries)):
        others = has_face.clone()
        others[i] = False
        if torch.isnan(queries[i]).any() or not others.any():
            continue
        query = queries[i].double()
        best = (enrolled[others].double() @ query).max()
        ranks[i] = int((distractors.double() @ query > best).sum())
    return ranks


def impostor_scores(features: torch.Tensor) -> np.ndarray:
    """Cosine similarity of every unordered pair of rows (all photos of different people).

    Args:
        features: (N, D) L2-normalised features, one row per photo; NaN rows are left out.

    Returns:
        (M,) float64 scores, ``M = n (n - 1) / 2`` for the ``n`` rows without NaN.
    """
    if features.ndim != 2:
        raise ValueError(f"features must be (N, D), got {tuple(features.shape)}")
    kept = features[~torch.isnan(features).any(1)].double()
    sims = (kept @ kept.T).numpy()
    upper = np.triu_indices(len(kept), k=1)
    return sims[upper]


def far_threshold(impostor: np.ndarray, far: float) -> float:
    """The lowest impostor score at which at most a share ``far`` of impostors is accepted.

    With the scores sorted in decreasing order ``s_0 >= s_1 >= ...`` and ``k = floor(far * M)``,
    the threshold is ``s_k``: a pair is accepted when its score is strictly above it, so at most
    ``k`` impostor pairs (exactly ``k`` without ties) are accepted.

    Args:
        impostor: (M,) impostor pair scores, M >= 1, no NaN.
        far: target false-accept rate in (0, 1).

    Returns:
        the threshold (a cosine similarity).
    """
    scores = np.asarray(impostor, dtype=np.float64).ravel()
    if scores.size == 0 or np.isnan(scores).any():
        raise ValueError("impostor scores must be a non-empty array without NaN")
    if not 0.0 < far < 1.0:
        raise ValueError(f"far must be in (0, 1), got {far}")
    k = math.floor(far * scores.size + 1e-9)
    # the (k + 1)-th largest score: partition puts it at index size - 1 - k of the ascending order
    index = scores.size - 1 - k
    return float(np.partition(scores, index)[index])


def genuine_scores(queries: torch.Tensor, enrolled: torch.Tensor) -> np.ndarray:
    """Cosine similarity of every ordered pair (query ``i``, enrolled ``j``), ``j != i``.

    Args:
        queries: (P, D) L2-normalised features of the person's photos as presented; NaN row = no
            face.
        enrolled: (P, D) L2-normalised features of the same person's photos as enrolled (row
            ``i`` is photo ``i``, never paired with query ``i``); NaN row = no face.

    Returns:
        (P * (P - 1),) float64 scores in row-major order of ``(i, j)``; NaN where either photo
        has no face.
    """
    _check_pair(queries, enrolled)
    sims = (queries.double() @ enrolled.double().T).numpy()
    off_diagonal = ~np.eye(len(queries), dtype=bool)
    return sims[off_diagonal]


def rejection_rate(scores: np.ndarray, threshold: float) -> float:
    """Share of pairs rejected: score at or below ``threshold``, or NaN (no face).

    Args:
        scores: genuine pair scores, any shape, at least one.
        threshold: from :func:`far_threshold`.

    Returns:
        rate in [0, 1].
    """
    values = np.asarray(scores, dtype=np.float64)
    if values.size == 0:
        raise ValueError("no scores to rate")
    return float((~(values > threshold)).mean())
