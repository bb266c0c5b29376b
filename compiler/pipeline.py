"""model.onnx -> frontend -> passes -> backends -> output folder. The glue, and nothing else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from tinysplit.backends.c import emit_c
from tinysplit.backends.c_multicore import emit_c_multicore
from tinysplit.backends.lower import scratch_bytes
from tinysplit.backends.onnx_export import export_onnx
from tinysplit.backends.rust import emit_rust
from tinysplit.compiler import frontend
from tinysplit.compiler.calibration import load_calibration
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.links import load_link
from tinysplit.compiler.output import atomic_directory, write_deps
from tinysplit.compiler.privacy import load_privacy_data
from tinysplit.compiler.report import make_report, write_report
from tinysplit.compiler.split_emit import emit_split
from tinysplit.compiler.split_report import split_section, write_split_report
from tinysplit.compiler.targets import Target, load_target, target_file
from tinysplit.compiler.tiling_report import tiling_report
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.noise import NoiseSpec, parse_noise
from tinysplit.passes.quantize import quantize_for_compile
from tinysplit.passes.split_search import plan_split
from tinysplit.passes.tiling import patch_schedule
from tinysplit.passes.weight_layout import choose_weight_layout


@dataclass
class CompileOptions:
    target: str = "host"
    input_shapes: dict[str, tuple[int, ...]] | None = None
    prefix: str = "model"
    quantize: str | None = None  # "int8": post-training quantization of a float model
    calibration: Path | None = None
    calibration_method: str = "minmax"
    weights: str = "auto"  # int8 conv / fully connected weights stored as: auto | int8 | int16 (passes.weight_layout)
    emit_deps: Path | None = None  # write a Makefile-format dependency file of the compile here
    cores: int = 1  # > 1: conv/pool output rows split over cores (C: <prefix>_run_worker, Rust: Model::run_on)
    tile_memory: bool = False  # patch-based execution of the first layers, to cut peak RAM
    patches: int = 4
    langs: tuple[str, ...] = ("c",)  # device code to emit: c, rust
    split: str | None = None  # None: whole model on the device, no search; else auto | none | input | TENSOR
    link: str = "ble"
    objective: str = "latency"
    max_leakage: float | None = None
    privacy_data: Path | None = None  # real inputs: the split's leakage is the inversion attack's SSIM on them
    max_bytes: int | None = None
    noise: str = "none"  # noise the device adds to the cut tensors: none | gaussian:S | laplace:S | auto
    max_accuracy_drop: float = 1.0  # what --noise auto may cost, in accuracy points on the calibration data


def build_graph(model: str | Path | onnx.ModelProto, options: CompileOptions) -> tuple[Graph, Target]:
    """Everything up to (not including) the backends: the planned device graph."""
    target = load_target(options.target)
    graph = frontend.load(model, options.input_shapes)
    graph = canonicalize(graph)
    if options.quantize == "int8":
        assert options.calibration is not None
        graph = quantize_for_compile(graph, options.calibration, options.calibration_method)
    graph = choose_weight_layout(graph, target, options.weights)
    graph = plan_memory(graph, scratch_bytes)
    return graph, target


def compile_model(model: str | Path, out_dir: Path, options: CompileOptions) -> dict[str, Any]:
    untiled, target = build_graph(model, options)
    graph = patch_schedule(untiled, options.patches, "auto", scratch_bytes) if options.tile_memory else untiled
    report = make_report(graph, target, Path(model).name)
    split = None
    if options.noise != "none" and options.split is None:
        raise CompileError("--noise applies to what the device sends: it needs --split")
    if options.split is not None:
        if options.cores > 1 or options.tile_memory or "rust" in options.langs:
            raise CompileError("--split emits the C head on one core for now: drop --cores, --tile-memory, --lang rust")
        link = load_link(options.link)
        samples = load_calibration(options.calibration, graph).samples if options.calibration else None
        privacy = load_privacy_data(options.privacy_data, graph) if options.privacy_data else None
        real, source = (samples, options.calibration) if samples else (privacy, options.privacy_data)
        note = f"{len(next(iter(real.values())))} samples of {source}" if real else None
        noise = parse_noise(options.noise)
        split = plan_split(
            graph, target, link, options.split, options.objective, options.max_bytes, options.max_leakage,
            real, note, privacy, str(options.privacy_data), noise if isinstance(noise, NoiseSpec) else None,
        )  # fmt: skip
    if options.cores > 1 or options.tile_memory:
        report["tiling"] = tiling_report(untiled, graph if options.tile_memory else None, options.cores)
    with atomic_directory(out_dir) as tmp:
        if split is not None:
            written = emit_split(
                graph, split, tmp, options.prefix, noise=options.noise, noise_samples=samples,
                max_accuracy_drop=options.max_accuracy_drop, attack_samples=privacy,
            )  # fmt: skip
            report["split"] = split_section(split, written)
        elif "c" in options.langs and options.cores > 1:
            emit_c_multicore(graph, tmp / "c", options.prefix, max_cores=options.cores)
        elif "c" in options.langs:
            emit_c(graph, tmp / "c", options.prefix)
        if "rust" in options.langs:
            emit_rust(graph, tmp / "rust", options.prefix, max_cores=options.cores)
        write_report(report, tmp)
        if split is not None:
            write_split_report(report["split"], tmp)
        if options.quantize:
            onnx.save(export_onnx(graph), tmp / "model.int8.qdq.onnx")
        (tmp / "model.io.json").write_text(json.dumps(io_description(graph), indent=2) + "\n")
    if options.emit_deps is not None:
        outputs = sorted(p for p in out_dir.rglob("*") if p.is_file())
        inputs = [Path(model)] + ([Path(options.calibration)] if options.calibration else [])
        write_deps(options.emit_deps, outputs, [*inputs, target_file(options.target)])
    return report


def io_description(graph: Graph) -> dict[str, Any]:
    """Names, shapes, dtypes and quantization of the compiled model's inputs and outputs."""

    def describe(name: str) -> dict[str, Any]:
        t = graph.tensors[name]
        entry: dict[str, Any] = {"name": name, "shape": list(t.shape), "dtype": t.dtype}
        if t.quant is not None:
            scale, zero_point = t.quant.scalar()
            entry |= {"scale": scale, "zero_point": zero_point}
        return entry

    return {"inputs": [describe(t) for t in graph.inputs], "outputs": [describe(t) for t in graph.outputs]}
