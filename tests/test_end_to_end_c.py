"""Generated C, compiled for the host and run, against the reference (int8: bit for bit) and onnxruntime."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.compiler import reference
from tinysplit.compiler.errors import UnsupportedError
from tinysplit.compiler.harness import IOSpec, run_host
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
MNIST = ROOT / "examples" / "mnist" / "lenet5.onnx"
SHARED_MODELS = [
    "resnet8_cifar10_f32.onnx",
    "resnet8_cifar10_int8.onnx",
    "dscnn_kws_f32.onnx",
    "dscnn_kws_int8.onnx",
    "ad01_toycar_f32.onnx",
    "ad01_toycar_int8.onnx",
]
FLOAT_TOLERANCE = 1e-4  # max |c - onnxruntime| relative to max |onnxruntime|


def specs(graph: Graph, names: list[str]) -> list[IOSpec]:
    return [IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size) for n in names]


def random_inputs(graph: Graph, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    feeds = []
    for name in graph.inputs:
        t = graph.tensors[name]
        if t.dtype == "int8":
            feeds.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            feeds.append(rng.standard_normal(t.shape).astype(np.float32))
    return feeds


def run_generated(graph: Graph, inputs: list[np.ndarray], workdir: Path) -> list[np.ndarray]:
    emit_c(graph, workdir / "c")
    outs = run_host(workdir / "c", inputs, specs(graph, graph.inputs), specs(graph, graph.outputs), workdir / "build")
    return [o.reshape(graph.tensors[n].shape) for o, n in zip(outs, graph.outputs, strict=True)]


def onnxruntime_outputs(model: Path, graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    feeds = {}
    for meta, x in zip(session.get_inputs(), inputs, strict=True):
        feeds[meta.name] = x.reshape([d if isinstance(d, int) else 1 for d in meta.shape])
    return [np.asarray(o) for o in session.run(None, feeds)]


def check_model(model: Path, workdir: Path, seeds: tuple[int, ...] = (0, 1)) -> None:
    graph, _ = build_graph(model, CompileOptions(target="stm32"))
    for seed in seeds:
        inputs = random_inputs(graph, seed)
        c_out = run_generated(graph, inputs, workdir / f"seed{seed}")
        ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
        ort_out = onnxruntime_outputs(model, graph, inputs)
        for name, c, o in zip(graph.outputs, c_out, ort_out, strict=True):
            r = ref[name]
            o = o.reshape(c.shape)
            if c.dtype == np.int8:
                np.testing.assert_array_equal(c, r, err_msg=f"{model.name}: C differs from the reference")
                diff = np.abs(c.astype(np.int32) - o.astype(np.int32))
                assert diff.max() <= 1, f"{model.name}: {diff.max()} quantization steps from onnxruntime"
                top2 = np.sort(o.reshape(-1).astype(np.int32))[-2:]
                if c.size > 1 and top2[1] - top2[0] > 1:  # a clear winner must be the same class
                    assert int(np.argmax(c)) == int(np.argmax(o)), f"{model.name}: top-1 differs"
            else:
                scale = max(float(np.abs(o).max()), 1e-12)
                assert float(np.abs(c - o).max()) <= FLOAT_TOLERANCE * scale, f"{model.name}: C vs onnxruntime"
                assert float(np.abs(r - o).max()) <= FLOAT_TOLERANCE * scale, f"{model.name}: reference vs ORT"


def test_mnist_example(tmp_path: Path) -> None:
    check_model(MNIST, tmp_path)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED} not present: the MLPerf Tiny models are not on this machine")
    check_model(SHARED / name, tmp_path)


def light_models() -> list[Path]:
    return sorted(LIGHT.glob("*.onnx"))


@pytest.mark.parametrize("model", light_models(), ids=lambda p: p.stem)
def test_onnx_light_models(model: Path, tmp_path: Path) -> None:
    try:
        build_graph(model, CompileOptions(target="host"))
    except UnsupportedError as e:
        pytest.skip(f"outside the op set: {e}")
    check_model(model, tmp_path, seeds=(0,))


def test_light_models_are_mostly_covered() -> None:
    """Guard against the skips above hiding a broken frontend."""
    covered = []
    for model in light_models():
        try:
            build_graph(model, CompileOptions(target="host"))
            covered.append(model.stem)
        except UnsupportedError:
            pass
    assert len(covered) >= 5, covered


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc is not installed")
@pytest.mark.parametrize("name", ["resnet8_cifar10_int8.onnx", "dscnn_kws_f32.onnx"])
def test_generated_c_builds_for_cortex_m4(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED} not present: the MLPerf Tiny models are not on this machine")
    graph, _ = build_graph(SHARED / name, CompileOptions(target="stm32"))
    emit_c(graph, tmp_path / "c")
    sources = [tmp_path / "c" / "model.c", *sorted((tmp_path / "c" / "runtime" / "src").glob("*.c"))]
    flags = ["-std=c99", "-O2", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]
    flags += ["-Wall", "-Wextra", "-Werror", "-pedantic", "-I", str(tmp_path / "c")]
    flags += ["-I", str(tmp_path / "c" / "runtime" / "include")]
    for src in sources:
        proc = subprocess.run(
            ["arm-none-eabi-gcc", *flags, "-c", str(src), "-o", str(tmp_path / f"{src.stem}.o")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
