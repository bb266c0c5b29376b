"""Cut a graph into a device head and a server tail at a point of its topological order.

Cut k runs `graph.nodes()[:k]` on the device and the rest on the server. The tensors crossing
the cut are the activations the head has (graph inputs or head results) that a tail node reads,
in order of first appearance; with skip connections there are several. Graph outputs the head
computes stay on the device (they are head outputs, not sent).

An int8 crossing tensor is sent as is, keeping its Quant. A float32 one is sent as int8 when
`cut_quant` gives it a Quant: the head ends in a `quantize` node writing `<name>_q8`, the tail
starts with the `dequantize` of it (the device sends int8 + scale/zero point, as the wire format
requires). Without an entry it crosses as float32 (exact, for tests of the cut itself).
"""

from __future__ import annotations

from tinysplit.compiler.ir import Graph, Node, Quant, Tensor


def cut_tensors(graph: Graph, k: int) -> list[str]:
    """Activations crossing from nodes[:k] (and the graph inputs) to nodes[k:]."""
    nodes = list(graph.nodes())
    have = list(graph.inputs) + [t for n in nodes[:k] for t in n.outputs]
    read = {t for n in nodes[k:] for t in n.inputs}
    return [t for t in dict.fromkeys(have) if t in read and not graph.tensors[t].is_constant]


def wire_name(graph: Graph, tensor: str, cut_quant: dict[str, Quant]) -> str:
    """The name a crossing tensor has on the wire: its own, or `<name>_q8` when it is quantized for sending."""
    return f"{tensor}_q8" if tensor in cut_quant and graph.tensors[tensor].dtype == "float32" else tensor


def split_graph(graph: Graph, k: int, cut_quant: dict[str, Quant] | None = None) -> tuple[Graph, Graph]:
    """(head, tail) at cut k. head's outputs: its graph outputs, then the cut; tail's inputs: the cut."""
    cut_quant = cut_quant or {}
    names = [n.name for n in graph.nodes()]
    if not 0 <= k <= len(names):
        raise ValueError(f"cut {k} outside 0..{len(names)}")
    cut = cut_tensors(graph, k)
    head_made = set(graph.inputs) | {t for n in names[:k] for t in graph.node(n).outputs}
    sent = [wire_name(graph, t, cut_quant) for t in cut]

    head = _part(graph, names[:k], f"{graph.name}_head")
    head.inputs = [t for t in graph.inputs if t in cut or any(t in n.inputs for n in head.nodes())]
    head.outputs = list(dict.fromkeys([t for t in graph.outputs if t in head_made] + sent))
    tail = _part(graph, names[k:], f"{graph.name}_tail")
    tail.inputs = sent
    tail.outputs = [t for t in graph.outputs if t not in head_made]
    for t, s in zip(cut, sent, strict=True):
        if s != t:
            wire = Tensor(s, graph.tensors[t].shape, "int8", cut_quant[t])
            head.add_tensor(wire)
            head.add_node(Node(head.unique_name(f"quantize_{t}"), "quantize", [t], [s]))
            tail.add_tensor(Tensor(wire.name, wire.shape, wire.dtype, wire.quant))
            tail.add_node(Node(tail.unique_name(f"dequantize_{t}"), "dequantize", [s], [t]))
    for part in (head, tail):
        part.prune()
        part.validate()
    return head, tail


def _part(graph: Graph, keep: list[str], name: str) -> Graph:
    part = graph.copy()
    part.name = name
    part.metadata.pop("memory", None)  # the whole graph's plan does not describe a part
    for n in [n for n in part.dag.nodes if n not in set(keep)]:
        part.remove_node(n)
    return part
