"""The TF.js ``graph-model`` format: ``model.json`` (topology, manifest) and its weight shards.

A TF.js ``graph-model`` is a frozen TensorFlow graph in JSON: ``modelTopology.node`` lists TF ops
with their inputs and attributes, and ``weightsManifest`` says how the binary shards split into
named constants (dtype, shape, optional quantisation such as float16). Both are parsed strictly;
anything malformed raises :class:`TFJSFormatError` naming the file and the reason.

Quantised weights are dequantised to float32 (float16 upcast exactly; uint8/uint16 through their
affine ``scale`` and ``min``).

>>> # nodes, weights, signature = read_graph_model(Path("faceres.json"))
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "Node",
    "TFJSFormatError",
    "UnsupportedOpError",
    "consumers",
    "decode_weights",
    "parse_nodes",
    "read_graph_model",
    "tensor_name",
]


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


def consumers(nodes: Sequence[Node]) -> dict[str, list[Node]]:
    """Node name -> the nodes that read it, for every node of ``nodes``."""
    out: dict[str, list[Node]] = {n.name: [] for n in nodes}
    for node in nodes:
        for dep in node.inputs:
            out[dep].append(node)
    return out


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


def tensor_name(ref: str, source: str) -> str:
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
        inputs = tuple(tensor_name(i, source) for i in raw.get("input", [])
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


def read_graph_model(graph: Path, weights: Sequence[Path] | None = None
                     ) -> tuple[list[Node], dict[str, torch.Tensor], dict[str, Any]]:
    """Read a TF.js graph model's nodes, weights and signature.

    Args:
        graph: the ``model.json`` file (``format`` must be ``"graph-model"``).
        weights: the weight shards in manifest order; by default the manifest's ``paths``
            relative to ``graph``'s folder.

    Returns:
        the nodes in topological order (:func:`parse_nodes`), the weights by name
        (:func:`decode_weights`) and the model.json ``signature`` (may be empty).

    Raises:
        TFJSFormatError: the file is not a TF.js graph model, the shards do not match the
            manifest, or a weight is malformed (the message names the file and the reason).
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
    return nodes, tensors, meta.get("signature", {})
