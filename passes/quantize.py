"""Post-training int8 quantization: a float IR graph -> an int8 IR graph the device kernels run.

Ranges come from running the float reference interpreter over calibration samples and looking at
every activation. Numerics follow the TFLite/CMSIS-NN convention the kernels implement:
- weights of conv2d/fully_connected: int8, symmetric, per output channel (axis 0), scale max|w|/127;
- bias: int32 with scale sx * sw[c] (round(b / (sx * sw)));
- activations: int8, asymmetric, per tensor, the range always including 0 (so 0 is exact, which
  padding and ReLU need). A fused act_min/act_max clips the range, so a ReLU folded into its
  producer costs no resolution on negatives;
- max/avg pool, reshape, transpose, concat and pad move data without rescaling: their inputs and
  outputs share one Quant (the union of their ranges);
- softmax and sigmoid outputs are 1/256 with zero point -128, tanh 1/128 with zero point 0, as TFLite.
Methods: "minmax" (observed extremes), "percentile" (drop the (100-p)% tails on each side, from an
8192-bin histogram) and "entropy" (the clipping threshold minimising the KL divergence between the
histogram of |x| and its int8-quantized version, TensorRT's method, with the number of levels the
asymmetric int8 grid really gives the candidate range, and exact zeros left out). Graph inputs and
outputs always use min/max: an input's range is known data, and a clipped output is a wrong result.
The float interface stays: a `quantize` node after each float input and a `dequantize` node before
each float output; with io_dtype="int8" the inputs and outputs themselves are int8 and their
scale/zero point are recorded in graph.metadata["io_quant"].
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinysplit.compiler import reference
from tinysplit.compiler.calibration import Calibration, CalibrationSource, batched, load_calibration
from tinysplit.compiler.errors import CompileError, UnsupportedError
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.compiler.quant import INT8_MAX, INT8_MIN

METHODS = ("minmax", "percentile", "entropy")
SHARED_QUANT = {"max_pool2d", "avg_pool2d", "reshape", "transpose", "concat", "pad"}
FIXED_OUTPUT = {"softmax": (1.0 / 256.0, -128), "sigmoid": (1.0 / 256.0, -128), "tanh": (1.0 / 128.0, 0)}
WEIGHTED = {"conv2d", "fully_connected"}
PERCENTILE_BINS = 8192
ENTROPY_BINS = 2048
MAX_CLIPPED = 1e-3  # entropy: never clip more than this fraction of the nonzero values
BATCH = 32  # samples per reference run: big enough to vectorise, small enough for keep_all memory


@dataclass
class _Stats:
    lo: float = math.inf
    hi: float = -math.inf
    hist: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def activation_quant(lo: float, hi: float) -> Quant:
    """Per-tensor asymmetric int8 covering [min(lo, 0), max(hi, 0)], zero exactly representable."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = np.float32((hi - lo) / 255.0) if hi > lo else np.float32(1.0)
    if scale == 0 or not np.isfinite(scale):
        scale = np.float32(1.0)
    zp = int(np.clip(np.round(INT8_MIN - lo / float(scale)), INT8_MIN, INT8_MAX))
    return Quant(scale, zp)


def weight_quant(w: np.ndarray) -> tuple[np.ndarray, Quant]:
    """Symmetric int8 per output channel (axis 0): scale_c = max|w_c| / 127."""
    amax = np.abs(w.reshape(len(w), -1)).max(axis=1).astype(np.float64)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
    return q, Quant(scale, np.zeros(len(w), np.int32), axis=0)


def bias_quant(b: np.ndarray, sx: float, sw: np.ndarray) -> tuple[np.ndarray, Quant]:
    """int32 bias at scale sx * sw[c], the accumulator's scale."""
    scale = np.float64(np.float32(sx)) * sw.astype(np.float64)
    q = np.clip(np.rint(b.astype(np.float64) / scale), -(2**31), 2**31 - 1).astype(np.int32)
    return q, Quant((np.float32(sx) * sw.astype(np.float32)), np.zeros(len(b), np.int32), axis=0)


