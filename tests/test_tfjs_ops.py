"""TF ops in torch (attackers.convert.tfjs_ops): TF's padding rules."""

from __future__ import annotations

from attackers.convert.tfjs_ops import same_pad


def test_same_padding():
    """TF SAME padding: the odd pixel goes after (stride 2 on even sizes pads bottom/right)."""
    assert same_pad(224, 3, 2, 1) == (0, 1)
    assert same_pad(225, 3, 2, 1) == (1, 1)
    assert same_pad(112, 3, 1, 1) == (1, 1)
    assert same_pad(7, 1, 1, 1) == (0, 0)
    assert same_pad(10, 3, 1, 2) == (2, 2)
