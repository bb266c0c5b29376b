"""Noise at the cut: the device adds int8 noise to every tensor it sends (the IR op `noise`).

A split deployment sends intermediate activations, and a learned decoder can rebuild the input from
them (He, Zhang and Lee, "Model inversion attacks against collaborative inference", ACSAC 2019).
Noise added on the device, before anything leaves it, is a defence the server cannot undo as long
as it cannot predict the noise: the generated code draws it from the platform's CSPRNG
(runtime_c/include/tinysplit/platform.h).

`add_noise(head, sent, spec)` rewrites the device half of a split (passes.split.split_graph): for
each sent tensor t, its producer now writes `<t>_clean` and a noise node computes t from it, so the
wire, the tail and the server bundle keep their names and quantization. Noise nodes run last, in
the order of `sent`; with a seed, each reads its own part of the seeded stream (attr `offset`).

The law (quant.noise_table): Gaussian or Laplace with standard deviation `scale` in quantization
steps of the sent tensor, rounded to integers, added with int8 saturation.

`calibrate(...)` picks the largest scale whose accuracy drop stays within a bound: the `--noise auto`
of the command line. Without labels the drop is measured as the share of samples whose top-1
prediction the noise changes, an upper bound of the accuracy drop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tinysplit.compiler import quant, reference
from tinysplit.compiler.calibration import batched
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph, Node, Tensor

BATCH = 250  # samples per batched reference run
GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0)  # --noise auto: scales tried first (steps)
REFINE_STEPS = 6  # then bisection (geometric) between the last scale within the bound and the first beyond


@dataclass(frozen=True)
class NoiseSpec:
    distribution: str  # quant.NOISE_DISTRIBUTIONS
    scale: float  # standard deviation in quantization steps; 0 = no noise
    seed: int | None = None  # None: the device CSPRNG (production); an int: reproducible (tests)

    def __post_init__(self) -> None:
        if self.distribution not in quant.NOISE_DISTRIBUTIONS:
            raise CompileError(f"noise distribution {self.distribution!r}: choose gaussian or laplace")
        if not (math.isfinite(self.scale) and self.scale >= 0):
            raise CompileError(f"noise scale {self.scale}: must be a finite number of quantization steps >= 0")

    @property
    def label(self) -> str:
        return "none" if self.scale == 0 else f"{self.distribution}:{self.scale:g}"


@dataclass(frozen=True)
class AutoNoise:
    """--noise auto: the distribution, scale to be calibrated."""

    distribution: str = "gaussian"


def parse_noise(text: str) -> NoiseSpec | AutoNoise | None:
    """--noise none | gaussian:SCALE | laplace:SCALE | auto | gaussian:auto | laplace:auto."""
    text = text.strip().lower()
    if text in ("", "none", "off"):
        return None
    if text == "auto":
        return AutoNoise()
    distribution, _, scale = text.partition(":")
    if distribution not in quant.NOISE_DISTRIBUTIONS or not scale:
        raise CompileError(f"--noise {text!r}: expected none, auto, gaussian:SCALE, laplace:SCALE or DIST:auto")
    if scale == "auto":
        return AutoNoise(distribution)
    try:
        value = float(scale)
    except ValueError:
        raise CompileError(f"--noise {text!r}: SCALE must be a number of quantization steps") from None
    spec = NoiseSpec(distribution, value)
    return spec if spec.scale > 0 else None


def add_noise(head: Graph, sent: Sequence[str], spec: NoiseSpec) -> Graph:
    """A copy of the device half with a noise node in front of every sent tensor (see module doc)."""
    out = head.copy()
    if spec.scale == 0:
        return out
    offset = 0
    for name in sent:
        t = out.tensors[name]
        producer = out.producer(name)
        if producer is None:
            raise CompileError(f"noise: sent tensor {name!r} is a device input; add noise where it is computed")
        if t.dtype != "int8" or t.quant is None:
            raise CompileError(f"noise: sent tensor {name!r} is {t.dtype}; noise is added to int8 tensors")
        clean = out.add_tensor(Tensor(out.unique_name(f"{name}_clean"), t.shape, "int8", t.quant))
        for node in out.nodes():  # the device's own consumers keep reading the clean value
            node.inputs = [clean.name if i == name else i for i in node.inputs]
        producer.outputs = [clean.name if o == name else o for o in producer.outputs]
        out.rebuild_edges()
        attrs = {"distribution": spec.distribution, "scale": float(spec.scale), "seed": spec.seed, "offset": offset}
        out.add_node(Node(out.unique_name(f"noise_{name}"), "noise", [clean.name], [name], attrs))
        offset += quant.NOISE_WORD_BYTES * t.size
    out.validate()
    return out


# running the halves on many samples ---------------------------------------------------------------
def run_many(graph: Graph, feeds: dict[str, np.ndarray], batch: int = BATCH) -> dict[str, np.ndarray]:
    """The graph's outputs for N samples: feeds [N, *shape[1:]] per input (batch-1 graph), outputs likewise."""
    count = len(next(iter(feeds.values())))
    parts: dict[str, list[np.ndarray]] = {t: [] for t in graph.outputs}
    cache: dict[int, Graph | None] = {}
    for start in range(0, count, batch):
        size = min(batch, count - start)
        if size not in cache:
            cache[size] = batched(graph, size)
        g = cache[size]
        chunk = {k: v[start : start + size] for k, v in feeds.items()}
        if g is not None:
            for k, v in reference.run(g, chunk).items():
                parts[k].append(v)
        else:
            for i in range(size):
                for k, v in reference.run(graph, {n: a[i : i + 1] for n, a in chunk.items()}).items():
                    parts[k].append(v)
    return {k: np.concatenate(v) for k, v in parts.items()}


