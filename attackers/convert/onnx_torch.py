"""Run a small ONNX graph as a differentiable torch module.

A strict executor for the plain convolutional graphs of the zoo's ONNX models (SFace,
MobileFaceNet, the dlib age and gender nets); it is no general converter. At build time the
graph is parsed with ``onnx``, every initializer becomes a buffer, and every node whose inputs
are all constant (weight ``DequantizeLinear``, weight ``Reshape``, ``Constant``) is evaluated
once, so block-quantised int8 weights are held as float32 and the forward pass only runs the
nodes that depend on the graph input. Those nodes run in the graph's (topological) order through
a table of torch implementations; an op outside the table raises
:class:`UnsupportedOnnxOpError` naming the op, the node and the model.

The batch dimension is dynamic even where the ONNX file fixes it (MobileFaceNet's batch is 1):
a ``Reshape`` of a tensor that carries the batch keeps dimension 0 as the batch, and a shape that
would mix the batch into other dimensions is refused rather than silently wrong.

>>> # net = OnnxGraph.from_file("fr_feature.onnx", "mobilefacenet")
>>> # net(torch.zeros(4, 3, 112, 112)).shape  -> torch.Size([4, 512])
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

__all__ = ["OnnxGraph", "OnnxConversionError", "UnsupportedOnnxOpError", "SUPPORTED_OPS"]


class OnnxConversionError(ValueError):
    """The ONNX graph cannot be run faithfully by :class:`OnnxGraph`."""


class UnsupportedOnnxOpError(OnnxConversionError):
    """The graph uses an op (or an op setting) that :class:`OnnxGraph` does not implement."""


@dataclass
class _Node:
    """One ONNX node, ready to run: attributes decoded, batch flag known."""

    op_type: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    model: str
    batched: bool = False  # depends on the graph input, so dimension 0 is the batch
    batch: int = -1  # the batch size the ONNX file declares (-1: dynamic)

    def where(self) -> str:
        node = self.name or self.outputs[0]
        return f"ONNX node {node!r} ({self.op_type}) of model {self.model!r}"

    def refuse(self, reason: str) -> UnsupportedOnnxOpError:
        return UnsupportedOnnxOpError(f"{self.where()}: {reason}")


_OpFn = Callable[[_Node, list[torch.Tensor | None]], torch.Tensor]


# --- op implementations ----------------------------------------------------------------------
def _conv(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, w, b = (args + [None])[:3]
    assert x is not None and w is not None
    if node.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise node.refuse("auto_pad other than NOTSET")
    spatial = w.dim() - 2
    if spatial != 2:
        raise node.refuse(f"{spatial}-d convolution (only 2-d)")
    pads = list(node.attrs.get("pads", [0] * (2 * spatial)))
    strides = node.attrs.get("strides", [1] * spatial)
    dilations = node.attrs.get("dilations", [1] * spatial)
    group = node.attrs.get("group", 1)
    if pads[:spatial] == pads[spatial:]:
        return F.conv2d(x, w, b, strides, pads[:spatial], dilations, group)
    # ONNX pads are (top, left, bottom, right); F.pad wants (left, right, top, bottom)
    x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    return F.conv2d(x, w, b, strides, 0, dilations, group)


def _batch_norm(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, scale, bias, mean, var = args[:5]
    if node.attrs.get("training_mode", 0):
        raise node.refuse("training_mode=1")
    return F.batch_norm(x, mean, var, scale, bias, training=False,
                        eps=node.attrs.get("epsilon", 1e-5))


def _prelu(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, slope = args[:2]
    assert x is not None and slope is not None
    if x.dim() >= 2 and slope.numel() == x.shape[1] and (
            slope.dim() == 1 and x.dim() == 2 or slope.dim() == x.dim() - 1):
        return F.prelu(x, slope.reshape(-1))  # per-channel slope: the fused kernel
    return torch.where(x >= 0, x, x * slope)


def _gemm(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    a, b, c = (args + [None])[:3]
    assert a is not None and b is not None
    if node.attrs.get("transA", 0):
        a = a.t()
    if node.attrs.get("transB", 0):
        b = b.t()
    y = node.attrs.get("alpha", 1.0) * (a @ b)
    if c is not None:
        y = y + node.attrs.get("beta", 1.0) * c
    return y


def _reshape(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, shape_t = args[:2]
    assert x is not None and shape_t is not None
    if node.attrs.get("allowzero", 0):
        raise node.refuse("allowzero=1")
    shape = [int(s) for s in shape_t.tolist()]
    if node.batched:
        if shape[0] not in (-1, 0) and not (node.batch > 0 and shape[0] == node.batch):
            raise node.refuse(f"target shape {shape} would not keep dimension 0 as the batch")
        if shape[0] != -1 or -1 in shape[1:]:
            shape[0] = x.shape[0]
    shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


def _flatten(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x = args[0]
    assert x is not None
    axis = node.attrs.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    if node.batched and axis == 0:
        raise node.refuse("Flatten with axis=0 would merge the batch dimension")
    lead = 1
    for d in x.shape[:axis]:
        lead *= d
    return x.reshape(lead, -1)


def _dropout(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    if len(args) > 2 and args[2] is not None and bool(args[2]):
        raise node.refuse("training_mode=True")
    x = args[0]
    assert x is not None
    return x


def _dequantize_linear(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, scale, zero = (args + [None])[:3]
    assert x is not None and scale is not None
    axis = node.attrs.get("axis", 1)
    axis = axis + x.dim() if axis < 0 else axis
    block = node.attrs.get("block_size", 0)
    if node.attrs.get("output_dtype", 0) not in (0, onnx.TensorProto.FLOAT):
        raise node.refuse("output_dtype other than float32")
    values = x.to(torch.float32)
    if zero is not None:
        zero = zero.to(torch.float32)
    if scale.dim() == 0:  # per tensor
        return (values - (zero if zero is not None else 0.0)) * scale

    def spread(t: torch.Tensor) -> torch.Tensor:
        """Broadcast a per-axis or per-block parameter to the shape of ``x``."""
        if block:
            t = t.repeat_interleave(block, dim=axis).narrow(axis, 0, x.shape[axis])
            if t.shape != x.shape:
                raise node.refuse(f"block scales {tuple(t.shape)} do not tile {tuple(x.shape)}")
            return t
        if t.dim() != 1 or t.shape[0] != x.shape[axis]:
            raise node.refuse(f"per-axis scales of shape {tuple(t.shape)} for axis {axis}")
        view = [1] * x.dim()
        view[axis] = -1
        return t.reshape(view)

    if zero is not None:
        values = values - spread(zero)
    return values * spread(scale.to(torch.float32))


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> _OpFn:
    def op(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
        a, b = args[:2]
        assert a is not None and b is not None
        return fn(a, b)
    return op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> _OpFn:
    def op(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
        x = args[0]
        assert x is not None
        return fn(x)
    return op


def _global_average_pool(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x = args[0]
    assert x is not None
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


def _pool_settings(node: _Node) -> tuple[list[int], list[int], list[int]]:
    """Kernel, strides and (symmetric) padding of a 2-d ONNX pooling node."""
    if node.attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise node.refuse("auto_pad other than NOTSET")
    kernel = list(node.attrs["kernel_shape"])
    if len(kernel) != 2:
        raise node.refuse(f"{len(kernel)}-d pooling (only 2-d)")
    if any(d != 1 for d in node.attrs.get("dilations", [1, 1])):
        raise node.refuse("dilations other than 1")
    pads = list(node.attrs.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise node.refuse(f"asymmetric pads {pads}")
    return kernel, list(node.attrs.get("strides", [1, 1])), pads[:2]


def _average_pool(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x = args[0]
    assert x is not None
    kernel, strides, pads = _pool_settings(node)
    return F.avg_pool2d(x, kernel, strides, pads, ceil_mode=bool(node.attrs.get("ceil_mode", 0)),
                        count_include_pad=bool(node.attrs.get("count_include_pad", 0)))


def _max_pool(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x = args[0]
    assert x is not None
    if node.attrs.get("storage_order", 0):
        raise node.refuse("storage_order=1")
    kernel, strides, pads = _pool_settings(node)
    return F.max_pool2d(x, kernel, strides, pads, ceil_mode=bool(node.attrs.get("ceil_mode", 0)))


def _pad(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x, pads_t, value, axes = (args + [None, None, None])[:4]
    assert x is not None and pads_t is not None
    mode = node.attrs.get("mode", b"constant")
    if mode not in (b"constant", "constant"):
        raise node.refuse(f"mode {mode!r} (only constant)")
    if axes is not None:
        raise node.refuse("the axes input")
    pads = [int(p) for p in pads_t.tolist()]
    rank = x.dim()
    if node.batched and (pads[0] or pads[rank]):
        raise node.refuse("padding the batch dimension")
    # ONNX: all begins, then all ends, first axis first; F.pad: (begin, end) pairs, last axis first
    flat = [p for axis in reversed(range(rank)) for p in (pads[axis], pads[rank + axis])]
    return F.pad(x, flat, value=0.0 if value is None else float(value))


def _softmax(node: _Node, args: list[torch.Tensor | None]) -> torch.Tensor:
    x = args[0]
    assert x is not None
    axis = node.attrs.get("axis", -1)
    axis = axis + x.dim() if axis < 0 else axis
    if axis != x.dim() - 1:  # before opset 13 a non-last axis flattens the trailing axes
        raise node.refuse(f"softmax over axis {axis} of a rank-{x.dim()} tensor (only the last)")
    return torch.softmax(x, dim=axis)


_OPS: dict[str, _OpFn] = {
    "Add": _binary(torch.add),
    "AveragePool": _average_pool,
    "BatchNormalization": _batch_norm,
    "Conv": _conv,
    "DequantizeLinear": _dequantize_linear,
    "Div": _binary(torch.div),
    "Dropout": _dropout,
    "Flatten": _flatten,
    "Gemm": _gemm,
    "GlobalAveragePool": _global_average_pool,
    "Identity": _unary(lambda x: x),
    "MatMul": _binary(torch.matmul),
    "MaxPool": _max_pool,
    "Mul": _binary(torch.mul),
    "Pad": _pad,
    "PRelu": _prelu,
    "Relu": _unary(torch.relu),
    "Reshape": _reshape,
    "Sigmoid": _unary(torch.sigmoid),
    "Softmax": _softmax,
    "Sub": _binary(torch.sub),
}

#: ONNX op types (default domain) that :class:`OnnxGraph` can run.
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(_OPS)) + ("Constant",)


# --- the module --------------------------------------------------------------------------------
def _attrs(node: onnx.NodeProto) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for a in node.attribute:
        value = onnx.helper.get_attribute_value(a)
        if isinstance(value, onnx.TensorProto):
            value = numpy_helper.to_array(value)
        out[a.name] = value
    return out


def _tensor(array: Any) -> torch.Tensor:
    return torch.from_numpy(array.copy())


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in value.type.tensor_type.shape.dim]


class OnnxGraph(nn.Module):
    """An ONNX graph with one input, executed node by node in torch.

    Constants (initializers and everything computed from them alone) are buffers named after
    their ONNX tensors (characters outside ``[A-Za-z0-9_]`` become ``_``), so ``state_dict``
    round-trips. The forward pass is differentiable with respect to the input.

    Args:
        model: the parsed ONNX model.
        name: the model's name, used in error messages.

    Raises:
        UnsupportedOnnxOpError: an op or op setting is not implemented (message names the op,
            the node and the model).
        OnnxConversionError: the graph has no single data input, or uses a non-default domain.
    """

    def __init__(self, model: onnx.ModelProto, name: str) -> None:
        super().__init__()
        self.model_name = name
        graph = model.graph
        for opset in model.opset_import:
            if opset.domain not in ("", "ai.onnx"):
                raise OnnxConversionError(f"model {name!r} uses ONNX domain {opset.domain!r}")
        constants: dict[str, torch.Tensor] = {
            t.name: _tensor(numpy_helper.to_array(t)) for t in graph.initializer}
        used = {i for n in graph.node for i in n.input}
        data_inputs = [v for v in graph.input if v.name not in constants and v.name in used]
        if len(data_inputs) != 1:
            raise OnnxConversionError(
                f"model {name!r} has {len(data_inputs)} data inputs "
                f"({', '.join(v.name for v in data_inputs)}); exactly one is supported")
        self.input_name = data_inputs[0].name
        in_dims = _dims(data_inputs[0])
        self.input_dims = in_dims
        batch = in_dims[0] if in_dims and isinstance(in_dims[0], int) else -1
        self.output_names = [v.name for v in graph.output]

        computed = {self.input_name}
        nodes: list[_Node] = []
        with torch.no_grad():
            for proto in graph.node:
                node = _Node(proto.op_type, proto.name, list(proto.input), list(proto.output),
                             _attrs(proto), name)
                if proto.domain not in ("", "ai.onnx"):
                    raise node.refuse(f"domain {proto.domain!r}")
                if node.op_type == "Constant":
                    if set(node.attrs) != {"value"}:
                        raise node.refuse(f"Constant attributes {sorted(node.attrs)}")
                    constants[node.outputs[0]] = _tensor(node.attrs["value"])
                    continue
                if node.op_type not in _OPS:
                    raise node.refuse(
                        f"op not supported; supported ops: {', '.join(SUPPORTED_OPS)}")
                if any(node.outputs[1:]):  # Dropout's optional mask output is the only extra
                    raise node.refuse(f"{len(node.outputs)} outputs (only 1 is supported)")
                if all(i == "" or i in constants for i in node.inputs):
                    args = [constants[i] if i else None for i in node.inputs]
                    constants[node.outputs[0]] = _OPS[node.op_type](node, args)
                    continue
                for i in node.inputs:
                    if i and i not in constants and i not in computed:
                        raise node.refuse(f"input {i!r} is produced by no earlier node")
                node.batched, node.batch = True, batch
                computed.add(node.outputs[0])
                nodes.append(node)
        self._nodes = nodes

        needed = {i for n in nodes for i in n.inputs} | set(self.output_names)
        self._buffer_of: dict[str, str] = {}
        for onnx_name, value in constants.items():
            if onnx_name not in needed:
                continue
            attr = "c_" + re.sub(r"\W", "_", onnx_name)
            if attr in self._buffers:
                raise OnnxConversionError(
                    f"model {name!r}: tensor names collide after sanitising: {onnx_name!r}")
            self.register_buffer(attr, value.contiguous())
            self._buffer_of[onnx_name] = attr

    @classmethod
    def from_file(cls, path: str | Path, name: str) -> OnnxGraph:
        """Parse ``path`` and build the module (``name`` is used in error messages).

        Raises:
            OnnxConversionError: the file is not a readable ONNX model (message names it).
        """
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError / OSError variants
            raise OnnxConversionError(f"{path}: not a readable ONNX model ({exc})") from None
        return cls(model, name)

    @property
    def ops(self) -> list[str]:
        """The op types the forward pass runs, in order."""
        return [n.op_type for n in self._nodes]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        """Run the graph.

        Args:
            x: the graph input; any batch size, other dimensions as the ONNX input declares.

        Returns:
            the graph output, or a tuple of them when the graph has several.
        """
        expected = self.input_dims[1:]
        got = list(x.shape[1:])
        if x.dim() != len(self.input_dims) or any(
                isinstance(e, int) and e > 0 and e != g
                for e, g in zip(expected, got, strict=True)):
            raise ValueError(f"model {self.model_name!r} expects input (N, "
                             f"{', '.join(map(str, expected))}), got {tuple(x.shape)}")
        values: dict[str, torch.Tensor] = {self.input_name: x}

        def get(name: str) -> torch.Tensor | None:
            if not name:
                return None
            if name in values:
                return values[name]
            return getattr(self, self._buffer_of[name])

        for node in self._nodes:
            values[node.outputs[0]] = _OPS[node.op_type](node, [get(i) for i in node.inputs])
        outs = tuple(get(o) for o in self.output_names)
        return outs[0] if len(outs) == 1 else outs  # type: ignore[return-value]

