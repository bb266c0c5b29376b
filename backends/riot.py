"""RIOT glue for the C backend: the generated model and the C runtime as two RIOT external modules.

RIOT finds an external module at $(EXTERNAL_MODULE_DIRS)/<name>/Makefile, so each module is a folder
named after it, both under c/riot/ (the folder an application adds to EXTERNAL_MODULE_DIRS):

    c/riot/tinysplit_<prefix>/   Makefile (model.c), Makefile.include (-I c), Makefile.dep (needs the runtime)
    c/riot/tinysplit_runtime/    Makefile (runtime/src/*.c), Makefile.include (-I c/runtime/include)

Their Makefiles find the sources where emit_c wrote them (vpath); nothing is copied. The folder is
not c/ itself: a module's name is its folder's name, and c/Makefile belongs to the RIOT application
of a split deployment (templates/riot).
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

from tinysplit.compiler.ir import Graph

RUNTIME_MODULE = "tinysplit_runtime"


def riot_module_name(prefix: str) -> str:
    return f"tinysplit_{prefix}"


def emit_riot_module_files(c_dir: Path, prefix: str = "model") -> list[Path]:
    """Write the two modules' Makefiles under c_dir/riot (c_dir: the folder emit_c wrote); return them."""
    module = riot_module_name(prefix)
    context = {
        "module": module,
        "runtime_module": RUNTIME_MODULE,
        "c_dir": "../..",
        "src_dir": "../../runtime/src",
        "include_dir": "../../runtime/include",
        "sources": sorted(p.name for p in (c_dir / "runtime" / "src").glob("*.c")),
    }
    files = {
        f"{module}/Makefile": "riot_model.Makefile.j2",
        f"{module}/Makefile.include": "riot_model.Makefile.include.j2",
        f"{module}/Makefile.dep": "riot_model.Makefile.dep.j2",
        f"{RUNTIME_MODULE}/Makefile": "riot_runtime.Makefile.j2",
        f"{RUNTIME_MODULE}/Makefile.include": "riot_runtime.Makefile.include.j2",
    }
    loader = jinja2.FileSystemLoader(str(resources.files("tinysplit.templates") / "c"))
    env = jinja2.Environment(loader=loader, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    written = []
    for name, template in files.items():
        path = c_dir / "riot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(env.get_template(template).render(context))
        written.append(path)
    return written


def emit_riot_app(
    c_dir: Path,
    prefix: str,
    model_id: str,
    model_version: int,
    device: Graph,
    cut: list[dict[str, Any]],
    arena_bytes: int,
) -> list[Path]:
    """The RIOT application of a split deployment (templates/riot) in c_dir, beside what emit_c wrote:
    Makefile, main.c (run the head, seal, POST with gcoap), README.md, and the runtime as a module with
    the device side of the wire format."""
    if list(device.outputs) != [t["name"] for t in cut]:
        raise ValueError(f"the head's outputs {device.outputs} are not the cut {[t['name'] for t in cut]}")
    x = device.tensors[device.inputs[0]]
    noise = any(n.op == "noise" for n in device.nodes())
    context = {
        "prefix": prefix,
        "model_id": model_id,
        "model_version": model_version,
        "input_ctype": "int8_t" if x.dtype == "int8" else "float",
        "input_size": x.size,
        "cut": [{**t, "size": int(np.prod(t["shape"]))} for t in cut],
        "arena_bytes": arena_bytes,
        "noise": noise,
    }
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(resources.files("tinysplit.templates") / "riot")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    written = []
    for template, name in (("Makefile.j2", "Makefile"), ("main.c.j2", "main.c"), ("README.md.j2", "README.md"),
                           ("runtime.Makefile.j2", "runtime/Makefile")):  # fmt: skip
        path = c_dir / name
        path.write_text(env.get_template(template).render(context))
        written.append(path)
    runtime_c = Path(str(resources.files("tinysplit.runtime_c")))
    wire = [runtime_c / "wire" / f for f in ("wire.c", "aead_riot.c")]
    wire += [runtime_c / "platform" / "random" / "random_riot.c"] if noise else []
    for source in wire:
        target = c_dir / "runtime" / "wire" / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        written.append(target)
    return written
