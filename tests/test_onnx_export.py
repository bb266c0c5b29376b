"""backends.onnx_export: IR -> ONNX, run by onnxruntime, against the reference interpreter.

float: within 1e-4 of the largest output magnitude; int8 (QDQ): within one quantization step,
because onnxruntime rounds half to even in float where the kernels requantize in fixed point.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from tinysplit.backends.onnx_export import export_onnx
from tinysplit.compiler import frontend, reference
from tinysplit.compiler.calibration import load_calibration
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.quantize import quantize

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MNIST = ROOT / "examples" / "mnist" / "lenet5.onnx"
FLOAT_TOLERANCE = 1e-4


def run_onnx(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """onnxruntime without graph optimizations: QDQ stays float fake quantization, as documented."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds), strict=True))


def one_node(graph: Graph, node: Node) -> Graph:
    """`node` alone, its activation inputs as graph inputs: isolates one op's export."""
    g = Graph(node.name)
    for name in [*node.inputs, *node.outputs]:
        g.add_tensor(graph.tensors[name])
    g.add_node(Node(node.name, node.op, list(node.inputs), list(node.outputs), dict(node.attrs)))
    g.inputs = [i for i in dict.fromkeys(node.inputs) if graph.tensors[i].data is None]
    g.outputs = list(node.outputs)
    return g


def _close(graph: Graph, name: str, r: np.ndarray, o: np.ndarray, steps: int) -> str | None:
    """None if onnxruntime's `o` matches the reference's `r` for tensor `name`, else why not."""
    assert o.dtype == r.dtype and o.shape == r.shape, name
    t = graph.tensors[name]
    if t.dtype == "int8":
        diff = int(np.abs(o.astype(np.int32) - r.astype(np.int32)).max())
        return None if diff <= steps else f"{diff} steps"
    producer = graph.producer(name)
    if producer is not None and producer.op == "dequantize":  # a float view of int8 values
        step = float(graph.tensors[producer.inputs[0]].quant.scale.max())
        diff = int(np.round(np.abs(o - r).max() / step))
        return None if diff <= steps else f"{diff} steps"
    scale = max(float(np.abs(r).max()), 1e-12)
    rel = float(np.abs(o - r).max()) / scale
    return None if rel <= FLOAT_TOLERANCE else f"relative error {rel:.2e}"


def assert_matches(graph: Graph, feeds: dict[str, np.ndarray], end_to_end_steps: int | None = None) -> None:
    """Exported model in onnxruntime == reference. Every op alone, given the reference's inputs:
    float within 1e-4 relative, int8 within one step. The whole model: float graphs within 1e-4,
    int8 outputs within `end_to_end_steps` (one-step differences of successive layers add up, and
    a softmax magnifies them; None: only the per-op check)."""
    ref = reference.run(graph, feeds, keep_all=True)
    for node in graph.nodes():
        sub = one_node(graph, node)
        got = run_onnx(export_onnx(sub), {i: ref[i] for i in sub.inputs})
        why = _close(graph, node.outputs[0], ref[node.outputs[0]], got[node.outputs[0]], 1)
        assert why is None, f"node {node.name} ({node.op}): {why}"
    got = run_onnx(export_onnx(graph), feeds)
    quantized = any(t.dtype == "int8" for t in graph.activations())
    for name in graph.outputs:
        if quantized and end_to_end_steps is None:
            continue
        why = _close(graph, name, ref[name], got[name], end_to_end_steps or 0)
        assert why is None, f"output {name}: {why}"


