"""Run generated model code on the host and on emulated microcontrollers, and measure it.

A generated ``c_dir`` holds ``model.h``, ``model.c`` and a copy of the C runtime
(``runtime/include/tinysplit/*.h``, ``runtime/src/*.c``). This module wraps it in a harness main
rendered from ``templates/harness`` and

- :func:`run_host` builds it with the host ``gcc`` (C99, pedantic, warnings as errors), passes the
  inputs as files and reads the outputs back;
- :func:`run_emulated` cross-compiles it for an emulated board (``cortex-m4``: QEMU ``mps2-an386``;
  ``rv32``: QEMU ``virt``), embeds the inputs as ``const`` arrays, runs it under QEMU with
  ``-icount shift=0`` and parses outputs (hex over semihosting), per-layer and total *emulated
  instructions*, sizes and the stack high-water mark.

Emulated instructions: with ``-icount shift=0`` QEMU's virtual clock advances exactly 1 ns per
executed guest instruction. On ``mps2-an386`` SysTick counts the 25 MHz processor clock, so one tick
is 40 instructions; the stamp routine in ``runtime_c/platform/mps2_an386/stamp.S`` also measures the
phase within a tick, which makes every stamp exact to one instruction. On ``rv32`` QEMU answers
``instret`` with the same instruction counter. The hooks' own instructions are calibrated on the
device (an empty region) and subtracted, so a layer's count is the number of instructions executed
between its ``TS_LAYER_BEGIN`` and ``TS_LAYER_END`` calls; every run ends with a check that a loop
of known length is measured right (:attr:`EmulatedRun.calibration`). The counts are the same on
every run. They are instructions, not cycles: QEMU models no pipeline, caches or wait states.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np

__all__ = [
    "ARCHES",
    "Calibration",
    "EmulatedRun",
    "HarnessError",
    "IOSpec",
    "SectionSizes",
    "ToolMissingError",
    "missing_tools",
    "run_emulated",
    "run_host",
]

_DTYPES: dict[str, np.dtype] = {"int8_t": np.dtype("<i1"), "float": np.dtype("<f4")}
_WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
_DEFAULT_STACK_BYTES = 0x10000
_VALUES_PER_LINE = {"int8_t": 16, "float": 8}  # in the embedded input arrays


class HarnessError(RuntimeError):
    """Building or running generated code failed; the message carries the tool's output."""


class ToolMissingError(HarnessError):
    """A compiler or emulator the requested run needs is not installed."""


@dataclass(frozen=True)
class IOSpec:
    """One model input or output as the generated C sees it: name, element C type, element count."""

    name: str
    ctype: str
    size: int

    def __post_init__(self) -> None:
        if self.ctype not in _DTYPES:
            raise ValueError(f"IOSpec {self.name!r}: ctype must be one of {sorted(_DTYPES)}, not {self.ctype!r}")
        if self.size < 1:
            raise ValueError(f"IOSpec {self.name!r}: size must be positive, not {self.size}")

    @property
    def dtype(self) -> np.dtype:
        return _DTYPES[self.ctype]


@dataclass(frozen=True)
class SectionSizes:
    """Bytes by kind of section: code, read-only data, initialised data, zero-initialised data."""

    text: int = 0
    rodata: int = 0
    data: int = 0
    bss: int = 0

    @property
    def flash(self) -> int:
        """Non-volatile memory: code, constants and the initial values of .data."""
        return self.text + self.rodata + self.data

    @property
    def ram(self) -> int:
        """Static RAM (.data + .bss); the stack and the heap come on top."""
        return self.data + self.bss


@dataclass(frozen=True)
class Calibration:
    """A loop of exactly ``instructions`` = 2 * iterations + 1 instructions, measured like a layer.

    ``measured`` exceeds ``instructions`` by the instructions that pass the loop its argument and
    call it (a small constant: 2 on Cortex-M4 and 2 on RV32 with GCC 12 -O2)."""

    iterations: int
    instructions: int
    measured: int


