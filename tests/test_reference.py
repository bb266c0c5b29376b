"""compiler/reference.py against onnxruntime (float, and int8 in QDQ form), plus hand-checked numerics."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import pytest
from onnx_builders import Input, act_quant, run_model, single_op_model, weight_quant

from tinysplit.compiler import quant as Q
from tinysplit.compiler import reference
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor

RNG = np.random.default_rng(20240611)
NCHW_TO_NHWC, NHWC_TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)  # NCHW_TO_NHWC is also OIHW -> OHWI
INF = math.inf


def randn(*shape: int, scale: float = 1.0) -> np.ndarray:
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


# ------------------------------------------------------------------------------------------------
# A case is one ONNX op and the equivalent IR node; it runs in float and in int8 (QDQ form).


@dataclass
class Operand:
    value: np.ndarray  # float values in ONNX layout (any dtype for kind "param")
    kind: str = "act"  # act: graph input; weight, bias: constants; param: ONNX-only constant (shape, pads)
    axis: int = 0  # weight: output-channel axis in the ONNX layout
    to_ir: Callable[[np.ndarray], np.ndarray] | None = None  # ONNX -> IR layout; default per Case.nhwc


@dataclass
class Case:
    id: str
    op: str
    operands: Sequence[Operand | None]  # None: absent optional ONNX input
    attrs: dict[str, Any]
    ir_op: str
    ir_attrs: dict[str, Any]
    nhwc: bool = False  # rank-4 tensors are NCHW/OIHW in ONNX and NHWC/OHWI in the IR
    act: tuple[float | None, float | None] | None = None  # fused activation (ONNX: a Clip after the op)
    out_quant: str | tuple[float, int] = "calibrate"  # int8 output: calibrate, input (same as input 0), fixed
    shared_quant: bool = False  # int8: all activation inputs share one quant (concat)
    modes: tuple[str, ...] = ("float", "int8")
    min_exact: float = 0.9  # int8: fraction of outputs that must equal onnxruntime's exactly

    def to_ir(self, o: Operand, v: np.ndarray) -> np.ndarray:
        if o.to_ir is not None:
            return o.to_ir(v)
        return v.transpose(NCHW_TO_NHWC) if self.nhwc and v.ndim == 4 else v

    def to_onnx(self, y: np.ndarray) -> np.ndarray:
        return y.transpose(NHWC_TO_NCHW) if self.nhwc and y.ndim == 4 else y

    def ir_shape(self, onnx_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(onnx_shape[i] for i in NCHW_TO_NHWC) if self.nhwc and len(onnx_shape) == 4 else onnx_shape


@dataclass
class Prepared:
    inputs: list[Input | None]  # ONNX operands
    tensors: list[Tensor]  # IR operands
    feeds: dict[str, np.ndarray]  # ONNX feeds
    ir_feeds: dict[str, np.ndarray]
    in_quant: tuple[float, int] | None  # int8: quant of the first activation


def prepare(case: Case, int8: bool) -> Prepared:
    acts = [o.value for o in case.operands if o is not None and o.kind == "act"]
    shared = act_quant(np.concatenate([a.ravel() for a in acts])) if case.shared_quant else None
    p = Prepared([], [], {}, {}, None)
    sw = np.ones(1, np.float32)
    for i, o in enumerate(case.operands):
        name = f"in{i}"
        if o is None:
            p.inputs.append(None)
            continue
        value, dtype, quant = o.value, "float32", None
        onnx_q: tuple[np.ndarray, np.ndarray, int | None] | None = None
        if int8 and o.kind == "act":
            s, z = shared or act_quant(o.value)
            value, dtype, quant, onnx_q = (
                Q.quantize(o.value, Quant(s, z)),
                "int8",
                Quant(s, z),
                (np.array(s), np.array(z, np.int8), None),
            )
            p.in_quant = p.in_quant or (float(s), z)
        elif int8 and o.kind == "weight":
            sw, value = weight_quant(o.value, o.axis)
            dtype, quant, onnx_q = (
                "int8",
                Quant(sw, np.zeros_like(sw, np.int32), 0),
                (sw, np.zeros_like(sw, np.int8), o.axis),
            )
        elif int8 and o.kind == "bias":
            assert p.in_quant is not None
            bs = (np.float32(p.in_quant[0]) * sw).astype(np.float32)
            value = np.rint(o.value / bs).astype(np.int32)
            zeros = np.zeros_like(bs, np.int32)
            dtype, quant, onnx_q = "int32", Quant(bs, zeros, 0), (bs, zeros, 0)
        p.inputs.append(Input(name, value, const=o.kind != "act", quant=onnx_q))
        if o.kind == "act":
            p.feeds[name] = value
            p.ir_feeds[name] = case.to_ir(o, value)
        if o.kind != "param":
            v = case.to_ir(o, value)
            p.tensors.append(Tensor(name, v.shape, dtype, quant, data=None if o.kind == "act" else v))
    return p


def ir_graph(case: Case, p: Prepared, y: Tensor) -> Graph:
    g = Graph(case.id)
    for t in [*p.tensors, y]:
        g.add_tensor(t)
    g.inputs, g.outputs = [t.name for t in p.tensors if not t.is_constant], [y.name]
    attrs = dict(case.ir_attrs)
    if case.act is not None:
        lo, hi = case.act
        attrs.update(act_min=-INF if lo is None else lo, act_max=INF if hi is None else hi)
    g.add_node(Node("n0", case.ir_op, [t.name for t in p.tensors], [y.name], attrs))
    g.validate()
    return g


def run_case(case: Case, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """(onnxruntime's output, the reference's output in ONNX layout)."""
    p = prepare(case, mode == "int8")
    model = single_op_model(case.op, p.inputs, case.attrs, act=case.act)
    if mode == "float":
        expected = run_model(model, p.feeds)[0]
        y = Tensor("y", case.ir_shape(expected.shape), "float32")
    else:
        if case.out_quant == "calibrate":  # from the float result of the dequantized inputs
            sy, zy = act_quant(run_model(model, p.feeds)[0])
        elif case.out_quant == "input":
            assert p.in_quant is not None
            sy, zy = np.float32(p.in_quant[0]), p.in_quant[1]
        else:
            sy, zy = np.float32(case.out_quant[0]), int(case.out_quant[1])
        model = single_op_model(case.op, p.inputs, case.attrs, act=case.act, out_quant=(float(sy), zy))
        expected = run_model(model, p.feeds)[0]
        y = Tensor("y", case.ir_shape(expected.shape), "int8", Quant(sy, zy))
    return expected, case.to_onnx(reference.run(ir_graph(case, p, y), p.ir_feeds)["y"])


# ------------------------------------------------------------------------------------------------
# cases


def conv(
    id: str,
    x: tuple[int, int, int, int],
    cout: int,
    k: tuple[int, int],
    *,
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    dilations: tuple[int, int] = (1, 1),
    groups: int = 1,
    bias: bool = True,
    act: tuple[float | None, float | None] | None = None,
) -> Case:
    cg = x[1] // groups
    ops: list[Operand | None] = [
        Operand(randn(*x)),
        Operand(randn(cout, cg, *k, scale=(cg * k[0] * k[1]) ** -0.5), "weight"),
    ]
    if bias:
        ops.append(Operand(randn(cout, scale=0.3), "bias"))
    onnx_attrs = dict(kernel_shape=k, strides=strides, pads=pads, dilations=dilations, group=groups)
    ir_attrs = dict(strides=strides, pads=pads, dilations=dilations, groups=groups)
    return Case(f"conv_{id}", "Conv", ops, onnx_attrs, "conv2d", ir_attrs, nhwc=True, act=act)


def fc(id: str, n: int, k: int, m: int, *, bias: bool = True, matmul: bool = False, act: Any = None) -> Case:
    x, w = randn(n, k), randn(m, k, scale=k**-0.5)
    if matmul:  # ONNX MatMul weight [K, M]: IR [M, K], output channels along ONNX axis 1
        wt = Operand(w.T.copy(), "weight", axis=1, to_ir=lambda v: v.T.copy())
        return one(f"fc_{id}", "MatMul", "fully_connected", x, wt, act=act)
    b = [Operand(randn(m, scale=0.3), "bias")] if bias else []
    return one(f"fc_{id}", "Gemm", "fully_connected", x, Operand(w, "weight"), *b, attrs={"transB": 1}, ir={}, act=act)


def binary(op: str, a: tuple[int, ...], b: tuple[int, ...], act: Any = None) -> Case:
    id = f"{op.lower()}_{'x'.join(map(str, a))}_{'x'.join(map(str, b))}" + ("_act" if act else "")
    return Case(id, op, [Operand(randn(*a, scale=2)), Operand(randn(*b))], {}, op.lower(), {}, act=act)


def clip(id: str, lo: float | None, hi: float | None, shape: tuple[int, ...] = (2, 3, 4, 5), **kw: Any) -> Case:
    bounds = [None if v is None else param(v, dtype=np.float32) for v in (lo, hi)]
    op, ops = (
        ("Relu", [Operand(randn(*shape, scale=3))])
        if id == "relu"
        else ("Clip", [Operand(randn(*shape, scale=3)), *bounds])
    )
    ir = dict(act_min=-INF if lo is None else lo, act_max=INF if hi is None else hi)
    return Case(f"clip_{id}", op, ops, {}, "clip", ir, **({"out_quant": "input"} | kw))


def pool(
    op: str,
    x: tuple[int, int, int, int],
    k: tuple[int, int],
    *,
    strides: tuple[int, int] = (1, 1),
    pads: tuple[int, int, int, int] = (0, 0, 0, 0),
    include: int | None = None,
    act: Any = None,
    min_exact: float = 0.9,
) -> Case:
    attrs: dict[str, Any] = dict(kernel_shape=k, strides=strides, pads=pads)
    ir: dict[str, Any] = dict(kernel=k, strides=strides, pads=pads)
    if include is not None:
        attrs["count_include_pad"] = include
        ir["count_include_pad"] = bool(include)
    ir_op = "max_pool2d" if op == "MaxPool" else "avg_pool2d"
    id = f"{ir_op}_k{k[0]}{k[1]}_s{strides[0]}{strides[1]}_p{''.join(map(str, pads))}_i{include}" + (
        "_act" if act else ""
    )
    return Case(
        id,
        op,
        [Operand(randn(*x, scale=2))],
        attrs,
        ir_op,
        ir,
        nhwc=True,
        act=act,
        out_quant="input",
        min_exact=min_exact,
    )


def pad(shape: tuple[int, ...], pads: tuple[int, ...], value: float) -> Case:
    id = f"pad_{'x'.join(map(str, shape))}_{'_'.join(map(str, pads))}_{value}"
    x, ir = randn(*shape, scale=2), {"pads": pads, "value": value}
    return one(
        id,
        "Pad",
        "pad",
        x,
        param(*pads),
        param(value, dtype=np.float32),
        attrs={"mode": "constant"},
        ir=ir,
        out_quant="input",
    )


def param(*values: float, dtype: type = np.int64) -> Operand:
    """An ONNX-only constant input (Reshape's shape, Pad's pads and value, Clip's bounds)."""
    return Operand(np.array(values if len(values) > 1 or dtype is np.int64 else values[0], dtype), "param")


def one(
    id: str,
    op: str,
    ir_op: str,
    *operands: np.ndarray | Operand,
    attrs: dict[str, Any] | None = None,
    ir: dict[str, Any] | None = None,
    **kw: Any,
) -> Case:
    """A case whose float arrays are activations; IR attributes default to the ONNX ones."""
    ops: list[Operand | None] = [o if isinstance(o, Operand) else Operand(o) for o in operands]
    return Case(id, op, ops, attrs or {}, ir_op, dict(attrs or {}) if ir is None else ir, **kw)


CONCATS: list[tuple[int, list[tuple[int, ...]]]] = [
    (0, [(2, 3), (1, 3)]),
    (1, [(1, 2, 4, 4), (1, 3, 4, 4), (1, 1, 4, 4)]),
    (-1, [(2, 3, 4), (2, 3, 2)]),
    (3, [(1, 4, 4, 2), (1, 4, 4, 6)]),
]
CASES: list[Case] = [
    conv("3x3", (1, 3, 8, 8), 4, (3, 3), pads=(1, 1, 1, 1)),
    conv("1x1_nobias", (2, 8, 5, 6), 6, (1, 1), bias=False),
    conv("stride2_asym", (1, 4, 9, 8), 8, (3, 3), strides=(2, 2), pads=(0, 1, 1, 0)),
    conv("dilation2", (1, 4, 10, 10), 5, (3, 3), pads=(2, 2, 2, 2), dilations=(2, 2)),
    conv("dilation_rect", (1, 3, 11, 9), 4, (2, 3), dilations=(3, 1), pads=(1, 0, 2, 1)),
    conv("depthwise", (1, 8, 7, 7), 8, (3, 3), pads=(1, 1, 1, 1), groups=8),
    conv("depthwise_mult2", (1, 4, 6, 6), 8, (3, 3), strides=(2, 2), pads=(1, 1, 0, 0), groups=4),
    conv("grouped", (1, 6, 6, 5), 9, (3, 3), pads=(1, 0, 1, 2), groups=3),
    conv("rect_stride", (2, 3, 10, 7), 4, (3, 1), strides=(2, 1), pads=(1, 0, 1, 0)),
    conv("5x5_stride3", (1, 2, 13, 11), 3, (5, 5), strides=(3, 3), pads=(2, 1, 2, 1)),
    conv("mixed", (1, 8, 11, 12), 6, (3, 2), strides=(2, 3), pads=(1, 2, 0, 1), dilations=(2, 1), groups=2),
    conv("relu", (1, 3, 8, 8), 6, (3, 3), pads=(1, 1, 1, 1), act=(0.0, None)),
    conv("relu6", (1, 4, 6, 6), 4, (3, 3), act=(0.0, 6.0)),
    fc("gemm", 4, 16, 10),
    fc("gemm_nobias", 3, 32, 12, bias=False),
    fc("gemm_batch1", 1, 64, 40),
    fc("gemm_relu", 5, 24, 8, act=(0.0, None)),
    fc("matmul", 4, 20, 9, matmul=True),
    binary("Add", (2, 3, 4, 5), (2, 3, 4, 5)),
    binary("Add", (2, 3, 4, 5), (5,)),
    binary("Add", (2, 3, 4, 5), (1, 3, 1, 1)),
    binary("Add", (3, 1), (1, 8)),
    binary("Add", (1, 6, 6, 4), (1, 6, 6, 4), act=(0.0, None)),
    binary("Mul", (2, 3, 4, 5), (2, 3, 4, 5)),
    binary("Mul", (2, 3, 4, 5), (1, 1, 4, 1)),
    binary("Mul", (4, 7), (7,)),
    binary("Mul", (4, 1, 5), (3, 1), act=(-1.0, 1.0)),
    clip("relu", 0.0, None),
    clip("relu6", 0.0, 6.0, (1, 4, 5, 6)),
    clip("minmax", -1.0, 2.0, (3, 17)),
    clip("max_only", None, 1.5),
    clip("requant", -1.0, 2.0, (4, 30), out_quant=(0.015, -30), modes=("int8",)),
    one("sigmoid", "Sigmoid", "sigmoid", randn(2, 3, 5, scale=3)),
    one("sigmoid_4d", "Sigmoid", "sigmoid", randn(1, 6, 4, 4, scale=6)),
    one("tanh", "Tanh", "tanh", randn(4, 20, scale=2)),
    pool("MaxPool", (1, 4, 8, 8), (2, 2), strides=(2, 2)),
    pool("MaxPool", (1, 3, 7, 7), (3, 3), pads=(1, 1, 1, 1)),
    pool("MaxPool", (2, 3, 9, 8), (3, 3), strides=(2, 2), pads=(0, 1, 1, 0)),
    pool("MaxPool", (1, 5, 6, 9), (2, 3), strides=(1, 2), act=(0.0, None)),
    pool("AveragePool", (1, 4, 8, 8), (2, 2), strides=(2, 2), min_exact=0.75),
    pool("AveragePool", (1, 3, 7, 7), (3, 3), pads=(1, 1, 1, 1), include=0),
    pool("AveragePool", (1, 3, 7, 7), (3, 3), pads=(1, 1, 1, 1), include=1),
    pool("AveragePool", (2, 3, 9, 8), (3, 2), strides=(2, 2), pads=(0, 1, 1, 0), include=0, min_exact=0.75),
    pool("AveragePool", (2, 3, 9, 8), (3, 2), strides=(2, 2), pads=(0, 1, 1, 0), include=1, min_exact=0.75),
    pool("AveragePool", (1, 4, 6, 6), (2, 2), act=(0.0, 1.0), min_exact=0.75),
    one(
        "global_avg_pool",
        "GlobalAveragePool",
        "avg_pool2d",
        randn(2, 16, 5, 7),
        ir={"kernel": (5, 7)},
        nhwc=True,
        out_quant="input",
    ),
    one("reshape_3d_2d", "Reshape", "reshape", randn(2, 3, 4), param(6, 4), out_quant="input"),
    one("reshape_flatten", "Reshape", "reshape", randn(1, 8, 2, 2), param(1, -1), out_quant="input"),
    one("transpose_0231", "Transpose", "transpose", randn(1, 3, 4, 5), attrs={"perm": (0, 2, 3, 1)}, out_quant="input"),
    one("transpose_10", "Transpose", "transpose", randn(6, 7), attrs={"perm": (1, 0)}, out_quant="input"),
    one("transpose_201", "Transpose", "transpose", randn(2, 3, 4), attrs={"perm": (2, 0, 1)}, out_quant="input"),
    *[
        one(
            f"concat_axis{axis}_{len(shapes)}",
            "Concat",
            "concat",
            *[randn(*s) for s in shapes],
            attrs={"axis": axis},
            out_quant="input",
            shared_quant=True,
        )
        for axis, shapes in CONCATS
    ],
    pad((1, 3, 4, 4), (0, 0, 1, 2, 0, 0, 2, 1), 0.0),
    pad((3, 5), (1, 2, 0, 3), 1.5),
    pad((2, 4, 3), (0, 1, -1, 1, -2, 2), -0.75),
    one("softmax_2d", "Softmax", "softmax", randn(3, 10, scale=3), attrs={"axis": -1}, ir={}),
    one("softmax_3d", "Softmax", "softmax", randn(2, 4, 7, scale=2), attrs={"axis": -1}, ir={}),
    one("softmax_wide", "Softmax", "softmax", randn(2, 100, scale=4), attrs={"axis": -1}, ir={}),
    one("requantize", "Identity", "requantize", randn(3, 40, scale=2), out_quant=(0.021, 7), modes=("int8",)),
    one("requantize_up", "Identity", "requantize", randn(3, 40, scale=0.5), out_quant=(0.0031, -5), modes=("int8",)),
]


@pytest.mark.parametrize("case", [c for c in CASES if "float" in c.modes], ids=lambda c: c.id)
def test_float_matches_onnxruntime(case: Case) -> None:
    expected, got = run_case(case, "float")
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("case", [c for c in CASES if "int8" in c.modes], ids=lambda c: c.id)
def test_int8_matches_onnxruntime_qdq(case: Case) -> None:
    expected, got = run_case(case, "int8")
    assert got.dtype == np.int8 and got.shape == expected.shape
    diff = np.abs(got.astype(np.int32) - expected.astype(np.int32))
    assert diff.max() <= 1, f"off by {diff.max()} steps"
    assert np.mean(diff == 0) >= case.min_exact, f"only {np.mean(diff == 0):.1%} exact"
    assert len(np.unique(expected)) > 4  # the case exercises a real range of values


# ------------------------------------------------------------------------------------------------
# quantize / dequantize ops against onnxruntime (exact: both are elementwise float32 formulas)


def graph1(op: str, inputs: list[Tensor], y: Tensor, **attrs: Any) -> Graph:
    g = Graph(op)
    for t in [*inputs, y]:
        g.add_tensor(t)
    g.inputs, g.outputs = [t.name for t in inputs if not t.is_constant], [y.name]
    g.add_node(Node("n0", op, [t.name for t in inputs], [y.name], attrs))
    return g


QUANTIZE_CASES = [
    (np.float32(0.5), np.int8(0), None),
    (np.float32(0.5), np.int8(3), None),
    (np.float32(0.037), np.int8(-17), None),
    (np.array([0.25, 0.05, 0.5], np.float32), np.array([0, 4, -9], np.int8), 1),
]


@pytest.mark.parametrize("scale,zp,axis", QUANTIZE_CASES)
def test_quantize_matches_onnxruntime(scale: np.ndarray, zp: np.ndarray, axis: int | None) -> None:
    ties = np.arange(-24, 25, dtype=np.float32) * 0.25  # k/4: many exact halves of the scale 0.5
    x = np.concatenate([ties, randn(45, scale=4), np.array([1e3, -1e3], np.float32)]).reshape(2, 3, 16)
    kw = {} if axis is None else {"axis": axis}
    model = single_op_model(
        "QuantizeLinear",
        [Input("x", x), Input("s", scale, True), Input("z", zp, True)],
        kw,
        out_dtype=onnx.TensorProto.INT8,
    )
    expected = run_model(model, {"x": x})[0]
    q = Quant(scale, zp, axis)
    got = reference.run(graph1("quantize", [Tensor("x", x.shape)], Tensor("y", x.shape, "int8", q)), {"x": x})["y"]
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("scale,zp,axis", QUANTIZE_CASES)
def test_dequantize_matches_onnxruntime(scale: np.ndarray, zp: np.ndarray, axis: int | None) -> None:
    x = np.arange(-128, 128, dtype=np.int32).astype(np.int8)[:96].reshape(2, 3, 16)
    kw = {} if axis is None else {"axis": axis}
    model = single_op_model("DequantizeLinear", [Input("x", x), Input("s", scale, True), Input("z", zp, True)], kw)
    expected = run_model(model, {"x": x})[0]
    q = Quant(scale, zp, axis)
    got = reference.run(graph1("dequantize", [Tensor("x", x.shape, "int8", q)], Tensor("y", x.shape)), {"x": x})["y"]
    np.testing.assert_array_equal(got, expected)


# ------------------------------------------------------------------------------------------------
# hand-checked integer numerics


@pytest.mark.parametrize(
    "real,expected",
    [
        (0.5, (1 << 30, 0)),
        (1.0, (1 << 30, 1)),
        (0.75, (1610612736, 0)),
        (3.0, (1610612736, 2)),
        (0.1, (1717986918, -3)),  # 0.8 * 2**31 = 1717986918.4
        (1 - 2**-40, (1 << 30, 1)),  # mantissa rounds up to 2**31: renormalized
        (2.0**29, (1 << 30, 30)),
        (0.0, (0, 0)),
        (1e-12, (0, 0)),  # below 2**-32: every result would be 0
    ],
)
def test_quantize_multiplier(real: float, expected: tuple[int, int]) -> None:
    assert Q.quantize_multiplier(real) == expected


@pytest.mark.parametrize("real", [-0.5, math.inf, math.nan, 2.0**30])
def test_quantize_multiplier_rejects(real: float) -> None:
    with pytest.raises(ValueError):
        Q.quantize_multiplier(real)


def test_rounding_divide_by_pot_ties_away_from_zero() -> None:
    x = np.array([6, -6, 2, -2, 10, -10, 7, -7, 5, -5])  # / 4
    np.testing.assert_array_equal(Q.rounding_divide_by_pot(x, 2), [2, -2, 1, -1, 3, -3, 2, -2, 1, -1])


def test_requantize_hand_checked() -> None:
    m, s = Q.quantize_multiplier(0.75 / 16)  # (1610612736, -4): acc * 0.75 exactly, then / 16
    assert (m, s) == (1610612736, -4)
    acc = np.array([32, -32, 16, -16, 96, -96, 8, -8])  # 1.5 -1.5 .75 -.75 4.5 -4.5 .375 -.375
    np.testing.assert_array_equal(Q.requantize(acc, m, s), [2, -2, 1, -1, 5, -5, 0, 0])
    m, s = Q.quantize_multiplier(3.0)  # left shift 2, then * 0.75
    np.testing.assert_array_equal(Q.requantize(np.array([5, -7, 0]), m, s), [15, -21, 0])
    # per-channel multipliers broadcast along the last axis
    got = Q.requantize(np.array([[32, 32], [-32, -32]]), np.array([1610612736, 1 << 30]), np.array([-4, 0]))
    np.testing.assert_array_equal(got, [[2, 16], [-2, -16]])


def test_requantize_double_rounding() -> None:
    """The high multiply rounds ties up (+2**30, as CMSIS-NN's non-saturating doubling high mul);
    only the final shift rounds half away from zero. Pinned so the C and Rust kernels match."""
    m, s = Q.quantize_multiplier(0.5)
    np.testing.assert_array_equal(Q.requantize(np.array([3, -3, 5, -5]), m, s), [2, -1, 3, -2])
    m, s = Q.quantize_multiplier(0.25)  # (2**30, -1): both roundings in play
    acc = np.array([6, -6, 2, -2, 1, -1, 3, -3, 5, -5])
    np.testing.assert_array_equal(Q.requantize(acc, m, s), [2, -2, 1, -1, 1, 0, 1, -1, 2, -1])


def test_rounding_divide() -> None:
    num, den = np.array([3, -3, 5, -5, 7, -7, 4, -4, 0]), np.array([2, 2, 2, 2, 3, 3, 3, 3, 5])
    np.testing.assert_array_equal(Q.rounding_divide(num, den), [2, -2, 3, -3, 2, -2, 1, -1, 0])


def test_quantize_half_to_even() -> None:
    x = np.array([0.25, 0.75, -0.25, -0.75, 1.25, -1.25, 100.0, -100.0], np.float32)  # / 0.5: ties
    np.testing.assert_array_equal(Q.quantize(x, Quant(0.5, 0)), [0, 2, 0, -2, 2, -2, 127, -128])
    np.testing.assert_array_equal(Q.quantize(x, Quant(0.5, 3)), [3, 5, 3, 1, 5, 1, 127, -128])


def test_round_half_away_and_constants() -> None:
    np.testing.assert_array_equal(Q.round_half_away(np.array([0.5, -0.5, 1.5, -1.5, 2.5, 0.49])), [1, -1, 2, -2, 3, 0])
    q = Quant(0.25, -10)
    assert Q.activation_bounds(0.125, INF, q) == (-9, 127)
    assert Q.activation_bounds(-0.125, 0.375, q) == (-11, -8)
    assert Q.activation_bounds(-INF, 1e6, q) == (-128, 127)
    assert [Q.quantize_constant(v, Quant(0.25, 3)) for v in (0.125, -0.125, 1e3, -1e3)] == [4, 2, 127, -128]


def test_mul_multiplier_and_softmax_output() -> None:
    assert Q.mul_multiplier(0.5, 0.5, 0.25) == (1 << 30, 1)
    e, total = np.array([1 << 20, 1 << 20]), np.array(1 << 21)
    np.testing.assert_array_equal(Q.softmax_output(e, total, Q.softmax_out_multiplier(1 / 256)), [128, 128])
    np.testing.assert_array_equal(Q.softmax_output(e, total, Q.softmax_out_multiplier(1 / 255)), [128, 128])  # 127.5
    np.testing.assert_array_equal(Q.softmax_output(np.array([1, 1, 2]), np.array(4), 1 << 16), [0, 0, 1])  # .25 .25 .5


# ------------------------------------------------------------------------------------------------
# int8 ops on hand-made inputs: exact values (onnxruntime only bounds them within a step)


def _int8_run(
    op: str, xs: list[np.ndarray], qs: list[Quant], qy: Quant, y_shape: tuple[int, ...], **attrs: Any
) -> np.ndarray:
    ts = [Tensor(f"x{i}", x.shape, "int8", q) for i, (x, q) in enumerate(zip(xs, qs, strict=True))]
    g = graph1(op, ts, Tensor("y", y_shape, "int8", qy), **attrs)
    return reference.run(g, {t.name: x.astype(np.int8) for t, x in zip(ts, xs, strict=True)})["y"]


def test_int8_add_mul_hand_checked() -> None:
    q = Quant(0.5, 0)
    a, b = np.array([100, -100, 50, 3]), np.array([100, -100, -20, -4])
    np.testing.assert_array_equal(_int8_run("add", [a, b], [q, q], q, (4,)), [127, -128, 30, -1])
    q2 = Quant(0.25, 0)  # 0.5 * 0.5 / 0.25 = 1
    np.testing.assert_array_equal(_int8_run("mul", [a, b], [q, q], q2, (4,)), [127, 127, -128, -12])
    a, b = np.array([3, -4, 10]), np.array([5, 6, 2])
    np.testing.assert_array_equal(_int8_run("mul", [a, b], [q, q], q2, (3,)), [15, -24, 20])
    np.testing.assert_array_equal(_int8_run("mul", [a, b], [q, q], q2, (3,), act_min=0.0, act_max=4.0), [15, 0, 16])


def test_int8_avg_pool_rounds_half_away() -> None:
    q = Quant(0.1, 0)
    x = np.array([1, 2, -1, -2, -1, 0, 0, 1, 3, 3]).reshape(1, 1, 10, 1)
    got = _int8_run("avg_pool2d", [x], [q], q, (1, 1, 5, 1), kernel=(1, 2), strides=(1, 2))
    np.testing.assert_array_equal(got.ravel(), [2, -2, -1, 1, 3])  # 1.5 -1.5 -0.5 0.5 3
    for zp, v, include, want in [(3, 5, True, 4), (3, 5, False, 5), (3, 6, True, 5), (-3, -6, True, -5)]:
        q = Quant(0.1, zp)  # a padded cell counts as the zero point: (v + zp) / 2
        args = dict(kernel=(1, 2), strides=(1, 1), pads=(0, 0, 0, 1), count_include_pad=include)
        assert _int8_run("avg_pool2d", [np.full((1, 1, 1, 1), v)], [q], q, (1, 1, 1, 1), **args).item() == want


def test_int8_softmax_hand_checked() -> None:
    qy = Quant(1 / 256, -128)
    got = _int8_run("softmax", [np.array([[0, 0], [5, 5], [0, -128]])], [Quant(0.1, 0)], qy, (3, 2))
    np.testing.assert_array_equal(got, [[0, 0], [0, 0], [127, -128]])


def test_int8_pad_value_rounds_half_away() -> None:
    q, x = Quant(0.25, 3), np.array([[1, 2]])
    for value, fill in [(0.125, 4), (-0.125, 2), (0.0, 3)]:
        got = _int8_run("pad", [x], [q], q, (1, 4), pads=(0, 1, 0, 1), value=value)
        np.testing.assert_array_equal(got, [[fill, 1, 2, fill]])


def _naive_conv_int8(x: np.ndarray, w: np.ndarray, b: np.ndarray, g: Graph) -> np.ndarray:
    """Scalar loops over the spec: acc = b + sum((x - zx) * w) over in-bounds taps, requantize, + zy, clamp."""
    node = next(g.nodes())
    tx, tw, y = (g.tensors[t] for t in [*node.inputs[:2], node.outputs[0]])
    assert tx.quant is not None and y.quant is not None
    (_, zx), (_, zy) = tx.quant.scalar(), y.quant.scalar()
    rq = Q.conv_requant(tx, tw, y, w.shape[0])
    lo, hi = Q.activation_bounds(node.attrs.get("act_min", -INF), node.attrs.get("act_max", INF), y.quant)
    (sh, sw), (dh, dw), (top, left, _, _) = node.attrs["strides"], node.attrs["dilations"], node.attrs["pads"]
    o_per_g, cg = w.shape[0] // node.attrs["groups"], w.shape[3]
    out = np.zeros(y.shape, np.int8)
    for n, oh, ow, o in np.ndindex(*y.shape):
        acc = int(b[o])
        for i, j, c in np.ndindex(*w.shape[1:]):
            ih, iw = oh * sh - top + i * dh, ow * sw - left + j * dw
            if 0 <= ih < x.shape[1] and 0 <= iw < x.shape[2]:
                acc += (int(x[n, ih, iw, (o // o_per_g) * cg + c]) - zx) * int(w[o, i, j, c])
        out[n, oh, ow, o] = np.clip(int(Q.requantize(np.int64(acc), rq.multipliers[o], rq.shifts[o])) + zy, lo, hi)
    return out


@pytest.mark.parametrize("id", ["conv_mixed", "conv_depthwise_mult2", "conv_stride2_asym", "conv_relu6"])
def test_int8_conv_equals_scalar_loops(id: str) -> None:
    case = next(c for c in CASES if c.id == id)
    p = prepare(case, True)
    x, w, b = p.ir_feeds["in0"], p.tensors[1].data, p.tensors[2].data
    assert w is not None and b is not None
    y_shape = case.ir_shape(run_case(case, "float")[0].shape)
    g = ir_graph(case, p, Tensor("y", y_shape, "int8", Quant(0.05, 3)))
    np.testing.assert_array_equal(reference.run(g, p.ir_feeds)["y"], _naive_conv_int8(x, w, b, g))


# ------------------------------------------------------------------------------------------------
# the interpreter: multi-node graphs, keep_all, and the errors it raises


def small_net() -> Graph:
    """x -> conv2d(relu) -> max_pool2d -> reshape -> fully_connected -> softmax, float32."""
    g = Graph("net")
    consts = {"w": randn(4, 3, 3, 2, scale=0.5), "b": randn(4), "fw": randn(10, 36, scale=0.2), "fb": randn(10)}
    for name, v in consts.items():
        g.add_tensor(Tensor(name, v.shape, data=v))
    shapes = {"x": (1, 6, 6, 2), "c": (1, 6, 6, 4), "p": (1, 3, 3, 4), "r": (1, 36), "f": (1, 10), "y": (1, 10)}
    for name, shape in shapes.items():
        g.add_tensor(Tensor(name, shape))
    g.inputs, g.outputs = ["x"], ["y"]
    # added out of order on purpose: run() follows graph.nodes(), a topological order
    g.add_node(Node("fc", "fully_connected", ["r", "fw", "fb"], ["f"]))
    g.add_node(Node("conv", "conv2d", ["x", "w", "b"], ["c"], {"pads": (1, 1, 1, 1), "act_min": 0.0}))
    g.add_node(Node("pool", "max_pool2d", ["c"], ["p"], {"kernel": (2, 2), "strides": (2, 2)}))
    g.add_node(Node("flat", "reshape", ["p"], ["r"]))
    g.add_node(Node("sm", "softmax", ["f"], ["y"]))
    g.validate()
    return g


def test_run_multi_node_and_keep_all() -> None:
    g, x = small_net(), randn(1, 6, 6, 2)
    out = reference.run(g, {"x": x})
    assert list(out) == ["y"]
    every = reference.run(g, {"x": x}, keep_all=True)
    assert {"x", "w", "c", "p", "r", "f", "y"} <= set(every)
    np.testing.assert_array_equal(every["y"], out["y"])
    values: dict[str, np.ndarray] = {"x": x}  # node by node, constants taken from the graph
    for name in ["conv", "pool", "flat", "fc", "sm"]:
        node = g.node(name)
        values[node.outputs[0]] = reference.run_node(g, node, values)[0]
    np.testing.assert_array_equal(values["y"], out["y"])
    assert every["c"].min() >= 0.0  # the fused relu
    np.testing.assert_allclose(out["y"].sum(), 1.0, rtol=1e-5)


@pytest.mark.parametrize(
    "feeds,match",
    [
        ({}, "missing feed for graph input 'x'"),
        ({"x": np.zeros((1, 6, 6, 2), np.float32), "w": np.zeros(1)}, "not graph inputs"),
        ({"x": np.zeros((1, 6, 6, 3), np.float32)}, r"float32\[1, 6, 6, 3\], expected float32\[1, 6, 6, 2\]"),
        ({"x": np.zeros((1, 6, 6, 2), np.float64)}, r"float64\[1, 6, 6, 2\], expected float32"),
    ],
)
def test_run_validates_feeds(feeds: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        reference.run(small_net(), feeds)


def test_run_rejects_wrong_declared_output() -> None:
    g = small_net()
    g.tensors["p"].shape = (1, 2, 2, 4)
    with pytest.raises(ValueError, match=r"'pool' .* computed float32\[1, 3, 3, 4\] but output 'p' is declared"):
        reference.run(g, {"x": randn(1, 6, 6, 2)})


def test_int8_quant_mismatches_raise() -> None:
    q, other, x = Quant(0.1, 0), Quant(0.2, 0), np.zeros((1, 4, 4, 1))
    with pytest.raises(ValueError, match="must share quant"):
        _int8_run("concat", [x, x], [q, other], q, (1, 4, 4, 2), axis=3)
    with pytest.raises(ValueError, match="must share quant"):
        _int8_run("avg_pool2d", [x], [q], other, (1, 2, 2, 1), kernel=(2, 2), strides=(2, 2))
    with pytest.raises(ValueError, match="must share quant"):
        _int8_run("max_pool2d", [x], [q], other, (1, 2, 2, 1), kernel=(2, 2), strides=(2, 2))
    with pytest.raises(ValueError, match="must share quant"):
        _int8_run("reshape", [x], [q], other, (16,))
    g = graph1("clip", [Tensor("x0", (3,), "int8")], Tensor("y", (3,), "int8", q))
    with pytest.raises(ValueError, match=r"'x0' \(int8\) has no quantization"):
        reference.run(g, {"x0": np.zeros(3, np.int8)})


def test_int8_conv_needs_symmetric_weights_and_int32_bias() -> None:
    case = next(c for c in CASES if c.id == "conv_3x3")
    p = prepare(case, True)
    y = Tensor("y", (1, 8, 8, 4), "int8", Quant(0.05, 0))
    reference.run(ir_graph(case, p, y), p.ir_feeds)  # as prepared: fine
    wq = p.tensors[1].quant
    assert wq is not None
    wq.zero_point[:] = 1
    with pytest.raises(ValueError, match="symmetric"):
        reference.run(ir_graph(case, p, y), p.ir_feeds)
    p = prepare(case, True)
    p.tensors[2].dtype = "float32"
    with pytest.raises(ValueError, match="must be int32"):
        reference.run(ir_graph(case, p, y), p.ir_feeds)