def percentile_range(hist: np.ndarray, lo: float, hi: float, percentile: float) -> tuple[float, float]:
    """The (100 - p)th and pth percentiles of the values binned uniformly over [lo, hi] (linear in a bin)."""
    cdf = np.cumsum(hist, dtype=np.float64)
    cdf /= cdf[-1]
    edges = np.linspace(lo, hi, len(hist) + 1)

    def at(q: float) -> float:
        i = min(int(np.searchsorted(cdf, q)), len(hist) - 1)
        prev = cdf[i - 1] if i > 0 else 0.0
        frac = (q - prev) / (cdf[i] - prev) if cdf[i] > prev else 1.0
        return float(edges[i] + frac * (edges[i + 1] - edges[i]))

    return at(1.0 - percentile / 100.0), at(percentile / 100.0)


def kl_threshold(hist: np.ndarray, amax: float, lo: float, hi: float, start: int = 128) -> float:
    """Clipping threshold T for |x| (histogram `hist` over [0, amax]) with least KL(P || Q).

    P: the first i bins, the mass beyond folded into the last one (clipping). Q: those i bins merged
    into as many groups as the int8 grid for the range [max(lo, -T), min(hi, T)] (with 0) has levels
    in [0, T], each group's mass spread evenly over its non-empty bins. KL(P || Q) cannot see how far
    folded values moved, so with few or clustered values it can favour clipping most of them (all
    mass in one bin gives KL 0): thresholds that clip more than MAX_CLIPPED of the mass are not taken.
    """
    hist = hist.astype(np.float64)
    bins, width, total = len(hist), amax / len(hist), hist.sum()
    if amax <= 0 or total == 0:
        return amax
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    suffix = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])  # suffix[i] = mass in bins >= i
    best, best_i = math.inf, bins
    for i in range(min(start, bins), bins + 1):
        if suffix[i] > MAX_CLIPPED * total:
            continue
        t = i * width
        step = (min(hi, t) - max(lo, -t)) / 255.0
        levels = max(1, min(i, round(t / step)))
        p = hist[:i].copy()
        p[-1] += suffix[i]
        nonzero = p > 0
        group = np.arange(i) * levels // i
        mass = np.bincount(group, weights=hist[:i], minlength=levels)
        count = np.bincount(group, weights=nonzero, minlength=levels)
        q = np.where(nonzero, mass[group] / np.maximum(count[group], 1), 0.0)
        p, q = p[nonzero] / p.sum(), q[nonzero] / max(q.sum(), 1e-300)
        kl = float(np.sum(p * np.log(p / np.maximum(q, 1e-12))))
        if kl < best:
            best, best_i = kl, i
    return best_i * width


def _sample_runs(graph: Graph, calibration: Calibration) -> Iterator[dict[str, np.ndarray]]:
    """Every tensor's float value, batch by batch (batched when the graph allows it, else per sample)."""
    cache: dict[int, Graph | None] = {}
    can_batch = batched(graph, 2) is not None
    for feeds in calibration.batches(BATCH if can_batch else 1):
        n = len(next(iter(feeds.values())))
        if n not in cache:
            cache[n] = batched(graph, n) if can_batch else graph
        g = cache[n]
        assert g is not None
        yield reference.run(g, feeds, keep_all=True)


def collect_ranges(
    graph: Graph, calibration: Calibration, method: str = "minmax", percentile: float = 99.99
) -> dict[str, tuple[float, float]]:
    """Calibrated [lo, hi] of every float activation of `graph` by `method` (before sharing rules)."""
    if method not in METHODS:
        raise CompileError(f"calibration method {method!r} is not one of {', '.join(METHODS)}")
    if not 50.0 < percentile <= 100.0:
        raise CompileError(f"percentile {percentile} must be in (50, 100]")
    names = [t.name for t in graph.activations() if t.dtype == "float32"]
    stats = {n: _Stats() for n in names}
    for values in _sample_runs(graph, calibration):
        for n in names:
            s, v = stats[n], values[n]
            s.lo, s.hi = min(s.lo, float(v.min())), max(s.hi, float(v.max()))
    if method == "minmax":
        return {n: (s.lo, s.hi) for n, s in stats.items()}
    bins = PERCENTILE_BINS if method == "percentile" else ENTROPY_BINS
    for values in _sample_runs(graph, calibration):  # second pass: histograms over the known ranges
        for n in names:
            s, v = stats[n], values[n].astype(np.float64)
            if method == "percentile":
                h, _ = np.histogram(v, bins, (s.lo, s.hi) if s.hi > s.lo else (s.lo, s.lo + 1))
            else:
                # Exact zeros (half of a ReLU's output) are exact in int8 whatever the range, since
                # the zero point represents 0: they carry no error, and would swamp the histogram.
                amax = max(abs(s.lo), abs(s.hi))
                h, _ = np.histogram(np.abs(v[v != 0]), bins, (0.0, amax) if amax > 0 else (0.0, 1.0))
            s.hist = h if s.hist.size == 0 else s.hist + h
    ranges = {}
    for n, s in stats.items():
        if n in graph.inputs or n in graph.outputs or s.hi <= s.lo:
            ranges[n] = (s.lo, s.hi)
        elif method == "percentile":
            ranges[n] = percentile_range(s.hist, s.lo, s.hi, percentile)
        else:
            t = kl_threshold(s.hist, max(abs(s.lo), abs(s.hi)), s.lo, s.hi)
            ranges[n] = (max(s.lo, -t), min(s.hi, t))
    return ranges


