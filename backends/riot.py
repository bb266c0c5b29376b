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

from importlib import resources
from pathlib import Path

import jinja2

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
