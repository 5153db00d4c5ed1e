"""TF ops in torch (attackers.convert.tfjs_ops): TF's padding rules and the ops' TF semantics
against numpy / torch, from NHWC and NCHW storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attackers.convert.tfjs_format import Node, TFJSFormatError
from attackers.convert.tfjs_ops import Value, run_op, same_pad


def test_same_padding():
    """TF SAME padding: the odd pixel goes after (stride 2 on even sizes pads bottom/right)."""
    assert same_pad(224, 3, 2, 1) == (0, 1)
    assert same_pad(225, 3, 2, 1) == (1, 1)
    assert same_pad(112, 3, 1, 1) == (1, 1)
    assert same_pad(7, 1, 1, 1) == (0, 0)
    assert same_pad(10, 3, 1, 2) == (2, 2)


def _node(op: str, **attrs) -> Node:
    return Node("n", op, (), attrs)


def _image() -> torch.Tensor:
    """A (2, 3, 4, 5) NHWC tensor of distinct values."""
    return torch.arange(120, dtype=torch.float32).reshape(2, 3, 4, 5)


def _both_layouts(op: Node, *consts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``op`` on the image stored NHWC and stored NCHW, both read back in TF's logical layout."""
    x = _image()
    args = [Value(c) for c in consts]
    plain = run_op(op, [Value(x), *args]).logical()
    nchw = run_op(op, [Value(x.permute(0, 3, 1, 2), nchw=True), *args]).logical()
    return plain, nchw


def test_pad():
    """TF Pad: zeros before/after each NHWC axis, the same whether the image is stored NCHW."""
    pads = torch.tensor([[0, 0], [1, 2], [0, 1], [0, 0]], dtype=torch.int32)
    plain, nchw = _both_layouts(_node("Pad"), pads)
    want = torch.from_numpy(np.pad(_image().numpy(), pads.numpy()))
    assert plain.shape == nchw.shape == (2, 6, 5, 5)
    assert torch.equal(plain, want) and torch.equal(nchw, want)


def test_reshape_follows_tf_order():
    """TF Reshape flattens in row-major NHWC order, also for an image stored NCHW."""
    shape = torch.tensor([-1, 60], dtype=torch.int32)
    plain, nchw = _both_layouts(_node("Reshape"), shape)
    assert torch.equal(plain, _image().reshape(2, 60)) and torch.equal(nchw, plain)


def test_squeeze():
    """TF Squeeze drops the named size-1 axes, or all of them when none are named."""
    x = torch.arange(6, dtype=torch.float32).reshape(2, 1, 1, 3)
    named = run_op(_node("Squeeze", squeeze_dims=(1, 2)), [Value(x.permute(0, 3, 1, 2), True)])
    assert torch.equal(named.logical(), x.reshape(2, 3))
    last = run_op(_node("Squeeze", squeeze_dims=(-2,)), [Value(x)]).logical()
    assert last.shape == (2, 1, 3)
    assert run_op(_node("Squeeze"), [Value(x)]).logical().shape == (2, 3)


def test_sum():
    """TF Sum over NHWC axes, with and without keep_dims, from either storage."""
    axes = torch.tensor([1, -1], dtype=torch.int32)
    plain, nchw = _both_layouts(_node("Sum", keep_dims=False), axes)
    assert torch.equal(plain, _image().sum(dim=(1, 3))) and torch.equal(nchw, plain)
    plain, nchw = _both_layouts(_node("Sum", keep_dims=True), axes)
    assert plain.shape == (2, 1, 4, 1) and torch.equal(nchw, plain)


def test_elementwise():
    """Sub, Abs, Square and Rsqrt, and the PReLU pattern x + a (x - |x|) / 2 built from them."""
    x = torch.tensor([[-2.0, -0.5, 0.0, 4.0]])
    a = torch.tensor([0.25])
    diff = run_op(_node("Sub"), [Value(x), run_op(_node("Abs"), [Value(x)])]).tensor
    prelu = torch.relu(x) + a * diff / 2
    assert torch.equal(prelu, torch.nn.functional.prelu(x, a))
    assert torch.equal(run_op(_node("Square"), [Value(x)]).tensor, x * x)
    assert torch.allclose(run_op(_node("Rsqrt"), [Value(torch.tensor([4.0, 0.25]))]).tensor,
                          torch.tensor([0.5, 2.0]))


def test_exception():
    """A Pad whose paddings do not match the rank names the node."""
    with pytest.raises(TFJSFormatError, match="Pad 'n': 2 paddings for a rank-4 tensor"):
        run_op(_node("Pad"), [Value(_image()), Value(torch.zeros(2, 2, dtype=torch.int32))])
