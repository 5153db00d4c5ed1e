"""A TF.js graph model as a torch module: :func:`load_graph_model` and :class:`GraphModel`.

The graph is read by :mod:`attackers.convert.tfjs_format`, its conv chains folded by
:mod:`attackers.convert.tfjs_fold` and its ops executed by :mod:`attackers.convert.tfjs_ops`;
an op outside that table raises
:class:`~attackers.convert.tfjs_format.UnsupportedOpError` naming it, when the model is loaded.
Any node can be fetched, not only the signature's outputs, and values no later node reads are
freed as the graph runs.

>>> # graph = load_graph_model(Path("faceres.json"))
>>> # emb, = graph.run({"input_1": crops}, ["global_pooling/Mean"], channels_first=True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attackers.convert.tfjs_fold import fold_conv_chains
from attackers.convert.tfjs_format import (
    Node,
    TFJSFormatError,
    consumers,
    read_graph_model,
    tensor_name,
)
from attackers.convert.tfjs_ops import CONV_OPS, Value, check_node, run_op, torch_kernel

__all__ = ["GraphModel", "load_graph_model"]


class GraphModel(nn.Module):
    """A TF.js graph model as a torch module; weights are float32 buffers (no gradients).

    Args:
        nodes: the graph in topological order.
        weights: constant name -> tensor in TF layout.
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
            check_node(node, source)
            if node.op in CONV_OPS:  # the kernel becomes a torch-layout buffer of the conv itself
                kernel = torch_kernel(node, weights.get(node.inputs[1]), source)
                self._add_buffer(f"{node.name}#kernel", kernel)
                node = Node(node.name, node.op, node.inputs[:1] + node.inputs[2:], node.attrs)
            kept.append(node)
        users = consumers(kept)
        for node in kept:
            if node.op == "Const" and users[node.name]:
                if node.name not in weights:
                    raise TFJSFormatError(
                        f"{source}: Const {node.name!r} has no weight in the manifest")
                self._add_buffer(node.name, weights[node.name])
        kept = [n for n in kept if n.op != "Const" or users[n.name]]
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
                     channels_first: bool) -> Value:
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
        return Value(x.contiguous(memory_format=torch.channels_last) if nchw else x, nchw)

    def _execute(self, node: Node, values: Mapping[str, Value]) -> Value:
        kernel = self._buffer(f"{node.name}#kernel") if node.op in CONV_OPS else None
        return run_op(node, [values[name] for name in node.inputs], kernel)

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
        names = tuple(tensor_name(f, self.source) for f in fetches)
        for name in names:
            if name not in self.nodes:
                raise KeyError(f"{self.source}: no node named {name!r} (or it was folded into "
                               "a fused conv: load with fold=False to fetch it)")
        values: dict[str, Value] = {}
        for node, frees in self._plan(names):
            if node.op == "Placeholder":
                values[node.name] = self._placeholder(node, feeds, channels_first)
            elif node.op == "Const":
                values[node.name] = Value(self._buffer(node.name))
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
        fold: merge the nodes after each convolution into it
            (:func:`attackers.convert.tfjs_fold.fold_conv_chains`).

    Returns:
        the :class:`GraphModel`, in eval mode.

    Raises:
        TFJSFormatError: the file is not a TF.js graph model, the shards do not match the
            manifest, or a weight is malformed (the message names the file and the reason).
        UnsupportedOpError: the graph uses an op the executor does not implement.
    """
    nodes, tensors, signature = read_graph_model(graph, weights)
    if fold:
        nodes, tensors = fold_conv_chains(nodes, tensors)
    return GraphModel(nodes, tensors, signature, str(graph)).eval()
