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

from tinysplit.compiler.harness import (
    HarnessError,
    IOSpec,
    build_host_program,
    check_io,
    io_files,
    read_outputs,
    run_tool,
)


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
    return build_host_program(
        c_dir, "host_threads_main.c.j2", input_specs, output_specs, workdir, prefix,
        cc=cc, cflags=["-O2", *extra_cflags], libs=["-pthread", "-lm"], timeout=timeout,
    )  # fmt: skip


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
    workdir = app.parent
    in_paths, out_paths = io_files(workdir, check_io(inputs, input_specs, output_specs), len(output_specs))
    log = run_tool(
        [app, str(threads), str(iterations), *in_paths, *out_paths], "host threads run", timeout, cwd=workdir
    )
    found = re.search(r"TS_HOST_NS (\d+) (\d+)", log)
    if found is None:
        raise HarnessError(f"host threads run printed no timing:\n{log[-2000:]}")
    outputs = read_outputs(out_paths, output_specs, "host threads run")
    return outputs, int(found.group(1)) / 1e9 / int(found.group(2))
