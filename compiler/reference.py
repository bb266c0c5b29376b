"""The oracle: a numpy interpreter of the IR with the exact integer semantics of the device kernels.

`run(graph, feeds)` executes `graph.nodes()` in order; `run_node` executes one node. An op is int8
when its first input is int8 (weights int8 symmetric, per output channel along axis 0 or per
tensor; bias int32 with scale sx*sw), float32 otherwise. Every integer step is a quant.py helper;
the C and Rust kernels implement exactly what is written here, bit for bit.

float32 (compared with onnxruntime at 1e-4 relative): standard semantics, convs accumulated in
float64 then cast. conv2d: NHWC, weight [Cout,KH,KW,Cin/groups], pads (top,left,bottom,right).
fully_connected: x[N,K] @ w[M,K]^T + b. `act_min`/`act_max` (real units, may be +-inf, absent =
none) clamp the result of conv2d, fully_connected, add, mul, clip and the pools. max_pool2d ignores
padding; avg_pool2d divides by the window size (count_include_pad) or by the valid cells.
softmax over the last axis; pad uses constant `value` (negative pads crop).

int8 (zx, zy: zero points; (lo, hi) = quant.activation_bounds(act_min, act_max, y.quant);
requantize = quant.requantize: 32-bit left shift, high multiply rounding ties up (+2**30, as
CMSIS-NN), then a right shift rounding half away from zero):
- conv2d, fully_connected: acc = bias + sum((x - zx) * w), padded cells contribute 0;
  y = clamp(requantize(acc, m_c, s_c) + zy, lo, hi), (m_c, s_c) = quant.conv_requant per channel.
- add: a' = requantize((a - za) << 20, am, ash), b' likewise,
  y = clamp(requantize(a' + b', om, osh) + zy, lo, hi) with quant.add_params(sa, sb, sy).
- mul: y = clamp(requantize((a - za) * (b - zb), m, s) + zy, lo, hi), quant.mul_multiplier(sa, sb, sy).
  add and mul broadcast as numpy.
- clip: y = clamp(x, lo, hi) when x and y share quant, else clamp(requantize(x - zx, m, s) + zy, lo, hi)
  with quantize_multiplier(sx / sy).
- sigmoid, tanh: y = table[x + 128], table = quant.lookup_table(quant.UNARY[op], qx, qy).
- max_pool2d: clamp(max over the valid cells). avg_pool2d: sum of the stored values of the window
  (padded cells count as zx when count_include_pad, else are left out of sum and count), divided
  by the count rounding half away from zero (quant.rounding_divide), clamped. Both need x and y to
  share quant.
- softmax (last axis): d = max(row) - x in [0, 255], E = quant.softmax_exp_table(sx)[d], S = sum(E),
  y = sat(zy + quant.softmax_output(E, S, quant.softmax_out_multiplier(sy))), i.e. zy + E*mult/(S*2**16)
  rounded half up.
- requantize: y = clamp(requantize(x - zx, m, s) + zy, lo, hi), (m, s) = quantize_multiplier(sx / sy).
- reshape, transpose, concat, pad: data movement; x (every input for concat) and y must share quant.
  The pad value v (real units) becomes quant.quantize_constant(v) = sat(zy + round_half_away(v / sy)).
- slice_rows, write_rows (patch-based execution, passes/tiling.py): data movement over rows (axis 1);
  write_rows starts from zeros when it has no base.
- quantize: quant.quantize (half to even, as ONNX QuantizeLinear); dequantize: quant.dequantize.
- noise (x and y share quant): y = sat8(x + n) = quant.add_noise(x, K, cdf, random) with
  (K, cdf) = quant.noise_table(distribution, scale): element j (row-major) reads the little-endian
  uint32 u = random[4j..4j+3] and n = -K + #{i : cdf[i] <= u}. random is the ChaCha20 keystream
  (RFC 8439; key = seed as 32 little-endian bytes, 96-bit nonce 0, block counter 0) from byte
  offset * batch on (batch = x.shape[0]), what the host C harness's ts_platform_random returns for one
  inference from a fresh stream when batch is 1; seed None draws os.urandom, as a device would.
Inconsistent graphs (missing quant, quant mismatch, wrong dtypes or shapes) raise ValueError.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from tinysplit.compiler import quant as Q
from tinysplit.compiler.ir import DTYPES, Graph, Node, Quant, Tensor

OpFn = Callable[[Node, list[np.ndarray], list[Tensor], Tensor], np.ndarray]


# helpers -----------------------------------------------------------------------------------------
def _int8(t: Tensor) -> bool:
    return t.dtype == "int8"


def _quant(t: Tensor) -> Quant:
    if t.quant is None:
        raise ValueError(f"tensor {t.name!r} ({t.dtype}) has no quantization parameters")
    return t.quant


def _scalar(t: Tensor) -> tuple[float, int]:
    return _quant(t).scalar()


def _same_quant(n: Node, ts: list[Tensor], y: Tensor) -> None:
    for t in ts:
        if _quant(t) != _quant(y):
            raise ValueError(f"node {n.name!r} ({n.op}): int8 input {t.name!r} and output {y.name!r} must share quant")


def _expect(n: Node, ts: list[Tensor], dtypes: list[str]) -> None:
    for t, d in zip(ts, dtypes, strict=False):
        if t.dtype != d:
            raise ValueError(f"node {n.name!r} ({n.op}): input {t.name!r} must be {d}, got {t.dtype}")


def _act(n: Node) -> tuple[float, float]:
    lo, hi = n.attrs.get("act_min"), n.attrs.get("act_max")
    return (-math.inf if lo is None else float(lo)), (math.inf if hi is None else float(hi))


def _clamp_f(x: np.ndarray, n: Node) -> np.ndarray:
    return np.clip(x, *_act(n)).astype(np.float32)


def _clamp_q(q: np.ndarray, n: Node, y: Tensor) -> np.ndarray:
    """Saturate int8 values (zero point already added) at the fused activation's bounds."""
    return np.clip(q, *Q.activation_bounds(*_act(n), _quant(y))).astype(np.int8)


