"""report.json and report.md: what the compiler decided and why, in figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinysplit.compiler.ir import Graph
from tinysplit.compiler.stats import graph_stats, totals
from tinysplit.compiler.targets import Target
from tinysplit.passes.memory_plan import MemoryPlan
from tinysplit.passes.weight_layout import ATTR as SIMD_WEIGHTS
from tinysplit.passes.weight_layout import stored_weight_bytes


def make_report(graph: Graph, target: Target, source: str) -> dict[str, Any]:
    plan = graph.metadata["memory"]
    assert isinstance(plan, MemoryPlan)
    layers = graph_stats(graph)
    total = totals(layers)
    weights = stored_weight_bytes(graph)
    widened = [n.name for n in graph.nodes() if n.attrs.get(SIMD_WEIGHTS)]
    ram_needed = plan.arena_bytes + plan.io_bytes
    return {
        "source": source,
        "target": {"name": target.name, "description": target.description},
        "totals": total,
        "memory": {
            "arena_bytes": plan.arena_bytes,
            "activation_bytes": plan.activation_bytes,
            "lower_bound_bytes": plan.lower_bound_bytes,
            "arena_over_lower_bound": round(plan.arena_bytes / max(plan.lower_bound_bytes, 1), 4),
            "io_bytes": plan.io_bytes,
            "weight_bytes": weights,
            "int8_weight_bytes": sum(t.nbytes for t in graph.constants()),
            "widened_weight_layers": len(widened),
        },
        "fits": {
            "ram": ram_needed <= target.ram_bytes,
            "flash": weights <= target.flash_bytes,
            "ram_needed_bytes": ram_needed,
            "ram_available_bytes": target.ram_bytes,
            "flash_available_bytes": target.flash_bytes,
        },
        "layers": [s.as_dict() for s in layers],
        "memory_plan": plan.as_dict(),
    }


def write_report(report: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=list) + "\n")
    (out_dir / "report.md").write_text(render_markdown(report))


def render_markdown(report: dict[str, Any]) -> str:
    mem, fits, total = report["memory"], report["fits"], report["totals"]
    lines = [
        f"# tinysplit report: {report['source']}",
        "",
        f"Target: **{report['target']['name']}** ({report['target']['description']})",
        "",
        "## Memory",
        "",
        "| figure | bytes |",
        "|---|---|",
        f"| arena (activations + scratch, planned) | {mem['arena_bytes']:,} |",
        f"| layer-wise lower bound (max live bytes at one step) | {mem['lower_bound_bytes']:,} |",
        f"| sum of all arena activations (no reuse) | {mem['activation_bytes']:,} |",
        f"| model inputs and outputs (caller's buffers) | {mem['io_bytes']:,} |",
        f"| weights (const, flash) | {mem['weight_bytes']:,} |",
        "",
        f"Arena / lower bound: {mem['arena_over_lower_bound']:.3f}. "
        f"RAM needed {fits['ram_needed_bytes']:,} of {fits['ram_available_bytes']:,} "
        f"({'fits' if fits['ram'] else 'DOES NOT FIT'}); weights {mem['weight_bytes']:,} of "
        f"{fits['flash_available_bytes']:,} flash ({'fits' if fits['flash'] else 'DOES NOT FIT'}).",
        "",
        *_weight_layout_lines(mem),
        f"## Layers ({total['layers']}, {total['macs']:,} MACs, {total['param_bytes']:,} parameter bytes)",
        "",
        "| # | op | dtype | output | MACs | params B | out B |",
        "|---|---|---|---|---|---|---|",
    ]
    for i, layer in enumerate(report["layers"]):
        out = " ".join("x".join(map(str, s)) for s in layer["output_shapes"])
        lines.append(
            f"| {i} | {layer['op']} | {layer['dtype']} | {out} | {layer['macs']:,} | "
            f"{layer['param_bytes']:,} | {layer['output_bytes']:,} |"
        )
    return "\n".join(lines) + "\n"


def _weight_layout_lines(mem: dict[str, Any]) -> list[str]:
    if not mem["widened_weight_layers"]:
        return []
    return [
        f"Weights of {mem['widened_weight_layers']} conv / fully connected layers are stored pre-widened to int16 "
        f"for SMLAD (passes/weight_layout.py): {mem['weight_bytes'] - mem['int8_weight_bytes']:,} bytes of flash "
        "more than int8, for fewer instructions per MAC; `--weights int8` keeps them int8.",
        "",
    ]
