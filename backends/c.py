"""C backend: render the lowered kernel calls as model.h / model.c, plus a copy of runtime_c.

Per layer it names the constant arrays and parameter structs (file-scope `static const`) and
writes the call; templates/c lays the file out. The runtime sources are copied next to the
model so the output folder builds on its own.
"""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, cast

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
from tinysplit.backends.riot import emit_riot_module_files
from tinysplit.compiler.ir import Graph
from tinysplit.passes.memory_plan import MemoryPlan

CTYPES = {"int8": "int8_t", "int16": "int16_t", "float32": "float", "int32": "int32_t", "uint32": "uint32_t"}
RANDOM_CHUNK = 64  # elements per ts_platform_random fill: a noise layer takes 256 B of stack, not 4 B/element


@dataclass
class CLayer:
    index: int
    name: str
    op: str
    call: str
    decls: list[str] = field(default_factory=list)  # file-scope constants the call refers to
    setup: str = ""  # a local declaration the call needs (the input list of a concat)


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return ident if ident and not ident[0].isdigit() else f"t_{ident}"


def c_comment(text: str) -> str:
    return text.replace("*/", "* /")


def float_literal(v: float) -> str:
    if math.isinf(v):
        return "INFINITY" if v > 0 else "-INFINITY"
    return f"{float(np.float32(v))!r}f"


def _scalar(v: Value) -> str:
    if isinstance(v, tuple):
        return "{" + ", ".join(_scalar(x) for x in v) + "}"
    return float_literal(v) if isinstance(v, float) else str(int(v))


def _array_values(values: np.ndarray) -> str:
    flat = np.asarray(values).reshape(-1)
    items = [float_literal(float(v)) for v in flat] if flat.dtype.kind == "f" else [str(int(v)) for v in flat]
    return ",\n    ".join(", ".join(items[i : i + 16]) for i in range(0, len(items), 16))


class _Renderer:
    def __init__(self, graph: Graph, prefix: str) -> None:
        plan = graph.metadata.get("memory")
        if not isinstance(plan, MemoryPlan):
            raise ValueError("the C backend needs a memory plan (passes.memory_plan) first")
        self.graph, self.prefix, self.plan = graph, prefix, plan
        self.params = {t: c_identifier(t) for t in graph.inputs + graph.outputs}

    def buffer(self, name: str) -> str:
        if name in self.params:
            return self.params[name]
        ctype = CTYPES[self.graph.tensors[name].dtype]
        return f"(({ctype} *)({self.prefix}_arena + {self.plan.offsets[name]}))"

    def layer(self, call: KernelCall) -> CLayer:
        layer = CLayer(call.index, call.node, call.op, "")
        if not call.kernel:
            layer.call = "/* in place: no data moves */"
            return layer
        counter = iter(range(1000))
        args = [self.arg(layer, a, next(counter), call.node) for a in call.args]
        layer.call = f"ts_{call.kernel}({', '.join(args)});"
        if any(isinstance(a, RandomBytes) for a in call.args):
            layer.call = self.random_pieces(call, args)
        if layer.setup:
            layer.call = f"{{ {layer.setup} {layer.call} }}"
        return layer

    def arg(self, layer: CLayer, a: Arg, position: int, node: str) -> str:
        name = f"l{layer.index}_a{position}"
        if isinstance(a, Struct):
            return "&" + self.struct(layer, a, name)
        if isinstance(a, Array):
            return self.array(layer, a, name)
        if isinstance(a, Buffer):
            return self.buffer(a.tensor)
        if isinstance(a, BufferList):
            items = [self.buffer(i.tensor) if isinstance(i, Buffer) else self.array(layer, i, f"{name}_{k}")
                     for k, i in enumerate(a.items)]  # fmt: skip
            layer.setup = f"const void *const {name}[{len(items)}] = {{{', '.join(items)}}};"
            return name
        if isinstance(a, ElemSize):
            return f"sizeof({CTYPES[a.dtype]})"
        if isinstance(a, Scratch):
            key = f"scratch:{node}"
            return f"({self.prefix}_arena + {self.plan.offsets[key]})" if key in self.plan.offsets else "NULL"
        if isinstance(a, Null):
            return "NULL"
        if isinstance(a, RandomBytes):
            return f"l{layer.index}_random"
        return _scalar(a)

    def random_pieces(self, call: KernelCall, args: list[str]) -> str:
        """An elementwise call on platform random bytes (lower.RandomBytes), run RANDOM_CHUNK elements at a
        time from a stack buffer refilled by ts_platform_random before each piece."""
        at = next(i for i, a in enumerate(call.args) if isinstance(a, RandomBytes))
        per, size = cast(RandomBytes, call.args[at]).per_element, int(cast(int, call.args[at + 1]))
        chunk, buf = min(RANDOM_CHUNK, size), args[at]
        piece = [f"{text} + i" if isinstance(a, Buffer) else text for a, text in zip(call.args, args, strict=True)]
        piece[at + 1] = "n"
        return (
            f"{{ uint8_t {buf}[{chunk * per}]; int32_t i; for (i = 0; i < {size}; i += {chunk}) {{ "
            f"const int32_t n = {size} - i < {chunk} ? {size} - i : {chunk}; "
            f"ts_platform_random({buf}, (size_t)n * {per}); ts_{call.kernel}({', '.join(piece)}); }} }}"
        )

    def array(self, layer: CLayer, a: Array, name: str) -> str:
        n = int(np.asarray(a.values).size)
        layer.decls.append(
            f"static const {CTYPES[a.dtype]} {name}[{n}] TS_ALIGNED(4) = {{\n    {_array_values(a.values)}\n}};"
        )
        return name

    def struct(self, layer: CLayer, s: Struct, name: str) -> str:
        fields = []
        for key, value in s.fields.items():
            if isinstance(value, Array):  # pointer fields (per-channel multipliers, shifts)
                fields.append(f".{key} = {self.array(layer, value, f'{name}_{key}')}")
            else:
                fields.append(f".{key} = {_scalar(value)}")
        layer.decls.append(f"static const ts_{s.type} {name} = {{{', '.join(fields)}}};")
        return name


