"""Per-layer figures: MACs, parameter bytes, activation bytes. One place, used by inspect and reports."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tinysplit.compiler.ir import Graph, Node


@dataclass
class LayerStats:
    name: str
    op: str
    dtype: str
    input_shapes: list[tuple[int, ...]]
    output_shapes: list[tuple[int, ...]]
    macs: int
    param_bytes: int
    input_bytes: int
    output_bytes: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of conv2d and fully_connected (the convention of MLPerf Tiny's counts)."""
    out = graph.tensors[node.outputs[0]]
    if node.op == "conv2d":
        w = graph.tensors[node.inputs[1]]
        return out.size * int(np.prod(w.shape[1:]))
    if node.op == "fully_connected":
        w = graph.tensors[node.inputs[1]]
        return out.size * int(w.shape[1])
    return 0


def layer_stats(graph: Graph, node: Node) -> LayerStats:
    ins = [graph.tensors[t] for t in node.inputs]
    outs = [graph.tensors[t] for t in node.outputs]
    first = next((t for t in ins if not t.is_constant), outs[0])
    return LayerStats(
        name=node.name,
        op=node.op,
        dtype=first.dtype,
        input_shapes=[t.shape for t in ins if not t.is_constant],
        output_shapes=[t.shape for t in outs],
        macs=macs(graph, node),
        param_bytes=sum(t.nbytes for t in ins if t.is_constant),
        input_bytes=sum(t.nbytes for t in ins if not t.is_constant),
        output_bytes=sum(t.nbytes for t in outs),
    )


def graph_stats(graph: Graph) -> list[LayerStats]:
    return [layer_stats(graph, n) for n in graph.nodes()]


def totals(layers: list[LayerStats]) -> dict[str, int]:
    return {
        "layers": len(layers),
        "macs": sum(s.macs for s in layers),
        "param_bytes": sum(s.param_bytes for s in layers),
        "activation_bytes": sum(s.output_bytes for s in layers),
    }
