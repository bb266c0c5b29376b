"""Rust backend: render the lowered kernel calls as a `no_std` crate, plus a copy of runtime_rust.

`emit_rust(graph, out_dir, prefix)` writes

    out_dir/tinysplit-rt/        the runtime crate (runtime_rust), copied so the folder builds on its own
    out_dir/<prefix>-model/      Cargo.toml, Cargo.lock (the runtime's pinned versions), src/lib.rs (the
                                 model), examples/host.rs (a std runner for tests and benchmarks)

and `emit_ariel(...)` the Ariel OS application of a device half beside them (out_dir/<prefix>-ariel).

It renders exactly the `KernelCall`s of `backends.lower` (the C backend renders the same list), so
no numerics live here: only how an argument is spelled in Rust.

Arena and borrows. The memory plan puts every intermediate tensor and scratch buffer at an offset
in one arena, and lets an op the plan runs in place write its output over its input. Per call the
generated code asks `ts::regions(arena, [(offset, bytes), ...])` for the distinct, pairwise
disjoint byte ranges that call touches (checked here at generation time, and again at run time)
and views them as `&[i8]` / `&mut [f32]` / ... with `ts::view` / `ts::view_mut`. A call whose
output shares its input's range uses the kernel's `*_inplace` variant, which takes that range once
as `&mut` (binary ops mark the shared operand `ts::Operand::Output`). Graph inputs and outputs are
the caller's arrays; weights, multipliers and tables are `static` arrays (flash). Noise layers
draw from a `random: &mut impl ts::Random` argument of `Model::run` (the device CSPRNG), in pieces
of ts::RANDOM_CHUNK elements, as the C backend does with ts_platform_random.

Several cores (`emit_rust(..., max_cores=N)`, `tinysplit compile --cores N --lang rust`). The crate
then also has `Model::run_on(&cores, ...)` (`Model::run` stays the one-core call). `cores` is any
`ts::Cores` (runtime_rust/src/parallel.rs): `ts::OneCore`, the host's `ts::ThreadPool` (cargo
feature `std`, which the host runner uses), or the Ariel OS application's threads pinned to cores.
Convolutions (depthwise too) and pools on batch-1 NHWC tensors (backends/multicore.row_splittable,
as in C) become a `ts::split_rows` call: at run time the runtime cuts the layer's output rows into
one band per core (parallel::row_band_for, the twin of C's ts_row_band_for: input rows with their
halo, padding only at the tensor's edges) and runs the layer's band function on each; it returns
when every band is done, which is the layer's barrier. Other layers run on the calling core. The
memory plan holds a kernel scratch per core (multicore.plan_for_cores). A kernel computes each
output row the same way whatever band it is given, so results are bit for bit the one-core ones.
A band function is a plain `fn` over byte slices: with `#![forbid(unsafe_code)]` a core that
outlives the call (a persistent thread) cannot borrow the arena, so such `Cores` hand it a copy of
its band (`ts::Handoff`, `HANDOFF_BYTES` per worker core).
"""

from __future__ import annotations

import itertools
import keyword
import math
import re
import shutil
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from importlib.util import find_spec
from pathlib import Path
from typing import cast

import jinja2
import numpy as np

from tinysplit.backends.lower import (
    Arg,
    Array,
    Buffer,
    BufferList,
    ElemSize,
    KernelCall,
    Null,
    RandomBytes,
    Scratch,
    Struct,
    Value,
    lower,
)
from tinysplit.backends.multicore import ROW_SPLIT, plan_for_cores, row_splittable, scratch_stride
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph
from tinysplit.passes.memory_plan import MemoryPlan
from tinysplit.passes.tiling import window
from tinysplit.passes.weight_layout import int8_weights

RUST_TYPES = {"int8": "i8", "float32": "f32", "int32": "i32", "uint8": "u8", "uint32": "u32"}
RUNTIME_CRATE = "tinysplit-rt"

