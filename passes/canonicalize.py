"""Canonical form of a freshly translated graph: fewer nodes, same values.

Each rewrite below is a small function that edits a private copy of the graph in place and
returns it; `canonicalize` copies once and composes them. No-op transposes become reshapes
before reshape chains collapse, and the transpose-into-FC fold looks through collapsed reshapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tinysplit.compiler.ir import Graph, Node, Tensor

FUSABLE = {"conv2d", "fully_connected", "add", "mul", "max_pool2d", "avg_pool2d"}

Rewrite = Callable[[Graph], Graph]


def canonicalize(graph: Graph) -> Graph:
    """A new graph: no-op transposes and reshape chains removed, activations fused, dead nodes pruned."""
    result = graph.copy()
    for rewrite in REWRITES:
        result = rewrite(result)
    return result


def _producers(g: Graph) -> dict[str, Node]:
    return {t: n for n in g.nodes() for t in n.outputs}


def _consumers(g: Graph) -> dict[str, list[Node]]:
    users: dict[str, list[Node]] = {}
    for n in g.nodes():
        for t in n.inputs:
            users.setdefault(t, []).append(n)
    return users


def moves_data(shape: tuple[int, ...], perm: list[int]) -> bool:
    big = [a for a in perm if shape[a] != 1]
    return big != sorted(big)


def noop_transposes(g: Graph) -> Graph:
    """A transpose that only moves size-1 axes reorders no memory: it is a reshape."""
    for node in g.nodes():
        if node.op == "transpose" and not moves_data(g.tensors[node.inputs[0]].shape, list(node.attrs["perm"])):
            node.op, node.attrs = "reshape", {}
    return g


def collapse_reshapes(g: Graph) -> Graph:
    """reshape(reshape(x)) -> reshape(x); a reshape to the shape it already has disappears."""
    producers, users = _producers(g), _consumers(g)
    for node in list(g.nodes()):
        if node.op != "reshape":
            continue
        first = producers.get(node.inputs[0])
        if first is not None and first.op == "reshape":  # already collapsed: it reads the root
            users[node.inputs[0]].remove(node)
            node.inputs = [first.inputs[0]]
            users[node.inputs[0]].append(node)
        src, dst = node.inputs[0], node.outputs[0]
        if g.tensors[src].shape == g.tensors[dst].shape and dst not in g.outputs:
            for user in users.pop(dst, []):
                user.inputs = [src if t == dst else t for t in user.inputs]
                users[src].append(user)
            users[src].remove(node)
            g.remove_node(node.name)
    g.rebuild_edges()
    return g


def fold_transpose_into_fc(g: Graph) -> Graph:
    """transpose -> reshape [N, K] -> fully_connected: flatten the untransposed data instead and
    permute the weight columns to match (a TF-style flatten of NHWC data, for free)."""
    producers, users = _producers(g), _consumers(g)
    for fc in list(g.nodes()):
        reshape = producers.get(fc.inputs[0]) if fc.op == "fully_connected" else None
        transpose = producers.get(reshape.inputs[0]) if reshape is not None and reshape.op == "reshape" else None
        if reshape is None or transpose is None or transpose.op != "transpose" or transpose.attrs["perm"][0] != 0:
            continue
        x, mid, flat = transpose.inputs[0], transpose.outputs[0], reshape.outputs[0]
        xs = g.tensors[x].shape
        w = g.tensors[fc.inputs[1]]
        if (
            w.data is None
            or g.tensors[flat].shape != (xs[0], math.prod(xs[1:]))
            or {mid, flat} & set(g.outputs)
            or len(users[mid]) != 1
            or len(users[flat]) != 1
        ):
            continue
        # flat_y[k] = flat_x[order[k]], so y @ W.T == flat_x @ W'.T with W'[:, order] = W.
        order = np.arange(w.shape[1]).reshape(xs[1:]).transpose([p - 1 for p in transpose.attrs["perm"][1:]])
        permuted = np.empty_like(w.data)
        permuted[:, order.reshape(-1)] = w.data
        name = g.unique_name(f"{w.name}_nhwc")
        g.add_tensor(Tensor(name, w.shape, w.dtype, w.quant, permuted))
        fc.inputs[1] = name
        reshape.inputs = [x]
        g.remove_node(transpose.name)
    g.rebuild_edges()
    return g


def fuse_activations(g: Graph) -> Graph:
    """op -> clip becomes op with act_min/act_max, when nothing else reads the op's result and
    both sides share dtype and quantization (the clip is in real units either way)."""
    producers, users = _producers(g), _consumers(g)
    for clip in list(g.nodes()):
        mid = clip.inputs[0]
        op = producers.get(mid) if clip.op == "clip" else None
        if op is None or op.op not in FUSABLE or mid in g.outputs or len(users[mid]) != 1:
            continue
        a, b = g.tensors[mid], g.tensors[clip.outputs[0]]
        if a.dtype != b.dtype or a.quant != b.quant:
            continue
        op.attrs["act_min"] = max(float(op.attrs.get("act_min", -math.inf)), float(clip.attrs["act_min"]))
        op.attrs["act_max"] = min(float(op.attrs.get("act_max", math.inf)), float(clip.attrs["act_max"]))
        op.outputs = [clip.outputs[0]]
        producers[clip.outputs[0]] = op
        g.remove_node(clip.name)
        del g.tensors[mid]
    g.rebuild_edges()
    return g


def prune(g: Graph) -> Graph:
    g.prune()
    return g


REWRITES: tuple[Rewrite, ...] = (noop_transposes, collapse_reshapes, fold_transpose_into_fc, fuse_activations, prune)
