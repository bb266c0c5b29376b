"""Multi-core C and Rust on the host: ResNet-8 and DS-CNN (int8, ../shared/models) on 1 and 2 threads.

    .venv/bin/python bench/tiling_speedup.py [--rounds 15] [--iterations 100] [--threads 2] [--lang c,rust]

Each model is compiled for target host and emitted for 4 cores by backends/c_multicore.py (built
once with the POSIX-threads harness, compiler/harness_threads.py) and by backends/rust.py
(its crate's host runner, `cargo build --release`, threads from ts::ThreadPool; compiler/
harness_rust.py). Both are checked bit for bit against the reference on 1..4 threads, then timed in
`--rounds` rounds, each running every program on 1 and N threads, and N copies of it on 1 thread
side by side, in an order that rotates from round to round (a noisy neighbour hits all alike).
Printed per language: median and best time per inference, their ratios (speedup), the speedup
compiler/tiling_report.py predicts from MACs, and the most the CPUs allowed at the time: N times
the one-thread time over the side-by-side time (N on an idle machine with N free cores, less when
other work or the hypervisor takes CPU time), with the load average before and after. Absent
models are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinysplit.backends.c_multicore import emit_c_multicore
from tinysplit.backends.rust import crate_name, emit_rust
from tinysplit.compiler import reference
from tinysplit.compiler.bench import io_specs
from tinysplit.compiler.harness_rust import build_rust_host, run_rust_host
from tinysplit.compiler.harness_threads import build_host_threads, run_threads
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.compiler.tiling_report import core_plan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx"]
MAX_THREADS = 4


@dataclass
class Program:
    """A built program and how to run it: (program path, threads, iterations) -> (outputs of the
    last inference, seconds per inference)."""

    app: Path
    run: Callable[[Path, int, int], tuple[list[np.ndarray], float]]

    def __call__(self, threads: int, iterations: int) -> tuple[list[np.ndarray], float]:
        return self.run(self.app, threads, iterations)

    def side_by_side(self, copies: list[Path], iterations: int) -> float:
        """Runs these copies of the program on 1 thread each, all at once; their mean seconds per
        inference. Against one alone it tells how much parallel CPU the machine gives right now."""
        with ThreadPoolExecutor(len(copies)) as pool:
            runs = [pool.submit(self.run, app, 1, iterations) for app in copies]
            return statistics.mean(run.result()[1] for run in runs)


def c_program(graph: Graph, x: np.ndarray, work: Path) -> Program:
    ins, outs = io_specs(graph, graph.inputs), io_specs(graph, graph.outputs)
    emit_c_multicore(graph, work / "c", max_cores=MAX_THREADS)
    app = build_host_threads(work / "c", ins, outs, work / "c-build")
    return Program(app, lambda app, threads, iterations: run_threads(app, [x], ins, outs, threads, iterations))


def rust_program(graph: Graph, x: np.ndarray, work: Path) -> Program:
    ins, outs = io_specs(graph, graph.inputs), io_specs(graph, graph.outputs)
    emit_rust(graph, work / "rust", max_cores=MAX_THREADS)
    app = build_rust_host(work / "rust" / crate_name("model"), work / "rust-build")
    return Program(app, lambda app, threads, iterations: run_rust_host(app, [x], ins, outs, threads, iterations))


def copies(app: Path, n: int) -> list[Path]:
    """`app` and n - 1 copies of it, each in a folder of its own (a run writes its files beside it)."""
    paths = [app]
    for k in range(1, n):
        folder = app.parent.with_name(f"{app.parent.name}-copy{k}")
        folder.mkdir(exist_ok=True)
        paths.append(Path(shutil.copy2(app, folder / app.name)))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lang", default="c,rust", help="comma-separated: c, rust")
    args = parser.parse_args()
    langs = [lang for lang in ("c", "rust") if lang in args.lang.split(",")]
    n = args.threads
    print(f"host CPUs: {os.cpu_count()}, load average (1, 5, 15 min): {os.getloadavg()}")
    for name in MODELS:
        if not (SHARED / name).exists():
            print(f"{name}: skipped, not in {SHARED}")
            continue
        graph, _ = build_graph(SHARED / name, CompileOptions(target="host"))
        x = np.random.default_rng(0).integers(-128, 128, size=graph.tensors[graph.inputs[0]].shape, dtype=np.int8)
        want = reference.run(graph, {graph.inputs[0]: x})[graph.outputs[0]].reshape(-1)
        with tempfile.TemporaryDirectory() as tmp:
            makers = {"c": c_program, "rust": rust_program}
            programs = {lang: makers[lang](graph, x, Path(tmp)) for lang in langs}
            twins = {lang: copies(program.app, n) for lang, program in programs.items()}
            for lang, program in programs.items():
                for threads in range(1, MAX_THREADS + 1):
                    got = program(threads, 1)[0][0]
                    assert np.array_equal(got, want), f"{name} ({lang}): {threads} threads differ from the reference"
            # per language: 1 thread, N threads, N one-thread runs side by side
            runs = [(lang, kind) for lang in programs for kind in ("one", "many", "side by side")]
            times: dict[tuple[str, str], list[float]] = {run: [] for run in runs}
            for r in range(args.rounds):
                for lang, kind in runs[r % len(runs) :] + runs[: r % len(runs)]:
                    program = programs[lang]
                    if kind == "side by side":
                        times[lang, kind].append(program.side_by_side(twins[lang], args.iterations))
                    else:
                        times[lang, kind].append(program(1 if kind == "one" else n, args.iterations)[1])
        predicted = core_plan(graph, n)[1]
        for lang in programs:
            one, many = times[lang, "one"], times[lang, "many"]
            ceiling = n * statistics.median(one) / statistics.median(times[lang, "side by side"])
            print(
                f"{name} ({lang}): 1 thread {1e6 * statistics.median(one):.0f} us (best {1e6 * min(one):.0f}), "
                f"{n} threads {1e6 * statistics.median(many):.0f} us (best {1e6 * min(many):.0f}); "
                f"speedup median {statistics.median(one) / statistics.median(many):.2f}x, "
                f"best {min(one) / min(many):.2f}x, predicted {predicted:.2f}x; {n} one-thread runs side by side "
                f"allowed {ceiling:.2f}x"
            )
        print(f"load average (1, 5, 15 min) after {name}: {os.getloadavg()}")


if __name__ == "__main__":
    main()
