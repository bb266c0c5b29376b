"""IR graph -> ONNX (opset 17) that onnxruntime runs: to check a compiled graph, or to ship a graph tail.

Float ops become the matching ONNX ops. Activations stay NHWC as in the IR, so each conv2d and pool
is wrapped in a Transpose pair (NHWC -> NCHW -> op -> NHWC): simple and always correct, not fast.
For int8 the Transposes move the int8 data, leaving the standard DQ -> op -> Q pattern inside.
int8 tensors appear in QDQ form: an int8 activation is DequantizeLinear'd (once) before the float op
that reads it, an int8 op output is the QuantizeLinear of the float result, int8 weights are int8
initializers with a per-channel DequantizeLinear (axis 0 of OIHW after transposition), and an int32
bias dequantizes with scale sx * sw. onnxruntime then computes in float and rounds half to even at
each QuantizeLinear, whereas the device kernels requantize in fixed point: outputs agree within one
quantization step, not bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinysplit.compiler.ir import Graph, Node, Quant, Tensor

OPSET = 17
IR_VERSION = 8  # what opset 17 came with; newer IR versions are not readable by every onnxruntime
ELEM = {"float32": TensorProto.FLOAT, "int8": TensorProto.INT8, "int32": TensorProto.INT32, "int64": TensorProto.INT64}
TO_NCHW, TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]
SPATIAL = {"conv2d", "max_pool2d", "avg_pool2d"}


class _Builder:
    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.used: set[str] = set(graph.tensors)
        self.float_of: dict[str, str] = {}  # IR tensor -> its float value (dequantized, or the initializer)

    def fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name

    def const(self, base: str, value: np.ndarray | np.generic) -> str:
        name = self.fresh(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], output: str | None = None, **attrs: Any) -> str:
        out = output if output is not None else self.fresh(f"{inputs[0]}_{op.lower()}")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self.fresh(f"{op}_{out}"), **attrs))
        return out

    def quant_args(self, base: str, q: Quant, zp_dtype: type = np.int8) -> list[str]:
        scalar = q.scale.size == 1
        scale = q.scale.reshape(()) if scalar else q.scale
        zp = (q.zero_point.reshape(()) if scalar else q.zero_point).astype(zp_dtype)
        return [self.const(f"{base}_scale", scale.astype(np.float32)), self.const(f"{base}_zero_point", zp)]

    def dequantize(self, t: Tensor, source: str, q: Quant, output: str | None = None) -> str:
        kw = {"axis": q.axis} if q.per_channel else {}
        zp = np.int32 if t.dtype == "int32" else np.int8
        return self.node("DequantizeLinear", [source, *self.quant_args(source, q, zp)], output, **kw)

    def quantize(self, value: str, q: Quant, output: str) -> str:
        kw = {"axis": q.axis} if q.per_channel else {}
        return self.node("QuantizeLinear", [value, *self.quant_args(output, q)], output, **kw)

    def operand(self, name: str, layout: Callable[[np.ndarray], np.ndarray] | None = None) -> str:
        """A float value for input `name`: the activation itself, or a (dequantized) initializer.

        `layout` rearranges constant data (conv weights NHWC-style -> OIHW); per-channel axis 0 stays 0.
        """
        t = self.graph.tensors[name]
        if t.data is None:
            if t.dtype != "int8":
                return name
            if name not in self.float_of:
                self.float_of[name] = self.dequantize(t, name, _quant(t))
            return self.float_of[name]
        if name not in self.float_of:
            data = layout(t.data) if layout is not None else t.data
            self.inits.append(numpy_helper.from_array(np.asarray(data), name))  # keeps the IR name
            quantized = t.dtype in ("int8", "int32") and t.quant is not None
            self.float_of[name] = self.dequantize(t, name, _quant(t)) if quantized else name
        return self.float_of[name]


def _quant(t: Tensor) -> Quant:
    if t.quant is None:
        raise ValueError(f"int8 tensor {t.name!r} has no quantization parameters")
    return t.quant


def _bias_quant(graph: Graph, node: Node) -> None:
    """Give an int32 bias without its own Quant the scale sx * sw it has by definition."""
    if len(node.inputs) < 3 or not node.inputs[2]:
        return
    b = graph.tensors[node.inputs[2]]
    if b.dtype != "int32" or b.quant is not None:
        return
    x, w = graph.tensors[node.inputs[0]], graph.tensors[node.inputs[1]]
    sx = _quant(x).scalar()[0]
    sw = np.broadcast_to(_quant(w).scale, b.shape)
    b.quant = Quant(np.float32(sx) * sw.astype(np.float32), np.zeros(b.shape, np.int32), axis=0)


def _clip(b: _Builder, value: str, node: Node) -> str:
    lo, hi = node.attrs.get("act_min"), node.attrs.get("act_max")
    lo = None if lo is None or lo == -math.inf else float(lo)
    hi = None if hi is None or hi == math.inf else float(hi)
    if lo is None and hi is None:
        return value
    bounds = ["" if v is None else b.const(f"{node.name}_clip", np.float32(v)) for v in (lo, hi)]
    return b.node("Clip", [value, *bounds])


def _ints(node: Node, key: str, default: tuple[int, ...]) -> list[int]:
    return [int(v) for v in node.attrs.get(key, default)]


def _spatial(b: _Builder, node: Node, x: str) -> str:
    """conv2d or a pool on the float NCHW value `x`; returns the float NCHW result."""
    g, ins = b.graph, [i for i in node.inputs if i]
    pads = _ints(node, "pads", (0, 0, 0, 0))  # (top, left, bottom, right) is ONNX's order too
    strides = _ints(node, "strides", (1, 1))
    if node.op == "conv2d":
        _bias_quant(g, node)
        w = b.operand(ins[1], lambda a: a.transpose(0, 3, 1, 2))  # [O,KH,KW,I] -> OIHW
        kernel = list(g.tensors[ins[1]].shape[1:3])
        attrs: dict[str, Any] = {
            "dilations": _ints(node, "dilations", (1, 1)),
            "group": int(node.attrs.get("groups", 1)),
        }
        rest = [b.operand(i) for i in ins[2:]]
        return b.node("Conv", [x, w, *rest], kernel_shape=kernel, strides=strides, pads=pads, **attrs)
    kernel = _ints(node, "kernel", ())
    if node.op == "max_pool2d":
        return b.node("MaxPool", [x], kernel_shape=kernel, strides=strides, pads=pads)
    include = int(bool(node.attrs.get("count_include_pad", False)))
    return b.node("AveragePool", [x], kernel_shape=kernel, strides=strides, pads=pads, count_include_pad=include)


def _export_spatial(b: _Builder, node: Node) -> None:
    """Transpose NHWC -> NCHW, then the usual DQ -> op -> Q, then back: Transposes move int8 data,
    so the op keeps the standard QDQ pattern that onnxruntime (and our frontend) fuse into int8 ops."""
    x, y = b.graph.tensors[node.inputs[0]], b.graph.tensors[node.outputs[0]]
    value = b.node("Transpose", [x.name], perm=TO_NCHW)
    if x.dtype == "int8":
        q = _quant(x)
        value = b.dequantize(x, value, Quant(q.scale, q.zero_point, None if q.axis is None else TO_NCHW.index(q.axis)))
    value = _clip(b, _spatial(b, node, value), node)
    if y.dtype == "int8":
        q = _quant(y)
        nchw = Quant(q.scale, q.zero_point, None if q.axis is None else TO_NCHW.index(q.axis))
        value = b.quantize(value, nchw, b.fresh(f"{y.name}_nchw"))
    b.node("Transpose", [value], y.name, perm=TO_NHWC)


def _float_op(b: _Builder, node: Node) -> str:
    """The node's computation in float, on dequantized operands; returns the float result's name."""
    g, op = b.graph, node.op
    ins = [i for i in node.inputs if i]
    if op == "fully_connected":
        _bias_quant(g, node)
        return b.node("Gemm", [b.operand(i) for i in ins], transB=1)
    xs = [b.operand(i) for i in ins]
    simple = {"add": "Add", "mul": "Mul", "sigmoid": "Sigmoid", "tanh": "Tanh"}
    if op in simple:
        return b.node(simple[op], xs)
    if op in ("clip", "requantize"):
        return xs[0]  # the clamp is the fused activation; requantize is dequantize + quantize
    if op == "softmax":
        return b.node("Softmax", xs, axis=-1)
    if op == "reshape":
        shape = np.array(g.tensors[node.outputs[0]].shape, dtype=np.int64)
        return b.node("Reshape", [xs[0], b.const(f"{node.name}_shape", shape)])
    if op == "transpose":
        rank = len(g.tensors[ins[0]].shape)
        return b.node("Transpose", xs, perm=_ints(node, "perm", tuple(reversed(range(rank)))))
    if op == "concat":
        return b.node("Concat", xs, axis=int(node.attrs["axis"]))
    if op == "pad":
        pads = b.const(f"{node.name}_pads", np.array(_ints(node, "pads", ()), dtype=np.int64))
        value = b.const(f"{node.name}_value", np.float32(node.attrs.get("value", 0.0)))
        return b.node("Pad", [xs[0], pads, value], mode="constant")
    raise ValueError(f"node {node.name!r}: op {op!r} has no ONNX export")


def export_onnx(graph: Graph) -> onnx.ModelProto:
    """The IR graph as an ONNX model (opset 17) with the same input and output names, dtypes and shapes."""
    graph = graph.copy()  # _bias_quant fills in missing bias quantization
    b = _Builder(graph)
    for node in graph.nodes():
        y = graph.tensors[node.outputs[0]]
        if node.op == "quantize":
            b.quantize(b.operand(node.inputs[0]), _quant(y), y.name)
            continue
        if node.op in SPATIAL:
            _export_spatial(b, node)
            continue
        if node.op == "dequantize":
            x = graph.tensors[node.inputs[0]]
            b.dequantize(x, x.name, _quant(x), y.name)
            continue
        value = _clip(b, _float_op(b, node), node)
        if y.dtype == "int8":
            b.quantize(value, _quant(y), y.name)
        elif b.nodes and b.nodes[-1].output[0] == value and value not in graph.tensors:
            b.nodes[-1].output[0] = y.name  # let the last op write the IR tensor directly
        else:
            b.node("Identity", [value], y.name)

    def info(name: str) -> onnx.ValueInfoProto:
        t = graph.tensors[name]
        return helper.make_tensor_value_info(name, ELEM[t.dtype], list(t.shape))

    inputs = [info(n) for n in graph.inputs]
    outputs = [info(n) for n in graph.outputs]
    onnx_graph = helper.make_graph(b.nodes, graph.name, inputs, outputs, b.inits)
    model = helper.make_model(
        onnx_graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="tinysplit"
    )
    onnx.checker.check_model(model)
    return model
