"""How much noise at the cut protects the MNIST LeNet-5 against a learned inversion attack: the issue-7 table.

    .venv/bin/python bench/privacy_mnist.py [--out DIR] [--quick]

Model examples/mnist/lenet5.onnx, quantized to int8 (min/max on 256 attacker images); data: the 4,000
training images are the attacker's, the 1,000 held-out images the victims (examples/mnist/data.py).
Two cuts: after pool1 (`p1`, 8x14x14: conv1 + ReLU + max-pool) and after the second ReLU (`r2`,
16x10x10: conv2 + ReLU, where He et al. report SSIM 0.73 for their inverse network). For each cut:
no noise, Gaussian and Laplace noise at 4..128 quantization steps, and the scale `--noise auto
--max-accuracy-drop 1.0` picks on the attacker's set. Columns: compiler/privacy.py (accuracy of the int8
split model with noise; SSIM/PSNR of the adaptive attacker on held-out images; distance correlation;
SSIM of an attacker trained without noise). Writes DIR/privacy.json, privacy.png, privacy_reconstructions.png.
Takes about 25 minutes on 2 CPU cores (--quick: a smaller decoder, a few minutes; its SSIM is lower).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from tinysplit.compiler.privacy import DEFAULT_SCALES, privacy_cli

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("out/privacy_mnist"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--splits", default="p1,r2")
    args = ap.parse_args()
    start = time.perf_counter()
    privacy_cli(
        ROOT / "examples" / "mnist" / "lenet5.onnx",
        args.splits.split(","),
        "mnist",
        DEFAULT_SCALES,
        ("gaussian", "laplace"),
        args.out,
        auto=True,
        max_drop=1.0,
        quick=args.quick,
    )
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
