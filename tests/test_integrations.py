"""Build-system integrations: the CMake module (host and Cortex-M4), the RIOT Makefile fragment (on a stub
RIOT), the Cargo build helper. Each build runs the real compiler and the real build tool, and the tests read
what the tool ran: regenerate when an input or an option changes, rebuild only what changed, else nothing."""

from __future__ import annotations

import filecmp
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tinysplit.backends.riot import emit_riot_module_files

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
TINYSPLIT = Path(os.environ.get("TINYSPLIT", Path(sys.executable).with_name("tinysplit")))
TOOLCHAIN = ROOT / "integrations" / "cmake" / "toolchains" / "arm-none-eabi-cortex-m4.cmake"


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on the PATH (scripts/setup.sh installs them)")


def run(cmd: list[str | Path], cwd: Path | None = None, env: dict[str, str] | None = None, timeout: int = 300) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, cmd))}\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Copies of the MNIST model and calibration data that a test may touch and change."""
    model, calibration = tmp_path / "lenet5.onnx", tmp_path / "calibration.npz"
    shutil.copyfile(MNIST / "lenet5.onnx", model)
    shutil.copyfile(MNIST / "calibration.npz", calibration)
    return model, calibration


def favour_class(model: Path, label: int) -> None:
    """Change the model's content: a large bias on one class of the last layer."""
    m = onnx.load(model)
    bias = next(t for t in m.graph.initializer if t.name == "fc3_b")
    values = numpy_helper.to_array(bias).copy()
    values[label] += 20.0
    bias.CopyFrom(numpy_helper.from_array(values.astype(np.float32), bias.name))
    onnx.save(m, model)


# --- CMake ---------------------------------------------------------------------------------------------


def configure(build: Path, model: Path, calibration: Path, *extra: str) -> None:
    run(["cmake", "-S", ROOT / "examples" / "cmake", "-B", build, "-G", "Ninja",
         f"-DTINYSPLIT_EXECUTABLE={TINYSPLIT}", f"-DEXAMPLE_MODEL={model}", f"-DEXAMPLE_CALIBRATION={calibration}",
         *extra])  # fmt: skip


def ninja(build: Path) -> tuple[bool, list[str], str]:
    """Build; return whether tinysplit ran, the C files compiled, and the whole log."""
    log = run(["ninja", "-C", build, "-v"])
    compiled = sorted(Path(m).name for m in re.findall(r" -c (\S+\.c)\b", log))
    return " compile " in log and str(TINYSPLIT) in log, compiled, log


def test_cmake_host_build_regenerates_and_rebuilds_only_what_changed(tmp_path: Path) -> None:
    need("cmake", "ninja", "cc")
    model, calibration = inputs(tmp_path)
    build = tmp_path / "build"
    configure(build, model, calibration)
    ran, compiled, _ = ninja(build)
    assert ran and "model.c" in compiled and "conv_s8.c" in compiled and "main.c" in compiled
    assert re.search(r"blank image: class \d", run([build / "app"]))

    assert "no work to do" in ninja(build)[2]

    model.touch()  # same content: the compiler reruns, rewrites nothing, nothing recompiles
    ran, compiled, log = ninja(build)
    assert ran and compiled == [], log
    assert "no work to do" in ninja(build)[2]

    favour_class(model, 7)  # new weights: model.c changes, the kernels do not
    ran, compiled, log = ninja(build)
    assert ran and compiled == ["model.c"], log
    assert "class 7" in run([build / "app"])

    configure(build, model, calibration, "-DEXAMPLE_OPTIONS=--calibration-method=percentile")
    ran, _, log = ninja(build)
    assert ran and "--calibration-method=percentile" in log
    assert "no work to do" in ninja(build)[2]

    # the dependency file Ninja reads names the target profile too (an input CMake is not told about)
    deps = (build / "tinysplit" / "app-model.d").read_text()
    assert deps.startswith(f"{build / 'tinysplit' / 'app-model.stamp'}: ")
    assert "stm32.toml" in deps


