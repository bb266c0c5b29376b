"""Noise at the cut: the law the reference draws, the C kernel bit for bit, generated code, the pass.

The statistical tests use fixed seeds, so they are deterministic; their thresholds are what a
correct sampler passes with probability above 99.9 %, and what a wrong law (another scale, the
Laplace parameter b taken for the standard deviation, no rounding) fails by far.
"""

from __future__ import annotations

import ctypes
import math
import shutil
from ctypes import POINTER, Structure, c_int32, c_uint32, c_void_p
from pathlib import Path
from typing import Any

import c_runtime as crt
import numpy as np
import pytest

from tinysplit.backends.c import CTYPES, emit_c
from tinysplit.backends.lower import RandomBytes, lower
from tinysplit.compiler import quant as Q
from tinysplit.compiler import reference
from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.harness import IOSpec, run_host
from tinysplit.compiler.ir import Graph, Node, Quant, Tensor
from tinysplit.passes import noise as N
from tinysplit.passes.memory_plan import plan_memory

ROOT = Path(__file__).resolve().parents[1]
HOST_RANDOM = ROOT / "runtime_c" / "platform" / "random" / "random_host_chacha20.c"
SAMPLES = 200_000


def q(scale: float = 0.05, zero_point: int = -10) -> Quant:
    return Quant(np.array([scale], np.float32), np.array([zero_point], np.int32))


def noise_graph(shape: tuple[int, ...], distribution: str, scale: float, seed: int | None) -> Graph:
    g = Graph("noise")
    g.add_tensor(Tensor("x", shape, "int8", q()))
    g.add_tensor(Tensor("y", shape, "int8", q()))
    attrs = {"distribution": distribution, "scale": scale, "seed": seed, "offset": 0}
    g.add_node(Node("n", "noise", ["x"], ["y"], attrs))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def draw(distribution: str, scale: float, size: int = SAMPLES, seed: int = 7) -> np.ndarray:
    """Noise values n = y - x through the reference op, from x = 0 (no saturation for |n| <= 127)."""
    g = noise_graph((1, size), distribution, scale, seed)
    y = reference.run(g, {"x": np.zeros((1, size), np.int8)})["y"]
    return y.astype(np.int64).reshape(-1)


def law_cdf(distribution: str, sigma: float, t: float) -> float:
    """The continuous laws with standard deviation sigma, written out here independently of quant.py."""
    if distribution == "gaussian":
        return 0.5 * (1.0 + math.erf(t / (sigma * math.sqrt(2.0))))
    b = sigma / math.sqrt(2.0)  # Laplace: variance 2 b^2
    return 0.5 * math.exp(t / b) if t < 0 else 1.0 - 0.5 * math.exp(-t / b)


def pmf(distribution: str, scale: float, ks: np.ndarray) -> np.ndarray:
    """P(n = k) of the rounded law: F(k + 1/2) - F(k - 1/2)."""
    return np.array([law_cdf(distribution, scale, k + 0.5) - law_cdf(distribution, scale, k - 0.5) for k in ks])


