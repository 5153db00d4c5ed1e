"""Greedy non-maximum suppression (attackers.detectors.nms)."""

from __future__ import annotations

import pytest
import torch

from attackers.detectors.nms import nms, nms_sequential


def test_exception():
    with pytest.raises(ValueError, match="mode"):
        nms(torch.zeros(1, 4), torch.zeros(1), torch.zeros(1, dtype=torch.long), 0.5, "max")


@pytest.mark.parametrize("mode", ["union", "min"])
def test_nms_dense_equals_sequential(mode):
    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(600, 2, generator=gen) * 200
    boxes = torch.cat([xy, xy + 10 + torch.rand(600, 2, generator=gen) * 40], 1)
    scores = torch.rand(600, generator=gen)
    groups = torch.randint(0, 3, (600,), generator=gen)
    keep = nms(boxes, scores, groups, 0.5, mode)
    assert 0 < len(keep) < 600
    assert (scores[keep].diff() <= 0).all()
    shift = boxes + groups[:, None] * 1000.0
    order = scores.argsort(descending=True)                 # no ties among random scores
    assert torch.equal(keep, order[nms_sequential(shift[order], 0.5, mode)])
