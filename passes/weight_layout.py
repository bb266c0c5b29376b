"""Weight layout: int8 conv and fully connected weights stored as int16, in the order SMLAD reads them.

On a core with the Armv7E-M DSP extension every int8 weight word costs two sign extensions
(SXTB16) before its SMLADs. Stored pre-widened as int16, the inner loops lose them, and the layout
can follow the loop: conv multiplies two weight rows by two im2col columns with one LDM of each
(10 instructions per 16 MACs, 13 with int8 weights), fully connected goes from 21 to 11, at the price
of twice the flash of those weights. The numbers computed are the same; only the storage changes.
Conv weights are also stored doubled (2w, still exact in int16): the accumulator is then 2 * acc, and
the kernel's requantization is one SMMLAR (see runtime_c/src/mat_mult_s8.h).

`choose_weight_layout` marks the nodes whose weights are stored widened (attribute `simd_weights`);
backends/lower.py emits them with `smlad_weights`. Policy:
  - "int8": never;
  - "int16": every eligible layer;
  - "auto": every eligible layer when the target has the DSP extension and the widened weights still
    fit its flash budget (flash minus the firmware reserve and the runtime code); otherwise none.
"""

from __future__ import annotations

import numpy as np

from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, Tensor, is_depthwise
from tinysplit.compiler.targets import Target

WEIGHT_LAYOUTS = ("auto", "int8", "int16")
ATTR = "simd_weights"
_GROUP_ORDER = np.array([0, 2, 1, 3])  # SXTB16 pairs bytes (0, 2) and (1, 3): the column's order
FC_ROW_BLOCK = 4  # fully connected rows are interleaved in blocks of 4 (one LDM per 2 rows and group)
CONV_ROW_BLOCK = 2  # conv rows are interleaved in pairs (one LDM per pair and group)


def eligible(graph: Graph, node: Node) -> bool:
    """int8 conv (not depthwise: its weights are widened per call, in scratch) and fully connected."""
    if node.op not in ("conv2d", "fully_connected") or len(node.inputs) < 2:
        return False
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if x.dtype != "int8" or w.dtype != "int8" or w.data is None:
        return False
    return node.op == "fully_connected" or not is_depthwise(graph, node)


def _interleave_rows(grouped: np.ndarray, block: int) -> np.ndarray:
    """[rows, groups, 4] -> rows padded with zero rows to a multiple of `block`, then for each block of
    rows and each group, the block's rows' groups one after the other (flat)."""
    rows, groups = grouped.shape[:2]
    padded = np.zeros((-(-rows // block) * block, groups, 4), np.int16)
    padded[:rows] = grouped
    return padded.reshape(-1, block, groups, 4).transpose(0, 2, 1, 3).reshape(-1)


def smlad_weights(op: str, w: np.ndarray, groups: int = 1) -> np.ndarray:
    """The int16 weight array the *_s8_wide kernels read (runtime_c/src/mat_mult_s8.h).

    Each row of K weights (conv2d, w = [Cout, KH, KW, Cin/g]: K = KH*KW*Cin/g; fully_connected,
    w = [units, depth]: K = depth) is padded with zeros to Kp, a multiple of 4, and each group of 4
    is stored in the order 0, 2, 1, 3. Then:
      - conv2d: the values doubled; per conv group, its rows in pairs (a zero row completes an odd
        count), each pair stored group by group, the two rows' groups one after the other;
      - fully_connected: rows in blocks of FC_ROW_BLOCK (zero rows complete the last), each block
        group by group, the block's rows' groups one after the other."""
    rows = w.reshape(w.shape[0], -1).astype(np.int16)
    k = rows.shape[1]
    kp = (k + 3) & ~3
    padded = np.zeros((rows.shape[0], kp), np.int16)
    padded[:, :k] = rows
    grouped = padded.reshape(rows.shape[0], kp // 4, 4)[:, :, _GROUP_ORDER]
    if op == "fully_connected":
        return _interleave_rows(grouped, FC_ROW_BLOCK)
    per_group = grouped.reshape(groups, rows.shape[0] // groups, kp // 4, 4)
    return np.concatenate([_interleave_rows(2 * g, CONV_ROW_BLOCK) for g in per_group])


def _widened_bytes(node: Node, w: Tensor) -> int:
    rows, k = w.shape[0], int(np.prod(w.shape[1:]))
    if node.op == "fully_connected":
        rows = -(-rows // FC_ROW_BLOCK) * FC_ROW_BLOCK
    else:
        groups = int(node.attrs.get("groups", 1))
        rows = groups * -(-(rows // groups) // CONV_ROW_BLOCK) * CONV_ROW_BLOCK
    return 2 * rows * ((k + 3) & ~3)


def stored_weight_bytes(graph: Graph) -> int:
    """Flash the constants take as the backends store them."""
    widened = {n.inputs[1]: _widened_bytes(n, graph.tensors[n.inputs[1]]) for n in graph.nodes() if n.attrs.get(ATTR)}
    return sum(widened.get(t.name, t.nbytes) for t in graph.constants())


def choose_weight_layout(graph: Graph, target: Target, layout: str = "auto") -> Graph:
    """The graph with `simd_weights` set on the layers whose weights are stored widened."""
    if layout not in WEIGHT_LAYOUTS:
        raise CompileError(f"weight layout {layout!r}: use one of {', '.join(WEIGHT_LAYOUTS)}")
    nodes = [n.name for n in graph.nodes() if eligible(graph, n)]
    if layout == "int8" or not nodes or (layout == "auto" and not target.dsp):
        return graph
    result = graph.copy()
    for name in nodes:
        result.node(name).attrs[ATTR] = True
    cost = target.cost
    budget = target.flash_bytes - cost.reserved_flash_bytes - cost.code_flash_bytes
    if layout == "auto" and stored_weight_bytes(result) > budget:
        return graph
    return result


def int8_weights(graph: Graph) -> Graph:
    """The graph with every weight stored as int8: for backends without an SMLAD path (Rust)."""
    if not any(n.attrs.get(ATTR) for n in graph.nodes()):
        return graph
    result = graph.copy()
    for node in result.nodes():
        node.attrs.pop(ATTR, None)
    return result
