"""How much noise at the cut protects the MNIST LeNet-5 against a learned inversion attack, and how much a
model trained for the split does: the issue-7 tables.

    .venv/bin/python bench/privacy_mnist.py [--out DIR] [--quick] [--skip-plain] [--skip-hardened]

Data: the 4,000 training images are the attacker's, the 1,000 held-out images the victims
(examples/mnist/data.py). Every model is quantized to int8 (min/max on 256 attacker images) and split.
Columns: compiler/privacy.py (accuracy of the int8 split model with noise; SSIM/PSNR of the adaptive,
noise-aware attacker trained on the 4,000 attacker images, scored on the held-out ones; distance
correlation; SSIM of an attacker trained without noise).

1. The plain model, examples/mnist/lenet5.onnx, at two cuts: after pool1 (`p1`, 8x14x14) and after the
   second ReLU (`r2`, 16x10x10, where He et al. report SSIM 0.73 for their inverse network). No noise,
   Gaussian and Laplace noise at 4..128 quantization steps, and the scale `--noise auto
   --max-accuracy-drop 1.0` picks on the attacker's set.
2. The hardened models, examples/mnist/lenet5_hardened_{p1,r2}.onnx (examples/mnist/README.md: trained
   with noise and a rate term at that cut), each at its own cut with Gaussian noise around its training
   scale. They are trained with noise, so `--noise auto` (a drop against the model without noise) is
   not meaningful for them: the table gives their accuracy against the plain float model instead.
3. Floors: the class-mean image (an attacker that learns the class and nothing else) and the attack on
   the plain model's 10 logits (what a split that returns an answer lets out at least).

Writes DIR/{plain,hardened_p1,hardened_r2}/privacy.json and PNGs, DIR/summary.json and DIR/summary.png.
Took 23 minutes on one CPU core of a loaded machine (--quick: a smaller decoder, a few minutes; its SSIM is lower).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from tinysplit.compiler import privacy

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
PLAIN = MNIST / "lenet5.onnx"
HARDENED = {cut: MNIST / f"lenet5_hardened_{cut}.onnx" for cut in ("p1", "r2")}
HARDENED_SCALES = {cut: (16.0, 24.0, 32.0, 40.0, 48.0) for cut in HARDENED}
GOAL_SSIM, GOAL_DROP = privacy.UNRECOGNIZABLE_SSIM, 1.0


def float_accuracy(model: Path, data: privacy.Dataset) -> float:
    """Held-out top-1 accuracy (%) of the float ONNX model in onnxruntime."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: data.x_test})[0]
    return 100.0 * float(np.mean(logits.argmax(axis=1) == data.y_test))


def summary_rows(reports: dict[str, privacy.Report], plain_float: float) -> list[dict[str, Any]]:
    rows = []
    for model, report in reports.items():
        for r in report.rows:
            rows.append({"model": model, **asdict(r), "drop_vs_plain_float": plain_float - r.accuracy})
    return rows


def format_summary(rows: list[dict[str, Any]], floors: dict[str, float], plain_float: float) -> str:
    lines = [
        f"plain float model: {plain_float:.1f} % held-out; goal: SSIM <= {GOAL_SSIM} at <= {GOAL_DROP:g} point drop",
        "",
        "| model | cut | noise | scale (steps) | accuracy % | drop vs plain float (pts) | SSIM | PSNR dB | dCor |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        noise = "none" if r["scale"] == 0 else r["distribution"] + (" (auto)" if r["auto"] else "")
        lines.append(
            f"| {r['model']} | {r['split']} | {noise} | {r['scale']:.3g} | {r['accuracy']:.1f} | "
            f"{r['drop_vs_plain_float']:+.1f} | {r['ssim']:.3f} | {r['psnr']:.1f} | {r['dcor']:.3f} |"
        )
    lines += [
        "",
        f"floor, class-mean image (the class and nothing else): SSIM {floors['class_mean']:.3f}",
        f"floor, the attack on the plain int8 model's 10 logits: SSIM {floors['logits']:.3f}",
    ]
    return "\n".join(lines)


def plot_summary(rows: list[dict[str, Any]], floors: dict[str, float], plain_float: float, path: Path) -> None:
    """Accuracy against the attack's SSIM, per model and cut (Gaussian noise), with the goal and the floors."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["distribution"] == "gaussian" or r["scale"] == 0:
            groups.setdefault((r["model"], r["split"]), []).append(r)
    for (model, split), group in groups.items():
        group = sorted(group, key=lambda r: r["scale"])
        ax.plot([r["ssim"] for r in group], [r["accuracy"] for r in group], marker="o",
                label=f"{model.split()[0]} model, cut {split}", ls="-" if model == "plain" else "--")  # fmt: skip
    ax.axhline(plain_float - GOAL_DROP, color="grey", ls=":", label=f"plain float - {GOAL_DROP:g} pt")
    ax.axvline(GOAL_SSIM, color="grey", ls="-.", label=f"SSIM {GOAL_SSIM} (unrecognizable)")
    ax.axvline(floors["class_mean"], color="tab:green", ls=":", label="class-mean floor")
    ax.axvline(floors["logits"], color="tab:olive", ls=":", label="attack on the logits")
    ax.set_xlabel("SSIM of the noise-aware inversion attack (held-out)")
    ax.set_ylabel("accuracy of the int8 split model with noise (%)")
    ax.set_ylim(max(0.0, min(r["accuracy"] for r in rows) - 2), 100)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/privacy_mnist"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--skip-hardened", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    config = privacy.QUICK if args.quick else privacy.AttackConfig()
    data = privacy.load_data("mnist")
    plain_float = float_accuracy(PLAIN, data)
    reports: dict[str, privacy.Report] = {}
    if not args.skip_plain:
        reports["plain"] = privacy.privacy_cli(
            PLAIN, ["p1", "r2"], "mnist", privacy.DEFAULT_SCALES, ("gaussian", "laplace"), args.out / "plain",
            auto=True, max_drop=GOAL_DROP, quick=args.quick,
        )  # fmt: skip
    if not args.skip_hardened:
        for cut, model in HARDENED.items():
            reports[f"hardened {cut}"] = privacy.privacy_cli(
                model, [cut], "mnist", HARDENED_SCALES[cut], ("gaussian",), args.out / f"hardened_{cut}",
                auto=False, quick=args.quick,
            )  # fmt: skip
    floors = {
        "class_mean": privacy.class_mean_ssim(data),
        "logits": privacy.output_ssim(privacy.load_model(PLAIN, data), data, config),
    }
    rows = summary_rows(reports, plain_float)
    print(format_summary(rows, floors, plain_float))
    seconds = time.perf_counter() - start
    summary = {"plain_float_accuracy": plain_float, "floors": floors, "rows": rows, "seconds": seconds,
               "attack": asdict(config), "goal": {"ssim": GOAL_SSIM, "max_drop": GOAL_DROP}}  # fmt: skip
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot_summary(rows, floors, plain_float, args.out / "summary.png")
    print(f"wrote {args.out}/summary.json, {args.out}/summary.png; total {seconds:.0f} s")


if __name__ == "__main__":
    main()
