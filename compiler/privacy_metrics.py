"""Leakage scores of what a device sends: distance correlation between its input and the sent tensors.

Distance correlation (Székely, Rizzo and Bakirov, "Measuring and testing dependence by correlation
of distances", Annals of Statistics 35(6), 2007) is 0 exactly when two random vectors are
independent and 1 when one is a similarity transform of the other; unlike Pearson correlation it
sees any dependence and compares vectors of different dimensions.

The plain sample statistic (double-centred distance matrices A, B; dCov² = mean(A * B)) is biased
upwards: two independent sets of 200 samples in 5 and 7 dimensions score about 0.3, which would
make sending noise look leaky. So the score here is the bias-corrected version of Székely and
Rizzo, "Partial distance correlation with methods for dissimilarities", Annals of Statistics 42(6),
2014, §2: U-centred matrices (Ã_ij = a_ij - a_i./(n-2) - a_.j/(n-2) + a../((n-1)(n-2)), 0 on the
diagonal) give an unbiased dCov², and

    score = sqrt(max(0, dCov²_u(X, Y) / sqrt(dCov²_u(X, X) * dCov²_u(Y, Y))))

in [0, 1], about 0 for independent data and exactly 1 for a similarity transform. O(n² d) time,
O(n²) memory: meant for a few hundred samples (at least 4).
"""

from __future__ import annotations

import numpy as np


def u_centered_distances(x: np.ndarray) -> np.ndarray:
    """The U-centred n x n Euclidean distance matrix of n samples (leading axis), in float64."""
    n = len(x)
    if n < 4:
        raise ValueError("the bias-corrected distance correlation needs at least 4 samples")
    flat = np.asarray(x, dtype=np.float64).reshape(n, -1)
    sq = np.einsum("ij,ij->i", flat, flat)
    d = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * (flat @ flat.T), 0.0))
    np.fill_diagonal(d, 0.0)
    rows = d.sum(axis=1)
    u = d - rows[:, None] / (n - 2) - rows[None, :] / (n - 2) + d.sum() / ((n - 1) * (n - 2))
    np.fill_diagonal(u, 0.0)
    return u


def dcor_u_centered(a: np.ndarray, b: np.ndarray) -> float:
    """Bias-corrected distance correlation from two U-centred distance matrices of the same samples."""
    dvar = float(np.sum(a * a)) * float(np.sum(b * b))  # the 1/(n(n-3)) factors cancel in the ratio
    if dvar <= 0.0:
        return 0.0  # a constant sample set is independent of everything
    return float(np.sqrt(max(float(np.sum(a * b)) / np.sqrt(dvar), 0.0)))


def distance_correlation(x: np.ndarray, y: np.ndarray) -> float:
    """Bias-corrected dCor of paired samples x[i], y[i] (any trailing shapes, flattened per sample)."""
    if len(x) != len(y):
        raise ValueError(f"{len(x)} samples of x but {len(y)} of y")
    return dcor_u_centered(u_centered_distances(x), u_centered_distances(y))
