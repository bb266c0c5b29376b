"""The C kernels (runtime_c/src) against the Python reference (compiler/reference.py).

Every int8 kernel must agree bit for bit, float32 kernels within 1e-5 relative. Each case builds a
one-node IR graph, runs the reference on it, derives the kernel parameters exactly as a backend
would (quant.py helpers), and calls the kernel in two host builds of the runtime (tests/c_runtime.py):
the portable C paths and the Cortex-M4 DSP paths with the SIMD instructions modelled in C. The
runtime must also cross-compile cleanly for Cortex-M4 (DSP) and Cortex-M0+ (no DSP).
"""

from __future__ import annotations

import ctypes
import hashlib
import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import c_runtime as crt
import numpy as np
import pytest

from tinysplit.backends.lower import scratch_bytes
from tinysplit.compiler import quant as Q
from tinysplit.compiler import reference
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor, is_depthwise
from tinysplit.passes.weight_layout import ATTR, smlad_weights

INF = math.inf
Act = tuple[float, float] | None  # fused activation in real units, None = none


@pytest.fixture(scope="module")
def runtimes() -> list[crt.CRuntime]:
    return [crt.load(v) for v in crt.VARIANTS]


def rng(*key: object) -> np.random.Generator:
    """A generator seeded by the case, so every case is reproducible on its own (and across runs)."""
    return np.random.default_rng(int.from_bytes(hashlib.sha256(repr(key).encode()).digest()[:8], "little"))


def qt(scale: float, zero_point: int) -> Quant:
    return Quant(np.array([scale], np.float32), np.array([zero_point], np.int32))


def i8(r: np.random.Generator, shape: Sequence[int], lo: int = -128, hi: int = 127) -> np.ndarray:
    return r.integers(lo, hi + 1, size=tuple(shape)).astype(np.int8)


def one_node(op: str, inputs: Sequence[Tensor], y: Tensor, attrs: dict[str, Any], act: Act = None) -> Graph:
    g = Graph(op)
    for t in [*inputs, y]:
        g.add_tensor(t)
    g.inputs = [t.name for t in inputs if not t.is_constant]
    g.outputs = [y.name]
    attrs = dict(attrs)
    if act is not None:
        attrs.update(act_min=act[0], act_max=act[1])
    g.add_node(Node("n0", op, [t.name for t in inputs], [y.name], attrs))
    return g


