"""Lowerings of the patch-based execution ops (passes/tiling.py) to runtime_c/src/slice.c.

Importing this module registers them in backends.lower's table, so `lower()` (and every backend on
top of it) handles graphs that passes.tiling.patch_schedule rewrote.
"""

from __future__ import annotations

from tinysplit.backends import lower as _lower
from tinysplit.backends.lower import Arg, Buffer, ElemSize, Null
from tinysplit.compiler.errors import UnsupportedError
from tinysplit.compiler.ir import Graph, Node


def _check_rows(graph: Graph, node: Node) -> None:
    for name in [*node.inputs, *node.outputs]:
        t = graph.tensors[name]
        if len(t.shape) != 4:
            raise UnsupportedError(node.name, node.op, f"rank-4 NHWC tensors only, {name} is {t.shape}")
        if t.dtype == "int8" and t.quant != graph.tensors[node.outputs[0]].quant:
            raise UnsupportedError(node.name, node.op, "int8 inputs and output must share one quantization")


def _slice_rows(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    _check_rows(graph, node)
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    args: list[Arg] = [ElemSize(x.dtype), _lower._dims(x.shape), int(node.attrs["begin"]), y.shape[1]]
    return "slice_rows", [*args, Buffer(x.name), Buffer(y.name)]


def _write_rows(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    _check_rows(graph, node)
    x, y = graph.tensors[node.inputs[-1]], graph.tensors[node.outputs[0]]
    base: Arg = Buffer(node.inputs[0]) if len(node.inputs) == 2 else Null()
    plan = graph.metadata.get("memory")
    if len(node.inputs) == 2 and plan is not None and plan.in_place.get(y.name) == node.inputs[0]:
        base = Buffer(y.name)  # shares its base's buffer: only the band moves
    args: list[Arg] = [ElemSize(y.dtype), _lower._dims(y.shape), int(node.attrs["begin"]), x.shape[1]]
    return "write_rows", [*args, base, Buffer(x.name), Buffer(y.name)]


LOWERINGS = {"slice_rows": _slice_rows, "write_rows": _write_rows}
_lower._LOWERINGS.update(LOWERINGS)
