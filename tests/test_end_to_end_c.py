"""Generated C, compiled for the host and run, against the reference (int8: bit for bit) and onnxruntime."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from test_frontend import LIGHT_OK, SLOW, light_model

from tinysplit.backends.c import emit_c
from tinysplit.compiler import reference
from tinysplit.compiler.bench import io_specs, random_inputs
from tinysplit.compiler.harness import run_host
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph

ROOT = Path(__file__).resolve().parents[1]
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
FLOAT_TOLERANCE = 1e-4  # max |c - onnxruntime| relative to max |onnxruntime|
TOP1_MARGIN = 2  # quantization steps by which onnxruntime's top-1 must lead for the check to apply


def run_generated(graph: Graph, inputs: list[np.ndarray], workdir: Path) -> list[np.ndarray]:
    emit_c(graph, workdir / "c")
    outs = run_host(
        workdir / "c", inputs, io_specs(graph, graph.inputs), io_specs(graph, graph.outputs), workdir / "build"
    )
    return [o.reshape(graph.tensors[n].shape) for o, n in zip(outs, graph.outputs, strict=True)]


def onnxruntime_outputs(model: Path | onnx.ModelProto, graph: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    feeds = {}
    for meta, x in zip(session.get_inputs(), inputs, strict=True):
        feeds[meta.name] = x.reshape([d if isinstance(d, int) else 1 for d in meta.shape])
    return [np.asarray(o) for o in session.run(None, feeds)]


def check_model(model: Path | onnx.ModelProto, workdir: Path, seeds: tuple[int, ...] = (0, 1)) -> None:
    """C == reference bit for bit (int8) or within FLOAT_TOLERANCE of onnxruntime (float).

    int8 against onnxruntime: every single op is within one quantization step of onnxruntime
    (tests/test_frontend.py checks that layer by layer); over a whole network those one-step
    rounding differences compound, so end to end we require the same top-1 wherever onnxruntime's
    winner leads by more than TOP1_MARGIN steps.
    """
    graph, _ = build_graph(model, CompileOptions(target="stm32"))
    label = model.name if isinstance(model, Path) else model.graph.name
    for seed in seeds:
        inputs = random_inputs(graph, seed)
        c_out = run_generated(graph, inputs, workdir / f"seed{seed}")
        ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
        ort_out = onnxruntime_outputs(model, graph, inputs)
        for name, c, o in zip(graph.outputs, c_out, ort_out, strict=True):
            r = ref[name]
            o = o.reshape(c.shape)
            if c.dtype == np.int8:
                np.testing.assert_array_equal(c, r, err_msg=f"{label}: C differs from the reference")
                top2 = np.sort(o.reshape(-1).astype(np.int32))[-2:]
                if c.size > 1 and top2[1] - top2[0] > TOP1_MARGIN:
                    assert int(np.argmax(c)) == int(np.argmax(o)), f"{label}: top-1 differs from onnxruntime"
            else:
                scale = max(float(np.abs(o).max()), 1e-12)
                assert float(np.abs(c - o).max()) <= FLOAT_TOLERANCE * scale, f"{label}: C vs onnxruntime"
                assert float(np.abs(r - o).max()) <= FLOAT_TOLERANCE * scale, f"{label}: reference vs ORT"


def test_mnist_example(tmp_path: Path) -> None:
    check_model(MNIST, tmp_path)


@pytest.mark.parametrize("name", SHARED_MODELS)
def test_shared_models(name: str, tmp_path: Path) -> None:
    if not (SHARED / name).exists():
        pytest.skip(f"{SHARED} not present: the MLPerf Tiny models are not on this machine")
    check_model(SHARED / name, tmp_path)


# densenet121 and inception_v2 (millions of float weights as C literals) take minutes to build
LIGHT_C = [n if n in ("squeezenet", "shufflenet") else pytest.param(n, marks=SLOW) for n in LIGHT_OK]


@pytest.mark.parametrize("name", LIGHT_C)
def test_onnx_light_models(name: str, tmp_path: Path) -> None:
    """The onnx wheel's light models the op set covers (opset 9, upgraded; seeded random weights)."""
    check_model(light_model(name), tmp_path, seeds=(0,))


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