def run_ref(g: Graph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return reference.run(g, feeds)[g.outputs[0]]


def bounds(act: Act, q: Quant) -> tuple[int, int]:
    return Q.activation_bounds(-INF, INF, q) if act is None else Q.activation_bounds(act[0], act[1], q)


def fbounds(act: Act) -> tuple[float, float]:
    return (-INF, INF) if act is None else act


def assert_same(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype, f"{what}: {got.shape} {got.dtype} vs {want.shape}"
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        first = tuple(int(i) for i in bad[0])
        raise AssertionError(
            f"{what}: {len(bad)}/{want.size} values differ, first at {first}: C {got[first]} vs reference {want[first]}"
        )
    # a case whose output is all one value checks little: demand some spread
    assert want.size < 8 or len(np.unique(want)) > 1, f"{what}: degenerate case, output constant"


def assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    scale = float(np.max(np.abs(want))) if want.size else 0.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * max(scale, 1e-30), err_msg=what)


def out_hw(size: int, k: int, stride: int, dil: int, pad_a: int, pad_b: int) -> int:
    return (size + pad_a + pad_b - dil * (k - 1) - 1) // stride + 1


# -------------------------------------------------------------------------------------------------
# convolution


@dataclass(frozen=True)
class ConvCase:
    id: str
    x: tuple[int, int, int, int]  # N, H, W, Cin
    cout: int
    k: tuple[int, int]
    strides: tuple[int, int] = (1, 1)
    dilations: tuple[int, int] = (1, 1)
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, left, bottom, right
    groups: int = 1
    bias: bool = True
    act: Act = None
    tiny: bool = False  # small operands and a real multiplier > 1: exercises the left shift

    def out_shape(self) -> tuple[int, int, int, int]:
        n, h, w, _ = self.x
        t, left, b, r = self.pads
        oh = out_hw(h, self.k[0], self.strides[0], self.dilations[0], t, b)
        ow = out_hw(w, self.k[1], self.strides[1], self.dilations[1], left, r)
        return n, oh, ow, self.cout

    def attrs(self) -> dict[str, Any]:
        return dict(strides=self.strides, dilations=self.dilations, pads=self.pads, groups=self.groups)


CONV_CASES = [
    ConvCase("1x1", (1, 5, 5, 8), 16, (1, 1)),
    ConvCase("1x1_odd", (1, 3, 4, 7), 5, (1, 1), act=(0.0, INF)),
    ConvCase("3x3_cin3", (1, 6, 6, 3), 8, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("3x3_s2_asym", (1, 7, 7, 4), 6, (3, 3), strides=(2, 2), pads=(0, 0, 1, 1), act=(0.0, 6.0)),
    ConvCase("3x3_dil2", (1, 8, 8, 4), 4, (3, 3), dilations=(2, 2), pads=(2, 2, 2, 2)),
    ConvCase("5x3_cin1", (1, 9, 7, 1), 3, (5, 3), strides=(2, 1), pads=(2, 1, 2, 1)),
    ConvCase("groups2", (1, 5, 5, 8), 6, (3, 3), pads=(1, 1, 1, 1), groups=2),
    ConvCase("groups3_cg3", (1, 4, 4, 9), 9, (3, 3), pads=(1, 0, 1, 2), groups=3),
    ConvCase("groups_depthwise", (1, 5, 5, 4), 8, (3, 3), pads=(1, 1, 1, 1), groups=4),
    ConvCase("batch2_odd_pixels", (2, 4, 4, 5), 3, (2, 2)),
    ConvCase("k288", (1, 4, 4, 32), 10, (3, 3), pads=(1, 1, 1, 1), act=(-1.0, 1.0)),
    ConvCase("kernel_over_input", (1, 2, 2, 4), 4, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("no_bias", (1, 4, 5, 6), 7, (2, 3), strides=(1, 2), bias=False),
    ConvCase("cout1_cin2", (1, 5, 5, 2), 1, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("wide_1row", (1, 1, 13, 12), 9, (1, 3), pads=(0, 1, 0, 1)),
    ConvCase("left_shift", (1, 4, 4, 4), 6, (3, 3), pads=(1, 1, 1, 1), tiny=True),
    ConvCase("cin16_s2", (1, 8, 8, 16), 24, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1), act=(0.0, INF)),
    # the pre-widened kernel's dot loop: one pass of exactly 16 groups, then 17 (two passes)
    ConvCase("k64_one_pass", (1, 3, 3, 64), 6, (1, 1)),
    ConvCase("k68_two_passes", (2, 3, 1, 68), 5, (1, 1), act=(0.0, INF)),
]


@dataclass
class QConv:
    """An int8 conv2d node with random data, its reference output, and the C parameters."""

    graph: Graph
    feeds: dict[str, np.ndarray]
    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray | None
    multiplier: np.ndarray
    shift: np.ndarray
    params: crt.ConvParams


def make_qconv(c: ConvCase) -> QConv:
    r = rng("conv", c)
    cin = c.x[3]
    cg = cin // c.groups
    kdepth = c.k[0] * c.k[1] * cg
    sx, zx = float(r.uniform(0.01, 0.05)), int(r.integers(-128, 128))
    sw = r.uniform(0.002, 0.02, c.cout).astype(np.float32)
    if c.tiny:
        x = (zx + r.integers(-2, 3, size=c.x)).clip(-128, 127).astype(np.int8)
        wq = i8(r, (c.cout, *c.k, cg), -3, 3)
        bias = r.integers(-20, 20, c.cout).astype(np.int32) if c.bias else None
        sy = sx * float(np.mean(sw)) / 3.0
    else:
        x = i8(r, c.x)
        wq = i8(r, (c.cout, *c.k, cg), -127, 127)
        bias = r.integers(-30000, 30000, c.cout).astype(np.int32) if c.bias else None
        sy = sx * float(np.mean(sw)) * 5400 * math.sqrt(kdepth) / 40 * float(r.uniform(0.6, 1.5))
    zy = int(r.integers(-20, 21))
    xt = Tensor("x", c.x, "int8", qt(sx, zx))
    wt = Tensor("w", wq.shape, "int8", Quant(sw, np.zeros(c.cout, np.int32), 0), data=wq)
    ins = [xt, wt]
    if bias is not None:
        bs = (np.float32(sx) * sw).astype(np.float32)
        ins.append(Tensor("b", bias.shape, "int32", Quant(bs, np.zeros(c.cout, np.int32), 0), data=bias))
    yt = Tensor("y", c.out_shape(), "int8", qt(sy, zy))
    g = one_node("conv2d", ins, yt, c.attrs(), c.act)
    rq = Q.conv_requant(xt, wt, yt, c.cout)
    lo, hi = bounds(c.act, yt.quant)
    t, left, b, rr = c.pads
    params = crt.ConvParams(
        -zx,
        zy,
        crt.HW(*c.strides),
        crt.HW(*c.dilations),
        crt.Padding(t, left, b, rr),
        c.groups,
        lo,
        hi,
    )
    return QConv(g, {"x": x}, x, wq, bias, rq.multipliers, rq.shifts, params)


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_conv_s8(case: ConvCase, runtimes: list[crt.CRuntime]) -> None:
    q = make_qconv(case)
    want = run_ref(q.graph, q.feeds)
    for rt in runtimes:
        got = rt.conv_s8(q.x, q.w, q.bias, q.multiplier, q.shift, q.params, case.out_shape())
        assert_same(got, want, f"ts_conv_s8 [{rt.variant}]")
        got = rt.conv_s8(q.x, q.w, q.bias, q.multiplier, q.shift, q.params, case.out_shape(), wide=True)
        assert_same(got, want, f"ts_conv_s8_wide [{rt.variant}]")


DW_CASES = [  # x, multiplier, kernel, strides, dilations, pads
    ConvCase("3x3_c8", (1, 6, 6, 8), 8, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("3x3_s2_c16", (1, 7, 7, 16), 16, (3, 3), strides=(2, 2), pads=(0, 0, 1, 1), act=(0.0, 6.0)),
    ConvCase("c7_tail", (1, 5, 5, 7), 7, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("c3", (1, 5, 6, 3), 3, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("mult2", (1, 6, 6, 4), 8, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("mult3_odd", (2, 4, 5, 3), 9, (2, 3), strides=(1, 2), pads=(1, 0, 0, 2)),
    ConvCase("5x5_dil2", (1, 8, 8, 12), 12, (5, 5), dilations=(2, 2), pads=(4, 4, 4, 4)),
    ConvCase("3x3_dil21_c8", (1, 9, 8, 8), 8, (3, 3), dilations=(2, 1), pads=(2, 1, 1, 0)),
    ConvCase("kernel_over_input", (1, 3, 3, 8), 8, (5, 5), pads=(2, 2, 2, 2)),
    ConvCase("1x1", (1, 3, 3, 16), 16, (1, 1), bias=False),
    ConvCase("batch2_c20", (2, 5, 4, 20), 20, (3, 3), strides=(2, 1), pads=(1, 1, 1, 1)),
    ConvCase("left_shift", (1, 4, 4, 8), 8, (3, 3), pads=(1, 1, 1, 1), tiny=True),
]


@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c.id)
def test_depthwise_conv_s8(case: ConvCase, runtimes: list[crt.CRuntime]) -> None:
    case = ConvCase(**{**case.__dict__, "groups": case.x[3]})
    q = make_qconv(case)
    want = run_ref(q.graph, q.feeds)
    w_hwc = q.w[..., 0].transpose(1, 2, 0)  # [Cout, KH, KW, 1] -> [KH, KW, Cout]
    for rt in runtimes:
        got = rt.conv_s8(q.x, w_hwc, q.bias, q.multiplier, q.shift, q.params, case.out_shape(), depthwise=True)
        assert_same(got, want, f"ts_depthwise_conv_s8 [{rt.variant}]")
        # the general kernel with groups == Cin computes the same
        got = rt.conv_s8(q.x, q.w, q.bias, q.multiplier, q.shift, q.params, case.out_shape())
        assert_same(got, want, f"ts_conv_s8 groups=Cin [{rt.variant}]")


FC_CASES = [(1, 16, 10), (1, 7, 3), (2, 32, 5), (3, 13, 8), (5, 64, 17), (1, 1, 1), (4, 100, 4), (2, 6, 9)]


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("shape", FC_CASES, ids=lambda s: "x".join(map(str, s)))
def test_fully_connected_s8(shape: tuple[int, int, int], bias: bool, runtimes: list[crt.CRuntime]) -> None:
    batches, depth, units = shape
    r = rng("fc", shape, bias)
    sx, zx = float(r.uniform(0.01, 0.05)), int(r.integers(-128, 128))
    sw = r.uniform(0.002, 0.02, units).astype(np.float32)
    sy = sx * float(np.mean(sw)) * 5400 * math.sqrt(depth) / 40
    zy = int(r.integers(-20, 21))
    x, w = i8(r, (batches, depth)), i8(r, (units, depth), -127, 127)
    b = r.integers(-30000, 30000, units).astype(np.int32) if bias else None
    act: Act = (0.0, INF) if units % 2 else None
    xt = Tensor("x", x.shape, "int8", qt(sx, zx))
    wt = Tensor("w", w.shape, "int8", Quant(sw, np.zeros(units, np.int32), 0), data=w)
    ins = [xt, wt] + ([Tensor("b", (units,), "int32", None, data=b)] if b is not None else [])
    yt = Tensor("y", (batches, units), "int8", qt(sy, zy))
    want = run_ref(one_node("fully_connected", ins, yt, {}, act), {"x": x})
    rq = Q.conv_requant(xt, wt, yt, units)
    params = crt.FcParams(-zx, zy, *bounds(act, yt.quant))
    for rt in runtimes:
        got = rt.fully_connected_s8(x, w, b, rq.multipliers, rq.shifts, params)
        assert_same(got, want, f"ts_fully_connected_s8 [{rt.variant}]")
        got = rt.fully_connected_s8(x, w, b, rq.multipliers, rq.shifts, params, wide=True)
        assert_same(got, want, f"ts_fully_connected_s8_wide [{rt.variant}]")


@dataclass
class RequantCase:
    """A depth-1 fully connected layer whose units sweep every shift and edge multipliers, with
    accumulators (bias + (x + offset) * w) from -2^31 to 2^31 and around 0: the requantization
    itself, checked against quant.requantize directly."""

    x: np.ndarray
    w: np.ndarray
    bias: np.ndarray
    multiplier: np.ndarray
    shift: np.ndarray
    input_offset: int
    output_offset: int
    want: np.ndarray


def requant_case() -> RequantCase:
    r = rng("requant extremes")
    mults = [0, 1 << 30, (1 << 30) + 1, 1518500250, (1 << 31) - 1]
    pairs = [(m, s) for s in range(-31, 31) for m in mults]
    units = len(pairs)
    multiplier = np.array([p[0] for p in pairs], np.int32)
    shift = np.array([p[1] for p in pairs], np.int32)
    edge = [-(2**31) + 40000, 2**31 - 40000, 0, -1, 1, -(2**30), 2**30, -12345, 777]
    bias = np.array([edge[u % len(edge)] if u % 3 else int(r.integers(-(2**31) + 40000, 2**31 - 40000))
                     for u in range(units)], np.int64)  # fmt: skip
    x = np.arange(-128, 128, 9, dtype=np.int8).reshape(-1, 1)  # batches of depth 1
    w = r.integers(-128, 128, (units, 1)).astype(np.int8)
    w[:4, 0] = [-128, 127, 1, -1]
    input_offset, output_offset = 3, -5
    acc = bias[None, :] + (x.astype(np.int64) + input_offset) * w[:, 0].astype(np.int64)[None, :]
    assert np.all(np.abs(acc) < 2**31)
    want = np.clip(Q.requantize(acc, multiplier, shift) + output_offset, -128, 127).astype(np.int8)
    return RequantCase(x, w, bias.astype(np.int32), multiplier, shift, input_offset, output_offset, want)


def test_requantize_extremes(runtimes: list[crt.CRuntime]) -> None:
    c = requant_case()
    params = crt.FcParams(c.input_offset, c.output_offset, -128, 127)
    for rt in runtimes:
        got = rt.fully_connected_s8(c.x, c.w, c.bias, c.multiplier, c.shift, params)
        assert_same(got, c.want, f"requantization [{rt.variant}]")


# -------------------------------------------------------------------------------------------------
# elementwise

BROADCASTS = [
    ((2, 3, 4, 5), (2, 3, 4, 5)),
    ((1, 4, 4, 8), (1, 1, 1, 8)),
    ((1, 4, 4, 8), (1,)),
    ((3, 1, 5), (1, 4, 1)),
    ((7,), (7,)),
    ((2, 3), (3,)),
    ((2, 1, 4), (1, 2, 3, 4)),
    ((5,), ()),
    ((1, 1, 1, 9), (2, 3, 1, 9)),
    ((1, 16, 16, 8), (1, 16, 16, 8)),  # >= 1024 elements: ts_add_s8's tabulated path
    ((2, 8, 8, 16), (16,)),
]


def _shape_id(s: tuple[tuple[int, ...], tuple[int, ...]]) -> str:
    return "_".join("x".join(map(str, p)) or "scalar" for p in s)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shapes", BROADCASTS, ids=_shape_id)
def test_binary_s8(op: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], runtimes: list[crt.CRuntime]) -> None:
    sa_shape, sb_shape = shapes
    r = rng(op, shapes)
    out_shape = np.broadcast_shapes(sa_shape, sb_shape)
    qa = qt(float(r.uniform(0.01, 0.1)), int(r.integers(-128, 128)))
    qb = qt(float(r.uniform(0.01, 0.1)), int(r.integers(-128, 128)))
    (sa, za), (sb, zb) = qa.scalar(), qb.scalar()
    sy = (sa * 128 + sb * 128) / 128 if op == "add" else sa * sb * 128 * 128 / 200
    qy = qt(sy * float(r.uniform(0.7, 1.3)), int(r.integers(-30, 31)))
    act: Act = (0.0, INF) if len(out_shape) % 2 else None
    a, b = i8(r, sa_shape), i8(r, sb_shape)
    ins = [Tensor("a", sa_shape, "int8", qa), Tensor("b", sb_shape, "int8", qb)]
    yt = Tensor("y", out_shape, "int8", qy)
    want = run_ref(one_node(op, ins, yt, {}, act), {"a": a, "b": b})
    lo, hi = bounds(act, qy)
    (syf, zy) = qy.scalar()
    if op == "add":
        p = Q.add_params(sa, sb, syf)
        params = crt.ElementwiseParams(
            -za, -zb, p.a_multiplier, p.a_shift, p.b_multiplier, p.b_shift, p.out_multiplier, p.out_shift, zy, lo, hi
        )
    else:
        m, s = Q.mul_multiplier(sa, sb, syf)
        params = crt.ElementwiseParams(-za, -zb, 0, 0, 0, 0, m, s, zy, lo, hi)
    for rt in runtimes:
        fn = rt.add_s8 if op == "add" else rt.mul_s8
        assert_same(fn(params, a, b, out_shape), want, f"ts_{op}_s8 [{rt.variant}]")


@pytest.mark.parametrize("op", ["sigmoid", "tanh"])
@pytest.mark.parametrize("quant", [(0.05, 0, 1 / 256, -128), (0.1, 30, 1 / 128, 0), (0.02, -100, 0.004, -10)])
def test_lookup_s8(op: str, quant: tuple[float, int, float, int], runtimes: list[crt.CRuntime]) -> None:
    qx, qy = qt(quant[0], quant[1]), qt(quant[2], quant[3])
    x = np.arange(-128, 128, dtype=np.int8).reshape(4, 8, 8)
    want = run_ref(one_node(op, [Tensor("x", x.shape, "int8", qx)], Tensor("y", x.shape, "int8", qy), {}), {"x": x})
    table = Q.lookup_table(Q.UNARY[op], qx, qy)
    for rt in runtimes:
        assert_same(rt.lookup_s8(table, x), want, f"ts_lookup_s8 {op} [{rt.variant}]")


@pytest.mark.parametrize(
    "case",
    [
        # (x quant, y quant, act): same quant -> ts_clip_s8; else ts_requantize_s8 (+ ts_clip_s8)
        ((0.05, 3), (0.05, 3), (0.0, 6.0)),
        ((0.05, -128), (0.05, -128), (0.0, INF)),
        ((0.05, 3), (0.05, 3), (-1.0, 1.0)),
        ((0.05, 3), (0.08, -7), (0.0, 6.0)),
        ((0.02, 10), (0.011, -5), None),
        ((0.3, -20), (0.02, 5), None),  # multiplier > 1: left shift
        ((0.013, 0), (0.0131, 1), (-INF, 1.0)),
    ],
    ids=lambda c: f"{c[0]}_{c[1]}_{c[2]}",
)
def test_clip_requantize_s8(case: tuple[Any, Any, Act], runtimes: list[crt.CRuntime]) -> None:
    (sx, zx), (sy, zy), act = case
    qx, qy = qt(sx, zx), qt(sy, zy)
    x = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    op = "clip" if act is not None else "requantize"
    want = run_ref(
        one_node(op, [Tensor("x", x.shape, "int8", qx)], Tensor("y", x.shape, "int8", qy), {}, act), {"x": x}
    )
    lo, hi = bounds(act, qy)
    for rt in runtimes:
        if qx == qy:
            got = rt.clip_s8(lo, hi, x)
        else:
            m, s = Q.quantize_multiplier(float(qx.scale[0]) / float(qy.scale[0]))
            got = rt.requantize_s8(-zx, m, s, zy, x)
            if act is not None:
                got = rt.clip_s8(lo, hi, got)
        assert_same(got, want, f"{op} [{rt.variant}]")


# -------------------------------------------------------------------------------------------------
# pooling, softmax


@dataclass(frozen=True)
class PoolCase:
    id: str
    x: tuple[int, int, int, int]
    kernel: tuple[int, int]
    strides: tuple[int, int]
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    count_include_pad: bool = False
    act: Act = None

    def out_shape(self) -> tuple[int, int, int, int]:
        n, h, w, c = self.x
        t, left, b, r = self.pads
        return (
            n,
            out_hw(h, self.kernel[0], self.strides[0], 1, t, b),
            out_hw(w, self.kernel[1], self.strides[1], 1, left, r),
            c,
        )

    def attrs(self, op: str) -> dict[str, Any]:
        a: dict[str, Any] = dict(kernel=self.kernel, strides=self.strides, pads=self.pads)
        if op == "avg_pool2d":
            a["count_include_pad"] = int(self.count_include_pad)
        return a


POOL_CASES = [
    PoolCase("2x2_s2", (1, 6, 6, 4), (2, 2), (2, 2)),
    PoolCase("3x3_s2_pad", (1, 7, 7, 3), (3, 3), (2, 2), (1, 1, 1, 1)),
    PoolCase("3x3_s1_pad_incl", (2, 5, 5, 5), (3, 3), (1, 1), (1, 1, 1, 1), count_include_pad=True),
    PoolCase("asym_incl", (1, 6, 5, 8), (3, 2), (2, 1), (0, 1, 2, 0), count_include_pad=True, act=(0.0, INF)),
    PoolCase("global", (1, 4, 4, 16), (4, 4), (1, 1)),
    PoolCase("2x3_act", (1, 5, 7, 2), (2, 3), (1, 2), (1, 0, 0, 1), act=(-0.5, 0.5)),
    # the DSP average sums 4 channels in 16-bit lanes up to 256 cells, in 32 bits beyond
    PoolCase("global_256_c5", (1, 16, 16, 5), (16, 16), (1, 1)),
    PoolCase("global_289_c8", (1, 17, 17, 8), (17, 17), (1, 1)),
]


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_pool_s8(op: str, case: PoolCase, runtimes: list[crt.CRuntime]) -> None:
    r = rng(op, case)
    q = qt(float(r.uniform(0.01, 0.05)), int(r.integers(-60, 60)))
    x = i8(r, case.x)
    g = one_node(
        op, [Tensor("x", x.shape, "int8", q)], Tensor("y", case.out_shape(), "int8", q), case.attrs(op), case.act
    )
    want = run_ref(g, {"x": x})
    t, left, b, rr = case.pads
    params = crt.PoolParams(
        crt.HW(*case.kernel),
        crt.HW(*case.strides),
        crt.Padding(t, left, b, rr),
        int(case.count_include_pad),
        *bounds(case.act, q),
        q.scalar()[1],
    )
    name = "ts_max_pool_s8" if op == "max_pool2d" else "ts_avg_pool_s8"
    for rt in runtimes:
        assert_same(rt.pool(name, params, x, case.out_shape()), want, f"{name} [{rt.variant}]")


@pytest.mark.parametrize("fill", [-128, 127])
def test_avg_pool_s8_lane_sums_at_their_limits(fill: int, runtimes: list[crt.CRuntime]) -> None:
    """256 cells of -128 (sum -32768) or 127: the extremes of the DSP path's 16-bit lane sums."""
    case = PoolCase("global_256_c4", (1, 16, 16, 4), (16, 16), (1, 1))
    q = qt(0.02, 0)
    x = np.full(case.x, fill, np.int8)
    g = one_node(
        "avg_pool2d",
        [Tensor("x", x.shape, "int8", q)],
        Tensor("y", case.out_shape(), "int8", q),
        case.attrs("avg_pool2d"),
    )
    want = run_ref(g, {"x": x})
    assert np.all(want == fill)
    params = crt.PoolParams(crt.HW(16, 16), crt.HW(1, 1), crt.Padding(0, 0, 0, 0), 0, -128, 127, 0)
    for rt in runtimes:
        assert_same(rt.pool("ts_avg_pool_s8", params, x, case.out_shape()), want, f"ts_avg_pool_s8 [{rt.variant}]")


@pytest.mark.parametrize(
    "case",
    [
        ((1, 10), 0.1, 1 / 256, -128),
        ((3, 7), 0.5, 1 / 256, -128),
        ((2, 4, 5), 0.02, 1 / 128, 0),
        ((4, 33), 0.05, 0.003, -100),
    ],
    ids=lambda c: "x".join(map(str, c[0])) + f"_sx{c[1]}",
)
def test_softmax_s8(case: tuple[tuple[int, ...], float, float, int], runtimes: list[crt.CRuntime]) -> None:
    shape, sx, sy, zy = case
    r = rng("softmax", case)
    qx, qy = qt(sx, int(r.integers(-20, 20))), qt(sy, zy)
    x = i8(r, shape)
    x.reshape(-1)[:2] = [127, -128]  # the full range of max - x
    want = run_ref(one_node("softmax", [Tensor("x", shape, "int8", qx)], Tensor("y", shape, "int8", qy), {}), {"x": x})
    table = Q.softmax_exp_table(float(qx.scale[0]))
    mult = Q.softmax_out_multiplier(float(qy.scale[0]))
    for rt in runtimes:
        assert_same(rt.softmax_s8(table, mult, zy, x), want, f"ts_softmax_s8 [{rt.variant}]")


# -------------------------------------------------------------------------------------------------
# quantize / dequantize


@pytest.mark.parametrize("quant", [(0.5, 0), (0.25, -3), (0.0371, 17), (1 / 256, -128)])
def test_quantize_dequantize(quant: tuple[float, int], runtimes: list[crt.CRuntime]) -> None:
    scale, zp = quant
    r = rng("quantize", quant)
    ties = (np.arange(-300, 300, dtype=np.float32) + 0.5) * np.float32(scale)  # exact halves when scale is 2^-k
    x = np.concatenate([ties, r.normal(0, 200 * scale, 500).astype(np.float32), [1e30, -1e30, 0.0, -0.0]])
    x = x.astype(np.float32)
    q = qt(scale, zp)
    want = run_ref(
        one_node("quantize", [Tensor("x", x.shape, "float32")], Tensor("y", x.shape, "int8", q), {}), {"x": x}
    )
    xi = np.arange(-128, 128, dtype=np.int8)
    want_f = run_ref(
        one_node("dequantize", [Tensor("x", xi.shape, "int8", q)], Tensor("y", xi.shape, "float32"), {}), {"x": xi}
    )
    for rt in runtimes:
        assert_same(rt.quantize_f32_s8(np.float32(scale), zp, x), want, f"ts_quantize_f32_s8 [{rt.variant}]")
        got_f = rt.dequantize_s8_f32(np.float32(scale), zp, xi)
        assert np.array_equal(got_f, want_f), f"ts_dequantize_s8_f32 [{rt.variant}]"


# -------------------------------------------------------------------------------------------------
# float32 kernels


def randn(r: np.random.Generator, shape: Sequence[int], scale: float = 1.0) -> np.ndarray:
    return (r.standard_normal(tuple(shape)) * scale).astype(np.float32)


def conv_f32_params(c: ConvCase) -> crt.ConvF32Params:
    lo, hi = fbounds(c.act)
    return crt.ConvF32Params(crt.HW(*c.strides), crt.HW(*c.dilations), crt.Padding(*c.pads), c.groups, lo, hi)


@pytest.mark.parametrize("case", CONV_CASES[:12], ids=lambda c: c.id)
def test_conv_f32(case: ConvCase, runtimes: list[crt.CRuntime]) -> None:
    r = rng("conv_f32", case)
    cg = case.x[3] // case.groups
    x = randn(r, case.x)
    w = randn(r, (case.cout, *case.k, cg), (cg * case.k[0] * case.k[1]) ** -0.5)
    b = randn(r, (case.cout,), 0.3) if case.bias else None
    ins = [Tensor("x", case.x), Tensor("w", w.shape, data=w)] + (
        [Tensor("b", b.shape, data=b)] if b is not None else []
    )
    want = run_ref(one_node("conv2d", ins, Tensor("y", case.out_shape()), case.attrs(), case.act), {"x": x})
    for rt in runtimes:
        assert_close(rt.conv_f32(x, w, b, conv_f32_params(case), case.out_shape()), want, f"ts_conv_f32 [{rt.variant}]")


@pytest.mark.parametrize("case", DW_CASES[:8], ids=lambda c: c.id)
def test_depthwise_conv_f32(case: ConvCase, runtimes: list[crt.CRuntime]) -> None:
    case = ConvCase(**{**case.__dict__, "groups": case.x[3]})
    r = rng("dw_f32", case)
    x = randn(r, case.x)
    w = randn(r, (case.cout, *case.k, 1), 0.3)
    b = randn(r, (case.cout,), 0.3) if case.bias else None
    ins = [Tensor("x", case.x), Tensor("w", w.shape, data=w)] + (
        [Tensor("b", b.shape, data=b)] if b is not None else []
    )
    want = run_ref(one_node("conv2d", ins, Tensor("y", case.out_shape()), case.attrs(), case.act), {"x": x})
    w_hwc = w[..., 0].transpose(1, 2, 0)
    for rt in runtimes:
        got = rt.conv_f32(x, w_hwc, b, conv_f32_params(case), case.out_shape(), depthwise=True)
        assert_close(got, want, f"ts_depthwise_conv_f32 [{rt.variant}]")


@pytest.mark.parametrize("shape", FC_CASES[:5], ids=lambda s: "x".join(map(str, s)))
def test_fully_connected_f32(shape: tuple[int, int, int], runtimes: list[crt.CRuntime]) -> None:
    batches, depth, units = shape
    r = rng("fc_f32", shape)
    x, w, b = randn(r, (batches, depth)), randn(r, (units, depth), depth**-0.5), randn(r, (units,), 0.3)
    act: Act = (-0.5, 0.5) if units % 2 else None
    ins = [Tensor("x", x.shape), Tensor("w", w.shape, data=w), Tensor("b", b.shape, data=b)]
    want = run_ref(one_node("fully_connected", ins, Tensor("y", (batches, units)), {}, act), {"x": x})
    for rt in runtimes:
        assert_close(rt.fully_connected_f32(fbounds(act), x, w, b), want, f"ts_fully_connected_f32 [{rt.variant}]")


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("shapes", BROADCASTS[:6], ids=_shape_id)
def test_binary_f32(op: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], runtimes: list[crt.CRuntime]) -> None:
    r = rng(op, "f32", shapes)
    a, b = randn(r, shapes[0]), randn(r, shapes[1])
    out_shape = np.broadcast_shapes(*shapes)
    act: Act = (-0.5, INF) if len(out_shape) % 2 else None
    ins = [Tensor("a", shapes[0]), Tensor("b", shapes[1])]
    want = run_ref(one_node(op, ins, Tensor("y", out_shape), {}, act), {"a": a, "b": b})
    for rt in runtimes:
        fn = rt.add_f32 if op == "add" else rt.mul_f32
        assert_close(fn(fbounds(act), a, b, out_shape), want, f"ts_{op}_f32 [{rt.variant}]")


@pytest.mark.parametrize("op", ["clip", "sigmoid", "tanh", "softmax"])
def test_unary_f32(op: str, runtimes: list[crt.CRuntime]) -> None:
    r = rng("unary_f32", op)
    x = randn(r, (3, 5, 7), 3.0)
    act: Act = (-1.0, 2.0) if op == "clip" else None
    want = run_ref(one_node(op, [Tensor("x", x.shape)], Tensor("y", x.shape), {}, act), {"x": x})
    for rt in runtimes:
        if op == "clip":
            got = rt.clip_f32(-1.0, 2.0, x)
        elif op == "softmax":
            got = rt.softmax_f32(x)
        else:
            got = getattr(rt, f"{op}_f32")(x)
        assert_close(got, want, f"{op}_f32 [{rt.variant}]")


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_pool_f32(op: str, case: PoolCase, runtimes: list[crt.CRuntime]) -> None:
    r = rng(op, "f32", case)
    x = randn(r, case.x)
    want = run_ref(
        one_node(op, [Tensor("x", x.shape)], Tensor("y", case.out_shape()), case.attrs(op), case.act), {"x": x}
    )
    params = crt.PoolF32Params(
        crt.HW(*case.kernel),
        crt.HW(*case.strides),
        crt.Padding(*case.pads),
        int(case.count_include_pad),
        *fbounds(case.act),
    )
    name = "ts_max_pool_f32" if op == "max_pool2d" else "ts_avg_pool_f32"
    for rt in runtimes:
        assert_close(rt.pool(name, params, x, case.out_shape()), want, f"{name} [{rt.variant}]")


# -------------------------------------------------------------------------------------------------
# data movement (int8 with one shared quant, and float32)


def movement_tensors(r: np.random.Generator, shape: Sequence[int], dtype: str, name: str) -> tuple[np.ndarray, Tensor]:
    if dtype == "int8":
        return i8(r, shape), Tensor(name, tuple(shape), "int8", qt(0.05, 3))
    return randn(r, shape), Tensor(name, tuple(shape), "float32")


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize(
    "case",
    [((2, 3, 4, 5), (0, 3, 1, 2)), ((2, 3, 4, 5), (3, 2, 1, 0)), ((4, 6), (1, 0)), ((2, 3, 5), (1, 2, 0))],
    ids=str,
)
def test_transpose(case: tuple[tuple[int, ...], tuple[int, ...]], dtype: str, runtimes: list[crt.CRuntime]) -> None:
    shape, perm = case
    x, xt = movement_tensors(rng("transpose", case, dtype), shape, dtype, "x")
    yt = Tensor("y", tuple(shape[p] for p in perm), xt.dtype, xt.quant)
    want = run_ref(one_node("transpose", [xt], yt, {"perm": perm}), {"x": x})
    for rt in runtimes:
        assert np.array_equal(rt.transpose(x, perm), want), f"ts_transpose [{rt.variant}]"


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize(
    "case",
    [((1, 4, 4, 3), (1, 4, 4, 5), 3), ((2, 3), (4, 3), 0), ((1, 2, 3, 4), (1, 5, 3, 4), 1), ((2, 3, 4), (2, 3, 1), -1)],
    ids=str,
)
def test_concat(case: tuple[tuple[int, ...], tuple[int, ...], int], dtype: str, runtimes: list[crt.CRuntime]) -> None:
    r = rng("concat", case, dtype)
    a, at = movement_tensors(r, case[0], dtype, "a")
    b, bt = movement_tensors(r, case[1], dtype, "b")
    want_shape = np.concatenate([a, b], axis=case[2]).shape
    yt = Tensor("y", want_shape, at.dtype, at.quant)
    want = run_ref(one_node("concat", [at, bt], yt, {"axis": case[2]}), {"a": a, "b": b})
    for rt in runtimes:
        assert np.array_equal(rt.concat([a, b], case[2]), want), f"ts_concat [{rt.variant}]"


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize(
    "case",
    [
        ((1, 3, 4, 2), (0, 1, 2, 0, 0, 2, 1, 0), 0.0),
        ((2, 5), (1, 0, 0, 3), 0.7),
        ((1, 6, 6, 3), (0, -1, 1, 0, 0, 2, -2, 1), -0.3),
    ],
    ids=str,
)
def test_pad(case: tuple[tuple[int, ...], tuple[int, ...], float], dtype: str, runtimes: list[crt.CRuntime]) -> None:
    shape, pads, value = case
    x, xt = movement_tensors(rng("pad", case, dtype), shape, dtype, "x")
    rank = len(shape)
    out_shape = tuple(d + b + e for d, b, e in zip(shape, pads[:rank], pads[rank:], strict=True))
    yt = Tensor("y", out_shape, xt.dtype, xt.quant)
    want = run_ref(one_node("pad", [xt], yt, {"pads": pads, "value": value}), {"x": x})
    fill: float | int = Q.quantize_constant(value, xt.quant) if xt.quant is not None else value
    for rt in runtimes:
        assert np.array_equal(rt.pad(x, pads, fill), want), f"ts_pad [{rt.variant}]"


def test_copy_reshape(runtimes: list[crt.CRuntime]) -> None:
    x, xt = movement_tensors(rng("copy"), (2, 3, 4), "int8", "x")
    want = run_ref(one_node("reshape", [xt], Tensor("y", (6, 4), "int8", xt.quant), {}), {"x": x})
    for rt in runtimes:
        assert np.array_equal(rt.copy(x, (6, 4)), want)


# -------------------------------------------------------------------------------------------------
# the build itself


def test_abi_structs_match(runtimes: list[crt.CRuntime]) -> None:
    for rt in runtimes:
        assert rt.abi_mismatches() == []


def test_scratch_sizes(runtimes: list[crt.CRuntime]) -> None:
    """Only the DSP paths use scratch: conv's per-row requantization constants (16 bytes per output
    channel) and four int16 im2col columns, one int16 row for fully connected."""
    params = crt.ConvParams(0, 0, crt.HW(1, 1), crt.HW(1, 1), crt.Padding(0, 0, 0, 0), 1, -128, 127)
    fc = crt.FcParams(0, 0, -128, 127)
    for rt in runtimes:
        dsp = rt.variant == "dsp"
        assert rt.conv_s8_buffer_size(params, (1, 8, 8, 8), (4, 3, 3, 8)) == (16 * 4 + 4 * 2 * 72 if dsp else 0)
        # Cin/groups not a multiple of 4: plus the int8 patch, rounded up to 4 bytes
        assert rt.conv_s8_buffer_size(params, (1, 8, 8, 3), (4, 3, 3, 3)) == (16 * 4 + 9 * 28 if dsp else 0)
        size = rt.lib.ts_fully_connected_s8_get_buffer_size(ctypes.byref(fc), 40, 10)
        assert size == (2 * 40 if rt.variant == "dsp" else 0)


@pytest.mark.parametrize("wide", [False, True], ids=["int8", "wide"])
def test_lowered_conv_scratch_is_the_kernels(wide: bool, runtimes: list[crt.CRuntime]) -> None:
    """The arena holds what ts_conv_s8(_wide)_get_buffer_size asks for on a DSP build, for every case."""
    dsp = next((rt for rt in runtimes if rt.variant == "dsp"), None)
    if dsp is None:
        pytest.skip("needs the emulated-DSP build of the runtime")
    fn = dsp.lib.ts_conv_s8_wide_get_buffer_size if wide else dsp.lib.ts_conv_s8_get_buffer_size
    for case in CONV_CASES:
        q = make_qconv(case)
        node = q.graph.node("n0")
        if is_depthwise(q.graph, node):
            continue  # lowered to ts_depthwise_conv_s8
        if wide:
            node.attrs[ATTR] = True
        dims = [crt._dims(case.x), crt._dims(q.w.shape), crt._dims(case.out_shape())]
        want = fn(ctypes.byref(q.params), *(ctypes.byref(d) for d in (dims[0], dims[1], dims[2])))
        assert scratch_bytes(q.graph, node) == want, case.id


ARM_TARGETS = {
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-m0plus": ["-mcpu=cortex-m0plus", "-mthumb"],
}


@pytest.mark.parametrize(
    ("target", "opt"), [("cortex-m4", "-O2"), ("cortex-m4", "-Os"), ("cortex-m4", "-O0"), ("cortex-m0plus", "-O2")]
)
def test_cross_compile(target: str, opt: str, tmp_path: Path) -> None:
    """Every runtime source builds warning-free at the optimisation levels firmware uses (-O0 leaves
    the assembly paths out: GCC cannot give them their registers)."""
    cc = "arm-none-eabi-gcc"
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed (Debian: gcc-arm-none-eabi)")
    flags = ["-std=c99", opt, *ARM_TARGETS[target], *crt.WARNINGS, f"-I{crt.INCLUDE_DIR}", "-c"]
    objs = []
    for src in crt.sources():
        obj = tmp_path / f"{src.stem}.o"
        proc = subprocess.run([cc, *flags, str(src), "-o", str(obj)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{src.name} for {target}:\n{proc.stderr}"
        objs.append(obj)
    objdump = shutil.which("arm-none-eabi-objdump")
    if objdump is None:
        return
    disasm = subprocess.run([objdump, "-d", *map(str, objs)], capture_output=True, text=True, check=True).stdout
    uses_dsp = any(f"\t{insn}\t" in disasm for insn in ("smlad", "sxtab16", "smlabb"))
    # the DSP paths are compiled in exactly when the core has the DSP extension
    assert uses_dsp == (target == "cortex-m4"), f"{target}: DSP instructions present: {uses_dsp}"


NEWLIB_INCLUDE = Path("/usr/lib/arm-none-eabi/include")


def test_cross_compile_with_clang(tmp_path: Path) -> None:
    """The Cortex-M4 build with clang's integrated assembler, which reads the inline and top-level
    assembly differently from GNU as (newlib's headers from gcc-arm-none-eabi's libc). Without
    -pedantic: clang's flags the assembly strings longer than C99's 4095 characters."""
    if shutil.which("clang") is None or not NEWLIB_INCLUDE.is_dir():
        pytest.skip("needs clang and newlib's headers (scripts/setup.sh installs both)")
    warnings = [w for w in crt.WARNINGS if w != "-pedantic"]
    flags = ["--target=armv7em-none-eabi", "-std=c99", "-O2", *ARM_TARGETS["cortex-m4"], *warnings]
    flags += ["-ffreestanding", f"-I{crt.INCLUDE_DIR}", "-isystem", str(NEWLIB_INCLUDE), "-c"]
    for src in crt.sources():
        obj = tmp_path / f"{src.stem}.o"
        proc = subprocess.run(["clang", *flags, str(src), "-o", str(obj)], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{src.name} with clang:\n{proc.stderr}"


# -------------------------------------------------------------------------------------------------
# the int8 kernels on an emulated Cortex-M4 (the real DSP paths), through compiler/harness.py


@dataclass
class DeviceLayer:
    """One kernel call of the hand-written device program: C constants, the call (X = input,
    Y = output), its input and the reference output."""

    name: str
    decls: list[str]
    call: str
    x: np.ndarray
    want: np.ndarray
    macs: int = 0
    scratch: int = 0  # bytes
    in_ctype: str = "int8_t"


def c_array(ctype: str, name: str, a: np.ndarray) -> str:
    flat = np.asarray(a).reshape(-1)
    lines = [", ".join(str(int(v)) for v in flat[i : i + 24]) for i in range(0, len(flat), 24)]
    aligned = " __attribute__((aligned(4)))"  # the *_wide kernels load int16 weights by words (LDRD, LDM)
    body = ",\n    ".join(lines or ["0"])
    return f"static const {ctype} {name}[{max(flat.size, 1)}]{aligned} = {{\n    {body}\n}};"


def c_dims(name: str, shape: Sequence[int]) -> str:
    return f"static const ts_dims {name} = {{{', '.join(map(str, shape))}}};"


def conv_device_layer(
    i: int,
    case: ConvCase,
    depthwise: bool,
    q: QConv | None = None,
    want: np.ndarray | None = None,
    *,
    wide: bool = False,
) -> DeviceLayer:
    """One conv (or depthwise conv) call: the case's random operands and reference output, or q
    and want when given; `wide`: ts_conv_s8_wide with the weights pre-widened."""
    if depthwise:
        case = ConvCase(**{**case.__dict__, "groups": case.x[3]})
    if q is None:
        q = make_qconv(case)
    if want is None:
        want = run_ref(q.graph, q.feeds)
    p, pre = q.params, f"l{i}"
    w = q.w[..., 0].transpose(1, 2, 0) if depthwise else q.w
    fdims = (1, *w.shape) if depthwise else w.shape
    decls = [
        c_array("int16_t", f"{pre}_w", smlad_weights("conv2d", w, case.groups))
        if wide
        else c_array("int8_t", f"{pre}_w", w),
        c_array("int32_t", f"{pre}_m", q.multiplier),
        c_array("int32_t", f"{pre}_s", q.shift),
        f"static const ts_conv_params {pre}_p = {{{p.input_offset}, {p.output_offset}, {{{p.stride.h}, "
        f"{p.stride.w}}}, {{{p.dilation.h}, {p.dilation.w}}}, {{{p.pad.top}, {p.pad.left}, {p.pad.bottom}, "
        f"{p.pad.right}}}, {p.groups}, {p.act_min}, {p.act_max}}};",
        f"static const ts_channel_quant {pre}_q = {{{pre}_m, {pre}_s}};",
        c_dims(f"{pre}_xd", case.x),
        c_dims(f"{pre}_fd", fdims),
        c_dims(f"{pre}_yd", case.out_shape()),
    ]
    bias = "NULL"
    if q.bias is not None:
        decls.append(c_array("int32_t", f"{pre}_b", q.bias))
        bias = f"{pre}_b"
    fn = "ts_depthwise_conv_s8" if depthwise else "ts_conv_s8_wide" if wide else "ts_conv_s8"
    call = f"{fn}(&{pre}_p, &{pre}_q, &{pre}_xd, X, &{pre}_fd, {pre}_w, {bias}, &{pre}_yd, Y, ts_scratch);"
    kdepth = case.k[0] * case.k[1] * (case.x[3] // case.groups)
    macs = int(np.prod(case.out_shape())) * kdepth
    if wide:
        q.graph.node("n0").attrs[ATTR] = True
    scratch = scratch_bytes(q.graph, q.graph.node("n0"))
    return DeviceLayer(f"{fn}:{case.id}", decls, call, q.x, want, macs, scratch)


def fc_device_layer(i: int, shape: tuple[int, int, int], *, wide: bool = False) -> DeviceLayer:
    batches, depth, units = shape
    r = rng("fc device", shape)
    sx, zx = float(r.uniform(0.01, 0.05)), int(r.integers(-128, 128))
    sw = r.uniform(0.002, 0.02, units).astype(np.float32)
    sy, zy = sx * float(np.mean(sw)) * 5400 * math.sqrt(depth) / 40, int(r.integers(-20, 21))
    x, w = i8(r, (batches, depth)), i8(r, (units, depth), -127, 127)
    b = r.integers(-30000, 30000, units).astype(np.int32)
    xt = Tensor("x", x.shape, "int8", qt(sx, zx))
    wt = Tensor("w", w.shape, "int8", Quant(sw, np.zeros(units, np.int32), 0), data=w)
    yt = Tensor("y", (batches, units), "int8", qt(sy, zy))
    want = run_ref(one_node("fully_connected", [xt, wt, Tensor("b", (units,), "int32", data=b)], yt, {}), {"x": x})
    rq = Q.conv_requant(xt, wt, yt, units)
    pre = f"l{i}"
    decls = [
        c_array("int8_t", f"{pre}_w", w),
        c_array("int32_t", f"{pre}_b", b),
        c_array("int32_t", f"{pre}_m", rq.multipliers),
        c_array("int32_t", f"{pre}_s", rq.shifts),
        f"static const ts_fc_params {pre}_p = {{{-zx}, {zy}, -128, 127}};",
        f"static const ts_channel_quant {pre}_q = {{{pre}_m, {pre}_s}};",
    ]
    fn = "ts_fully_connected_s8_wide" if wide else "ts_fully_connected_s8"
    if wide:
        decls[0] = c_array("int16_t", f"{pre}_w", smlad_weights("fully_connected", w))
    call = f"{fn}(&{pre}_p, &{pre}_q, {batches}, {depth}, {units}, X, {pre}_w, {pre}_b, Y, ts_scratch);"
    name = f"{'fc_wide' if wide else 'fc'}:{'x'.join(map(str, shape))}"
    return DeviceLayer(name, decls, call, x, want, batches * depth * units, 2 * ((depth + 3) & ~3))


def requant_device_layer(i: int) -> DeviceLayer:
    c = requant_case()
    pre = f"l{i}"
    batches, units = c.want.shape
    decls = [
        c_array("int8_t", f"{pre}_w", c.w),
        c_array("int32_t", f"{pre}_b", c.bias),
        c_array("int32_t", f"{pre}_m", c.multiplier),
        c_array("int32_t", f"{pre}_s", c.shift),
        f"static const ts_fc_params {pre}_p = {{{c.input_offset}, {c.output_offset}, -128, 127}};",
        f"static const ts_channel_quant {pre}_q = {{{pre}_m, {pre}_s}};",
    ]
    call = f"ts_fully_connected_s8(&{pre}_p, &{pre}_q, {batches}, 1, {units}, X, {pre}_w, {pre}_b, Y, ts_scratch);"
    return DeviceLayer("requantize_extremes", decls, call, c.x, c.want, scratch=2)


def requantize_device_layers() -> list[DeviceLayer]:
    """ts_requantize_s8 with a multiplier below and one above 1 (left shift), over every int8 value."""
    layers = []
    for (sx, zx), (sy, zy) in [((0.02, 10), (0.011, -5)), ((0.3, -20), (0.02, 5))]:
        qx, qy = qt(sx, zx), qt(sy, zy)
        x = np.arange(-128, 128, dtype=np.int8)
        g = one_node("requantize", [Tensor("x", x.shape, "int8", qx)], Tensor("y", x.shape, "int8", qy), {})
        m, sh = Q.quantize_multiplier(float(qx.scale[0]) / float(qy.scale[0]))
        call = f"ts_requantize_s8({-zx}, {m}, {sh}, {zy}, {x.size}, X, Y);"
        layers.append(DeviceLayer(f"ts_requantize_s8:{sh}", [], call, x, run_ref(g, {"x": x})))
    return layers


def quantize_device_layer() -> DeviceLayer:
    """ONNX QuantizeLinear on the Cortex-M4 FPU: exact halves (round half to even) and saturation."""
    scale, zp = 0.25, -3
    x = np.concatenate([(np.arange(-300, 300, dtype=np.float32) + 0.5) * np.float32(scale), [1e30, -1e30, -0.0]])
    x = x.astype(np.float32)
    q = qt(scale, zp)
    g = one_node("quantize", [Tensor("x", x.shape, "float32")], Tensor("y", x.shape, "int8", q), {})
    call = f"ts_quantize_f32_s8({scale}f, {zp}, {x.size}, X, Y);"
    return DeviceLayer("ts_quantize_f32_s8", [], call, x, run_ref(g, {"x": x}), in_ctype="float")


def elementwise_device_layer(i: int, op: str) -> DeviceLayer:
    """add / mul of the input with a constant operand broadcast along the last axis."""
    r = rng("elementwise device", op)
    shape, bshape = (1, 8, 8, 24), (24,)  # >= 1024 elements: the tabulated add
    qa, qb, qy = qt(0.04, 5), qt(0.03, -9), qt(0.06 if op == "add" else 0.03, 3)
    a, b = i8(r, shape), i8(r, bshape)
    ins = [Tensor("a", shape, "int8", qa), Tensor("b", bshape, "int8", qb, data=b)]
    want = run_ref(one_node(op, ins, Tensor("y", shape, "int8", qy), {}), {"a": a})
    (sa, za), (sb, zb), (sy, zy) = qa.scalar(), qb.scalar(), qy.scalar()
    if op == "add":
        p = Q.add_params(sa, sb, sy)
        mults = [p.a_multiplier, p.a_shift, p.b_multiplier, p.b_shift, p.out_multiplier, p.out_shift]
    else:
        mults = [0, 0, 0, 0, *Q.mul_multiplier(sa, sb, sy)]
    pre = f"l{i}"
    decls = [
        c_array("int8_t", f"{pre}_b", b),
        f"static const ts_elementwise_params {pre}_p = "
        f"{{{-za}, {-zb}, {', '.join(map(str, mults))}, {zy}, -128, 127}};",
        f"static const int32_t {pre}_d[4] = {{{', '.join(map(str, shape))}}};",
        f"static const int32_t {pre}_sa[4] = "
        f"{{{shape[1] * shape[2] * shape[3]}, {shape[2] * shape[3]}, {shape[3]}, 1}};",
        f"static const int32_t {pre}_sb[4] = {{0, 0, 0, 1}};",
    ]
    call = f"ts_{op}_s8(&{pre}_p, {pre}_d, {pre}_sa, {pre}_sb, X, {pre}_b, Y);"
    return DeviceLayer(f"{op}", decls, call, a, want)


def pool_softmax_device_layers(i0: int) -> list[DeviceLayer]:
    layers = []
    for k, op in enumerate(["max_pool2d", "avg_pool2d"]):
        case = POOL_CASES[3]  # asymmetric pads, count_include_pad, act
        r = rng("pool device", op)
        q = qt(0.03, -7)
        x = i8(r, case.x)
        g = one_node(
            op, [Tensor("x", x.shape, "int8", q)], Tensor("y", case.out_shape(), "int8", q), case.attrs(op), case.act
        )
        lo, hi = bounds(case.act, q)
        pre = f"l{i0 + k}"
        kh, kw = case.kernel
        (t, left, b, rr), (sh, sw) = case.pads, case.strides
        decls = [
            f"static const ts_pool_params {pre}_p = {{{{{kh}, {kw}}}, {{{sh}, {sw}}}, {{{t}, {left}, {b}, {rr}}}, "
            f"{int(case.count_include_pad)}, {lo}, {hi}, -7}};",
            c_dims(f"{pre}_xd", case.x),
            c_dims(f"{pre}_yd", case.out_shape()),
        ]
        fn = "ts_max_pool_s8" if op == "max_pool2d" else "ts_avg_pool_s8"
        layers.append(DeviceLayer(fn, decls, f"{fn}(&{pre}_p, &{pre}_xd, X, &{pre}_yd, Y);", x, run_ref(g, {"x": x})))
    r = rng("softmax device")
    qx, qy = qt(0.07, 3), qt(1 / 256, -128)
    x = i8(r, (3, 12))
    want = run_ref(
        one_node("softmax", [Tensor("x", x.shape, "int8", qx)], Tensor("y", x.shape, "int8", qy), {}), {"x": x}
    )
    pre = f"l{i0 + 2}"
    decls = [c_array("int32_t", f"{pre}_t", Q.softmax_exp_table(0.07))]
    call = f"ts_softmax_s8({pre}_t, {Q.softmax_out_multiplier(1 / 256)}, -128, 3, 12, X, Y);"
    layers.append(DeviceLayer("ts_softmax_s8", decls, call, x, want))
    return layers


# Larger layers for the instruction counts (emulated instructions per multiply-accumulate).
PERF_CONV = [
    ConvCase("perf_3x3_16to32", (1, 16, 16, 16), 32, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("perf_1x1_32to64", (1, 16, 16, 32), 64, (1, 1)),
]
PERF_DW = [ConvCase("perf_dw_3x3_c64", (1, 16, 16, 64), 64, (3, 3), pads=(1, 1, 1, 1))]
PERF_FC = [(1, 256, 64)]
PERF_BOUNDS = {  # emulated instructions per MAC, whole kernel call (im2col and requantization included)
    "ts_conv_s8:perf_3x3_16to32": 1.24,
    "ts_conv_s8:perf_1x1_32to64": 1.62,
    "ts_depthwise_conv_s8:perf_dw_3x3_c64": 2.6,
    "fc:1x256x64": 1.9,
    "ts_conv_s8_wide:perf_3x3_16to32": 0.93,
    "ts_conv_s8_wide:perf_1x1_32to64": 1.1,
    "fc_wide:1x256x64": 1.14,
}


def device_program(layers: Sequence[DeviceLayer]) -> tuple[str, str]:
    """(model.h, model.c) of the harness contract: one layer per kernel call, each with its own
    input and output."""
    n = len(layers)
    ins = ", ".join(f"const {layer.in_ctype} *input{i}" for i, layer in enumerate(layers))
    outs = ", ".join(f"int8_t *output{i}" for i in range(n))
    model_h = (
        "#ifndef MODEL_H\n#define MODEL_H\n#include <stdint.h>\n"
        f"#define MODEL_LAYER_COUNT {n}\nvoid model_run({ins}, {outs});\n#endif\n"
    )
    scratch = max([layer.scratch for layer in layers] + [4])
    body = [
        '#include <stddef.h>\n#include <stdint.h>\n#include "model.h"\n#include "tinysplit/kernels.h"',
        '#include "tinysplit/profile.h"',
        f"static int32_t ts_scratch[{(scratch + 3) // 4}];",
    ]
    for layer in layers:
        body += layer.decls
    body.append(f"void model_run({ins}, {outs})\n{{")
    for i, layer in enumerate(layers):
        call = layer.call.replace("X,", f"input{i},").replace("Y,", f"output{i},").replace("Y)", f"output{i})")
        body.append(f"    TS_LAYER_BEGIN({i});\n    {call}\n    TS_LAYER_END({i});")
    body.append("}\n")
    return model_h, "\n".join(body)


def run_device_program(layers: Sequence[DeviceLayer], tmp_path: Path) -> Any:
    """Builds device_program(layers) with the runtime sources, runs it once on QEMU mps2-an386
    (harness.run_emulated, skips when the tools are missing), checks every layer's output bit for
    bit and returns the run."""
    harness = pytest.importorskip("tinysplit.compiler.harness")
    missing = harness.missing_tools("cortex-m4")
    if missing:
        pytest.skip(f"emulated Cortex-M4 needs {', '.join(missing)}")
    c_dir = tmp_path / "model_c"
    (c_dir / "runtime" / "include").mkdir(parents=True)
    shutil.copytree(crt.INCLUDE_DIR / "tinysplit", c_dir / "runtime" / "include" / "tinysplit")
    shutil.copytree(crt.SRC_DIR, c_dir / "runtime" / "src")
    model_h, model_c = device_program(layers)
    (c_dir / "model.h").write_text(model_h)
    (c_dir / "model.c").write_text(model_c)
    run = harness.run_emulated(
        c_dir,
        [layer.x for layer in layers],
        [harness.IOSpec(f"input{i}", layer.in_ctype, layer.x.size) for i, layer in enumerate(layers)],
        [harness.IOSpec(f"output{i}", "int8_t", layer.want.size) for i, layer in enumerate(layers)],
        tmp_path / "work",
        arch="cortex-m4",
    )
    for layer, got in zip(layers, run.outputs, strict=True):
        assert_same(got.reshape(layer.want.shape), layer.want, f"{layer.name} on Cortex-M4")
    return run


def test_int8_kernels_on_cortex_m4(tmp_path: Path) -> None:
    """The int8 kernels (conv, depthwise, fully connected through their DSP paths; requantization
    extremes; add, mul, pools, softmax, requantize, quantize) on QEMU mps2-an386 (Cortex-M4F), bit
    for bit against the reference; and the cost of the big ones in emulated instructions per MAC."""
    layers: list[DeviceLayer] = []
    for case in [*CONV_CASES, *PERF_CONV]:
        layers.append(conv_device_layer(len(layers), case, depthwise=False))
        layers.append(conv_device_layer(len(layers), case, depthwise=False, wide=True))
    for case in [*DW_CASES, *PERF_DW]:
        layers.append(conv_device_layer(len(layers), case, depthwise=True))
    for shape in [*FC_CASES, *PERF_FC]:
        layers.append(fc_device_layer(len(layers), shape))
        layers.append(fc_device_layer(len(layers), shape, wide=True))
    layers.append(requant_device_layer(len(layers)))
    for op in ("add", "mul"):
        layers.append(elementwise_device_layer(len(layers), op))
    layers += pool_softmax_device_layers(len(layers))
    layers += requantize_device_layers()
    layers.append(quantize_device_layer())

    run = run_device_program(layers, tmp_path)
    per_mac = {
        layer.name: count / layer.macs
        for layer, count in zip(layers, run.layer_instructions, strict=True)
        if layer.name in PERF_BOUNDS
    }
    # Emulated instruction counts are deterministic (QEMU -icount); these bounds (about 15 % above
    # what GCC 12 -O2 gives) catch a DSP path that silently stopped being fast.
    slow = {name: round(v, 3) for name, v in per_mac.items() if v > PERF_BOUNDS[name]}
    assert not slow, f"emulated instructions per MAC above bound: {slow} (bounds {PERF_BOUNDS})"
