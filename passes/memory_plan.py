"""Static arena planning from tensor lifetimes.

Graph inputs and outputs live in the caller's buffers (the entry function takes pointers to
them), every other activation and every kernel's scratch buffer lives in one static arena. A
tensor is live from the step that produces it to the last step that reads it; scratch only
during its own step. Ops that may write over an input that dies at that step (elementwise,
reshape) share its buffer. Buffers are placed greedily, largest first, at the lowest offset that
does not overlap a buffer with an intersecting lifetime ("greedy by size", as in TFLite Micro's
planner), which lands close to the layer-wise lower bound on real models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from tinysplit.compiler.ir import Graph, Node

ALIGN = 8
IN_PLACE_OPS = {"clip", "sigmoid", "tanh", "requantize", "add", "mul", "reshape", "write_rows"}


@dataclass
class MemoryPlan:
    arena_bytes: int
    offsets: dict[str, int]  # arena tensors and scratch buffers ("scratch:<node>") -> byte offset
    scratch_bytes: dict[str, int]  # node -> scratch bytes
    activation_bytes: int  # sum of every arena tensor's bytes, as if nothing were reused
    lower_bound_bytes: int  # max over steps of the bytes live at that step
    io_bytes: int  # graph inputs and outputs, held by the caller
    in_place: dict[str, str] = field(default_factory=dict)  # tensor -> tensor whose buffer it reuses

    def as_dict(self) -> dict[str, object]:
        return {
            "arena_bytes": self.arena_bytes,
            "activation_bytes": self.activation_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            "io_bytes": self.io_bytes,
            "offsets": dict(sorted(self.offsets.items(), key=lambda kv: kv[1])),
            "scratch_bytes": {k: v for k, v in self.scratch_bytes.items() if v},
            "in_place": self.in_place,
        }


@dataclass
class _Buffer:
    members: list[str]
    size: int
    first: int
    last: int


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan_memory(graph: Graph, scratch_bytes: Callable[[Graph, Node], int]) -> Graph:
    """Attach a MemoryPlan as graph.metadata["memory"]; the graph itself is unchanged."""
    result = graph.copy()
    result.metadata["memory"] = make_plan(result, scratch_bytes)
    return result


def make_plan(graph: Graph, scratch_bytes: Callable[[Graph, Node], int]) -> MemoryPlan:
    nodes = list(graph.nodes())
    external = set(graph.inputs) | set(graph.outputs)
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, node in enumerate(nodes):
        for t in node.outputs:
            first[t] = last[t] = step
        for t in node.inputs:
            if t in first:
                last[t] = step
    arena_tensors = [t.name for t in graph.activations() if t.name not in external and t.name in first]

    buffers: dict[str, _Buffer] = {}
    owner: dict[str, str] = {}
    in_place: dict[str, str] = {}
    for t in arena_tensors:
        buffers[t] = _Buffer([t], graph.tensors[t].nbytes, first[t], last[t])
        owner[t] = t
    for step, node in enumerate(nodes):
        out = node.outputs[0]
        if node.op not in IN_PLACE_OPS or out not in owner:
            continue
        for src in node.inputs:
            if src in owner and last[src] == step and _can_share(graph, node, src):
                dst_buf, src_buf = buffers.pop(owner[out]), buffers[owner[src]]
                src_buf.members += dst_buf.members
                src_buf.size = max(src_buf.size, dst_buf.size)
                src_buf.last = max(src_buf.last, dst_buf.last)
                for m in dst_buf.members:
                    owner[m] = owner[src]
                in_place[out] = src
                break

    scratch = {node.name: scratch_bytes(graph, node) for node in nodes}
    for step, node in enumerate(nodes):
        if scratch[node.name]:
            key = f"scratch:{node.name}"
            buffers[key] = _Buffer([key], scratch[node.name], step, step)

    placed: list[tuple[int, _Buffer]] = []
    offsets: dict[str, int] = {}
    for key, buf in sorted(buffers.items(), key=lambda kv: (-kv[1].size, kv[1].first, kv[0])):
        offset = 0
        for other_offset, other in sorted(placed, key=lambda p: p[0]):
            overlaps_in_time = not (buf.last < other.first or other.last < buf.first)
            if overlaps_in_time and offset + buf.size > other_offset and other_offset + other.size > offset:
                offset = _align(other_offset + other.size)
        placed.append((offset, buf))
        for m in buf.members:
            offsets[m] = offset
        del key
    arena = max((o + b.size for o, b in placed), default=0)

    live_peak = 0
    for step in range(len(nodes)):
        live = sum(b.size for b in buffers.values() if b.first <= step <= b.last)
        live_peak = max(live_peak, live)
    return MemoryPlan(
        arena_bytes=_align(arena),
        offsets=offsets,
        scratch_bytes=scratch,
        activation_bytes=sum(graph.tensors[t].nbytes for t in arena_tensors),
        lower_bound_bytes=live_peak,
        io_bytes=sum(graph.tensors[t].nbytes for t in external),
        in_place=in_place,
    )


def _can_share(graph: Graph, node: Node, src: str) -> bool:
    """An elementwise output may overwrite an input of its own shape and element size."""
    out, inp = graph.tensors[node.outputs[0]], graph.tensors[src]
    if node.op == "reshape":
        return True
    if node.op == "write_rows" and (len(node.inputs) < 2 or src != node.inputs[0]):
        return False  # only the base may become the output: the rows written come from elsewhere
    return inp.shape == out.shape and inp.dtype == out.dtype