class _Groups:
    """Union-find over tensor names that must share one Quant."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, names: list[str]) -> None:
        for other in names[1:]:
            self.parent[self.find(other)] = self.find(names[0])


def _act_range(node: Node) -> tuple[float, float]:
    lo, hi = node.attrs.get("act_min"), node.attrs.get("act_max")
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


def assign_quants(graph: Graph, ranges: dict[str, tuple[float, float]]) -> dict[str, Quant]:
    """A Quant for every float activation and float non-weight constant, honouring the sharing rules."""
    fixed: dict[str, Quant] = {}
    ranges = dict(ranges)
    groups = _Groups()
    weights = {n.inputs[i] for n in graph.nodes() if n.op in WEIGHTED for i in (1, 2) if i < len(n.inputs)}
    for node in graph.nodes():
        y = node.outputs[0]
        if y in ranges:
            a_lo, a_hi = _act_range(node)
            lo, hi = ranges[y]
            ranges[y] = (max(lo, a_lo), min(hi, a_hi))  # a fused activation bounds the range
        if node.op in FIXED_OUTPUT:
            fixed[y] = Quant(np.float32(FIXED_OUTPUT[node.op][0]), FIXED_OUTPUT[node.op][1])
        for name in node.inputs:
            t = graph.tensors.get(name)
            if t is not None and t.data is not None and t.dtype == "float32" and name not in weights:
                ranges[name] = (float(t.data.min(initial=0.0)), float(t.data.max(initial=0.0)))
        if node.op in SHARED_QUANT:
            groups.union([y, *(node.inputs if node.op == "concat" else node.inputs[:1])])
    union: dict[str, tuple[float, float]] = {}
    group_fixed: dict[str, Quant | None] = {}
    for name, (lo, hi) in ranges.items():
        root = groups.find(name)
        old = union.get(root, (math.inf, -math.inf))
        union[root] = (min(old[0], lo), max(old[1], hi))
        if name in fixed:
            # Two different conventions in one group (concat of sigmoid and tanh): fall back to the
            # union range; the lookup-table and softmax kernels take any output quantization.
            agree = group_fixed.get(root, fixed[name]) == fixed[name]
            group_fixed[root] = fixed[name] if agree else None
    return {n: group_fixed.get(groups.find(n)) or activation_quant(*union[groups.find(n)]) for n in ranges}


def _check_float(graph: Graph) -> None:
    for node in graph.nodes():
        if node.op in ("quantize", "dequantize", "requantize"):
            raise CompileError(f"the model is already quantized (node {node.name!r} is a {node.op})")
    for t in graph.tensors.values():
        if t.dtype == "int8" and t.data is None:
            raise CompileError(f"the model is already quantized (tensor {t.name!r} is int8)")


def _rename(graph: Graph, old: str, new: str) -> None:
    for node in graph.nodes():
        node.inputs = [new if i == old else i for i in node.inputs]
        node.outputs = [new if o == old else o for o in node.outputs]


def quantize(
    graph: Graph,
    calibration: Calibration,
    method: str = "minmax",
    *,
    percentile: float = 99.99,
    io_dtype: str = "float32",
) -> Graph:
    """A new int8 graph computing `graph` (float) with ranges calibrated on `calibration`."""
    if io_dtype not in ("float32", "int8"):
        raise CompileError(f"io_dtype {io_dtype!r} must be float32 or int8")
    _check_float(graph)
    quants = assign_quants(graph, collect_ranges(graph, calibration, method, percentile))
    out = graph.copy()
    for name, q in quants.items():
        t = out.tensors[name]
        t.dtype, t.quant = "int8", q
        if t.data is not None:
            t.data = _quantize_array(t.data, q)
    for node in list(out.nodes()):
        if node.op in WEIGHTED:
            _quantize_weights(out, node, graph)
    if io_dtype == "float32":
        for name in [n for n in out.inputs if out.tensors[n].dtype == "int8"]:
            _float_input(out, name)
        for name in [n for n in out.outputs if out.tensors[n].dtype == "int8"]:
            _float_output(out, name)
    else:
        io = [out.tensors[n] for n in [*out.inputs, *out.outputs]]
        out.metadata["io_quant"] = {
            t.name: {"scale": t.quant.scalar()[0], "zero_point": t.quant.scalar()[1]} for t in io if t.quant
        }
    out.metadata["quantization"] = {"method": method, "samples": calibration.count, "source": calibration.source}
    if method == "percentile":
        out.metadata["quantization"]["percentile"] = percentile
    out.validate()
    return out


def _quantize_array(x: np.ndarray, q: Quant) -> np.ndarray:
    scale, zp = q.scalar()
    return np.clip(np.rint(x / scale) + zp, INT8_MIN, INT8_MAX).astype(np.int8)


def _quantize_weights(graph: Graph, node: Node, original: Graph) -> None:
    """int8 per-channel weights and int32 bias (from the float originals) for a conv2d/fully_connected."""
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    if w.data is None:
        raise UnsupportedError(node.name, node.op, "int8 needs constant weights")
    if w.dtype == "float32":
        w.data, w.quant = weight_quant(w.data)
        w.dtype = "int8"
    if len(node.inputs) < 3 or not node.inputs[2]:
        return
    b = graph.tensors[node.inputs[2]]
    float_b = original.tensors[b.name].data
    if float_b is None:
        raise UnsupportedError(node.name, node.op, "int8 needs a constant bias")
    assert x.quant is not None and w.quant is not None
    data, q = bias_quant(float_b, x.quant.scalar()[0], np.broadcast_to(w.quant.scale, b.shape))
    if b.dtype == "int32" and b.quant != q:  # shared with a node of another input scale: a copy of its own
        b = graph.add_tensor(Tensor(graph.unique_name(b.name), b.shape))
        node.inputs[2] = b.name
    b.dtype, b.data, b.quant = "int32", data, q


def _float_input(graph: Graph, name: str) -> None:
    """Keep input `name` float; a quantize node makes the int8 tensor the graph computes on."""
    t = graph.tensors[name]
    q = graph.add_tensor(Tensor(graph.unique_name(f"{name}_int8"), t.shape, "int8", t.quant))
    _rename(graph, name, q.name)
    t.dtype, t.quant = "float32", None
    graph.add_node(Node(graph.unique_name(f"quantize_{name}"), "quantize", [name], [q.name]))


def _float_output(graph: Graph, name: str) -> None:
    """Keep output `name` float: the int8 result is renamed and a dequantize node restores `name`."""
    t = graph.tensors[name]
    q = graph.add_tensor(Tensor(graph.unique_name(f"{name}_int8"), t.shape, "int8", t.quant))
    _rename(graph, name, q.name)
    t.dtype, t.quant = "float32", None
    graph.add_node(Node(graph.unique_name(f"dequantize_{name}"), "dequantize", [q.name], [name]))


def quantize_for_compile(
    graph: Graph,
    calibration: CalibrationSource,
    method: str = "minmax",
    *,
    io_dtype: str = "float32",
) -> Graph:
    """The CLI's entry: load and validate calibration data from a path, then quantize."""
    if isinstance(calibration, str | Path) and not str(calibration):
        raise CompileError("--quantize int8 needs --calibration PATH (.npy, .npz or a folder of images)")
    return quantize(graph, load_calibration(calibration, graph), method, io_dtype=io_dtype)
