"""Load a TF.js graph model (``model.json`` + weight shards) and run it in torch.

A TF.js ``graph-model`` is a frozen TensorFlow graph in JSON: ``modelTopology.node`` lists TF ops
with their inputs and attributes, and ``weightsManifest`` says how the binary shards split into
named constants (dtype, shape, optional quantisation such as float16). This module parses both
strictly and executes the graph with a small table of torch implementations of TF ops; an op
outside the table raises :class:`UnsupportedOpError` naming it, when the model is loaded.

Quantised weights are dequantised to float32 (float16 upcast exactly; uint8/uint16 through their
affine ``scale`` and ``min``). 4-D activations are NHWC in TF; here they run as NCHW tensors in
channels-last memory (fast convolutions) and every op knows where the channel axis went, so
broadcast constants and reduction axes keep TF's meaning. TF ``SAME`` padding is reproduced
exactly, including its asymmetric case (the extra row and column go to the bottom and right).
All ops are differentiable in their float inputs.

For speed, :func:`fold_conv_chains` merges what follows a convolution (per-channel ``Mul`` and
``Add`` of frozen batch norms, ``Relu``, and Keras' ``relu6`` clipping) into one fused conv, the
kind of rewrite the TF.js converter itself applies; nodes folded away can no longer be fetched
(load with ``fold=False`` to keep them).

>>> # graph = load_graph_model(Path("faceres.json"))
>>> # emb, = graph.run({"input_1": crops}, ["global_pooling/Mean"], channels_first=True)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GraphModel",
    "Node",
    "TFJSFormatError",
    "UnsupportedOpError",
    "decode_weights",
    "fold_conv_chains",
    "load_graph_model",
    "parse_nodes",
]

# physical NCHW dim p holds logical NHWC axis _NCHW[p]
_NCHW = (0, 3, 1, 2)


class TFJSFormatError(ValueError):
    """A model.json or weight shard is malformed or uses an unsupported feature."""


class UnsupportedOpError(NotImplementedError):
    """The graph uses a TF op (or op variant) this executor does not implement."""


@dataclass(frozen=True)
class Node:
    """One TF op of the graph.

    Attributes:
        name: node name (a tensor is referred to as ``name`` or ``name:0``).
        op: TF op type, e.g. ``"Conv2D"``.
        inputs: names of the input nodes, in order (control inputs ``^x`` removed).
        attrs: decoded attributes: ``str``, ``int``, ``float``, ``bool`` or tuples of them.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict[str, Any]


@dataclass
class _Value:
    """A tensor flowing through the graph; 4-D NHWC values may be stored as NCHW."""

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


# --- parsing --------------------------------------------------------------------------------------

def _decode_attr(raw: dict[str, Any]) -> Any:
    if "s" in raw:
        return base64.b64decode(raw["s"]).decode()
    if "i" in raw:
        return int(raw["i"])
    if "f" in raw:
        return float(raw["f"])
    if "b" in raw:
        return bool(raw["b"])
    if "type" in raw:
        return raw["type"]
    if "shape" in raw:  # a TensorShapeProto: dims (-1 = unknown), None = unknown rank
        if raw["shape"].get("unknownRank"):
            return None
        return tuple(int(d.get("size", -1)) for d in raw["shape"].get("dim", []))
    if "list" in raw:
        items = raw["list"]
        if "i" in items:
            return tuple(int(v) for v in items["i"])
        if "s" in items:
            return tuple(base64.b64decode(v).decode() for v in items["s"])
        if "f" in items:
            return tuple(float(v) for v in items["f"])
        return ()
    return raw  # inline tensors: kept raw, no op here reads them


def _tensor_name(ref: str, source: str) -> str:
    """Node name of a tensor reference ``name`` or ``name:0``; other outputs are unsupported."""
    name, _, index = ref.partition(":")
    if index not in ("", "0"):
        raise UnsupportedOpError(f"{source}: output {ref!r} is not the first output of its op")
    return name


