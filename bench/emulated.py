"""The six MLPerf Tiny models on emulated microcontrollers: emulated instructions, flash, RAM, stack.

    .venv/bin/python bench/emulated.py [--arch cortex-m4|rv32 ...] [--model NAME ...] [--layers] [--json FILE]

Each model in ../shared/models (absent ones are skipped with a message) is compiled by
`tinysplit.compiler.bench.bench_model` and run once under QEMU with -icount shift=0:
cortex-m4 for target stm32 (mps2-an386, arm-none-eabi-gcc) and rv32 for target riscv (RV32IMAC on
virt, riscv64-unknown-elf-gcc + picolibc). Inputs are seeded random (int8 over the whole range,
float32 standard normal); the outputs are checked against the reference interpreter (int8 bit for
bit). Figures are emulated instructions, not cycles (bench/README.md). Flash = text + rodata + data;
RAM = data + bss + stack, for the whole image (stack: peak over the program) and for the model's own
objects (model.o + runtime; stack: what the inference used).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tinysplit.compiler.bench import SHARED_MODELS, BenchResult, bench_model, format_table
from tinysplit.compiler.harness import missing_tools

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = list(SHARED_MODELS)
TARGET_OF_ARCH = {"cortex-m4": "stm32", "rv32": "riscv"}


def summary(results: list[BenchResult]) -> str:
    """One line per run; a runtime column when the kernels changed between runs."""
    mixed = len({r.runtime_digest for r in results}) > 1
    head = (
        f"{'model':<26} {'arch':<9} {'MACs':>11} {'instructions':>13} {'instr/MAC':>9} {'flash B':>9} "
        f"{'RAM B':>8} {'stack B':>7} {'model flash':>11} {'model RAM':>9}  {'runtime      ' if mixed else ''}check"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        per_mac = "-" if r.instructions_per_mac is None else f"{r.instructions_per_mac:.3f}"
        lines.append(
            f"{r.model.removesuffix('.onnx'):<26} {r.arch:<9} {r.macs:>11,} {r.total_instructions:>13,} "
            f"{per_mac:>9} {r.flash_bytes:>9,} {r.ram_bytes:>8,} {r.stack_bytes:>7,} {r.model_flash_bytes:>11,} "
            f"{r.model_ram_bytes:>9,}  {r.runtime_digest + ' ' if mixed else ''}{r.check}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", action="append", choices=sorted(TARGET_OF_ARCH), help="default: both")
    parser.add_argument("--model", action="append", help="file name in ../shared/models (default: all six)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", action="store_true", help="also print each model's per-layer table")
    parser.add_argument("--json", type=Path, help="write all results to this file")
    parser.add_argument("--workdir", type=Path, help="keep the builds here (default: temporary folders)")
    parser.add_argument("--weights", default="auto", choices=["auto", "int8", "int16"], help="int8 weight storage")
    args = parser.parse_args()

    arches = args.arch or list(TARGET_OF_ARCH)
    results: list[BenchResult] = []
    for arch in arches:
        missing = missing_tools(arch)
        if missing:
            print(f"skipping {arch}: {', '.join(missing)} not installed (scripts/setup.sh)", file=sys.stderr)
            continue
        for name in args.model or MODELS:
            path = SHARED / name
            if not path.exists():
                print(f"skipping {name}: not in {SHARED}", file=sys.stderr)
                continue
            workdir = args.workdir / f"{path.stem}-{arch}" if args.workdir else None
            start = time.perf_counter()
            result = bench_model(
                path, TARGET_OF_ARCH[arch], arch, workdir, args.seed, strict=False, weights=args.weights
            )
            print(f"{name} on {arch}: {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
            if args.layers:
                print(format_table(result) + "\n", flush=True)
            results.append(result)
    if not results:
        print("nothing measured", file=sys.stderr)
        return 1
    digests = {r.runtime_digest for r in results}
    print(
        f"emulated instructions (QEMU -icount shift=0), seed {args.seed}, "
        f"runtime {digests.pop() if len(digests) == 1 else 'CHANGED DURING THE RUN (see column)'}, "
        f"{results[0].measured_at} .. {results[-1].measured_at}"
    )
    print(summary(results))
    if args.json:
        args.json.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")
    return 0 if all(r.check.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