def zoo(seed: int = 0) -> Graph:
    """One float graph through every IR op that computes (and a few awkward attributes)."""
    rng = np.random.default_rng(seed)
    g = Graph("zoo")

    def t(name: str, shape: tuple[int, ...], data: np.ndarray | None = None) -> str:
        g.add_tensor(Tensor(name, shape, "float32", None, data))
        return name

    def c(name: str, shape: tuple[int, ...], scale: float = 0.3) -> str:
        return t(name, shape, (rng.standard_normal(shape) * scale).astype(np.float32))

    def n(op: str, ins: list[str], out: str, shape: tuple[int, ...], **attrs: object) -> None:
        t(out, shape)
        g.add_node(Node(f"n_{out}", op, ins, [out], dict(attrs)))

    g.inputs, g.outputs = [t("x", (1, 8, 8, 4))], ["probs", "mid"]
    n(
        "conv2d",
        ["x", c("w1", (6, 3, 3, 4)), c("b1", (6,))],
        "c1",
        (1, 8, 8, 6),
        pads=(1, 1, 1, 1),
        act_min=0.0,
        act_max=6.0,
    )
    n("conv2d", ["c1", c("w2", (4, 3, 3, 6))], "c2", (1, 8, 8, 4), pads=(2, 2, 2, 2), dilations=(2, 2))
    n(
        "conv2d",
        ["c2", c("w3", (4, 3, 3, 1)), c("b3", (4,))],
        "c3",
        (1, 4, 4, 4),
        strides=(2, 2),
        pads=(0, 0, 1, 1),
        groups=4,
    )
    n("max_pool2d", ["c3"], "mp", (1, 4, 4, 4), kernel=(2, 2), strides=(1, 1), pads=(0, 0, 1, 1))
    n("avg_pool2d", ["c3"], "ap", (1, 4, 4, 4), kernel=(3, 3), strides=(1, 1), pads=(1, 1, 1, 1))
    n(
        "avg_pool2d",
        ["c3"],
        "ap2",
        (1, 2, 2, 4),
        kernel=(3, 3),
        strides=(2, 2),
        pads=(1, 1, 0, 0),
        count_include_pad=True,
    )
    n("add", ["mp", "ap"], "s1", (1, 4, 4, 4), act_min=-1.0)
    n("mul", ["s1", c("k", (4,))], "m1", (1, 4, 4, 4))
    n("sigmoid", ["m1"], "sg", (1, 4, 4, 4))
    n("tanh", ["s1"], "th", (1, 4, 4, 4))
    n("concat", ["sg", "th"], "cat", (1, 4, 4, 8), axis=3)
    n("pad", ["cat"], "pd", (1, 5, 3, 8), pads=(0, 1, 0, 0, 0, 0, -1, 0), value=0.25)
    n("transpose", ["pd"], "tr", (1, 8, 5, 3), perm=(0, 3, 1, 2))
    n("reshape", ["tr"], "flat", (1, 120))
    n("fully_connected", ["flat", c("wf", (10, 120)), c("bf", (10,))], "fc", (1, 10))
    n("clip", ["fc"], "mid", (1, 10), act_min=-1.5, act_max=2.0)
    n("softmax", ["mid"], "probs", (1, 10))
    n("add", ["ap2", "ap2"], "unused", (1, 2, 2, 4))  # dead ends are fine: not an output
    return g


def test_float_zoo_matches_onnxruntime() -> None:
    g = zoo()
    rng = np.random.default_rng(1)
    for _ in range(3):
        assert_matches(g, {"x": rng.standard_normal((1, 8, 8, 4)).astype(np.float32)})


def test_export_is_valid_opset17_with_the_same_interface() -> None:
    g = zoo()
    model = export_onnx(g)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["probs", "mid"]
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "MaxPool", "AveragePool", "Gemm", "Pad", "Softmax", "Concat", "Transpose"} <= ops


def test_int8_zoo_matches_within_one_step() -> None:
    g = zoo()
    rng = np.random.default_rng(2)
    cal = load_calibration(rng.standard_normal((16, 8, 8, 4)).astype(np.float32), g)
    q = quantize(g, cal, io_dtype="int8")
    model = export_onnx(q)
    ops = [n.op_type for n in model.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    # The int8 weights are stored as int8 initializers, OIHW, with per-channel scales on axis 0.
    w1 = next(i for i in model.graph.initializer if i.name == "w1")
    assert w1.data_type == onnx.TensorProto.INT8 and list(w1.dims) == [6, 4, 3, 3]
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "w1")
    assert [a.i for a in dq.attribute if a.name == "axis"] == [0]
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 8, 8, 4), dtype=np.int8)
        assert_matches(q, {"x": x})


