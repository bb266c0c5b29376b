"""ONNX -> IR.

`load` checks the model, fixes the batch dimension, runs shape inference, graphsurgeon cleanup and
constant folding, folds BatchNormalization, and translates the ONNX graph node by node.

Layout propagation: every translated ONNX value carries a permutation `perm` with
stored_data = onnx_data.transpose(perm). Spatial ops want NHWC (perm (0, 2, 3, 1) of ONNX's NCHW),
everything else is told where each semantic axis is stored, so ONNX Transposes only retag a value
and real IR transposes appear only where an op needs a layout the value does not have. Graph
inputs and outputs keep the model's own layout.

QDQ absorption: DequantizeLinear of a constant gives an integer constant with its Quant; of an
activation it is deferred (`Act.deq`: consumers read the int8 tensor); a float op whose result
goes (through Relu/Clip) into QuantizeLinear becomes an int8 op writing the Q's output. Where an
op cannot run in int8 it stays float, and explicit dequantize/quantize nodes appear around it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
import onnx_graphsurgeon as gs
import onnxruntime as ort
from onnx import numpy_helper, version_converter

from tinysplit.compiler.errors import CompileError, UnsupportedError
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor

MIN_OPSET, MAX_OPSET = 11, 21
UPGRADE_FROM_OPSET, UPGRADE_TO_OPSET = 7, 13
NHWC = (0, 2, 3, 1)  # stored = nchw.transpose(NHWC)
INF = math.inf

Perm = tuple[int, ...]

SUPPORTED_OPS = (
    "Add", "AveragePool", "BatchNormalization", "Clip", "Concat", "Conv", "DequantizeLinear", "Div",
    "Dropout", "Flatten", "Gemm", "GlobalAveragePool", "GlobalMaxPool", "Identity", "MatMul", "MaxPool",
    "Mul", "Pad", "QuantizeLinear", "Relu", "Reshape", "Sigmoid", "Softmax", "Squeeze", "Sub", "Sum",
    "Tanh", "Transpose", "Unsqueeze",
)  # fmt: skip

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT8: "int8"}


def load(model: str | Path | onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]] | None = None) -> Graph:
    """Read an ONNX model (path or proto) and return the IR graph (see module doc)."""
    proto = _read(model)
    proto, opset = _check(proto)
    _refuse_early(proto)
    _fix_input_shapes(proto, input_shapes or {})
    proto = _simplify(proto)
    return _Translator(proto, opset).run()


# ---------------------------------------------------------------------------- preparation


def _read(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(model)
        base = Path.cwd()
    else:
        path = Path(model)
        if not path.exists():
            raise CompileError(f"model file {path} not found")
        if not path.is_file():
            raise CompileError(f"model {path} is not a regular file")
        try:
            proto = onnx.load(str(path), load_external_data=False)
        except Exception as e:  # protobuf's DecodeError and friends
            raise CompileError(f"{path}: not an ONNX model ({e})") from e
        base = path.parent
    tensors = list(proto.graph.initializer) + [
        a.t for n in proto.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
    ]
    for t in tensors:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in t.external_data}.get("location", "")
        if not (base / location).is_file():
            raise CompileError(f"external data file {base / location} of tensor {t.name!r} is missing")
    onnx.external_data_helper.load_external_data_for_model(proto, str(base))
    return proto


def _default_opset(proto: onnx.ModelProto) -> int | None:
    return {o.domain or "ai.onnx": o.version for o in proto.opset_import}.get("ai.onnx")


def _check(proto: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """Validate; models older than MIN_OPSET are upgraded with onnx's own version converter."""
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise CompileError(f"invalid ONNX model: {e}") from e
    opset = _default_opset(proto)
    if opset is not None and UPGRADE_FROM_OPSET <= opset < MIN_OPSET:
        try:
            proto = version_converter.convert_version(proto, UPGRADE_TO_OPSET)
        except Exception as e:  # the converter raises bare RuntimeErrors from C++
            raise CompileError(f"model uses default-domain opset {opset}; upgrading it failed: {e}") from e
        proto.ir_version = max(proto.ir_version, 8)  # IR < 4 wanted every initializer listed as an input
        opset = _default_opset(proto)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        raise CompileError(
            f"model uses default-domain opset {opset}; supported are {MIN_OPSET}..{MAX_OPSET} "
            f"(older ones from {UPGRADE_FROM_OPSET} are upgraded automatically)"
        )
    return proto, opset


def _refuse_early(proto: onnx.ModelProto) -> None:
    """Unsupported ops on data (not mere constant arithmetic that folding removes) are refused
    before shape inference and constant folding, which may choke on them or take long."""
    inits = {i.name for i in proto.graph.initializer}
    data = {i.name for i in proto.graph.input if i.name not in inits}
    for node in proto.graph.node:  # ONNX nodes are topologically sorted (the checker ensures it)
        if node.domain not in ("", "ai.onnx"):
            raise _unsupported_op(node)
        if node.op_type in ("Shape", "Size") or not data.intersection(node.input):
            continue  # static shapes fold to constants
        if node.op_type not in SUPPORTED_OPS:
            raise _unsupported_op(node)
        data.update(node.output)


def _fix_input_shapes(proto: onnx.ModelProto, input_shapes: dict[str, tuple[int, ...]]) -> None:
    """Pin every input dimension: a dynamic batch becomes 1, any other dynamic dim is an error."""
    inits = {i.name for i in proto.graph.initializer}
    inputs = {i.name: i for i in proto.graph.input if i.name not in inits}
    for name in input_shapes.keys() - inputs.keys():
        raise CompileError(f"input_shapes names {name!r}, which is not a graph input ({sorted(inputs)})")
    for name, vi in inputs.items():
        tt = vi.type.tensor_type
        if name in input_shapes:
            tt.shape.ClearField("dim")
            for d in input_shapes[name]:
                tt.shape.dim.add().dim_value = int(d)
            continue
        if not tt.HasField("shape"):
            raise CompileError(f"input {name!r} has no shape; pass input_shapes")
        for k, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value") and d.dim_value > 0:
                continue
            if k != 0:
                raise CompileError(
                    f"input {name!r} has dynamic dimension {k} ({d.dim_param or '?'}); "
                    f"give its shape with input_shapes={{{name!r}: (...)}}"
                )
            d.dim_value = 1
    # Declared output and intermediate shapes may still carry the symbolic batch: infer them afresh.
    for o in proto.graph.output:
        o.type.tensor_type.ClearField("shape")
    del proto.graph.value_info[:]


