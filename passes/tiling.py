"""Patch-based execution of a network's first layers, to cut peak RAM (MCUNetV2, DeepThings' FTP).

The first layers of a CNN run on large feature maps and decide its peak RAM. `patch_schedule`
rewrites the stem — row-local layers from the network's first windowed layer on (conv2d, depthwise
conv2d, pooling, the unary ops between them and residual add/mul), up to a point where one tensor
leaves them — into `n_patches` sub-chains,
one per band of the stem's output rows. Each sub-chain slices the input rows its band needs
(`slice_rows`, the halo included), runs the same layers on them with the padding adjusted to the
band's position, and writes its band into the stage's one full-size output (`write_rows`, in place
after the first band). Halo rows are recomputed by neighbouring patches: more MACs, less memory.
The memory planner then sees small per-patch intermediates instead of the stem's full-size ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from tinysplit.backends import lower_tiling as _lower_tiling  # noqa: F401  (registers the ops' lowerings)
from tinysplit.backends.lower import scratch_bytes as lower_scratch_bytes
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, Tensor
from tinysplit.passes.memory_plan import make_plan

WINDOWED = {"conv2d", "max_pool2d", "avg_pool2d"}
ROW_LOCAL = {"clip", "sigmoid", "tanh", "requantize"}
ScratchFn = Callable[[Graph, Node], int]


@dataclass
class LayerBand:
    """One stem layer inside one patch: the output rows it computes, the input rows it reads."""

    node: str
    out_rows: tuple[int, int]  # [begin, end)
    in_rows: tuple[int, int]
    pad_top: int
    pad_bottom: int


@dataclass
class PatchPlan:
    n_patches: int
    stem: list[str]  # the original stem layers, in order
    stage_input: str
    stage_output: str
    patches: list[list[LayerBand]] = field(default_factory=list)
    macs_untiled: int = 0
    macs_patched: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "n_patches": self.n_patches,
            "stem": self.stem,
            "stage_input": self.stage_input,
            "stage_output": self.stage_output,
            "macs_untiled": self.macs_untiled,
            "macs_patched": self.macs_patched,
            "recompute_overhead": self.macs_patched / self.macs_untiled - 1 if self.macs_untiled else 0.0,
            "patches": [
                [{"node": b.node, "out_rows": list(b.out_rows), "in_rows": list(b.in_rows)} for b in patch]
                for patch in self.patches
            ],
        }


def window(graph: Graph, node: Node) -> tuple[int, int, int]:
    """(stride, kernel extent, top padding) along rows of a windowed layer; (1, 1, 0) for row-local ops."""
    if node.op == "conv2d":
        kh = graph.tensors[node.inputs[1]].shape[1]
        dh = int(node.attrs.get("dilations", (1, 1))[0])
        extent = dh * (kh - 1) + 1
    elif node.op in ("max_pool2d", "avg_pool2d"):
        extent = int(node.attrs["kernel"][0])
    else:
        return 1, 1, 0
    return int(node.attrs.get("strides", (1, 1))[0]), extent, int(node.attrs.get("pads", (0, 0, 0, 0))[0])


def input_rows(graph: Graph, node: Node, out_rows: tuple[int, int]) -> LayerBand:
    """The input rows (clipped to the tensor) and residual padding that output rows [begin, end) need."""
    stride, extent, pad_top = window(graph, node)
    in_h = graph.tensors[node.inputs[0]].shape[1]
    want = (out_rows[0] * stride - pad_top, (out_rows[1] - 1) * stride - pad_top + extent)
    begin, end = max(want[0], 0), min(want[1], in_h)
    return LayerBand(node.name, out_rows, (begin, end), begin - want[0], want[1] - end)


def layer_macs(graph: Graph, node: Node, out_rows: int | None = None) -> int:
    """Multiply-accumulates (conv) or window reads (pool) of a layer, for out_rows of its output rows."""
    y = graph.tensors[node.outputs[0]]
    if len(y.shape) != 4:
        return y.size
    rows = y.shape[1] if out_rows is None else out_rows
    per_row = y.size // y.shape[1]
    if node.op == "conv2d":
        _, kh, kw, cin_g = graph.tensors[node.inputs[1]].shape
        return rows * per_row * kh * kw * cin_g
    if node.op in ("max_pool2d", "avg_pool2d"):
        kh, kw = (int(k) for k in node.attrs["kernel"])
        return rows * per_row * kh * kw
    return rows * per_row


def _stage_candidates(graph: Graph) -> list[Node]:
    """Row-local nodes from the first windowed layer on, in order, each reading only the stage input,
    constants and earlier candidates (batch 1, rank-4 NHWC; add/mul without broadcasting)."""
    nodes = list(graph.nodes())
    first = next(
        (i for i, n in enumerate(nodes) if n.op in WINDOWED and len(graph.tensors[n.inputs[0]].shape) == 4), None
    )
    if first is None or graph.tensors[nodes[first].inputs[0]].shape[0] != 1:
        return []
    inside = {nodes[first].inputs[0]}
    chain: list[Node] = []
    for node in nodes[first:]:
        acts = [i for i in node.inputs if not graph.tensors[i].is_constant]
        y = graph.tensors[node.outputs[0]]
        if node.op in ("add", "mul"):
            ok = len(acts) == len(node.inputs) and all(graph.tensors[a].shape == y.shape for a in acts)
        else:
            ok = node.op in WINDOWED | ROW_LOCAL and acts == node.inputs[:1]
        if not ok or len(y.shape) != 4 or not set(acts) <= inside:
            break
        chain.append(node)
        inside.add(node.outputs[0])
    return chain


def stage_depths(graph: Graph) -> list[int]:
    """Depths k for which the first k candidates form a stage: one tensor leaves it (its output)."""
    chain = _stage_candidates(graph)
    depths = []
    for k in range(1, len(chain) + 1):
        made = {n.outputs[0] for n in chain[:k]}
        readers = {n.name for n in chain[:k]}
        escaping = {t for t in made if t in graph.outputs or any(c.name not in readers for c in graph.consumers(t))}
        if escaping == {chain[k - 1].outputs[0]}:
            depths.append(k)
    return depths


def find_stem(graph: Graph, depth: int | None = None) -> list[Node]:
    """The stage's layers: the deepest valid stage of at most `depth` layers (None: no limit)."""
    depths = [k for k in stage_depths(graph) if depth is None or k <= depth]
    return _stage_candidates(graph)[: depths[-1]] if depths else []


