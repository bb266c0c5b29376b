"""The Rust device half: runtime_rust (tinysplit-rt) and the crates backends/rust.py generates.

- runtime_rust's own `cargo test` (requantization against vectors computed here by quant.py),
  `cargo clippy -D warnings` and `cargo fmt --check`;
- generated crates for MNIST and the six shared MLPerf Tiny models, built and run on the host:
  int8 outputs identical to the reference and to the generated C, float32 within 1e-5 (relative
  to the largest magnitude) of the generated C;
- two IR graphs that together reach every kernel the backend can emit, in place and not;
- the generated crate builds into a `#![no_std]` `#![no_main]` host executable with its own
  panic handler and no global allocator, which rustc only links when no crate in the graph needs
  `std` or `alloc` (then runs it and checks its answer);
- clippy is clean on a generated crate.

Cargo builds share one target directory (under the system temp dir), so the runtime and its two
dependencies compile once; crates.io is only needed the first time (the generated Cargo.lock pins
every version).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from server_fixtures import SimDevice, running_server, session, synthetic_bundle

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.lower import KernelCall, lower
from tinysplit.backends.rust import crate_name, emit_ariel, emit_rust, float_literal, model_lock, rust_identifier
from tinysplit.compiler import quant as Q
from tinysplit.compiler import reference
from tinysplit.compiler.bench import random_inputs
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.harness import IOSpec, run_host
from tinysplit.compiler.harness_rust import cargo_env
from tinysplit.compiler.harness_rust import cargo_target_dir as target_dir
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.noise import NoiseSpec, add_noise
from tinysplit.passes.tiling import patch_schedule
from tinysplit.server import wire
from tinysplit.server.bundle import load_bundle
from tinysplit.server.keystore import Keystore

ROOT = Path(__file__).resolve().parents[1]
RUNTIME = ROOT / "runtime_rust"
SHARED = ROOT.parent / "shared" / "models"
MNIST = ROOT / "examples" / "mnist" / "lenet5.onnx"
SHARED_MODELS = [
    "resnet8_cifar10_f32.onnx",
    "resnet8_cifar10_int8.onnx",
    "dscnn_kws_f32.onnx",
    "dscnn_kws_int8.onnx",
    "ad01_toycar_f32.onnx",
    "ad01_toycar_int8.onnx",
]
FLOAT_TOLERANCE = 1e-5  # max |rust - c| relative to max |c|
VECTORS = RUNTIME / "tests" / "requantize_vectors.rs"
NOT_IN_RUST_YET: set[str] = set()  # kernels.h kernels tinysplit-rt does not have yet
# kernels.h kernels Rust never needs: weights pre-widened for SMLAD, which emit_rust stores as int8 again
# (passes/weight_layout.int8_weights)
C_ONLY = {"conv_s8_wide", "fully_connected_s8_wide"}

needs_cargo = pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")


# ------------------------------------------------------------------------------------------- cargo


def cargo(args: Sequence[str], manifest: Path, timeout: float = 600) -> str:
    cmd = ["cargo", *args[:1], "--manifest-path", str(manifest), *args[1:]]
    proc = subprocess.run(cmd, env=cargo_env(), capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
    return proc.stdout + proc.stderr


def run_rust(graph: Graph, inputs: list[np.ndarray], workdir: Path, prefix: str) -> list[np.ndarray]:
    """Emit the crate, build its host runner (release) and run it once on `inputs`."""
    emit_rust(graph, workdir / "rust", prefix)
    crate = crate_name(prefix)
    example = f"{crate.replace('-', '_')}_host"
    cargo(["build", "--release", "--example", example], workdir / "rust" / crate / "Cargo.toml")
    exe = target_dir() / "release" / "examples" / example
    ins = [workdir / f"input{i}.bin" for i in range(len(inputs))]
    outs = [workdir / f"output{i}.bin" for i in range(len(graph.outputs))]
    for path, x in zip(ins, inputs, strict=True):
        path.write_bytes(np.ascontiguousarray(x).tobytes())
    proc = subprocess.run([exe, *ins, *outs], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    results = []
    for path, name in zip(outs, graph.outputs, strict=True):
        t = graph.tensors[name]
        results.append(np.frombuffer(path.read_bytes(), dtype=np.int8 if t.dtype == "int8" else np.float32))
    return [r.reshape(graph.tensors[n].shape) for r, n in zip(results, graph.outputs, strict=True)]


def run_c(graph: Graph, inputs: list[np.ndarray], workdir: Path) -> list[np.ndarray]:
    def specs(names: list[str]) -> list[IOSpec]:
        return [IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size) for n in names]

    emit_c(graph, workdir / "c")
    outs = run_host(workdir / "c", inputs, specs(graph.inputs), specs(graph.outputs), workdir / "c-build")
    return [o.reshape(graph.tensors[n].shape) for o, n in zip(outs, graph.outputs, strict=True)]


def check_against_reference_and_c(graph: Graph, workdir: Path, prefix: str, seed: int = 0) -> None:
    inputs = random_inputs(graph, seed)
    rust = run_rust(graph, inputs, workdir, prefix)
    c = run_c(graph, inputs, workdir)
    ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
    for name, r, cc in zip(graph.outputs, rust, c, strict=True):
        if r.dtype == np.int8:
            np.testing.assert_array_equal(r, ref[name], err_msg=f"{prefix}/{name}: Rust differs from the reference")
            np.testing.assert_array_equal(r, cc, err_msg=f"{prefix}/{name}: Rust differs from C")
        else:
            scale = max(float(np.abs(cc).max()), 1e-30)
            err = float(np.abs(r.astype(np.float64) - cc).max()) / scale
            assert err <= FLOAT_TOLERANCE, f"{prefix}/{name}: Rust vs C relative error {err:.3g}"
            assert np.all(np.isfinite(r) == np.isfinite(cc))


# ------------------------------------------------------------------------------------ the runtime


def requantize_vectors_rs() -> str:
    """runtime_rust/tests/requantize_vectors.rs: (acc, multiplier, shift) -> quant.requantize."""
    accs = [0, 1, -1, 2, -2, 3, -3, 127, -128, 255, -255, 1 << 20, -(1 << 20), 12345678, -12345678]
    accs += [(1 << 30) - 1, -(1 << 30), 2**31 - 1, -(2**31), -(2**31) + 1, 0x40000000, 0x3FFFFFFF]
    reals = [0.0, 1e-12, 2.3283064365386963e-10, 0.0001, 0.0037, 0.25, 0.5, 0.5000001, 0.75, 1.0, 1.5, 3.9e3, 2.0**29]
    pairs = sorted({Q.quantize_multiplier(r) for r in reals})
    pairs += [(1 << 30, s) for s in (-31, -30, -16, -1, 0, 1, 16, 30)] + [(2**31 - 1, -31), (2**31 - 1, 30)]
    rows = []
    for m, s in pairs:
        for acc in accs:
            expected = int(Q.requantize(np.int64(acc), m, s))
            rows.append(f"    ({acc}, {m}, {s}, {expected}),")
    body = "\n".join(rows)
    return f"""//! Requantization vectors computed by tinysplit/compiler/quant.py (the specification).