def test_cmake_cortex_m4_build_gives_the_same_tree_as_the_command_line(tmp_path: Path) -> None:
    need("cmake", "ninja", "arm-none-eabi-gcc")
    model, calibration = inputs(tmp_path)
    favour_class(model, 3)
    build = tmp_path / "build-m4"
    configure(build, model, calibration, f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}")
    ran, compiled, log = ninja(build)
    assert ran and "model.c" in compiled and "startup.c" in compiled, log
    elf = build / "app.elf"
    assert elf.read_bytes()[:4] == b"\x7fELF" and elf.read_bytes()[18] == 40  # e_machine EM_ARM
    assert "no work to do" in ninja(build)[2]

    direct = tmp_path / "direct"
    run([TINYSPLIT, "compile", model, "-o", direct, "--target", "stm32", "--prefix", "model",
         "--quantize", "int8", "--calibration", calibration])  # fmt: skip
    generated = build / "tinysplit" / "app-model"
    files = sorted(p.relative_to(direct) for p in direct.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(generated) for p in generated.rglob("*") if p.is_file())
    assert all(filecmp.cmp(direct / f, generated / f, shallow=False) for f in files)

    if shutil.which("qemu-system-arm"):
        qemu: list[str | Path] = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none",
                "-semihosting-config", "enable=on,target=native", "-kernel", elf]  # fmt: skip
        assert "class 3" in run(qemu, timeout=60)


# --- RIOT ----------------------------------------------------------------------------------------------

# A stand-in for RIOT's build system: it locates external modules as RIOT does (a folder named after the
# module in one of EXTERNAL_MODULE_DIRS, Makefile.dep and Makefile.include read from there), builds each
# with its own Makefile, and links main.c with them into a host program.
STUB_MAKEFILE_INCLUDE = """\
export __RIOTBUILD_FLAG := 1
export BINDIR := $(CURDIR)/bin/stub
export RIOTBASE
LAST_MAKEFILEDIR = $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
locate = $(sort $(foreach d,$(EXTERNAL_MODULE_DIRS),$(foreach m,$(USEMODULE),$(dir $(wildcard $(d)/$(m)/Makefile)))))
-include $(addsuffix Makefile.dep,$(locate))
EXTERNAL_MODULE_PATHS := $(locate)
-include $(addsuffix Makefile.include,$(EXTERNAL_MODULE_PATHS))
export INCLUDES := $(addprefix -I,$(USEMODULE_INCLUDES))
.PHONY: all
all:
\t@for d in $(EXTERNAL_MODULE_PATHS); do $(MAKE) -C $$d || exit 1; done
\t$(CC) $(INCLUDES) main.c $(BINDIR)/*/*.o -lm -o $(BINDIR)/app
"""
STUB_MAKEFILE_BASE = """\
ifeq (,$(__RIOTBUILD_FLAG))
  $(error build a module from its application)
endif
MODULE ?= $(notdir $(CURDIR))
OBJ := $(SRC:%.c=$(BINDIR)/$(MODULE)/%.o)
all: $(OBJ)
$(BINDIR)/$(MODULE)/%.o: %.c
\t@mkdir -p $(@D)
\t$(CC) -Wall -Wextra -Werror $(INCLUDES) -c $(abspath $<) -o $@
"""


def test_riot_module_files_name_the_modules_after_their_folders(tmp_path: Path) -> None:
    c_dir = tmp_path / "c"
    (c_dir / "runtime" / "src").mkdir(parents=True)
    for name in ("conv_s8.c", "pool_s8.c", "simd.h"):
        (c_dir / "runtime" / "src" / name).write_text("")
    written = emit_riot_module_files(c_dir, "lenet")
    names = sorted(str(p.relative_to(c_dir)) for p in written)
    assert names == [
        "riot/tinysplit_lenet/Makefile", "riot/tinysplit_lenet/Makefile.dep", "riot/tinysplit_lenet/Makefile.include",
        "riot/tinysplit_runtime/Makefile", "riot/tinysplit_runtime/Makefile.include",
    ]  # fmt: skip
    runtime = (c_dir / "riot" / "tinysplit_runtime" / "Makefile").read_text()
    assert "SRC = conv_s8.c pool_s8.c\n" in runtime and "include $(RIOTBASE)/Makefile.base" in runtime
    assert "USEMODULE += tinysplit_runtime" in (c_dir / "riot" / "tinysplit_lenet" / "Makefile.dep").read_text()


