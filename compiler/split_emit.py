"""Write both halves of a split deployment: OUT/c (the head, C backend) and OUT/server (the tail bundle).

The server bundle follows server/bundle.py: tail.onnx takes each cut tensor *dequantized* to
float32 under the cut's own name and returns the model's outputs as float32 (what the sealed
answer carries); bundle.json records each cut tensor's shape, scale and zero point. In the IR,
`server_tail` gives the tail that interface: a `quantize` after each float input restores the
exact int8 values the device sent (real = scale * (q - zp) quantizes back to q), and a
`dequantize` before each int8 output.

All on the device (no tail): no server folder. All on the server with an int8 input: no C code,
the device sends its input as it is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from tinysplit.backends.c import emit_c
from tinysplit.backends.lower import scratch_bytes
from tinysplit.backends.onnx_export import export_onnx
from tinysplit.backends.riot import emit_riot_app
from tinysplit.compiler.ir import Graph, Node, Tensor
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.noise import apply_option
from tinysplit.passes.split import split_graph
from tinysplit.passes.split_search import SplitResult
from tinysplit.server.bundle import load_bundle


def device_head(head: Graph) -> Graph:
    """The head as the device runs it: inputs it merely forwards are sent from the caller's buffer, not outputs."""
    device = head.copy()
    device.outputs = [t for t in head.outputs if t not in head.inputs]
    device.prune()
    return device


def _rename(graph: Graph, old: str, new: str) -> None:
    """Rename a tensor inside the graph's nodes (the graph's input and output lists keep the old name)."""
    tensor = graph.tensors.pop(old)
    tensor.name = new
    graph.tensors[new] = tensor
    for node in graph.nodes():
        node.inputs = [new if t == old else t for t in node.inputs]
        node.outputs = [new if t == old else t for t in node.outputs]


def server_tail(tail: Graph) -> Graph:
    """The tail with the bundle's interface: float32 (dequantized cut) in, float32 out, same names."""
    g = tail.copy()
    for name in list(g.inputs):
        t = g.tensors[name]
        if t.dtype != "int8":
            continue
        _rename(g, name, g.unique_name(f"{name}_int8"))
        g.add_tensor(Tensor(name, t.shape, "float32"))
        g.add_node(Node(g.unique_name(f"quantize_{name}"), "quantize", [name], [t.name]))
    for name in list(g.outputs):
        t = g.tensors[name]
        if t.dtype != "int8":
            continue
        _rename(g, name, g.unique_name(f"{name}_int8"))
        g.add_tensor(Tensor(name, t.shape, "float32"))
        g.add_node(Node(g.unique_name(f"dequantize_{name}"), "dequantize", [t.name], [name]))
    g.rebuild_edges()
    g.validate()
    return g


def bundle_json(head: Graph, tail: Graph, model_id: str, model_version: int) -> dict[str, Any]:
    cut = []
    for name in tail.inputs:
        t = head.tensors[name]
        assert t.quant is not None and t.dtype == "int8", f"cut tensor {name} must be int8 with quantization"
        scale, zero_point = t.quant.scalar()
        cut.append({"name": name, "shape": list(t.shape), "dtype": "int8", "scale": scale, "zero_point": zero_point})
    outputs = [{"name": o, "shape": list(tail.tensors[o].shape)} for o in tail.outputs]
    return {"model_id": model_id, "model_version": model_version, "cut": cut, "outputs": outputs}


def emit_split(
    graph: Graph,
    result: SplitResult,
    out_dir: Path,
    prefix: str = "model",
    model_version: int = 1,
    noise: str = "none",
    noise_samples: dict[str, np.ndarray] | None = None,
    max_accuracy_drop: float = 1.0,
    attack_samples: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Write OUT/c and OUT/server for the chosen cut; return what was written, for the report.

    `noise` (passes.noise syntax) adds the on-device noise step to the cut tensors; the report's noise
    section gives the inversion attack's SSIM on `attack_samples` (default: `noise_samples`)."""
    setup = result.setup
    head, tail = split_graph(graph, result.chosen, setup.cut_quant)
    head, noise_section = apply_option(
        head, tail, noise, noise_samples, max_accuracy_drop, attack_samples=attack_samples
    )
    device = device_head(head)
    written: dict[str, Any] = {"cut": list(tail.inputs), "device_code": None, "server_bundle": None}
    written["noise"] = noise_section
    if any(True for _ in device.nodes()):
        planned = plan_memory(device, scratch_bytes)
        emit_c(planned, out_dir / "c", prefix)
        written["device_code"] = "c/"
        written["device_outputs"] = list(device.outputs)
    if tail.outputs:
        server = out_dir / "server"
        server.mkdir(parents=True, exist_ok=True)
        onnx.save(export_onnx(server_tail(tail)), server / "tail.onnx")
        bundle = bundle_json(head, tail, setup.model_id, model_version)
        (server / "bundle.json").write_text(json.dumps(bundle, indent=2) + "\n")
        load_bundle(server)  # the server's own check of the contract
        written["server_bundle"] = "server/"
        if written["device_code"]:
            plan = planned.metadata["memory"]
            emit_riot_app(out_dir / "c", prefix, setup.model_id, model_version, device, bundle["cut"], plan.arena_bytes)
            written["riot_app"] = "c/"
    return written
