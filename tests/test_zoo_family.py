"""Model families in the zoo benchmark (evaluation.zoo.similarity_correlations)."""

from __future__ import annotations

import torch

from evaluation.zoo import similarity_correlations


def test_rotation_is_the_same_model():
    """Features up to a rotation (and another width) correlate at r = 1; others do not."""
    gen = torch.Generator().manual_seed(0)
    a = torch.nn.functional.normalize(torch.randn(30, 8, generator=gen), dim=1)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8, generator=gen))
    padded = torch.cat([a @ rotation, torch.zeros(30, 4)], dim=1)          # (30, 12), unit rows
    other = torch.nn.functional.normalize(torch.randn(30, 8, generator=gen), dim=1)
    r = similarity_correlations({"a": a, "rotated": padded, "other": other})
    assert abs(r["a"]["rotated"] - 1) < 1e-9 and abs(r["other"]["other"] - 1) < 1e-12
    assert abs(r["a"]["other"]) < 0.3                                      # 435 pairs
    assert r["a"]["other"] == r["other"]["a"]
