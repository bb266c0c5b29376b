"""The one graph type every pass and backend speaks.

A `Graph` holds tensors by name and nodes by name on a `networkx.DiGraph`; an edge runs from a
producer node to a consumer node. Rank-4 activations are channels-last (NHWC): the frontend
translates ONNX's NCHW semantics on the way in, because channel-contiguous data is what the
int8 dot-product kernels (SMLAD over two channels) want.

The IR op set and the layout of each op's operands (see OPS below) is the contract between the
frontend, the reference interpreter and the backends.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np

DTYPES = {"float32": np.float32, "int8": np.int8, "int32": np.int32, "int64": np.int64, "uint8": np.uint8}


@dataclass(frozen=True)
class OpSpec:
    inputs: str  # human description of the operands, in order
    attrs: str  # attributes and their meaning


# Every op of the IR, with its operand layout. Activations are rank-4 NHWC or any rank for
# elementwise and data-movement ops. `act_min`/`act_max` are a fused clamp in real (float) units;
# an int8 kernel clamps at the quantized image of that range (quant.activation_bounds).
OPS: dict[str, OpSpec] = {
    "conv2d": OpSpec(
        "x[N,H,W,Cin], w[Cout,KH,KW,Cin/groups], b[Cout]? (float32, or int32 with scale sx*sw)",
        "strides(2) dilations(2) pads(top,left,bottom,right) groups act_min act_max",
    ),
    "fully_connected": OpSpec("x[N,K], w[M,K], b[M]?", "act_min act_max"),
    "add": OpSpec("a, b (numpy broadcasting)", "act_min act_max"),
    "mul": OpSpec("a, b (numpy broadcasting)", "act_min act_max"),
    "clip": OpSpec("x", "act_min act_max (relu is clip(0, inf))"),
    "sigmoid": OpSpec("x", ""),
    "tanh": OpSpec("x", ""),
    "max_pool2d": OpSpec("x[N,H,W,C]", "kernel(2) strides(2) pads(4) act_min act_max"),
    "avg_pool2d": OpSpec("x[N,H,W,C]", "kernel(2) strides(2) pads(4) count_include_pad act_min act_max"),
    "reshape": OpSpec("x", "output shape is the output tensor's shape; data unchanged"),
    "transpose": OpSpec("x", "perm"),
    "concat": OpSpec("x0, x1, ...", "axis"),
    "pad": OpSpec("x", "pads(2*rank: begins then ends) value (real units)"),
    "softmax": OpSpec("x", "softmax over the last axis"),
    "quantize": OpSpec("x float32", "output quant; round half to even, as ONNX QuantizeLinear"),
    "dequantize": OpSpec("x int8", "input quant"),
    "requantize": OpSpec("x int8", "int8 -> int8 between two quantizations"),
    "noise": OpSpec(
        "x int8 (y shares its quant)",
        "distribution (gaussian|laplace) scale (standard deviation in quantization steps) "
        "seed (int in [0, 2**64): reproducible ChaCha20 stream; None: the device CSPRNG, production) "
        "offset (bytes of that stream earlier noise nodes use per inference)",
    ),
    # patch-based execution (passes/tiling.py): rows are axis 1 of a rank-4 NHWC tensor
    "slice_rows": OpSpec("x[N,H,W,C] (y shares its quant)", "begin: y = x[:, begin:begin + y.shape[1]]"),
    "write_rows": OpSpec(
        "base[N,H,W,C]?, x[N,R,W,C] (all share one quant)",
        "begin: y = base (zeros when absent) with rows begin..begin+R-1 replaced by x",
    ),
}


@dataclass
class Quant:
    """Affine quantization: real = scale * (q - zero_point); per tensor, or per channel along `axis`."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None

    def __post_init__(self) -> None:
        self.scale = np.atleast_1d(np.asarray(self.scale, dtype=np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, dtype=np.int32))

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    def scalar(self) -> tuple[float, int]:
        if self.scale.size != 1:
            raise ValueError("per-channel quantization has no single scale")
        return float(self.scale[0]), int(self.zero_point[0])

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Quant)
            and self.axis == other.axis
            and np.array_equal(self.scale, other.scale)
            and np.array_equal(self.zero_point, other.zero_point)
        )


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    quant: Quant | None = None
    data: np.ndarray | None = None  # set for constants (weights, biases)

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(DTYPES[self.dtype]).itemsize


@dataclass
class Node:
    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