def parse_nodes(topology: Mapping[str, Any], source: str) -> list[Node]:
    """Nodes of ``modelTopology`` in an order where every input precedes its consumers.

    Raises:
        TFJSFormatError: duplicate names, a missing input, or a cycle.
    """
    raw_nodes = topology.get("node")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise TFJSFormatError(f"{source}: modelTopology has no node list")
    nodes: dict[str, Node] = {}
    for raw in raw_nodes:
        inputs = tuple(_tensor_name(i, source) for i in raw.get("input", [])
                       if not i.startswith("^"))
        node = Node(raw["name"], raw["op"], inputs,
                    {k: _decode_attr(v) for k, v in raw.get("attr", {}).items()})
        if node.name in nodes:
            raise TFJSFormatError(f"{source}: duplicate node name {node.name!r}")
        nodes[node.name] = node
    order: list[Node] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done
    for root in nodes:
        stack = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            if expanded:
                state[name] = 2
                order.append(nodes[name])
                continue
            if state.get(name) == 2:
                continue
            if state.get(name) == 1:
                raise TFJSFormatError(f"{source}: the graph has a cycle through {name!r}")
            state[name] = 1
            stack.append((name, True))
            for dep in nodes[name].inputs:
                if dep not in nodes:
                    raise TFJSFormatError(f"{source}: node {name!r} reads unknown input {dep!r}")
                if state.get(dep) != 2:
                    stack.append((dep, False))
    return order


_PLAIN_DTYPES = {"float32": np.float32, "int32": np.int32}
_QUANT_DTYPES = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def decode_weights(specs: Sequence[Mapping[str, Any]], data: bytes,
                   source: str) -> dict[str, torch.Tensor]:
    """Split the concatenated weight shards into named tensors.

    Args:
        specs: the manifest's weight entries (``name``, ``shape``, ``dtype``, optional
            ``quantization`` with ``dtype`` float16, uint8 or uint16 and, for the integer ones,
            ``scale`` and ``min``), in shard order.
        data: all shards of the manifest, concatenated in manifest order.
        source: file name used in error messages.

    Returns:
        name -> tensor; floats (quantised or not) as float32, int32 as int32.

    Raises:
        TFJSFormatError: an unsupported dtype, or sizes that do not add up to ``len(data)``.
    """
    out: dict[str, torch.Tensor] = {}
    offset = 0
    for spec in specs:
        name, shape, dtype = spec["name"], [int(d) for d in spec["shape"]], spec["dtype"]
        quant = spec.get("quantization")
        stored = quant["dtype"] if quant else dtype
        np_dtype = (_QUANT_DTYPES if quant else _PLAIN_DTYPES).get(stored)
        if np_dtype is None or (quant and dtype != "float32"):
            raise TFJSFormatError(f"{source}: weight {name!r} has unsupported dtype {dtype!r}"
                                  + (f" quantised as {stored!r}" if quant else ""))
        count = int(np.prod(shape, dtype=np.int64))
        nbytes = count * np.dtype(np_dtype).itemsize
        if offset + nbytes > len(data):
            raise TFJSFormatError(f"{source}: weight shards end inside {name!r} "
                                  f"({len(data)} bytes, need {offset + nbytes})")
        arr = np.frombuffer(data, dtype=np.dtype(np_dtype).newbyteorder("<"), count=count,
                            offset=offset).reshape(shape)
        offset += nbytes
        if quant and stored != "float16":
            arr = arr.astype(np.float32) * np.float32(quant["scale"]) + np.float32(quant["min"])
        out[name] = torch.from_numpy(arr.astype(np_dtype if np_dtype is np.int32 else np.float32))
    if offset != len(data):
        raise TFJSFormatError(
            f"{source}: manifest describes {offset} bytes, shards hold {len(data)}")
    return out


# --- ops ------------------------------------------------------------------------------------------