def test_riot_fragment_regenerates_on_model_calibration_and_option_changes(tmp_path: Path) -> None:
    need("make", "cc")
    riotbase, app = tmp_path / "riot", tmp_path / "app"
    riotbase.mkdir()
    app.mkdir()
    (riotbase / "Makefile.include").write_text(STUB_MAKEFILE_INCLUDE)
    (riotbase / "Makefile.base").write_text(STUB_MAKEFILE_BASE)
    model, calibration = inputs(app)
    shutil.copyfile(ROOT / "examples" / "cmake" / "main.c", app / "main.c")
    (app / "Makefile").write_text(
        f"APPLICATION = mnist\nRIOTBASE = {riotbase}\nTINYSPLIT = {TINYSPLIT}\n"
        "TINYSPLIT_MODEL = $(CURDIR)/lenet5.onnx\nTINYSPLIT_TARGET = stm32\n"
        "TINYSPLIT_OPTIONS ?= --quantize int8 --calibration $(CURDIR)/calibration.npz\n"
        f"include {ROOT}/integrations/riot/tinysplit.mk\ninclude $(RIOTBASE)/Makefile.include\n"
    )

    def make(*args: str) -> tuple[bool, str]:
        log = run(["make", "--no-print-directory", *args], cwd=app)
        return f"{TINYSPLIT} compile" in log, log

    ran, log = make()
    assert ran and "model.c" in log and "conv_s8.c" in log, log
    assert (app / "bin" / "tinysplit" / "c" / "riot" / "tinysplit_model" / "Makefile").is_file()
    assert re.search(r"blank image: class \d", run([app / "bin" / "stub" / "app"]))
    assert not make()[0]

    calibration.touch()  # an input only tinysplit's dependency file names
    assert make()[0]
    assert not make()[0]

    option = "TINYSPLIT_OPTIONS=--quantize int8 --calibration $(CURDIR)/calibration.npz --calibration-method percentile"
    ran, log = make(option)
    assert ran and "--calibration-method percentile" in log
    assert not make(option)[0]

    favour_class(model, 7)
    assert make(option)[0]
    assert "class 7" in run([app / "bin" / "stub" / "app"])


# --- Cargo ---------------------------------------------------------------------------------------------


def test_cargo_build_helper_is_clippy_clean_and_its_tests_pass(tmp_path: Path) -> None:
    need("cargo")
    crate = ROOT / "integrations" / "cargo"
    env = {**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")}
    run(["cargo", "clippy", "--all-targets", "--locked", "--offline", "--", "-D", "warnings"], cwd=crate, env=env)
    log = run(["cargo", "test", "--locked", "--offline"], cwd=crate, env=env)
    assert "test result: ok. 3 passed" in log, log


@pytest.mark.skipif(shutil.which("cargo") is None, reason="cargo is not installed")
def test_generated_crate_is_a_path_dependency(tmp_path: Path) -> None:
    """An application crate depends on the generated model crate by path, builds, and runs it."""
    from tinysplit.compiler import reference
    from tinysplit.compiler.pipeline import CompileOptions, build_graph

    gen = tmp_path / "gen"
    subprocess.run(
        [str(TINYSPLIT), "compile", str(MNIST / "lenet5.onnx"), "--lang", "rust", "-o", str(gen)], check=True
    )
    app = tmp_path / "app"
    (app / "src").mkdir(parents=True)
    (app / "Cargo.toml").write_text(
        '[package]\nname = "app"\nversion = "0.1.0"\nedition = "2021"\n\n'
        f'[dependencies]\nmodel-model = {{ path = "{gen / "rust" / "model-model"}" }}\n'
    )
    (app / "src" / "main.rs").write_text(
        "fn main() {\n"
        "    let mut model = model_model::Model::new();\n"
        "    let input = [0.5f32; model_model::INPUT0_SIZE];\n"
        "    let mut output = [0.0f32; model_model::OUTPUT0_SIZE];\n"
        "    model.run(&input, &mut output);\n"
        "    let best = (0..output.len()).max_by(|&a, &b| output[a].total_cmp(&output[b])).unwrap();\n"
        '    println!("class {best}");\n'
        "}\n"
    )
    env = {**os.environ, "CARGO_TARGET_DIR": str(tmp_path / "target")}
    run = subprocess.run(["cargo", "run", "-q"], cwd=app, env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    graph, _ = build_graph(MNIST / "lenet5.onnx", CompileOptions())
    expected = reference.run(graph, {graph.inputs[0]: np.full(graph.tensors[graph.inputs[0]].shape, 0.5, np.float32)})
    assert run.stdout.strip() == f"class {int(np.argmax(expected[graph.outputs[0]]))}"