def noisy(values: np.ndarray, spec: NoiseSpec, seed: int, offset: int = 0) -> np.ndarray:
    """int8 values [N, ...] with the noise of `spec`, drawn from the ChaCha20 stream of `seed` from `offset`."""
    if spec.scale == 0:
        return values
    k, cdf = quant.noise_table(spec.distribution, spec.scale)
    random = reference.noise_keystream(seed, offset, quant.NOISE_WORD_BYTES * values.size)
    return quant.add_noise(values, k, cdf, random)


# --noise auto ----------------------------------------------------------------------------------
@dataclass
class Calibrated:
    spec: NoiseSpec
    max_drop: float  # percentage points
    measure: str  # "accuracy" (labels given) or "top-1 changes" (upper bound of the accuracy drop)
    samples: int
    repeats: int
    trials: list[dict[str, float]] = field(default_factory=list)  # {scale, drop} in the order tried

    def as_dict(self) -> dict[str, Any]:
        return {
            "distribution": self.spec.distribution, "scale": self.spec.scale, "max_drop": self.max_drop,
            "measure": self.measure, "samples": self.samples, "repeats": self.repeats, "trials": self.trials,
        }  # fmt: skip


def calibrate(
    tail: Graph,
    cut: dict[str, np.ndarray],
    distribution: str = "gaussian",
    max_drop: float = 1.0,
    labels: np.ndarray | None = None,
    *,
    repeats: int = 2,
    seed: int = 0,
    grid: Sequence[float] = GRID,
) -> Calibrated:
    """The largest scale whose accuracy drop (points) on these samples stays within max_drop.

    cut: the clean int8 values of each sent tensor (the tail's inputs), [N, *shape[1:]]. The drop of a
    scale is averaged over `repeats` noise draws. Scales are tried on `grid`, stopping at the first one
    beyond the bound (accuracy falls with noise, up to sampling error), then refined by bisection.
    """
    outputs = tail.outputs[0]
    clean = run_many(tail, cut)[outputs].reshape(len(next(iter(cut.values()))), -1).argmax(axis=1)
    truth = clean if labels is None else np.asarray(labels).reshape(-1)
    base = float(np.mean(clean == truth))
    trials: list[dict[str, float]] = []

    def drop(scale: float) -> float:
        spec = NoiseSpec(distribution, scale)
        accs = []
        for r in range(repeats):
            feeds, offset = {}, 0
            for name in tail.inputs:  # one stream per draw, consumed in the order the device sends
                feeds[name] = noisy(cut[name], spec, seed + r, offset)
                offset += quant.NOISE_WORD_BYTES * cut[name].size
            pred = run_many(tail, feeds)[outputs].reshape(len(truth), -1).argmax(axis=1)
            accs.append(float(np.mean(pred == truth)))
        value = 100.0 * (base - float(np.mean(accs)))
        trials.append({"scale": scale, "drop": value})
        return value

    good = 0.0
    bad: float | None = None
    for scale in grid:
        if drop(scale) > max_drop:
            bad = scale
            break
        good = scale
    if bad is not None:
        lo = good if good > 0 else bad / 4.0
        for _ in range(REFINE_STEPS):
            mid = math.sqrt(lo * bad)
            if drop(mid) > max_drop:
                bad = mid
            else:
                good = lo = mid
    measure = "accuracy" if labels is not None else "top-1 changes"
    return Calibrated(NoiseSpec(distribution, good), max_drop, measure, len(truth), repeats, trials)


