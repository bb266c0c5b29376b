"""What the multi-core backends (C: c_multicore.py, Rust: rust.py with max_cores > 1) share: which kernel
calls split over cores by output rows, where their arguments are, and the memory plan that holds
one kernel scratch per core. The row-band arithmetic itself lives in the runtimes
(ts_row_band_for in C, parallel::row_band_for in Rust), which split at run time for any core count.
"""

from __future__ import annotations

from tinysplit.backends.lower import KernelCall
from tinysplit.backends.lower import scratch_bytes as lower_scratch_bytes
from tinysplit.compiler.ir import Graph
from tinysplit.passes.memory_plan import make_plan

# kernel -> argument positions of (params, input dims, input, output dims, output)
ROW_SPLIT = {
    "conv_s8": (0, 2, 3, 7, 8),
    "conv_s8_wide": (0, 2, 3, 7, 8),
    "depthwise_conv_s8": (0, 2, 3, 7, 8),
    "conv_f32": (0, 1, 2, 6, 7),
    "depthwise_conv_f32": (0, 1, 2, 6, 7),
    "max_pool_s8": (0, 1, 2, 3, 4),
    "avg_pool_s8": (0, 1, 2, 3, 4),
    "max_pool_f32": (0, 1, 2, 3, 4),
    "avg_pool_f32": (0, 1, 2, 3, 4),
}
DEFAULT_MAX_CORES = 4


def scratch_stride(graph: Graph, node_name: str) -> int:
    """Bytes of one core's kernel scratch of a layer (8-byte aligned)."""
    return (lower_scratch_bytes(graph, graph.node(node_name)) + 7) // 8 * 8


def row_splittable(graph: Graph, call: KernelCall) -> bool:
    """Whether a kernel call's output rows can be computed in bands, one per core: a convolution or
    pool on a batch-1 NHWC tensor with more than one row."""
    if call.kernel not in ROW_SPLIT:
        return False
    node = graph.node(call.node)
    y = graph.tensors[node.outputs[0]]
    return len(y.shape) == 4 and y.shape[0] == 1 and y.shape[1] > 1


def plan_for_cores(graph: Graph, max_cores: int) -> Graph:
    """The graph with a memory plan that holds one kernel scratch per core."""
    planned = graph.copy()
    planned.metadata["memory"] = make_plan(planned, lambda g, n: max_cores * scratch_stride(g, n.name))
    return planned
