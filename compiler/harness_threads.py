"""Build a multi-core model (backends/c_multicore.py) with a POSIX-threads host harness and run it.

`build_host_threads` compiles the model once (host gcc, C99, -Wall -Wextra -Werror -pedantic, as
compiler.harness.run_host); `run_threads` runs that program with any number of threads up to the
model's MAX_CORES and returns the outputs and the time per inference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinysplit.compiler.harness import _WARNINGS, HarnessError, IOSpec, _check_io, _model_sources, _run, _templates


def build_host_threads(
    c_dir: Path,
    input_specs: Sequence[IOSpec],
    output_specs: Sequence[IOSpec],
    workdir: Path,
    prefix: str = "model",
    *,
    cc: str = "gcc",
    extra_cflags: Sequence[str] = (),
    timeout: float = 180.0,
) -> Path:
    """Compile the generated multi-core model with the threads harness; return the program."""
    c_dir, workdir = Path(c_dir).resolve(), Path(workdir).resolve()
    model_c, runtime = _model_sources(c_dir)
    workdir.mkdir(parents=True, exist_ok=True)
    main_c = workdir / "host_threads_main.c"
    main_c.write_text(
        _templates()
        .get_template("host_threads_main.c.j2")
        .render(
            prefix=prefix,
            PREFIX=prefix.upper(),
            inputs=[{"index": i, "ctype": s.ctype, "size": s.size} for i, s in enumerate(input_specs)],
            outputs=[{"index": i, "ctype": s.ctype, "size": s.size} for i, s in enumerate(output_specs)],
        ),
        encoding="utf-8",
    )
    app = workdir / "host_threads"
    include = ["-I", str(c_dir), "-I", str(c_dir / "runtime" / "include")]
    cmd = [cc, "-std=c99", "-O2", *_WARNINGS, *include, *extra_cflags, str(model_c), *map(str, runtime)]
    _run([*cmd, str(main_c), "-o", str(app), "-pthread", "-lm"], "host threads build", timeout)
    return app


def run_threads(
    app: Path,
    inputs: Sequence[np.ndarray],
    input_specs: Sequence[IOSpec],
    output_specs: Sequence[IOSpec],
    threads: int,
    iterations: int = 1,
    timeout: float = 120.0,
) -> tuple[list[np.ndarray], float]:
    """Run `iterations` inferences on `threads` threads; (outputs of the last, seconds per inference)."""
    arrays = _check_io(inputs, input_specs, output_specs)
    workdir = app.parent
    in_paths = [workdir / f"input{i}.bin" for i in range(len(arrays))]
    out_paths = [workdir / f"output{i}.bin" for i in range(len(output_specs))]
    for path, a in zip(in_paths, arrays, strict=True):
        path.write_bytes(a.tobytes())
    for path in out_paths:
        path.unlink(missing_ok=True)
    log = _run([app, str(threads), str(iterations), *in_paths, *out_paths], "host threads run", timeout, cwd=workdir)
    found = re.search(r"TS_HOST_NS (\d+) (\d+)", log)
    if found is None:
        raise HarnessError(f"host threads run printed no timing:\n{log[-2000:]}")
    outputs = []
    for path, spec in zip(out_paths, output_specs, strict=True):
        outputs.append(np.frombuffer(path.read_bytes(), dtype=spec.dtype).copy())
    return outputs, int(found.group(1)) / 1e9 / int(found.group(2))
