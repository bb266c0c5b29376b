"""Build a generated Rust crate's host runner (examples/host.rs of backends/rust.py) and run it: the
Rust counterpart of compiler/harness_threads.py.

`build_rust_host` builds the runner once (`cargo build --release --locked`: the crate's profile, LTO,
the pinned dependency versions) and copies it out of cargo's target directory; `run_rust_host` runs
it on inputs, on any number of threads up to the crate's MAX_CORES for a multi-core crate
(backends/rust.py with max_cores > 1), and returns the outputs and the time per inference. Cargo builds share
one target directory (CARGO_TARGET_DIR, else tinysplit-cargo-target in the temp dir), so the runtime
crate and its dependencies compile once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinysplit.compiler.harness import (
    HarnessError,
    IOSpec,
    ToolMissingError,
    check_io,
    io_files,
    read_outputs,
    run_tool,
)


def cargo_target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or Path(tempfile.gettempdir()) / "tinysplit-cargo-target")


def cargo_env() -> dict[str, str]:
    """The environment cargo runs in: the shared target directory, no colours in its messages."""
    return {**os.environ, "CARGO_TARGET_DIR": str(cargo_target_dir()), "CARGO_TERM_COLOR": "never"}


def build_rust_host(crate_dir: Path, workdir: Path, timeout: float = 900.0) -> Path:
    """Build the crate's host runner (release) and copy it into workdir; return its path."""
    example = f"{crate_dir.name.replace('-', '_')}_host"
    cmd = ["cargo", "build", "--release", "--locked", "--quiet", "--example", example]
    cmd += ["--manifest-path", str(crate_dir / "Cargo.toml")]
    try:
        proc = subprocess.run(cmd, env=cargo_env(), capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ToolMissingError("cargo is not installed") from exc
    if proc.returncode != 0:
        raise HarnessError(f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    workdir.mkdir(parents=True, exist_ok=True)
    app = workdir / example
    shutil.copyfile(cargo_target_dir() / "release" / "examples" / example, app)
    app.chmod(0o755)
    return app


def run_rust_host(
    app: Path,
    inputs: Sequence[np.ndarray],
    input_specs: Sequence[IOSpec],
    output_specs: Sequence[IOSpec],
    threads: int | None = None,
    iterations: int = 1,
    timeout: float = 120.0,
) -> tuple[list[np.ndarray], float]:
    """Run `iterations` inferences after a warm-up one (on `threads` threads: a multi-core crate's
    runner only); return the outputs of the last and the seconds per inference."""
    arrays = check_io(inputs, input_specs, output_specs)
    in_paths, out_paths = io_files(app.parent, arrays, len(output_specs), stem="rust_")
    options = ["--threads", str(threads)] if threads is not None else []
    log = run_tool([app, *options, "--repeat", str(iterations), *in_paths, *out_paths], "Rust host run", timeout)
    found = re.search(r"^TS_NS_PER_RUN (\d+)$", log, re.MULTILINE)
    if found is None:
        raise HarnessError(f"Rust host run printed no timing:\n{log[-2000:]}")
    return read_outputs(out_paths, output_specs, "Rust host run"), int(found.group(1)) / 1e9
