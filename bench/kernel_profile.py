"""Per-layer emulated instructions per MAC of the int8 (and float) kernels on Cortex-M4.

    .venv/bin/python bench/kernel_profile.py [--model NAME ...] [--json FILE] [--compare FILE] [--quiet]

Each shared model (../shared/models) is compiled for target stm32 (pipeline.build_graph + emit_c)
and run once on QEMU mps2-an386 with -icount shift=0 through compiler.bench.bench_model, which
checks the outputs against the reference interpreter (int8 bit for bit). Prints, per layer, the
op, the kernel shape, MACs, emulated instructions and instructions per MAC, then the model's
figure (total run call / MACs). ``--compare`` puts a previous ``--json`` run beside it (ratio).
Figures are emulated instructions, not cycles (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tinysplit.compiler.bench import SHARED_MODELS, bench_model

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
MODELS = list(SHARED_MODELS)


def _per_mac(n: int, macs: int) -> str:
    return f"{n / macs:.3f}" if macs else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="file name in ../shared/models (default: all six)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write per-layer results here")
    parser.add_argument("--compare", type=Path, help="a previous --json file to compare against")
    parser.add_argument("--quiet", action="store_true", help="only the per-model lines")
    parser.add_argument("--weights", default="auto", choices=["auto", "int8", "int16"], help="int8 weight storage")
    args = parser.parse_args()

    before = json.loads(args.compare.read_text()) if args.compare else {}
    results: dict[str, dict] = {}
    summary = []
    failed = False
    for name in args.model or MODELS:
        path = SHARED / name
        if not path.exists():
            print(f"skipping {name}: not in {SHARED}", file=sys.stderr)
            continue
        r = bench_model(path, "stm32", "cortex-m4", seed=args.seed, strict=False, weights=args.weights)
        failed |= not r.check.ok
        layers = [{"name": x.name, "op": x.op, "macs": x.macs, "instructions": x.instructions} for x in r.layers]
        results[name] = {"total": r.total_instructions, "macs": r.macs, "layers": layers, "check": str(r.check)}
        old = before.get(name)
        if not args.quiet:
            print(f"\n{name}: outputs vs reference: {r.check}")
            print(
                f"{'#':>3} {'op':<16} {'MACs':>10} {'instr':>11} {'i/MAC':>7}"
                + (f"  {'before':>7} ratio" if old else "")
            )
            for i, x in enumerate(r.layers):
                line = f"{i:>3} {x.op:<16} {x.macs:>10,} {x.instructions:>11,} {_per_mac(x.instructions, x.macs):>7}"
                if old and i < len(old["layers"]):
                    o = old["layers"][i]["instructions"]
                    line += f"  {_per_mac(o, x.macs):>7} {x.instructions / o if o else 0:5.2f}"
                print(line + f"  {x.name[-40:]}")
        per_mac = _per_mac(r.total_instructions, r.macs)
        line = f"{name:<28} MACs {r.macs:>11,}  instructions {r.total_instructions:>12,}  per MAC {per_mac}"
        if old:
            line += f"  (before {_per_mac(old['total'], old['macs'])}, ratio {r.total_instructions / old['total']:.3f})"
        summary.append(line + f"  [{r.check}]")
        print(summary[-1], flush=True)
    print("\n" + "\n".join(summary))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