# Arguments of the C ABI that a Rust slice already carries (element counts), by kernel and position
# in the lowered argument list. ElemSize arguments are always dropped (the kernels are generic).
IMPLIED_ARGS: dict[str, set[int]] = {
    "lookup_s8": {1},
    "clip_s8": {2},
    "clip_f32": {2},
    "requantize_s8": {4},
    "quantize_f32_s8": {2},
    "dequantize_s8_f32": {2},
    "sigmoid_f32": {0},
    "tanh_f32": {0},
    "concat": {1},
    "copy": {0},
    "noise_s8": {2},
}
# Struct fields that a Rust slice field already carries, by ABI struct.
IMPLIED_FIELDS: dict[str, set[str]] = {"noise_params": {"table_size"}}
# The bias argument (an Option in Rust), by kernel.
OPTIONAL_ARGS: dict[str, int] = {
    "conv_s8": 6,
    "depthwise_conv_s8": 6,
    "conv_f32": 5,
    "depthwise_conv_f32": 5,
    "fully_connected_s8": 7,
    "fully_connected_f32": 7,
    "write_rows": 4,
}
# Kernels with an in-place variant: "unary" ones take the shared buffer once (their input is
# dropped), "binary" ones mark the shared operand ts::Operand::Output.
INPLACE_KERNELS: dict[str, str] = {
    "clip_s8": "unary",
    "lookup_s8": "unary",
    "requantize_s8": "unary",
    "clip_f32": "unary",
    "sigmoid_f32": "unary",
    "tanh_f32": "unary",
    "add_s8": "binary",
    "mul_s8": "binary",
    "add_f32": "binary",
    "mul_f32": "binary",
    "write_rows": "unary",  # its base is the output: only the band moves
    "noise_s8": "unary",
}
# Nested structs of the ABI (a tuple in a lowered Struct), by field name.
NESTED: dict[str, tuple[str, tuple[str, ...]]] = {
    "stride": ("Hw", ("h", "w")),
    "dilation": ("Hw", ("h", "w")),
    "kernel": ("Hw", ("h", "w")),
    "pad": ("Padding", ("top", "left", "bottom", "right")),
}
BOOL_FIELDS = {"count_include_pad"}
RESERVED = {"arena", "profiler", "random", "bytes", "self", "model", "ts"}


@dataclass
class RustLayer:
    index: int
    name: str
    op: str
    code: list[str] = field(default_factory=list)  # statements inside run_profiled
    statics: list[str] = field(default_factory=list)  # module-level items the call refers to


def rust_identifier(name: str, taken: set[str]) -> str:
    """A snake_case identifier for a tensor name, distinct from `taken` (which it joins)."""
    ident = re.sub(r"[^0-9a-z_]", "_", re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower())
    ident = re.sub(r"_+", "_", ident).strip("_") or "t"
    if ident[0].isdigit():
        ident = f"t_{ident}"
    if keyword.iskeyword(ident) or ident in RESERVED or ident in _RUST_KEYWORDS or re.fullmatch(r"r\d+", ident):
        ident += "_"
    base, i = ident, 1
    while ident in taken:
        i += 1
        ident = f"{base}_{i}"
    taken.add(ident)
    return ident


_RUST_KEYWORDS = {
    *("as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for", "if", "impl"),
    *("in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self", "Self", "static"),
    *("struct", "super", "trait", "true", "type", "unsafe", "use", "where", "while", "async", "await", "dyn"),
    *("abstract", "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual"),
    *("yield", "try", "gen"),
}


def row_split_name(index: int) -> str:
    """The ts::RowSplit constant of layer `index`."""
    return f"L{index}_ROWS"


def rust_comment(text: str) -> str:
    return " ".join(str(text).split())


def rust_string(text: str) -> str:
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{{{ord(ch):x}}}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def float_literal(v: float) -> str:
    """An f32 literal that parses back to exactly np.float32(v)."""
    f = np.float32(v)
    if math.isnan(f):
        return "f32::NAN"
    if math.isinf(f):
        return "f32::INFINITY" if f > 0 else "f32::NEG_INFINITY"
    text = str(f)  # numpy's shortest repr that round-trips in float32
    return text if any(c in text for c in ".e") else text + ".0"