@dataclass
class EmulatedRun:
    """What one emulated inference produced and cost.

    Instruction counts are emulated instructions (see the module docstring). Sizes: ``sections`` is
    ``size -A`` of the linked ELF (allocated sections); ``image`` splits the whole image (harness,
    C library and model) by input-section kind from the linker map, ``model`` the part that comes
    from ``model.c`` and the runtime sources. ``flash_bytes``/``ram_bytes`` and the ``*_bytes``
    section fields are the whole image's. ``stack_bytes`` is the stack the inference used (from the
    stack pointer at the call of ``<prefix>_run`` to the lowest painted word overwritten),
    ``stack_peak_bytes`` the high-water mark from the top of the stack over the whole program up to
    the end of the inference (start-up and calibration included)."""

    arch: str
    outputs: list[np.ndarray]
    layer_instructions: list[int]
    total_instructions: int
    flash_bytes: int
    ram_bytes: int
    stack_bytes: int
    text_bytes: int
    rodata_bytes: int
    data_bytes: int
    bss_bytes: int
    stack_peak_bytes: int
    stack_size_bytes: int
    sections: dict[str, int]
    image: SectionSizes
    model: SectionSizes
    calibration: list[Calibration]
    elf: Path
    log: str = field(repr=False, default="")


# ---------------------------------------------------------------------------------------- arches


@dataclass(frozen=True)
class _Arch:
    name: str
    gcc: str
    size: str
    qemu: str
    platform: str
    cflags: tuple[str, ...]
    ldflags: tuple[str, ...]
    qemu_args: tuple[str, ...]
    platform_sources: tuple[str, ...]
    linker_script: str | None = None

    def tools(self) -> list[str]:
        return [self.gcc, self.size, self.qemu]


ARCHES: dict[str, _Arch] = {
    "cortex-m4": _Arch(
        name="cortex-m4",
        gcc="arm-none-eabi-gcc",
        size="arm-none-eabi-size",
        qemu="qemu-system-arm",
        platform="mps2_an386",
        cflags=("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"),
        # Our own start-up code replaces rdimon-crt0 (-nostartfiles); rdimon.specs still links
        # newlib with its semihosting back end (librdimon).
        ldflags=("--specs=rdimon.specs", "-nostartfiles"),
        qemu_args=("-M", "mps2-an386"),
        platform_sources=("startup.c", "profile.c", "stamp.S"),
        linker_script="mps2_an386.ld",
    ),
    "rv32": _Arch(
        name="rv32",
        gcc="riscv64-unknown-elf-gcc",
        size="riscv64-unknown-elf-size",
        qemu="qemu-system-riscv32",
        platform="riscv_virt",
        cflags=("-march=rv32imac", "-mabi=ilp32", "--specs=picolibc.specs"),
        # picolibc's crt0 (semihosting flavour: exit status and trap reports over semihosting)
        # and picolibc.ld, placed in the virt machine's RAM at 0x80000000, where QEMU's reset
        # vector jumps with -bios none.
        ldflags=(
            "--oslib=semihost",
            "--crt0=semihost",
            "-Wl,--defsym=__flash=0x80000000",
            "-Wl,--defsym=__flash_size=0x400000",
            "-Wl,--defsym=__ram=0x80400000",
            "-Wl,--defsym=__ram_size=0x400000",
            # The stack region for ts_stack.c: picolibc.ld's stack sits between __heap_end and __stack.
            "-Wl,--defsym=ts_stack_top=__stack",
            "-Wl,--defsym=ts_stack_bottom=__heap_end",
        ),
        qemu_args=("-M", "virt", "-bios", "none"),
        platform_sources=("profile.c", "calib.S", "stack_size.S"),
    ),
}


def missing_tools(arch: str | None = None) -> list[str]:
    """The executables run_emulated(arch=...) (or run_host, when arch is None) needs but cannot find."""
    tools = ["gcc"] if arch is None else _arch(arch).tools()
    return [t for t in tools if shutil.which(t) is None]


def _arch(arch: str) -> _Arch:
    try:
        return ARCHES[arch]
    except KeyError:
        raise ValueError(f"unknown arch {arch!r}; choose one of {sorted(ARCHES)}") from None


# ---------------------------------------------------------------------------------------- helpers


