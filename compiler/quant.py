"""Integer numerics shared by the reference interpreter and the backends.

This module is the specification the C and Rust kernels implement bit for bit. Everything that
needs floating point (multipliers, lookup tables) is computed here, at compile time; the device
only ever sees integers.

Requantization (TFLite/CMSIS-NN convention, double rounding):
    requantize(acc, m, s) = rdiv_pot(high_mul(acc << max(s, 0), m), max(-s, 0))
    high_mul(a, m)   = (a * m + 2**30) >> 31          (64-bit product, arithmetic shift)
    rdiv_pot(x, e)   = x / 2**e rounded half away from zero
with the real multiplier M = m * 2**(s - 31), m in [2**30, 2**31).
ONNX QuantizeLinear, by contrast, rounds half to even: `quantize` below does that.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tinysplit.compiler.ir import Quant, Tensor

INT8_MIN, INT8_MAX = -128, 127
ADD_LEFT_SHIFT = 20  # headroom for elementwise add: |q - zp| <= 255 < 2**8, times 2**20 fits int32
SOFTMAX_EXP_BITS = 20  # exp table entries are exp(x) * 2**20
SOFTMAX_OUT_BITS = 16  # output multiplier precision


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Real multiplier -> (m, s) with real ~= m * 2**(s - 31), m in [2**30, 2**31) or 0."""
    if real <= 0.0 or not math.isfinite(real):
        if real == 0.0:
            return 0, 0
        raise ValueError(f"multiplier must be positive and finite, got {real}")
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    m = round(mantissa * (1 << 31))
    if m == 1 << 31:
        m //= 2
        exponent += 1
    if exponent < -31:  # too small to matter: the result is always 0
        return 0, 0
    if exponent > 30:
        raise ValueError(f"multiplier {real} too large for int32 requantization")
    return int(m), int(exponent)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """x / 2**exponent, rounded half away from zero (int64 in, int64 out)."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    result = x >> e
    threshold = (mask >> 1) + (result < 0)
    return result + (remainder > threshold)


def requantize(acc: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """The fixed-point rescale every int8 kernel applies to its int32 accumulator (see module doc)."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    left = np.maximum(s, 0)
    right = np.maximum(-s, 0)
    shifted = (acc << left).astype(np.int32).astype(np.int64)  # the C kernels shift in 32 bits
    high = (shifted * m + (np.int64(1) << 30)) >> 31
    return rounding_divide_by_pot(high, right)


