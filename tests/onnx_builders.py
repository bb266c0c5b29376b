"""Single-op ONNX models for tests, float or QDQ, and a one-thread onnxruntime runner.

QDQ form: every quantized input is stored as integers and followed by a DequantizeLinear (per
tensor, or per channel along `axis`); the op runs in float; a QuantizeLinear makes the int8 output.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8  # what opset 17 came with; the newest onnx writes IR versions onnxruntime cannot read yet


@dataclass
class Input:
    """One operand. `const` makes it an initializer, else a graph input (fed at run time).

    quant = (scale, zero_point, axis): `value` holds the integers (int8, or int32 for a bias) and a
    DequantizeLinear turns them into the float operand; axis None means per tensor.
    """

    name: str
    value: np.ndarray
    const: bool = False
    quant: tuple[np.ndarray, np.ndarray, int | None] | None = None


def _info(name: str, value: np.ndarray) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape)


def single_op_model(
    op_type: str,
    inputs: Sequence[Input | None],
    attrs: dict[str, Any] | None = None,
    *,
    act: tuple[float | None, float | None] | None = None,
    out_quant: tuple[float, int] | None = None,
    out_dtype: int = onnx.TensorProto.FLOAT,
    opset: int = OPSET,
) -> onnx.ModelProto:
    """op_type over `inputs` (None = absent optional input) with output "y".

    act: a Clip(min, max) after the op (a fused activation). out_quant: (scale, zero_point) of a
    QuantizeLinear to int8 on the output; without it "y" is the op's result, of type out_dtype.
    """
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    graph_inputs: list[onnx.ValueInfoProto] = []

    def const(name: str, value: Any) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    names = []
    for inp in inputs:
        if inp is None:
            names.append("")
            continue
        if inp.const:
            const(inp.name, inp.value)
        else:
            graph_inputs.append(_info(inp.name, inp.value))
        name = inp.name
        if inp.quant is not None:
            scale, zp, axis = inp.quant
            dq_in = [name, const(f"{name}_scale", np.asarray(scale, np.float32)), const(f"{name}_zp", zp)]
            name = f"{name}_dq"
            kw: dict[str, Any] = {} if axis is None else {"axis": axis}
            nodes.append(helper.make_node("DequantizeLinear", dq_in, [name], name=f"dq_{inp.name}", **kw))
        names.append(name)
    out = "y_op" if act or out_quant else "y"
    nodes.append(helper.make_node(op_type, names, [out], name="op", **(attrs or {})))
    if act is not None:
        bounds = [("" if v is None else const(f"act_{i}", np.float32(v))) for i, v in enumerate(act)]
        nodes.append(helper.make_node("Clip", [out, *bounds], ["y_act" if out_quant else "y"], name="act"))
        out = "y_act"
    elem = out_dtype
    if out_quant is not None:
        q = [out, const("y_scale", np.float32(out_quant[0])), const("y_zp", np.int8(out_quant[1]))]
        nodes.append(helper.make_node("QuantizeLinear", q, ["y"], name="q_y"))
        elem = onnx.TensorProto.INT8
    graph = helper.make_graph(
        nodes, op_type.lower(), graph_inputs, [helper.make_tensor_value_info("y", elem, None)], inits
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=IR_VERSION)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)  # also fills in y's shape
    onnx.checker.check_model(model)
    return model


def run_model(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime on CPU, one thread, no graph optimizations (QDQ stays float fake-quantization)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [np.asarray(v) for v in sess.run(None, feeds)]


def act_quant(values: np.ndarray) -> tuple[np.float32, int]:
    """Per-tensor asymmetric int8 (scale, zero_point) covering [min(values, 0), max(values, 0)]."""
    lo, hi = min(float(np.min(values)), 0.0), max(float(np.max(values)), 0.0)
    scale = np.float32((hi - lo) / 255.0 if hi > lo else 1.0)
    return scale, int(np.clip(round(-128.0 - lo / float(scale)), -128, 127))


def weight_quant(w: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric per-channel int8 along `axis`: (scales float32 [C], int8 values)."""
    other = tuple(i for i in range(w.ndim) if i != axis)
    scale = (np.max(np.abs(w), axis=other) / 127.0).astype(np.float32)
    scale[scale == 0] = 1.0
    shape = [1] * w.ndim
    shape[axis] = -1
    return scale, np.clip(np.rint(w / scale.reshape(shape)), -127, 127).astype(np.int8)