def _scalar(v: Value | bool) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float | np.floating):
        return float_literal(float(v))
    if isinstance(v, tuple):
        raise TypeError("nested struct values are rendered by _Renderer.struct")
    return str(int(v))


def _array_values(dtype: str, values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    items = [float_literal(float(v)) for v in flat] if dtype == "float32" else [str(int(v)) for v in flat]
    return ",\n    ".join(", ".join(items[i : i + 16]) for i in range(0, len(items), 16))


class _Renderer:
    def __init__(self, graph: Graph) -> None:
        plan = graph.metadata.get("memory")
        if not isinstance(plan, MemoryPlan):
            raise ValueError("the Rust backend needs a memory plan (passes.memory_plan) first")
        self.graph, self.plan = graph, plan
        taken: set[str] = set()
        self.params = {t: rust_identifier(t, taken) for t in dict.fromkeys(graph.inputs + graph.outputs)}
        self.uses_arena = False
        self.uses_random = False

    # arena ranges -------------------------------------------------------------------------------
    def span(self, tensor: str) -> tuple[int, int] | None:
        """(offset, bytes) of an arena tensor; None for a graph input or output."""
        if tensor in self.params:
            return None
        if tensor not in self.plan.offsets:
            raise CompileError(f"tensor {tensor!r} has no place in the memory plan")
        return self.plan.offsets[tensor], self.graph.tensors[tensor].nbytes

    def regions(self, call: KernelCall) -> dict[int, int]:
        """Arena offset -> bytes of the distinct ranges a call touches, in region order (checked disjoint)."""
        spans: dict[int, int] = {}
        for a in call.args:
            items = a.items if isinstance(a, BufferList) else [a]
            for item in items:
                s = self.span(item.tensor) if isinstance(item, Buffer) else None
                if s is not None:
                    spans[s[0]] = max(spans.get(s[0], 0), s[1])
        scratch = self.scratch_span(call)
        if scratch is not None:
            spans[scratch[0]] = max(spans.get(scratch[0], 0), scratch[1])
        ordered = sorted(spans.items())
        for (o1, n1), (o2, _) in itertools.pairwise(ordered):
            if o1 + n1 > o2:
                raise CompileError(f"node {call.node!r}: the memory plan overlaps two of its buffers")
        return spans

    def scratch_span(self, call: KernelCall) -> tuple[int, int] | None:
        key = f"scratch:{call.node}"
        size = self.plan.scratch_bytes.get(call.node, 0)
        if key not in self.plan.offsets or not size or not any(isinstance(a, Scratch) for a in call.args):
            return None
        return self.plan.offsets[key], size

    # one call -----------------------------------------------------------------------------------
    def layer(self, call: KernelCall) -> RustLayer:
        layer = RustLayer(call.index, call.node, call.op)
        if not call.kernel:
            layer.code.append("// in place: no data moves")
            return layer
        node = self.graph.node(call.node)
        output = node.outputs[0]
        spans = self.regions(call)
        region_of = {offset: i for i, offset in enumerate(spans)}
        out_span = self.span(output)
        kernel, args = call.kernel, list(call.args)
        out_pos = max(i for i, a in enumerate(args) if isinstance(a, Buffer) and a.tensor == output)
        inplace = [
            i
            for i, a in enumerate(args)
            if isinstance(a, Buffer)
            and i != out_pos
            and (a.tensor == output or (out_span is not None and self.span(a.tensor) == out_span))
        ]
        if kernel == "write_rows" and len(args) - 2 in inplace:
            # the band input itself shares the output's bytes: the plan only allows that when the
            # band covers every row (same shape), so the output already holds the result
            layer.code.append("// in place: the band is the whole output, no data moves")
            return layer
        rendered = self.arguments(layer, call, region_of, inplace)
        name = f"{kernel}_inplace" if inplace else kernel
        call_text = f"ts::{name}({', '.join(rendered)});"
        random = [i for i, a in enumerate(args) if isinstance(a, RandomBytes)]
        if random:
            call_text = self.random_pieces(call, name, rendered, args, random[0])
        layer.code += self.in_regions(spans, call_text)
        return layer

    def arguments(
        self,
        layer: RustLayer,
        call: KernelCall,
        region_of: dict[int, int],
        inplace: Sequence[int] = (),
        overrides: Mapping[int, str] | None = None,
    ) -> list[str]:
        """The Rust arguments of a call: those a slice implies dropped, in-place operands marked,
        the optional bias wrapped; `overrides` (by position in the lowered call) are taken as given."""
        kernel, args = call.kernel, call.args
        output = self.graph.node(call.node).outputs[0]
        implied = IMPLIED_ARGS.get(kernel, set())
        operands = {len(args) - 3, len(args) - 2}  # a and b of a binary kernel (the output is last)
        rendered: list[str] = []
        for position, a in enumerate(args):
            if position in implied or isinstance(a, ElemSize):
                continue
            if overrides is not None and position in overrides:
                rendered.append(overrides[position])
                continue
            if position in inplace:
                if INPLACE_KERNELS.get(kernel) == "unary":
                    continue
                if INPLACE_KERNELS.get(kernel) != "binary":
                    raise CompileError(f"node {call.node!r}: kernel {kernel} cannot run in place")
                rendered.append("ts::Operand::Output")
                continue
            text = self.arg(layer, call, a, position, region_of, output)
            if position == OPTIONAL_ARGS.get(kernel):
                text = text if isinstance(a, Null) else f"Some({text})"
            elif inplace and INPLACE_KERNELS.get(kernel) == "binary" and position in operands:
                text = f"ts::Operand::Slice({text})"
            rendered.append(text)
        return rendered

    def in_regions(self, spans: dict[int, int], statement: str) -> list[str]:
        """`statement` in a block that first borrows the arena ranges `spans` as r0, r1, ..."""
        if not spans:
            return [statement]
        self.uses_arena = True
        names = ", ".join(f"r{i}" for i in range(len(spans)))
        ranges = ", ".join(f"({offset}, {size})" for offset, size in spans.items())
        return ["{", f"    let [{names}] = ts::regions(arena, [{ranges}]);", f"    {statement}", "}"]

    def row_split_layer(self, call: KernelCall) -> RustLayer:
        """A row-splittable call (multicore.row_splittable) as a band function, its geometry, and a
        ts::split_rows call over `cores`."""
        graph, index = self.graph, call.index
        p_at, in_dims_at, in_at, out_dims_at, out_at = ROW_SPLIT[call.kernel]
        node = graph.node(call.node)
        x, y = graph.tensors[node.inputs[0]], graph.tensors[node.outputs[0]]
        layer = RustLayer(index, call.node, call.op)
        overrides = {
            p_at: "&params",
            in_dims_at: "&input_dims",
            in_at: f"ts::view::<{RUST_TYPES[x.dtype]}>(input)",
            out_dims_at: "&output_dims",
            out_at: f"ts::view_mut::<{RUST_TYPES[y.dtype]}>(output)",
        }
        scratch_args = {i: "scratch" for i, a in enumerate(call.args) if isinstance(a, Scratch)}
        overrides |= scratch_args
        arguments = self.arguments(layer, call, {}, overrides=overrides)

        def literal(position: int) -> str:
            struct = call.args[position]
            assert isinstance(struct, Struct)
            return self.struct(layer, struct, f"L{index}_A{position}")

        function = f"layer{index}_band"
        layer.statics += [
            f"/// Layer {index} on the rows `band` names (its input rows, halo included, and its output rows).",
            f"fn {function}(band: &ts::RowBand, input: &[u8], output: &mut [u8], "
            f"{'scratch' if scratch_args else '_scratch'}: &mut [u8]) {{",
            f"    let mut params = {literal(p_at)};",
            "    (params.pad.top, params.pad.bottom) = (band.pad_top, band.pad_bottom);",
            f"    let mut input_dims = {literal(in_dims_at)};",
            "    input_dims.h = band.in_rows;",
            f"    let mut output_dims = {literal(out_dims_at)};",
            "    output_dims.h = band.out_rows;",
            f"    ts::{call.kernel}({', '.join(arguments)});",
            "}",
        ]
        stride, extent, pad_top = window(graph, node)
        scratch_span = self.scratch_span(call)
        per_core_scratch = scratch_stride(graph, call.node) if scratch_span is not None else 0
        geometry = {
            "out_h": y.shape[1],
            "in_h": x.shape[1],
            "stride": stride,
            "kernel_extent": extent,
            "pad_top": pad_top,
            "in_row_bytes": x.nbytes // x.shape[1],
            "out_row_bytes": y.nbytes // y.shape[1],
            "scratch_bytes": per_core_scratch,
        }
        fields = ", ".join(f"{k}: {v}" for k, v in geometry.items())
        layer.statics.append(f"const {row_split_name(index)}: ts::RowSplit = ts::RowSplit {{ {fields} }};")

        spans = self.regions(call)
        region_of = {offset: i for i, offset in enumerate(spans)}
        scratch = f"r{region_of[scratch_span[0]]}" if scratch_span is not None else "&mut []"
        buffers = [self.byte_buffer(x.name, region_of, False), self.byte_buffer(y.name, region_of, True)]
        split = ", ".join(["cores", f"&{row_split_name(index)}", *buffers, scratch, function])
        statement = f"ts::split_rows::<MAX_CORES>({split});"
        layer.code += ["// output rows split over cores", *self.in_regions(spans, statement)]
        return layer

    def random_pieces(self, call: KernelCall, name: str, rendered: list[str], args: list[Arg], at: int) -> str:
        """An elementwise call on platform random bytes (lower.RandomBytes): run ts::RANDOM_CHUNK
        elements at a time, each piece with the next bytes of `random` (a stack buffer)."""
        per = cast(RandomBytes, args[at]).per_element
        self.uses_random = True
        # rendered = [params, bytes, (input,) output]: the slices are cut into pieces
        params, slices = rendered[0], rendered[2:]
        names = ["x", "y"] if len(slices) == 2 else ["y"]
        bind = f"let ({', '.join(names)}) = ({', '.join(slices)});" if len(names) == 2 else f"let y = {slices[0]};"
        iterator = "y.chunks_mut(ts::RANDOM_CHUNK)"
        if len(names) == 2:
            iterator = f"x.chunks(ts::RANDOM_CHUNK).zip({iterator})"
        pattern = "(x, y)" if len(names) == 2 else "y"
        piece = ", ".join([params, "bytes", *names])
        return (
            f"{bind} let mut bytes = [0u8; {per} * ts::RANDOM_CHUNK]; "
            f"for {pattern} in {iterator} {{ let bytes = &mut bytes[..{per} * y.len()]; "
            f"random.fill(bytes); ts::{name}({piece}); }}"
        )

    def buffer(self, tensor: str, region_of: dict[int, int], mutable: bool) -> str:
        dtype = RUST_TYPES[self.graph.tensors[tensor].dtype]
        s = self.span(tensor)
        if s is None:
            return f"&mut {self.params[tensor]}[..]" if mutable else f"&{self.params[tensor]}[..]"
        region = f"r{region_of[s[0]]}"
        return f"ts::view_mut::<{dtype}>({region})" if mutable else f"ts::view::<{dtype}>({region})"

    def byte_buffer(self, tensor: str, region_of: dict[int, int], mutable: bool) -> str:
        """A tensor's bytes: its arena range, or the caller's array seen as bytes."""
        s = self.span(tensor)
        if s is not None:
            return f"r{region_of[s[0]]}"
        return f"ts::bytes_mut(&mut {self.params[tensor]}[..])" if mutable else f"ts::bytes(&{self.params[tensor]}[..])"

    def arg(
        self, layer: RustLayer, call: KernelCall, a: Arg, position: int, region_of: dict[int, int], output: str
    ) -> str:
        name = f"L{layer.index}_A{position}"
        if isinstance(a, Struct):
            return "&" + self.struct(layer, a, name)
        if isinstance(a, Array):
            return "&" + self.array(layer, a, name)
        if isinstance(a, Buffer):
            return self.buffer(a.tensor, region_of, mutable=a.tensor == output)
        if isinstance(a, BufferList):
            items = [
                self.buffer(i.tensor, region_of, False)
                if isinstance(i, Buffer)
                else "&" + self.array(layer, i, f"{name}_{k}")
                for k, i in enumerate(a.items)
            ]
            return f"&[{', '.join(items)}]"
        if isinstance(a, Scratch):
            span = self.scratch_span(call)
            return f"r{region_of[span[0]]}" if span is not None else "&mut []"
        if isinstance(a, Null):
            return "None"
        if isinstance(a, ElemSize):
            raise AssertionError("ElemSize arguments are dropped")
        if isinstance(a, RandomBytes):
            return "bytes"
        return _scalar(a)

    def array(self, layer: RustLayer, a: Array, name: str) -> str:
        n = int(np.asarray(a.values).size)
        rtype = RUST_TYPES[a.dtype]
        layer.statics.append(f"static {name}: [{rtype}; {n}] = [\n    {_array_values(a.dtype, a.values)}\n];")
        return name

    def struct(self, layer: RustLayer, s: Struct, name: str) -> str:
        rtype = "ts::" + "".join(part.capitalize() for part in s.type.split("_"))
        fields = []
        has_array = False
        for key, value in s.fields.items():
            if key in IMPLIED_FIELDS.get(s.type, set()):
                continue
            if isinstance(value, Array):
                has_array = True
                fields.append(f"{key}: &{self.array(layer, value, f'{name}_{key.upper()}')}")
            elif isinstance(value, tuple):
                ntype, names = NESTED[key]
                inner = ", ".join(f"{n}: {_scalar(v)}" for n, v in zip(names, value, strict=True))
                fields.append(f"{key}: ts::{ntype} {{ {inner} }}")
            elif key in BOOL_FIELDS:
                fields.append(f"{key}: {_scalar(bool(value))}")
            else:
                fields.append(f"{key}: {_scalar(value)}")
        literal = f"{rtype} {{ {', '.join(fields)} }}"
        if not has_array:
            return literal  # a constant expression: `&` promotes it to a 'static
        layer.statics.append(f"static {name}: {rtype}<'static> = {literal};")
        return name


def _env() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("tinysplit.templates") / "rust"))
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def noise_seed(graph: Graph) -> int | None:
    """The seed of the graph's noise nodes (tests: a reproducible ChaCha20 stream), None for the
    device CSPRNG; the host runner draws from that stream, as the reference does."""
    seeds = {n.attrs.get("seed") for n in graph.nodes() if n.op == "noise"}
    if len(seeds) > 1:
        raise CompileError(f"noise nodes with different seeds {sorted(map(str, seeds))}: one stream per model")
    seed = next(iter(seeds), None)
    return None if seed is None else int(seed)


