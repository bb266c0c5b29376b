"""Multi-core Rust (backends/rust.py with max_cores, runtime_rust/src/parallel.rs and threads.rs): the
row-split layers on 1 to 4 host threads give the reference's int8 outputs bit for bit (ResNet-8 and
DS-CNN from ../shared/models, skipped with a reason when absent; small IR graphs with every
row-splittable kernel, int8 and float32, always), float32 outputs equal to the single-core crate's
bit for bit; the crate is clippy clean; `tinysplit compile --cores N --lang c,rust` emits both; the
Ariel OS application of a multi-core crate pins a worker thread to each core.

The runner is the crate's host example (`--threads N`), built once per test by
compiler/harness_rust.py, which shares cargo's target directory with tests/test_rust.py.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_rust import MNIST, SHARED, cargo, float_zoo, int8_zoo, needs_cargo, patched_mnist, planned
from typer.testing import CliRunner

from tinysplit.backends.lower import lower
from tinysplit.backends.multicore import row_splittable
from tinysplit.backends.rust import crate_name, emit_ariel, emit_rust
from tinysplit.compiler import reference
from tinysplit.compiler.bench import io_specs, random_inputs
from tinysplit.compiler.cli import app
from tinysplit.compiler.harness_rust import build_rust_host, run_rust_host
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.passes.noise import NoiseSpec, add_noise

SHARED_INT8 = ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx"]


def build(graph: Graph, workdir: Path, prefix: str, max_cores: int | None) -> Path:
    """The host runner of the graph's multi-core crate (`max_cores`), or of its one-core crate (None)."""
    emit_rust(graph, workdir / "rust", prefix, max_cores=max_cores or 1)
    return build_rust_host(workdir / "rust" / crate_name(prefix), workdir / f"{prefix}-bin")


def run(graph: Graph, runner: Path, inputs: list[np.ndarray], threads: int | None) -> list[np.ndarray]:
    ins, outs = io_specs(graph, graph.inputs), io_specs(graph, graph.outputs)
    return run_rust_host(runner, inputs, ins, outs, threads=threads, iterations=2)[0]


def split_layers(graph: Graph) -> int:
    return sum(row_splittable(graph, call) for call in lower(graph))


def check_threads(graph: Graph, workdir: Path, prefix: str, threads: range) -> None:
    """Multi-core outputs on each thread count equal the single-core crate's bit for bit, and the
    reference's on int8 outputs."""
    assert split_layers(graph) > 0, "nothing to split: the test would prove nothing"
    inputs = random_inputs(graph, 7)
    single = run(graph, build(graph, workdir, f"{prefix}1", None), inputs, None)
    ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
    for name, got in zip(graph.outputs, single, strict=True):
        if graph.tensors[name].dtype == "int8":
            np.testing.assert_array_equal(got, ref[name].reshape(-1), err_msg=f"{prefix}/{name}: single core")
    runner = build(graph, workdir, prefix, max(threads))
    for n in threads:
        for name, got, want in zip(graph.outputs, run(graph, runner, inputs, n), single, strict=True):
            assert got.tobytes() == want.tobytes(), f"{prefix}/{name}: {n} threads differ from one core"


@needs_cargo
@pytest.mark.parametrize("name", SHARED_INT8)
def test_shared_models_bit_exact_on_1_to_4_threads(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED / name} is not present (the MLPerf Tiny models live in ../shared/models)")
    # stm32: its int8 weights are stored widened for SMLAD (passes/weight_layout.py), which the
    # Rust backend undoes, on the multi-core path too
    graph, _ = build_graph(SHARED / name, CompileOptions(target="stm32"))
    runner = build(graph, tmp_path, "shared", 4)
    lib = (tmp_path / "rust" / "shared-model" / "src" / "lib.rs").read_text()
    assert lib.count("ts::split_rows::<MAX_CORES>(cores,") == split_layers(graph) >= 5
    ins, outs = io_specs(graph, graph.inputs), io_specs(graph, graph.outputs)
    for seed in (0, 1):
        inputs = random_inputs(graph, seed)
        want = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))[graph.outputs[0]].reshape(-1)
        for n in range(1, 5):
            got = run_rust_host(runner, inputs, ins, outs, threads=n, iterations=2)[0][0]
            np.testing.assert_array_equal(got, want, err_msg=f"{name}: {n} threads, seed {seed}")


@needs_cargo
@pytest.mark.parametrize("zoo", [int8_zoo, float_zoo], ids=lambda f: f.__name__)
def test_every_row_split_kernel_on_1_to_4_threads(zoo: object, tmp_path: Path) -> None:
    """int8: grouped and depthwise dilated conv, max and avg pool with padding; float32: conv,
    strided depthwise, grouped dilated conv with uneven padding, pools. Outputs of 3 to 6 rows, so 4
    threads leave some without rows."""
    assert callable(zoo)
    graph = planned(zoo())
    kernels = {call.kernel for call in lower(graph) if row_splittable(graph, call)}
    assert kernels in (
        {"conv_s8", "depthwise_conv_s8", "max_pool_s8", "avg_pool_s8"},
        {"conv_f32", "depthwise_conv_f32", "max_pool_f32", "avg_pool_f32"},
    )
    check_threads(graph, tmp_path, graph.name.replace("_", ""), range(1, 5))


@needs_cargo
def test_patched_layers_split_over_threads(tmp_path: Path) -> None:
    """Patch-based execution and cores at once: the patched stem's convolutions run on row slices."""
    check_threads(patched_mnist(), tmp_path, "patched", range(1, 4))


