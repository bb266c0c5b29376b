"""tinysplit's generated C on the host beside onnxruntime (and Apache TVM, when installed), in one run.

    .venv/bin/python bench/host_vs_onnxruntime.py [--model NAME ...] [--rounds 15] [--cflags "-O2"] [--no-tvm]

For each model in ../shared/models (absent ones are skipped with a message):
- tinysplit: the model compiled for target host, the generated C built with the host gcc
  (`-std=c99 -O2` by default) and templates/harness/host_timing_main.c.j2, which runs it N times
  between two clock_gettime(CLOCK_MONOTONIC) reads in one process;
- onnxruntime: an InferenceSession on the original ONNX file, intra_op_num_threads=1,
  inter_op_num_threads=1, sequential execution, default graph optimizations, N session.run calls
  timed with time.perf_counter_ns (Python call overhead included, a few microseconds a call);
- TVM (with the `bench` extra, `pip install -e .[bench]`): the ONNX file imported with
  tvm.relax.frontend.onnx and built with tvm.compile for the host CPU (`llvm`, no tuning:
  TVM's default schedules), run by the Relax VM on one thread (TVM_NUM_THREADS=1).
All get the same seeded random input. Outputs are checked first: the C against the reference
interpreter (int8 bit for bit) and everything against onnxruntime (int8: quantization steps).
Then `--rounds` rounds, each running every runtime for about `--seconds` seconds in rotating
order, so that a noisy neighbour hits all of them alike. Reported: the median over rounds of the
time per inference, and ratios runtime / tinysplit (above 1: tinysplit is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TVM_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import onnx
import onnxruntime as ort

from tinysplit.backends.c import emit_c
from tinysplit.compiler import reference
from tinysplit.compiler.bench import (
    SHARED_MODELS,
    Runner,
    build_host_timer,
    compare_outputs,
    interleaved_medians,
    io_specs,
    random_inputs,
    runtime_digest,
)
from tinysplit.compiler.pipeline import CompileOptions, build_graph

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = list(SHARED_MODELS)


def ort_runner(path: Path, inputs: list[np.ndarray]) -> tuple[Runner, list[np.ndarray], dict[str, np.ndarray]]:
    """The session on one thread, its outputs, and the feeds (the inputs in its shapes, batch 1)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {
        meta.name: x.reshape([d if isinstance(d, int) else 1 for d in meta.shape])
        for meta, x in zip(session.get_inputs(), inputs, strict=True)
    }
    outputs = [np.asarray(o) for o in session.run(None, feeds)]

    def run(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            session.run(None, feeds)
        return (time.perf_counter_ns() - start) / 1e9 / n

    return run, outputs, feeds


def tvm_runner(path: Path, feeds: dict[str, np.ndarray], target: str) -> tuple[Runner, list[np.ndarray], float]:
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    start = time.perf_counter()
    shapes = {k: list(v.shape) for k, v in feeds.items()}
    dtypes = {k: str(v.dtype) for k, v in feeds.items()}
    mod = from_onnx(onnx.load(path), shape_dict=shapes, dtype_dict=dtypes, keep_params_in_input=False)
    spec = json.loads(target) if target.lstrip().startswith("{") else target
    vm = relax.VirtualMachine(tvm.compile(mod, target=tvm.target.Target(spec)), tvm.cpu())
    build_seconds = time.perf_counter() - start
    main = vm["main"]
    args = [tvm.runtime.tensor(v) for v in feeds.values()]
    out = main(*args)
    outputs = [np.asarray(o.numpy()) for o in (out if isinstance(out, tvm.ir.Array | list | tuple) else [out])]

    def run(n: int) -> float:
        begin = time.perf_counter_ns()
        for _ in range(n):
            main(*args)
        return (time.perf_counter_ns() - begin) / 1e9 / n

    return run, outputs, build_seconds


def versus_ort(got: list[np.ndarray], ort_out: list[np.ndarray]) -> str:
    """Largest difference from onnxruntime: quantization steps for int8, relative for float."""
    worst = 0.0
    for g, o in zip(got, ort_out, strict=True):
        g, o = np.asarray(g).reshape(-1), np.asarray(o).reshape(-1)
        diff = float(np.abs(g.astype(np.float64) - o.astype(np.float64)).max())
        worst = max(worst, diff if o.dtype.kind != "f" else diff / max(float(np.abs(o).max()), 1e-12))
    kind = "f" if ort_out[0].dtype.kind == "f" else "i"
    return f"{worst:.0f} step(s)" if kind == "i" else f"{worst:.1e} rel"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="file name in ../shared/models (default: all six)")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--seconds", type=float, default=0.1, help="per runtime and round")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cflags", default="-O2", help="host compiler flags of the generated C")
    parser.add_argument("--no-tvm", action="store_true")
    parser.add_argument("--tvm-target", default="llvm", help='a TVM target: "llvm" or a JSON dict')
    args = parser.parse_args()

    use_tvm = not args.no_tvm
    if use_tvm:
        try:
            import tvm  # noqa: F401
        except ImportError:
            print("TVM not installed (pip install -e .[bench]): onnxruntime only", file=sys.stderr)
            use_tvm = False

    rows = []
    digests: set[str] = set()
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="tinysplit-host-") as tmp:
        for name in args.model or MODELS:
            path = SHARED / name
            if not path.exists():
                print(f"skipping {name}: not in {SHARED}", file=sys.stderr)
                continue
            graph, _ = build_graph(path, CompileOptions(target="host"))
            inputs = random_inputs(graph, args.seed)
            work = Path(tmp) / path.stem
            emit_c(graph, work / "c")
            timer = build_host_timer(
                work / "c",
                inputs,
                io_specs(graph, graph.inputs),
                io_specs(graph, graph.outputs),
                work / "build",
                cflags=args.cflags.split(),
            )
            runners: dict[str, Runner] = {"tinysplit": timer.run}
            timer.run(1)
            c_out = timer.outputs()
            expected = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
            check = compare_outputs(c_out, [expected[n] for n in graph.outputs])

            runners["onnxruntime"], ort_out, feeds = ort_runner(path, inputs)
            notes = [f"C vs reference {check}", f"C vs ORT {versus_ort(c_out, ort_out)}"]
            if use_tvm:
                runners["tvm"], tvm_out, seconds = tvm_runner(path, feeds, args.tvm_target)
                notes += [f"TVM vs ORT {versus_ort(tvm_out, ort_out)}", f"TVM build {seconds:.1f} s"]

            medians = interleaved_medians(runners, args.rounds, args.seconds)
            rows.append((name, medians, notes, check.ok))
            digests.add(runtime_digest(work / "c" / "runtime"))
            print(f"{name}: " + "; ".join(notes), file=sys.stderr, flush=True)

    if not rows:
        print("nothing measured", file=sys.stderr)
        return 1
    tvm_cols = use_tvm
    head = f"{'model':<26} {'tinysplit µs':>12} {'onnxruntime µs':>14} {'ORT/ts':>7}"
    head += f" {'TVM µs':>9} {'TVM/ts':>7}" if tvm_cols else ""
    print(
        f"host: median time per inference over {args.rounds} interleaved rounds, one thread; generated C built "
        f"with gcc -std=c99 {args.cflags}; ratio > 1: tinysplit is faster"
        + (f"; TVM untuned, target {args.tvm_target}" if tvm_cols else "")
        + f"; runtime {', '.join(sorted(digests))}; started {started}"
    )
    print(head)
    print("-" * len(head))
    for name, m, _, _ in rows:
        line = f"{name.removesuffix('.onnx'):<26} {m['tinysplit'] * 1e6:>12.1f} {m['onnxruntime'] * 1e6:>14.1f}"
        line += f" {m['onnxruntime'] / m['tinysplit']:>7.2f}"
        if tvm_cols:
            line += f" {m['tvm'] * 1e6:>9.1f} {m['tvm'] / m['tinysplit']:>7.2f}"
        print(line)
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
