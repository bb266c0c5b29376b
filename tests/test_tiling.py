"""Patch-based execution (passes/tiling.py) and multi-core C (backends/c_multicore.py): tiled equals
untiled bit for bit, in the reference and in generated C, and patching halves the arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from mobilenet_v2_like import mobilenet_v2_like

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.c_multicore import emit_c_multicore
from tinysplit.backends.lower import scratch_bytes
from tinysplit.compiler import frontend, reference
from tinysplit.compiler.calibration import load_calibration
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.harness import IOSpec, run_host
from tinysplit.compiler.harness_threads import build_host_threads, run_threads
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.compiler.tiling_report import tiling_markdown, tiling_report
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.quantize import quantize
from tinysplit.passes.tiling import PatchPlan, patch_schedule, stage_depths

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"


@pytest.fixture(scope="module")
def mobilenet() -> Graph:
    graph = canonicalize(frontend.load(mobilenet_v2_like()))
    calibration = np.random.default_rng(0).random((16, *graph.tensors[graph.inputs[0]].shape), dtype=np.float32)
    quantized = quantize(graph, load_calibration(calibration, graph), "minmax", io_dtype="int8")
    return plan_memory(quantized, scratch_bytes)


def specs(graph: Graph, names: list[str]) -> list[IOSpec]:
    return [IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size) for n in names]


def int8_input(graph: Graph, seed: int) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed).integers(-128, 128, size=shape, dtype=np.int8)


def reference_out(graph: Graph, x: np.ndarray) -> np.ndarray:
    return reference.run(graph, {graph.inputs[0]: x})[graph.outputs[0]]


@pytest.mark.parametrize(("n_patches", "depth"), [(2, 1), (3, 3), (4, "auto"), (8, "auto"), (5, None)])
def test_patched_reference_equals_untiled(mobilenet: Graph, n_patches: int, depth: int | str | None) -> None:
    patched = patch_schedule(mobilenet, n_patches, depth)
    plan = patched.metadata["patching"]
    assert isinstance(plan, PatchPlan) and 1 < len(plan.patches) == plan.n_patches <= n_patches
    assert any(n.op == "write_rows" for n in patched.nodes())
    for seed in (0, 1):
        x = int8_input(mobilenet, seed)
        np.testing.assert_array_equal(reference_out(patched, x), reference_out(mobilenet, x))


def test_patching_halves_the_arena(mobilenet: Graph) -> None:
    before = mobilenet.metadata["memory"]
    patched = patch_schedule(mobilenet, 8, "auto")
    after = patched.metadata["memory"]
    assert after.arena_bytes <= 0.5 * before.arena_bytes
    assert after.arena_bytes < before.lower_bound_bytes  # below the untiled plan's layer-wise bound
    plan = patched.metadata["patching"]
    assert plan.macs_patched > plan.macs_untiled  # halo rows are computed twice
    report = tiling_report(mobilenet, patched, cores=2)
    assert report["peak_ram_after"]["arena_bytes"] == after.arena_bytes
    assert report["peak_ram_ratio"] <= 0.5 and 1.0 < report["predicted_speedup"] <= 2.0
    assert "row bands" in tiling_markdown(report)


def test_stage_ends_where_one_tensor_leaves(mobilenet: Graph) -> None:
    depths = stage_depths(mobilenet)
    assert depths[:6] == [1, 2, 3, 4, 5, 6]  # stem, block 1, block 2: a chain
    assert 7 not in depths  # block 3's expand conv: its input still feeds the residual add


def test_patch_schedule_rejects_zero_patches(mobilenet: Graph) -> None:
    with pytest.raises(CompileError, match="n_patches"):
        patch_schedule(mobilenet, 0)


def test_patched_c_matches_reference(mobilenet: Graph, tmp_path: Path) -> None:
    patched = patch_schedule(mobilenet, 4, "auto")
    emit_c(patched, tmp_path / "c")
    x = int8_input(mobilenet, 2)
    out = run_host(tmp_path / "c", [x], specs(patched, patched.inputs), specs(patched, patched.outputs), tmp_path / "b")
    np.testing.assert_array_equal(out[0].reshape(-1), reference_out(mobilenet, x).reshape(-1))


def test_patched_multicore_c(mobilenet: Graph, tmp_path: Path) -> None:
    """Both at once: the patched graph's layers split over threads."""
    patched = patch_schedule(mobilenet, 3, "auto")
    emit_c_multicore(patched, tmp_path / "c")
    app = build_host_threads(
        tmp_path / "c", specs(patched, patched.inputs), specs(patched, patched.outputs), tmp_path / "b"
    )
    x = int8_input(mobilenet, 3)
    for n in (1, 3):
        out, _ = run_threads(app, [x], specs(patched, patched.inputs), specs(patched, patched.outputs), n)
        np.testing.assert_array_equal(out[0].reshape(-1), reference_out(mobilenet, x).reshape(-1))


def test_default_c_backend_is_single_core(mobilenet: Graph, tmp_path: Path) -> None:
    emit_c(mobilenet, tmp_path / "c")
    text = (tmp_path / "c" / "model.c").read_text()
    assert "run_worker" not in text and "ts_platform_barrier" not in text


@pytest.mark.parametrize("name", ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx"])
def test_multicore_c_bit_exact_1_to_4(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} is not on this machine")
    graph, _ = build_graph(SHARED / name, CompileOptions(target="host"))
    emit_c_multicore(graph, tmp_path / "c")
    ins, outs = specs(graph, graph.inputs), specs(graph, graph.outputs)
    app = build_host_threads(tmp_path / "c", ins, outs, tmp_path / "b")
    assert "rows split over cores" in (tmp_path / "c" / "model.c").read_text()
    for seed in (0, 1):
        x = int8_input(graph, seed)
        want = reference_out(graph, x).reshape(-1)
        for n in range(1, 5):
            got, _ = run_threads(app, [x], ins, outs, n)
            np.testing.assert_array_equal(got[0], want, err_msg=f"{name}: {n} threads")
