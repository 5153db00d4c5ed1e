"""Identification and verification metrics on L2-normalised embeddings.

>>> import torch
>>> feats = torch.nn.functional.normalize(torch.tensor([[1., 0], [1, .1], [0, 1], [.1, 1]]), dim=1)
>>> leave_one_out_rank1(feats, ["a", "a", "b", "b"])
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["leave_one_out_rank1", "same_different_auc"]


def _label_ids(labels: Sequence[str]) -> torch.Tensor:
    index = {name: i for i, name in enumerate(dict.fromkeys(labels))}
    return torch.tensor([index[name] for name in labels])


def leave_one_out_rank1(features: torch.Tensor, labels: Sequence[str]) -> float:
    """Share of samples whose nearest other sample (cosine) has the same label.

    Only samples whose label occurs at least twice are scored (others have no true match).

    Args:
        features: (N, D) L2-normalised embeddings.
        labels: N identity labels.

    Returns:
        rank-1 accuracy in [0, 1].
    """
    ids = _label_ids(labels)
    sim = features @ features.T
    sim.fill_diagonal_(-float("inf"))
    nearest = sim.argmax(dim=1)
    counts = torch.bincount(ids)
    scored = counts[ids] >= 2
    return float((ids[nearest] == ids)[scored].float().mean())


def same_different_auc(features: torch.Tensor, labels: Sequence[str]) -> float:
    """Area under the ROC curve of cosine similarity for same- versus different-identity pairs.

    Computed over all unordered pairs with the rank-sum (Mann-Whitney) statistic; ties count half.

    Args:
        features: (N, D) L2-normalised embeddings.
        labels: N identity labels.

    Returns:
        AUC in [0, 1]; 0.5 is chance.
    """
    ids = _label_ids(labels)
    iu = torch.triu_indices(len(ids), len(ids), offset=1)
    scores = (features @ features.T)[iu[0], iu[1]].double()
    same = ids[iu[0]] == ids[iu[1]]
    ranks = _average_ranks(scores)
    n_pos = int(same.sum())
    n_neg = len(scores) - n_pos
    return float((ranks[same].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _average_ranks(values: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties given their average rank."""
    order = values.argsort()
    sorted_vals = values[order]
    ranks = torch.empty_like(values)
    ranks[order] = torch.arange(1, len(values) + 1, dtype=values.dtype)
    # average tied groups
    uniq, inverse, counts = torch.unique_consecutive(sorted_vals, return_inverse=True,
                                                     return_counts=True)
    if len(uniq) < len(values):
        sums = torch.zeros(len(uniq), dtype=values.dtype).index_add_(0, inverse, ranks[order])
        ranks[order] = (sums / counts)[inverse]
    return ranks
