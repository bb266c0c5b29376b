"""How close tinysplit's int8 stays to float: MNIST accuracy, and the MLPerf Tiny models vs TFLite's int8.

    .venv/bin/python bench/quantization_accuracy.py [--skip-c]

MNIST (examples/mnist): calibrate on 200 training images (a fixed random draw over all digits),
accuracy of float and int8 on the 1,000 held-out images for each calibration method; the int8
graph exported as QDQ ONNX is run by onnxruntime and compared with the reference (steps, top-1),
and the generated C is run on the host and compared with the reference bit for bit.

../shared/models: float vs our int8 (reference interpreter = the device's integer semantics) vs the
int8 QDQ file shipped beside it (TFLite's converter, run by onnxruntime with its int8 input and
output quantization). There is no CIFAR-10 or speech data on this machine, so the inputs are:
- ResNet-8: natural-image patches, not CIFAR: random square crops (32..160 px) of the two
  photographs bundled with scikit-learn (china.jpg, flower.jpg), box-downsampled to 32x32, pixel
  values 0..255 as the model expects (its int8 input has scale 1, zero point -128);
- DS-CNN: MFCCs of synthetic audio, not speech (see kws_features: MLPerf Tiny's preprocessing
  applied to noise plus formant-shaped harmonic "words"); they stay inside the input range TFLite's
  calibration recorded in the shipped int8 model ([-123.4, 25.7], from real speech);
- AD (ToyCar autoencoder): the 40 real log-mel frames of ad01_sample_normal_id01.bin; calibration
  on the even frames, evaluation on the odd ones. Its output is a reconstruction, so besides cosine
  similarity it reports the relative error of the anomaly score (mean squared reconstruction error).
Top-1 agreement and cosine similarity are against float on the same inputs.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper

from tinysplit.backends.onnx_export import export_onnx
from tinysplit.compiler import frontend, reference
from tinysplit.compiler import quant as Q
from tinysplit.compiler.calibration import batched, load_calibration
from tinysplit.compiler.ir import Graph, Quant
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.quantize import METHODS, quantize

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
CHUNK = 250  # samples per reference run


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    spec = importlib.util.spec_from_file_location("mnist_data", ROOT / "examples" / "mnist" / "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] = module.load_mnist()
    return data


def run_batched(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The single-input, single-output graph on every sample of x (rows of the batch axis)."""
    outs = []
    for start in range(0, len(x), CHUNK):
        part = x[start : start + CHUNK]
        g = batched(graph, len(part))
        assert g is not None, f"{graph.name}: cannot batch"
        outs.append(reference.run(g, {g.inputs[0]: part})[g.outputs[0]])
    return np.concatenate(outs)


def ort_session(model: onnx.ModelProto | Path, optimize: bool) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if not optimize:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, so, providers=["CPUExecutionProvider"])


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over samples of the cosine similarity of the output vectors."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    num = (a * b).sum(axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.mean(num / np.maximum(den, 1e-30)))


# MNIST ---------------------------------------------------------------------------------------------
def mnist(skip_c: bool) -> list[str]:
    x_train, _, x_test, y_test = load_mnist()
    calib = x_train[np.random.default_rng(0).permutation(len(x_train))[:200]]
    g = canonicalize(frontend.load(ROOT / "examples" / "mnist" / "lenet5.onnx"))
    f_pred = run_batched(g, x_test).argmax(axis=1)
    f_acc = float(np.mean(f_pred == y_test))
    rows = [f"| float (reference) | {100 * f_acc:.1f} % | - | - |"]
    notes = []
    for method in METHODS:
        t0 = time.perf_counter()
        q = quantize(g, load_calibration(calib, g), method)
        seconds = time.perf_counter() - t0
        logits = run_batched(q, x_test)
        acc = float(np.mean(logits.argmax(axis=1) == y_test))
        agree = float(np.mean(logits.argmax(axis=1) == f_pred))
        row = f"| int8 {method} ({seconds:.1f} s) | {100 * acc:.1f} % | {100 * (acc - f_acc):+.1f} |"
        rows.append(f"{row} {100 * agree:.1f} % |")
        if method == "minmax":
            notes += mnist_checks(g, q, calib, x_test, skip_c)
    head = ["### MNIST LeNet-5, 1,000 held-out images (calibration: 200 training images)", ""]
    head += ["| model | accuracy | vs float (points) | top-1 agreement with float |", "|---|---|---|---|"]
    return [*head, *rows, "", *notes, ""]