@needs_cargo
def test_multicore_crate_is_clippy_clean_and_no_std(tmp_path: Path) -> None:
    """The int8 zoo with noise on 3 cores: split layers, the random source, the threaded host runner."""
    graph = planned(add_noise(int8_zoo(), ["tr"], NoiseSpec("laplace", 2.0, seed=1)))
    emit_rust(graph, tmp_path, "lint", max_cores=3)
    manifest = tmp_path / "lint-model" / "Cargo.toml"
    cargo(["clippy", "--all-targets", "--locked", "--", "-D", "warnings"], manifest)
    lib = (tmp_path / "lint-model" / "src" / "lib.rs").read_text()
    assert "#![no_std]" in lib and "#![forbid(unsafe_code)]" in lib  # so clippy proved it free of unsafe
    assert "pub const MAX_CORES: usize = 3;" in lib
    assert "pub fn run<R: ts::Random>(" in lib and "self.run_profiled_on(&ts::OneCore, " in lib
    # the library without its host runner builds without std (the runner's "std" is a dev-dependency)
    tree = cargo(["tree", "--edges", "normal,features", "--prefix", "none"], manifest)
    assert 'feature "std"' not in tree


def test_more_cores_than_one_keeps_the_single_core_api(tmp_path: Path) -> None:
    graph, _ = build_graph(MNIST, CompileOptions(target="host"))
    emit_rust(graph, tmp_path / "one", "m")
    emit_rust(graph, tmp_path / "two", "m", max_cores=2)
    one = (tmp_path / "one" / "m-model" / "src" / "lib.rs").read_text()
    two = (tmp_path / "two" / "m-model" / "src" / "lib.rs").read_text()
    assert "run_on" not in one and "split_rows" not in one and "MAX_CORES" not in one
    signature = re.search(r"pub fn run\(\n(.*?)\) \{", one, re.S)
    assert signature is not None and signature.group(0) in two  # Model::run is the same call
    assert "pub fn run_on<C: ts::Cores>(" in two and "pub const HANDOFF_BYTES: usize = ts::handoff_bytes(&[" in two
    cargo_toml = (tmp_path / "two" / "m-model" / "Cargo.toml").read_text()
    assert '[dev-dependencies]\ntinysplit-rt = { path = "../tinysplit-rt", features = ["std"] }' in cargo_toml


def test_cli_compiles_c_and_rust_for_cores(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["compile", str(MNIST), "-o", str(out), "--cores", "2", "--lang", "c,rust", "--prefix", "lenet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lib = (out / "rust" / "lenet-model" / "src" / "lib.rs").read_text()
    assert "pub const MAX_CORES: usize = 2;" in lib and "ts::split_rows::<MAX_CORES>(cores," in lib
    assert "lenet_run_worker" in (out / "c" / "model.c").read_text()
    assert '"cores": 2' in (out / "report.json").read_text()


def test_ariel_app_pins_a_worker_to_each_core(tmp_path: Path) -> None:
    """Ariel OS cannot be built here: the multi-core application uses the threading-multicore
    example's API (threads with CoreAffinity, sync::Event and sync::Mutex), forbids unsafe, selects
    the laze modules, and parses as Rust."""
    graph = planned(int8_zoo())
    emit_rust(graph, tmp_path, "zoo", max_cores=2)
    emit_ariel(graph, tmp_path, "zoo", model_id="int8_zoo", model_version=3, cores=2)
    app_dir = tmp_path / "zoo-ariel"
    main = (app_dir / "src" / "main.rs").read_text()
    for needle in (
        "#[ariel_os::thread(autostart, affinity = CoreAffinity::one(CoreId::new(0)), stacksize = INFERENCE_STACK)]",
        "#[ariel_os::thread(autostart, affinity = CoreAffinity::one(CoreId::new(1)), stacksize = WORKER_STACK)]",
        "ariel_os::asynch::blocker::block_on(run())",
        "impl ts::Cores for PinnedThreads",
        "impl ts::Worker<HANDOFF_BYTES> for PinnedWorker",
        "static WORKERS: [PinnedWorker; CORES - 1]",
        "ts::run_on_workers(&WORKERS, task, bands)",
        "serve(&WORKERS[0])",
        "model.run_on(&PinnedThreads, input, cut0, cut1, cut2)",
        "const _: () = assert!(CORES <= MAX_CORES",
        "const _: () = assert!(CORES <= ariel_os::thread::CORE_COUNT",
        "ariel_os::coap::coap_client().await",
    ):
        assert needle in main, needle
    assert "CoreId::new(2)" not in main and "#[ariel_os::task(autostart)]" not in main
    assert "unsafe" not in main
    assert '"core-affinity"' in (app_dir / "Cargo.toml").read_text()
    laze = (app_dir / "laze-project.yml").read_text()
    assert "- sw/threading" in laze and "- multi-core" in laze
    emit_ariel(graph, tmp_path / "single", "zoo", model_id="int8_zoo", model_version=3)
    single = (tmp_path / "single" / "zoo-ariel" / "src" / "main.rs").read_text()
    assert "#[ariel_os::task(autostart)]" in single and "model.run(input, " in single and "Core" not in single
    if shutil.which("rustfmt") is not None:  # a syntax check (rustfmt parses, it does not resolve)
        (app_dir / "src" / "keys.rs").write_text('pub const DEVICE_ID: &[u8] = b"d";\n')
        proc = subprocess.run(["rustfmt", "--edition", "2021", "--emit", "stdout", str(app_dir / "src" / "main.rs")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
