"""ts_depthwise_conv_s8 on the shapes its fast paths special-case, bit for bit against the reference.

The 3x3 fast path (multiplier 1, stride 1 or 2 and dilation 1 along H; anything along W) copies two
channels into int16 planes with the vertical padding written out and runs four outputs of a column
per step, with a separate tail for the last one to three; every other shape takes the general path.
The cases cover both and the borders between them: odd widths and heights, every height modulo 4,
outputs shorter than one step, padding on all sides (asymmetric, wider than the kernel), stride
(2 and 3) and dilation along either axis, channel counts that are not a multiple of 4, multiplier > 1,
clamped activations, batches, and channels that fall back to plain C (shift >= 0) beside fast ones.

Host: the portable and the DSP-modelled builds (tests/c_runtime.py). Cortex-M4: one program of all
cases on QEMU (the inline-assembly path), through compiler/harness.py.
"""

from __future__ import annotations

import ctypes
from dataclasses import replace
from pathlib import Path

import c_runtime as crt
import numpy as np
import pytest
from test_kernels_c import ConvCase, QConv, assert_same, conv_device_layer, make_qconv, run_device_program, run_ref

from tinysplit.backends.lower import scratch_bytes

INF = float("inf")

CASES = [  # x (N, H, W, C), Cout, kernel, ...; groups = C is set below
    ConvCase("dscnn_like", (1, 25, 5, 12), 12, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("h_mod4_0_c5", (1, 8, 3, 5), 5, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("h_mod4_2_relu", (1, 6, 7, 4), 4, (3, 3), pads=(1, 1, 1, 1), act=(0.0, INF)),
    ConvCase("h_mod4_3_relu6", (1, 9, 4, 7), 7, (3, 3), pads=(1, 1, 1, 1), act=(0.0, 6.0)),
    ConvCase("one_row", (1, 1, 6, 3), 3, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("two_rows_valid", (1, 4, 4, 6), 6, (3, 3)),
    ConvCase("pads_asym_wide", (1, 5, 5, 9), 9, (3, 3), pads=(3, 0, 2, 4)),
    ConvCase("kernel_over_input", (1, 2, 2, 4), 4, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("stride_w2", (1, 7, 9, 6), 6, (3, 3), strides=(1, 2), pads=(1, 1, 1, 0)),
    ConvCase("dilation_w2", (1, 6, 8, 5), 5, (3, 3), dilations=(1, 2), pads=(1, 2, 1, 2)),
    ConvCase("stride_h2", (1, 9, 6, 8), 8, (3, 3), strides=(2, 1), pads=(1, 1, 1, 1)),
    ConvCase("stride2", (1, 9, 9, 6), 6, (3, 3), strides=(2, 2), pads=(0, 0, 1, 1)),
    ConvCase("stride_h2_mod4_3", (1, 13, 5, 5), 5, (3, 3), strides=(2, 1), pads=(1, 1, 1, 1)),
    ConvCase("stride2_mod4_2_relu", (1, 12, 4, 3), 3, (3, 3), strides=(2, 2), pads=(0, 1, 1, 0), act=(0.0, INF)),
    ConvCase("stride2_two_rows", (1, 4, 3, 2), 2, (3, 3), strides=(2, 2), pads=(1, 1, 1, 1)),
    ConvCase("stride3", (1, 10, 6, 4), 4, (3, 3), strides=(3, 1), pads=(1, 1, 1, 1)),
    ConvCase("dilation_h2", (1, 9, 6, 4), 4, (3, 3), dilations=(2, 1), pads=(2, 1, 2, 1)),
    ConvCase("mult2", (1, 6, 5, 3), 6, (3, 3), pads=(1, 1, 1, 1)),
    ConvCase("k5x3", (1, 7, 6, 4), 4, (5, 3), pads=(2, 1, 2, 1)),
    ConvCase("batch2_c3_no_bias", (2, 7, 3, 3), 3, (3, 3), pads=(1, 1, 1, 1), bias=False),
    ConvCase("left_shift", (1, 5, 4, 8), 8, (3, 3), pads=(1, 1, 1, 1), tiny=True),
]


def dw_case(c: ConvCase) -> ConvCase:
    return replace(c, groups=c.x[3])


def mixed_fallback(q: QConv) -> QConv:
    """Every third channel's requantization with a left shift (multiplier in [0.5, 1) times 2), and
    the next channel's bias past 2^30 (the doubled accumulator would overflow; the fast path takes
    |bias| <= 2^29): those channels take its plain-C fallback, the others the fast path. The
    reference is then the portable host build, itself checked against reference.py in
    test_kernels_c."""
    assert q.bias is not None
    shift, bias = q.shift.copy(), q.bias.copy()
    shift[::3] = 1
    bias[1::3] = np.where(np.arange(len(bias[1::3])) % 2 == 0, 1, -1) * ((1 << 30) + 12345)
    return replace(q, shift=shift, bias=bias)


@pytest.fixture(scope="module")
def runtimes() -> list[crt.CRuntime]:
    return [crt.load(v) for v in crt.VARIANTS]


def w_hwc(q: QConv) -> np.ndarray:
    return q.w[..., 0].transpose(1, 2, 0)  # [Cout, KH, KW, 1] -> [KH, KW, Cout]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_depthwise_shapes(case: ConvCase, runtimes: list[crt.CRuntime]) -> None:
    case = dw_case(case)
    q = make_qconv(case)
    want = run_ref(q.graph, q.feeds)
    for rt in runtimes:
        got = rt.conv_s8(q.x, w_hwc(q), q.bias, q.multiplier, q.shift, q.params, case.out_shape(), depthwise=True)
        assert_same(got, want, f"ts_depthwise_conv_s8 {case.id} [{rt.variant}]")


def test_depthwise_mixed_fallback(runtimes: list[crt.CRuntime]) -> None:
    case = dw_case(CASES[0])
    q = mixed_fallback(make_qconv(case))
    portable, dsp = (next(rt for rt in runtimes if rt.variant == v) for v in ("portable", "dsp"))
    args = (q.x, w_hwc(q), q.bias, q.multiplier, q.shift, q.params, case.out_shape())
    want = portable.conv_s8(*args, depthwise=True)
    assert_same(dsp.conv_s8(*args, depthwise=True), want, "ts_depthwise_conv_s8 mixed fallback [dsp]")


def test_scratch_matches_lower(runtimes: list[crt.CRuntime]) -> None:
    """backends/lower.py sizes the arena's scratch with the C kernel's own formula (DSP build)."""
    dsp = next(rt for rt in runtimes if rt.variant == "dsp")
    for case in map(dw_case, CASES):
        q = make_qconv(case)
        dims = [crt.Dims(*case.x), crt.Dims(1, *w_hwc(q).shape), crt.Dims(*case.out_shape())]
        size = dsp.lib.ts_depthwise_conv_s8_get_buffer_size(ctypes.byref(q.params), *map(ctypes.byref, dims))
        assert scratch_bytes(q.graph, q.graph.node("n0")) == size, case.id


def test_depthwise_on_cortex_m4(tmp_path: Path, runtimes: list[crt.CRuntime]) -> None:
    """Every case (and the mixed fallback) on QEMU mps2-an386: the inline-assembly column loop."""
    layers = [conv_device_layer(i, case, depthwise=True) for i, case in enumerate(CASES)]
    case = dw_case(CASES[0])
    q = mixed_fallback(make_qconv(case))
    portable = next(rt for rt in runtimes if rt.variant == "portable")
    want = portable.conv_s8(q.x, w_hwc(q), q.bias, q.multiplier, q.shift, q.params, case.out_shape(), depthwise=True)
    layers.append(conv_device_layer(len(layers), replace(case, id="mixed_fallback"), True, q, want))
    run_device_program(layers, tmp_path)