def _infer(proto: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as e:
        raise CompileError(f"shape inference failed: {e}") from e


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    logger = gs.logger.G_LOGGER
    severity, logger.severity = logger.severity, logger.ERROR  # its folding advice is noise here
    ort.set_default_logger_severity(3)  # as are onnxruntime's warnings about the folded pieces
    try:
        graph = gs.import_onnx(_infer(proto))
        graph.cleanup().toposort()
        # Q/DQ stay: folding DequantizeLinear(int8 weights) into floats would lose the integer model.
        graph.fold_constants(should_exclude_node=lambda n: n.op in ("QuantizeLinear", "DequantizeLinear"))
        graph.cleanup()
        _fold_batchnorm(graph)
        graph.cleanup().toposort()
        exported = gs.export_onnx(graph)
    finally:
        logger.severity = severity
        ort.set_default_logger_severity(2)  # onnxruntime's default; it has no getter to restore from
    return _infer(exported)


def _fold_batchnorm(graph: gs.Graph) -> None:
    """BatchNormalization -> scaled weights of the Conv before it, or a constant Mul + Add."""
    for bn in [n for n in graph.nodes if n.op == "BatchNormalization"]:
        if any(not isinstance(t, gs.Constant) for t in bn.inputs[1:5]):
            raise UnsupportedError(bn.name, bn.op, "non-constant scale/bias/mean/var")
        if any(o.outputs for o in bn.outputs[1:]):
            raise UnsupportedError(bn.name, bn.op, "training mode (running statistics outputs are used)")
        gamma, beta, mean, var = (t.values.astype(np.float64) for t in bn.inputs[1:5])
        k = gamma / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        shift = beta - mean * k
        x = bn.inputs[0]
        conv = x.inputs[0] if len(x.inputs) == 1 else None
        if (
            conv is not None
            and conv.op == "Conv"
            and len(x.outputs) == 1
            and x not in graph.outputs
            and all(isinstance(t, gs.Constant) for t in conv.inputs[1:])
        ):
            w = conv.inputs[1].values.astype(np.float64)
            b = conv.inputs[2].values.astype(np.float64) if len(conv.inputs) > 2 else np.zeros(w.shape[0])
            kw = k.reshape((-1,) + (1,) * (w.ndim - 1))
            conv.inputs[1] = gs.Constant(f"{conv.name}_w_bn", (w * kw).astype(np.float32))
            new_b = gs.Constant(f"{conv.name}_b_bn", (b * k + shift).astype(np.float32))
            if len(conv.inputs) > 2:
                conv.inputs[2] = new_b
            else:
                conv.inputs.append(new_b)
            conv.outputs = list(bn.outputs[:1])
        else:
            tail = (1,) * (len(x.shape) - 2)
            mid = gs.Variable(f"{bn.name}_scaled", dtype=np.float32, shape=x.shape)
            k_c = gs.Constant(f"{bn.name}_k", k.astype(np.float32).reshape((-1, *tail)))
            s_c = gs.Constant(f"{bn.name}_shift", shift.astype(np.float32).reshape((-1, *tail)))
            graph.nodes.append(gs.Node("Mul", f"{bn.name}_mul", inputs=[x, k_c], outputs=[mid]))
            graph.nodes.append(gs.Node("Add", f"{bn.name}_add", inputs=[mid, s_c], outputs=[bn.outputs[0]]))
        bn.outputs.clear()


# ---------------------------------------------------------------------------- translation

Ty = tuple[str, Quant | None]  # dtype and Quant of an IR tensor
FLOAT: Ty = ("float32", None)


@dataclass(frozen=True)
class Act:
    """A non-constant ONNX value: IR tensor `name` holds onnx_value.transpose(perm).

    deq: the ONNX value is DequantizeLinear(tensor); the tensor is int8 and carries the Quant."""

    name: str
    perm: Perm
    deq: bool = False


@dataclass
class Const:
    """A constant ONNX value. For DequantizeLinear(integer constant), `data` is the real value and
    `q`/`quant` the integers (int8, or int32 for biases) with their parameters."""

    data: np.ndarray
    q: np.ndarray | None = None
    quant: Quant | None = None


@dataclass
class Tail:
    """What follows an op and is absorbed into it: a bias Add, a Relu/Clip, a QuantizeLinear."""

    out: str  # the ONNX value the op's result stands for
    nodes: list[onnx.NodeProto] = field(default_factory=list)
    bias: Const | None = None
    act_min: float = -INF
    act_max: float = INF
    quant: Quant | None = None  # set when the chain ends in QuantizeLinear: the op runs in int8

    @property
    def ty(self) -> Ty:
        return FLOAT if self.quant is None else ("int8", self.quant)

    @property
    def acts(self) -> dict[str, object]:
        return {"act_min": self.act_min, "act_max": self.act_max}


def _inv(p: Sequence[int]) -> Perm:
    return tuple(int(i) for i in np.argsort(p))


def _ident(rank: int) -> Perm:
    return tuple(range(rank))


def _attr(node: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _int(node: onnx.NodeProto, name: str, default: int) -> int:
    return int(_attr(node, name, default))  # type: ignore[call-overload]


def _float_attr(node: onnx.NodeProto, name: str, default: float) -> float:
    return float(_attr(node, name, default))  # type: ignore[arg-type]


def _ints(node: onnx.NodeProto, name: str, default: Sequence[int]) -> list[int]:
    value = _attr(node, name)
    return [int(v) for v in value] if isinstance(value, list) else list(default)


def moves_data(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """Whether transposing `shape` by `perm` reorders memory (not just size-1 axes)."""
    big = [a for a in perm if shape[a] != 1]
    return big != sorted(big)


def _ty(t: Tensor) -> Ty:
    return t.dtype, t.quant


class _Translator:
    def __init__(self, proto: onnx.ModelProto, opset: int) -> None:
        self.proto, self.opset = proto, opset
        g = proto.graph
        self.env: dict[str, Act | Const] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.tensors: dict[str, Tensor] = {}
        self.nodes: list[Node] = []
        self.node_names: set[str] = set()
        self.done: set[int] = set()  # id() of ONNX nodes already absorbed into another
        self.cache: dict[tuple[str, object], Act] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = [o.name for o in g.output]
        self.reserved = {v for n in g.node for v in [*n.input, *n.output]} | {i.name for i in g.input}
        for vi in [*g.input, *g.output, *g.value_info]:
            dims = vi.type.tensor_type.shape.dim
            if vi.type.tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        for init in g.initializer:
            self.env[init.name] = Const(numpy_helper.to_array(init))
        inits = {i.name for i in g.initializer}
        self.inputs = [i.name for i in g.input if i.name not in inits]
        for vi in g.input:
            if vi.name in inits:
                continue
            elem = vi.type.tensor_type.elem_type
            if elem not in _ONNX_DTYPES:
                raise CompileError(
                    f"input {vi.name!r} has element type {onnx.TensorProto.DataType.Name(elem)}; "
                    "supported are FLOAT and INT8"
                )
            self.tensors[vi.name] = Tensor(vi.name, self.shapes[vi.name], _ONNX_DTYPES[elem])
            self.env[vi.name] = Act(vi.name, _ident(len(self.shapes[vi.name])))
        self.handlers: dict[str, Callable[[onnx.NodeProto], None]] = {
            "Add": self._binary,
            "Sub": self._binary,
            "Mul": self._binary,
            "Div": self._binary,
            "Sum": self._binary,
            "Conv": self._conv,
            "Gemm": self._matmul,
            "MatMul": self._matmul,
            "Relu": self._clip,
            "Clip": self._clip,
            "Sigmoid": self._unary,
            "Tanh": self._unary,
            "MaxPool": self._pool,
            "AveragePool": self._pool,
            "GlobalAveragePool": self._pool,
            "GlobalMaxPool": self._pool,
            "Reshape": self._reshape,
            "Flatten": self._reshape,
            "Squeeze": self._reshape,
            "Unsqueeze": self._reshape,
            "Transpose": self._transpose,
            "Concat": self._concat,
            "Pad": self._pad,
            "Softmax": self._softmax,
            "QuantizeLinear": self._quantize,
            "DequantizeLinear": self._dequantize,
            "Identity": self._identity,
            "Dropout": self._identity,
        }

    # -- driver ------------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.proto.graph
        for node in g.node:
            if node.op_type not in self.handlers:
                raise _unsupported_op(node)
        # Constant subgraphs first (DequantizeLinear of weights, Transpose of constants...), so an
        # op that looks ahead at its consumers (bias Add, Clip bounds) already sees them as Const.
        for node in g.node:
            if node.op_type in _CONST_OPS and all(not i or isinstance(self.env.get(i), Const) for i in node.input):
                self.handlers[node.op_type](node)
                self.done.add(id(node))
        for node in g.node:
            if id(node) not in self.done:
                self.handlers[node.op_type](node)
        self._finish_outputs()
        return self._build()

    def _finish_outputs(self) -> None:
        """Graph outputs in the model's own layout and under their ONNX names."""
        finals = []
        for vi in self.proto.graph.output:
            if vi.type.tensor_type.elem_type not in _ONNX_DTYPES:  # uint8 is int8 inside: not at the edge
                elem = onnx.TensorProto.DataType.Name(vi.type.tensor_type.elem_type)
                raise CompileError(f"output {vi.name!r} has element type {elem}; supported are FLOAT and INT8")
        for o in self.outputs:
            v = self.env[o]
            if isinstance(v, Const):
                raise CompileError(f"graph output {o!r} is a constant")
            v = self._relayout(v, _ident(len(self.shapes[o])))  # int8 moves before it widens
            finals.append((self._float(v) if v.deq else v).name)
        alias: dict[str, str] = {}  # tensor name before renaming -> now
        for o, final in zip(self.outputs, finals, strict=True):
            src = alias.get(final, final)
            if src == o:
                continue
            if o in self.tensors:  # the value under its ONNX name, but not in the output layout
                self._rename(o, self._fresh(f"{o}_stored"), alias)
            if src in self.inputs or src in self.outputs:
                # Another boundary tensor: the caller owns distinct buffers, so copy.
                self.tensors[o] = replace(self.tensors[src], name=o)
                self._add_node("reshape", [src], [o], {}, f"{o}_copy")
            else:
                self._rename(src, o, alias)

    def _rename(self, old: str, new: str, alias: dict[str, str]) -> None:
        self.tensors[new] = replace(self.tensors.pop(old), name=new)
        for n in self.nodes:
            n.inputs = [new if t == old else t for t in n.inputs]
            n.outputs = [new if t == old else t for t in n.outputs]
        for k, v in alias.items():
            if v == old:
                alias[k] = new
        alias[old] = new

    def _build(self) -> Graph:
        graph = Graph(self.proto.graph.name or "model")
        self._propagate_quant()
        for t in self.tensors.values():
            graph.add_tensor(t)
        for n in self.nodes:
            graph.add_node(n)
        graph.inputs, graph.outputs = list(self.inputs), list(self.outputs)
        graph.prune()
        graph.validate()
        for t in graph.tensors.values():
            if t.dtype == "int8" and t.quant is None:
                raise CompileError(f"int8 tensor {t.name!r} has no quantization parameters")
        graph.metadata.update(
            source_opset=self.opset,
            producer=f"{self.proto.producer_name} {self.proto.producer_version}".strip(),
            inputs=[_boundary(graph, t) for t in graph.inputs],
            outputs=[_boundary(graph, t) for t in graph.outputs],
        )
        return graph

    def _propagate_quant(self) -> None:
        """Data-movement ops keep their int8 input's Quant; raw int8 values (an int8 graph input
        before its first DequantizeLinear) learn it from either side."""
        changed = True
        while changed:
            changed = False
            for n in self.nodes:
                if n.op not in _SAME_QUANT_OPS:
                    continue
                a, b = self.tensors[n.inputs[0]], self.tensors[n.outputs[0]]
                if a.dtype == b.dtype == "int8" and (a.quant is None) != (b.quant is None):
                    a.quant = b.quant = a.quant or b.quant
                    changed = True

    # -- helpers -----------------------------------------------------------------------------
    def _fresh(self, base: str) -> str:
        name, i = base, 0
        while name in self.tensors or name in self.reserved:
            i += 1
            name = f"{base}_{i}"
        return name

    def _add_node(self, op: str, inputs: list[str], outputs: list[str], attrs: dict[str, object], name: str) -> None:
        base, i = name, 0
        while name in self.node_names:
            i += 1
            name = f"{base}_{i}"
        self.node_names.add(name)
        self.nodes.append(Node(name, op, inputs, outputs, dict(attrs)))

    def _emit(
        self,
        op: str,
        inputs: list[str],
        shape: Sequence[int],
        *,
        out: str | None = None,
        hint: str = "t",
        ty: Ty = FLOAT,
        node: onnx.NodeProto | None = None,
        attrs: dict[str, object] | None = None,
    ) -> str:
        """Append one IR node; `out` is an ONNX name used verbatim, else a fresh name from `hint`."""
        name = out if out is not None and out not in self.tensors else self._fresh(out or hint)
        self.tensors[name] = Tensor(name, tuple(int(s) for s in shape), ty[0], ty[1])
        self._add_node(op, inputs, [name], attrs or {}, _node_name(node) if node is not None else name)
        return name

    def _const_tensor(self, hint: str, data: np.ndarray, quant: Quant | None = None) -> str:
        name = self._fresh(hint)
        data = np.ascontiguousarray(data)
        if data.dtype == np.float64:
            data = data.astype(np.float32)
        self.tensors[name] = Tensor(name, tuple(data.shape), str(data.dtype), quant, data)
        return name

    def _act(self, node: onnx.NodeProto, i: int) -> Act:
        v = self.env[node.input[i]]
        if isinstance(v, Const):
            raise UnsupportedError(_node_name(node), node.op_type, f"input {i} is constant; expected data")
        return v

    def _const(self, node: onnx.NodeProto, i: int, what: str) -> Const:
        v = self.env.get(node.input[i]) if i < len(node.input) and node.input[i] else None
        if not isinstance(v, Const):
            raise UnsupportedError(_node_name(node), node.op_type, f"non-constant {what} (input {i})")
        return v

    def _opt_const(self, node: onnx.NodeProto, i: int, what: str) -> Const | None:
        if i >= len(node.input) or not node.input[i]:
            return None
        return self._const(node, i, what)

    def _shape(self, name: str) -> tuple[int, ...]:
        if name not in self.shapes:
            raise CompileError(f"tensor {name!r} has no static shape after shape inference")
        return self.shapes[name]

    def _value_shape(self, name: str) -> tuple[int, ...]:
        v = self.env[name]
        return tuple(v.data.shape) if isinstance(v, Const) else self._shape(name)

    def _stored(self, act: Act) -> Tensor:
        return self.tensors[act.name]

    def _float(self, act: Act) -> Act:
        """The float value of an Act: materialize a deferred DequantizeLinear."""
        t = self._stored(act)
        if not act.deq:
            if t.dtype != "float32":
                raise CompileError(f"tensor {act.name!r} holds raw {t.dtype} data where a float op needs reals")
            return act
        key = (act.name, "dequantize")
        if key not in self.cache:
            name = self._emit("dequantize", [act.name], t.shape, hint=f"{act.name}_f32")
            self.cache[key] = Act(name, act.perm)
        return self.cache[key]

    def _relayout(self, act: Act, perm: Perm) -> Act:
        """The same value stored as onnx.transpose(perm): a transpose, or a reshape if no data moves."""
        if act.perm == perm:
            return act
        key = (act.name, perm)
        if key not in self.cache:
            t = self._stored(act)
            inv = _inv(act.perm)
            r = [inv[i] for i in perm]
            shape = [t.shape[i] for i in r]
            hint = f"{act.name}_{''.join(map(str, perm))}"
            if moves_data(t.shape, r):
                name = self._emit("transpose", [act.name], shape, hint=hint, ty=_ty(t), attrs={"perm": r})
            else:
                name = self._emit("reshape", [act.name], shape, hint=hint, ty=_ty(t))
            self.cache[key] = Act(name, perm, act.deq)
        return self.cache[key]

    def _requantize(self, act: Act, quant: Quant) -> Act:
        """An int8 Act (deferred or not) requantized to `quant` (no node if equal)."""
        t = self._stored(act)
        if t.quant == quant:
            return act
        key = (act.name, ("requantize", tuple(quant.scale), tuple(quant.zero_point)))
        if key not in self.cache:
            name = self._emit("requantize", [act.name], t.shape, hint=f"{act.name}_rq", ty=("int8", quant))
            self.cache[key] = Act(name, act.perm, act.deq)
        return self.cache[key]

    def _sole_consumer(self, value: str) -> onnx.NodeProto | None:
        users = self.consumers.get(value, [])
        if value in self.outputs or len(users) != 1:
            return None
        return users[0]

    def _tail(
        self, out: str, bias_shapes: Sequence[tuple[int, ...]] = (), act: bool = True
    ) -> tuple[Tail, Tail | None]:
        """The float tail (a bias Add at most) and, if the chain ends in QuantizeLinear, the int8 one."""
        tail = Tail(out)
        n = self._sole_consumer(out)
        if n is not None and n.op_type == "Add" and bias_shapes:
            other = n.input[1] if n.input[0] == out else n.input[0]
            c = self.env.get(other)
            if isinstance(c, Const) and tuple(c.data.shape) in bias_shapes:
                tail = Tail(n.output[0], [n], c)
                n = self._sole_consumer(tail.out)
        q = replace(tail, nodes=list(tail.nodes))
        if act and n is not None and n.op_type in ("Relu", "Clip"):
            bounds = self._clip_bounds(n, strict=False)
            if bounds is None:
                return tail, None
            q.act_min, q.act_max = bounds
            q.nodes.append(n)
            q.out = n.output[0]
            n = self._sole_consumer(q.out)
        if n is None or n.op_type != "QuantizeLinear":
            return tail, None
        quant = self._qparams(n)
        if quant.axis is not None:
            return tail, None
        q.nodes.append(n)
        q.out, q.quant = n.output[0], quant
        return tail, q

    def _absorb(self, tail: Tail) -> None:
        self.done.update(id(n) for n in tail.nodes)

    def _qparams(self, node: onnx.NodeProto) -> Quant:
        """Quant of a Q/DQ node; uint8 is mapped onto int8 (zero point - 128), which is exact."""
        scale = self._const(node, 1, "scale").data
        zp_c = self._opt_const(node, 2, "zero point")
        if _int(node, "block_size", 0):
            raise UnsupportedError(_node_name(node), node.op_type, "attribute block_size (blocked quantization)")
        zp = zp_c.data if zp_c is not None else np.zeros(scale.shape, _default_q_type(node))
        if zp.dtype not in (np.int8, np.uint8, np.int32):
            raise UnsupportedError(_node_name(node), node.op_type, f"zero point type {zp.dtype}")
        zp32 = zp.astype(np.int32) - (128 if zp.dtype == np.uint8 else 0)
        axis = None
        if scale.size > 1:
            axis = _int(node, "axis", 1) % len(self._value_shape(node.input[0]))
        return Quant(scale.reshape(-1), zp32.reshape(-1), axis)

    def _clip_bounds(self, node: onnx.NodeProto, strict: bool = True) -> tuple[float, float] | None:
        if node.op_type == "Relu":
            return 0.0, INF
        bounds = [_float_attr(node, "min", -INF), _float_attr(node, "max", INF)]
        for i in (1, 2):
            if i < len(node.input) and node.input[i]:
                c = self.env.get(node.input[i])
                if not isinstance(c, Const):
                    if strict:
                        raise UnsupportedError(_node_name(node), node.op_type, "non-constant min/max")
                    return None
                bounds[i - 1] = float(c.data)
        return bounds[0], bounds[1]

    def _weights_q(self, c: Const, axis: int, channels: int) -> tuple[np.ndarray, Quant] | None:
        """Symmetric int8 weights quantized along `axis` (or per tensor), with per-channel Quant."""
        if c.q is None or c.quant is None or c.q.dtype != np.int8 or np.any(c.quant.zero_point != 0):
            return None
        if c.quant.per_channel and c.quant.axis != axis:
            return None
        scale = np.broadcast_to(c.quant.scale, (channels,)).copy()
        return c.q, Quant(scale, np.zeros(channels, np.int32), 0)

    def _bias_tensor(self, hint: str, bias: np.ndarray, x: Act, wquant: Quant) -> str:
        """The real bias as int32 in the accumulator's scale sx * sw (exact for QDQ int32 biases)."""
        xq = self._stored(x).quant
        assert xq is not None
        s = (np.float64(xq.scalar()[0]) * wquant.scale.astype(np.float64)).astype(np.float32)
        q = np.clip(np.round(bias.astype(np.float64) / s.astype(np.float64)), -(2**31), 2**31 - 1).astype(np.int32)
        return self._const_tensor(hint, q, Quant(s, np.zeros(s.size, np.int32), 0))

    # -- ops ---------------------------------------------------------------------------------
    def _identity(self, node: onnx.NodeProto) -> None:
        if node.op_type == "Dropout":
            if len(node.output) > 1 and self.consumers.get(node.output[1]):
                raise UnsupportedError(_node_name(node), node.op_type, "the mask output is used")
            mode = self._opt_const(node, 2, "training_mode")
            if mode is not None and bool(mode.data):
                raise UnsupportedError(_node_name(node), node.op_type, "training_mode=True")
        self.env[node.output[0]] = self.env[node.input[0]]

    def _dequantize(self, node: onnx.NodeProto) -> None:
        quant = self._qparams(node)
        v = self.env[node.input[0]]
        if isinstance(v, Const):
            shift = 128 if v.data.dtype == np.uint8 else 0
            q = (v.data.astype(np.int32) - shift).astype(np.int32 if v.data.dtype == np.int32 else np.int8)
            shape = [1] * q.ndim
            if quant.axis is not None:
                shape[quant.axis] = -1
            real = (q.astype(np.float64) - quant.zero_point.reshape(shape)) * quant.scale.reshape(shape)
            self.env[node.output[0]] = Const(real.astype(np.float32), q, quant)
            return
        if quant.axis is not None:
            raise UnsupportedError(_node_name(node), node.op_type, "attribute axis: per-axis activations")
        t = self._stored(v)
        if t.dtype != "int8" or v.deq:
            raise UnsupportedError(_node_name(node), node.op_type, f"input of type {t.dtype}")
        if t.quant is None:
            t.quant = quant
        elif t.quant != quant:
            raise UnsupportedError(_node_name(node), node.op_type, "one tensor dequantized with two parameter sets")
        self.env[node.output[0]] = Act(v.name, v.perm, deq=True)

    def _quantize(self, node: onnx.NodeProto) -> None:
        quant = self._qparams(node)
        v = self.env[node.input[0]]
        out = node.output[0]
        if isinstance(v, Const):  # a float weight quantized in the graph: ONNX integers out
            shape = [1] * v.data.ndim
            if quant.axis is not None:
                shape[quant.axis] = -1
            zp = self._opt_const(node, 2, "zero point")
            dt = zp.data.dtype if zp is not None else np.dtype(_default_q_type(node))
            shift = 128 if dt == np.uint8 else 0
            q = np.rint(v.data / quant.scale.reshape(shape)) + quant.zero_point.reshape(shape) + shift
            self.env[out] = Const(np.clip(q, np.iinfo(dt).min, np.iinfo(dt).max).astype(dt))
            return
        if quant.axis is not None:
            raise UnsupportedError(_node_name(node), node.op_type, "attribute axis: per-axis activations")
        if v.deq:  # Q(DQ(x)): the same int8 tensor, or a requantization of it
            self.env[out] = replace(self._requantize(v, quant), deq=False)
            return
        t = self._stored(v)
        name = self._emit("quantize", [v.name], t.shape, out=out, ty=("int8", quant), node=node)
        self.env[out] = Act(name, v.perm)

    def _transpose(self, node: onnx.NodeProto) -> None:
        v = self.env[node.input[0]]
        rank = len(self._value_shape(node.input[0]))
        t = tuple(_ints(node, "perm", list(reversed(range(rank)))))
        if isinstance(v, Const):
            quant = v.quant
            if quant is not None and quant.axis is not None:
                quant = replace(quant, axis=_inv(t)[quant.axis])
            q = None if v.q is None else v.q.transpose(t)
            self.env[node.output[0]] = Const(v.data.transpose(t), q, quant)
            return
        # No node: the stored data stays, only the tag changes (see module doc).
        inv_t = _inv(t)
        self.env[node.output[0]] = replace(v, perm=tuple(inv_t[i] for i in v.perm))

    def _reshape(self, node: onnx.NodeProto) -> None:
        v = self.env[node.input[0]]
        out = node.output[0]
        if isinstance(v, Const):
            shape = self._shape(out)
            per_channel = v.quant is not None and v.quant.axis is not None
            q = None if v.q is None or per_channel else v.q.reshape(shape)
            self.env[out] = Const(v.data.reshape(shape), q, None if q is None else v.quant)
            return
        x = self._relayout(v, _ident(len(self._shape(node.input[0]))))
        shape = self._shape(out)
        name = self._emit("reshape", [x.name], shape, out=out, ty=_ty(self._stored(x)), node=node)
        self.env[out] = Act(name, _ident(len(shape)), v.deq)

    def _concat(self, node: onnx.NodeProto) -> None:
        out = node.output[0]
        vals = [self.env[i] for i in node.input]
        rank = len(self._shape(out))
        axis = _int(node, "axis", 0) % rank
        acts = [v for v in vals if isinstance(v, Act)]
        if not acts:
            self.env[out] = Const(np.concatenate([v.data for v in vals if isinstance(v, Const)], axis))
            return
        perm = acts[0].perm
        ftail, qtail = self._tail(out, act=False)
        tail = qtail if qtail is not None and all(isinstance(v, Act) and v.deq for v in vals) else ftail
        self._absorb(tail)
        names = []
        for v in vals:
            if isinstance(v, Const):
                names.append(self._const_tensor(f"{out}_const", v.data.astype(np.float32).transpose(perm)))
            elif tail.quant is not None:  # int8 concat: every input in the output's quantization
                names.append(self._requantize(self._relayout(v, perm), tail.quant).name)
            else:
                names.append(self._relayout(self._float(v), perm).name)
        shape = [self._shape(out)[i] for i in perm]
        attrs: dict[str, object] = {"axis": _inv(perm)[axis]}
        name = self._emit("concat", names, shape, out=tail.out, ty=tail.ty, node=node, attrs=attrs)
        self.env[tail.out] = Act(name, perm)

    def _pad(self, node: onnx.NodeProto) -> None:
        mode = _attr(node, "mode", "constant")
        if mode != "constant":
            raise UnsupportedError(_node_name(node), node.op_type, f"attribute mode={mode!r}: only constant padding")
        x = self._act(node, 0)
        rank = len(self._shape(node.input[0]))
        pads = [int(p) for p in self._const(node, 1, "pads").data]
        axes_c = self._opt_const(node, 3, "axes")
        if axes_c is not None:  # opset 18: pads only for the listed axes
            axes = [int(a) % rank for a in axes_c.data]
            full = [0] * (2 * rank)
            for k, a in enumerate(axes):
                full[a], full[rank + a] = pads[k], pads[len(axes) + k]
            pads = full
        if min(pads) < 0:
            raise UnsupportedError(_node_name(node), node.op_type, "negative pads (cropping)")
        value_c = self._opt_const(node, 2, "constant_value")
        t = self._stored(x)
        if t.dtype == "int8" and not x.deq:
            # Raw integers: the real value of the padding is known only with the Quant.
            raise UnsupportedError(_node_name(node), node.op_type, "padding raw integer data")
        p = x.perm
        attrs: dict[str, object] = {
            "pads": [pads[i] for i in p] + [pads[rank + i] for i in p],
            "value": 0.0 if value_c is None else float(value_c.data),
        }
        shape = [self._shape(node.output[0])[i] for i in p]
        name = self._emit("pad", [x.name], shape, out=node.output[0], ty=_ty(t), node=node, attrs=attrs)
        self.env[node.output[0]] = Act(name, p, x.deq)

    def _clip(self, node: onnx.NodeProto) -> None:
        x = self._act(node, 0)
        lo, hi = self._clip_bounds(node) or (-INF, INF)
        t = self._stored(x)
        if t.dtype == "int8" and not x.deq:
            raise UnsupportedError(_node_name(node), node.op_type, "clipping raw integer data")
        attrs: dict[str, object] = {"act_min": lo, "act_max": hi}
        name = self._emit("clip", [x.name], t.shape, out=node.output[0], ty=_ty(t), node=node, attrs=attrs)
        # Clipping commutes with dequantization: an int8 input stays int8 with its Quant.
        self.env[node.output[0]] = Act(name, x.perm, x.deq)

    def _unary(self, node: onnx.NodeProto) -> None:
        x = self._act(node, 0)
        ftail, qtail = self._tail(node.output[0], act=False)
        tail = qtail if qtail is not None and x.deq else ftail
        x = x if tail.quant is not None else self._float(x)
        self._absorb(tail)
        shape = self._stored(x).shape
        name = self._emit(node.op_type.lower(), [x.name], shape, out=tail.out, ty=tail.ty, node=node)
        self.env[tail.out] = Act(name, x.perm)

    def _softmax(self, node: onnx.NodeProto) -> None:
        x = self._act(node, 0)
        shape = self._shape(node.input[0])
        rank = len(shape)
        axis = _int(node, "axis", 1 if self.opset < 13 else -1) % rank
        ftail, qtail = self._tail(node.output[0], act=False)
        tail = qtail if qtail is not None and x.deq else ftail
        x = x if tail.quant is not None else self._float(x)
        self._absorb(tail)
        if self.opset < 13 and axis != rank - 1:
            # Opset < 13 normalizes over all axes from `axis` on, flattened into one row.
            x = self._relayout(x, _ident(rank))
            flat = (math.prod(shape[:axis]), math.prod(shape[axis:]))
            r = self._emit("reshape", [x.name], flat, hint=f"{x.name}_2d", ty=_ty(self._stored(x)))
            s = self._emit("softmax", [r], flat, hint=f"{tail.out}_2d", ty=tail.ty, node=node)
            name = self._emit("reshape", [s], shape, out=tail.out, ty=tail.ty)
            self.env[tail.out] = Act(name, _ident(rank))
            return
        if _inv(x.perm)[axis] != rank - 1:  # move the softmax axis last, the others keep their order
            x = self._relayout(x, (*[a for a in x.perm if a != axis], axis))
        name = self._emit("softmax", [x.name], self._stored(x).shape, out=tail.out, ty=tail.ty, node=node)
        self.env[tail.out] = Act(name, x.perm)

    def _pool(self, node: onnx.NodeProto) -> None:
        v = self._act(node, 0)
        in_shape = self._shape(node.input[0])
        if len(in_shape) != 4:
            raise UnsupportedError(_node_name(node), node.op_type, "only 2-D pooling (rank-4 input)")
        h, w = in_shape[2:]
        op = "max_pool2d" if "Max" in node.op_type else "avg_pool2d"
        if node.op_type.startswith("Global"):
            kernel, strides, pads = [h, w], [1, 1], [0, 0, 0, 0]
        else:
            kernel = _ints(node, "kernel_shape", [])
            strides = _ints(node, "strides", [1, 1])
            if _ints(node, "dilations", [1, 1]) != [1, 1]:
                raise UnsupportedError(_node_name(node), node.op_type, "attribute dilations != 1")
            if len(node.output) > 1 and self.consumers.get(node.output[1]):
                raise UnsupportedError(_node_name(node), node.op_type, "the Indices output is used")
            pads = self._resolve_pads(node, [h, w], kernel, strides, [1, 1])
            out_hw = self._shape(node.output[0])[2:]
            for i, size in enumerate((h, w)):
                # ceil_mode: the last window may run past the end; for max pooling that is padding.
                extra = (out_hw[i] - 1) * strides[i] + kernel[i] - (size + pads[i] + pads[i + 2])
                if extra > 0 and op == "max_pool2d":
                    pads[i + 2] += extra
                elif extra > 0:
                    raise UnsupportedError(_node_name(node), node.op_type, "attribute ceil_mode=1")
        attrs: dict[str, object] = {"kernel": kernel, "strides": strides, "pads": pads}
        out_shape = [self._shape(node.output[0])[i] for i in NHWC]
        if op == "max_pool2d":  # max commutes with dequantization: int8 stays int8, same Quant
            x = self._relayout(v, NHWC)
            attrs.update(act_min=-INF, act_max=INF)
            name = self._emit(
                op, [x.name], out_shape, out=node.output[0], ty=_ty(self._stored(x)), node=node, attrs=attrs
            )
            self.env[node.output[0]] = Act(name, NHWC, x.deq)
            return
        attrs["count_include_pad"] = _int(node, "count_include_pad", 0)
        ftail, qtail = self._tail(node.output[0])
        tail = qtail if qtail is not None and v.deq else ftail
        self._absorb(tail)
        if tail.quant is not None:  # int8 pooling keeps one quantization: requantize the input
            x = self._requantize(self._relayout(v, NHWC), tail.quant)
        else:
            x = self._relayout(self._float(v), NHWC)
        attrs.update(tail.acts)
        name = self._emit(op, [x.name], out_shape, out=tail.out, ty=tail.ty, node=node, attrs=attrs)
        self.env[tail.out] = Act(name, NHWC)

    def _resolve_pads(
        self, node: onnx.NodeProto, size: list[int], kernel: list[int], strides: list[int], dilations: list[int]
    ) -> list[int]:
        """Explicit (top, left, bottom, right) pads, auto_pad resolved."""
        auto = _attr(node, "auto_pad", "NOTSET")
        if auto in ("NOTSET", ""):
            return _ints(node, "pads", [0, 0, 0, 0])
        if auto == "VALID":
            return [0, 0, 0, 0]
        if auto not in ("SAME_UPPER", "SAME_LOWER"):
            raise UnsupportedError(_node_name(node), node.op_type, f"attribute auto_pad={auto!r}")
        begin, end = [], []
        for i in range(2):
            out = -(-size[i] // strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size[i])
            begin.append(total // 2 if auto == "SAME_UPPER" else total - total // 2)
            end.append(total - begin[-1])
        return begin + end

    def _conv(self, node: onnx.NodeProto) -> None:
        v = self._act(node, 0)
        w = self._const(node, 1, "weights")
        b = self._opt_const(node, 2, "bias")
        in_shape = self._shape(node.input[0])
        if len(in_shape) != 4:
            raise UnsupportedError(_node_name(node), node.op_type, "only 2-D convolution (rank-4 input)")
        cout = w.data.shape[0]
        strides = _ints(node, "strides", [1, 1])
        dilations = _ints(node, "dilations", [1, 1])
        pads = self._resolve_pads(node, list(in_shape[2:]), list(w.data.shape[2:]), strides, dilations)
        ftail, qtail = self._tail(node.output[0], [(cout, 1, 1), (1, cout, 1, 1)])
        wq = self._weights_q(w, 0, cout)
        tail = qtail if qtail is not None and v.deq and wq is not None else ftail
        self._absorb(tail)
        bias = np.zeros(cout, np.float32) if b is None else b.data.reshape(-1)
        if tail.bias is not None:
            bias = bias + tail.bias.data.reshape(-1)
        base = node.output[0]
        if tail.quant is not None and wq is not None:
            x = self._relayout(v, NHWC)
            w_name = self._const_tensor(f"{base}_w", wq[0].transpose(NHWC), wq[1])
            inputs = [x.name, w_name, self._bias_tensor(f"{base}_b", bias, x, wq[1])]
        else:
            x = self._relayout(self._float(v), NHWC)
            inputs = [x.name, self._const_tensor(f"{base}_w", w.data.astype(np.float32).transpose(NHWC))]
            if b is not None or tail.bias is not None:
                inputs.append(self._const_tensor(f"{base}_b", bias.astype(np.float32)))
        attrs: dict[str, object] = {
            "strides": strides,
            "dilations": dilations,
            "pads": pads,
            "groups": _int(node, "group", 1),
            **tail.acts,
        }
        out_shape = [self._shape(node.output[0])[i] for i in NHWC]
        name = self._emit("conv2d", inputs, out_shape, out=tail.out, ty=tail.ty, node=node, attrs=attrs)
        self.env[tail.out] = Act(name, NHWC)

    def _matmul(self, node: onnx.NodeProto) -> None:
        v = self._act(node, 0)
        b = self._const(node, 1, "weights (only a constant 2-D right operand is supported)")
        if b.data.ndim != 2:
            raise UnsupportedError(_node_name(node), node.op_type, f"weights of rank {b.data.ndim}; need 2-D")
        gemm = node.op_type == "Gemm"
        if gemm and _int(node, "transA", 0):
            raise UnsupportedError(_node_name(node), node.op_type, "attribute transA=1")
        trans_b = gemm and bool(_int(node, "transB", 0))
        alpha = _float_attr(node, "alpha", 1.0) if gemm else 1.0
        beta = _float_attr(node, "beta", 1.0) if gemm else 1.0
        in_shape = self._shape(node.input[0])
        if len(in_shape) < 2 or (gemm and len(in_shape) != 2):
            raise UnsupportedError(_node_name(node), node.op_type, f"input of rank {len(in_shape)}")
        m = b.data.shape[0] if trans_b else b.data.shape[1]
        ftail, qtail = self._tail(node.output[0], [] if gemm else [(m,), (1, m)])
        wq = self._weights_q(b, 0 if trans_b else 1, m)
        int8 = qtail is not None and v.deq and wq is not None and alpha == 1.0 and beta == 1.0
        tail = qtail if int8 and qtail is not None else ftail
        self._absorb(tail)
        c = self._opt_const(node, 2, "bias C") if gemm else tail.bias
        if c is not None and c.data.size not in (1, m):
            raise UnsupportedError(_node_name(node), node.op_type, f"bias C of shape {c.data.shape} (one row only)")
        bias = None if c is None else np.broadcast_to(c.data * beta, (1, m)).reshape(m)
        x = self._relayout(v if tail.quant is not None else self._float(v), _ident(len(in_shape)))
        rows = math.prod(in_shape[:-1])
        if len(in_shape) > 2:  # fully_connected takes [N, K]: fold the leading dims into N
            flat = (rows, in_shape[-1])
            x = Act(self._emit("reshape", [x.name], flat, hint=f"{x.name}_2d", ty=_ty(self._stored(x))), (0, 1), x.deq)
        base = tail.out
        if tail.quant is not None and wq is not None:
            inputs = [x.name, self._const_tensor(f"{base}_w", wq[0] if trans_b else wq[0].T, wq[1])]
            if bias is not None:
                inputs.append(self._bias_tensor(f"{base}_b", bias, x, wq[1]))
        else:
            wf = (b.data if trans_b else b.data.T).astype(np.float64) * alpha
            inputs = [x.name, self._const_tensor(f"{base}_w", wf.astype(np.float32))]
            if bias is not None:
                inputs.append(self._const_tensor(f"{base}_b", bias.astype(np.float32)))
        if len(in_shape) == 2:
            name = self._emit("fully_connected", inputs, (rows, m), out=base, ty=tail.ty, node=node, attrs=tail.acts)
        else:
            flat_out = self._emit(
                "fully_connected", inputs, (rows, m), hint=f"{base}_2d", ty=tail.ty, node=node, attrs=tail.acts
            )
            name = self._emit("reshape", [flat_out], (*in_shape[:-1], m), out=base, ty=tail.ty)
        self.env[base] = Act(name, _ident(len(in_shape)))

    def _binary(self, node: onnx.NodeProto) -> None:
        out = node.output[0]
        vals = [self.env[i] for i in node.input]
        op = node.op_type
        consts = [v for v in vals if isinstance(v, Const)]
        if len(consts) == len(vals):
            fn = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide, "Sum": np.add}[op]
            data = consts[0].data
            for c in consts[1:]:
                data = fn(data, c.data)
            self.env[out] = Const(np.asarray(data))
            return
        if len(vals) == 1:  # Sum of one
            self.env[out] = vals[0]
            return
        rank = len(self._shape(out))
        a, b = vals[0], vals[1]
        if op == "Div":
            if not isinstance(b, Const):
                raise UnsupportedError(_node_name(node), op, "division by a non-constant divisor")
            self._eltwise(node, "mul", a, Const(np.asarray(1.0 / b.data.astype(np.float64))), rank)
        elif op == "Sub" and isinstance(b, Const):
            self._eltwise(node, "add", a, Const(-b.data), rank)
        elif op == "Sub":  # a - b = a + (-1) * b
            neg = self._eltwise_node("mul", b, Const(np.asarray(-1.0, np.float32)), rank, hint=f"{out}_neg")
            self._eltwise(node, "add", a, neg, rank)
        else:
            for v in vals[1:-1]:  # Sum of more than two: a chain of adds
                a = self._eltwise_node("add", a, v, rank, hint=f"{out}_partial")
            self._eltwise(node, "add" if op in ("Add", "Sum") else "mul", a, vals[-1], rank)

    def _eltwise(self, node: onnx.NodeProto, op: str, a: Act | Const, b: Act | Const, rank: int) -> None:
        """The add/mul an ONNX node ends in: int8 if both operands are int8 and a QuantizeLinear follows."""
        ftail, qtail = self._tail(node.output[0])
        int8 = (
            qtail is not None
            and node.op_type in ("Add", "Mul", "Sum")
            and len(node.input) == 2
            and all(_is_int8(v) for v in (a, b))
        )
        tail = qtail if int8 and qtail is not None else ftail
        self._absorb(tail)
        self.env[tail.out] = self._eltwise_node(op, a, b, rank, out=tail.out, node=node, tail=tail)

    def _eltwise_node(
        self,
        op: str,
        a: Act | Const,
        b: Act | Const,
        rank: int,
        *,
        out: str | None = None,
        hint: str = "t",
        node: onnx.NodeProto | None = None,
        tail: Tail | None = None,
    ) -> Act:
        int8 = tail is not None and tail.quant is not None
        full = [v for v in (a, b) if isinstance(v, Act) and len(self._stored(v).shape) == rank]
        perm = full[0].perm if full else _ident(rank)
        names, shapes = [], []
        for v in (a, b):
            if isinstance(v, Const):
                data = v.q if int8 and v.q is not None else v.data.astype(np.float32)
                data = data.reshape((1,) * (rank - data.ndim) + data.shape).transpose(perm)
                names.append(self._const_tensor(f"{out or hint}_c", data, v.quant if int8 else None))
                shapes.append(data.shape)
                continue
            x = v if int8 else self._float(v)
            t = self._stored(x)
            if len(t.shape) < rank:  # lower-rank data: make the broadcast explicit, then relayout
                x = self._relayout(x, _ident(len(t.shape)))
                shape = (1,) * (rank - len(t.shape)) + self._stored(x).shape
                x = Act(
                    self._emit("reshape", [x.name], shape, hint=f"{x.name}_r{rank}", ty=_ty(t)), _ident(rank), x.deq
                )
            x = self._relayout(x, perm)
            names.append(x.name)
            shapes.append(self._stored(x).shape)
        ty = tail.ty if tail is not None else FLOAT
        attrs: dict[str, object] = tail.acts if tail is not None else {"act_min": -INF, "act_max": INF}
        name = self._emit(op, names, np.broadcast_shapes(*shapes), out=out, hint=hint, ty=ty, node=node, attrs=attrs)
        return Act(name, perm)


def _is_int8(v: Act | Const) -> bool:
    if isinstance(v, Act):
        return v.deq
    return v.q is not None and v.q.dtype == np.int8 and v.quant is not None and v.quant.axis is None


def _default_q_type(node: onnx.NodeProto) -> type[np.integer]:
    """Without a zero point QuantizeLinear makes uint8, unless opset 21's output_dtype says int8."""
    return np.int8 if _int(node, "output_dtype", 0) == onnx.TensorProto.INT8 else np.uint8


def _node_name(node: onnx.NodeProto) -> str:
    return node.name or f"{node.op_type}_{node.output[0]}"


def _unsupported_op(node: onnx.NodeProto) -> UnsupportedError:
    op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"
    return UnsupportedError(_node_name(node), op, f"operator not supported; supported ops: {', '.join(SUPPORTED_OPS)}")


def _boundary(graph: Graph, name: str) -> dict[str, object]:
    """Name, shape, dtype and layout of a graph input/output, as the ONNX model has it."""
    t = graph.tensors[name]
    return {"name": name, "shape": list(t.shape), "dtype": t.dtype, "layout": _layout(graph, name)}


def _layout(graph: Graph, name: str) -> str:
    """NCHW if a real transpose separates the boundary from the IR's NHWC compute, NHWC if a
    spatial op reads/writes it with at most reshapes in between; else by rank."""
    rank = len(graph.tensors[name].shape)
    if rank != 4:
        return {1: "C", 2: "NC"}.get(rank, "ND")
    forward = name in graph.inputs
    near, frontier = [], [name]
    while frontier:
        t = frontier.pop()
        producer = graph.producer(t)
        if not forward and producer is None and t in graph.inputs:
            return _layout(graph, t)  # an output copied from an input
        for n in graph.consumers(t) if forward else [producer] if producer else []:
            if n.op == "reshape":
                frontier += n.outputs if forward else n.inputs
            else:
                near.append(n.op)
    return "NCHW" if "transpose" in near else "NHWC" if _SPATIAL.intersection(near) else "ND"


_SPATIAL = {"conv2d", "max_pool2d", "avg_pool2d"}
_CONST_OPS = {
    "DequantizeLinear",
    "QuantizeLinear",
    "Transpose",
    "Identity",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
}
_SAME_QUANT_OPS = {"reshape", "transpose", "max_pool2d", "clip", "pad"}