//! Generated by tests/test_rust.py (`requantize_vectors_rs`), which also checks that this file is
//! current. Do not edit: regenerate instead.

use tinysplit_rt::requantize::{{requantize, Requant}};

/// (accumulator, multiplier, shift, quant.requantize(accumulator, multiplier, shift))
const VECTORS: &[(i32, i32, i32, i32)] = &[
{body}
];

#[test]
fn requantize_matches_the_python_reference() {{
    for &(acc, m, s, want) in VECTORS {{
        assert_eq!(requantize(acc, m, s), want, "requantize({{acc}}, {{m}}, {{s}})");
        let prepared = Requant::new(m, s).apply(acc);
        assert_eq!(prepared, want, "Requant::new({{m}}, {{s}}).apply({{acc}})");
    }}
}}
"""


def test_requantize_vectors_are_current() -> None:
    """The committed Rust vectors are exactly what quant.py computes today."""
    assert VECTORS.read_text() == requantize_vectors_rs(), f"regenerate {VECTORS} from requantize_vectors_rs()"


@needs_cargo
def test_runtime_cargo_test() -> None:
    out = cargo(["test", "--release", "--all-features", "--locked"], RUNTIME / "Cargo.toml")
    assert "requantize_matches_the_python_reference ... ok" in out
    assert "prepared_requant_equals_plain_requantize ... ok" in out
    assert "wire::tests::answer_plaintext_is_decoded_strictly ... ok" in out


@needs_cargo
def test_runtime_clippy_and_fmt() -> None:
    for features in ([], ["--all-features"]):
        cargo(["clippy", "--all-targets", "--locked", *features, "--", "-D", "warnings"], RUNTIME / "Cargo.toml")
    cargo(["fmt", "--check"], RUNTIME / "Cargo.toml")


def test_runtime_is_no_std_without_alloc_or_unsafe() -> None:
    """Only the host threads (threads.rs, behind the cargo feature "std") may use std."""
    lib = (RUNTIME / "src" / "lib.rs").read_text()
    assert "#![no_std]" in lib and "#![forbid(unsafe_code)]" in lib
    assert '#[cfg(feature = "std")]\npub mod threads;' in lib
    for path in (RUNTIME / "src").rglob("*.rs"):
        text = path.read_text()
        forbidden = "alloc" if path.name == "threads.rs" else "alloc|std"
        assert not re.search(rf"\bextern\s+crate\s+({forbidden})\b", text), path
        assert not re.search(rf"\b({forbidden})::", text), path


# --------------------------------------------------------------------------------- whole models


@needs_cargo
def test_mnist(tmp_path: Path) -> None:
    graph, _ = build_graph(MNIST, CompileOptions(target="host"))
    check_against_reference_and_c(graph, tmp_path, "mnist")


@needs_cargo
@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} is not present (the MLPerf Tiny models live in ../shared/models)")
    graph, _ = build_graph(SHARED / name, CompileOptions(target="stm32"))
    check_against_reference_and_c(graph, tmp_path, Path(name).stem)


# ------------------------------------------------------------------------ every kernel, in IR


def qt(scale: float, zero_point: int) -> Quant:
    return Quant(np.array([scale], np.float32), np.array([zero_point], np.int32))


class _Builder:
    """A small IR graph, node by node (shapes are given; the reference checks them)."""

    def __init__(self, name: str, seed: int) -> None:
        self.g = Graph(name)
        self.rng = np.random.default_rng(seed)

    def tensor(self, name: str, shape: Sequence[int], dtype: str, quant: Quant | None = None) -> str:
        self.g.add_tensor(Tensor(name, tuple(shape), dtype, quant))
        return name

    def const(self, name: str, data: np.ndarray, quant: Quant | None = None) -> str:
        dtype = {np.dtype(np.int8): "int8", np.dtype(np.int32): "int32", np.dtype(np.float32): "float32"}[data.dtype]
        self.g.add_tensor(Tensor(name, data.shape, dtype, quant, data=data))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        self.g.add_node(Node(f"n_{output}", op, inputs, [output], attrs))
        return output

    def conv_weights(self, name: str, shape: tuple[int, ...], x: str, int8: bool) -> list[str]:
        cout = shape[0]
        if not int8:
            w = self.rng.standard_normal(shape).astype(np.float32) * 0.3
            bias = self.rng.standard_normal(cout).astype(np.float32)
            return [self.const(f"{name}_w", w), self.const(f"{name}_b", bias)]
        sw = self.rng.uniform(0.002, 0.01, cout).astype(np.float32)
        w = self.rng.integers(-127, 128, shape).astype(np.int8)
        wq = Quant(sw, np.zeros(cout, np.int32), 0)
        xq = self.g.tensors[x].quant
        assert xq is not None
        sx = xq.scalar()[0]
        bq = Quant((np.float32(sx) * sw).astype(np.float32), np.zeros(cout, np.int32), 0)
        b = self.rng.integers(-5000, 5000, cout).astype(np.int32)
        return [self.const(f"{name}_w", w, wq), self.const(f"{name}_b", b, bq)]


def int8_zoo() -> Graph:
    """Every int8 kernel: grouped and depthwise (multiplier 2, dilated) conv, pools, in-place add
    and mul with broadcasting (a constant operand, and x + x), lookups, requantize, clip,
    transpose, pad, concat, copy, fully connected, softmax; three outputs."""
    b = _Builder("int8_zoo", 1)
    q0, q1, q2, q3 = qt(0.05, 3), qt(0.04, -10), qt(0.08, 5), qt(0.03, -2)
    x = b.tensor("x", (1, 6, 6, 4), "int8", q0)
    b.g.inputs = [x]
    c1 = b.tensor("c1", (1, 6, 6, 6), "int8", q1)
    b.node("conv2d", [x, *b.conv_weights("c1", (6, 3, 3, 2), x, True)], c1, strides=(1, 1), dilations=(1, 1),
           pads=(1, 1, 1, 1), groups=2, act_min=0.0, act_max=math.inf)  # fmt: skip
    d1 = b.tensor("d1", (1, 6, 6, 12), "int8", q2)
    b.node("conv2d", [c1, *b.conv_weights("d1", (12, 3, 3, 1), c1, True)], d1, strides=(1, 1), dilations=(2, 2),
           pads=(2, 2, 2, 2), groups=6)  # fmt: skip
    mp = b.tensor("mp", (1, 3, 3, 12), "int8", q2)
    b.node("max_pool2d", [d1], mp, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 0, 0))
    ap = b.tensor("ap", (1, 3, 3, 12), "int8", q2)
    b.node("avg_pool2d", [d1], ap, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 0, 0), count_include_pad=1)
    s = b.tensor("s", (1, 3, 3, 12), "int8", q3)
    b.node("add", [ap, mp], s, act_min=-2.0, act_max=2.0)
    k = b.const("k", np.array([[[[77] * 12]]], np.int8), qt(0.01, 0))
    m = b.tensor("m", (1, 3, 3, 12), "int8", q1)
    b.node("mul", [s, k], m)
    m2 = b.tensor("m2", (1, 3, 3, 12), "int8", q3)
    b.node("add", [m, m], m2)
    sg = b.tensor("sg", (1, 3, 3, 12), "int8", qt(1 / 256, -128))
    b.node("sigmoid", [m2], sg)
    th = b.tensor("th", (1, 3, 3, 12), "int8", qt(1 / 128, 0))
    b.node("tanh", [sg], th)
    rq = b.tensor("rq", (1, 3, 3, 12), "int8", qt(0.011, 7))
    b.node("requantize", [th], rq)
    cl = b.tensor("cl", (1, 3, 3, 12), "int8", qt(0.011, 7))
    b.node("clip", [rq], cl, act_min=-0.5, act_max=0.9)
    tr = b.tensor("tr", (1, 12, 3, 3), "int8", qt(0.011, 7))
    b.node("transpose", [cl], tr, perm=(0, 3, 1, 2))
    pd = b.tensor("pd", (1, 12, 4, 2), "int8", qt(0.011, 7))
    b.node("pad", [tr], pd, pads=(0, 0, 1, -1, 0, 0, 0, 0), value=0.3)
    fl = b.tensor("fl", (1, 96), "int8", qt(0.011, 7))
    b.node("reshape", [pd], fl)
    fc = b.tensor("fc", (1, 10), "int8", qt(0.07, 1))
    b.node("fully_connected", [fl, *b.conv_weights("fc", (10, 96), fl, True)], fc)
    cc = b.tensor("cc", (1, 20), "int8", qt(0.07, 1))
    b.node("concat", [fc, b.const("cz", np.arange(10, dtype=np.int8).reshape(1, 10), qt(0.07, 1))], cc, axis=1)
    sm = b.tensor("sm", (1, 20), "int8", qt(1 / 256, -128))
    b.node("softmax", [cc], sm)
    cp = b.tensor("cp", (2, 10), "int8", qt(0.07, 1))
    b.node("reshape", [cc], cp)  # cc stays live (softmax reads it): a real copy
    b.g.outputs = [sm, cp, tr]
    return b.g


def float_zoo() -> Graph:
    """Every float32 kernel, quantize and dequantize, in place and not; two inputs, two outputs."""
    b = _Builder("float_zoo", 2)
    x = b.tensor("x", (1, 5, 5, 3), "float32")
    z = b.tensor("z", (1, 1, 1, 6), "float32")
    b.g.inputs = [x, z]
    q = b.tensor("q", (1, 5, 5, 3), "int8", qt(0.02, -3))
    b.node("quantize", [x], q)
    dq = b.tensor("dq", (1, 5, 5, 3), "float32")
    b.node("dequantize", [q], dq)
    c1 = b.tensor("c1", (1, 5, 5, 6), "float32")
    b.node("conv2d", [dq, *b.conv_weights("c1", (6, 3, 3, 3), dq, False)], c1, strides=(1, 1), dilations=(1, 1),
           pads=(1, 1, 1, 1), act_min=-1.0, act_max=1.5)  # fmt: skip
    d1 = b.tensor("d1", (1, 3, 3, 12), "float32")
    b.node("conv2d", [c1, *b.conv_weights("d1", (12, 3, 3, 1), c1, False)], d1, strides=(2, 2), dilations=(1, 1),
           pads=(1, 1, 1, 1), groups=6)  # fmt: skip
    c2 = b.tensor("c2", (1, 3, 2, 4), "float32")
    b.node("conv2d", [d1, *b.conv_weights("c2", (4, 2, 2, 6), d1, False)], c2, strides=(1, 2), dilations=(2, 1),
           pads=(1, 0, 1, 1), groups=2)  # fmt: skip
    mp = b.tensor("mp", (1, 3, 3, 6), "float32")
    b.node("max_pool2d", [c1], mp, kernel=(3, 3), strides=(2, 2), pads=(1, 1, 1, 1))
    ap = b.tensor("ap", (1, 3, 3, 6), "float32")
    b.node("avg_pool2d", [c1], ap, kernel=(2, 2), strides=(2, 2), pads=(0, 0, 1, 1), count_include_pad=1)
    s = b.tensor("s", (1, 3, 3, 6), "float32")
    b.node("add", [mp, z], s)
    s2 = b.tensor("s2", (1, 3, 3, 6), "float32")
    b.node("add", [ap, s], s2, act_min=-3.0, act_max=3.0)
    m = b.tensor("m", (1, 3, 3, 6), "float32")
    b.node("mul", [s2, s2], m)
    sg = b.tensor("sg", (1, 3, 3, 6), "float32")
    b.node("sigmoid", [m], sg)
    th = b.tensor("th", (1, 3, 3, 6), "float32")
    b.node("tanh", [sg], th)
    cl = b.tensor("cl", (1, 3, 3, 6), "float32")
    b.node("clip", [th], cl, act_min=0.0, act_max=0.7)
    tr = b.tensor("tr", (1, 6, 3, 3), "float32")
    b.node("transpose", [cl], tr, perm=(0, 3, 2, 1))
    pd = b.tensor("pd", (1, 6, 3, 5), "float32")
    b.node("pad", [tr], pd, pads=(0, 0, 0, 1, 0, 0, 0, 1), value=-0.25)
    fl = b.tensor("fl", (1, 90), "float32")
    b.node("reshape", [pd], fl)
    w = b.const("fc_w", b.rng.standard_normal((7, 90)).astype(np.float32) * 0.1)
    fc = b.tensor("fc", (1, 7), "float32")
    b.node("fully_connected", [fl, w], fc)
    fz = b.tensor("fz", (1, 24), "float32")
    b.node("reshape", [c2], fz)
    cc = b.tensor("cc", (1, 31), "float32")
    b.node("concat", [fc, fz], cc, axis=1)
    sm = b.tensor("sm", (1, 31), "float32")
    b.node("softmax", [cc], sm)
    b.g.outputs = [sm, d1]
    return b.g


def planned(graph: Graph) -> Graph:
    graph.validate()
    return plan_memory(graph, lambda g, n: 0)


def kernels(calls: list[KernelCall]) -> set[str]:
    return {c.kernel for c in calls}


@needs_cargo
@pytest.mark.parametrize("zoo", [int8_zoo, float_zoo], ids=lambda f: f.__name__)
def test_every_kernel(zoo: Any, tmp_path: Path) -> None:
    graph = planned(zoo())
    check_against_reference_and_c(graph, tmp_path, graph.name)


def patched_mnist() -> Graph:
    """MNIST run in three row bands (passes.tiling): slice_rows and write_rows, in place too."""
    graph, _ = build_graph(MNIST, CompileOptions(target="host"))
    return patch_schedule(graph, 3)


@needs_cargo
def test_patch_based_execution(tmp_path: Path) -> None:
    graph = patched_mnist()
    assert {"slice_rows", "write_rows"} <= kernels(lower(graph))
    check_against_reference_and_c(graph, tmp_path, "patched")


def test_zoos_reach_every_kernel_and_in_place_variant(tmp_path: Path) -> None:
    noisy = planned(add_noise(int8_zoo(), ["tr"], NoiseSpec("laplace", 2.0, seed=1)))
    graphs = [planned(int8_zoo()), planned(float_zoo()), patched_mnist(), noisy]
    reached = set().union(*(kernels(lower(g)) for g in graphs)) - {""}
    header = (ROOT / "runtime_c" / "include" / "tinysplit" / "kernels.h").read_text()
    abi = set(re.findall(r"\bvoid ts_(\w+)\(", header))
    assert abi >= C_ONLY  # (else C_ONLY is stale)
    abi -= C_ONLY
    assert abi and abi - NOT_IN_RUST_YET <= reached, abi - reached  # every kernel of the C ABI is reached
    rust = set(re.findall(r"^pub fn (\w+)", "".join(p.read_text() for p in (RUNTIME / "src").glob("*.rs")), re.M))
    assert abi - NOT_IN_RUST_YET <= rust, abi - rust  # and exists in Rust
    text = ""
    for i, g in enumerate(graphs):
        emit_rust(g, tmp_path, f"g{i}")
        text += (tmp_path / crate_name(f"g{i}") / "src" / "lib.rs").read_text()
    for variant in ("add_s8_inplace", "mul_s8_inplace", "lookup_s8_inplace", "requantize_s8_inplace",
                    "clip_s8_inplace", "add_f32_inplace", "mul_f32_inplace", "sigmoid_f32_inplace",
                    "tanh_f32_inplace", "clip_f32_inplace"):  # fmt: skip
        assert f"ts::{variant}(" in text, variant
    assert "ts::Operand::Output, ts::Operand::Output" in text  # x + x and x * x in place
    assert "ts::copy(" in text and "ts::concat(" in text


# ------------------------------------------------------------------------------ no_std, clippy

NOSTD_MAIN = """\
//! Proof that the model crate needs neither `std` nor `alloc`: this executable has its own panic
//! handler (a second one would clash with std's) and no global allocator (rustc refuses to link a
//! binary that needs `alloc` without one). It links the C library only for the host's start-up code.
#![no_std]
#![no_main]