def _ints(n: Node, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v) for v in n.attrs.get(key, default))


def _windows(x: np.ndarray, kernel: tuple[int, ...], n: Node, dilations: tuple[int, ...], value: float) -> np.ndarray:
    """[N,H,W,C] -> [N,OH,OW,KH,KW,C]: the windows of x padded with `value`."""
    t, left, b, r = _ints(n, "pads", (0, 0, 0, 0))
    (sh, sw), (kh, kw), (dh, dw) = _ints(n, "strides", (1, 1)), kernel, dilations
    x = np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)), constant_values=value)
    oh, ow = (x.shape[1] - dh * (kh - 1) - 1) // sh + 1, (x.shape[2] - dw * (kw - 1) - 1) // sw + 1
    ih = (np.arange(oh) * sh)[:, None, None, None] + (np.arange(kh) * dh)[None, None, :, None]
    iw = (np.arange(ow) * sw)[None, :, None, None] + (np.arange(kw) * dw)[None, None, None, :]
    return x[:, ih, iw, :]


def _conv(x: np.ndarray, w: np.ndarray, n: Node) -> np.ndarray:
    g = int(n.attrs.get("groups", 1))
    o, kh, kw, cg = w.shape
    if x.shape[3] != g * cg or o % g:
        raise ValueError(f"node {n.name!r}: input channels {x.shape[3]}, weight {w.shape} and groups {g} disagree")
    p = _windows(x, (kh, kw), n, _ints(n, "dilations", (1, 1)), 0)
    p = p.reshape(*p.shape[:5], g, cg)
    y = np.einsum("nhwijgc,goijc->nhwgo", p, w.reshape(g, o // g, kh, kw, cg))
    return y.reshape(*y.shape[:3], o)


def _requant_channels(acc: np.ndarray, n: Node, ts: list[Tensor], y: Tensor) -> np.ndarray:
    """int8 conv2d/fully_connected epilogue: per-channel requantize (channels last), + zy, clamp."""
    _expect(n, ts, ["int8", "int8", "int32"])
    if np.any(_quant(ts[1]).zero_point != 0):
        raise ValueError(f"node {n.name!r}: int8 weights {ts[1].name!r} must be symmetric (zero point 0)")
    rq = Q.conv_requant(ts[0], ts[1], y, acc.shape[-1])
    return _clamp_q(Q.requantize(acc, rq.multipliers, rq.shifts) + _scalar(y)[1], n, y)


# ops ---------------------------------------------------------------------------------------------
def conv2d(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    x, w = xs[0], xs[1]
    if not _int8(ts[0]):
        acc = _conv(x.astype(np.float64), w.astype(np.float64), n)
        return _clamp_f(acc + xs[2] if len(xs) > 2 else acc, n)
    acc = _conv(x.astype(np.int64) - _scalar(ts[0])[1], w.astype(np.int64), n)
    return _requant_channels(acc + xs[2] if len(xs) > 2 else acc, n, ts, y)


def fully_connected(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    x, w = xs[0], xs[1]
    if not _int8(ts[0]):
        accf = x.astype(np.float64) @ w.astype(np.float64).T
        return _clamp_f(accf + xs[2] if len(xs) > 2 else accf, n)
    acc = (x.astype(np.int64) - _scalar(ts[0])[1]) @ w.astype(np.int64).T
    return _requant_channels(acc + xs[2] if len(xs) > 2 else acc, n, ts, y)


def add(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    a, b = xs
    if not _int8(ts[0]):
        return _clamp_f(a + b, n)
    _expect(n, ts, ["int8", "int8"])
    (sa, za), (sb, zb), (sy, zy) = _scalar(ts[0]), _scalar(ts[1]), _scalar(y)
    p = Q.add_params(sa, sb, sy)
    a2 = Q.requantize((a.astype(np.int64) - za) << Q.ADD_LEFT_SHIFT, p.a_multiplier, p.a_shift)
    b2 = Q.requantize((b.astype(np.int64) - zb) << Q.ADD_LEFT_SHIFT, p.b_multiplier, p.b_shift)
    return _clamp_q(Q.requantize(a2 + b2, p.out_multiplier, p.out_shift) + zy, n, y)


def mul(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    a, b = xs
    if not _int8(ts[0]):
        return _clamp_f(a * b, n)
    _expect(n, ts, ["int8", "int8"])
    (sa, za), (sb, zb), (sy, zy) = _scalar(ts[0]), _scalar(ts[1]), _scalar(y)
    prod = (a.astype(np.int64) - za) * (b.astype(np.int64) - zb)
    return _clamp_q(Q.requantize(prod, *Q.mul_multiplier(sa, sb, sy)) + zy, n, y)


def clip(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if not _int8(ts[0]):
        return _clamp_f(xs[0], n)
    if _quant(ts[0]) == _quant(y):
        return _clamp_q(xs[0], n, y)
    return requantize(n, xs, ts, y)


def _lookup(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if not _int8(ts[0]):
        return Q.UNARY[n.op](xs[0]).astype(np.float32)
    table = Q.lookup_table(Q.UNARY[n.op], _quant(ts[0]), _quant(y))
    return table[xs[0].astype(np.int64) + 128]


def max_pool2d(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    k = _ints(n, "kernel", ())
    if not _int8(ts[0]):
        return _clamp_f(_windows(xs[0], k, n, (1, 1), -np.inf).max(axis=(3, 4)), n)
    _same_quant(n, ts, y)
    return _clamp_q(_windows(xs[0], k, n, (1, 1), Q.INT8_MIN).max(axis=(3, 4)), n, y)


def avg_pool2d(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    k, include = _ints(n, "kernel", ()), bool(n.attrs.get("count_include_pad", False))
    cells = np.ones((1, *xs[0].shape[1:3], 1), dtype=np.int64)
    count = k[0] * k[1] if include else _windows(cells, k, n, (1, 1), 0).sum(axis=(3, 4))
    if not _int8(ts[0]):
        return _clamp_f(_windows(xs[0].astype(np.float64), k, n, (1, 1), 0.0).sum(axis=(3, 4)) / count, n)
    _same_quant(n, ts, y)
    pad = _scalar(ts[0])[1] if include else 0
    total = _windows(xs[0].astype(np.int64), k, n, (1, 1), pad).sum(axis=(3, 4))
    return _clamp_q(Q.rounding_divide(total, count), n, y)


def reshape(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if _int8(ts[0]):
        _same_quant(n, ts, y)
    return xs[0].reshape(y.shape)


def transpose(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if _int8(ts[0]):
        _same_quant(n, ts, y)
    return xs[0].transpose(_ints(n, "perm", tuple(reversed(range(xs[0].ndim)))))


def concat(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if _int8(ts[0]):
        _same_quant(n, ts, y)
    return np.concatenate(xs, axis=int(n.attrs["axis"]))


def pad(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    x, pads = xs[0], _ints(n, "pads", ())
    value: float = float(n.attrs.get("value", 0.0))
    if _int8(ts[0]):
        _same_quant(n, ts, y)
        value = Q.quantize_constant(value, _quant(y))
    begins, ends = pads[: x.ndim], pads[x.ndim :]
    out = np.pad(x, [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends, strict=True)], constant_values=value)
    crop = tuple(slice(max(-b, 0), d - max(-e, 0)) for b, e, d in zip(begins, ends, out.shape, strict=True))
    return out[crop]


def slice_rows(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if _int8(ts[0]):
        _same_quant(n, ts, y)
    begin = int(n.attrs["begin"])
    return xs[0][:, begin : begin + y.shape[1]]


def write_rows(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    if _int8(ts[-1]):
        _same_quant(n, ts, y)
    out = xs[0].copy() if len(xs) == 2 else np.zeros(y.shape, dtype=DTYPES[y.dtype])
    begin = int(n.attrs["begin"])
    out[:, begin : begin + xs[-1].shape[1]] = xs[-1]
    return out


def softmax(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    x = xs[0]
    if not _int8(ts[0]):
        e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
        return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
    (sx, _), (sy, zy) = _scalar(ts[0]), _scalar(y)
    mult = Q.softmax_out_multiplier(sy)
    if mult >= 1 << 31:
        raise ValueError(f"node {n.name!r}: output scale {sy} too small for softmax (multiplier exceeds int32)")
    e = Q.softmax_exp_table(sx).astype(np.int64)[x.max(axis=-1, keepdims=True).astype(np.int64) - x]
    return np.clip(zy + Q.softmax_output(e, e.sum(axis=-1, keepdims=True), mult), Q.INT8_MIN, Q.INT8_MAX).astype(
        np.int8
    )


def quantize(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    return Q.quantize(xs[0], _quant(y))


def dequantize(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    _expect(n, ts, ["int8"])
    return Q.dequantize(xs[0], _quant(ts[0]))


def requantize(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    _expect(n, ts, ["int8"])
    (sx, zx), (sy, zy) = _scalar(ts[0]), _scalar(y)
    return _clamp_q(Q.requantize(xs[0].astype(np.int64) - zx, *Q.quantize_multiplier(sx / sy)) + zy, n, y)


def noise_keystream(seed: int, offset: int, size: int) -> bytes:
    """`size` bytes of the ChaCha20 keystream (RFC 8439) keyed by `seed`, from byte `offset` on."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"noise seed {seed} outside [0, 2**64)")
    block, skip = divmod(offset, 64)
    nonce = block.to_bytes(4, "little") + bytes(12)  # cryptography's 16-byte nonce: counter, then nonce
    stream = Cipher(algorithms.ChaCha20(seed.to_bytes(32, "little"), nonce), mode=None).encryptor()
    return stream.update(bytes(skip + size))[skip:]


def noise(n: Node, xs: list[np.ndarray], ts: list[Tensor], y: Tensor) -> np.ndarray:
    _expect(n, ts, ["int8"])
    _same_quant(n, ts, y)
    x = xs[0]
    k, cdf = Q.noise_table(str(n.attrs["distribution"]), float(n.attrs["scale"]))
    size = Q.NOISE_WORD_BYTES * x.size
    seed = n.attrs.get("seed")
    if seed is None:
        random = os.urandom(size)
    else:
        random = noise_keystream(int(seed), int(n.attrs.get("offset", 0)) * (x.shape[0] if x.ndim else 1), size)
    return Q.add_noise(x, k, cdf, random)


OP_FUNCS: dict[str, OpFn] = {
    "conv2d": conv2d,
    "fully_connected": fully_connected,
    "add": add,
    "mul": mul,
    "clip": clip,
    "sigmoid": _lookup,
    "tanh": _lookup,
    "max_pool2d": max_pool2d,
    "avg_pool2d": avg_pool2d,
    "reshape": reshape,
    "transpose": transpose,
    "concat": concat,
    "pad": pad,
    "slice_rows": slice_rows,
    "write_rows": write_rows,
    "softmax": softmax,
    "quantize": quantize,
    "dequantize": dequantize,
    "requantize": requantize,
    "noise": noise,
}


# interpreter -------------------------------------------------------------------------------------
def _describe(dtype: npt.DTypeLike, shape: tuple[int, ...]) -> str:
    return f"{np.dtype(dtype).name}[{', '.join(map(str, shape))}]"


def run_node(graph: Graph, node: Node, values: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Execute one node; inputs come from `values`, else from the graph's constants."""
    fn = OP_FUNCS.get(node.op)
    if fn is None:
        raise ValueError(f"node {node.name!r}: no reference implementation for op {node.op!r}")
    names = [i for i in node.inputs if i]  # "" marks an absent optional input
    xs: list[np.ndarray] = []
    for name in names:
        v = values.get(name, graph.tensors[name].data if name in graph.tensors else None)
        if v is None:
            raise ValueError(f"node {node.name!r} ({node.op}): input {name!r} has no value")
        xs.append(v)
    y = graph.tensors[node.outputs[0]]
    out = fn(node, xs, [graph.tensors[i] for i in names], y)
    if out.shape != tuple(y.shape) or out.dtype != DTYPES[y.dtype]:
        raise ValueError(
            f"node {node.name!r} ({node.op}) computed {_describe(out.dtype, out.shape)} "
            f"but output {y.name!r} is declared {_describe(DTYPES[y.dtype], tuple(y.shape))}"
        )
    return [out]


def run(graph: Graph, feeds: dict[str, np.ndarray], *, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute the graph; return its outputs by name (every tensor's value when keep_all)."""
    unknown = sorted(set(feeds) - set(graph.inputs))
    if unknown:
        raise ValueError(f"feeds {unknown} are not graph inputs (inputs: {graph.inputs})")
    values = {t.name: t.data for t in graph.tensors.values() if t.data is not None}
    for name in graph.inputs:
        if name not in feeds:
            raise ValueError(f"missing feed for graph input {name!r}")
        t, v = graph.tensors[name], np.asarray(feeds[name])
        if v.shape != tuple(t.shape) or v.dtype != DTYPES[t.dtype]:
            raise ValueError(
                f"feed {name!r} is {_describe(v.dtype, v.shape)}, expected {_describe(DTYPES[t.dtype], tuple(t.shape))}"
            )
        values[name] = v
    for node in graph.nodes():
        values.update(zip(node.outputs, run_node(graph, node, values), strict=True))
    missing = [t for t in graph.outputs if t not in values]
    if missing:
        raise ValueError(f"graph outputs {missing} were never produced")
    return dict(values) if keep_all else {t: values[t] for t in graph.outputs}