def chi2_critical(df: int, z: float = 3.09) -> float:
    """Upper 0.1 % point of chi-square (Wilson-Hilferty), z = the normal 99.9 % quantile."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


# the law --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("distribution", Q.NOISE_DISTRIBUTIONS)
@pytest.mark.parametrize("scale", [0.7, 3.0, 12.5])
def test_noise_follows_its_law(distribution: str, scale: float) -> None:
    n = draw(distribution, scale)
    # moments within 5 standard errors: mean 0, the variance of the rounded law (about scale^2 + 1/12)
    assert abs(n.mean()) < 5 * scale / math.sqrt(SAMPLES)
    ks = np.arange(-255, 256)
    expected_var = float(np.sum(ks**2 * pmf(distribution, scale, ks)))
    kurtosis = 3.0 if distribution == "gaussian" else 6.0
    assert abs(n.var() / expected_var - 1) < 5 * math.sqrt((kurtosis - 1) / SAMPLES)
    # chi-square against the exact pmf, bins with >= 20 expected, the tails merged
    ks = np.arange(n.min(), n.max() + 1)
    expected = pmf(distribution, scale, ks) * SAMPLES
    observed = np.bincount(n - ks[0], minlength=len(ks)).astype(float)
    keep = expected >= 20
    stat = float(np.sum((observed[keep] - expected[keep]) ** 2 / expected[keep]))
    rest_e, rest_o = SAMPLES - expected[keep].sum(), SAMPLES - observed[keep].sum()
    stat += (rest_o - rest_e) ** 2 / max(rest_e, 1e-9) if rest_e > 1 else 0.0
    assert stat < chi2_critical(int(keep.sum())), f"chi-square {stat:.1f} over {int(keep.sum())} bins"


def test_laplace_has_heavier_tails_than_gaussian_at_equal_scale() -> None:
    scale = 10.0
    gauss, laplace = draw("gaussian", scale), draw("laplace", scale)
    assert abs(gauss.std() - laplace.std()) < 0.1  # scale is the standard deviation for both laws
    beyond = {d: float(np.mean(np.abs(v) > 3.5 * scale)) for d, v in (("g", gauss), ("l", laplace))}
    # P(|n| > 3.5 sigma): Gaussian 4.7e-4, Laplace exp(-3.5 sqrt 2) = 7.1e-3
    assert beyond["g"] < 1.2e-3 < 4e-3 < beyond["l"] < 1.1e-2


def test_table_shape_and_bounds() -> None:
    for distribution in Q.NOISE_DISTRIBUTIONS:
        for scale in (0.01, 0.5, 4.0, 40.0, 400.0):
            k, cdf = Q.noise_table(distribution, scale)
            assert 1 <= k <= Q.NOISE_MAX_STEPS and len(cdf) == 2 * k and cdf.dtype == np.uint32
            assert np.all(np.diff(cdf.astype(np.int64)) >= 0)
    assert Q.noise_table("gaussian", 400.0)[0] == 255  # capped: |n| >= 255 saturates every int8
    with pytest.raises(ValueError, match="positive"):
        Q.noise_table("gaussian", 0.0)
    with pytest.raises(ValueError, match="distribution"):
        Q.noise_table("uniform", 1.0)


def test_saturates_instead_of_wrapping() -> None:
    size = 20_000
    for x0 in (-128, 127):
        g = noise_graph((1, size), "laplace", 60.0, 3)
        y = reference.run(g, {"x": np.full((1, size), x0, np.int8)})["y"].astype(np.int64)
        k, cdf = Q.noise_table("laplace", 60.0)  # the same stream's noise, before saturation
        u = np.frombuffer(reference.noise_keystream(3, 0, 4 * size), "<u4")
        n = np.searchsorted(cdf, u, side="right") - k
        assert n.min() < -128 - x0 or n.max() > 127 - x0
        np.testing.assert_array_equal(y.reshape(-1), np.clip(x0 + n, -128, 127))
        assert np.mean(y == x0) > 0.45  # half the noise pushes past the bound and stops there


def test_seed_reproduces_and_none_does_not() -> None:
    g = noise_graph((1, 64), "gaussian", 5.0, 11)
    x = np.zeros((1, 64), np.int8)
    assert np.array_equal(reference.run(g, {"x": x})["y"], reference.run(g, {"x": x})["y"])
    g.node("n").attrs["seed"] = None
    assert not np.array_equal(reference.run(g, {"x": x})["y"], reference.run(g, {"x": x})["y"])


def test_keystream_is_rfc8439_chacha20() -> None:
    """RFC 8439 2.4.2's key and nonce give its keystream; our seed key is the seed's little-endian bytes."""
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

    seed = 0x0706050403020100  # key bytes 00 01 ... 07 then zeros
    key = bytes(range(8)) + bytes(24)
    nonce = bytes(16)
    expected = Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(bytes(200))
    assert reference.noise_keystream(seed, 0, 200) == expected
    assert reference.noise_keystream(seed, 70, 100) == expected[70:170]  # offsets cross block boundaries


# the C kernel -------------------------------------------------------------------------------------------
class NoiseParams(Structure):
    _fields_ = [("min_value", c_int32), ("table_size", c_int32), ("cdf", POINTER(c_uint32))]


@pytest.fixture(scope="module", params=crt.VARIANTS)
def kernel(request: pytest.FixtureRequest) -> Any:
    lib = ctypes.CDLL(str(crt.build(request.param)))
    fn = lib.ts_noise_s8
    fn.restype = None
    fn.argtypes = [c_void_p, c_void_p, c_int32, c_void_p, c_void_p]
    return fn


def c_noise(kernel: Any, x: np.ndarray, distribution: str, scale: float, random: bytes,
            in_place: bool = False) -> np.ndarray:  # fmt: skip
    k, cdf = Q.noise_table(distribution, scale)
    table = np.ascontiguousarray(cdf, np.uint32)
    params = NoiseParams(-k, len(table), table.ctypes.data_as(POINTER(c_uint32)))
    xs = np.ascontiguousarray(x.reshape(-1), np.int8)
    rnd = np.frombuffer(random, np.uint8).copy()
    out = xs if in_place else np.full(xs.size + 64, 0x5A, np.int8)
    kernel(ctypes.byref(params), rnd.ctypes.data, xs.size, xs.ctypes.data, out.ctypes.data)
    if not in_place:
        assert np.all(out[xs.size :] == 0x5A), "wrote past the output"
    return out[: xs.size].reshape(x.shape)


@pytest.mark.parametrize("distribution", Q.NOISE_DISTRIBUTIONS)
@pytest.mark.parametrize("scale", [0.01, 0.4, 1.0, 7.5, 40.0, 300.0])
def test_c_kernel_matches_reference(kernel: Any, distribution: str, scale: float) -> None:
    rng = np.random.default_rng(int(scale * 100) + len(distribution))
    x = rng.integers(-128, 128, (1, 6, 5, 7), dtype=np.int8)
    x.reshape(-1)[:4] = [-128, 127, -128, 127]  # saturation on both sides
    g = noise_graph(x.shape, distribution, scale, 99)
    expected = reference.run(g, {"x": x})["y"]
    random = reference.noise_keystream(99, 0, Q.NOISE_WORD_BYTES * x.size)
    np.testing.assert_array_equal(c_noise(kernel, x, distribution, scale, random), expected)
    np.testing.assert_array_equal(c_noise(kernel, x, distribution, scale, random, in_place=True), expected)


def test_c_kernel_on_every_word_boundary(kernel: Any) -> None:
    """Words equal to, just below and above every table entry, and the extremes 0 and 2^32 - 1."""
    k, cdf = Q.noise_table("laplace", 3.0)
    words = np.unique(np.concatenate([cdf.astype(np.int64) + d for d in (-1, 0, 1)] + [[0, 2**32 - 1]]))
    words = words[(words >= 0) & (words < 2**32)].astype("<u4")
    x = np.zeros((1, len(words)), np.int8)
    expected = Q.add_noise(x, k, cdf, words.tobytes())
    np.testing.assert_array_equal(c_noise(kernel, x, "laplace", 3.0, words.tobytes()), expected)


# the pass and generated code ----------------------------------------------------------------------------
def two_output_head() -> Graph:
    """input -> clip -> a, input -> max_pool2d -> b: a device half sending two tensors."""
    g = Graph("head")
    for name, shape in (("input", (1, 6, 6, 3)), ("a", (1, 6, 6, 3)), ("b", (1, 3, 3, 3))):
        g.add_tensor(Tensor(name, shape, "int8", q()))
    g.add_node(Node("relu", "clip", ["input"], ["a"], {"act_min": 0.0, "act_max": math.inf}))
    g.add_node(Node("pool", "max_pool2d", ["input"], ["b"], {"kernel": [2, 2], "strides": [2, 2], "pads": [0] * 4}))
    g.inputs, g.outputs = ["input"], ["a", "b"]
    return g


def test_pass_keeps_the_wire_names_and_orders_the_stream() -> None:
    head = two_output_head()
    noisy = N.add_noise(head, ["a", "b"], N.NoiseSpec("gaussian", 3.0, seed=5))
    assert noisy.outputs == ["a", "b"] and noisy.inputs == ["input"]
    nodes = [n for n in noisy.nodes() if n.op == "noise"]
    assert [n.outputs[0] for n in nodes] == ["a", "b"]
    assert [n.attrs["offset"] for n in nodes] == [0, 4 * 108]
    assert all(noisy.tensors[n.inputs[0]].quant == noisy.tensors[n.outputs[0]].quant for n in nodes)
    assert head.node("relu").outputs == ["a"]  # the input graph is left alone
    x = np.random.default_rng(0).integers(-128, 128, (1, 6, 6, 3), dtype=np.int8)
    clean, out = reference.run(head, {"input": x}), reference.run(noisy, {"input": x})
    assert not np.array_equal(clean["a"], out["a"]) and not np.array_equal(clean["b"], out["b"])
    assert N.add_noise(head, ["a"], N.NoiseSpec("gaussian", 0.0)).outputs == ["a", "b"]


def test_pass_refuses_what_it_cannot_noise() -> None:
    head = two_output_head()
    with pytest.raises(CompileError, match="device input"):
        N.add_noise(head, ["input"], N.NoiseSpec("laplace", 1.0))
    head.tensors["a"].dtype, head.tensors["a"].quant = "float32", None
    with pytest.raises(CompileError, match="int8"):
        N.add_noise(head, ["a"], N.NoiseSpec("laplace", 1.0))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("none", None),
        ("gaussian:0", None),
        ("gaussian:2.5", N.NoiseSpec("gaussian", 2.5)),
        ("Laplace:8", N.NoiseSpec("laplace", 8.0)),
        ("auto", N.AutoNoise("gaussian")),
        ("laplace:auto", N.AutoNoise("laplace")),
    ],
)
def test_parse_noise(text: str, expected: object) -> None:
    assert N.parse_noise(text) == expected


@pytest.mark.parametrize("bad", ["gauss:1", "gaussian", "gaussian:x", "laplace:-1", "gaussian:inf"])
def test_parse_noise_rejects(bad: str) -> None:
    with pytest.raises(CompileError):
        N.parse_noise(bad)


def test_lowering_asks_for_platform_random() -> None:
    g = N.add_noise(two_output_head(), ["b"], N.NoiseSpec("laplace", 2.0))
    call = next(c for c in lower(g) if c.op == "noise")
    assert call.kernel == "noise_s8" and isinstance(call.args[1], RandomBytes) and call.args[2] == 27
    float_graph = noise_graph((1, 4), "gaussian", 1.0, None)
    for t in float_graph.tensors.values():
        t.dtype, t.quant = "float32", None
    with pytest.raises(Exception, match="int8"):
        lower(float_graph)


@pytest.mark.skipif(shutil.which("gcc") is None or not Path("/usr/include/sodium.h").exists(), reason="gcc+libsodium")
def test_generated_c_matches_reference_bit_for_bit(tmp_path: Path) -> None:
    """Two noise nodes (one stream, two offsets), 108 + 27 elements: several chunks and a short last one."""
    g = N.add_noise(two_output_head(), ["a", "b"], N.NoiseSpec("gaussian", 6.0, seed=2**64 - 3))
    planned = plan_memory(g, lambda graph, node: 0)
    emit_c(planned, tmp_path / "c")
    x = np.random.default_rng(1).integers(-128, 128, (1, 6, 6, 3), dtype=np.int8)

    def specs(names: list[str]) -> list[IOSpec]:
        return [IOSpec(n, CTYPES[g.tensors[n].dtype], g.tensors[n].size) for n in names]

    flags = [f"-DTS_RANDOM_SEED={2**64 - 3}ULL", str(HOST_RANDOM), "-lsodium"]
    outs = run_host(tmp_path / "c", [x], specs(g.inputs), specs(g.outputs), tmp_path / "build", extra_cflags=flags)
    expected = reference.run(g, {"input": x})
    for name, out in zip(g.outputs, outs, strict=True):
        np.testing.assert_array_equal(out.reshape(expected[name].shape), expected[name])
    model_c = (tmp_path / "c" / "model.c").read_text()
    assert model_c.count("ts_platform_random(") == 2 and "_random[256]" in model_c and "_random[108]" in model_c


def test_calibrate_stays_within_the_bound() -> None:
    """A toy tail (argmax of 8 logits sent as int8): the noise scale that flips <= 5 % of predictions."""
    rng = np.random.default_rng(0)
    g = Graph("tail")
    g.add_tensor(Tensor("z", (1, 8), "int8", q()))
    g.add_tensor(Tensor("y", (1, 8), "float32"))
    g.add_node(Node("deq", "dequantize", ["z"], ["y"]))
    g.inputs, g.outputs = ["z"], ["y"]
    z = rng.integers(-100, 100, (400, 8), dtype=np.int8)
    loose, tight = (N.calibrate(g, {"z": z}, "gaussian", bound) for bound in (5.0, 1.0))
    assert 0 < tight.spec.scale < loose.spec.scale
    for found in (loose, tight):
        chosen = [t for t in found.trials if t["scale"] == found.spec.scale]
        assert chosen and chosen[0]["drop"] <= found.max_drop
        beyond = [t for t in found.trials if t["scale"] > found.spec.scale]
        assert beyond and all(t["drop"] > found.max_drop for t in beyond)
    assert tight.measure == "top-1 changes"