def _hw_pair(node: Node, key: str) -> tuple[int, int]:
    """The (h, w) of an NHWC ``[1, h, w, 1]`` attribute (checked by :func:`_check_node`)."""
    vals = node.attrs.get(key, (1, 1, 1, 1))
    return vals[1], vals[2]


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TF ``SAME`` padding (before, after) of one spatial axis: the extra pixel goes after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _padding(node: Node, x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """``node``'s padding (VALID or SAME) of NCHW ``x`` as (left, right, top, bottom)."""
    if node.attrs.get("padding") == "VALID":
        return 0, 0, 0, 0
    top, bottom = _same_pad(x.shape[2], kernel[0], stride[0], dilation[0])
    left, right = _same_pad(x.shape[3], kernel[1], stride[1], dilation[1])
    return left, right, top, bottom


def _conv(node: Node, x: _Value, kernel: torch.Tensor, bias: torch.Tensor | None) -> _Value:
    """A (depthwise, fused) conv; ``kernel`` already in torch layout (O, I/groups, kh, kw)."""
    stride, dilation = _hw_pair(node, "strides"), _hw_pair(node, "dilations")
    xc = x.channels_first()
    groups = xc.shape[1] if node.op in _DEPTHWISE else 1
    left, right, top, bottom = _padding(node, xc, kernel.shape[2:], stride, dilation)
    if left == right and top == bottom:  # symmetric: let the convolution pad
        pad = (top, left)
    else:
        xc, pad = F.pad(xc, (left, right, top, bottom)), (0, 0)
    return _Value(F.conv2d(xc, kernel, bias, stride, pad, dilation, groups), nchw=True)


def _max_pool(node: Node, x: _Value) -> _Value:
    size, stride = _hw_pair(node, "ksize"), _hw_pair(node, "strides")
    xc = x.channels_first()
    xc = F.pad(xc, _padding(node, xc, size, stride, (1, 1)), value=float("-inf"))
    return _Value(F.max_pool2d(xc, size, stride), nchw=True)


def _broadcast_pair(a: _Value, b: _Value) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Both operands of an elementwise op in one physical layout (NCHW when either is)."""
    if a.nchw == b.nchw:
        return a.tensor, b.tensor, a.nchw

    def to_nchw(v: _Value) -> torch.Tensor:
        if v.nchw:
            return v.tensor
        t = v.tensor
        if t.dim() > 4:
            raise UnsupportedOpError(f"cannot broadcast a {t.dim()}-D tensor against an image")
        return t.reshape((1,) * (4 - t.dim()) + tuple(t.shape)).permute(_NCHW)

    return to_nchw(a), to_nchw(b), True


def _binary(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> Callable[..., _Value]:
    def op(node: Node, a: _Value, b: _Value) -> _Value:
        ta, tb, nchw = _broadcast_pair(a, b)
        return _Value(fn(ta, tb), nchw)
    return op


def _unary(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[..., _Value]:
    def op(node: Node, x: _Value) -> _Value:
        return _Value(fn(x.tensor), x.nchw)
    return op


def _softmax(node: Node, x: _Value) -> _Value:
    return _Value(torch.softmax(x.tensor, dim=1 if x.nchw else -1), x.nchw)


def _reduce(fn: Callable[..., torch.Tensor]) -> Callable[..., _Value]:
    def op(node: Node, x: _Value, axes: _Value) -> _Value:
        rank = x.tensor.dim()
        logical = sorted({int(a) % rank for a in axes.tensor.reshape(-1).tolist()})
        keep = bool(node.attrs.get("keep_dims", False))
        if not x.nchw:
            return _Value(fn(x.tensor, dim=logical, keepdim=keep))
        phys = [_NCHW.index(a) for a in logical]
        out = fn(x.tensor, dim=phys, keepdim=keep)
        if keep:
            return _Value(out, nchw=True)
        remaining = [a for p, a in enumerate(_NCHW) if p not in phys]  # logical axis per dim
        return _Value(out.permute(sorted(range(len(remaining)), key=remaining.__getitem__)))
    return op


def _amax(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.amax(x, dim=dim, keepdim=keepdim)


def _mean(x: torch.Tensor, dim: list[int], keepdim: bool) -> torch.Tensor:
    return torch.mean(x, dim=dim, keepdim=keepdim)


def _matmul(node: Node, a: _Value, b: _Value, bias: _Value | None = None) -> _Value:
    ta, tb = a.logical(), b.logical()
    if node.attrs.get("transpose_a"):
        ta = ta.transpose(-1, -2)
    if node.attrs.get("transpose_b"):
        tb = tb.transpose(-1, -2)
    out = ta @ tb
    return _Value(out if bias is None else out + bias.logical())


_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Identity": lambda t: t,
    "Relu": torch.relu,
    "Sigmoid": torch.sigmoid,
}
_FUSED_ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "Relu": torch.relu,
    "Relu6": F.relu6,
}
_BINARY: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "Add": torch.add,
    "AddV2": torch.add,
    "Mul": torch.mul,
    "Minimum": torch.minimum,
    "Maximum": torch.maximum,
}
_CONV = {"Conv2D", "_FusedConv2D", "DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_DEPTHWISE = {"DepthwiseConv2dNative", "FusedDepthwiseConv2dNative"}
_FUSED = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "_FusedMatMul"}

_OPS: dict[str, Callable[..., _Value]] = {
    **{name: _unary(fn) for name, fn in _UNARY.items()},
    **{name: _binary(fn) for name, fn in _BINARY.items()},
    "Softmax": _softmax,
    "Mean": _reduce(_mean),
    "Max": _reduce(_amax),
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


def _check_node(node: Node, source: str) -> None:
    """Reject ops, layouts and variants the executor does not implement, at load time."""
    if node.op in ("Placeholder", "Const"):
        return
    if node.op not in _OPS and node.op not in _CONV and node.op != "_FusedMatMul":
        raise UnsupportedOpError(f"{source}: unsupported TF op {node.op!r} (node {node.name!r})")
    layout = node.attrs.get("data_format", "NHWC")
    if layout != "NHWC":
        raise UnsupportedOpError(f"{source}: {node.op} {node.name!r} uses data_format {layout!r}")
    if node.op in _CONV or node.op == "MaxPool":
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


# --- folding conv chains --------------------------------------------------------------------------

def _consumers(nodes: Sequence[Node]) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = {n.name: [] for n in nodes}
    for node in nodes:
        for dep in node.inputs:
            out[dep].append(node)
    return out


def _const_operand(node: Node, data: str, weights: Mapping[str, torch.Tensor],
                   channels: int) -> torch.Tensor | None:
    """The other operand of binary ``node`` when it is a constant scalar or ``(channels,)``."""
    if len(node.inputs) != 2 or data not in node.inputs:
        return None
    other = node.inputs[1] if node.inputs[0] == data else node.inputs[0]
    const = weights.get(other)
    if const is None or not const.is_floating_point():
        return None
    if const.numel() == 1:
        return const.reshape(()).expand(channels)
    return const if tuple(const.shape) == (channels,) else None


def _is_scalar(node: Node, data: str, weights: Mapping[str, torch.Tensor],
               test: Callable[[float], bool]) -> bool:
    const = _const_operand(node, data, weights, 1)
    return const is not None and test(float(const))


def fold_conv_chains(nodes: Sequence[Node], weights: Mapping[str, torch.Tensor]
                     ) -> tuple[list[Node], dict[str, torch.Tensor]]:
    """Merge the chain after each plain convolution into one fused conv (BiasAdd + activation).

    A chain continues through nodes that are the sole consumer of the previous one: ``Mul`` or
    ``Add``/``AddV2`` by a constant scalar or per-channel vector (folded into the kernel and
    bias), then ``Relu``, then ``Minimum(6)`` + ``Maximum(<= 0)`` (Keras' relu6, becoming
    ``Relu6``). The fused node takes the chain's last name, so its consumers are unchanged; the
    folded kernel and bias are new constants ``<last>/folded_kernel`` and ``<last>/folded_bias``.

    Args:
        nodes: the graph in topological order.
        weights: constant name -> tensor in TF layout.

    Returns:
        the rewritten nodes (still topological) and the weights with the new constants added.
    """
    consumers = _consumers(nodes)
    weights = dict(weights)
    fused: dict[str, list[Node]] = {}  # chain's last node name -> [new Const nodes..., fused conv]
    removed: set[str] = set()
    for conv in nodes:
        if conv.op not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[1] not in weights:
            continue
        kernel = weights[conv.inputs[1]]
        channels = kernel.shape[2] * kernel.shape[3] if conv.op in _DEPTHWISE else kernel.shape[3]
        scale, bias = torch.ones(channels), torch.zeros(channels)
        chain, act = [conv], None
        while len(consumers[chain[-1].name]) == 1:
            nxt, data = consumers[chain[-1].name][0], chain[-1].name
            const = _const_operand(nxt, data, weights, channels)
            if act is None and const is not None and nxt.op == "Mul":
                scale, bias = scale * const, bias * const
            elif act is None and const is not None and nxt.op in ("Add", "AddV2"):
                bias = bias + const
            elif act is None and nxt.op == "Relu":
                act = "Relu"
            elif (act == "Relu" and nxt.op == "Minimum"
                  and _is_scalar(nxt, data, weights, lambda v: v == 6.0)
                  and len(consumers[nxt.name]) == 1
                  and consumers[nxt.name][0].op == "Maximum"
                  and _is_scalar(consumers[nxt.name][0], nxt.name, weights, lambda v: v <= 0.0)):
                act = "Relu6"
                chain.append(nxt)
                nxt = consumers[nxt.name][0]
            else:
                break
            chain.append(nxt)
        if len(chain) == 1:
            continue
        last = chain[-1].name
        shape = (1, 1, kernel.shape[2], -1) if conv.op in _DEPTHWISE else (1, 1, 1, -1)
        weights[f"{last}/folded_kernel"] = kernel * scale.reshape(shape)
        weights[f"{last}/folded_bias"] = bias
        op = "FusedDepthwiseConv2dNative" if conv.op in _DEPTHWISE else "_FusedConv2D"
        attrs = {**conv.attrs, "fused_ops": ("BiasAdd",) + ((act,) if act else ()), "num_args": 1}
        fused[last] = [Node(f"{last}/folded_kernel", "Const", (), {}),
                       Node(f"{last}/folded_bias", "Const", (), {}),
                       Node(last, op, (conv.inputs[0], f"{last}/folded_kernel",
                                       f"{last}/folded_bias"), attrs)]
        removed.update(n.name for n in chain[:-1])
    out: list[Node] = []
    for node in nodes:
        if node.name not in removed:
            out.extend(fused.get(node.name, [node]))
    return out, weights


# --- the executable graph -------------------------------------------------------------------------

class GraphModel(nn.Module):
    """A TF.js graph model as a torch module; weights are float32 buffers (no gradients).

    Args:
        nodes: the graph in topological order (:func:`parse_nodes`).
        weights: constant name -> tensor in TF layout (:func:`decode_weights`).
        signature: the model.json ``signature`` (input shapes and named outputs), may be empty.
        source: file name used in error messages.

    Raises:
        UnsupportedOpError: the graph contains an op the executor does not implement.
        TFJSFormatError: a Const node has no weight or a conv kernel is not a constant.
    """

    def __init__(self, nodes: Sequence[Node], weights: Mapping[str, torch.Tensor],
                 signature: Mapping[str, Any], source: str) -> None:
        super().__init__()
        self.source = source
        self.signature = dict(signature)
        self._buffer_of: dict[str, str] = {}
        kept: list[Node] = []
        for node in nodes:
            _check_node(node, source)
            if node.op in _CONV:  # the kernel becomes a torch-layout buffer of the conv itself
                kernel = weights.get(node.inputs[1])
                if kernel is None or kernel.dim() != 4:
                    raise TFJSFormatError(
                        f"{source}: {node.op} {node.name!r} needs a constant 4-D kernel")
                if node.op in _DEPTHWISE:  # (kh, kw, C, M) -> (C*M, 1, kh, kw)
                    kernel = kernel.permute(2, 3, 0, 1).reshape(-1, 1, *kernel.shape[:2])
                else:  # (kh, kw, I, O) -> (O, I, kh, kw)
                    kernel = kernel.permute(3, 2, 0, 1)
                self._add_buffer(f"{node.name}#kernel", kernel.contiguous())
                node = Node(node.name, node.op, node.inputs[:1] + node.inputs[2:], node.attrs)
            kept.append(node)
        consumers = _consumers(kept)
        for node in kept:
            if node.op == "Const" and consumers[node.name]:
                if node.name not in weights:
                    raise TFJSFormatError(
                        f"{source}: Const {node.name!r} has no weight in the manifest")
                self._add_buffer(node.name, weights[node.name])
        kept = [n for n in kept if n.op != "Const" or consumers[n.name]]
        self.nodes = {n.name: n for n in kept}
        self._order = [n.name for n in kept]
        self._plans: dict[tuple[str, ...], list[tuple[Node, list[str]]]] = {}

    def _add_buffer(self, key: str, tensor: torch.Tensor) -> None:
        name = f"w{len(self._buffer_of)}"
        self.register_buffer(name, tensor)
        self._buffer_of[key] = name

    def _buffer(self, key: str) -> torch.Tensor:
        return getattr(self, self._buffer_of[key])

    @property
    def placeholders(self) -> list[str]:
        """Names of the graph's inputs."""
        return [name for name in self._order if self.nodes[name].op == "Placeholder"]

    def _plan(self, fetches: tuple[str, ...]) -> list[tuple[Node, list[str]]]:
        """Nodes needed for ``fetches`` in order, each with the values freed after it runs."""
        if fetches in self._plans:
            return self._plans[fetches]
        needed: set[str] = set()
        stack = list(fetches)
        while stack:
            name = stack.pop()
            if name not in needed:
                needed.add(name)
                stack.extend(self.nodes[name].inputs)
        steps = [self.nodes[name] for name in self._order if name in needed]
        last_use: dict[str, int] = {}
        for i, node in enumerate(steps):
            for dep in node.inputs:
                last_use[dep] = i
        frees: list[list[str]] = [[] for _ in steps]
        for name, i in last_use.items():
            if name not in fetches:
                frees[i].append(name)
        plan = list(zip(steps, frees, strict=True))
        self._plans[fetches] = plan
        return plan

    def _placeholder(self, node: Node, feeds: Mapping[str, torch.Tensor],
                     channels_first: bool) -> _Value:
        if node.name not in feeds:
            raise ValueError(f"{self.source}: no value fed for input {node.name!r}")
        x = feeds[node.name]
        nchw = channels_first and x.dim() == 4
        got = (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) if nchw else tuple(x.shape)
        want = node.attrs.get("shape")
        if want is not None and (len(want) != len(got)
                                 or any(w not in (-1, g) for w, g in zip(want, got, strict=True))):
            raise ValueError(f"{self.source}: input {node.name!r} expects shape {want} "
                             f"(TF layout, -1 = any), got {tuple(got)}")
        return _Value(x.contiguous(memory_format=torch.channels_last) if nchw else x, nchw)

    def _execute(self, node: Node, values: Mapping[str, _Value]) -> _Value:
        args = [values[name] for name in node.inputs]
        if node.op in _CONV:
            bias = args[1].logical() if node.op in _FUSED else None
            out = _conv(node, args[0], self._buffer(f"{node.name}#kernel"), bias)
        elif node.op == "_FusedMatMul":
            out = _matmul(node, *args)
        else:
            return _OPS[node.op](node, *args)
        act = _fused_activation(node) if node.op in _FUSED else None
        return out if act is None else _Value(_FUSED_ACTIVATIONS[act](out.tensor), out.nchw)

    def run(self, feeds: Mapping[str, torch.Tensor], fetches: Sequence[str], *,
            channels_first: bool = False) -> list[torch.Tensor]:
        """Evaluate graph tensors.

        Args:
            feeds: placeholder name -> input tensor (float32; images NHWC, or NCHW with
                ``channels_first``).
            fetches: tensor names (``node`` or ``node:0``), any node of the graph, not only the
                signature's outputs.
            channels_first: 4-D feeds are NCHW and 4-D results are returned NCHW.

        Returns:
            one float32 tensor per fetch, in TF layout (except 4-D with ``channels_first``).

        Raises:
            KeyError: a fetch names no node.
            ValueError: a needed input is not fed or has the wrong shape.
        """
        names = tuple(_tensor_name(f, self.source) for f in fetches)
        for name in names:
            if name not in self.nodes:
                raise KeyError(f"{self.source}: no node named {name!r} (or it was folded into "
                               "a fused conv: load with fold=False to fetch it)")
        values: dict[str, _Value] = {}
        for node, frees in self._plan(names):
            if node.op == "Placeholder":
                values[node.name] = self._placeholder(node, feeds, channels_first)
            elif node.op == "Const":
                values[node.name] = _Value(self._buffer(node.name))
            else:
                values[node.name] = self._execute(node, values)
            for name in frees:
                del values[name]
        results = []
        for name in names:
            v = values[name]
            results.append(v.channels_first() if channels_first and v.tensor.dim() == 4
                           else v.logical())
        return results


def load_graph_model(graph: Path, weights: Sequence[Path] | None = None, *,
                     fold: bool = True) -> GraphModel:
    """Parse a TF.js graph model and build its torch executor.

    Args:
        graph: the ``model.json`` file (``format`` must be ``"graph-model"``).
        weights: the weight shards in manifest order; by default the manifest's ``paths``
            relative to ``graph``'s folder.
        fold: merge the nodes after each convolution into it (:func:`fold_conv_chains`).

    Returns:
        the :class:`GraphModel`, in eval mode.

    Raises:
        TFJSFormatError: the file is not a TF.js graph model, the shards do not match the
            manifest, or a weight is malformed (the message names the file and the reason).
        UnsupportedOpError: the graph uses an op the executor does not implement.
    """
    graph = Path(graph)
    try:
        meta = json.loads(graph.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise TFJSFormatError(f"{graph}: cannot read model.json: {exc}") from None
    if meta.get("format") != "graph-model":
        raise TFJSFormatError(f"{graph}: format is {meta.get('format')!r}, expected 'graph-model'")
    manifest = meta.get("weightsManifest") or []
    paths = [p for group in manifest for p in group["paths"]]
    shards = [graph.parent / p for p in paths] if weights is None else [Path(p) for p in weights]
    if len(shards) != len(paths):
        raise TFJSFormatError(
            f"{graph}: manifest lists {len(paths)} weight shards, got {len(shards)}")
    try:
        data = b"".join(p.read_bytes() for p in shards)
    except OSError as exc:
        raise TFJSFormatError(f"{graph}: cannot read weight shard: {exc}") from None
    specs = [w for group in manifest for w in group["weights"]]
    tensors = decode_weights(specs, data, str(graph))
    nodes = parse_nodes(meta.get("modelTopology", {}), str(graph))
    if fold:
        nodes, tensors = fold_conv_chains(nodes, tensors)
    return GraphModel(nodes, tensors, meta.get("signature", {}), str(graph)).eval()
