"""Folding the conv chains of a TF.js graph into fused convolutions.

:func:`fold_conv_chains` merges what follows a convolution (per-channel ``Mul`` and ``Add`` of
frozen batch norms, ``Relu``, and Keras' ``relu6`` clipping) into one fused conv, the kind of
rewrite the TF.js converter itself applies. Nodes folded away can no longer be fetched
(:func:`attackers.convert.tfjs_graph.load_graph_model` with ``fold=False`` keeps them).

>>> # nodes, weights = fold_conv_chains(nodes, weights)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from attackers.convert.tfjs_format import Node, consumers

__all__ = ["fold_conv_chains"]


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
    users = consumers(nodes)
    weights = dict(weights)
    fused: dict[str, list[Node]] = {}  # chain's last node name -> [new Const nodes..., fused conv]
    removed: set[str] = set()
    for conv in nodes:
        if conv.op not in ("Conv2D", "DepthwiseConv2dNative") or conv.inputs[1] not in weights:
            continue
        kernel = weights[conv.inputs[1]]
        depthwise = conv.op == "DepthwiseConv2dNative"
        channels = kernel.shape[2] * kernel.shape[3] if depthwise else kernel.shape[3]
        scale, bias = torch.ones(channels), torch.zeros(channels)
        chain, act = [conv], None
        while len(users[chain[-1].name]) == 1:
            nxt, data = users[chain[-1].name][0], chain[-1].name
            const = _const_operand(nxt, data, weights, channels)
            if act is None and const is not None and nxt.op == "Mul":
                scale, bias = scale * const, bias * const
            elif act is None and const is not None and nxt.op in ("Add", "AddV2"):
                bias = bias + const
            elif act is None and nxt.op == "Relu":
                act = "Relu"
            elif (act == "Relu" and nxt.op == "Minimum"
                  and _is_scalar(nxt, data, weights, lambda v: v == 6.0)
                  and len(users[nxt.name]) == 1
                  and users[nxt.name][0].op == "Maximum"
                  and _is_scalar(users[nxt.name][0], nxt.name, weights, lambda v: v <= 0.0)):
                act = "Relu6"
                chain.append(nxt)
                nxt = users[nxt.name][0]
            else:
                break
            chain.append(nxt)
        if len(chain) == 1:
            continue
        last = chain[-1].name
        shape = (1, 1, kernel.shape[2], -1) if depthwise else (1, 1, 1, -1)
        weights[f"{last}/folded_kernel"] = kernel * scale.reshape(shape)
        weights[f"{last}/folded_bias"] = bias
        op = "FusedDepthwiseConv2dNative" if depthwise else "_FusedConv2D"
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

