"""TF ops in torch: the kernels that execute a TF.js graph (:mod:`attackers.convert.tfjs_graph`).

4-D activations are NHWC in TF; here they run as NCHW tensors in channels-last memory (fast
convolutions) and every op knows where the channel axis went (:class:`Value`), so broadcast
constants and reduction axes keep TF's meaning. TF ``SAME`` padding is reproduced exactly,
including its asymmetric case (the extra row and column go to the bottom and right). All ops are
differentiable in their float inputs. An op outside the table is rejected by :func:`check_node`
with :class:`~attackers.convert.tfjs_format.UnsupportedOpError` naming it.

>>> same_pad(224, 3, 2, 1)
(0, 1)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attackers.convert.tfjs_format import Node, TFJSFormatError, UnsupportedOpError

__all__ = ["CONV_OPS", "Value", "check_node", "run_op", "same_pad", "torch_kernel"]

# physical NCHW dim p holds logical NHWC axis _NCHW[p]
_NCHW = (0, 3, 1, 2)


@dataclass
class Value:
    """A tensor flowing through the graph; 4-D NHWC values may be stored as NCHW.

    Attributes:
        tensor: the data, in TF's logical layout unless ``nchw``.
        nchw: ``tensor`` is a 4-D NHWC value stored as NCHW (channels-last memory).
    """

    tensor: torch.Tensor
    nchw: bool = False

    def logical(self) -> torch.Tensor:
        """The tensor in TF's logical layout (NHWC for images)."""
        return self.tensor.permute(0, 2, 3, 1) if self.nchw else self.tensor

    def channels_first(self) -> torch.Tensor:
        """A 4-D value as an NCHW tensor."""
        if self.tensor.dim() != 4:
            raise TFJSFormatError(f"expected a 4-D image, got shape {tuple(self.tensor.shape)}")
        return self.tensor if self.nchw else self.tensor.permute(0, 3, 1, 2)


def _hw_pair(node: Node, key: str) -> tuple[int, int]:
    """The (h, w) of an NHWC ``[1, h, w, 1]`` attribute (checked by :func:`check_node`)."""
    vals = node.attrs.get(key, (1, 1, 1, 1))
    return vals[1], vals[2]