def apply_option(
    head: Graph,
    tail: Graph,
    option: str,
    samples: dict[str, np.ndarray] | None = None,
    max_drop: float = 1.0,
    labels: np.ndarray | None = None,
    attack: bool = True,
    attack_samples: dict[str, np.ndarray] | None = None,
) -> tuple[Graph, dict[str, Any]]:
    """The compile hook: --noise OPTION on the device half; returns (head, report section).

    samples: calibration inputs of the whole model, [N, *shape] or [N, *shape[1:]] per graph input (auto needs them).
    With `attack`, the section also gives the SSIM of the inversion attack without and with the noise
    (compiler.privacy.attack_leakage) on `attack_samples` (--privacy-data; default: `samples`), or why it
    could not be measured.
    """
    parsed = parse_noise(option)
    if parsed is None:
        return head, {"noise": "none"}
    sent = list(tail.inputs)
    feeds = head_feeds(head, samples)
    clean = {t: v for t, v in run_many(head, feeds).items() if t in sent} if feeds else {}
    section: dict[str, Any] = {}
    if isinstance(parsed, AutoNoise):
        if not clean:
            raise CompileError("--noise auto needs calibration data to measure the accuracy drop")
        found = calibrate(tail, clean, parsed.distribution, max_drop, labels)
        spec, section["calibration"] = found.spec, found.as_dict()
    else:
        spec = parsed
    section["noise"] = spec.label
    result = add_noise(head, sent, spec) if spec.scale > 0 else head  # checks the sent tensors first
    if attack and attack_samples is not None:
        feeds = head_feeds(head, attack_samples)
        clean = {t: v for t, v in run_many(head, feeds).items() if t in sent}
    if attack and clean:
        source = "--privacy-data" if attack_samples is not None else "calibration samples"
        section |= attack_section(head, sent, feeds, clean, spec, source)
    elif attack:
        section |= {"attack_ssim": None, "attack": "not measured: no real inputs (--calibration or --privacy-data)"}
    return result, section


def head_feeds(head: Graph, samples: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """[N, *shape] or [N, *shape[1:]] per graph input (calibration.Calibration.samples) -> what run_many takes."""
    return {k: np.asarray(v).reshape(len(v), *head.tensors[k].shape[1:]) for k, v in (samples or {}).items()
            if k in head.inputs}  # fmt: skip


def attack_section(
    head: Graph,
    sent: list[str],
    feeds: dict[str, np.ndarray],
    clean: dict[str, np.ndarray],
    spec: NoiseSpec,
    source: str = "calibration samples",
) -> dict[str, Any]:
    """SSIM of the quick inversion attack on these samples, without and with the noise."""
    from tinysplit.compiler import privacy  # imports this module: only at call time

    quants = [head.tensors[t].quant for t in sent]

    def real(values: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [quant.dequantize(values[t], q) for t, q in zip(sent, quants, strict=True) if q is not None]

    noisy_sent, offset = {}, 0
    for t in sent:
        noisy_sent[t] = noisy(clean[t], spec, seed=1, offset=offset)
        offset += quant.NOISE_WORD_BYTES * clean[t].size
    inputs = next(iter(feeds.values()))
    try:
        return {
            "attack_ssim_without_noise": privacy.attack_leakage(inputs, real(clean)),
            "attack_ssim": privacy.attack_leakage(inputs, real(noisy_sent)),
            "attack": f"compiler.privacy.attack_leakage (MLP and linear decoders, {len(inputs)} {source})",
        }
    except (ValueError, CompileError) as e:
        return {"attack_ssim": None, "attack": f"not measured: {e}"}
