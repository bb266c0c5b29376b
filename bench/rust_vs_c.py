"""Generated Rust against generated C on the host, for the same models, in one run.

    .venv/bin/python bench/rust_vs_c.py [--model NAME ...] [--rounds 15] [--seconds 0.1] [--cflags "-O2"]

For MNIST (examples/mnist/lenet5.onnx) and each model in ../shared/models (absent ones are skipped
with a message): the model compiled for target host; the C (backends/c.py) built with the host gcc
(`-std=c99 -O2` by default, as compiler.harness) and the timing driver of compiler.bench; the Rust
crate (backends/rust.py) built with `cargo build --release` (the crate's profile: opt-level 3, LTO,
one codegen unit, panic = abort) and its host runner (`--repeat N`). Each program runs the model N
times in one process after one warm-up run. Outputs are checked first (int8: Rust, C and the
reference bit for bit; float32: Rust within 1e-5 relative of C). Then `--rounds` rounds, each
running both for about `--seconds` seconds in alternating order, so that a noisy neighbour hits
both alike. Reported: the median time per inference over rounds and the ratio Rust / C (below 1:
Rust is faster).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysplit.backends.c import emit_c
from tinysplit.backends.rust import crate_name, emit_rust
from tinysplit.compiler import reference
from tinysplit.compiler.bench import (
    SHARED_MODELS,
    Runner,
    build_host_timer,
    interleaved_medians,
    io_specs,
    random_inputs,
)
from tinysplit.compiler.pipeline import CompileOptions, build_graph

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = [
    ROOT / "examples" / "mnist" / "lenet5.onnx",
    *(SHARED / name for name in SHARED_MODELS),
]


@dataclass
class RustTimer:
    """A generated crate's host runner, inputs written to files."""

    exe: Path
    input_paths: list[Path]
    output_paths: list[Path]

    def run(self, iterations: int) -> float:
        """Runs the model `iterations` times (after one warm-up run) in one process; seconds per run."""
        cmd: list[str | Path] = [self.exe, "--repeat", str(iterations), *self.input_paths, *self.output_paths]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        m = re.search(r"^TS_NS_PER_RUN (\d+)$", proc.stdout, re.MULTILINE)
        if m is None:
            raise RuntimeError(f"no TS_NS_PER_RUN line from {self.exe}: {proc.stdout}{proc.stderr}")
        return int(m.group(1)) / 1e9


def build_rust_timer(crate_dir: Path, inputs: list[np.ndarray], n_outputs: int, work: Path) -> RustTimer:
    """Build the crate's host runner (release) and copy it out of the shared target directory."""
    target = Path(os.environ.get("CARGO_TARGET_DIR", Path(tempfile.gettempdir()) / "tinysplit-cargo-target"))
    example = f"{crate_dir.name.replace('-', '_')}_host"
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--example", example, "--manifest-path", crate_dir / "Cargo.toml"],
        env={**os.environ, "CARGO_TARGET_DIR": str(target)},
        check=True,
    )
    exe = work / example
    shutil.copyfile(target / "release" / "examples" / example, exe)
    exe.chmod(0o755)
    ins = [work / f"rust_input{i}.bin" for i in range(len(inputs))]
    for path, x in zip(ins, inputs, strict=True):
        path.write_bytes(np.ascontiguousarray(x).tobytes())
    return RustTimer(exe, ins, [work / f"rust_output{i}.bin" for i in range(n_outputs)])


def check(graph_outputs: list[str], dtypes: list[str], rust: list[np.ndarray], c: list[np.ndarray],
          ref: dict[str, np.ndarray]) -> str:  # fmt: skip
    notes = []
    for name, dtype, r, cc in zip(graph_outputs, dtypes, rust, c, strict=True):
        if dtype == "int8":
            same = np.array_equal(r, cc) and np.array_equal(r, ref[name].reshape(-1))
            notes.append("bit-exact (Rust = C = reference)" if same else "MISMATCH")
        else:
            err = float(np.abs(r.astype(np.float64) - cc).max()) / max(float(np.abs(cc).max()), 1e-30)
            notes.append(f"Rust vs C {err:.1e} rel" + ("" if err <= 1e-5 else " MISMATCH"))
    return "; ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="file name of a model (default: MNIST and the six shared)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.1, help="per language and round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cflags", default="-O2", help="host compiler flags of the generated C")
    args = parser.parse_args()

    models = [m for m in MODELS if args.model is None or m.name in args.model]
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinysplit-rust-vs-c-") as tmp:
        for path in models:
            if not path.exists():
                print(f"skipping {path.name}: not in {path.parent}", file=sys.stderr)
                continue
            graph, _ = build_graph(path, CompileOptions(target="host"))
            inputs = random_inputs(graph, args.seed)
            work = Path(tmp) / path.stem
            prefix = re.sub(r"[^a-z0-9]+", "_", path.stem.lower())
            emit_c(graph, work / "c")
            emit_rust(graph, work / "rust", prefix)
            c_timer = build_host_timer(
                work / "c",
                inputs,
                io_specs(graph, graph.inputs),
                io_specs(graph, graph.outputs),
                work / "c-build",
                cflags=args.cflags.split(),
            )
            rust = build_rust_timer(work / "rust" / crate_name(prefix), inputs, len(graph.outputs), work)
            runners: dict[str, Runner] = {"c": c_timer.run, "rust": rust.run}
            for run in runners.values():
                run(1)
            dtypes = [graph.tensors[n].dtype for n in graph.outputs]
            rust_out = [
                np.fromfile(p, dtype=np.int8 if d == "int8" else np.float32)
                for p, d in zip(rust.output_paths, dtypes, strict=True)
            ]
            ref = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
            note = check(graph.outputs, dtypes, rust_out, c_timer.outputs(), ref)
            print(f"{path.name}: {note}", file=sys.stderr, flush=True)

            medians = interleaved_medians(runners, args.rounds, args.seconds)
            rows.append((path.stem, medians, "MISMATCH" not in note))

    if not rows:
        print("nothing measured", file=sys.stderr)
        return 1
    print(
        f"host: median time per inference over {args.rounds} interleaved rounds, one thread; C built with gcc "
        f"-std=c99 {args.cflags}, Rust with cargo --release (opt-level 3, LTO); ratio < 1: Rust is faster"
    )
    head = f"{'model':<26} {'C µs':>10} {'Rust µs':>10} {'Rust/C':>7}"
    print(head)
    print("-" * len(head))
    for name, m, _ in rows:
        print(f"{name:<26} {m['c'] * 1e6:>10.1f} {m['rust'] * 1e6:>10.1f} {m['rust'] / m['c']:>7.2f}")
    ratios = [m["rust"] / m["c"] for _, m, _ in rows]
    print(f"{'geometric mean':<26} {'':>10} {'':>10} {float(np.exp(np.mean(np.log(ratios)))):>7.2f}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
