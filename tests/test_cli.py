"""The command line: a good model gives a complete folder; bad input gives one clear line, exit 2, no folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

from tinysplit.compiler.cli import app

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist" / "lenet5.onnx"
runner = CliRunner()


def unsupported_model(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="the_erf")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_compile_writes_complete_folder(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["compile", str(MNIST), "--target", "stm32", "-o", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("c/model.c", "c/model.h", "c/runtime/include/tinysplit/kernels.h", "report.json", "report.md"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["target"]["name"] == "stm32"
    assert report["totals"]["macs"] > 0
    assert not list(tmp_path.glob(".out.*")), "temporary folders left behind"


def test_inspect_lists_layers_and_totals() -> None:
    result = runner.invoke(app, ["inspect", str(MNIST)])
    assert result.exit_code == 0, result.output
    assert "conv2d" in result.output and "fully_connected" in result.output
    assert "total:" in result.output and "MACs" in result.output


@pytest.mark.parametrize(
    "case",
    ["missing_file", "garbage_file", "unsupported_op", "unknown_target", "bad_input_shape", "bad_weights"],
)
def test_bad_input_is_refused_cleanly(tmp_path: Path, case: str) -> None:
    out = tmp_path / "out"
    model, extra, expect = MNIST, [], ""
    if case == "missing_file":
        model, expect = tmp_path / "nope.onnx", "nope.onnx"
    elif case == "garbage_file":
        model = tmp_path / "garbage.onnx"
        model.write_bytes(b"\x00\x01 this is not a protobuf \xff" * 10)
        expect = "garbage.onnx"
    elif case == "unsupported_op":
        model, expect = unsupported_model(tmp_path / "erf.onnx"), "the_erf"
    elif case == "unknown_target":
        extra, expect = ["--target", "pdp11"], "pdp11"
    elif case == "bad_input_shape":
        extra, expect = ["--input-shape", "input:1,x,28"], "--input-shape"
    elif case == "bad_weights":
        extra, expect = ["--weights", "int4"], "--weights"
    result = runner.invoke(app, ["compile", str(model), "-o", str(out), *extra])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and expect in result.output
    assert "Traceback" not in result.output
    assert not out.exists()
    assert not list(tmp_path.glob(".out*")), "temporary folders left behind"


def test_failed_compile_keeps_previous_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert runner.invoke(app, ["compile", str(MNIST), "-o", str(out)]).exit_code == 0
    before = (out / "c" / "model.c").read_bytes()
    result = runner.invoke(app, ["compile", str(unsupported_model(tmp_path / "erf.onnx")), "-o", str(out)])
    assert result.exit_code == 2
    assert (out / "c" / "model.c").read_bytes() == before


def test_console_script_runs() -> None:
    exe = shutil.which("tinysplit") or str(Path(sys.executable).with_name("tinysplit"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "compile" in proc.stdout


def test_mnist_input_shape_override(tmp_path: Path) -> None:
    out = tmp_path / "out"
    name = onnx.load(MNIST).graph.input[0].name
    result = runner.invoke(app, ["compile", str(MNIST), "-o", str(out), "--input-shape", f"{name}:1,1,28,28"])
    assert result.exit_code == 0, result.output
    io = json.loads((out / "model.io.json").read_text())
    assert int(np.prod(io["inputs"][0]["shape"])) == 784


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_output_is_deterministic_and_incremental(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        assert runner.invoke(app, ["compile", str(MNIST), "-o", str(out)]).exit_code == 0
    assert tree(a) == tree(b), "two compiles of the same model differ"
    stamps = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    stale = a / "c" / "stale.c"
    stale.write_text("/* left over from an older compile */\n")
    assert runner.invoke(app, ["compile", str(MNIST), "-o", str(a)]).exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()} == stamps, "unchanged files rewritten"
    assert not stale.exists()


def test_emit_deps_names_outputs_and_inputs(tmp_path: Path) -> None:
    out, deps = tmp_path / "out", tmp_path / "model.d"
    result = runner.invoke(app, ["compile", str(MNIST), "-o", str(out), "--emit-deps", str(deps)])
    assert result.exit_code == 0, result.output
    rule = deps.read_text().split("\n\n")[0].replace("\\\n", " ")
    targets, _, prerequisites = rule.partition(":")
    assert str(out / "c" / "model.c") in targets.split() and str(out / "report.json") in targets.split()
    assert str(MNIST) in prerequisites.split()
    assert any(p.endswith("host.toml") for p in prerequisites.split())


def test_cores_and_tile_memory_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["compile", str(MNIST), "-o", str(out), "--cores", "2", "--tile-memory", "auto"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "model_run_worker" in (out / "c" / "model.h").read_text()
    tiling = json.loads((out / "report.json").read_text())["tiling"]
    assert tiling["cores"] == 2
    bad = runner.invoke(app, ["compile", str(MNIST), "-o", str(tmp_path / "bad"), "--tile-memory", "maybe"])
    assert bad.exit_code == 2 and "--tile-memory" in bad.output


def test_lang_option(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["compile", str(MNIST), "-o", str(out), "--lang", "c,rust"])
    assert result.exit_code == 0, result.output
    assert (out / "c" / "model.c").is_file()
    assert (out / "rust" / "model-model" / "src" / "lib.rs").is_file()
    assert (out / "rust" / "tinysplit-rt" / "Cargo.toml").is_file()
    bad = runner.invoke(app, ["compile", str(MNIST), "-o", str(tmp_path / "bad"), "--lang", "fortran"])
    assert bad.exit_code == 2 and "--lang" in bad.output


def test_split_options(tmp_path: Path) -> None:
    out = tmp_path / "out"
    tensor = "8"  # forced cut by layer index is not a tensor name: must be refused clearly
    bad = runner.invoke(app, ["compile", str(MNIST), "-o", str(out), "--target", "nrf52", "--split", tensor])
    assert bad.exit_code == 2 and "error:" in bad.output and not out.exists()
    result = runner.invoke(app, ["compile", str(MNIST), "-o", str(out), "--target", "nrf52", "--split", "auto"])
    assert result.exit_code == 0, result.output
    assert "split over ble" in result.output
    split = json.loads((out / "report.json").read_text())["split"]
    assert split["choice"]["latency_s"] <= min(split["all_on_device"]["latency_s"], split["all_on_server"]["latency_s"])
    assert (out / "split.png").is_file()
    args = ["compile", str(MNIST), "-o", str(tmp_path / "w"), "--split", "auto", "--objective", "fun"]
    wrong = runner.invoke(app, args)
    assert wrong.exit_code == 2 and "objective" in wrong.output


def test_split_writes_the_riot_application(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["compile", str(MNIST), "-o", str(out), "--target", "nrf52", "--split", "p1", "--noise", "gaussian:8"]
    args += ["--quantize", "int8", "--calibration", str(MNIST.with_name("calibration.npz"))]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    c = out / "c"
    for name in ("Makefile", "main.c", "README.md", "runtime/Makefile", "runtime/wire/wire.c"):
        assert (c / name).is_file(), name
    assert "model_run(input, cut0);" in (c / "main.c").read_text()
    assert "static float input[784];" in (c / "main.c").read_text()
    assert "USEMODULE += random prng_sha256prng" in (c / "Makefile").read_text()
    runtime_makefile = (c / "runtime" / "Makefile").read_text().splitlines()
    assert any(line.startswith("SRC = ") and line.endswith("random_riot.c") for line in runtime_makefile)
    assert (c / "runtime" / "wire" / "random_riot.c").is_file()


def test_weights_option_chooses_the_weight_storage(tmp_path: Path) -> None:
    """On a DSP target the quantized MNIST conv / fully connected weights are stored widened to int16
    (auto), which the report accounts for; --weights int8 keeps them int8."""
    calibration = ROOT / "examples" / "mnist" / "calibration.npz"
    reports, sources = {}, {}
    for weights in ("auto", "int8"):
        out = tmp_path / weights
        args = ["compile", str(MNIST), "--target", "stm32", "-o", str(out), "--weights", weights]
        result = runner.invoke(app, [*args, "--quantize", "int8", "--calibration", str(calibration)])
        assert result.exit_code == 0, result.output
        reports[weights] = json.loads((out / "report.json").read_text())["memory"]
        sources[weights] = (out / "c" / "model.c").read_text()
    assert reports["int8"]["widened_weight_layers"] == 0 and "_wide(" not in sources["int8"]
    assert reports["auto"]["widened_weight_layers"] > 0 and "ts_conv_s8_wide(" in sources["auto"]
    assert reports["auto"]["int8_weight_bytes"] == reports["int8"]["weight_bytes"]
    assert reports["auto"]["weight_bytes"] > 1.9 * reports["int8"]["weight_bytes"] - 4096