def crate_name(prefix: str) -> str:
    name = re.sub(r"[^0-9a-z]+", "-", prefix.lower()).strip("-") or "model"
    return f"{name}-model"


def emit_rust(graph: Graph, out_dir: Path, prefix: str = "model", max_cores: int = 1) -> list[Path]:
    """Write the model crate and a copy of the runtime crate under out_dir; return the files written.

    With `max_cores` > 1 the crate also has `Model::run_on(&cores, ...)`: its row-splittable layers
    run on 1 to `max_cores` cores (see the module's docstring)."""
    graph = int8_weights(graph)  # no SMLAD on stable Rust: pre-widened weights would only cost flash
    if max_cores > 1:
        graph = plan_for_cores(graph, max_cores)  # a kernel scratch per core
    renderer = _Renderer(graph)
    layers, row_splits = [], []
    for call in lower(graph):
        if max_cores > 1 and row_splittable(graph, call):
            layers.append(renderer.row_split_layer(call))
            row_splits.append(row_split_name(call.index))
        else:
            layers.append(renderer.layer(call))
    io = [
        {
            "name": renderer.params[t],
            "rtype": RUST_TYPES[graph.tensors[t].dtype],
            "dtype": graph.tensors[t].dtype,
            "size": graph.tensors[t].size,
            "shape": list(graph.tensors[t].shape),
            "source": rust_comment(t),
            "quant": graph.tensors[t].quant.scalar() if graph.tensors[t].quant is not None else None,
        }
        for t in graph.inputs + graph.outputs
    ]
    crate = crate_name(prefix)
    context = {
        "crate": crate,
        "crate_ident": crate.replace("-", "_"),
        "runtime_crate": RUNTIME_CRATE,
        "model": rust_comment(graph.name),
        "layers": layers,
        "layer_names": [rust_string(f"{layer.op}:{layer.name}") for layer in layers],
        "inputs": io[: len(graph.inputs)],
        "outputs": io[len(graph.inputs) :],
        "arena_bytes": max(renderer.plan.arena_bytes, 8),
        "uses_arena": renderer.uses_arena,
        "uses_random": renderer.uses_random,
        "noise_seed": noise_seed(graph),
        "comment": rust_comment,
        "max_cores": max_cores,
        "row_splits": row_splits,
    }
    model_dir = out_dir / crate
    env = _env()
    written = []
    for template, filename in (
        ("Cargo.toml.j2", "Cargo.toml"),
        ("lib.rs.j2", "src/lib.rs"),
        ("host.rs.j2", "examples/host.rs"),
    ):
        path = model_dir / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(context))
        written.append(path)
    lock = model_dir / "Cargo.lock"
    lock.write_text(model_lock(crate, (runtime_dir() / "Cargo.lock").read_text()))
    written.append(lock)
    written += copy_runtime(out_dir / RUNTIME_CRATE)
    return written


