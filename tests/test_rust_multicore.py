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

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_rust import MNIST, ROOT, SHARED, cargo, float_zoo, int8_zoo, needs_cargo, patched_mnist, planned, target_dir
from typer.testing import CliRunner

from tinysplit.backends.lower import lower
from tinysplit.backends.multicore import row_splittable
from tinysplit.backends.rust import crate_name, emit_ariel, emit_rust, model_lock
from tinysplit.compiler import reference
from tinysplit.compiler.bench import io_specs, random_inputs
from tinysplit.compiler.cli import app
from tinysplit.compiler.harness_rust import build_rust_host, run_rust_host
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.passes.noise import NoiseSpec, add_noise

SHARED_INT8 = ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx"]
STUB_LOCK_ENTRY = '\n[[package]]\nname = "ariel-os"\nversion = "0.1.0"\n'


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
    tiling = json.loads((out / "report.json").read_text())["tiling"]
    assert tiling["cores"] == 2  # the report's per-layer plan is the Rust crate's
    assert sum(layer["split"] for layer in tiling["layers"]) == lib.count("ts::split_rows::<MAX_CORES>(") > 0


ARIEL_STUB = """\
//! The parts of Ariel OS that the generated src/cores.rs uses, with the behaviour its documentation
//! gives them, on std: `thread::sync::{Mutex, Event}` and `thread::CORE_COUNT`.
pub mod thread {
    pub const CORE_COUNT: usize = 4;

    pub mod sync {
        use std::sync::{Condvar, MutexGuard};

        pub struct Mutex<T>(std::sync::Mutex<T>);

        impl<T> Mutex<T> {
            pub const fn new(value: T) -> Self {
                Self(std::sync::Mutex::new(value))
            }
            pub fn lock(&self) -> MutexGuard<'_, T> {
                self.0.lock().unwrap()
            }
            pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
                self.0.try_lock().ok()
            }
        }

        pub struct Event {
            set: std::sync::Mutex<bool>,
            changed: Condvar,
        }

        impl Event {
            pub const fn new() -> Self {
                Self { set: std::sync::Mutex::new(false), changed: Condvar::new() }
            }
            pub fn set(&self) {
                *self.set.lock().unwrap() = true;
                self.changed.notify_all();
            }
            pub fn clear(&self) -> bool {
                std::mem::replace(&mut *self.set.lock().unwrap(), false)
            }
            pub fn wait(&self) {
                let mut set = self.set.lock().unwrap();
                while !*set {
                    set = self.changed.wait(set).unwrap();
                }
            }
        }
    }
}
"""

ARIEL_CORES_MAIN = """\
//! The generated Ariel OS src/cores.rs on host threads (one per worker, as the app's pinned ones):
//! the model on its cores equals the model on one, for random inputs. Exit status 0 if so.
#[path = "{cores_rs}"]
mod cores;

use tinysplit_rt::{{self as ts, Worker}};
use {crate}::*;

fn double(_: &ts::RowBand, input: &[u8], output: &mut [u8], _: &mut [u8]) {{
    for (y, x) in output.iter_mut().zip(input) {{
        *y = x.wrapping_mul(2);
    }}
}}

fn main() {{
    for worker in &cores::WORKERS {{
        std::thread::spawn(move || cores::serve(worker));
    }}
    // every worker computes a band handed to it (the model would come out right without them: the
    // calling thread takes back the bands no worker has started)
    for (k, worker) in cores::WORKERS.iter().enumerate() {{
        let input: [u8; 16] = std::array::from_fn(|i| i as u8);
        let mut output = [0u8; 16];
        let rows = ts::RowBand::default();
        let mut band = ts::Band {{ rows, input: &input, output: &mut output, scratch: &mut [] }};
        worker.with(|handoff| handoff.load(double, &band));
        worker.wake();
        let start = std::time::Instant::now();
        while !worker.with(|handoff| handoff.finished()) {{
            assert!(start.elapsed().as_secs() < 30, "worker {{k}} never ran its band");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }}
        worker.with(|handoff| handoff.unload(&mut band));
        assert_eq!(output, std::array::from_fn(|i| 2 * i as u8));
    }}
    let (mut one, mut many) = (Box::new(Model::new()), Box::new(Model::new()));
    let mut state = 1u32;
    for round in 0..50 {{
        let input: [i8; INPUT0_SIZE] = std::array::from_fn(|_| {{
            state = state.wrapping_mul(1664525).wrapping_add(1013904223);
            (state >> 24) as i8
        }});
        {outputs}
        one.run(&input, {want});
        many.run_on(&cores::PinnedThreads, &input, {got});
        if {differ} {{
            eprintln!("round {{round}}: the cores differ from one core");
            std::process::exit(1);
        }}
    }}
}}
"""


