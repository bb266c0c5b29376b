"""The float32 kernels' register-blocked paths (runtime_c/src/mat_mult_f32.c) and their packed weights.

On the host the portable C path runs (tests/c_runtime.py): every shape that reaches a different
branch of the blocked loops (pixels per group, rows per block, K per loop iteration, the depthwise
column groups, scratch or none) against the reference interpreter, within 1e-5 relative. On the
emulated Cortex-M4 one small model with every float kernel runs twice, with the VLDM/VMLA assembly
and with its portable C path (-DTS_NO_F32_ASM): both sum in the same order with one rounding per
multiply and per add, so their outputs must be equal, and equal to the reference within tolerance.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import c_runtime as crt
import numpy as np
import pytest
from test_kernels_c import ConvCase, PoolCase, assert_close, fbounds, one_node, rng, run_ref

from tinysplit.backends.c import emit_c
from tinysplit.backends.lower import (
    F32_CONV_ROWS,
    F32_FC_ROWS,
    lower,
    pack_conv_f32,
    pack_depthwise_f32,
    pack_rows_f32,
    scratch_bytes,
)
from tinysplit.compiler import reference
from tinysplit.compiler.bench import compare_outputs, io_specs, random_inputs
from tinysplit.compiler.harness import missing_tools, run_emulated
from tinysplit.compiler.ir import Graph, Node, Tensor
from tinysplit.passes.memory_plan import plan_memory

INF = math.inf


@pytest.fixture(scope="module")
def portable() -> crt.CRuntime:
    return crt.load("portable")


def randn(r: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0) -> np.ndarray:
    return (r.standard_normal(shape) * scale).astype(np.float32)


# -------------------------------------------------------------------------------------------------
# packed layouts


def test_pack_rows_interleaves_blocks_of_rows_k_by_k() -> None:
    w = np.arange(5 * 3, dtype=np.float32).reshape(5, 3) + 1  # 5 rows, K = 3
    packed = pack_rows_f32(w, 4)
    assert packed.shape == (2 * 4 * 3,)
    assert packed[:12].tolist() == [1, 4, 7, 10, 2, 5, 8, 11, 3, 6, 9, 12]  # rows 0..3 for k = 0, 1, 2
    assert packed[12:].tolist() == [13, 0, 0, 0, 14, 0, 0, 0, 15, 0, 0, 0]  # row 4, then zero rows


def test_pack_conv_packs_each_group_on_its_own() -> None:
    w = np.arange(6 * 2 * 1 * 1, dtype=np.float32).reshape(6, 2, 1, 1) + 1  # Cout 6, groups 2: 3 rows each
    packed = pack_conv_f32(w, 2)
    assert packed.size == 2 * F32_CONV_ROWS * 2
    assert packed[:8].tolist() == [1, 3, 5, 0, 2, 4, 6, 0]
    assert packed[8:].tolist() == [7, 9, 11, 0, 8, 10, 12, 0]


def test_pack_depthwise_is_column_block_row_channel() -> None:
    w = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)  # KH 2, KW 3, C 5 (HWC)
    packed = pack_depthwise_f32(w).reshape(3, 2, 2, 4)  # kw, channel block, kh, 4 channels
    for kh in range(2):
        for kw in range(3):
            for c in range(8):
                want = w[kh, kw, c] if c < 5 else 0.0
                assert packed[kw, c // 4, kh, c % 4] == want


def test_lowered_float_weights_are_packed_and_scratch_sized() -> None:
    g = one_node(
        "conv2d",
        [Tensor("x", (1, 5, 5, 3)), Tensor("w", (6, 3, 3, 3), data=np.ones((6, 3, 3, 3), np.float32))],
        Tensor("y", (1, 5, 5, 6)),
        dict(strides=(1, 1), dilations=(1, 1), pads=(1, 1, 1, 1), groups=1),
    )
    (call,) = lower(g)
    assert call.kernel == "conv_f32" and call.args[4].values.size == 2 * F32_CONV_ROWS * 27
    assert scratch_bytes(g, g.node("n0")) == 3 * 27 * 4
    fc = one_node(
        "fully_connected",
        [Tensor("x", (1, 10)), Tensor("w", (3, 10), data=np.ones((3, 10), np.float32))],
        Tensor("y", (1, 3)),
        {},
    )
    (call,) = lower(fc)
    assert call.args[6].values.size == F32_FC_ROWS * 10


# -------------------------------------------------------------------------------------------------
# host: the portable C path of every blocked shape

CONV_CASES = [
    # pixels per group: 25 = 8*3 + 1, 16 = 5*3 + 1, 14 = 4*3 + 2; rows per block: 4, 8, 5, 7, 2
    ConvCase("pointwise", (1, 5, 5, 8), 8, (1, 1), act=(0.0, INF)),
    ConvCase("pointwise_2left", (1, 2, 7, 12), 16, (1, 1)),
    ConvCase("pointwise_rows5", (1, 4, 4, 6), 5, (1, 1), act=(-0.5, 0.5)),
    ConvCase("pointwise_groups", (1, 3, 5, 8), 8, (1, 1), groups=2),
    ConvCase("pointwise_nobias", (1, 3, 3, 4), 4, (1, 1), bias=False),
    ConvCase("1x1_s2", (1, 7, 7, 16), 8, (1, 1), strides=(2, 2)),
    ConvCase("1x1_padded", (1, 3, 3, 4), 4, (1, 1), pads=(1, 0, 0, 1)),
    # K = 27 (6 groups of 4 + 3), 144 (36), 40 (10), 4 (1), 2 (K < 4), 80 (20)
    ConvCase("k27_relu", (1, 8, 8, 3), 16, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("k144_rows7", (1, 6, 7, 16), 7, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("k40_s2", (1, 13, 6, 1), 8, (10, 4), strides=(2, 2), pads=(4, 1, 5, 1), act=(0.0, INF)),
    ConvCase("k4", (1, 5, 5, 1), 4, (2, 2)),
    ConvCase("k2", (1, 4, 4, 2), 4, (1, 1), pads=(0, 0, 1, 0)),
    ConvCase("k80_s2_asym", (1, 9, 9, 20), 12, (2, 2), strides=(2, 2), pads=(0, 0, 1, 1)),
    ConvCase("dilated_groups", (1, 7, 7, 6), 6, (3, 3), dilations=(2, 2), pads=(2, 2, 2, 2), groups=3),
    ConvCase("batch2_nobias", (2, 5, 4, 5), 9, (3, 2), pads=(1, 0, 1, 1), bias=False),
    ConvCase("window_in_padding", (1, 2, 2, 4), 4, (3, 3), pads=(2, 2, 2, 2)),
]


@pytest.mark.parametrize("use_scratch", [True, False], ids=["scratch", "no_scratch"])
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_conv_f32_blocked(case: ConvCase, use_scratch: bool, portable: crt.CRuntime) -> None:
    r = rng("conv_f32_blocked", case)
    cg = case.x[3] // case.groups
    x = randn(r, case.x)
    w = randn(r, (case.cout, *case.k, cg), (cg * case.k[0] * case.k[1]) ** -0.5)
    b = randn(r, (case.cout,), 0.3) if case.bias else None
    ins = [Tensor("x", case.x), Tensor("w", w.shape, data=w)] + (
        [Tensor("b", (case.cout,), data=b)] if case.bias else []
    )
    want = run_ref(one_node("conv2d", ins, Tensor("y", case.out_shape()), case.attrs(), case.act), {"x": x})
    lo, hi = fbounds(case.act)
    params = crt.ConvF32Params(
        crt.HW(*case.strides), crt.HW(*case.dilations), crt.Padding(*case.pads), case.groups, lo, hi
    )
    got = portable.conv_f32(x, w, b, params, case.out_shape(), scratch=use_scratch)
    assert_close(got, want, f"ts_conv_f32 {case.id}")


DW_CASES = [
    # heights: 4k, 4k + 1, + 2, + 3 (the last 3 as 4 overlapping), fewer than 4; widths with padding
    ConvCase("h8", (1, 8, 3, 8), 8, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("h5_w5_c64", (1, 5, 5, 64), 64, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("h6_nobias", (1, 6, 4, 4), 4, (3, 3), pads=(1, 1, 1, 1), bias=False),
    ConvCase("h7_clip", (1, 7, 2, 12), 12, (3, 3), pads=(1, 1, 1, 1), act=(-0.5, 0.5)),
    ConvCase("h2", (1, 2, 6, 4), 4, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("h3_valid", (1, 5, 5, 8), 8, (3, 3)),
    ConvCase("kw1_s2", (1, 9, 6, 4), 4, (3, 1), strides=(1, 2), pads=(1, 0, 1, 0)),
    ConvCase("kw5", (2, 6, 7, 8), 8, (3, 5), pads=(0, 2, 2, 2)),
    ConvCase("column_in_padding", (1, 4, 1, 4), 4, (3, 3), pads=(1, 3, 1, 3)),
    ConvCase("c6_plain", (1, 5, 5, 6), 6, (3, 3), pads=(1, 1, 1, 1)),  # channels not in blocks of 4
    ConvCase("kh5_plain", (1, 6, 6, 4), 4, (5, 3), pads=(2, 1, 2, 1)),
    ConvCase("mult2_plain", (1, 5, 5, 4), 8, (3, 3), pads=(1, 1, 1, 1)),
]


@pytest.mark.parametrize("use_scratch", [True, False], ids=["scratch", "no_scratch"])
@pytest.mark.parametrize("case", DW_CASES, ids=lambda c: c.id)
def test_depthwise_conv_f32_blocked(case: ConvCase, use_scratch: bool, portable: crt.CRuntime) -> None:
    case = ConvCase(**{**case.__dict__, "groups": case.x[3]})
    r = rng("dw_f32_blocked", case)
    x = randn(r, case.x)
    w = randn(r, (case.cout, *case.k, 1), 0.3)
    b = randn(r, (case.cout,), 0.3) if case.bias else None
    ins = [Tensor("x", case.x), Tensor("w", w.shape, data=w)] + (
        [Tensor("b", (case.cout,), data=b)] if case.bias else []
    )
    want = run_ref(one_node("conv2d", ins, Tensor("y", case.out_shape()), case.attrs(), case.act), {"x": x})
    lo, hi = fbounds(case.act)
    params = crt.ConvF32Params(
        crt.HW(*case.strides), crt.HW(*case.dilations), crt.Padding(*case.pads), case.groups, lo, hi
    )
    got = portable.conv_f32(
        x, w[..., 0].transpose(1, 2, 0), b, params, case.out_shape(), depthwise=True, scratch=use_scratch
    )
    assert_close(got, want, f"ts_depthwise_conv_f32 {case.id}")


@pytest.mark.parametrize(
    "shape", [(1, 640, 128), (1, 8, 128), (1, 128, 8), (2, 90, 7), (3, 17, 9), (1, 3, 1), (1, 24, 16)], ids=str
)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_fully_connected_f32_blocked(shape: tuple[int, int, int], bias: bool, portable: crt.CRuntime) -> None:
    batches, depth, units = shape
    r = rng("fc_f32_blocked", shape, bias)
    x, w = randn(r, (batches, depth)), randn(r, (units, depth), depth**-0.5)
    b = randn(r, (units,), 0.3) if bias else None
    act = (0.0, INF) if units % 2 == 0 else None
    ins = [Tensor("x", x.shape), Tensor("w", w.shape, data=w)] + ([Tensor("b", (units,), data=b)] if bias else [])
    want = run_ref(one_node("fully_connected", ins, Tensor("y", (batches, units)), {}, act), {"x": x})
    assert_close(portable.fully_connected_f32(fbounds(act), x, w, b), want, f"ts_fully_connected_f32 {shape}")


@pytest.mark.parametrize(
    "case",
    [
        PoolCase("global_c64", (1, 8, 8, 64), (8, 8), (8, 8)),
        PoolCase("global_c40_relu", (1, 5, 3, 40), (5, 3), (1, 1), act=(0.0, INF)),
        PoolCase("3x3_s2_c16_pad_incl", (1, 7, 7, 16), (3, 3), (2, 2), (1, 1, 1, 1), count_include_pad=True),
        PoolCase("2x2_c32", (2, 4, 6, 32), (2, 2), (2, 2)),
    ],
    ids=lambda c: c.id,
)
def test_avg_pool_f32_channel_blocks(case: PoolCase, portable: crt.CRuntime) -> None:
    x = randn(rng("avg_f32", case), case.x)
    g = one_node("avg_pool2d", [Tensor("x", case.x)], Tensor("y", case.out_shape()), case.attrs("avg_pool2d"), case.act)
    params = crt.PoolF32Params(
        crt.HW(*case.kernel),
        crt.HW(*case.strides),
        crt.Padding(*case.pads),
        int(case.count_include_pad),
        *fbounds(case.act),
    )
    assert_close(portable.pool("ts_avg_pool_f32", params, x, case.out_shape()), run_ref(g, {"x": x}), case.id)


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize(
    "shapes", [((1, 9, 9, 8), (1, 9, 9, 8)), ((2, 3, 17), (2, 1, 17)), ((1, 1, 1, 33), (33,))], ids=str
)
def test_binary_f32_runs(op: str, shapes: tuple[tuple[int, ...], tuple[int, ...]], portable: crt.CRuntime) -> None:
    r = rng("binary_f32_runs", op, shapes)
    a, b = randn(r, shapes[0]), randn(r, shapes[1])
    out_shape = np.broadcast_shapes(*shapes)
    act = (0.0, INF)
    want = run_ref(
        one_node(op, [Tensor("a", shapes[0]), Tensor("b", shapes[1])], Tensor("y", out_shape), {}, act),
        {"a": a, "b": b},
    )
    fn = portable.add_f32 if op == "add" else portable.mul_f32
    assert_close(fn(act, a, b, out_shape), want, f"ts_{op}_f32 {shapes}")


# -------------------------------------------------------------------------------------------------
# emulated Cortex-M4: the assembly against its C path


class _Chain:
    """A float model built node by node, each node reading the previous one's output."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.g = Graph("f32_kernels")
        self.r = np.random.default_rng(7)
        self.last = "x"
        self.g.add_tensor(Tensor("x", shape))
        self.g.inputs = ["x"]

    def shape(self) -> tuple[int, ...]:
        return self.g.tensors[self.last].shape

    def add(
        self, op: str, out: tuple[int, ...], attrs: dict[str, Any], *consts: np.ndarray, other: str | None = None
    ) -> str:
        n = len(list(self.g.nodes()))
        names = [self.last] + ([other] if other else [])
        for i, c in enumerate(consts):
            self.g.add_tensor(Tensor(f"c{n}_{i}", c.shape, data=c))
            names.append(f"c{n}_{i}")
        y = f"t{n}"
        self.g.add_tensor(Tensor(y, out))
        self.g.add_node(Node(f"n{n}", op, names, [y], attrs))
        self.last = y
        return y

    def conv(
        self,
        cout: int,
        k: tuple[int, int],
        *,
        stride: int = 1,
        pads: tuple[int, ...] = (0, 0, 0, 0),
        groups: int = 1,
        act: tuple[float, float] | None = (0.0, INF),
    ) -> str:
        n, h, w, c = self.shape()
        oh = (h + pads[0] + pads[2] - k[0]) // stride + 1
        ow = (w + pads[1] + pads[3] - k[1]) // stride + 1
        wt = (self.r.standard_normal((cout, *k, c // groups)) * (k[0] * k[1] * c / groups) ** -0.5).astype(np.float32)
        b = (self.r.standard_normal(cout) * 0.1).astype(np.float32)
        attrs: dict[str, Any] = dict(strides=(stride, stride), dilations=(1, 1), pads=pads, groups=groups)
        if act is not None:
            attrs.update(act_min=act[0], act_max=act[1])
        return self.add("conv2d", (n, oh, ow, cout), attrs, wt, b)


def float_kernel_chain() -> Graph:
    """Every float kernel path of the emulated build: im2col and in-place convs, 3/2/1-pixel groups,
    partial row blocks, K tails, depthwise column groups of 4 and single pixels, fc blocks and
    tails, channel-block average pool, runs of add and mul, ReLU and a general clip."""
    ch = _Chain((1, 11, 7, 3))
    ch.conv(16, (3, 3), pads=(1, 1, 1, 1))  # K 27: single-k tail; 77 pixels = 25 * 3 + 2
    skip = ch.last
    ch.conv(16, (3, 3), pads=(1, 1, 1, 1), act=None)  # K 144: inner pixels copied by rows
    ch.add("add", ch.shape(), dict(act_min=0.0, act_max=INF), other=skip)
    ch.conv(12, (1, 1))  # pointwise: all pixel groups in one call, 2 left over
    ch.conv(12, (3, 3), pads=(1, 1, 1, 1), groups=12)  # depthwise, height 11 = 2 * 4 + 3
    ch.conv(12, (1, 1), stride=2, act=(-1.0, 1.0))  # 1x1 stride 2 (6 x 4 = 24 pixels)
    ch.conv(7, (2, 2), pads=(0, 0, 1, 1), act=None)  # 7 rows: a partial block
    ch.conv(8, (3, 3), pads=(1, 1, 1, 1), groups=1)  # K 63: 15 groups of 4 + 3
    ch.conv(8, (3, 3), pads=(1, 1, 1, 1), groups=8)  # depthwise, height 6 = 4 + 1 + 1
    mul_in = ch.last
    ch.add("mul", ch.shape(), {}, other=mul_in)
    n, h, w, c = ch.shape()
    ch.add("avg_pool2d", (n, 1, 1, c), dict(kernel=(h, w), strides=(1, 1), pads=(0, 0, 0, 0), count_include_pad=0))
    ch.add("reshape", (1, c), {})
    wt = (ch.r.standard_normal((19, c)) * 0.3).astype(np.float32)
    ch.add(
        "fully_connected",
        (1, 19),
        dict(act_min=0.0, act_max=INF),
        wt,
        (ch.r.standard_normal(19) * 0.1).astype(np.float32),
    )
    wt = (ch.r.standard_normal((5, 19)) * 0.3).astype(np.float32)
    ch.add("fully_connected", (1, 5), {}, wt, np.zeros(5, np.float32))
    ch.g.outputs = [ch.last]
    return ch.g


def test_assembly_equals_its_c_path_on_cortex_m4(tmp_path: Path) -> None:
    missing = missing_tools("cortex-m4")
    if missing:
        pytest.skip(f"emulated Cortex-M4 run needs {', '.join(missing)} (scripts/setup.sh installs them)")
    graph = plan_memory(float_kernel_chain(), scratch_bytes)
    kernels = {call.kernel for call in lower(graph)}
    assert {"conv_f32", "depthwise_conv_f32", "fully_connected_f32", "add_f32", "mul_f32", "avg_pool_f32"} <= kernels
    emit_c(graph, tmp_path / "c")
    inputs = random_inputs(graph, 0)
    specs = io_specs(graph, graph.inputs), io_specs(graph, graph.outputs)
    asm = run_emulated(tmp_path / "c", inputs, *specs, tmp_path / "asm", profile=False)
    plain = run_emulated(
        tmp_path / "c", inputs, *specs, tmp_path / "plain", profile=False, extra_cflags=["-DTS_NO_F32_ASM"]
    )
    expected = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))[graph.outputs[0]]
    assert compare_outputs(asm.outputs, [expected]).ok
    assert np.abs(expected).max() > 0 and len(np.unique(expected)) > 1
    # the same sums in the same order: equal values (a zero's sign may differ after ReLU)
    assert np.array_equal(asm.outputs[0], plain.outputs[0])
    assert asm.total_instructions < plain.total_instructions / 2