def model_lock(
    crate: str,
    runtime_lock: str,
    dependencies: tuple[str, ...] = (RUNTIME_CRATE,),
    features: tuple[str, ...] = (),
) -> str:
    """The model crate's Cargo.lock: its own entry and the pinned packages it reaches.

    With it a build resolves nothing (no registry index update, `--locked` works) and uses exactly
    the dependency versions runtime_rust was tested with. `runtime_lock` is runtime_rust's lock (all
    its optional dependencies resolved); the packages only runtime features not in `features` need
    are left out, as cargo would. Also used for an application crate on top of a model crate."""
    lock = tomllib.loads(runtime_lock)
    packages = {p["name"]: dict(p) for p in lock["package"]}
    manifest = tomllib.loads((runtime_dir() / "Cargo.toml").read_text())
    enabled = {d.removeprefix("dep:") for f in features for d in manifest.get("features", {}).get(f, [])}
    optional = {n for n, spec in manifest["dependencies"].items() if isinstance(spec, dict) and spec.get("optional")}
    rt = packages[RUNTIME_CRATE]
    rt["dependencies"] = [d for d in rt.get("dependencies", []) if d.split()[0] not in optional - enabled]
    packages[crate] = {"name": crate, "version": "0.1.0", "dependencies": sorted(dependencies)}
    reached: set[str] = set()
    frontier = [crate]
    while frontier:
        name = frontier.pop()
        if name in reached or name not in packages:
            continue
        reached.add(name)
        frontier += [d.split()[0] for d in packages[name].get("dependencies", [])]
    blocks = []
    for name in sorted(reached):
        p = packages[name]
        lines = ["[[package]]"] + [f'{k} = "{p[k]}"' for k in ("name", "version", "source", "checksum") if k in p]
        if p.get("dependencies"):
            lines += ["dependencies = ["] + [f' "{d}",' for d in p["dependencies"]] + ["]"]
        blocks.append("\n".join(lines) + "\n")
    header = "# This file is automatically @generated by Cargo.\n# It is not intended for manual editing.\n"
    return header + f"version = {lock.get('version', 4)}\n\n" + "\n".join(blocks)


