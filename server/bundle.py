"""The server bundle: the contract between the compiler's server backend and this runtime.

The compile pipeline writes a folder ``OUT/server/`` holding:

``tail.onnx``
    An ONNX model whose graph inputs are the cut tensors, *dequantized* to float32, one input per
    entry of ``cut`` with the same name, and whose outputs are the model's outputs. Shapes are those
    of one device request (leading dimension 1). The leading dimension may instead be symbolic
    (``N``): the server then batches concurrent requests into one onnxruntime call.

``bundle.json``
    ::

        {"model_id": "dscnn_kws",          # 1..64 chars [A-Za-z0-9_.-], bound into every message's AAD
         "model_version": 3,               # unsigned, bumped whenever the split or the weights change
         "cut":     [{"name": "x", "shape": [1, 64, 25, 5], "dtype": "int8",
                      "scale": 0.0235, "zero_point": -128}],
         "outputs": [{"name": "y", "shape": [1, 12]}]}

    The order of ``cut`` is the order of the tensors in the device's message; ``scale`` and
    ``zero_point`` are the quantization of the int8 values the device sends
    (real = scale * (q - zero_point)).

``keys.json`` (written by ``tinysplit keys``, not the compiler) and ``replay.json`` (written by
the server) live beside them by default.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MODEL_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MAX_RANK = 8


class BundleError(ValueError):
    """The bundle is missing, malformed or inconsistent with its tail model."""


@dataclass(frozen=True)
class CutTensor:
    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    dtype: str = "int8"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class OutputSpec:
    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Bundle:
    folder: Path
    model_id: str
    model_version: int
    cut: tuple[CutTensor, ...]
    outputs: tuple[OutputSpec, ...]

    @property
    def tail_path(self) -> Path:
        return self.folder / "tail.onnx"


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RANK:
        raise BundleError(f"{where}: shape must be a list of 1..{MAX_RANK} dimensions")
    if not all(isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= 1 << 24 for d in value):
        raise BundleError(f"{where}: dimensions must be positive integers")
    return tuple(value)


def _name(entry: dict[str, Any], where: str) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise BundleError(f"{where}: name must be a non-empty string")
    return name


def parse_bundle(data: Any, folder: Path) -> Bundle:
    """Validate the decoded bundle.json (without touching tail.onnx)."""
    if not isinstance(data, dict):
        raise BundleError("bundle.json: expected an object")
    model_id, version = data.get("model_id"), data.get("model_version")
    if not isinstance(model_id, str) or not MODEL_ID_RE.match(model_id):
        raise BundleError("bundle.json: model_id must be 1..64 characters of [A-Za-z0-9_.-]")
    if not isinstance(version, int) or isinstance(version, bool) or not 0 <= version < 1 << 32:
        raise BundleError("bundle.json: model_version must be an integer in [0, 2^32)")
    cut_list, out_list = data.get("cut"), data.get("outputs")
    if not isinstance(cut_list, list) or not 1 <= len(cut_list) <= 8:
        raise BundleError("bundle.json: cut must list 1..8 tensors")
    if not isinstance(out_list, list) or not 1 <= len(out_list) <= 8:
        raise BundleError("bundle.json: outputs must list 1..8 tensors")
    cut = []
    for i, entry in enumerate(cut_list):
        where = f"bundle.json: cut[{i}]"
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: expected an object")
        if entry.get("dtype") != "int8":
            raise BundleError(f"{where}: dtype must be int8")
        scale, zp = entry.get("scale"), entry.get("zero_point")
        if not isinstance(scale, int | float) or isinstance(scale, bool) or not (math.isfinite(scale) and scale > 0):
            raise BundleError(f"{where}: scale must be a positive finite number")
        if not isinstance(zp, int) or isinstance(zp, bool) or not -128 <= zp <= 127:
            raise BundleError(f"{where}: zero_point must be an integer in [-128, 127]")
        cut.append(CutTensor(_name(entry, where), _shape(entry.get("shape"), where), float(scale), zp))
    outputs = []
    for i, entry in enumerate(out_list):
        where = f"bundle.json: outputs[{i}]"
        if not isinstance(entry, dict):
            raise BundleError(f"{where}: expected an object")
        outputs.append(OutputSpec(_name(entry, where), _shape(entry.get("shape"), where)))
    if len({t.name for t in cut}) != len(cut):
        raise BundleError("bundle.json: cut tensor names must be unique")
    return Bundle(folder, model_id, version, tuple(cut), tuple(outputs))


def check_tail(bundle: Bundle) -> bool:
    """Check tail.onnx against the bundle; return True when its leading dimension is symbolic (batchable)."""
    import onnx

    model = onnx.load(str(bundle.tail_path), load_external_data=False)
    graph_inputs = {i.name: i for i in model.graph.input}
    initializers = {i.name for i in model.graph.initializer}
    real_inputs = [n for n in graph_inputs if n not in initializers]
    if sorted(real_inputs) != sorted(t.name for t in bundle.cut):
        raise BundleError(f"tail.onnx: inputs {real_inputs} do not match the cut {[t.name for t in bundle.cut]}")
    graph_outputs = [o.name for o in model.graph.output]
    if graph_outputs != [o.name for o in bundle.outputs]:
        raise BundleError(
            f"tail.onnx: outputs {graph_outputs} do not match bundle.json {[o.name for o in bundle.outputs]}"
        )
    batchable = True
    for t in bundle.cut:
        tt = graph_inputs[t.name].type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise BundleError(f"tail.onnx: input {t.name} must be float32 (the dequantized cut)")
        dims = list(tt.shape.dim)
        if len(dims) != len(t.shape):
            raise BundleError(f"tail.onnx: input {t.name} has rank {len(dims)}, bundle.json says {len(t.shape)}")
        for k, (d, want) in enumerate(zip(dims, t.shape, strict=True)):
            if d.HasField("dim_value") and d.dim_value != want:
                raise BundleError(f"tail.onnx: input {t.name} dim {k} is {d.dim_value}, bundle.json says {want}")
        batchable = batchable and not dims[0].HasField("dim_value") and t.shape[0] == 1
    return batchable


def load_bundle(folder: Path) -> Bundle:
    """Load and validate OUT/server (or the folder given) including its tail model."""
    folder = Path(folder)
    if (folder / "server" / "bundle.json").is_file():
        folder = folder / "server"
    path = folder / "bundle.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: not found (expected a server bundle: bundle.json + tail.onnx)") from None
    except json.JSONDecodeError as e:
        raise BundleError(f"{path}: invalid JSON: {e}") from None
    bundle = parse_bundle(data, folder)
    if not bundle.tail_path.is_file():
        raise BundleError(f"{bundle.tail_path}: not found")
    check_tail(bundle)
    return bundle