def _stage_rows(graph: Graph, depth: int) -> int:
    return graph.tensors[_stage_candidates(graph)[depth - 1].outputs[0]].shape[1]


def _bands(total: int, parts: int) -> list[tuple[int, int]]:
    chunk = math.ceil(total / parts)
    return [(b, min(b + chunk, total)) for b in range(0, total, chunk)]


def _needs(
    graph: Graph, stem: list[Node], rows: tuple[int, int]
) -> tuple[dict[str, tuple[int, int]], dict[str, LayerBand]]:
    """Rows each stage tensor must hold for output rows `rows` (a union over its readers), and per
    node the rows it reads of its first input and the padding left to it."""
    need: dict[str, tuple[int, int]] = {stem[-1].outputs[0]: rows}
    bands: dict[str, LayerBand] = {}
    for node in reversed(stem):
        out_rows = need[node.outputs[0]]
        band = input_rows(graph, node, out_rows)
        bands[node.name] = band
        for name in node.inputs:
            if not graph.tensors[name].is_constant:
                old = need.get(name, band.in_rows)
                need[name] = (min(old[0], band.in_rows[0]), max(old[1], band.in_rows[1]))
    return need, bands


def _rewrite(graph: Graph, stem: list[Node], n_patches: int) -> tuple[Graph, PatchPlan]:
    out = graph.copy()
    stage_in, stage_out = stem[0].inputs[0], stem[-1].outputs[0]
    y = out.tensors[stage_out]
    plan = PatchPlan(n_patches, [n.name for n in stem], stage_in, stage_out)
    plan.macs_untiled = sum(layer_macs(graph, n) for n in stem)
    for node in stem:
        out.remove_node(node.name)
    acc: str | None = None
    full = (0, graph.tensors[stage_in].shape[1])
    bands = _bands(y.shape[1], n_patches)
    plan.n_patches = len(bands)  # ceil-sized bands: fewer than asked when rows do not divide well
    for p, rows in enumerate(bands):
        _, layer_bands = _needs(graph, stem, rows)
        plan.patches.append([layer_bands[n.name] for n in stem])
        held: dict[str, tuple[str, tuple[int, int]]] = {stage_in: (stage_in, full)}  # tensor -> (band tensor, rows)

        def read(
            name: str, rows: tuple[int, int], p: int = p, held: dict[str, tuple[str, tuple[int, int]]] = held
        ) -> str:
            """The band tensor holding exactly `rows` of `name`: a slice of what is held when it holds more."""
            src, have = held[name]
            if have == rows:
                return src
            t = graph.tensors[name]
            dst = _band_tensor(out, t, f"{name}_patch{p}_rows{rows[0]}", rows[1] - rows[0])
            begin = rows[0] - have[0]
            out.add_node(
                Node(out.unique_name(f"slice_rows_{name}_patch{p}"), "slice_rows", [src], [dst], {"begin": begin})
            )
            return dst

        for node in stem:
            band = layer_bands[node.name]
            t = graph.tensors[node.outputs[0]]
            attrs = dict(node.attrs)
            if node.op in WINDOWED:
                pads = list(attrs.get("pads", (0, 0, 0, 0)))
                pads[0], pads[2] = band.pad_top, band.pad_bottom
                attrs["pads"] = tuple(pads)
            inputs = [i if graph.tensors[i].is_constant else read(i, band.in_rows) for i in node.inputs]
            dst = _band_tensor(out, t, f"{t.name}_patch{p}", band.out_rows[1] - band.out_rows[0])
            out.add_node(Node(out.unique_name(f"{node.name}_patch{p}"), node.op, inputs, [dst], attrs))
            plan.macs_patched += layer_macs(graph, node, band.out_rows[1] - band.out_rows[0])
            held[t.name] = (dst, band.out_rows)
        last = p == len(bands) - 1
        written = stage_out if last else out.unique_name(f"{stage_out}_rows{p}")
        if not last:
            out.add_tensor(Tensor(written, y.shape, y.dtype, y.quant))
        inputs = [read(stage_out, rows)] if acc is None else [acc, read(stage_out, rows)]
        out.add_node(Node(out.unique_name(f"write_rows_patch{p}"), "write_rows", inputs, [written], {"begin": rows[0]}))
        acc = written
    out.metadata.pop("memory", None)
    out.prune()
    out.validate()
    return out, plan