@needs_cargo
def test_ariel_cores_run_on_host_threads(tmp_path: Path) -> None:
    """The Ariel OS application's multi-core module (src/cores.rs: ts::Worker and ts::Cores over
    Ariel OS's sync::Mutex and sync::Event), compiled against a std stand-in of those two and run
    with a host thread per worker: it builds against the real runtime and model crate, clippy
    clean, and its outputs equal the one-core model's."""
    graph = planned(int8_zoo())
    emit_rust(graph, tmp_path, "zoo", max_cores=3)
    emit_ariel(graph, tmp_path, "zoo", model_id="int8_zoo", model_version=1, cores=3)
    stub, check = tmp_path / "ariel-os", tmp_path / "cores-check"
    (stub / "src").mkdir(parents=True)
    (stub / "Cargo.toml").write_text('[package]\nname = "ariel-os"\nversion = "0.1.0"\nedition = "2021"\n')
    (stub / "src" / "lib.rs").write_text(ARIEL_STUB)
    (check / "src").mkdir(parents=True)
    deps = ("ariel-os", "tinysplit-rt", "zoo-model")
    (check / "Cargo.toml").write_text(
        '[package]\nname = "cores-check"\nversion = "0.1.0"\nedition = "2021"\npublish = false\n\n[dependencies]\n'
        + "".join(f'{d} = {{ path = "../{d}" }}\n' for d in deps)
        + '\n[lints.rust]\nunsafe_code = "forbid"\n'
    )  # fmt: skip
    model = model_lock("zoo-model", (ROOT / "runtime_rust" / "Cargo.lock").read_text())
    (check / "Cargo.lock").write_text(model_lock("cores-check", model + STUB_LOCK_ENTRY, deps))
    outputs = range(len(graph.outputs))
    buffers = [f"let (mut want{i}, mut got{i}) = ([0; OUTPUT{i}_SIZE], [0; OUTPUT{i}_SIZE]);" for i in outputs]
    (check / "src" / "main.rs").write_text(
        ARIEL_CORES_MAIN.format(
            cores_rs=tmp_path / "zoo-ariel" / "src" / "cores.rs",
            crate="zoo_model",
            outputs=" ".join(buffers),
            want=", ".join(f"&mut want{i}" for i in outputs),
            got=", ".join(f"&mut got{i}" for i in outputs),
            differ=" || ".join(f"want{i} != got{i}" for i in outputs),
        )
    )
    cargo(["clippy", "--release", "--locked", "--", "-D", "warnings"], check / "Cargo.toml")
    cargo(["build", "--release", "--locked"], check / "Cargo.toml")
    proc = subprocess.run([target_dir() / "release" / "cores-check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_ariel_app_pins_a_worker_to_each_core(tmp_path: Path) -> None:
    """Ariel OS cannot be built here: the multi-core application uses the threading-multicore
    example's API (threads with CoreAffinity, sync::Event and sync::Mutex), forbids unsafe, selects
    the laze modules, and parses as Rust."""
    graph = planned(int8_zoo())
    emit_rust(graph, tmp_path, "zoo", max_cores=2)
    emit_ariel(graph, tmp_path, "zoo", model_id="int8_zoo", model_version=3, cores=2)
    app_dir = tmp_path / "zoo-ariel"
    main = (app_dir / "src" / "main.rs").read_text()
    cores = (app_dir / "src" / "cores.rs").read_text()
    for needle in (
        "mod cores;",
        "#[ariel_os::thread(autostart, affinity = CoreAffinity::one(CoreId::new(0)), stacksize = INFERENCE_STACK)]",
        "#[ariel_os::thread(autostart, affinity = CoreAffinity::one(CoreId::new(1)), stacksize = WORKER_STACK)]",
        "cores::serve(&cores::WORKERS[0])",
        "ariel_os::asynch::blocker::block_on(run())",
        "model.run_on(&cores::PinnedThreads, input, cut0, cut1, cut2)",
        "ariel_os::coap::coap_client().await",
    ):
        assert needle in main, needle
    for needle in (
        "use ariel_os::thread::sync::{Event, Mutex};",
        "pub const CORES: usize = 2;",
        "impl ts::Cores for PinnedThreads",
        "impl ts::Worker<HANDOFF_BYTES> for PinnedWorker",
        "pub static WORKERS: [PinnedWorker; CORES - 1]",
        "ts::run_on_workers(&WORKERS, task, bands)",
        "const _: () = assert!(CORES <= MAX_CORES",
        "const _: () = assert!(CORES <= ariel_os::thread::CORE_COUNT",
    ):
        assert needle in cores, needle
    assert "CoreId::new(2)" not in main and "#[ariel_os::task(autostart)]" not in main
    assert "unsafe" not in main + cores
    assert '"core-affinity"' in (app_dir / "Cargo.toml").read_text()
    laze = (app_dir / "laze-project.yml").read_text()
    assert "- sw/threading" in laze and "- multi-core" in laze
    emit_ariel(graph, tmp_path / "single", "zoo", model_id="int8_zoo", model_version=3)
    single = (tmp_path / "single" / "zoo-ariel" / "src" / "main.rs").read_text()
    assert "#[ariel_os::task(autostart)]" in single and "model.run(input, " in single and "Core" not in single
    assert not (tmp_path / "single" / "zoo-ariel" / "src" / "cores.rs").exists()
    if shutil.which("rustfmt") is not None:  # a syntax check (rustfmt parses, it does not resolve)
        (app_dir / "src" / "keys.rs").write_text('pub const DEVICE_ID: &[u8] = b"d";\n')
        proc = subprocess.run(["rustfmt", "--edition", "2021", "--emit", "stdout", str(app_dir / "src" / "main.rs")],
                              capture_output=True, text=True, check=False)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
