"""Multi-core C: the layers of backends/c.py's output, each split over cores by output rows.

`emit_c_multicore` writes model.h / model.c with `<prefix>_run_worker(core, n_cores, ...)`: the
platform runs it on every core (n_cores <= <PREFIX>_MAX_CORES) with the same arguments, and
provides `ts_platform_barrier()` (tinysplit/multicore.h), which the workers call between layers.
Convolutions (depthwise too) and pools on batch-1 NHWC tensors run part `core` of their output rows
(runtime ts_row_band_for: input rows with their halo, padding only at the tensor's edges); every
other layer runs on core 0 alone. Each core gets its own kernel scratch in the arena. Results are
bit for bit those of the single-core code: a kernel computes each output row the same way whatever
band it is given. `<prefix>_run(...)` is the one-core call. backends/c.py's output is unchanged.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from tinysplit.backends import lower_tiling as _lower_tiling  # noqa: F401  (patched graphs lower too)
from tinysplit.backends.c import CLayer, _Renderer, write_model_files
from tinysplit.backends.lower import Buffer, KernelCall, Scratch, Struct, lower
from tinysplit.backends.multicore import (
    DEFAULT_MAX_CORES,
    ROW_SPLIT,
    plan_for_cores,
    row_splittable,
    scratch_stride,
)
from tinysplit.compiler.ir import Graph
from tinysplit.passes.tiling import window


@dataclass
class CoreLayer(CLayer):
    parallel: bool = False  # every core runs its rows; else core 0 runs the layer
    barrier: bool = True  # the workers meet after this layer


def _split_call(renderer: _Renderer, graph: Graph, layer: CLayer, call: KernelCall) -> str:
    p_at, in_dims_at, in_at, out_dims_at, out_at = ROW_SPLIT[call.kernel]
    args = [renderer.arg(layer, a, i, call.node) for i, a in enumerate(call.args)]
    node = graph.node(call.node)
    x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
    stride, extent, pad_top = window(graph, node)
    params = cast(Struct, call.args[p_at]).type
    in_row, out_row = x.shape[2] * x.shape[3], y.shape[2] * y.shape[3]
    args[p_at], args[in_dims_at], args[out_dims_at] = "&p", "&in_dims", "&out_dims"
    args[in_at] = f"{args[in_at]} + band.in_begin * {in_row}"
    args[out_at] = f"{args[out_at]} + band.out_begin * {out_row}"
    for i, a in enumerate(call.args):
        if isinstance(a, Scratch) and args[i] != "NULL":
            args[i] = f"{args[i]} + core * {scratch_stride(graph, call.node)}"
    original = [renderer.arg(layer, call.args[i], i, call.node).lstrip("&") for i in (p_at, in_dims_at, out_dims_at)]
    layer.decls = list(dict.fromkeys(layer.decls))  # the second render declared the same constants again
    return (
        f"{{ ts_row_band band; if (ts_row_band_for(core, n_cores, {y.shape[1]}, {x.shape[1]}, {stride}, {extent}, "
        f"{pad_top}, &band) > 0) {{ ts_{params} p = {original[0]}; ts_dims in_dims = {original[1]}; "
        f"ts_dims out_dims = {original[2]}; p.pad.top = band.pad_top; p.pad.bottom = band.pad_bottom; "
        f"in_dims.h = band.in_rows; out_dims.h = band.out_rows; ts_{call.kernel}({', '.join(args)}); }} }}"
    )


def multicore_layers(graph: Graph, prefix: str) -> list[CoreLayer]:
    renderer = _Renderer(graph, prefix)
    layers: list[CoreLayer] = []
    for call in lower(graph):
        base = renderer.layer(call)
        layer = CoreLayer(base.index, base.name, base.op, base.call, base.decls, base.setup)
        if row_splittable(graph, call):
            layer.decls = []
            layer.call = _split_call(renderer, graph, layer, call)
            layer.parallel = True
        layers.append(layer)
    for this, nxt in itertools.pairwise(layers):
        this.barrier = this.parallel or nxt.parallel  # core 0 runs serial runs back to back
    if layers:
        layers[-1].barrier = False  # the final sync follows
    return layers


def emit_c_multicore(
    graph: Graph, out_dir: Path, prefix: str = "model", max_cores: int = DEFAULT_MAX_CORES
) -> list[Path]:
    """Write the multi-core model.h, model.c and a copy of the runtime under out_dir."""
    planned = plan_for_cores(graph, max_cores)
    layers = multicore_layers(planned, prefix)
    return write_model_files(planned, out_dir, prefix, layers, "model_multicore", max_cores=max_cores)


__all__ = ["Buffer", "CoreLayer", "emit_c_multicore", "multicore_layers", "plan_for_cores", "row_splittable"]
