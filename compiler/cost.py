"""Compute cost of IR nodes on a target: op class, units of work, cycles, seconds, joules.

Each node falls into one op class with one unit of work (the quantity its kernel's time is
proportional to); the target's [cost] table gives emulated instructions per unit for each
class and dtype ("conv_int8", "fc_float32", ...). `calibrate_from_counts` fits that table from
per-layer instruction counts (compiler.harness `EmulatedRun.layer_instructions`), so the model is
exactly as good as the emulated kernels it was fitted on.

| class   | ops                                                    | unit                         |
|---------|--------------------------------------------------------|------------------------------|
| conv    | conv2d (not depthwise)                                 | MAC                          |
| dwconv  | depthwise conv2d                                       | MAC                          |
| fc      | fully_connected                                        | MAC                          |
| add     | add, mul                                               | output element               |
| unary   | clip, requantize, quantize, dequantize, sigmoid, tanh  | output element               |
| pool    | max_pool2d, avg_pool2d                                 | window read (out elems * KH*KW) |
| softmax | softmax                                                | element                      |
| move    | transpose, concat, pad                                 | output byte                  |
| view    | reshape                                                | none: the C backend aliases it (0 work) |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

import numpy as np

from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, is_depthwise
from tinysplit.compiler.stats import macs
from tinysplit.compiler.targets import Target

OP_CLASS = {
    "fully_connected": "fc",
    "add": "add",
    "mul": "add",
    "clip": "unary",
    "requantize": "unary",
    "quantize": "unary",
    "dequantize": "unary",
    "sigmoid": "unary",
    "tanh": "unary",
    "max_pool2d": "pool",
    "avg_pool2d": "pool",
    "softmax": "softmax",
    "transpose": "move",
    "concat": "move",
    "pad": "move",
    "reshape": "view",
}


def op_work(graph: Graph, node: Node) -> tuple[str, float]:
    """(cost key "<class>_<dtype>", units of work) of one node; dtype is that of its first input."""
    dtype = graph.tensors[node.inputs[0]].dtype
    out = graph.tensors[node.outputs[0]]
    if node.op == "conv2d":
        return f"{'dwconv' if is_depthwise(graph, node) else 'conv'}_{dtype}", float(macs(graph, node))
    cls = OP_CLASS[node.op]
    if cls == "fc":
        return f"fc_{dtype}", float(macs(graph, node))
    if cls == "pool":
        kh, kw = (int(k) for k in node.attrs["kernel"])
        return f"pool_{dtype}", float(out.size * kh * kw)
    if cls == "move":
        return f"move_{dtype}", float(out.nbytes)
    if cls == "view":
        return f"view_{dtype}", 0.0
    return f"{cls}_{dtype}", float(out.size)


def node_instructions(graph: Graph, node: Node, target: Target) -> float:
    key, work = op_work(graph, node)
    table = target.cost.instructions
    if work and key not in table:
        raise CompileError(
            f"target {target.name}: its [cost.instructions] table has no entry {key!r} for node {node.name!r} "
            f"({node.op}); add one (bench/calibrate_costs.py measures them)"
        )
    return table.get(key, 0.0) * work + target.cost.layer_instructions


def seconds(graph: Graph, nodes: Iterable[Node], target: Target) -> float:
    """Predicted compute time of `nodes` on `target`, in seconds."""
    instructions = sum(node_instructions(graph, n, target) for n in nodes)
    return instructions * target.cost.cycles_per_instruction / target.clock_hz


def joules(compute_seconds: float, target: Target) -> float:
    """Energy of computing for `compute_seconds` on `target`; needs the target's active power."""
    if target.cost.active_w is None:
        raise CompileError(f"target {target.name}: no active_w in its [cost] table, so energy cannot be predicted")
    return compute_seconds * target.cost.active_w


def calibrate_from_counts(graph: Graph, counts: Sequence[int]) -> dict[str, float]:
    """Instructions per unit of work per cost key, fitted from per-layer instruction counts.

    `counts[i]` belongs to the i-th node of `graph.nodes()` (the layer order of the generated code).
    The fit per key is sum(instructions) / sum(work): exact for one layer, and weighted by size
    (what dominates the time) for several. Keys whose layers do no work are left out.
    """
    nodes = list(graph.nodes())
    if len(counts) != len(nodes):
        raise ValueError(f"{len(counts)} instruction counts for {len(nodes)} layers")
    work: dict[str, float] = {}
    spent: dict[str, float] = {}
    for node, count in zip(nodes, counts, strict=True):
        key, units = op_work(graph, node)
        if units:
            work[key] = work.get(key, 0.0) + units
            spent[key] = spent.get(key, 0.0) + float(count)
    return {k: float(np.float32(spent[k] / work[k])) for k in sorted(work)}


def with_counts(target: Target, graph: Graph, counts: Sequence[int]) -> Target:
    """`target` with its instruction table updated from per-layer counts of `graph` (other keys kept)."""
    table = target.cost.instructions | calibrate_from_counts(graph, counts)
    return replace(target, cost=replace(target.cost, instructions=table))