def test_int8_with_float_interface_matches() -> None:
    g = zoo()
    rng = np.random.default_rng(3)
    q = quantize(g, load_calibration(rng.standard_normal((16, 1, 8, 8, 4)).astype(np.float32), g))
    assert q.tensors["x"].dtype == "float32" and q.tensors["probs"].dtype == "float32"
    assert next(q.nodes()).op == "quantize"
    assert_matches(q, {"x": rng.standard_normal((1, 8, 8, 4)).astype(np.float32)})


def test_hand_quantized_graph_with_int32_bias() -> None:
    """A hand-made int8 conv (bias without Quant: the exporter derives sx * sw)."""
    g = Graph("conv8")
    w = np.array([[[[1, -2]]], [[[127, 5]]], [[[-127, 0]]]], dtype=np.int8)  # [3,1,1,2]
    sw = np.array([0.01, 0.02, 0.005], np.float32)
    g.add_tensor(Tensor("x", (1, 2, 2, 2), "int8", Quant(0.05, 3)))
    g.add_tensor(Tensor("w", w.shape, "int8", Quant(sw, np.zeros(3), axis=0), w))
    g.add_tensor(Tensor("b", (3,), "int32", None, np.array([100, -50, 7], np.int32)))
    g.add_tensor(Tensor("y", (1, 2, 2, 3), "int8", Quant(0.01, -10)))
    g.add_node(Node("conv", "conv2d", ["x", "w", "b"], ["y"], {"act_min": 0.0}))
    g.inputs, g.outputs = ["x"], ["y"]
    rng = np.random.default_rng(4)
    for _ in range(5):
        assert_matches(g, {"x": rng.integers(-128, 128, (1, 2, 2, 2), dtype=np.int8)})


def test_mnist_float_and_int8_roundtrip() -> None:
    g = canonicalize(frontend.load(MNIST))
    rng = np.random.default_rng(5)
    x = rng.random((1, 1, 28, 28), dtype=np.float32)
    assert_matches(g, {"input": x})
    q = quantize(g, load_calibration(rng.random((8, 1, 28, 28), dtype=np.float32), g), io_dtype="int8")
    assert_matches(q, {"input": rng.integers(-128, 128, (1, 1, 28, 28), dtype=np.int8)}, end_to_end_steps=2)


@pytest.mark.parametrize("name", ["resnet8_cifar10", "dscnn_kws", "ad01_toycar"])
def test_shared_models_roundtrip(name: str) -> None:
    """Real models: the float file, and the shipped int8 QDQ file as the frontend absorbs it."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    rng = np.random.default_rng(6)
    for kind in ("f32", "int8"):
        g = canonicalize(frontend.load(SHARED / f"{name}_{kind}.onnx"))
        t = g.tensors[g.inputs[0]]
        if t.dtype == "int8":
            x = rng.integers(-128, 128, t.shape, dtype=np.int8)
        else:
            x = rng.standard_normal(t.shape).astype(np.float32)
        assert_matches(g, {g.inputs[0]: x})


def test_int8_export_reimports_bit_for_bit() -> None:
    """Our QDQ file read back by our frontend is the same int8 model: every conv, pool and FC int8."""
    g = canonicalize(frontend.load(MNIST))
    rng = np.random.default_rng(7)
    q = quantize(g, load_calibration(rng.random((8, 1, 28, 28), dtype=np.float32), g))
    back = canonicalize(frontend.load(export_onnx(q)))
    assert [n.op for n in back.nodes()] == [n.op for n in q.nodes()]
    for _ in range(5):
        x = {"input": rng.random((1, 1, 28, 28), dtype=np.float32)}
        np.testing.assert_array_equal(reference.run(back, x)["logits"], reference.run(q, x)["logits"])
