"""Lower a planned IR graph to runtime kernel calls, as data.

Every backend (C, Rust) renders the same `KernelCall` list, so the decisions that belong to the
runtime ABI — which kernel variant runs an op, its parameter values, multipliers, lookup tables,
weight layouts, broadcast strides — are made once, here. The argument order of each call is the
order of the runtime function's parameters (runtime_c/include/tinysplit/kernels.h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from tinysplit.compiler import quant
from tinysplit.compiler.errors import CompileError, UnsupportedError
from tinysplit.compiler.ir import Graph, Node, Tensor, is_depthwise
from tinysplit.passes import weight_layout

Scalar = int | float
Value = Scalar | tuple[Scalar, ...]


@dataclass
class Array:
    dtype: str  # "int8", "int32", "float32"
    values: np.ndarray


@dataclass
class Struct:
    type: str  # ABI name without prefix: "conv_params" is ts_conv_params in C
    fields: dict[str, Value | Array]  # a tuple is a nested struct in field order; an Array a pointer


@dataclass
class Buffer:
    tensor: str


@dataclass
class BufferList:
    items: list[Buffer | Array]


@dataclass
class ElemSize:
    dtype: str


class Scratch:
    pass


class Null:
    pass


@dataclass
class RandomBytes:
    """`per_element` fresh bytes per element from the platform's CSPRNG (ts_platform_random), filled
    right before the call. Such a call is elementwise over its int argument `size` (the one after this
    argument) and its Buffers: a backend may fill a small buffer and run it in pieces, advancing every
    Buffer by the piece's start, so the device never holds random bytes for a whole tensor."""

    per_element: int


Arg = Struct | Array | Buffer | BufferList | ElemSize | Scratch | Null | RandomBytes | Scalar


@dataclass
class KernelCall:
    index: int
    node: str
    op: str
    kernel: str  # runtime function without its prefix, e.g. "conv_s8"; "" for a no-op
    args: list[Arg] = field(default_factory=list)


def lower(graph: Graph) -> list[KernelCall]:
    calls = []
    for index, node in enumerate(graph.nodes()):
        fn = _LOWERINGS.get(node.op)
        if fn is None:
            raise UnsupportedError(node.name, node.op, "no runtime kernel for this IR op")
        kernel, args = fn(graph, node)
        calls.append(KernelCall(index, node.name, node.op, kernel, args))
    return calls


