"""What tiling decided, as data for report.json / report.md: per-layer core split and patch plan,
predicted speedup, peak RAM before and after patch-based execution."""

from __future__ import annotations

import math
from typing import Any

from tinysplit.backends.lower import lower
from tinysplit.backends.multicore import row_splittable
from tinysplit.compiler.ir import Graph
from tinysplit.passes.tiling import PatchPlan, layer_macs


def core_plan(graph: Graph, cores: int) -> tuple[list[dict[str, Any]], float]:
    """Per layer: whether its output rows are split over `cores`, its MACs and the rows per core;
    and the speedup that predicts (MACs / (serial MACs + the largest core share of each split layer))."""
    layers, total, critical = [], 0, 0.0
    for call in lower(graph):
        node = graph.node(call.node)
        macs = layer_macs(graph, node)
        split = row_splittable(graph, call)
        entry: dict[str, Any] = {"layer": call.node, "op": call.op, "macs": macs, "split": split}
        if split:
            rows = graph.tensors[node.outputs[0]].shape[1]
            chunk = math.ceil(rows / cores)
            entry["rows_per_core"] = [max(0, min(chunk, rows - c * chunk)) for c in range(cores)]
            critical += macs * chunk / rows
        else:
            critical += macs
        total += macs
        layers.append(entry)
    return layers, (total / critical if critical else 1.0)


def tiling_report(untiled: Graph, patched: Graph | None = None, cores: int = 1) -> dict[str, Any]:
    """Both graphs carry a memory plan (metadata["memory"]); `patched` comes from patch_schedule."""
    before = untiled.metadata["memory"]
    layers, speedup = core_plan(untiled, cores)
    report: dict[str, Any] = {
        "cores": cores,
        "layers": layers,
        "predicted_speedup": round(speedup, 3),
        "peak_ram_before": {"arena_bytes": before.arena_bytes, "lower_bound_bytes": before.lower_bound_bytes},
    }
    if patched is not None:
        after = patched.metadata["memory"]
        plan = patched.metadata.get("patching")
        report["patching"] = plan.as_dict() if isinstance(plan, PatchPlan) else None
        report["peak_ram_after"] = {"arena_bytes": after.arena_bytes, "lower_bound_bytes": after.lower_bound_bytes}
        report["peak_ram_ratio"] = round(after.arena_bytes / before.arena_bytes, 3) if before.arena_bytes else 1.0
    return report


def tiling_markdown(report: dict[str, Any]) -> str:
    lines = [f"## Tiling ({report['cores']} cores, predicted speedup {report['predicted_speedup']}x)", ""]
    lines += ["| layer | op | MACs | rows per core |", "|---|---|---:|---|"]
    for layer in report["layers"]:
        rows = ", ".join(map(str, layer["rows_per_core"])) if layer["split"] else "core 0"
        lines.append(f"| {layer['layer']} | {layer['op']} | {layer['macs']} | {rows} |")
    before = report["peak_ram_before"]["arena_bytes"]
    if report.get("patching"):
        p, after = report["patching"], report["peak_ram_after"]["arena_bytes"]
        lines += [
            "",
            f"Patch-based stem: {len(p['stem'])} layers in {p['n_patches']} row bands, "
            f"{100 * p['recompute_overhead']:.1f}% more MACs (halo recomputation).",
            f"Peak RAM (arena): {before} B before, {after} B after ({report['peak_ram_ratio']:.2f}x).",
        ]
    else:
        lines += ["", f"Peak RAM (arena): {before} B (no patch-based stem)."]
    return "\n".join(lines) + "\n"
