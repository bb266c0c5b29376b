"""Measure the [cost] tables of the target profiles: emulated instructions per unit of work, code size,
and the host's onnxruntime speed (the server model). Prints TOML to paste into targets/*.toml.

    .venv/bin/python bench/calibrate_costs.py [--arch cortex-m4|rv32] [--models DIR]

Device: every shared model (int8 and float32) and a chain of the ops they lack is compiled by the C
backend as the arch's target profile builds it by default (stm32, riscv: weight layout auto), run
once under QEMU with -icount (compiler.harness.run_emulated) and the per-layer instruction counts
are fitted per op class (sum of instructions / sum of work, pooled over all graphs, as
compiler.cost.calibrate_from_counts). Code: the largest model image minus its weights. Host: each
model exported to ONNX (backends/onnx_export, QDQ for int8) and timed in onnxruntime (one thread,
median of repeated runs); fitted as seconds = a * MACs + b * IR nodes, expressed as cycles at the
host profile's clock (cycles_per_instruction 1: the "instructions" are cycles here)."""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.lower import scratch_bytes
from tinysplit.backends.onnx_export import export_onnx
from tinysplit.compiler import frontend, harness
from tinysplit.compiler.cost import calibrate_from_counts, op_work
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.compiler.stats import macs
from tinysplit.compiler.targets import load_target
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.weight_layout import choose_weight_layout, stored_weight_bytes

TARGET_OF_ARCH = {"cortex-m4": "stm32", "rv32": "riscv"}  # the profile whose default build is measured

MODELS = ["resnet8_cifar10", "dscnn_kws", "ad01_toycar"]


def random_feeds(graph: Graph, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for name in graph.inputs:
        t = graph.tensors[name]
        if t.dtype == "int8":
            out.append(rng.integers(-128, 128, t.shape, dtype=np.int8))
        else:
            out.append(rng.standard_normal(t.shape).astype(np.float32))
    return out


def spec(graph: Graph, name: str) -> harness.IOSpec:
    return harness.IOSpec(name, CTYPES[graph.tensors[name].dtype], graph.tensors[name].size)


def op_chain(dtype: str) -> Graph:
    """One of each op the shared models lack (elementwise, lookup, data movement), on a [1, 16, 16, 16] tensor."""
    g = Graph(f"op_chain_{dtype}")
    shape = (1, 16, 16, 16)
    q = {"int8": lambda s, z: Quant(np.float32(s), z), "float32": lambda s, z: None}[dtype]
    names = iter(range(100))

    def tensor(qq: Quant | None, shp: tuple[int, ...] = shape) -> str:
        t = g.add_tensor(Tensor(f"t{next(names)}", shp, dtype, qq))
        return t.name

    def op(kind: str, inputs: list[str], qq: Quant | None, shp: tuple[int, ...] = shape, **attrs: object) -> str:
        out = tensor(qq, shp)
        g.add_node(Node(f"{kind}_{out}", kind, inputs, [out], dict(attrs)))
        return out

    x = tensor(q(0.05, 3))
    g.inputs = [x]
    a = op("clip", [x], q(0.05, 3), act_min=-1.0, act_max=2.0)
    b = op("requantize", [a], q(0.04, 5)) if dtype == "int8" else op("clip", [a], None, act_min=0.0)
    c = op("sigmoid", [b], q(1 / 256, -128))
    d = op("tanh", [c], q(1 / 128, 0))
    e = op("mul", [d, b], q(0.02, 1))
    f = op("transpose", [e], q(0.02, 1), perm=(0, 2, 1, 3))
    h = op("concat", [f, f], q(0.02, 1), (1, 16, 16, 32), axis=3)
    p = op("pad", [h], q(0.02, 1), (1, 18, 18, 32), pads=(0, 1, 1, 0, 0, 1, 1, 0), value=0.0)
    if dtype == "float32":
        p = op("quantize", [p], Quant(np.float32(0.02), 1), (1, 18, 18, 32))
        g.tensors[p].dtype = "int8"
    else:
        p = op("dequantize", [p], None, (1, 18, 18, 32))
        g.tensors[p].dtype = "float32"
    g.outputs = [p]
    return g


def device(models: list[Path], arch: str) -> None:
    counts: dict[str, float] = {}
    work: dict[str, float] = {}
    code: list[tuple[int, int]] = []  # (layers, flash bytes beyond the weights: kernels, requantization tables)
    graphs = [canonicalize(frontend.load(path)) for path in models] + [op_chain("int8"), op_chain("float32")]
    target = load_target(TARGET_OF_ARCH[arch])
    for graph in graphs:
        graph = plan_memory(choose_weight_layout(graph, target, "auto"), scratch_bytes)
        with tempfile.TemporaryDirectory() as tmp:
            emit_c(graph, Path(tmp) / "c")
            run = harness.run_emulated(
                Path(tmp) / "c",
                random_feeds(graph),
                [spec(graph, i) for i in graph.inputs],
                [spec(graph, o) for o in graph.outputs],
                Path(tmp) / "work",
                arch=arch,
                profile=True,
            )
        fitted = calibrate_from_counts(graph, run.layer_instructions)
        for node, n in zip(graph.nodes(), run.layer_instructions, strict=True):
            key, units = op_work(graph, node)
            if units:
                counts[key] = counts.get(key, 0.0) + n
                work[key] = work.get(key, 0.0) + units
        weights = stored_weight_bytes(graph)
        code.append((len(list(graph.nodes())), run.model.flash - weights))
        print(
            f"# {graph.name}: {run.total_instructions:,} instructions, code {run.model.flash - weights:,} B; {fitted}"
        )
    print(f"\n# measured with compiler.harness.run_emulated(arch={arch!r}), pooled over {len(graphs)} graphs")
    print(f"code_flash_bytes = {max(b for _, b in code)}  # the largest model image minus its weights")
    print("\n[cost.instructions]")
    for key in sorted(work):
        print(f"{key} = {counts[key] / work[key]:.3f}")


def host(models: list[Path], repeats: int = 50) -> None:
    rows, secs = [], []
    for path in models:
        graph = canonicalize(frontend.load(path))
        proto = export_onnx(graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds = dict(zip(graph.inputs, random_feeds(graph), strict=True))
        session.run(None, feeds)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, feeds)
            times.append(time.perf_counter() - start)
        total_macs = sum(macs(graph, n) for n in graph.nodes())
        rows.append([float(total_macs), float(len(list(graph.nodes())))])
        secs.append(statistics.median(times))
        print(f"# {path.name}: {secs[-1] * 1e6:.0f} us, {total_macs:,} MACs, {len(proto.graph.node)} ONNX nodes")
    per_mac, per_node = np.linalg.lstsq(np.array(rows), np.array(secs), rcond=None)[0]
    clock = load_target("host").clock_hz
    print(f"# fit: {per_mac * 1e9:.4f} ns per MAC, {per_node * 1e6:.2f} us per IR node (exported QDQ for int8)")
    print(f"layer_instructions = {per_node * clock:.0f}\n[cost.instructions]  # conv, dwconv, fc, both dtypes")
    print(f"conv_int8 = {per_mac * clock:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="cortex-m4", choices=sorted(harness.ARCHES))
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "models")
    parser.add_argument("--host", action="store_true", help="time onnxruntime on the host instead")
    args = parser.parse_args()
    models = [args.models / f"{m}_{kind}.onnx" for m in MODELS for kind in ("int8", "f32")]
    if args.host:
        host(models)
    else:
        device(models, args.arch)


if __name__ == "__main__":
    main()