use {crate}::{{Model, INPUT0_SIZE, OUTPUT0_SIZE}};
use tinysplit_rt::wire::{{self, Peer, Telemetry, WireTensor}};

#[link(name = "c")]
extern "C" {{}}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {{
    loop {{}}
}}

/// The host's precompiled `core` refers to the unwinder's personality routine even with
/// `panic = "abort"`; std would define it (and clash with this one).
#[no_mangle]
pub extern "C" fn rust_eh_personality() {{}}

#[no_mangle]
pub extern "C" fn main(_argc: i32, _argv: *const *const u8) -> i32 {{
    let mut model = Model::new();
    let input = [{zero}; INPUT0_SIZE];
    let mut output = [{zero}; OUTPUT0_SIZE];
    model.run(&input, &mut output);
    let mut best = 0;
    for (i, v) in output.iter().enumerate() {{
        if *v > output[best] {{
            best = i;
        }}
    }}
    // the wire format too: seal the answer's index as a one-value tensor
    let peer = Peer {{
        device_id: b"d",
        key_up: &[1; 32],
        key_down: &[2; 32],
        iv: &[3; 12],
        model_id: "m",
        model_version: 1,
    }};
    let data = [best as i8];
    let tensor = WireTensor {{ data: &data, shape: &[1], scale: 1.0, zero_point: 0 }};
    let mut message = [0u8; 128];
    match wire::seal_request(&peer, 0, &[tensor], &Telemetry::default(), &mut message) {{
        Ok(_) => best as i32,
        Err(_) => 100,
    }}
}}
"""


@needs_cargo
def test_generated_crate_is_no_std_without_alloc(tmp_path: Path) -> None:
    graph, _ = build_graph(MNIST, CompileOptions(target="host"))
    emit_rust(graph, tmp_path, "nostd")
    lib = (tmp_path / "nostd-model" / "src" / "lib.rs").read_text()
    assert lib.startswith("//! Generated") and "#![no_std]" in lib and "#![forbid(unsafe_code)]" in lib
    app = tmp_path / "nostd-app"
    (app / "src").mkdir(parents=True)
    (app / "Cargo.toml").write_text(
        '[package]\nname = "nostd-app"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n'
        '[dependencies]\nnostd-model = { path = "../nostd-model" }\n'
        'tinysplit-rt = { path = "../tinysplit-rt", features = ["wire"] }\n\n'
        '[profile.dev]\npanic = "abort"\n\n[profile.release]\npanic = "abort"\n'
    )
    (app / "src" / "main.rs").write_text(NOSTD_MAIN.format(crate="nostd_model", zero="0.0f32"))
    deps = ("nostd-model", "tinysplit-rt")
    lock = model_lock("nostd-model", (RUNTIME / "Cargo.lock").read_text(), features=("wire",))
    (app / "Cargo.lock").write_text(model_lock("nostd-app", lock, deps, features=("wire",)))
    cargo(["build", "--release", "--locked"], app / "Cargo.toml")
    exe = target_dir() / "release" / "nostd-app"
    proc = subprocess.run([exe], capture_output=True, timeout=30, check=False)
    zero = [np.zeros(graph.tensors[graph.inputs[0]].shape, np.float32)]
    want = reference.run(graph, dict(zip(graph.inputs, zero, strict=True)))[graph.outputs[0]]
    assert proc.returncode == int(np.argmax(want))
    # the same crate depends on nothing but the runtime, and the runtime only on bytemuck and libm
    tree = cargo(["tree", "--edges", "normal,features", "--prefix", "none"], app / "Cargo.toml")
    crates = {line.split()[0] for line in tree.splitlines() if line.strip()}
    wire_crates = {"chacha20poly1305", "chacha20", "poly1305", "aead", "cipher", "universal-hash", "minicbor"}
    assert crates - wire_crates <= {"nostd-app", "nostd-model", "tinysplit-rt", "bytemuck", "libm"} | {
        "crypto-common", "generic-array", "typenum", "inout", "zeroize", "subtle", "opaque-debug", "cpufeatures",
        "cfg-if", "libc", "version_check"}, crates  # fmt: skip
    assert '"std"' not in tree and 'feature "std"' not in tree


@needs_cargo
def test_generated_crate_is_clippy_clean(tmp_path: Path) -> None:
    """The int8 zoo with noise: every kind of call the backend writes, and the noisy host runner."""
    graph = planned(add_noise(int8_zoo(), ["tr"], NoiseSpec("laplace", 2.0, seed=1)))
    emit_rust(graph, tmp_path, "lint")
    cargo(["clippy", "--all-targets", "--locked", "--", "-D", "warnings"], tmp_path / "lint-model" / "Cargo.toml")


# -------------------------------------------------------------------------------- the backend


def test_arena_regions_must_be_disjoint() -> None:
    graph = planned(int8_zoo())
    plan = graph.metadata["memory"]
    node = next(n for n in graph.nodes() if n.op == "fully_connected")
    plan.offsets[node.outputs[0]] = plan.offsets[node.inputs[0]] + 8  # a broken plan
    with pytest.raises(CompileError, match="overlaps"):
        emit_rust(graph, Path(tempfile.mkdtemp()), "broken")


def test_identifiers() -> None:
    taken: set[str] = set()
    assert rust_identifier("input_1", taken) == "input_1"
    assert rust_identifier("Identity", taken) == "identity"
    assert rust_identifier("model/conv2d:0", taken) == "model_conv2d_0"
    assert rust_identifier("0abc", taken) == "t_0abc"
    assert rust_identifier("type", taken) == "type_"
    assert rust_identifier("arena", taken) == "arena_"
    assert rust_identifier("r0", taken) == "r0_"
    assert rust_identifier("Identity", taken) == "identity_2"
    assert crate_name("my_Model") == "my-model-model"


@pytest.mark.parametrize("v", [0.1, -0.0, 1e-30, 3.4028235e38, 1.17549435e-38, 1e-45, 123456.79, math.inf, -math.inf])
def test_float_literals_round_trip(v: float) -> None:
    text = float_literal(v)
    if "INFINITY" in text:
        assert math.isinf(v)
        return
    assert np.float32(float(text)) == np.float32(v) and str(np.float32(float(text))) == str(np.float32(v))
    assert re.fullmatch(r"-?\d+\.\d+(e[-+]?\d+)?|-?\d+(\.\d+)?e[-+]?\d+", text), text


def test_model_lock_adds_the_model_to_the_runtime_lock() -> None:
    runtime_lock = (RUNTIME / "Cargo.lock").read_text()
    lock = model_lock("m-model", runtime_lock)
    names = re.findall(r'name = "([^"]+)"', lock)
    assert names == ["bytemuck", "libm", "m-model", "tinysplit-rt"]  # no wire crates without the feature
    assert lock.startswith("# This file is automatically @generated by Cargo.")
    with_wire = re.findall(r'name = "([^"]+)"', model_lock("app", runtime_lock, features=("wire",)))
    assert {"chacha20poly1305", "minicbor", "poly1305"} <= set(with_wire) and with_wire == sorted(with_wire)


# ------------------------------------------------------------------------------------ the wire

WIRE_C = ROOT / "runtime_c" / "wire"
HAVE_SODIUM = Path("/usr/include/sodium.h").exists()


@pytest.fixture(scope="module")
def rust_wire() -> dict[str, Path]:
    """runtime_rust's host wire programs (feature "wire"): wire_check and device."""
    if shutil.which("cargo") is None:
        pytest.skip("cargo is not installed")
    cargo(["build", "--release", "--features", "wire", "--examples", "--locked"], RUNTIME / "Cargo.toml")
    return {name: target_dir() / "release" / "examples" / name for name in ("wire_check", "device")}


