"""A MobileNetV2-like float model built with onnx.helper (seeded random weights), for patch-based
execution: 96x96x3 input, stride-2 stem, inverted residual blocks (expansion 6) on 48x48, 24x24,
12x12 and 6x6 maps, a 1x1 head, global average pooling and a 10-way classifier."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

# (expansion, output channels, stride) per inverted residual block; stride 1 with equal channels adds
BLOCKS = [(1, 16, 1), (6, 24, 2), (6, 24, 1), (6, 32, 2), (6, 32, 1), (6, 64, 2), (6, 64, 1)]


def mobilenet_v2_like(size: int = 96, width: int = 32, classes: int = 10, seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    count = iter(range(10_000))

    def const(value: np.ndarray) -> str:
        name = f"c{next(count)}"
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def conv(x: str, cin: int, cout: int, k: int, stride: int, groups: int = 1, relu6: bool = True) -> str:
        fan_in = k * k * cin // groups
        w = rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)
        b = rng.standard_normal(cout) * 0.1
        y = f"t{next(count)}"
        pad = k // 2
        nodes.append(
            helper.make_node(
                "Conv", [x, const(w), const(b)], [y],
                kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad], group=groups,
            )
        )  # fmt: skip
        if not relu6:
            return y
        z = f"t{next(count)}"
        nodes.append(helper.make_node("Clip", [y, const(np.array(0.0)), const(np.array(6.0))], [z]))
        return z

    x = conv("input", 3, width, 3, 2)
    cin = width
    for expansion, cout, stride in BLOCKS:
        hidden = cin * expansion
        h = conv(x, cin, hidden, 1, 1) if expansion != 1 else x
        h = conv(h, hidden, hidden, 3, stride, groups=hidden)
        h = conv(h, hidden, cout, 1, 1, relu6=False)
        if stride == 1 and cin == cout:
            s = f"t{next(count)}"
            nodes.append(helper.make_node("Add", [x, h], [s]))
            h = s
        x, cin = h, cout
    x = conv(x, cin, 4 * cin, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    w = rng.standard_normal((classes, 4 * cin)) * np.sqrt(1.0 / (4 * cin))
    nodes.append(helper.make_node("Gemm", ["flat", const(w), const(np.zeros(classes))], ["logits"], transB=1))
    graph = helper.make_graph(
        nodes,
        "mobilenet_v2_like",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