def _templates() -> jinja2.Environment:
    root = importlib.resources.files("tinysplit.templates") / "harness"
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: (root / name).read_text(encoding="utf-8")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def _runtime_c() -> Path:
    return Path(str(importlib.resources.files("tinysplit.runtime_c")))


def check_io(
    inputs: Sequence[np.ndarray], input_specs: Sequence[IOSpec], output_specs: Sequence[IOSpec]
) -> list[np.ndarray]:
    if len(inputs) != len(input_specs):
        raise ValueError(f"{len(inputs)} input arrays for {len(input_specs)} input specs")
    if not output_specs:
        raise ValueError("at least one output spec is needed")
    arrays = []
    for array, spec in zip(inputs, input_specs, strict=True):
        a = np.asarray(array)
        if a.size != spec.size:
            raise ValueError(f"input {spec.name!r}: {a.size} elements, the model expects {spec.size}")
        if spec.ctype == "int8_t":
            if not np.issubdtype(a.dtype, np.integer):
                raise ValueError(f"input {spec.name!r}: int8_t needs integer data, got {a.dtype}")
            if a.size and (a.min() < -128 or a.max() > 127):
                raise ValueError(f"input {spec.name!r}: values outside the int8 range")
        elif not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
            raise ValueError(f"input {spec.name!r}: float needs numeric data, got {a.dtype}")
        arrays.append(np.ascontiguousarray(a.reshape(-1).astype(spec.dtype)))
    return arrays


def _model_sources(c_dir: Path) -> tuple[Path, list[Path]]:
    c_dir = Path(c_dir)
    model_c = c_dir / "model.c"
    for needed in (model_c, c_dir / "model.h", c_dir / "runtime" / "include"):
        if not needed.exists():
            raise HarnessError(f"{c_dir} is not a generated model folder: {needed.name} is missing")
    runtime = sorted((c_dir / "runtime" / "src").glob("*.c"))
    return model_c, runtime


def run_tool(
    cmd: Sequence[str | os.PathLike[str]],
    what: str,
    timeout: float,
    cwd: Path | None = None,
    check: bool = True,
    log_file: Path | None = None,
) -> str:
    """Runs a tool and returns its stdout + stderr; raises HarnessError (with that output) when it
    fails (unless not ``check``), times out or is missing.

    With ``log_file`` the output goes to that file rather than to a pipe: QEMU's stdio character
    device is non-blocking and drops what a pipe cannot take at once (long semihosting output)."""
    args = [str(c) for c in cmd]
    try:
        if log_file is None:
            proc = subprocess.run(
                args, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout, check=False
            )
            out = _text(proc.stdout) + _text(proc.stderr)
        else:
            with log_file.open("wb") as sink:
                proc = subprocess.run(
                    args, cwd=cwd, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                    timeout=timeout, check=False,
                )  # fmt: skip
            out = _text(log_file.read_bytes())
    except FileNotFoundError as exc:
        raise ToolMissingError(f"{what}: {args[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        out = _text(log_file.read_bytes()) if log_file else _text(exc.stdout) + _text(exc.stderr)
        raise HarnessError(f"{what} timed out after {timeout:g} s: {' '.join(args)}\n{out[-4000:]}") from exc
    if check and proc.returncode != 0:
        raise HarnessError(f"{what} failed (exit status {proc.returncode}): {' '.join(args)}\n{out[-8000:]}")
    return out


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    return data if isinstance(data, str) else data.decode(errors="replace")


def _compile_all(jobs: Sequence[tuple[list[str], Path]], timeout: float) -> None:
    """Compiles (command, source) pairs in parallel; the first failure raises with its messages."""

    def one(job: tuple[list[str], Path]) -> None:
        cmd, source = job
        run_tool(cmd, f"compiling {source.name}", timeout)

    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(one, job) for job in jobs]:
            future.result()


def _c_literals(array: np.ndarray, ctype: str) -> tuple[str, str]:
    """(storage C type, initializer text) for embedding an input array exactly."""
    if ctype == "int8_t":
        values = [str(int(v)) for v in array.astype(np.int8)]
        storage = "int8_t"
    else:
        values = [f"0x{int(v):08x}u" for v in array.astype("<f4").view("<u4")]
        storage = "uint32_t"
    step = _VALUES_PER_LINE[ctype]
    lines = [", ".join(values[i : i + step]) for i in range(0, len(values), step)]
    return storage, ",\n    ".join(lines)


