"""Benchmarks of the generated C: an emulated microcontroller run, and a timed host build.

:func:`bench_model` compiles a model for a target (``pipeline.build_graph`` + ``emit_c``), runs it
once on the target's emulator (``harness.run_emulated``, QEMU with ``-icount shift=0``) on seeded
random inputs, checks the outputs against the reference interpreter (int8 bit for bit, float32
within :data:`FLOAT_TOLERANCE`), and returns per-layer and total *emulated instructions* (not
cycles), instructions per MAC, flash, RAM and stack, for the whole image and for the model's own
part (``model.o`` and the runtime sources). :func:`bench_cli` is the ``tinysplit bench`` command.

:func:`build_host_timer` / :func:`time_host` build the same C for the host (``-O2``) with a driver
that runs the model N times between two ``clock_gettime`` reads: bench/host_vs_onnxruntime.py
interleaves it with onnxruntime.
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.lower import lower
from tinysplit.compiler import reference
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.harness import (
    ARCHES,
    HarnessError,
    IOSpec,
    SectionSizes,
    ToolMissingError,
    build_host_program,
    check_io,
    run_emulated,
    run_tool,
)
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.pipeline import CompileOptions, build_graph
from tinysplit.compiler.stats import graph_stats
from tinysplit.compiler.targets import available_targets, load_target

__all__ = [
    "FLOAT_TOLERANCE",
    "SHARED_MODELS",
    "BenchResult",
    "HostTimer",
    "LayerRow",
    "OutputCheck",
    "OutputMismatchError",
    "Runner",
    "bench_cli",
    "bench_model",
    "build_host_timer",
    "compare_outputs",
    "format_table",
    "interleaved_medians",
    "io_specs",
    "random_inputs",
    "runtime_digest",
    "time_host",
]

FLOAT_TOLERANCE = 1e-4  # float32 outputs: max |got - reference| <= this * max |reference|
_NAME_WIDTH = 44


class OutputMismatchError(RuntimeError):
    """The emulated outputs differ from the reference interpreter; ``result`` holds the measurement."""

    def __init__(self, result: BenchResult) -> None:
        super().__init__(f"{result.model} on {result.arch}: outputs differ from the reference ({result.check})")
        self.result = result


@dataclass(frozen=True)
class OutputCheck:
    """Generated outputs against the reference: int8 must be equal, float32 within ``tolerance``."""

    exact: bool  # every output equal bit for bit
    max_abs_error: float
    tolerance: float  # allowed max_abs_error (0 for int8)

    @property
    def ok(self) -> bool:
        return self.exact or self.max_abs_error <= self.tolerance

    def __str__(self) -> str:
        if self.exact:
            return "bit-exact"
        return f"max |error| {self.max_abs_error:.3g} (allowed {self.tolerance:.3g}){'' if self.ok else ': MISMATCH'}"


@dataclass(frozen=True)
class LayerRow:
    index: int
    name: str
    op: str
    kernel: str  # the runtime function that ran it ("" when it moves no data)
    macs: int
    instructions: int

    @property
    def instructions_per_mac(self) -> float | None:
        return self.instructions / self.macs if self.macs else None


@dataclass(frozen=True)
class BenchResult:
    """One emulated inference of a compiled model. Instructions are emulated instructions.

    Flash is text + rodata + data; RAM is data + bss plus stack. For the whole image (``image``:
    start-up code, harness, C library and model) the stack is the high-water mark from the top of
    the stack over the whole program (``stack_peak_bytes``); for the model's part (``model_sizes``:
    ``model.o`` and the runtime sources) it is what the inference used below its caller
    (``stack_bytes``)."""

    model: str
    target: str
    arch: str
    seed: int
    measured_at: str  # UTC, ISO 8601
    runtime_digest: str  # SHA-256 prefix of the runtime C sources measured
    layers: list[LayerRow]
    total_instructions: int
    weight_bytes: int  # constant tensors of the graph
    arena_bytes: int  # planned activation arena
    image: SectionSizes
    model_sizes: SectionSizes
    stack_bytes: int
    stack_peak_bytes: int
    check: OutputCheck

    @property
    def macs(self) -> int:
        return sum(r.macs for r in self.layers)

    @property
    def layer_instructions(self) -> int:
        return sum(r.instructions for r in self.layers)

    @property
    def instructions_per_mac(self) -> float | None:
        return self.total_instructions / self.macs if self.macs else None

    @property
    def flash_bytes(self) -> int:
        return self.image.flash

    @property
    def ram_bytes(self) -> int:
        return self.image.ram + self.stack_peak_bytes

    @property
    def model_flash_bytes(self) -> int:
        return self.model_sizes.flash

    @property
    def model_ram_bytes(self) -> int:
        return self.model_sizes.ram + self.stack_bytes

    def as_dict(self) -> dict[str, Any]:
        def sizes(s: SectionSizes) -> dict[str, int]:
            return {"text": s.text, "rodata": s.rodata, "data": s.data, "bss": s.bss, "flash": s.flash}

        return {
            "model": self.model,
            "target": self.target,
            "arch": self.arch,
            "seed": self.seed,
            "measured_at": self.measured_at,
            "runtime_digest": self.runtime_digest,
            "unit": "emulated instructions",
            "total_instructions": self.total_instructions,
            "layer_instructions": self.layer_instructions,
            "macs": self.macs,
            "instructions_per_mac": self.instructions_per_mac,
            "weight_bytes": self.weight_bytes,
            "arena_bytes": self.arena_bytes,
            "image": sizes(self.image) | {"ram": self.ram_bytes, "stack_peak": self.stack_peak_bytes},
            "model_only": sizes(self.model_sizes) | {"ram": self.model_ram_bytes, "stack": self.stack_bytes},
            "check": {
                "ok": self.check.ok,
                "exact": self.check.exact,
                "max_abs_error": self.check.max_abs_error,
                "tolerance": self.check.tolerance,
            },
            "layers": [
                {
                    "index": r.index,
                    "name": r.name,
                    "op": r.op,
                    "kernel": r.kernel,
                    "macs": r.macs,
                    "instructions": r.instructions,
                    "instructions_per_mac": r.instructions_per_mac,
                }
                for r in self.layers
            ],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2) + "\n"


# ---------------------------------------------------------------------------------------- helpers

# The MLPerf Tiny models of ../shared/models that every benchmark measures.
SHARED_MODELS = (
    "resnet8_cifar10_int8.onnx",
    "dscnn_kws_int8.onnx",
    "ad01_toycar_int8.onnx",
    "resnet8_cifar10_f32.onnx",
    "dscnn_kws_f32.onnx",
    "ad01_toycar_f32.onnx",
)

Runner = Callable[[int], float]  # iterations -> seconds per inference


def interleaved_medians(runners: dict[str, Runner], rounds: int, seconds: float) -> dict[str, float]:
    """Median seconds per inference of each runner over `rounds` rounds, the runners taking turns (each
    round starts with the next one) so that a noisy machine slows all of them alike; each sample runs
    for about `seconds`."""
    counts = {k: max(1, round(seconds / max(run(1), 1e-7))) for k, run in runners.items()}
    samples: dict[str, list[float]] = {k: [] for k in runners}
    order = list(runners)
    for r in range(rounds):
        for k in order[r % len(order) :] + order[: r % len(order)]:
            samples[k].append(runners[k](counts[k]))
    return {k: statistics.median(v) for k, v in samples.items()}


def io_specs(graph: Graph, names: Sequence[str]) -> list[IOSpec]:
    """How the generated C sees these graph inputs or outputs."""
    return [IOSpec(n, CTYPES[graph.tensors[n].dtype], graph.tensors[n].size) for n in names]


def random_inputs(graph: Graph, seed: int) -> list[np.ndarray]:
    """Seeded inputs: int8 uniform over its whole range, float32 standard normal."""
    rng = np.random.default_rng(seed)
    feeds = []
    for name in graph.inputs:
        t = graph.tensors[name]
        if t.dtype == "int8":
            feeds.append(rng.integers(-128, 128, size=t.shape, dtype=np.int8))
        else:
            feeds.append(rng.standard_normal(t.shape).astype(np.float32))
    return feeds


def compare_outputs(got: Sequence[np.ndarray], expected: Sequence[np.ndarray]) -> OutputCheck:
    """int8 outputs must match exactly; float32 within FLOAT_TOLERANCE of the largest |expected|."""
    exact, worst, tolerance = True, 0.0, 0.0
    for g, e in zip(got, expected, strict=True):
        g, e = np.asarray(g).reshape(-1), np.asarray(e).reshape(-1)
        if g.shape != e.shape:
            return OutputCheck(False, float("inf"), 0.0)
        exact = exact and g.tobytes() == e.astype(g.dtype).tobytes()
        diff = np.abs(g.astype(np.float64) - e.astype(np.float64))
        worst = max(worst, float(diff.max(initial=0.0)) if not np.isnan(diff).any() else float("inf"))
        if e.dtype.kind == "f":
            tolerance = max(tolerance, FLOAT_TOLERANCE * max(float(np.abs(e).max(initial=0.0)), 1e-12))
    return OutputCheck(exact, worst, tolerance)


def runtime_digest(runtime_dir: Path) -> str:
    """SHA-256 prefix of a runtime source folder: names the kernels a figure measured."""
    h = hashlib.sha256()
    for path in sorted(runtime_dir.rglob("*")):
        if path.is_file():
            h.update(path.relative_to(runtime_dir).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:12]


def _emulator_of(target: str, arch: str | None) -> str:
    t = load_target(target)
    if t.emulator is None:
        emulated = [n for n in available_targets() if load_target(n).emulator]
        raise CompileError(
            f"target {target!r} has no emulator, so it cannot be benchmarked; "
            f"targets with one: {', '.join(f'{n} ({load_target(n).emulator})' for n in emulated)}"
        )
    chosen = arch or t.emulator
    if chosen not in ARCHES:
        raise CompileError(f"unknown arch {chosen!r}; choose one of {', '.join(sorted(ARCHES))}")
    return chosen


# ---------------------------------------------------------------------------------------- emulated


def bench_model(
    model_path: str | Path,
    target: str = "stm32",
    arch: str | None = None,
    workdir: Path | None = None,
    seed: int = 0,
    *,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    strict: bool = True,
    timeout: float = 600.0,
    weights: str = "auto",
) -> BenchResult:
    """Compiles ``model_path`` for ``target``, runs it once on the emulator of ``arch`` (default: the
    target's ``emulator``) and measures it; ``workdir`` keeps the build (default: a temporary folder).

    Raises :class:`CompileError` for a target without an emulator or bad input,
    :class:`~tinysplit.compiler.harness.ToolMissingError` without the cross compiler or QEMU, and
    :class:`OutputMismatchError` (with the measurement) when ``strict`` and the outputs differ from
    the reference interpreter."""
    model_path = Path(model_path)
    chosen = _emulator_of(target, arch)
    graph, _ = build_graph(model_path, CompileOptions(target=target, input_shapes=input_shapes, weights=weights))
    inputs = random_inputs(graph, seed)
    with tempfile.TemporaryDirectory(prefix="tinysplit-bench-") as tmp:
        root = Path(workdir) if workdir is not None else Path(tmp)
        emit_c(graph, root / "c")
        run = run_emulated(
            root / "c",
            inputs,
            io_specs(graph, graph.inputs),
            io_specs(graph, graph.outputs),
            root / "build",
            arch=chosen,
            timeout=timeout,
        )
        digest = runtime_digest(root / "c" / "runtime")
    expected = reference.run(graph, dict(zip(graph.inputs, inputs, strict=True)))
    stats = graph_stats(graph)
    if len(run.layer_instructions) != len(stats):
        raise HarnessError(f"{len(run.layer_instructions)} layer counts for {len(stats)} layers")
    plan = graph.metadata.get("memory")
    result = BenchResult(
        model=model_path.name,
        target=target,
        arch=chosen,
        seed=seed,
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        runtime_digest=digest,
        layers=[
            LayerRow(i, s.name, s.op, call.kernel, s.macs, n)
            for i, (s, call, n) in enumerate(zip(stats, lower(graph), run.layer_instructions, strict=True))
        ],
        total_instructions=run.total_instructions,
        weight_bytes=sum(t.nbytes for t in graph.constants()),
        arena_bytes=int(getattr(plan, "arena_bytes", 0)),
        image=run.image,
        model_sizes=run.model,
        stack_bytes=run.stack_bytes,
        stack_peak_bytes=run.stack_peak_bytes,
        check=compare_outputs(run.outputs, [expected[n] for n in graph.outputs]),
    )
    if strict and not result.check.ok:
        raise OutputMismatchError(result)
    return result


def _per_mac(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _short(name: str, width: int = _NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def format_table(result: BenchResult) -> str:
    """A per-layer table (names cut to fit; the JSON has them whole), the totals and the sizes, as text."""
    width = max([len(_short(r.name)) for r in result.layers] + [16])
    lines = [
        f"{result.model} on {result.arch} (target {result.target}), seed {result.seed}, "
        f"runtime {result.runtime_digest}, {result.measured_at}",
        f"outputs vs reference: {result.check}",
        "",
        f"{'#':>3}  {'layer':<{width}}  {'kernel':<22} {'MACs':>12} {'instructions':>14} {'instr/MAC':>9}",
    ]
    for r in result.layers:
        lines.append(
            f"{r.index:>3}  {_short(r.name):<{width}}  {r.kernel or '(none)':<22} {r.macs:>12,} {r.instructions:>14,} "
            f"{_per_mac(r.instructions_per_mac):>9}"
        )
    overhead = result.total_instructions - result.layer_instructions
    lines += [
        f"{'':>3}  {'sum of layers':<{width}}  {'':<22} {result.macs:>12,} {result.layer_instructions:>14,} "
        f"{_per_mac(result.layer_instructions / result.macs if result.macs else None):>9}",
        f"{'':>3}  {'total (run call)':<{width}}  {'':<22} {result.macs:>12,} {result.total_instructions:>14,} "
        f"{_per_mac(result.instructions_per_mac):>9}",
        f"(emulated instructions, not cycles; {overhead:,} outside the layers: hooks and calls)",
        "",
        f"{'bytes':<12} {'text':>9} {'rodata':>9} {'data':>9} {'bss':>9} {'flash':>9} {'stack':>8} {'RAM':>9}",
    ]
    for label, s, stack, ram in (
        ("whole image", result.image, result.stack_peak_bytes, result.ram_bytes),
        ("model only", result.model_sizes, result.stack_bytes, result.model_ram_bytes),
    ):
        lines.append(
            f"{label:<12} {s.text:>9,} {s.rodata:>9,} {s.data:>9,} {s.bss:>9,} {s.flash:>9,} {stack:>8,} {ram:>9,}"
        )
    lines += [
        "flash = text + rodata + data; RAM = data + bss + stack (whole image: peak over the program; model: the "
        "inference's own use)",
        f"weights {result.weight_bytes:,} B, activation arena {result.arena_bytes:,} B",
    ]
    return "\n".join(lines)


def bench_cli(
    model: Path,
    target: str = "stm32",
    arch: str | None = None,
    json_file: Path | None = None,
    seed: int = 0,
    input_shapes: dict[str, tuple[int, ...]] | None = None,
    weights: str = "auto",
) -> None:
    """``tinysplit bench``: print the table (and write the JSON); exit 1 when the outputs differ."""
    import typer

    try:
        result = bench_model(model, target, arch, seed=seed, input_shapes=input_shapes, strict=False, weights=weights)
    except ToolMissingError as e:
        raise CompileError(f"{e} (scripts/setup.sh installs the toolchains and QEMU)") from None
    typer.echo(format_table(result))
    if json_file is not None:
        json_file.write_text(result.to_json())
    if not result.check.ok:
        typer.echo(f"error: the outputs differ from the reference interpreter: {result.check}", err=True)
        raise typer.Exit(1)


# ---------------------------------------------------------------------------------------- host timing


@dataclass
class HostTimer:
    """The model built for the host with a timing driver; inputs already written to files."""

    app: Path
    input_paths: list[Path]
    output_paths: list[Path]
    output_specs: list[IOSpec]
    timeout: float = 600.0

    def run(self, iterations: int) -> float:
        """Runs the model ``iterations`` times (after one warm-up run) in one process; seconds per run."""
        out = run_tool([self.app, str(iterations), *self.input_paths, *self.output_paths], "host timing", self.timeout)
        m = re.search(r"^TS_HOST_NS (\d+) (\d+)$", out, re.MULTILINE)
        if m is None:
            raise HarnessError(f"host timing: no TS_HOST_NS line in the output:\n{out[-2000:]}")
        return int(m.group(1)) / 1e9 / int(m.group(2))

    def outputs(self) -> list[np.ndarray]:
        """The outputs of the last run."""
        return [np.fromfile(p, dtype=s.dtype) for p, s in zip(self.output_paths, self.output_specs, strict=True)]


def build_host_timer(
    c_dir: Path,
    inputs: list[np.ndarray],
    input_specs: list[IOSpec],
    output_specs: list[IOSpec],
    workdir: Path,
    prefix: str = "model",
    *,
    cc: str = "gcc",
    cflags: Sequence[str] = ("-O2",),
    timeout: float = 600.0,
) -> HostTimer:
    """Builds a generated model folder with the host compiler (C99, warnings as errors, ``cflags``)
    and templates/harness/host_timing_main.c.j2; writes the inputs for :meth:`HostTimer.run`."""
    c_dir, workdir = Path(c_dir).resolve(), Path(workdir).resolve()
    arrays = check_io(inputs, input_specs, output_specs)
    app = build_host_program(
        c_dir, "host_timing_main.c.j2", input_specs, output_specs, workdir, prefix,
        cc=cc, cflags=cflags, timeout=timeout,
    )  # fmt: skip
    in_paths = [workdir / f"input{i}.bin" for i in range(len(arrays))]
    for path, a in zip(in_paths, arrays, strict=True):
        path.write_bytes(a.tobytes())
    out_paths = [workdir / f"output{i}.bin" for i in range(len(output_specs))]
    return HostTimer(app, in_paths, out_paths, list(output_specs), timeout)


def time_host(
    c_dir: Path,
    inputs: list[np.ndarray],
    input_specs: list[IOSpec],
    output_specs: list[IOSpec],
    workdir: Path,
    prefix: str = "model",
    *,
    iterations: int = 100,
    repeats: int = 5,
    cflags: Sequence[str] = ("-O2",),
) -> tuple[float, list[float], list[np.ndarray]]:
    """Median seconds per inference over ``repeats`` processes of ``iterations`` runs each, every
    repeat's figure, and the outputs. To compare with another runtime, interleave
    :meth:`HostTimer.run` calls from :func:`build_host_timer` instead."""
    timer = build_host_timer(c_dir, inputs, input_specs, output_specs, workdir, prefix, cflags=cflags)
    samples = [timer.run(iterations) for _ in range(repeats)]
    return statistics.median(samples), samples, timer.outputs()
