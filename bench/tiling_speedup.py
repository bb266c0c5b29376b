"""Multi-core C on the host: ResNet-8 and DS-CNN (int8, ../shared/models) on 1 and 2 threads.

    .venv/bin/python bench/tiling_speedup.py [--rounds 15] [--iterations 100] [--threads 2]

Each model is compiled for target host and emitted by backends/c_multicore.py, built once with the
POSIX-threads harness (compiler/harness_threads.py), checked bit for bit against the reference on
1..4 threads, then timed in `--rounds` rounds, each running 1 and N threads alternately (a noisy
neighbour hits both alike). Printed: median and best time per inference, their ratios (speedup),
and the speedup compiler/tiling_report.py predicts from MACs. Absent models are skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from tinysplit.backends.c import CTYPES
from tinysplit.backends.c_multicore import emit_c_multicore
from tinysplit.compiler import reference
from tinysplit.compiler.harness import IOSpec
from tinysplit.compiler.harness_threads import build_host_threads, run_threads
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.compiler.tiling_report import core_plan

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = ["resnet8_cifar10_int8.onnx", "dscnn_kws_int8.onnx"]


def specs(graph: Graph, names: list[str]) -> list[IOSpec]:
    return [IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size) for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    print(f"host CPUs: {os.cpu_count()}, load average: {os.getloadavg()[0]:.2f}")
    for name in MODELS:
        if not (SHARED / name).exists():
            print(f"{name}: skipped, not in {SHARED}")
            continue
        graph, _ = build_graph(SHARED / name, CompileOptions(target="host"))
        ins, outs = specs(graph, graph.inputs), specs(graph, graph.outputs)
        x = np.random.default_rng(0).integers(-128, 128, size=graph.tensors[graph.inputs[0]].shape, dtype=np.int8)
        want = reference.run(graph, {graph.inputs[0]: x})[graph.outputs[0]].reshape(-1)
        with tempfile.TemporaryDirectory() as tmp:
            emit_c_multicore(graph, Path(tmp) / "c")
            app = build_host_threads(Path(tmp) / "c", ins, outs, Path(tmp) / "build")
            for n in range(1, 5):
                got = run_threads(app, [x], ins, outs, n)[0][0]
                assert np.array_equal(got, want), f"{name}: {n} threads differ from the reference"
            times: dict[int, list[float]] = {1: [], args.threads: []}
            for _ in range(args.rounds):
                for n in times:
                    times[n].append(run_threads(app, [x], ins, outs, n, args.iterations)[1])
        one, many = times[1], times[args.threads]
        predicted = core_plan(graph, args.threads)[1]
        print(
            f"{name}: 1 thread {1e6 * statistics.median(one):.0f} us (best {1e6 * min(one):.0f}), "
            f"{args.threads} threads {1e6 * statistics.median(many):.0f} us (best {1e6 * min(many):.0f}); "
            f"speedup median {statistics.median(one) / statistics.median(many):.2f}x, "
            f"best {min(one) / min(many):.2f}x, predicted {predicted:.2f}x"
        )


if __name__ == "__main__":
    main()