def wire_keys(tmp_path: Path) -> tuple[Path, SimDevice]:
    synthetic_bundle(tmp_path)
    keys = Keystore(tmp_path / "server" / "keys.json").add("dev1")
    path = tmp_path / "dev1.keys"
    path.write_text(keys.env_lines())
    return path, SimDevice(keys, load_bundle(tmp_path))


def test_rust_request_opens_in_python_and_equals_c(tmp_path: Path, rust_wire: dict[str, Path]) -> None:
    keys, dev = wire_keys(tmp_path)
    data = np.arange(-4, 4, dtype=np.int8)
    (tmp_path / "t.bin").write_bytes(data.tobytes())
    args = ["seal", str(keys), "synthetic", "1", str(0x1234567890), str(tmp_path / "t.bin"), "1x2x4", "0.05", "3"]
    r = subprocess.run([rust_wire["wire_check"], *args], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stdout
    sealed = bytes.fromhex(r.stdout.strip())
    env = wire.parse_envelope(sealed)
    assert (env.kid, env.seq, env.model_version) == (b"dev1", 0x1234567890, 1)
    req = wire.decode_request(wire.open_envelope(env, dev.keys.key_up, dev.keys.iv, "synthetic", 1))
    assert (req.model_id, req.seq, req.latency_us, req.arena_bytes) == ("synthetic", 0x1234567890, 7, 8)
    t = req.tensors[0]
    assert (t.shape, t.scale, t.zero_point, t.data) == ((1, 2, 4), float(np.float32(0.05)), 3, data.tobytes())
    with pytest.raises(wire.AuthFailed):  # bound to the model version
        wire.open_envelope(env, dev.keys.key_up, dev.keys.iv, "synthetic", 2)
    if not HAVE_SODIUM:
        pytest.skip("libsodium-dev is needed for the C side of the comparison")
    check_c = tmp_path / "wire_check_c"
    build = ["gcc", "-std=c99", "-O2", f"-I{ROOT / 'runtime_c' / 'include'}", "-o", str(check_c)]
    build += [str(WIRE_C / f) for f in ("wire_check.c", "wire.c", "aead_libsodium.c")] + ["-lsodium"]
    subprocess.run(build, check=True, capture_output=True)
    c = subprocess.run([check_c, *args], capture_output=True, text=True, check=True)
    assert c.stdout.strip() == r.stdout.strip()  # the same bytes as the C device


def test_rust_opens_python_answers(tmp_path: Path, rust_wire: dict[str, Path]) -> None:
    keys, dev = wire_keys(tmp_path)
    k = dev.keys
    outputs = [np.array([[1.5, -2.25, 3e-7]], np.float32), np.array([[7.0]], np.float32)]
    good = wire.seal_answer(k.key_down, k.iv, "synthetic", 1, 42, outputs)

    def rust_open(message: bytes, seq: int = 42, version: str = "1") -> str:
        (tmp_path / "a.bin").write_bytes(message)
        cmd: list[str | Path] = [
            rust_wire["wire_check"],
            "open",
            str(keys),
            "synthetic",
            version,
            str(seq),
            str(tmp_path / "a.bin"),
        ]
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()

    lines = rust_open(good).splitlines()
    assert lines[0] == "ok 2"
    for line, want in zip(lines[1:], outputs, strict=True):
        np.testing.assert_array_equal(np.array(line.split(), np.float32), want.ravel())
    assert rust_open(b"\xd0" + good).startswith("ok")  # tag 16 accepted
    flipped = bytearray(good)
    flipped[-1] ^= 1
    assert rust_open(bytes(flipped)) == "error -4"
    assert rust_open(good, seq=43) == "error -4"  # the answer to another request
    assert rust_open(good, version="2") == "error -4"  # another model version
    assert rust_open(wire.seal_answer(k.key_up, k.iv, "synthetic", 1, 42, outputs)) == "error -4"  # wrong key
    assert rust_open(good[:-1]) == "error -3" and rust_open(good + b"\x00") == "error -3"
    assert rust_open(b"") == "error -3"


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]"])
def test_rust_device_talks_to_server(tmp_path: Path, rust_wire: dict[str, Path], host: str) -> None:
    """Real UDP sockets: the Rust host device seals a cut tensor, the Python server runs the tail and
    answers sealed, the device opens the answer: the tail's output, and a replayed seq is refused."""
    keys, _ = wire_keys(tmp_path)
    b = load_bundle(tmp_path)
    x = np.arange(-4, 4, dtype=np.int8).reshape(1, 2, 4)
    (tmp_path / "cut.bin").write_bytes(x.tobytes())
    expected = session(b.tail_path).run(None, {"x0": (x.astype(np.float32) - 3) * np.float32(0.05)})[0].ravel()
    t = b.cut[0]
    spec = f"{tmp_path / 'cut.bin'}:{'x'.join(map(str, t.shape))}:{t.scale!r}:{t.zero_point}"

    def device(port: int, seq: int) -> subprocess.CompletedProcess[str]:
        cmd: list[str | Path] = [rust_wire["device"], "--server", f"{host}:{port}", "--keys", str(keys)]
        cmd += ["--model-id", b.model_id, "--model-version", str(b.model_version), "--seq", str(seq), "--tensor", spec]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    with running_server(tmp_path) as (service, port):
        r = device(port, 5)
        assert r.returncode == 0, r.stdout + r.stderr
        m = re.search(r"^output 0 shape 1x5: (.*)$", r.stdout, re.M)
        assert m is not None, r.stdout
        np.testing.assert_allclose(np.array(m.group(1).split(), np.float32), expected, rtol=1e-6)
        assert f"top1 {int(expected.argmax())}" in r.stdout
        replay = device(port, 5)
        assert replay.returncode != 0 and "4.01" in replay.stderr
        assert service.metrics.results["ok"] == 1 and service.metrics.results["replay"] == 1
        assert service.metrics.devices["dev1"].latency_us_sum == 1234