class Graph:
    """Nodes on a networkx DiGraph (node name -> Node), tensors by name, and the graph's edges."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.tensors: dict[str, Tensor] = {}
        self.dag: nx.DiGraph = nx.DiGraph()
        self.inputs: list[str] = []
        self.outputs: list[str] = []
        self.metadata: dict[str, Any] = {}

    # construction -------------------------------------------------------------------------
    def add_tensor(self, tensor: Tensor) -> Tensor:
        self.tensors[tensor.name] = tensor
        return tensor

    def add_node(self, node: Node) -> Node:
        if node.op not in OPS:
            raise ValueError(f"unknown IR op {node.op!r}")
        if node.name in self.dag:
            raise ValueError(f"duplicate node name {node.name!r}")
        self.dag.add_node(node.name, node=node)
        self._connect(node)
        return node

    def remove_node(self, name: str) -> None:
        self.dag.remove_node(name)

    def unique_name(self, base: str) -> str:
        name, i = base, 0
        while name in self.dag or name in self.tensors:
            i += 1
            name = f"{base}_{i}"
        return name

    def rebuild_edges(self) -> None:
        """Recompute edges after nodes' inputs/outputs were edited in place."""
        self.dag.remove_edges_from(list(self.dag.edges))
        producers = self.producers()  # once, not per node: linear in the graph's size
        for name in self.dag.nodes:
            for t in self.node(name).inputs:
                if t in producers and producers[t] != name:
                    self.dag.add_edge(producers[t], name)

    def _connect(self, node: Node) -> None:
        producers = self.producers()
        for t in node.inputs:
            if t in producers and producers[t] != node.name:
                self.dag.add_edge(producers[t], node.name)
        consumers = {t for t in node.outputs}
        for other in list(self.dag.nodes):
            if other != node.name and consumers.intersection(self.node(other).inputs):
                self.dag.add_edge(node.name, other)

    # queries ------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        node: Node = self.dag.nodes[name]["node"]
        return node

    def nodes(self) -> Iterator[Node]:
        """Nodes in a deterministic topological order (ties broken by insertion order)."""
        order = {n: i for i, n in enumerate(self.dag.nodes)}
        for name in nx.lexicographical_topological_sort(self.dag, key=lambda n: order[n]):
            yield self.node(name)

    def producers(self) -> dict[str, str]:
        return {t: n for n in self.dag.nodes for t in self.node(n).outputs}

    def producer(self, tensor: str) -> Node | None:
        name = self.producers().get(tensor)
        return None if name is None else self.node(name)

    def consumers(self, tensor: str) -> list[Node]:
        return [n for n in self.nodes() if tensor in n.inputs]

    def activations(self) -> list[Tensor]:
        """Non-constant tensors, graph inputs first, then in production order."""
        seen = list(self.inputs)
        for node in self.nodes():
            seen += [t for t in node.outputs if t not in seen]
        return [self.tensors[t] for t in seen if not self.tensors[t].is_constant]

    def constants(self) -> list[Tensor]:
        used = {t for n in self.nodes() for t in n.inputs}
        return [t for t in self.tensors.values() if t.is_constant and t.name in used]

    def copy(self) -> Graph:
        return copy.deepcopy(self)

    def prune(self) -> None:
        """Drop nodes that no graph output depends on, and tensors nothing refers to."""
        producers = self.producers()
        keep: set[str] = set()
        frontier = [producers[t] for t in self.outputs if t in producers]
        while frontier:
            n = frontier.pop()
            if n in keep:
                continue
            keep.add(n)
            frontier += [producers[t] for t in self.node(n).inputs if t in producers]
        for n in list(self.dag.nodes):
            if n not in keep:
                self.dag.remove_node(n)
        used = set(self.inputs) | set(self.outputs)
        for node in self.nodes():
            used |= set(node.inputs) | set(node.outputs)
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def validate(self) -> None:
        """Cheap structural checks: every referenced tensor exists and has one producer."""
        seen: set[str] = set(self.inputs) | {t.name for t in self.tensors.values() if t.is_constant}
        for node in self.nodes():
            for t in node.inputs:
                if t not in self.tensors:
                    raise ValueError(f"node {node.name} reads unknown tensor {t}")
                if t not in seen:
                    raise ValueError(f"node {node.name} reads {t} before it is produced")
            for t in node.outputs:
                if t in seen:
                    raise ValueError(f"tensor {t} has more than one producer")
                seen.add(t)
        for t in self.outputs:
            if t not in seen:
                raise ValueError(f"graph output {t} is never produced")


def is_depthwise(graph: Graph, node: Node) -> bool:
    """A conv2d with one group per input channel and one input channel per filter."""
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    groups = int(node.attrs.get("groups", 1))
    return groups > 1 and groups == x.shape[3] and w.shape[3] == 1