# ---------------------------------------------------------------------------------------- host


def build_host_program(
    c_dir: Path,
    template: str,
    input_specs: Sequence[IOSpec],
    output_specs: Sequence[IOSpec],
    workdir: Path,
    prefix: str = "model",
    *,
    cc: str = "gcc",
    cflags: Sequence[str] = ("-O2",),
    libs: Sequence[str] = ("-lm",),
    timeout: float = 120.0,
) -> Path:
    """Renders templates/harness/<template> for the model's signature and builds it with the generated
    C (``-std=c99``, warnings as errors, then ``cflags``); returns the program."""
    c_dir, workdir = Path(c_dir).resolve(), Path(workdir).resolve()
    model_c, runtime = _model_sources(c_dir)
    if shutil.which(cc) is None:
        raise ToolMissingError(f"the C compiler {cc!r} is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    main_c = workdir / template.removesuffix(".j2")
    main_c.write_text(
        _templates()
        .get_template(template)
        .render(
            prefix=prefix,
            PREFIX=prefix.upper(),
            inputs=[{"index": i, "ctype": s.ctype, "size": s.size} for i, s in enumerate(input_specs)],
            outputs=[{"index": i, "ctype": s.ctype, "size": s.size} for i, s in enumerate(output_specs)],
        ),
        encoding="utf-8",
    )
    app = workdir / main_c.stem
    include = ["-I", str(c_dir), "-I", str(c_dir / "runtime" / "include")]
    sources = [str(model_c), *map(str, runtime), str(main_c)]
    run_tool([cc, "-std=c99", *_WARNINGS, *include, *cflags, *sources, "-o", str(app), *libs], "host build", timeout)
    return app


def run_host(
    c_dir: Path,
    inputs: list[np.ndarray],
    input_specs: list[IOSpec],
    output_specs: list[IOSpec],
    workdir: Path,
    prefix: str = "model",
    *,
    cc: str = "gcc",
    extra_cflags: Sequence[str] = (),
    timeout: float = 120.0,
) -> list[np.ndarray]:
    """Builds the model with the host C compiler, runs it once on ``inputs`` and returns its outputs.

    Flags: ``-std=c99 -O2 -Wall -Wextra -Werror -pedantic`` (and ``-lm``); any warning fails the
    build with :class:`HarnessError` carrying the compiler's messages."""
    c_dir, workdir = Path(c_dir).resolve(), Path(workdir).resolve()
    arrays = check_io(inputs, input_specs, output_specs)
    app = build_host_program(
        c_dir, "host_main.c.j2", input_specs, output_specs, workdir, prefix,
        cc=cc, cflags=["-O2", *extra_cflags], timeout=timeout,
    )  # fmt: skip

    in_paths, out_paths = io_files(workdir, arrays, len(output_specs))
    run_tool([app, *in_paths, *out_paths], "host run", timeout, cwd=workdir)
    return read_outputs(out_paths, output_specs, "host run")


def io_files(
    workdir: Path, arrays: Sequence[np.ndarray], n_outputs: int, stem: str = ""
) -> tuple[list[Path], list[Path]]:
    """The file arguments of a host program: writes the inputs (raw element bytes) to
    workdir/<stem>input<i>.bin and removes stale workdir/<stem>output<i>.bin; returns both path lists."""
    in_paths = [workdir / f"{stem}input{i}.bin" for i in range(len(arrays))]
    out_paths = [workdir / f"{stem}output{i}.bin" for i in range(n_outputs)]
    for path, a in zip(in_paths, arrays, strict=True):
        path.write_bytes(np.ascontiguousarray(a).tobytes())
    for path in out_paths:
        path.unlink(missing_ok=True)
    return in_paths, out_paths


def read_outputs(paths: Sequence[Path], specs: Sequence[IOSpec], what: str) -> list[np.ndarray]:
    """The outputs a host program wrote, checked for their size."""
    outputs = []
    for path, spec in zip(paths, specs, strict=True):
        data = path.read_bytes()
        if len(data) != spec.size * spec.dtype.itemsize:
            raise HarnessError(f"{what}: {path.name} has {len(data)} bytes, expected {spec.size * spec.dtype.itemsize}")
        outputs.append(np.frombuffer(data, dtype=spec.dtype).copy())
    return outputs


# ---------------------------------------------------------------------------------------- emulated


def run_emulated(
    c_dir: Path,
    inputs: list[np.ndarray],
    input_specs: list[IOSpec],
    output_specs: list[IOSpec],
    workdir: Path,
    arch: str = "cortex-m4",
    prefix: str = "model",
    *,
    profile: bool = True,
    calibration: Sequence[int] = (1000,),
    stack_size: int = _DEFAULT_STACK_BYTES,
    extra_cflags: Sequence[str] = (),
    timeout: float = 300.0,
) -> EmulatedRun:
    """Cross-compiles the model for ``arch`` and runs it once under QEMU with ``-icount shift=0``.

    ``profile`` compiles the model with ``-DTS_PROFILE`` so that its TS_LAYER hooks count each
    layer (the hook calls then also appear in the model's code size and stack); the total count
    needs no hooks. ``calibration`` lists iteration counts of the known-length calibration loop to
    measure before the inference. ``arch`` is one of :data:`ARCHES`: ``"cortex-m4"`` (QEMU
    ``mps2-an386``, newlib) or ``"rv32"`` (RV32IMAC on QEMU ``virt``, picolibc).

    Raises :class:`ToolMissingError` when the cross compiler or QEMU is missing and
    :class:`HarnessError` (with the tool's output) when a build fails, the program crashes or
    does not finish in ``timeout`` seconds, or the instruction counter reads inconsistently."""
    cfg = _arch(arch)
    c_dir, workdir = Path(c_dir).resolve(), Path(workdir).resolve()
    arrays = check_io(inputs, input_specs, output_specs)
    model_c, runtime = _model_sources(c_dir)
    missing = missing_tools(arch)
    if missing:
        raise ToolMissingError(f"run_emulated({arch!r}) needs {', '.join(missing)}, which is not installed")
    if stack_size < 1024 or stack_size % 8:
        raise ValueError("stack_size must be a multiple of 8 and at least 1024")
    if any(n < 1 or n >= 2**31 for n in calibration):
        raise ValueError("calibration iteration counts must be in [1, 2**31)")
    workdir.mkdir(parents=True, exist_ok=True)
    objdir = workdir / "obj"
    objdir.mkdir(exist_ok=True)

    platform_root = _runtime_c() / "platform"
    platform_dir = platform_root / cfg.platform
    main_c = workdir / "target_main.c"
    rendered_inputs = []
    for i, (a, spec) in enumerate(zip(arrays, input_specs, strict=True)):
        storage, literals = _c_literals(a, spec.ctype)
        rendered_inputs.append(
            {"index": i, "ctype": spec.ctype, "size": spec.size, "storage": storage, "literals": literals}
        )
    main_c.write_text(
        _templates()
        .get_template("target_main.c.j2")
        .render(
            prefix=prefix,
            PREFIX=prefix.upper(),
            inputs=rendered_inputs,
            outputs=[{"index": i, "ctype": s.ctype, "size": s.size} for i, s in enumerate(output_specs)],
            calibration=list(calibration),
        ),
        encoding="utf-8",
    )

    base = [cfg.gcc, "-std=c99", "-O2", *cfg.cflags, *_WARNINGS, "-ffunction-sections", "-fdata-sections"]
    include = ["-I", str(c_dir), "-I", str(c_dir / "runtime" / "include"), "-I", str(platform_root)]
    model_flags = ["-DTS_PROFILE"] if profile else []
    jobs: list[tuple[list[str], Path]] = []
    model_objects: list[Path] = []
    objects: list[Path] = []

    def add(source: Path, obj_name: str, flags: Sequence[str], is_model: bool) -> None:
        obj = objdir / obj_name
        jobs.append(([*base, *include, *flags, *extra_cflags, "-c", str(source), "-o", str(obj)], source))
        objects.append(obj)
        if is_model:
            model_objects.append(obj)

    add(model_c, "model.o", model_flags, True)
    for src in runtime:
        add(src, f"runtime_{src.stem}.o", model_flags, True)
    add(main_c, "target_main.o", [], False)
    add(platform_root / "ts_stack.c", "platform_ts_stack.o", ["-DTS_PROFILE"], False)
    for name in cfg.platform_sources:
        flags = ["-DTS_PROFILE", f"-DTS_STACK_SIZE={stack_size}"]
        add(platform_dir / name, f"platform_{Path(name).stem}.o", flags, False)
    for obj in objects:
        obj.unlink(missing_ok=True)
    _compile_all(jobs, timeout)

    elf = workdir / "app.elf"
    map_file = workdir / "app.map"
    # mps2_an386.ld reads the stack size from ts_stack_size (riscv_virt gets it from stack_size.S).
    link = [cfg.gcc, *cfg.cflags, *cfg.ldflags, f"-Wl,--defsym=ts_stack_size={stack_size}"]
    if cfg.linker_script:
        link += ["-T", str(platform_dir / cfg.linker_script)]
    link += ["-Wl,--gc-sections", f"-Wl,-Map={map_file}", *map(str, objects), "-lm", "-o", str(elf)]
    run_tool(link, f"linking for {arch}", timeout)

    sections = _size_sections(cfg, elf, timeout)
    image, model = _map_sizes(map_file.read_text(errors="replace"), {o.resolve() for o in model_objects})

    qemu = [cfg.qemu, *cfg.qemu_args, "-nographic", "-monitor", "none"]
    qemu += ["-semihosting-config", "enable=on,target=native", "-icount", "shift=0", "-kernel", str(elf)]
    log = run_tool(qemu, f"running on {arch} (QEMU)", timeout, cwd=workdir, check=False, log_file=workdir / "qemu.log")
    parsed = _parse_log(log, f"{arch} ({' '.join(qemu)})")

    outputs = []
    for i, spec in enumerate(output_specs):
        data = bytes.fromhex(parsed.hex_out.get(i, ""))
        expected = spec.size * spec.dtype.itemsize
        if len(data) != expected:
            raise HarnessError(
                f"{arch}: output {spec.name!r} has {len(data)} bytes, expected {expected}\n{log[-4000:]}"
            )
        outputs.append(np.frombuffer(data, dtype=spec.dtype).copy())
    calib = [Calibration(n, 2 * n + 1, parsed.calibration[n]) for n in calibration]
    layers = [parsed.layers[i] for i in sorted(parsed.layers)] if profile else []
    used, peak, size = parsed.stack
    return EmulatedRun(
        arch=arch,
        outputs=outputs,
        layer_instructions=layers,
        total_instructions=parsed.total,
        flash_bytes=image.flash,
        ram_bytes=image.ram,
        stack_bytes=used,
        text_bytes=image.text,
        rodata_bytes=image.rodata,
        data_bytes=image.data,
        bss_bytes=image.bss,
        stack_peak_bytes=peak,
        stack_size_bytes=size,
        sections=sections,
        image=image,
        model=model,
        calibration=calib,
        elf=elf,
        log=log,
    )


@dataclass
class _Parsed:
    total: int
    layers: dict[int, int]
    stack: tuple[int, int, int]
    calibration: dict[int, int]
    hex_out: dict[int, str]


def _parse_log(log: str, what: str) -> _Parsed:
    total: int | None = None
    layers: dict[int, int] = {}
    stack: tuple[int, int, int] | None = None
    calib: dict[int, int] = {}
    hex_parts: dict[int, list[str]] = {}
    error: int | None = None
    done = False
    for line in log.splitlines():
        parts = line.split()
        if not parts:
            continue
        tag = parts[0]
        if tag == "RISCV" and parts[1:2] == ["fault"]:  # picolibc crt0-semihost's trap report
            raise HarnessError(f"the emulated program crashed (RISC-V trap) on {what}:\n{log[-4000:]}")
        if tag == "TS_FAULT":
            raise HarnessError(f"the emulated program crashed ({' '.join(parts[1:])}) on {what}:\n{log[-4000:]}")
        if tag == "TS_TOTAL":
            total = int(parts[1])
        elif tag == "TS_LAYER":
            layers[int(parts[1])] = int(parts[2])
        elif tag == "TS_CALIB":
            calib[int(parts[1])] = int(parts[2])
        elif tag == "TS_STACK":
            stack = (int(parts[1]), int(parts[2]), int(parts[3]))
        elif tag == "TS_OUT":
            hex_parts.setdefault(int(parts[1]), []).append(parts[2] if len(parts) > 2 else "")
        elif tag == "TS_ERROR":
            error = int(parts[1])
        elif tag == "TS_DONE":
            done = True
    if not done or total is None or stack is None or error is None:
        raise HarnessError(f"the emulated program did not finish its report on {what}:\n{log[-4000:]}")
    if error:
        raise HarnessError(
            f"the instruction counter gave inconsistent readings (error flags {error:#x}):\n{log[-4000:]}"
        )
    return _Parsed(total, layers, stack, calib, {i: "".join(p) for i, p in hex_parts.items()})


_NOT_ALLOCATED = re.compile(r"^\.(debug|comment|stab|ARM\.attributes|riscv\.attributes|note|gnu\.attributes)")


def _size_sections(cfg: _Arch, elf: Path, timeout: float) -> dict[str, int]:
    """``size -A`` of the ELF: its memory sections (not debug, comment or attribute sections)."""
    out = run_tool([cfg.size, "-A", str(elf)], "size", timeout)
    sections: dict[str, int] = {}
    for line in out.splitlines():
        m = re.match(r"^(\.\S+)\s+(\d+)\s+(\d+)\s*$", line)
        if m and int(m.group(2)) != 0 and not _NOT_ALLOCATED.match(m.group(1)):
            sections[m.group(1)] = int(m.group(2))
    return sections


_KIND_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("text", re.compile(r"^\.(text|init|fini|vectors|glue_7t?|vfp11_veneer|v4_bx|iplt|ARM\.exidx|ARM\.extab)(\.|$)")),
    (
        "rodata",
        re.compile(r"^\.(rodata|srodata|rdata|data\.rel\.ro|preinit_array|init_array|fini_array|ctors|dtors)(\.|$)"),
    ),
    ("data", re.compile(r"^\.(data|sdata|tdata|got)(\.|$)")),
    ("bss", re.compile(r"^(\.(bss|sbss|tbss)(\.|$)|COMMON$)")),
]


