"""The split's part of the report: a JSON section, a Markdown section and a PNG plot per candidate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinysplit.compiler.links import goodput_bps
from tinysplit.passes.split_search import MEASURES, SplitResult, as_dict

PLOT = "split.png"
ASSUMPTIONS = [
    "end-to-end latency = device compute + uplink + server compute + downlink: until the device holds the answer",
    "device time: emulated instructions per unit of work (target [cost] table, from QEMU -icount runs) "
    "x cycles_per_instruction / clock; energy: active power x time + radio energy",
    "message: the sealed request of server/wire.py (COSE_Encrypt0 over CBOR, int8 tensors) in CoAP "
    "(block-wise above 1024 B, one block in flight) over UDP and the link's frames (compiler/links.py)",
    "radio energy counts airtime and inter-frame gaps only: not connection set-up, sleep between "
    "connection events, waiting for the server or retransmissions",
    "server time: the host profile's onnxruntime speed (targets/host.toml [cost])",
    "float32 cut tensors are quantized on the device to int8 (per tensor, min/max of the calibration samples)",
]
LEAKAGE = {
    "attack": "leakage: SSIM of the input the learned inversion attack (compiler.privacy) rebuilds from the sent "
    "tensors, on held-out samples (0.3 and below: unrecognizable, He et al. 2019); measured on the candidates "
    "that meet every other constraint ('-': not measured); 1 when the input itself is sent, 0 when nothing is",
    "dcor": "leakage: distance correlation between the model input and the sent tensors (0: independent, "
    "1: a similarity transform of the input)",
}


def leakage_section(result: SplitResult) -> dict[str, Any]:
    """Which leakage measure the search used, on what data, and whether it includes the device's noise."""
    setup = result.setup
    return {
        "measure": setup.measure,
        "name": MEASURES[setup.measure],
        "data": setup.leakage_note,
        "noise": setup.noise.label if setup.noise is not None else "none",
        "measured": sum(e.leakage is not None for e in result.evaluations),
    }


def split_section(result: SplitResult, emitted: dict[str, Any] | None = None) -> dict[str, Any]:
    """report.json's "split" entry: every candidate in SI units (s, J, B), the choice and why."""
    setup, evals = result.setup, result.evaluations
    return {
        "target": setup.target.name,
        "link": {
            "name": setup.link.name,
            "description": setup.link.description,
            "goodput_bps": round(goodput_bps(setup.link)),
        },
        "server": setup.server.name,
        "objective": result.objective,
        "constraints": {"max_bytes": result.constraints.max_bytes, "max_leakage": result.constraints.max_leakage},
        "forced": result.forced,
        "calibration": setup.samples,
        "leakage": leakage_section(result),
        "chosen": result.chosen,
        "choice": as_dict(result.choice),
        "all_on_device": as_dict(evals[-1]),
        "all_on_server": as_dict(evals[0]),
        "pareto": result.pareto,
        "candidates": [as_dict(e) for e in evals],
        "emitted": emitted or {},
        "plot": PLOT,
        "assumptions": [*ASSUMPTIONS, LEAKAGE[setup.measure]],
    }


def _ms(v: float) -> str:
    return f"{v * 1e3:,.2f}"


def _mj(v: float | None) -> str:
    return "-" if v is None else f"{v * 1e3:,.3f}"