def mnist_checks(g: Graph, q: Graph, calib: np.ndarray, x_test: np.ndarray, skip_c: bool) -> list[str]:
    """Exported QDQ in onnxruntime vs reference; generated C vs reference (int8 interface)."""
    q8 = quantize(g, load_calibration(calib, g), "minmax", io_dtype="int8")
    xin, xout = q8.tensors[q8.inputs[0]], q8.tensors[q8.outputs[0]]
    assert xin.quant is not None and xout.quant is not None
    x8 = Q.quantize(x_test, xin.quant)
    ref = run_batched(q8, x8)
    qb = batched(q8, len(x8))
    assert qb is not None
    onnx_out = ort_session(export_onnx(qb), optimize=False).run(None, {qb.inputs[0]: x8})[0]
    steps = np.abs(onnx_out.astype(np.int32) - ref.astype(np.int32))
    lines = [
        f"- exported QDQ ONNX (onnxruntime, no graph optimizations) vs reference, int8 logits of 1,000 images: "
        f"max {steps.max()} step(s), {100 * np.mean(steps == 0):.1f} % equal, top-1 agreement "
        f"{100 * np.mean(onnx_out.argmax(1) == ref.argmax(1)):.1f} %"
    ]
    if skip_c:
        return lines
    from tinysplit.backends.c import CTYPES, emit_c
    from tinysplit.backends.lower import scratch_bytes
    from tinysplit.compiler.harness import IOSpec, run_host
    from tinysplit.passes.memory_plan import plan_memory

    planned = plan_memory(qb, scratch_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        emit_c(planned, Path(tmp) / "c")
        spec = [IOSpec(t.name, CTYPES[t.dtype], t.size) for t in (qb.tensors[qb.inputs[0]], qb.tensors[qb.outputs[0]])]
        c_out = run_host(Path(tmp) / "c", [x8], spec[:1], spec[1:], Path(tmp) / "build")[0].reshape(ref.shape)
    same = bool(np.array_equal(c_out, ref))
    verdict = "bit for bit equal" if same else "DIFFERENT"
    lines.append(f"- generated C (host gcc) vs reference, int8 logits of 1,000 images: {verdict}")
    return lines


# shared models ---------------------------------------------------------------------------------------
def natural_patches(n: int, seed: int) -> np.ndarray:
    """n 32x32x3 patches (0..255 float) of the photographs bundled with scikit-learn."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = np.empty((n, 32, 32, 3), np.float32)
    for i in range(n):
        img = images[rng.integers(len(images))]
        size = int(rng.integers(32, 161))
        y, x = rng.integers(0, img.shape[0] - size + 1), rng.integers(0, img.shape[1] - size + 1)
        crop = Image.fromarray(img[y : y + size, x : x + size])
        out[i] = np.asarray(crop.resize((32, 32), Image.Resampling.BOX), np.float32)
    return out


def kws_features(n: int, seed: int) -> np.ndarray:
    """n [49, 10, 1] MFCC inputs computed as MLPerf Tiny's KWS preprocessing does (16 kHz, 1 s, 30 ms
    Hann frames every 20 ms, |FFT 512|, 40 mel bands 20-4000 Hz, log(mel + 1e-6), orthonormal DCT-II,
    10 coefficients) from synthetic audio, not speech: background noise at a random level, and in
    most clips a 0.2-0.7 s "word" of harmonics (f0 90-250 Hz, gliding) shaped by three random
    formant resonances; 30 % of clips end early, zero-padded. Digital silence gives c0 = -123.6, the
    bottom of the input range TFLite recorded for the shipped model (-123.4)."""
    rate, frame, step, nfft = 16000, 480, 320, 512
    rng = np.random.default_rng(seed)
    freqs = np.linspace(0, rate / 2, nfft // 2 + 1)
    mel = 1127.0 * np.log1p(np.array([20.0, 4000.0]) / 700.0)
    edges = 700.0 * np.expm1(np.linspace(mel[0], mel[1], 42) / 1127.0)
    f_mel = 1127.0 * np.log1p(freqs / 700.0)
    e_mel = 1127.0 * np.log1p(edges / 700.0)
    weights = np.maximum(
        0,
        np.minimum(
            (f_mel[:, None] - e_mel[None, :-2]) / np.diff(e_mel)[None, :-1],
            (e_mel[None, 2:] - f_mel[:, None]) / np.diff(e_mel)[None, 1:],
        ),
    )
    weights[0] = 0.0
    k = np.arange(40)
    dct = np.cos(np.pi / 40 * (k[None, :] + 0.5) * np.arange(10)[:, None]) * 2 / np.sqrt(80)  # tf.signal's scale
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)
    t = np.arange(rate) / rate
    out = np.empty((n, 49, 10, 1), np.float32)
    for i in range(n):
        audio = rng.standard_normal(rate) * 10 ** rng.uniform(-3.5, -1.5)
        if rng.random() < 0.85:
            start, length = rng.uniform(0.05, 0.4), rng.uniform(0.2, 0.7)
            f0 = rng.uniform(90, 250) * (1 + rng.uniform(-0.2, 0.2) * t)
            phase = 2 * np.pi * np.cumsum(f0) / rate
            formants = rng.uniform([300, 900, 2000], [900, 2200, 3500])
            voice = sum(
                np.sin(h * phase) * sum(np.exp(-(((h * f0 - f) / 150.0) ** 2)) for f in formants) for h in range(1, 30)
            )
            envelope = np.clip(np.minimum(t - start, start + length - t) / 0.03, 0, 1)
            audio += voice * envelope * 10 ** rng.uniform(-1.5, -0.3)
        if rng.random() < 0.3:  # a clip shorter than 1 s, zero-padded as the dataset loader does
            audio[int(rng.uniform(0.7, 0.95) * rate) :] = 0.0
        frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::step][:49] * window
        spectrum = np.abs(np.fft.rfft(frames, nfft))
        mfcc = np.log(spectrum @ weights + 1e-6) @ dct.T
        out[i, :, :, 0] = mfcc
    return out


def io_quant(path: Path) -> tuple[Quant, Quant]:
    """(input, output) quantization of a shipped int8 QDQ model: its input's first DequantizeLinear
    (through Transpose/Reshape) and the QuantizeLinear writing its output."""
    m = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in m.graph.initializer}
    frontier, qin = [m.graph.input[0].name], None
    while qin is None:
        node = next(n for n in m.graph.node if n.input and n.input[0] in frontier)
        if node.op_type == "DequantizeLinear":
            qin = Quant(inits[node.input[1]], inits[node.input[2]].astype(np.int32))
        frontier = list(node.output)
    out = next(n for n in m.graph.node if m.graph.output[0].name in n.output)
    assert out.op_type == "QuantizeLinear"
    return qin, Quant(inits[out.input[1]], inits[out.input[2]].astype(np.int32))


def shipped_int8(path: Path, x: np.ndarray) -> np.ndarray:
    qin, qout = io_quant(path)
    sess = ort_session(path, optimize=True)
    meta = sess.get_inputs()[0]
    x8 = Q.quantize(x, qin)
    y = np.concatenate([sess.run(None, {meta.name: x8[i : i + 1]})[0] for i in range(len(x8))])
    return Q.dequantize(y, qout)


Metric = Callable[[np.ndarray, np.ndarray, np.ndarray], str]


def classification(ref: np.ndarray, out: np.ndarray, _: np.ndarray) -> str:
    return f"{100 * np.mean(ref.argmax(1) == out.argmax(1)):.1f} % | {cosine(ref, out):.4f}"


def reconstruction(ref: np.ndarray, out: np.ndarray, x: np.ndarray) -> str:
    score_f, score_q = ((x - ref) ** 2).mean(axis=1), ((x - out) ** 2).mean(axis=1)
    rel = np.abs(score_q - score_f) / score_f
    return f"score error {100 * rel.mean():.2f} % | {cosine(ref, out):.4f}"


def shared_model(name: str, inputs: str, calib: np.ndarray, x: np.ndarray, metric: Metric) -> list[str]:
    g = canonicalize(frontend.load(SHARED / f"{name}_f32.onnx"))
    ref = run_batched(g, x)
    rows = []
    for method in METHODS:
        t0 = time.perf_counter()
        q = quantize(g, load_calibration(calib, g), method)
        seconds = time.perf_counter() - t0
        rows.append(f"| {name} | tinysplit int8, {method} ({seconds:.0f} s) | {metric(ref, run_batched(q, x), x)} |")
    rows.append(f"| {name} | shipped int8 (TFLite) | {metric(ref, shipped_int8(SHARED / f'{name}_int8.onnx', x), x)} |")
    return [f"- {name}: {inputs}; calibration {len(calib)} samples, evaluation {len(x)} samples", *rows]


def shared() -> list[str]:
    if not SHARED.is_dir():
        return [f"({SHARED} not present: MLPerf Tiny models skipped)"]
    head = ["### MLPerf Tiny models vs float (same inputs)", ""]
    table = ["| model | int8 | top-1 agreement (AD: anomaly score error) | cosine similarity |", "|---|---|---|---|"]
    notes = []
    parts = [
        ("resnet8_cifar10", "natural-image patches (not CIFAR)", natural_patches(200, 10), natural_patches(500, 11)),
        ("dscnn_kws", "MFCCs of synthetic audio (not speech)", kws_features(200, 20), kws_features(500, 21)),
    ]
    frames = np.fromfile(SHARED / "ad01_sample_normal_id01.bin", dtype="<f4").reshape(40, 640)
    parts.append(("ad01_toycar", "the 40 real frames of ad01_sample_normal_id01.bin", frames[0::2], frames[1::2]))
    for name, what, calib, x in parts:
        metric = reconstruction if name == "ad01_toycar" else classification
        lines = shared_model(name, what, calib, x, metric)
        notes.append(lines[0])
        table += lines[1:]
    return [*head, *table, "", *notes, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-c", action="store_true", help="do not build and run the generated C")
    args = parser.parse_args()
    print("\n".join([*mnist(args.skip_c), *shared()]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