def same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) of one spatial axis: the extra pixel goes after.

    Args:
        size: input length in pixels.
        kernel: kernel length.
        stride: stride.
        dilation: dilation.

    Returns:
        pixels of padding before and after, so that the output length is ``ceil(size / stride)``.
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _padding(node: Node, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """``node``'s padding (VALID or SAME) of NCHW ``x`` as (left, right, top, bottom)."""
    if node.attrs.get("padding") == "VALID":
        return 0, 0, 0, 0
    top, bottom = same_pad(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = same_pad(x.shape[3], kernel[1], stride[1], dilation[1])
    return left, right, top, bottom


def _conv(node: Node, x: Value, kernel: torch.Tensor, bias: torch.Tensor | None) -> Value:
    """A (depthwise, fused) conv; ``kernel`` already in torch layout (O, I/groups, kh, kw)."""
    stride, dilation = _hw_pair(node, "strides"), _hw_pair(node, "dilations")
    xc = x.channels_first()
    groups = xc.shape[1] if node.op in _DEPTHWISE else 1
    left, right, top, bottom = _padding(node, xc, kernel.shape[2:], stride, dilation)
    if left == right and top == bottom:  # symmetric: let the convolution pad
        pad = (top, left)
    else:
        xc, pad = F.pad(xc, (left, right, top, bottom)), (0, 0)
    return Value(F.conv2d(xc, kernel, bias, stride, pad, dilation, groups), nchw=True)


def _max_pool(node: Node, x: Value) -> Value:
    size, stride = _hw_pair(node, "ksize"), _hw_pair(node, "strides")
    xc = x.channels_first()
    xc = F.pad(xc, _padding(node, xc, size, stride, (1, 1)), value=float("-inf"))
    return Value(F.max_pool2d(xc, size, stride), nchw=True)


def _broadcast_pair(a: Value, b: Value) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both operands of an elementwise op in one physical layout (NCHW when either is)."""
    if a.nchw == b.nchw:
        return a.tensor, b.tensor, a.nchw

    def to_nchw(v: Value) -> torch.Tensor:
        if v.nchw:
            return v.tensor
        t = v.tensor
        if t.dim() > 4:
            raise UnsupportedOpError(f"cannot broadcast a {t.dim()}-D tensor against an image")
        return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape)).permute(_NCHW)

    return to_nchw(a), to_nchw(b), True


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., Value]:
    def op(node: Node, a: Value, b: Value) -> Value:
        ta, tb, nchw = _broadcast_pair(a, b)
        return Value(fn(ta, tb), nchw)
    return op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., Value]:
    def op(node: Node, x: Value) -> Value:
        return Value(fn(x.tensor), x.nchw)
    return op


def _softmax(node: Node, x: Value) -> Value:
    return Value(torch.softmax(x.tensor, dim=1 if x.nchw else -1), x.nchw)


def _reduce(fn: Callable[..., torch.Tensor]) -> Callable[..., Value]:
    def op(node: Node, x: Value, axes: Value) -> Value:
        rank = x.tensor.dim()
        logical = sorted({int(a) % rank for a in axes.tensor.reshape(-1).tolist()})
        keep = bool(node.attrs.get("keep_dims", False))
        if not x.nchw:
            return Value(fn(x.tensor, dim=logical, keepdim=keep))
        phys = [_NCHW.index(a) for a in logical]
        out = fn(x.tensor, dim=phys, keepdim=keep)
        if keep:
            return Value(out, nchw=True)
        remaining = [a for p, a in enumerate(_NCHW) if p not in phys]  # logical axis per dim
        return Value(out.permute(sorted(range(len(remaining)), key=remaining.__getitem__)))
    return op


def _amax(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.amax(x, dim=dim, keepdim=keepdim)


def _mean(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.mean(x, dim=dim, keepdim=keepdim)


def _sum(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.sum(x, dim=dim, keepdim=keepdim)


def _pad(node: Node, x: Value, paddings: Value) -> Value:
    """TF ``Pad``: zeros before and after each axis; ``paddings`` is (rank, 2) in TF's layout."""
    pairs = paddings.tensor.reshape(-1, 2).tolist()
    rank = x.tensor.dim()
    if len(pairs) != rank:
        raise TFJSFormatError(f"Pad {node.name!r}: {len(pairs)} paddings for a rank-{rank} tensor")
    logical_of = _NCHW if x.nchw else tuple(range(rank))
    flat: list[int] = []
    for phys in reversed(range(rank)):  # F.pad lists the last dimension first
        flat.extend(int(v) for v in pairs[logical_of[phys]])
    return Value(F.pad(x.tensor, flat), x.nchw)


def _reshape(node: Node, x: Value, shape: Value) -> Value:
    """TF ``Reshape``, in TF's logical (row-major NHWC) element order."""
    return Value(x.logical().reshape([int(v) for v in shape.tensor.reshape(-1).tolist()]))


def _squeeze(node: Node, x: Value) -> Value:
    """TF ``Squeeze``: drop the size-1 axes ``squeeze_dims`` (all size-1 axes when empty)."""
    t = x.logical()
    dims = [int(d) % t.dim() for d in node.attrs.get("squeeze_dims", ())]
    dims = dims or [d for d, n in enumerate(t.shape) if n == 1]
    return Value(t.squeeze(dims) if dims else t)


def _matmul(node: Node, a: Value, b: Value, bias: Value | None = None) -> Value:
    ta, tb = a.logical(), b.logical()
    if node.attrs.get("transpose_a"):
        ta = ta.transpose(-1, -2)
    if node.attrs.get("transpose_b"):
        tb = tb.transpose(-1, -2)
    out = ta @ tb
    return Value(out if bias is None else out + bias.logical())


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Identity": lambda t: t,
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
    "Abs": torch.abs,
    "Square": torch.square,
    "Rsqrt": torch.rsqrt,
}
_FUSED_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu,
    "Relu6": F.relu6,
}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "Sub": torch.sub,
    "Mul": torch.mul,
    "Minimum": torch.minimum,
    "Maximum": torch.maximum,
}
#: TF convolution ops; their kernel is a constant input, stored in torch layout.
CONV_OPS = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_DEPTHWISE = {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_FUSED = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul"}

_OPS: dict[str, Callable[..., Value]] = {
    **{name: _unary(fn) for name, fn in _UNARY.items()},
    **{name: _binary(fn) for name, fn in _BINARY.items()},
    "Softmax": _softmax,
    "Mean": _reduce(_mean),
    "Max": _reduce(_amax),
    "Sum": _reduce(_sum),
    "Pad": _pad,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "MaxPool": _max_pool,
    "MatMul": _matmul,
}


def _fused_activation(node: Node) -> str | None:
    """Check a fused op's ``fused_ops`` (BiasAdd then at most one activation); the activation."""
    fused = node.attrs.get("fused_ops", ())
    supported = (node.attrs.get("num_args") == 1 and 1 <= len(fused) <= 2 and fused[0] == "BiasAdd"
                 and (len(fused) == 1 or fused[1] in _FUSED_ACTIVATIONS))
    if not supported:
        acts = " or ".join(_FUSED_ACTIVATIONS)
        raise UnsupportedOpError(f"{node.op} {node.name!r}: fused_ops={list(fused)} "
                                 f"(only BiasAdd, optionally followed by {acts})")
    return fused[1] if len(fused) == 2 else None


def check_node(node: Node, source: str) -> None:
    """Reject ops, layouts and variants the executor does not implement, at load time."""
    if node.op in ("Placeholder", "Const"):
        return
    if node.op not in _OPS and node.op not in CONV_OPS and node.op != "_FusedMatMul":
        raise UnsupportedOpError(f"{source}: unsupported TF op {node.op!r} (node {node.name!r})")
    layout = node.attrs.get("data_format", "NHWC")
    if layout != "NHWC":
        raise UnsupportedOpError(f"{source}: {node.op} {node.name!r} uses data_format {layout!r}")
    if node.op in CONV_OPS or node.op == "MaxPool":
        padding = node.attrs.get("padding")
        if padding not in ("SAME", "VALID") or node.attrs.get("explicit_paddings"):
            raise UnsupportedOpError(
                f"{source}: {node.op} {node.name!r} uses padding {padding!r} (only SAME, VALID)")
        for key in ("strides", "dilations", "ksize"):
            vals = node.attrs.get(key, (1, 1, 1, 1))
            if len(vals) != 4 or vals[0] != 1 or vals[3] != 1:
                raise UnsupportedOpError(
                    f"{source}: {node.op} {node.name!r} has {key}={list(vals)} (only [1, h, w, 1])")
    if node.op in _FUSED:
        _fused_activation(node)


def torch_kernel(node: Node, kernel: torch.Tensor | None, source: str) -> torch.Tensor:
    """The TF kernel of convolution ``node`` (one of :data:`CONV_OPS`) in torch layout.

    Args:
        node: the convolution.
        kernel: its constant kernel in TF layout, ``(kh, kw, I, O)`` or, depthwise,
            ``(kh, kw, C, M)``; None when the kernel is not a constant.
        source: file name used in error messages.

    Returns:
        contiguous ``(O, I, kh, kw)``, or ``(C * M, 1, kh, kw)`` for a depthwise convolution.

    Raises:
        TFJSFormatError: the kernel is not a constant 4-D tensor.
    """
    if kernel is None or kernel.dim() != 4:
        raise TFJSFormatError(f"{source}: {node.op} {node.name!r} needs a constant 4-D kernel")
    if node.op in _DEPTHWISE:  # (kh, kw, C, M) -> (C*M, 1, kh, kw)
        kernel = kernel.permute(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2])
    else:  # (kh, kw, I, O) -> (O, I, kh, kw)
        kernel = kernel.permute(3, 2, 0, 1)
    return kernel.contiguous()


def run_op(node: Node, args: Sequence[Value], kernel: torch.Tensor | None = None) -> Value:
    """Evaluate ``node`` (checked by :func:`check_node`) on its input values.

    Args:
        node: the op; a convolution's inputs are its data and, when fused, its bias (the
            kernel is not among them).
        args: the values of ``node``'s inputs, in order.
        kernel: a convolution's kernel in torch layout (:func:`torch_kernel`); else None.

    Returns:
        the op's output.
    """
    if node.op in CONV_OPS:
        bias = args[1].logical() if node.op in _FUSED else None
        out = _conv(node, args[0], kernel, bias)
    elif node.op == "_FusedMatMul":
        out = _matmul(node, *args)
    else:
        return _OPS[node.op](node, *args)
    act = _fused_activation(node) if node.op in _FUSED else None
    return out if act is None else Value(_FUSED_ACTIVATIONS[act](out.tensor), out.nchw)
