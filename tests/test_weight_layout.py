"""passes/weight_layout.py: which layers store their int8 weights pre-widened, and the int16 layout."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tinysplit.backends.lower import lower, scratch_bytes
from tinysplit.backends.rust import emit_rust
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.compiler.report import make_report
from tinysplit.compiler.targets import load_target
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.weight_layout import (
    ATTR,
    choose_weight_layout,
    int8_weights,
    smlad_weights,
    stored_weight_bytes,
)

ORDER = [0, 2, 1, 3]


def q(scale: float, zp: int = 0) -> Quant:
    return Quant(np.array([scale], np.float32), np.array([zp], np.int32), None)


def small_model(cout: int = 6, cin: int = 3, units: int = 5) -> Graph:
    """int8 conv (Cin 3: K = 27, not a multiple of 4) -> depthwise conv -> fully connected."""
    rng = np.random.default_rng(0)

    def weights(shape: tuple[int, ...]) -> np.ndarray:
        return rng.integers(-127, 128, shape, np.int8)

    g = Graph()
    g.add_tensor(Tensor("x", (1, 4, 4, cin), "int8", q(0.02)))
    g.add_tensor(Tensor("w", (cout, 3, 3, cin), "int8", q(0.01), data=weights((cout, 3, 3, cin))))
    g.add_tensor(Tensor("c", (1, 4, 4, cout), "int8", q(0.05)))
    g.add_tensor(Tensor("wd", (cout, 3, 3, 1), "int8", q(0.01), data=weights((cout, 3, 3, 1))))
    g.add_tensor(Tensor("d", (1, 4, 4, cout), "int8", q(0.05)))
    g.add_tensor(Tensor("flat", (1, 16 * cout), "int8", q(0.05)))
    g.add_tensor(Tensor("wf", (units, 16 * cout), "int8", q(0.01), data=weights((units, 16 * cout))))
    g.add_tensor(Tensor("y", (1, units), "int8", q(0.1)))
    pads = {"pads": (1, 1, 1, 1), "strides": (1, 1)}
    g.add_node(Node("conv", "conv2d", ["x", "w"], ["c"], dict(pads)))
    g.add_node(Node("dw", "conv2d", ["c", "wd"], ["d"], {**pads, "groups": cout}))
    g.add_node(Node("reshape", "reshape", ["d"], ["flat"], {"shape": (1, 16 * cout)}))
    g.add_node(Node("fc", "fully_connected", ["flat", "wf"], ["y"], {}))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_auto_widens_conv_and_fc_on_a_dsp_target_only() -> None:
    g = small_model()
    wide = choose_weight_layout(g, load_target("stm32"), "auto")
    assert {n.name for n in wide.nodes() if n.attrs.get(ATTR)} == {"conv", "fc"}  # not depthwise
    assert not any(n.attrs.get(ATTR) for n in g.nodes()), "the input graph is left as it was"
    host = load_target("host")
    assert not host.dsp
    assert not any(n.attrs.get(ATTR) for n in choose_weight_layout(g, host, "auto").nodes())
    assert not any(n.attrs.get(ATTR) for n in choose_weight_layout(g, load_target("stm32"), "int8").nodes())
    assert any(n.attrs.get(ATTR) for n in choose_weight_layout(g, host, "int16").nodes())
    with pytest.raises(CompileError, match="weight layout"):
        choose_weight_layout(g, host, "int4")


def test_auto_keeps_int8_when_widened_weights_do_not_fit_the_flash_budget() -> None:
    g = small_model()
    stm32 = load_target("stm32")
    int8_bytes = sum(t.nbytes for t in g.constants())
    cost = stm32.cost
    tight = dataclasses.replace(stm32, flash_bytes=cost.reserved_flash_bytes + cost.code_flash_bytes + int8_bytes + 10)
    assert not any(n.attrs.get(ATTR) for n in choose_weight_layout(g, tight, "auto").nodes())


def test_conv_layout_doubles_pads_and_pairs_rows_per_group() -> None:
    """Rows padded to 4 values, groups in SXTB16 order, values doubled; per conv group, rows in pairs
    (a zero row after an odd last one), each pair group by group, row 0's group then row 1's."""
    groups, rows, k = 2, 3, 27  # 6 output channels in 2 groups of 3: each group pads to 2 pairs
    w = np.arange(-80, -80 + groups * rows * k, dtype=np.int8).reshape(groups * rows, 3, 3, 3)
    wide = smlad_weights("conv2d", w, groups)
    assert wide.dtype == np.int16 and wide.size == groups * 4 * 28
    blocks = wide.reshape(groups, 2, 7, 2, 4)  # group, pair, value group, row in pair, value
    flat = w.reshape(groups * rows, k).astype(np.int16)
    for g in range(groups):
        for r in range(4):
            for kk in range(28):
                want = 2 * flat[g * rows + r, kk] if r < rows and kk < k else 0
                assert blocks[g, r // 2, kk // 4, r % 2, ORDER.index(kk % 4)] == want


def test_fc_layout_interleaves_blocks_of_four_rows() -> None:
    w = np.arange(-30, 5 * 6 - 30, dtype=np.int8).reshape(5, 6)  # 5 units (pads to 8), depth 6 (pads to 8)
    wide = smlad_weights("fully_connected", w).reshape(2, 2, 4, 4)  # block, group, row in block, value
    for u in range(8):
        for k in range(8):
            want = w[u, k] if u < 5 and k < 6 else 0
            assert wide[u // 4, k // 4, u % 4, ORDER.index(k % 4)] == want


def test_lowering_report_and_rust_follow_the_attribute() -> None:
    g = plan_memory(choose_weight_layout(small_model(), load_target("stm32"), "auto"), scratch_bytes)
    kernels = [c.kernel for c in lower(g)]
    assert kernels == ["conv_s8_wide", "depthwise_conv_s8", "", "fully_connected_s8_wide"]
    int8_bytes = sum(t.nbytes for t in g.constants())
    widened = 2 * 6 * 28 + 2 * 8 * 96  # conv rows padded to 28; fc units padded to 8
    assert stored_weight_bytes(g) == int8_bytes + widened - 6 * 27 - 5 * 96
    report = make_report(g, load_target("stm32"), "small")
    assert report["memory"]["weight_bytes"] == stored_weight_bytes(g)
    assert report["memory"]["widened_weight_layers"] == 2
    assert [c.kernel for c in lower(int8_weights(g))] == ["conv_s8", "depthwise_conv_s8", "", "fully_connected_s8"]


def test_rust_backend_keeps_int8_weights(tmp_path: Path) -> None:
    """Stable Rust has no SMLAD: the crate keeps the int8 kernels and weights whatever the C side stores."""
    g = plan_memory(choose_weight_layout(small_model(), load_target("stm32"), "auto"), scratch_bytes)
    written = emit_rust(g, tmp_path)
    model = next(p for p in written if p.name == "lib.rs" and "runtime" not in p.parts)
    text = model.read_text()
    assert "conv_s8(" in text and "fully_connected_s8(" in text
    assert "_wide" not in text and "i16" not in text