def scratch_bytes(graph: Graph, node: Node) -> int:
    """Scratch a layer's kernel asks for: runtime_c's *_get_buffer_size, for the build that needs the most
    (the SIMD path on Cortex-M with DSP), so one arena fits every build of the generated code."""
    x = graph.tensors[node.inputs[0]]
    if x.dtype == "float32":
        return _scratch_bytes_f32(graph, node)
    if x.dtype != "int8":
        return 0
    if node.op == "conv2d":
        _, kh, kw, cin_g = graph.tensors[node.inputs[1]].shape
        if is_depthwise(graph, node):
            oh, ow = graph.tensors[node.outputs[0]].shape[1:3]
            sh = node.attrs.get("strides", (1, 1))[0]
            return max(8 * kh * kw, 12 * ow + 8 * ((sh * oh + 6) // 2) * (x.shape[2] + 1))
        kc = (kh * kw * cin_g + 3) & ~3  # im2col column length (ts_conv_s8's conv_scratch_layout)
        cout = graph.tensors[node.inputs[1]].shape[0]
        patch = kc if cin_g % 4 else 0
        if node.attrs.get(weight_layout.ATTR):  # per group: 44 bytes per pair of rows and 20, then a sink
            groups = int(node.attrs.get("groups", 1))
            pairs = (cout // groups + 1) // 2
            return groups * (44 * pairs + 20) + (2 * pairs + 3) // 4 * 4 + 2 * 2 * kc + patch
        return 16 * cout + 4 * 2 * kc + patch
    if node.op == "fully_connected":
        return 2 * ((graph.tensors[node.inputs[1]].shape[1] + 3) & ~3)  # the _wide variant pads depth to 4
    return 0


def _scratch_bytes_f32(graph: Graph, node: Node) -> int:
    """ts_conv_f32_get_buffer_size: the im2col rows of F32_CONV_COLS pixels, none for a 1x1 window
    without padding (read in place); ts_depthwise_conv_f32_get_buffer_size."""
    if node.op != "conv2d":
        return 0
    _, kh, kw, cin_g = graph.tensors[node.inputs[1]].shape
    if is_depthwise(graph, node):
        x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        strides, dilations = node.attrs.get("strides", (1, 1)), node.attrs.get("dilations", (1, 1))
        blocked = kh == 3 and strides[0] == 1 and tuple(dilations) == (1, 1) and y.shape[3] == x.shape[3]
        return 4 * (kw + 4) * x.shape[3] if blocked and x.shape[3] % 4 == 0 else 0
    if kh == kw == 1 and not any(node.attrs.get("pads", (0, 0, 0, 0))):
        return 0
    return F32_CONV_COLS * kh * kw * cin_g * 4


# The float32 kernels' register blocking (runtime_c/src/mat_mult_f32.h).
F32_CONV_ROWS = 4
F32_CONV_COLS = 3
F32_FC_ROWS = 8


def pack_rows_f32(w: np.ndarray, rows: int) -> np.ndarray:
    """A float32 [M, K] weight matrix in the float kernels' packed layout: blocks of `rows` rows (M
    rounded up with rows of zeros), each block stored k by k: w[b*rows + 0..rows-1][k] for k = 0..K-1."""
    m, k = w.shape
    blocks = -(-m // rows)
    padded = np.zeros((blocks * rows, k), np.float32)
    padded[:m] = w
    return padded.reshape(blocks, rows, k).transpose(0, 2, 1).reshape(-1)


def pack_depthwise_f32(w: np.ndarray) -> np.ndarray:
    """A depthwise float32 filter [KH, KW, C] in ts_depthwise_conv_f32's layout: for each kw, each block
    of 4 channels (C rounded up with zeros), each kh, the block's 4 weights."""
    kh, kw, c = w.shape
    padded = np.zeros((kh, kw, -(-c // 4) * 4), np.float32)
    padded[..., :c] = w
    return padded.reshape(kh, kw, -1, 4).transpose(1, 2, 0, 3).reshape(-1)


def pack_conv_f32(w: np.ndarray, groups: int) -> np.ndarray:
    """An OHWI float32 convolution filter in ts_conv_f32's layout: each group's rows packed by F32_CONV_ROWS."""
    cout = w.shape[0]
    per_group = w.reshape(groups, cout // groups, -1)
    return np.concatenate([pack_rows_f32(g, F32_CONV_ROWS) for g in per_group])


def pad4(shape: tuple[int, ...], what: str) -> tuple[int, int, int, int]:
    if len(shape) > 4:
        raise CompileError(f"{what}: rank {len(shape)} > 4 is not supported by the device runtime")
    a, b, c, d = [1] * (4 - len(shape)) + list(shape)
    return a, b, c, d


def broadcast_strides(shape: tuple[int, ...], out_shape: tuple[int, ...], what: str) -> tuple[int, ...]:
    dims, out = pad4(shape, what), pad4(out_shape, what)
    strides, step = [0] * 4, 1
    for d in range(3, -1, -1):
        strides[d] = step if dims[d] == out[d] else 0
        step *= dims[d]
    return tuple(strides)


# helpers ------------------------------------------------------------------------------------


def _t(graph: Graph, name: str) -> Tensor:
    return graph.tensors[name]


def _bias(graph: Graph, node: Node) -> Arg:
    if len(node.inputs) < 3:
        return Null()
    b = _t(graph, node.inputs[2])
    assert b.data is not None
    return Array(b.dtype, b.data)


def _act(node: Node, y: Tensor) -> tuple[Scalar, Scalar]:
    lo = float(node.attrs.get("act_min", -math.inf))
    hi = float(node.attrs.get("act_max", math.inf))
    if y.dtype == "int8":
        assert y.quant is not None
        return quant.activation_bounds(lo, hi, y.quant)
    return lo, hi


def _zp(t: Tensor) -> int:
    assert t.quant is not None
    return t.quant.scalar()[1]


def _scale(t: Tensor) -> float:
    assert t.quant is not None
    return t.quant.scalar()[0]


def _window(node: Node) -> dict[str, Value | Array]:
    return {
        "stride": tuple(node.attrs.get("strides", (1, 1))),
        "pad": tuple(node.attrs.get("pads", (0, 0, 0, 0))),
    }


def _dims(shape: tuple[int, ...]) -> Struct:
    n, h, w, c = pad4(shape, "dims")
    return Struct("dims", {"n": n, "h": h, "w": w, "c": c})


def _channel_quant(x: Tensor, w: Tensor, y: Tensor, channels: int) -> Struct:
    req = quant.conv_requant(x, w, y, channels)
    return Struct("channel_quant", {"multiplier": Array("int32", req.multipliers), "shift": Array("int32", req.shifts)})


# lowerings, one per IR op --------------------------------------------------------------------


def _conv2d(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, w, y = (_t(graph, n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    cout, kh, kw, _ = w.shape
    assert w.data is not None
    depthwise = is_depthwise(graph, node)
    filt = w.data.transpose(1, 2, 0, 3).reshape(kh, kw, cout) if depthwise else w.data
    filter_dims = (1, kh, kw, cout) if depthwise else w.shape
    lo, hi = _act(node, y)
    conv: dict[str, Value | Array] = {
        **_window(node),
        "dilation": tuple(node.attrs.get("dilations", (1, 1))),
        "groups": int(node.attrs.get("groups", 1)),
        "act_min": lo,
        "act_max": hi,
    }
    conv["pad"] = conv.pop("pad")
    kind = "depthwise_conv" if depthwise else "conv"
    shapes = (_dims(x.shape), Buffer(x.name), _dims(filter_dims), Array(w.dtype, filt), _bias(graph, node))
    if x.dtype == "int8":
        params = Struct("conv_params", {"input_offset": -_zp(x), "output_offset": _zp(y), **conv})
        quantization = _channel_quant(x, w, y, cout)
        if node.attrs.get(weight_layout.ATTR):
            widened = weight_layout.smlad_weights("conv2d", w.data, int(node.attrs.get("groups", 1)))
            shapes = (*shapes[:3], Array("int16", widened), shapes[4])
            kind += "_s8_wide"
        else:
            kind += "_s8"
        return kind, [params, quantization, *shapes, _dims(y.shape), Buffer(y.name), Scratch()]
    groups = int(node.attrs.get("groups", 1))
    packed = pack_depthwise_f32(filt) if depthwise else pack_conv_f32(w.data, groups)
    shapes = (shapes[0], shapes[1], shapes[2], Array(w.dtype, packed), shapes[4])
    return f"{kind}_f32", [Struct("conv_f32_params", conv), *shapes, _dims(y.shape), Buffer(y.name), Scratch()]


def _fully_connected(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, w, y = (_t(graph, n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    units, depth = w.shape
    batches = x.size // depth
    lo, hi = _act(node, y)
    assert w.data is not None
    operands: list[Arg] = [batches, depth, units, Buffer(x.name), Array(w.dtype, w.data), _bias(graph, node)]
    if x.dtype == "int8":
        params = Struct("fc_params", {"input_offset": -_zp(x), "output_offset": _zp(y), "act_min": lo, "act_max": hi})
        kernel = "fully_connected_s8"
        if node.attrs.get(weight_layout.ATTR):
            operands[4] = Array("int16", weight_layout.smlad_weights("fully_connected", w.data))
            kernel += "_wide"
        return kernel, [params, _channel_quant(x, w, y, units), *operands, Buffer(y.name), Scratch()]
    operands[4] = Array(w.dtype, pack_rows_f32(w.data, F32_FC_ROWS))
    return "fully_connected_f32", [lo, hi, *operands, Buffer(y.name)]


def _operand(t: Tensor) -> Buffer | Array:
    if t.is_constant:
        assert t.data is not None
        return Array(t.dtype, t.data)
    return Buffer(t.name)


def _elementwise(graph: Graph, node: Node, kind: str) -> tuple[str, list[Arg]]:
    a, b, y = (_t(graph, n) for n in (node.inputs[0], node.inputs[1], node.outputs[0]))
    shape: list[Arg] = [
        Array("int32", np.array(pad4(y.shape, node.name))),
        Array("int32", np.array(broadcast_strides(a.shape, y.shape, node.name))),
        Array("int32", np.array(broadcast_strides(b.shape, y.shape, node.name))),
        _operand(a),
        _operand(b),
        Buffer(y.name),
    ]
    lo, hi = _act(node, y)
    if y.dtype != "int8":
        return f"{kind}_f32", [lo, hi, *shape]
    fields: dict[str, Value | Array] = {"a_offset": -_zp(a), "b_offset": -_zp(b)}
    if kind == "add":
        p = quant.add_params(_scale(a), _scale(b), _scale(y))
        fields |= {"a_multiplier": p.a_multiplier, "a_shift": p.a_shift}
        fields |= {"b_multiplier": p.b_multiplier, "b_shift": p.b_shift}
        fields |= {"out_multiplier": p.out_multiplier, "out_shift": p.out_shift}
    else:
        m, s = quant.mul_multiplier(_scale(a), _scale(b), _scale(y))
        fields |= {"a_multiplier": 0, "a_shift": 0, "b_multiplier": 0, "b_shift": 0}
        fields |= {"out_multiplier": m, "out_shift": s}
    fields |= {"output_offset": _zp(y), "act_min": lo, "act_max": hi}
    return f"{kind}_s8", [Struct("elementwise_params", fields), *shape]


def _add(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    return _elementwise(graph, node, "add")


def _mul(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    return _elementwise(graph, node, "mul")


def _same_quant(node: Node, x: Tensor, y: Tensor) -> None:
    if x.dtype == "int8" and x.quant != y.quant:
        raise UnsupportedError(node.name, node.op, "int8 input and output must share one quantization")


def _clip(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    _same_quant(node, x, y)
    lo, hi = _act(node, y)
    suffix = "s8" if x.dtype == "int8" else "f32"
    return f"clip_{suffix}", [lo, hi, y.size, Buffer(x.name), Buffer(y.name)]


def _unary(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    if x.dtype == "int8":
        assert x.quant is not None and y.quant is not None
        table = quant.lookup_table(quant.UNARY[node.op], x.quant, y.quant)
        return "lookup_s8", [Array("int8", table), y.size, Buffer(x.name), Buffer(y.name)]
    return f"{node.op}_f32", [y.size, Buffer(x.name), Buffer(y.name)]


def _pool(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    _same_quant(node, x, y)
    lo, hi = _act(node, y)
    kind = "max" if node.op == "max_pool2d" else "avg"
    fields: dict[str, Value | Array] = {"kernel": tuple(node.attrs["kernel"]), **_window(node)}
    fields["count_include_pad"] = int(bool(node.attrs.get("count_include_pad", 0)))
    if x.dtype == "int8":
        fields["input_zero_point"] = _zp(x)
        params, suffix = Struct("pool_params", {**fields, "act_min": lo, "act_max": hi}), "s8"
    else:
        params, suffix = Struct("pool_f32_params", {**fields, "act_min": lo, "act_max": hi}), "f32"
    return f"{kind}_pool_{suffix}", [params, _dims(x.shape), Buffer(x.name), _dims(y.shape), Buffer(y.name)]


def _softmax(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    depth = x.shape[-1]
    rows = x.size // depth
    if x.dtype == "int8":
        table = Array("int32", quant.softmax_exp_table(_scale(x)))
        mult = quant.softmax_out_multiplier(_scale(y))
        return "softmax_s8", [table, mult, _zp(y), rows, depth, Buffer(x.name), Buffer(y.name)]
    return "softmax_f32", [rows, depth, Buffer(x.name), Buffer(y.name)]


def _quantize(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    return "quantize_f32_s8", [_scale(y), _zp(y), y.size, Buffer(x.name), Buffer(y.name)]


def _dequantize(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    return "dequantize_s8_f32", [_scale(x), _zp(x), y.size, Buffer(x.name), Buffer(y.name)]


def _requantize(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    m, s = quant.quantize_multiplier(_scale(x) / _scale(y))
    return "requantize_s8", [-_zp(x), m, s, _zp(y), y.size, Buffer(x.name), Buffer(y.name)]


def _reshape(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    plan = graph.metadata.get("memory")
    if plan is not None and plan.in_place.get(y.name) == x.name:
        return "", []  # shares its input's buffer: nothing moves
    return "copy", [y.nbytes, Buffer(x.name), Buffer(y.name)]


def coalesce_transpose(shape: tuple[int, ...], perm: tuple[int, ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The same data movement on fewer axes: drop size-1 axes, merge input axes that stay adjacent.

    A channel shuffle's rank-5 transpose (1,4,28,56,56) perm (0,2,1,3,4) becomes (4,28,3136) perm (1,0,2).
    """
    keep = [a for a in range(len(shape)) if shape[a] != 1]
    order = [a for a in perm if shape[a] != 1]
    runs: list[list[int]] = []
    for a in order:
        if runs and keep.index(a) == keep.index(runs[-1][-1]) + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    by_input = sorted(runs, key=lambda r: r[0])
    dims = tuple(int(np.prod([shape[a] for a in r])) for r in by_input)
    return dims, tuple(by_input.index(r) for r in runs)


def _transpose(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    shape, perm = coalesce_transpose(x.shape, tuple(node.attrs["perm"]))
    lead = 4 - len(perm)
    perm4 = list(range(lead)) + [p + lead for p in perm]
    dims = Array("int32", np.array(pad4(shape, node.name)))
    return "transpose", [ElemSize(x.dtype), dims, Array("int32", np.array(perm4)), Buffer(x.name), Buffer(y.name)]


def _concat(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    y = _t(graph, node.outputs[0])
    for name in node.inputs:
        _same_quant(node, _t(graph, name), y)
    axis = int(node.attrs["axis"]) % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    chunks = [int(np.prod(_t(graph, i).shape[axis:], dtype=np.int64)) for i in node.inputs]
    items = BufferList([_operand(_t(graph, i)) for i in node.inputs])
    return "concat", [ElemSize(y.dtype), len(chunks), items, Array("int32", np.array(chunks)), outer, Buffer(y.name)]


def _pad(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    pads = list(node.attrs["pads"])
    rank = len(x.shape)
    lead = [0] * (4 - rank)
    pads8 = lead + pads[:rank] + lead + pads[rank:]
    value = float(node.attrs.get("value", 0.0))
    if x.dtype == "int8":
        assert x.quant is not None
        fill = Array("int8", np.array([quant.quantize_constant(value, x.quant)], dtype=np.int8))
    else:
        fill = Array("float32", np.array([value], dtype=np.float32))
    dims = Array("int32", np.array(pad4(x.shape, node.name)))
    return "pad", [ElemSize(x.dtype), dims, Array("int32", np.array(pads8)), fill, Buffer(x.name), Buffer(y.name)]


def _noise(graph: Graph, node: Node) -> tuple[str, list[Arg]]:
    x, y = _t(graph, node.inputs[0]), _t(graph, node.outputs[0])
    if x.dtype != "int8":
        raise UnsupportedError(node.name, node.op, "noise runs on int8 tensors: quantize the model first")
    _same_quant(node, x, y)
    k, cdf = quant.noise_table(str(node.attrs["distribution"]), float(node.attrs["scale"]))
    params = Struct("noise_params", {"min_value": -k, "table_size": len(cdf), "cdf": Array("uint32", cdf)})
    random = RandomBytes(quant.NOISE_WORD_BYTES)
    return "noise_s8", [params, random, y.size, Buffer(x.name), Buffer(y.name)]


_LOWERINGS = {
    "conv2d": _conv2d,
    "fully_connected": _fully_connected,
    "add": _add,
    "mul": _mul,
    "clip": _clip,
    "sigmoid": _unary,
    "tanh": _unary,
    "max_pool2d": _pool,
    "avg_pool2d": _pool,
    "softmax": _softmax,
    "quantize": _quantize,
    "dequantize": _dequantize,
    "requantize": _requantize,
    "reshape": _reshape,
    "transpose": _transpose,
    "concat": _concat,
    "pad": _pad,
    "noise": _noise,
}