def _value(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def render_split_markdown(section: dict[str, Any]) -> str:
    choice, device, server = section["choice"], section["all_on_device"], section["all_on_server"]
    link, constraints = section["link"], section["constraints"]
    how = f"forced by --split {section['forced']}" if section["forced"] else f"objective: {section['objective']}"
    limits = ", ".join(f"{k.replace('_', '-')} {v}" for k, v in constraints.items() if v is not None) or "none"
    leakage = section["leakage"]
    attack = leakage["measure"] == "attack"
    unit = "SSIM" if attack else "dCor"
    noise = "" if leakage["noise"] == "none" else f", with the device's noise ({leakage['noise']})"
    lines = [
        "## Split",
        "",
        f"Target **{section['target']}**, link **{link['name']}** ({link['description']}; modelled goodput "
        f"{link['goodput_bps'] / 1e3:,.0f} kbit/s), server profile **{section['server']}**. Chosen: "
        f"**{choice['label']}** ({how}; constraints: {limits}).",
        "",
        f"Leakage measure: **{leakage['name']}**{noise} ({leakage['data']}).",
        "",
        f"| | latency ms | device energy mJ | message B | leakage ({unit}) |",
        "|---|---|---|---|---|",
    ]
    for name, e in (("chosen", choice), ("all on device", device), ("all on server", server)):
        leak = _value(e["leakage"])
        lines.append(f"| {name} | {_ms(e['latency_s'])} | {_mj(e['energy_j'])} | {e['wire_bytes']:,} | {leak} |")
    lines += noise_lines(section["emitted"].get("noise"))
    lines += [
        "",
        f"Calibration data for float cut scales and distance correlation: {section['calibration']}.",
        "",
        f"Every candidate (★ chosen, P: on the Pareto front of latency, energy, bytes and leakage; "
        f"plot: {section['plot']}):",
        "",
        "| k | cut | tensors | cut B | message B | device ms | link ms | server ms | total ms | energy mJ "
        f"| leakage ({unit}) |{' dCor |' if attack else ''} RAM B | flash B | fits |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if attack else "") + "---|---|---|",
    ]
    for e in section["candidates"]:
        mark = ("★" if e["index"] == section["chosen"] else "") + ("P" if e["index"] in section["pareto"] else "")
        leak = _value(e["leakage"]) + (f" | {_value(e['dcor'])}" if attack else "")
        fits = "yes" if e["fits"] else "no: " + "; ".join(e["problems"])
        lines.append(
            f"| {e['index']}{mark} | {e['label']} | {len(e['cut'])} | {e['cut_bytes']:,} | {e['wire_bytes']:,} | "
            f"{_ms(e['device_s'])} | {_ms(e['uplink_s'] + e['downlink_s'])} | {_ms(e['server_s'])} | "
            f"{_ms(e['latency_s'])} | {_mj(e['energy_j'])} | {leak} | {e['ram_bytes']:,} | {e['flash_bytes']:,} | "
            f"{fits} |"
        )
    lines += ["", "Model conventions:", ""] + [f"- {a}" for a in section["assumptions"]]
    return "\n".join(lines) + "\n"


def noise_lines(noise: dict[str, Any] | None) -> list[str]:
    """The --noise paragraph: the law, how --noise auto chose it, and the inversion attack's SSIM (or why none)."""
    if not noise or noise["noise"] == "none":
        return []
    text = f"Noise on the device: **{noise['noise']}** (standard deviation in quantization steps of each sent tensor)"
    if "calibration" in noise:
        c = noise["calibration"]
        text += (
            f", the largest scale whose accuracy drop ({c['measure']}, {c['samples']} calibration samples) "
            f"stays within {c['max_drop']:g} points"
        )
    if noise.get("attack_ssim") is not None:
        text += (
            f". Inversion attack SSIM on the chosen cut: **{noise['attack_ssim']:.3f}** with the noise, "
            f"{noise['attack_ssim_without_noise']:.3f} without ({noise['attack']})"
        )
    elif "attack" in noise:
        text += f". Inversion attack SSIM {noise['attack']}"
    return ["", text + "."]


def plot_split(section: dict[str, Any], path: Path) -> None:
    """Latency, energy, message bytes and leakage per candidate, the chosen cut marked; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cands = section["candidates"]
    ks = [e["index"] for e in cands]
    fig, axes = plt.subplots(4, 1, figsize=(max(6.0, 0.45 * len(ks) + 2), 9), sharex=True)
    lat, energy, size, leak = axes
    bottom = [0.0] * len(ks)
    for key, label in (
        ("device_s", "device"),
        ("uplink_s", "uplink"),
        ("server_s", "server"),
        ("downlink_s", "downlink"),
    ):
        values = [e[key] * 1e3 for e in cands]
        lat.bar(ks, values, bottom=bottom, label=label)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    lat.set_ylabel("latency ms")
    lat.legend(fontsize=7, ncol=4)
    if all(e["compute_j"] is not None for e in cands):
        compute = [e["compute_j"] * 1e3 for e in cands]
        energy.bar(ks, compute, label="compute")
        energy.bar(ks, [e["radio_j"] * 1e3 for e in cands], bottom=compute, label="radio")
        energy.legend(fontsize=7, ncol=2)
    energy.set_ylabel("device mJ")
    size.bar(ks, [e["wire_bytes"] for e in cands], color="tab:gray")
    size.set_ylabel("message B")
    leak.plot(ks, [e["leakage"] if e["leakage"] is not None else float("nan") for e in cands], marker="o")
    leak.set_ylabel("leakage (SSIM)" if section["leakage"]["measure"] == "attack" else "leakage (dCor)")
    leak.set_ylim(-0.05, 1.05)
    leak.set_xlabel("cut k: the first k layers run on the device")
    leak.set_xticks(ks)
    for ax in axes:
        ax.axvline(section["chosen"], color="tab:red", linestyle="--", linewidth=1)
        for e in cands:
            if not e["fits"]:
                ax.axvspan(e["index"] - 0.5, e["index"] + 0.5, color="0.85", zorder=0)
    lat.set_title(
        f"{section['target']} + {section['link']['name']}: chosen k={section['chosen']} (dashed); grey: does not fit",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_split_report(section: dict[str, Any], out_dir: Path) -> None:
    """split.png, and the split section appended to report.md (call after compiler.report.write_report)."""
    plot_split(section, out_dir / PLOT)
    md = out_dir / "report.md"
    previous = md.read_text() if md.exists() else ""
    md.write_text(previous + ("\n" if previous else "") + render_split_markdown(section))