def _band_tensor(graph: Graph, like: Tensor, base: str, rows: int) -> str:
    name = graph.unique_name(base)
    shape = (like.shape[0], rows, *like.shape[2:])
    graph.add_tensor(Tensor(name, shape, like.dtype, like.quant))
    return name


def patch_schedule(
    graph: Graph,
    n_patches: int,
    depth: int | Literal["auto"] | None = None,
    scratch_fn: ScratchFn | None = None,
) -> Graph:
    """Run the stem's first layers — the deepest stage of at most `depth` layers (None: the deepest
    stage whose output has a row per patch; "auto": the stage with the smallest arena) — as
    `n_patches` row bands. The result carries the PatchPlan in metadata["patching"] (None when
    nothing was patched) and, when `graph` had one, a fresh memory plan."""
    if n_patches < 1:
        raise CompileError(f"n_patches must be at least 1, not {n_patches}")
    scratch = scratch_fn or lower_scratch_bytes
    if depth == "auto":
        best: tuple[int, int] | None = None
        for k in stage_depths(graph):
            arena = make_plan(_rewrite(graph, find_stem(graph, k), n_patches)[0], scratch).arena_bytes
            if best is None or arena < best[0]:
                best = (arena, k)
        depth = 0 if best is None else best[1]
    if depth is None:  # the deepest stage whose output still has a row per patch
        deep = [k for k in stage_depths(graph) if _stage_rows(graph, k) >= n_patches]
        depth = deep[-1] if deep else 0
    stem = find_stem(graph, depth)
    if not stem or n_patches == 1:
        result = graph.copy()
        result.metadata["patching"] = None
        return result
    result, plan = _rewrite(graph, stem, n_patches)
    result.metadata["patching"] = plan
    if "memory" in graph.metadata:
        result.metadata["memory"] = make_plan(result, scratch)
    return result