def _env() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(resources.files("tinysplit.templates") / "c"))
    return jinja2.Environment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def emit_c(graph: Graph, out_dir: Path, prefix: str = "model") -> list[Path]:
    """Write model.h, model.c and a copy of the runtime under out_dir; return the files written."""
    renderer = _Renderer(graph, prefix)
    layers = [renderer.layer(call) for call in lower(graph)]
    written = write_model_files(graph, out_dir, prefix, layers, "model")
    return written + emit_riot_module_files(out_dir, prefix)


def write_model_files(
    graph: Graph, out_dir: Path, prefix: str, layers: list[Any], template: str, **extra: Any
) -> list[Path]:
    """Render templates/c/<template>.{h,c}.j2 as model.h and model.c for the rendered layers, and copy
    the runtime beside them. `graph` carries the memory plan; `extra` goes to the templates as is."""
    io = [
        {
            "name": c_identifier(t),
            "ctype": CTYPES[graph.tensors[t].dtype],
            "size": graph.tensors[t].size,
            "shape": list(graph.tensors[t].shape),
            "source": c_comment(t),
        }
        for t in graph.inputs + graph.outputs
    ]
    context = {
        "prefix": prefix,
        "PREFIX": prefix.upper(),
        "model": c_comment(graph.name),
        "layers": layers,
        "inputs": io[: len(graph.inputs)],
        "outputs": io[len(graph.inputs) :],
        "arena_bytes": max(graph.metadata["memory"].arena_bytes, 8),
        **extra,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    written = []
    for suffix in ("h", "c"):
        path = out_dir / f"model.{suffix}"
        path.write_text(env.get_template(f"{template}.{suffix}.j2").render(context))
        written.append(path)
    return written + copy_runtime(out_dir / "runtime")


def copy_runtime(dest: Path) -> list[Path]:
    """Copy runtime_c's kernel headers and sources (not the Python package marker) into dest."""
    root = resources.files("tinysplit.runtime_c")
    written = []
    for sub in ("include", "src"):
        src_dir = Path(str(root / sub))
        for path in sorted(src_dir.rglob("*")):
            if path.is_file() and path.suffix in (".c", ".h"):
                target = dest / sub / path.relative_to(src_dir)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
                written.append(target)
    return written
