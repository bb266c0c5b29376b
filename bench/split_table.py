"""The split search on the MLPerf Tiny models: chosen split and predicted latency beside all-on-device
and all-on-server, for nRF52840 + BLE and STM32WB55 + IEEE 802.15.4.

    .venv/bin/python bench/split_table.py [--models DIR] [--no-emulate] [--max-leakage X]

With the Cortex-M4 emulator installed, each model's device costs are first calibrated on its own
per-layer emulated instruction counts (compiler.harness.run_emulated + compiler.cost.with_counts);
otherwise the targets' [cost] tables are used. Leakage and float-cut scales use seeded random inputs
for ResNet-8 and DS-CNN (no real data here) and the 40 frames of ad01_sample_normal_id01.bin for the
anomaly detector. Everything printed is a model prediction, not a measurement on hardware.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.lower import scratch_bytes
from tinysplit.compiler import frontend, harness
from tinysplit.compiler.cost import with_counts
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.links import load_link
from tinysplit.compiler.targets import Target, load_target
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.memory_plan import plan_memory
from tinysplit.passes.split_search import Constraints, calibration_samples, prepare, search

MODELS = {"ResNet-8": "resnet8_cifar10_int8", "DS-CNN": "dscnn_kws_int8", "AD (ToyCar)": "ad01_toycar_int8"}
PAIRS = [("nrf52", "ble"), ("stm32", "ieee802154")]
AD_SAMPLES = "ad01_sample_normal_id01.bin"


def emulated_target(graph: Graph, target: Target) -> tuple[Target, str]:
    """The target calibrated on this graph's per-layer emulated instruction counts, if the emulator is here."""
    if target.emulator is None or harness.missing_tools(target.emulator):
        return target, "target [cost] table"
    planned = plan_memory(graph, scratch_bytes)
    rng = np.random.default_rng(0)
    inputs = [rng.integers(-128, 128, graph.tensors[i].shape, dtype=np.int8) for i in graph.inputs]

    def spec(name: str) -> harness.IOSpec:
        return harness.IOSpec(name, CTYPES[graph.tensors[name].dtype], graph.tensors[name].size)

    with tempfile.TemporaryDirectory() as tmp:
        emit_c(planned, Path(tmp) / "c")
        run = harness.run_emulated(
            Path(tmp) / "c",
            inputs,
            [spec(i) for i in graph.inputs],
            [spec(o) for o in graph.outputs],
            Path(tmp) / "work",
            arch=target.emulator,
        )
    return with_counts(target, graph, run.layer_instructions), f"{run.total_instructions:,} emulated instructions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "models")
    parser.add_argument("--no-emulate", action="store_true", help="use the targets' [cost] tables as they are")
    parser.add_argument("--max-leakage", type=float, default=0.5, help="for the privacy-constrained column")
    args = parser.parse_args()

    rows = []
    for label, name in MODELS.items():
        graph = canonicalize(frontend.load(args.models / f"{name}.onnx"))
        data, note = None, "128 seeded random inputs"
        if name.startswith("ad01") and (args.models / AD_SAMPLES).exists():
            frames = np.fromfile(args.models / AD_SAMPLES, dtype="<f4").reshape(40, 1, 640)
            data, note = {graph.inputs[0]: frames}, f"the 40 frames of {AD_SAMPLES}"
        samples = calibration_samples(graph, data)
        for target_name, link_name in PAIRS:
            target = load_target(target_name)
            if not args.no_emulate:
                target, calibrated = emulated_target(graph, target)
            else:
                calibrated = "target [cost] table"
            setup = prepare(graph, target, load_link(link_name), samples, note)
            best = search(graph, setup, "latency")
            private = search(graph, setup, "latency", Constraints(max_leakage=args.max_leakage))
            energy = search(graph, setup, "energy")
            rows.append((label, f"{target_name} + {link_name}", best, private, energy, calibrated, note))

    def ms(v: float) -> str:
        return f"{v * 1e3:,.1f}"

    print(
        "| model | target + link | chosen split (latency) | predicted latency ms | all on device ms | "
        f"all on server ms | chosen with leakage <= {args.max_leakage} | chosen for energy (mJ) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for label, pair, best, private, energy, _, _ in rows:
        dev, srv = best.evaluations[-1], best.evaluations[0]
        c, p, e = best.choice, private.choice, energy.choice
        print(
            f"| {label} | {pair} | {c.candidate.label} | {ms(c.latency_s)} | {ms(dev.latency_s)} | {ms(srv.latency_s)} "
            f"| {p.candidate.label}: {ms(p.latency_s)} ms, leakage {p.leakage:.2f} "
            f"| {e.candidate.label}: {e.energy_j * 1e3:.2f} mJ |"
        )
    print()
    for label, pair, best, _, _, calibrated, note in rows:
        srv = best.evaluations[0]
        print(
            f"- {label}, {pair}: device costs from {calibrated}; leakage on {note}; all on server sends "
            f"{srv.wire_bytes:,} B (uplink {ms(srv.uplink_s)} ms, server {ms(srv.server_s)} ms, "
            f"downlink {ms(srv.downlink_s)} ms)"
        )


if __name__ == "__main__":
    main()