def _kind(section: str) -> str | None:
    for kind, pattern in _KIND_PATTERNS:
        if pattern.match(section):
            return kind
    return None


def _map_sizes(map_text: str, model_objects: set[Path]) -> tuple[SectionSizes, SectionSizes]:
    """Sums the linker map's input sections by kind: for the whole image (alignment fill included,
    counted with the section before it) and for the model's own objects."""
    start = map_text.find("Linker script and memory map")
    lines = map_text[start:].splitlines() if start >= 0 else []
    whole = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    model = dict(whole)
    entry = re.compile(r"^\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S.*)$")
    pending: str | None = None
    last_kind: str | None = None
    for line in lines:
        if line.startswith("."):  # an output section: fill at its start counts as its kind
            last_kind = _kind(line.split()[0])
            continue
        if line.startswith(" *fill*"):
            m = re.match(r"^ \*fill\*\s+0x[0-9a-fA-F]+\s+0x([0-9a-fA-F]+)", line)
            if m and last_kind:
                whole[last_kind] += int(m.group(1), 16)
            continue
        if pending is None:
            m = re.match(r"^ (\S+)(.*)$", line)
            if not m or m.group(1).startswith("*") or line.startswith("  "):
                continue
            name, rest = m.group(1), m.group(2)
            if not rest.strip():
                pending = name
                continue
            line = rest
        else:
            name, pending = pending, None
        m = entry.match(line)
        if not m:
            continue
        size, source = int(m.group(2), 16), m.group(3).strip()
        kind = last_kind = _kind(name)
        if kind is None:
            continue
        whole[kind] += size
        if "(" not in source and Path(source).resolve() in model_objects:
            model[kind] += size
    return SectionSizes(**whole), SectionSizes(**model)