ARIEL_OS_TAG = "v0.2.1"  # the Ariel OS release the official application templates import


def emit_ariel(
    graph: Graph,
    out_dir: Path,
    prefix: str = "model",
    *,
    model_id: str,
    model_version: int,
    server: str = "10.42.0.1:5683",
    period_s: int = 10,
    answer_bytes: int = 1024,
    seq_reserve: int = 128,
    cores: int = 1,
) -> list[Path]:
    """Write the Ariel OS application (laze-project.yml, Cargo.toml, README.md, src/main.rs; with
    several cores src/cores.rs) for the device half `graph` into out_dir/<prefix>-ariel, beside the
    crates emit_rust writes into out_dir.

    The device half's outputs are the cut: int8 tensors with their quantization, sealed and sent to
    the server; it has one input. The application cannot be built here (Ariel OS is not on crates.io);
    it follows Ariel OS's coap-client and storage examples. With `cores` > 1 the model runs on that
    many cores (`Model::run_on`: the crate must come from emit_rust with at least that `max_cores`),
    a worker thread pinned to each core but the inference thread's (as Ariel OS's threading-multicore);
    src/cores.rs holds their ts::Cores, and is tested on host threads with a stand-in of Ariel OS's
    sync::Mutex and sync::Event (tests/test_rust_multicore.py)."""
    if len(graph.inputs) != 1:
        raise CompileError(f"the Ariel OS application runs a device half with one input, not {len(graph.inputs)}")
    cut = []
    for name in graph.outputs:
        t = graph.tensors[name]
        if t.dtype != "int8" or t.quant is None or t.quant.per_channel:
            raise CompileError(f"cut tensor {name!r} must be int8 with one scale and zero point to go on the wire")
        scale, zero_point = t.quant.scalar()
        cut.append({"shape": list(t.shape), "size": t.size, "scale": float_literal(scale), "zero_point": zero_point})
    x = graph.tensors[graph.inputs[0]]
    crate = crate_name(prefix)
    app = crate.removesuffix("-model") + "-ariel"
    context = {
        "app": app,
        "crate": crate,
        "crate_ident": crate.replace("-", "_"),
        "runtime_crate": RUNTIME_CRATE,
        "model_id": model_id,
        "model_version": model_version,
        "server": server,
        "period_s": period_s,
        "seq_reserve": seq_reserve,
        "ariel_os_tag": ARIEL_OS_TAG,
        "input": {"rtype": RUST_TYPES[x.dtype], "size": x.size},
        "cut": cut,
        "uses_random": any(n.op == "noise" for n in graph.nodes()),
        "message_bytes": sum(int(t["size"]) for t in cut) + 64 * len(cut) + 256,  # CBOR, COSE and tag overhead
        "answer_bytes": answer_bytes,
        "cores": cores,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("tinysplit.templates") / "ariel")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    files = [
        ("laze-project.yml.j2", "laze-project.yml"),
        ("Cargo.toml.j2", "Cargo.toml"),
        ("README.md.j2", "README.md"),
        ("main.rs.j2", "src/main.rs"),
    ]
    if cores > 1:
        files.append(("cores.rs.j2", "src/cores.rs"))
    written = []
    for template, filename in files:
        path = out_dir / app / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(context))
        written.append(path)
    return written


def runtime_dir() -> Path:
    """runtime_rust: package data of an installed tinysplit, else the source tree beside backends/."""
    if find_spec("tinysplit.runtime_rust") is not None:
        return Path(str(resources.files("tinysplit.runtime_rust")))
    return Path(__file__).resolve().parent.parent / "runtime_rust"


def copy_runtime(dest: Path) -> list[Path]:
    """Copy the tinysplit-rt crate (manifest, lock file, sources, tests, host examples; no build
    output) into dest."""
    root = runtime_dir()
    written = []
    sources = [p for sub in ("src", "tests", "examples") for p in sorted((root / sub).rglob("*.rs"))]
    files = [root / "Cargo.toml", root / "Cargo.lock", *sources]
    for path in files:
        target = dest / path.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
        written.append(target)
    return written