# ------------------------------------------------------------------------------ the Ariel OS app


def test_ariel_app_renders(tmp_path: Path) -> None:
    """Ariel OS is not on crates.io and cannot be built here: check what can be checked, that the
    application is complete, parses as Rust, and uses the documented APIs and our crates."""
    graph = planned(int8_zoo())
    emit_rust(graph, tmp_path, "zoo")
    files = emit_ariel(graph, tmp_path, "zoo", model_id="int8_zoo", model_version=3, server="[fe80::1]:5683")
    app = tmp_path / "zoo-ariel"
    assert {p.relative_to(app).as_posix() for p in files} == {
        "laze-project.yml", "Cargo.toml", "README.md", "src/main.rs"
    }  # fmt: skip
    main = (app / "src" / "main.rs").read_text()
    for needle in ("#[ariel_os::task(autostart)]", "ariel_os::coap::coap_client().await", "Code::post()",
                   '.with_path("/ts/infer")', "wire::seal_request(", "wire::open_answer(", "ariel_os::storage::insert",
                   "model.run(input, cut0, cut1, cut2)", "model_version: 3", '"[fe80::1]:5683"'):  # fmt: skip
        assert needle in main, needle
    assert "unsafe" not in main
    cargo_toml = (app / "Cargo.toml").read_text()
    assert 'tinysplit-rt = { path = "../tinysplit-rt", features = ["wire"] }' in cargo_toml
    assert 'zoo-model = { path = "../zoo-model" }' in cargo_toml
    assert "- network" in (app / "laze-project.yml").read_text()
    if shutil.which("rustfmt") is not None:  # a syntax check (rustfmt parses, it does not resolve)
        (app / "src" / "keys.rs").write_text(
            'pub const DEVICE_ID: &[u8] = b"d";\npub const KEY_UP: [u8; 32] = [0; 32];\n'
            "pub const KEY_DOWN: [u8; 32] = [0; 32];\npub const IV: [u8; 12] = [0; 12];\n"
        )
        proc = subprocess.run(["rustfmt", "--edition", "2021", "--emit", "stdout", str(app / "src" / "main.rs")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr


def test_ariel_app_with_noise_draws_from_the_csprng(tmp_path: Path) -> None:
    graph = planned(add_noise(int8_zoo(), ["tr"], NoiseSpec("gaussian", 3.0)))
    emit_rust(graph, tmp_path, "noisy")
    emit_ariel(graph, tmp_path, "noisy", model_id="int8_zoo", model_version=1)
    main = (tmp_path / "noisy-ariel" / "src" / "main.rs").read_text()
    assert "ariel_os::random::crypto_rng()" in main and "cut2, &mut random)" in main
    assert "rand_core" in (tmp_path / "noisy-ariel" / "Cargo.toml").read_text()


def test_ariel_app_needs_an_int8_cut(tmp_path: Path) -> None:
    graph = planned(float_zoo())
    with pytest.raises(CompileError, match=r"one input|int8"):
        emit_ariel(graph, tmp_path, "f", model_id="f", model_version=1)


# ------------------------------------------------------------------------------------ the noise


@needs_cargo
def test_noise_matches_the_reference(tmp_path: Path) -> None:
    """Noise at the cut (passes.noise): with a seed the host runner draws the reference's ChaCha20
    stream, so two noise nodes (two offsets of one stream; 108 elements: a full and a short piece)
    agree bit for bit; Model::run takes the random source."""
    graph = planned(add_noise(int8_zoo(), ["tr", "sm"], NoiseSpec("gaussian", 6.0, seed=2**64 - 3)))
    inputs = random_inputs(graph, 0)
    rust = run_rust(graph, inputs, tmp_path, "noisy")
    ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
    clean = reference.run(planned(int8_zoo()), dict(zip(graph.inputs, inputs, strict=True)))
    for name, r in zip(graph.outputs, rust, strict=True):
        np.testing.assert_array_equal(r, ref[name], err_msg=f"{name}: Rust differs from the reference")
    assert not np.array_equal(ref["tr"], clean["tr"])  # the noise is there
    lib = (tmp_path / "rust" / "noisy-model" / "src" / "lib.rs").read_text()
    assert "pub fn run<R: ts::Random>(" in lib and lib.count("random.fill(bytes)") == 2