def round_half_away(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize(x: np.ndarray, q: Quant) -> np.ndarray:
    """ONNX QuantizeLinear to int8 (round half to even, saturate)."""
    scale, zp = _broadcast(q, np.asarray(x).ndim)
    r = np.rint(np.asarray(x, dtype=np.float32) / scale) + zp
    return np.clip(r, INT8_MIN, INT8_MAX).astype(np.int8)


def dequantize(x: np.ndarray, q: Quant) -> np.ndarray:
    scale, zp = _broadcast(q, np.asarray(x).ndim)
    return ((np.asarray(x).astype(np.int32) - zp).astype(np.float32) * scale).astype(np.float32)


def _broadcast(q: Quant, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    if q.axis is None or q.scale.size == 1:
        return q.scale.reshape(()), q.zero_point.reshape(()).astype(np.int32)
    shape = [1] * ndim
    shape[q.axis] = -1
    return q.scale.reshape(shape), q.zero_point.reshape(shape).astype(np.int32)


def activation_bounds(act_min: float, act_max: float, q: Quant) -> tuple[int, int]:
    """The int8 clamp a kernel applies for a fused activation range in real units."""
    scale, zp = q.scalar()
    lo = INT8_MIN if act_min == -math.inf else max(INT8_MIN, zp + int(round_half_away(act_min / scale)))
    hi = INT8_MAX if act_max == math.inf else min(INT8_MAX, zp + int(round_half_away(act_max / scale)))
    return lo, hi


@dataclass
class ChannelRequant:
    """Per-output-channel multipliers for conv2d/fully_connected: M_c = s_x * s_w[c] / s_y."""

    multipliers: np.ndarray  # int32 [C]
    shifts: np.ndarray  # int32 [C]


def conv_requant(x: Tensor, w: Tensor, y: Tensor, channels: int) -> ChannelRequant:
    assert x.quant is not None and w.quant is not None and y.quant is not None
    sx, _ = x.quant.scalar()
    sy, _ = y.quant.scalar()
    sw = np.broadcast_to(w.quant.scale.astype(np.float64), (channels,))
    pairs = [quantize_multiplier(sx * float(s) / sy) for s in sw]
    return ChannelRequant(
        np.array([p[0] for p in pairs], dtype=np.int32), np.array([p[1] for p in pairs], dtype=np.int32)
    )


@dataclass
class AddParams:
    """add: y = requant(rescale_a(a) + rescale_b(b)); each input is first scaled by 2**20 / (2*max_s)."""

    a_multiplier: int
    a_shift: int
    b_multiplier: int
    b_shift: int
    out_multiplier: int
    out_shift: int


def add_params(sa: float, sb: float, sy: float) -> AddParams:
    twice_max = 2.0 * max(sa, sb)
    am, ash = quantize_multiplier(sa / twice_max)
    bm, bsh = quantize_multiplier(sb / twice_max)
    om, osh = quantize_multiplier(twice_max / ((1 << ADD_LEFT_SHIFT) * sy))
    return AddParams(am, ash, bm, bsh, om, osh)


def lookup_table(fn: Callable[[np.ndarray], np.ndarray], qx: Quant, qy: Quant) -> np.ndarray:
    """int8 -> int8 table of a unary function, indexed by (q + 128): exact for int8 inputs."""
    q = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int32)
    sx, zx = qx.scalar()
    sy, zy = qy.scalar()
    real = fn(sx * (q - zx).astype(np.float64))
    return np.clip(round_half_away(real / sy) + zy, INT8_MIN, INT8_MAX).astype(np.int8)


def softmax_exp_table(sx: float) -> np.ndarray:
    """exp(-sx * k) * 2**20 for k = 0..255: softmax of int8 needs only max - q in [0, 255]."""
    k = np.arange(256, dtype=np.float64)
    return np.floor(np.exp(-sx * k) * (1 << SOFTMAX_EXP_BITS) + 0.5).astype(np.int32)


def softmax_out_multiplier(sy: float) -> int:
    """round(2**16 / sy): y_q = zy + round_half_up(E_i * mult / (sum * 2**16))."""
    return round(float(1 << SOFTMAX_OUT_BITS) / sy)


# Added for the reference interpreter (compiler/reference.py); the C/Rust kernels and backends use
# the same helpers so that every compile-time constant and rounding rule has one definition.


def mul_multiplier(sa: float, sb: float, sy: float) -> tuple[int, int]:
    """int8 mul: M = sa * sb / sy (evaluated left to right in double precision)."""
    return quantize_multiplier(sa * sb / sy)


def quantize_constant(value: float, q: Quant) -> int:
    """A real constant (pad value) as int8: zp + round_half_away(value / scale), saturated."""
    scale, zp = q.scalar()
    return int(np.clip(zp + int(round_half_away(np.float64(value) / scale)), INT8_MIN, INT8_MAX))


def rounding_divide(num: np.ndarray, den: np.ndarray | int) -> np.ndarray:
    """num / den for den > 0, rounded half away from zero: C's (num +- den/2) / den (int64)."""
    num = np.asarray(num, dtype=np.int64)
    den = np.asarray(den, dtype=np.int64)
    q = (np.abs(num) + den // 2) // den
    return np.where(num < 0, -q, q)


def softmax_output(e: np.ndarray, total: np.ndarray, multiplier: int) -> np.ndarray:
    """round_half_up(e * multiplier / (total * 2**16)) = floor((2*e*m + total*2**16) / (2*total*2**16)).

    e: exp table entries of a row, total: their sum (int64, > 0), multiplier: softmax_out_multiplier.
    The caller adds the output zero point and saturates.
    """
    e = np.asarray(e, dtype=np.int64)
    den = np.asarray(total, dtype=np.int64) << SOFTMAX_OUT_BITS
    return (2 * e * np.int64(multiplier) + den) // (2 * den)


def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # exp(-x) = inf for x < -709 gives the right limit 0
        return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


# The real functions behind the int8 lookup-table ops (quant.lookup_table(UNARY[op], qx, qy)).
UNARY: dict[str, Callable[[np.ndarray], np.ndarray]] = {"sigmoid": sigmoid, "tanh": np.tanh}


# Noise at the cut (passes/noise.py, reference.noise, runtime_c/src/noise_s8.c). The device adds an
# integer n to every int8 element of a sent tensor and saturates: y = sat8(x + n). n is the noise law
# (scale = its standard deviation sigma, in quantization steps of the tensor) rounded to the nearest
# integer, drawn by inversion from one little-endian 32-bit uniform word u per element:
#     n = -K + #{i : cdf[i] <= u},   cdf[i] = min(round(2**32 * P(n <= i - K)), 2**32 - 1), i in [0, 2K)
# K is the smallest bound (at most NOISE_MAX_STEPS) beyond which each tail holds less than 2**-33 of
# the mass; that mass is folded into +-K. |n| >= 255 saturates every int8 x, so the cap changes no
# output. One table lookup per element, integers only: the device needs no floating point.
NOISE_DISTRIBUTIONS = ("gaussian", "laplace")
NOISE_MAX_STEPS = 255
NOISE_WORD_BYTES = 4  # random bytes per element


def noise_cdf(distribution: str, scale: float, t: np.ndarray) -> np.ndarray:
    """P(sigma * Z <= t) of the continuous law, sigma = scale (Laplace: b = sigma / sqrt(2))."""
    t = np.asarray(t, dtype=np.float64)
    if distribution == "gaussian":
        return np.array([0.5 * math.erfc(-v / (scale * math.sqrt(2.0))) for v in t.reshape(-1)]).reshape(t.shape)
    if distribution == "laplace":
        b = scale / math.sqrt(2.0)
        return np.where(t < 0, 0.5 * np.exp(np.minimum(t, 0) / b), 1.0 - 0.5 * np.exp(-np.maximum(t, 0) / b))
    raise ValueError(f"noise distribution {distribution!r} is not one of {', '.join(NOISE_DISTRIBUTIONS)}")


def noise_table(distribution: str, scale: float) -> tuple[int, np.ndarray]:
    """(K, cdf uint32[2K]) of the rounded noise law: see the comment above NOISE_DISTRIBUTIONS."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"noise scale must be positive and finite, got {scale}")
    # P(n <= k) = P(sigma Z < k + 1/2): rounding to nearest, ties have probability 0
    lower_tail = noise_cdf(distribution, scale, -np.arange(1, NOISE_MAX_STEPS + 1) - 0.5)  # P(n < -K)
    negligible = np.flatnonzero(lower_tail * 2.0**32 < 0.5)
    k = int(negligible[0]) + 1 if negligible.size else NOISE_MAX_STEPS
    cdf = noise_cdf(distribution, scale, np.arange(-k, k) + 0.5)
    return k, np.minimum(np.floor(cdf * 2.0**32 + 0.5), 2.0**32 - 1).astype(np.uint32)


def add_noise(x: np.ndarray, k: int, cdf: np.ndarray, random: bytes) -> np.ndarray:
    """y = sat8(x + n): element j (row-major) draws n from bytes 4j..4j+3 of `random` (see above)."""
    u = np.frombuffer(random, dtype="<u4", count=x.size)
    n = np.searchsorted(cdf, u, side="right").astype(np.int32) - k
    y = np.clip(np.asarray(x).reshape(-1).astype(np.int32) + n, INT8_MIN, INT8_MAX)
    return y.astype(np.int8).reshape(np.shape(x))
