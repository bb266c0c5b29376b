"""compiler/harness.py: host and emulated runs of a hand-written model folder of the generated-code
contract (model.h/model.c with TS_LAYER hooks, runtime/include, runtime/src)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tinysplit.compiler import harness
from tinysplit.compiler.harness import EmulatedRun, HarnessError, IOSpec, run_emulated, run_host

RUNTIME_INCLUDE = Path(__file__).resolve().parents[1] / "runtime_c" / "include" / "tinysplit"

MODEL_H = """\
#ifndef MODEL_H
#define MODEL_H
#include <stdint.h>
#define MODEL_LAYER_COUNT 2
extern const char *const model_layer_names[MODEL_LAYER_COUNT];
void model_run(const int8_t *input0, const float *input1, int8_t *output0, float *output1);
#endif
"""

# Layer 0: int8 saturating add of 3 through a runtime function. Layer 1: float, through a
# 256-byte stack buffer (something for the stack measurement to see): y = x/2 + x/2 + 1.
MODEL_C = """\
#include <stdint.h>
#include "model.h"
#include "tinysplit/profile.h"
#include "tinysplit/fixture.h"

const char *const model_layer_names[MODEL_LAYER_COUNT] = {"Add:add", "Scale:scale"};

static void layer0(const int8_t *x, int8_t *y)
{
    int32_t i;
    for (i = 0; i < 64; i++) {
        y[i] = ts_fixture_sat8((int32_t)x[i] + 3);
    }
}

static __attribute__((noinline)) void layer1(const float *x, float *y)
{
    volatile float scratch[64];
    int32_t i;
    for (i = 0; i < 64; i++) {
        scratch[i] = x[i % 16] * 0.5f;
    }
    for (i = 0; i < 16; i++) {
        y[i] = scratch[i] + scratch[i + 16] + 1.0f;
    }
}

void model_run(const int8_t *input0, const float *input1, int8_t *output0, float *output1)
{
    TS_LAYER_BEGIN(0);
    layer0(input0, output0);
    TS_LAYER_END(0);
    TS_LAYER_BEGIN(1);
    layer1(input1, output1);
    TS_LAYER_END(1);
}
"""

FIXTURE_H = """\
#ifndef TINYSPLIT_FIXTURE_H
#define TINYSPLIT_FIXTURE_H
#include <stdint.h>
int8_t ts_fixture_sat8(int32_t v);
#endif
"""

FIXTURE_C = """\
#include "tinysplit/fixture.h"
int8_t ts_fixture_sat8(int32_t v)
{
    return (int8_t)(v < -128 ? -128 : v > 127 ? 127 : v);
}
"""

INPUT_SPECS = [IOSpec("input0", "int8_t", 64), IOSpec("input1", "float", 16)]
OUTPUT_SPECS = [IOSpec("output0", "int8_t", 64), IOSpec("output1", "float", 16)]
X0 = (np.arange(-32, 32) * 4).astype(np.int8)
X1 = np.linspace(-2.0, 2.0, 16, dtype=np.float32)
X1[3] = np.float32(1e-40)  # a subnormal and a negative zero travel exactly too
X1[4] = np.float32(-0.0)


def expected_outputs() -> list[np.ndarray]:
    y0 = np.clip(X0.astype(np.int32) + 3, -128, 127).astype(np.int8)
    half = X1 * np.float32(0.5)
    y1 = (half + half) + np.float32(1.0)
    return [y0, y1.astype(np.float32)]


def make_c_dir(root: Path, model_c: str = MODEL_C) -> Path:
    c_dir = root / "model_c"
    (c_dir / "runtime" / "include" / "tinysplit").mkdir(parents=True)
    (c_dir / "runtime" / "src").mkdir(parents=True)
    (c_dir / "model.h").write_text(MODEL_H)
    (c_dir / "model.c").write_text(model_c)
    shutil.copy(RUNTIME_INCLUDE / "profile.h", c_dir / "runtime" / "include" / "tinysplit" / "profile.h")
    (c_dir / "runtime" / "include" / "tinysplit" / "fixture.h").write_text(FIXTURE_H)
    (c_dir / "runtime" / "src" / "fixture.c").write_text(FIXTURE_C)
    return c_dir


def need(arch: str | None) -> None:
    missing = harness.missing_tools(arch)
    if missing:
        what = "the host build" if arch is None else f"arch {arch!r}"
        pytest.skip(f"{what} needs {', '.join(missing)} (see scripts/setup.sh)")


@pytest.fixture(scope="module")
def c_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_c_dir(tmp_path_factory.mktemp("fixture"))


def emulate(c_dir: Path, workdir: Path, arch: str, **kwargs: Any) -> EmulatedRun:
    return run_emulated(c_dir, [X0, X1], INPUT_SPECS, OUTPUT_SPECS, workdir, arch=arch, **kwargs)


@pytest.fixture(scope="module", params=["cortex-m4", "rv32"])
def emulated(request: pytest.FixtureRequest, c_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> EmulatedRun:
    arch: str = request.param
    need(arch)
    return emulate(c_dir, tmp_path_factory.mktemp(arch), arch, calibration=(1, 1000, 100000))


# ---------------------------------------------------------------------------------------- host


def test_iospec_rejects_unknown_ctype_and_empty_size() -> None:
    with pytest.raises(ValueError, match="ctype"):
        IOSpec("x", "int16_t", 4)
    with pytest.raises(ValueError, match="size"):
        IOSpec("x", "float", 0)


def test_run_host_matches_numpy(c_dir: Path, tmp_path: Path) -> None:
    need(None)
    outputs = run_host(c_dir, [X0, X1], INPUT_SPECS, OUTPUT_SPECS, tmp_path)
    for got, want in zip(outputs, expected_outputs(), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)
    assert np.signbit(outputs[1][4]) == np.signbit(np.float32(1.0))  # -0 + 1 = +1


def test_run_host_rejects_wrong_input_size(c_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64"):
        run_host(c_dir, [X0[:10], X1], INPUT_SPECS, OUTPUT_SPECS, tmp_path)
    with pytest.raises(ValueError, match="int8"):
        run_host(c_dir, [X0.astype(np.int32) * 100, X1], INPUT_SPECS, OUTPUT_SPECS, tmp_path)


def test_run_host_reports_compiler_warnings_as_errors(tmp_path: Path) -> None:
    need(None)
    broken = MODEL_C.replace(
        "    int32_t i;\n    for (i = 0; i < 64; i++) {\n        y[i]",
        "    int32_t i, unused;\n    for (i = 0; i < 64; i++) {\n        y[i]",
        1,
    )
    assert broken != MODEL_C
    c_dir = make_c_dir(tmp_path, broken)
    with pytest.raises(HarnessError, match="unused"):
        run_host(c_dir, [X0, X1], INPUT_SPECS, OUTPUT_SPECS, tmp_path / "work")


# ---------------------------------------------------------------------------------------- emulated


def test_emulated_outputs_match_numpy(emulated: EmulatedRun) -> None:
    for got, want in zip(emulated.outputs, expected_outputs(), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_emulated_layer_counts_are_positive_and_within_the_total(emulated: EmulatedRun) -> None:
    layers = emulated.layer_instructions
    assert len(layers) == 2
    assert all(n > 64 for n in layers)  # every layer loops over at least 16..64 elements
    assert sum(layers) < emulated.total_instructions
    # The hooks (two stamps per layer and the bookkeeping) are what lies between: bounded.
    assert emulated.total_instructions - sum(layers) < 2000


def test_calibration_loop_is_measured_exactly(emulated: EmulatedRun) -> None:
    """A loop of 2n+1 instructions measures as 2n+1 plus the same small constant (the argument
    set-up and the call), for n from 1 to 100000: exact to the instruction, not to a 40-instruction
    SysTick tick."""
    extras = {c.measured - c.instructions for c in emulated.calibration}
    assert [c.iterations for c in emulated.calibration] == [1, 1000, 100000]
    assert len(extras) == 1, emulated.calibration
    assert 0 <= extras.pop() <= 4


def test_stack_high_water_is_plausible(emulated: EmulatedRun) -> None:
    # layer1 keeps 64 floats on the stack; the inference needs that plus a few frames.
    assert 256 < emulated.stack_bytes < 1024
    assert emulated.stack_bytes <= emulated.stack_peak_bytes < emulated.stack_size_bytes
    assert emulated.stack_size_bytes == 0x10000


def test_sizes_agree_with_the_size_tool(emulated: EmulatedRun) -> None:
    s = emulated.sections
    flash_sections = sum(v for k, v in s.items() if k not in (".data", ".bss", ".stack", ".tbss", ".tdata"))
    assert emulated.text_bytes + emulated.rodata_bytes == flash_sections
    assert emulated.data_bytes == s.get(".data", 0) + s.get(".tdata", 0)
    assert emulated.bss_bytes == s.get(".bss", 0)
    assert emulated.flash_bytes == emulated.text_bytes + emulated.rodata_bytes + emulated.data_bytes
    assert emulated.ram_bytes == emulated.data_bytes + emulated.bss_bytes
    # The model's own code (model.o + runtime/src) is a small, nonzero part of the image.
    assert 0 < emulated.model.text < 2000
    assert emulated.model.flash < emulated.flash_bytes


@pytest.mark.parametrize("arch", ["cortex-m4", "rv32"])
def test_emulated_counts_are_deterministic(arch: str, c_dir: Path, tmp_path: Path) -> None:
    need(arch)
    a = emulate(c_dir, tmp_path / "a", arch)
    b = emulate(c_dir, tmp_path / "b", arch)
    assert a.total_instructions == b.total_instructions
    assert a.layer_instructions == b.layer_instructions
    assert a.calibration == b.calibration
    assert a.stack_bytes == b.stack_bytes


def test_cortex_m4_counts_across_systick_wraps(c_dir: Path, tmp_path: Path) -> None:
    """With SysTick reloading every 1024 ticks (40960 instructions) instead of every 2^24, a
    200001-instruction loop crosses about five wraps. Without the wrap count it would be off by
    multiples of 40960; with it, only the wrap interrupt's own few instructions are added."""
    need("cortex-m4")
    run = emulate(c_dir, tmp_path, "cortex-m4", calibration=(100000,), extra_cflags=["-DTS_SYSTICK_RELOAD=0x3FF"])
    np.testing.assert_array_equal(run.outputs[0], expected_outputs()[0])
    (calib,) = run.calibration
    wraps = calib.instructions / 40960
    extra = calib.measured - calib.instructions - 2
    assert 0 < extra <= 12 * (wraps + 1)


def test_cortex_m4_without_profiling_counts_only_the_total(c_dir: Path, tmp_path: Path) -> None:
    need("cortex-m4")
    plain = emulate(c_dir, tmp_path / "plain", "cortex-m4", profile=False, calibration=())
    profiled = emulate(c_dir, tmp_path / "profiled", "cortex-m4", calibration=())
    assert plain.layer_instructions == []
    assert sum(profiled.layer_instructions) < plain.total_instructions < profiled.total_instructions
    np.testing.assert_array_equal(plain.outputs[1], expected_outputs()[1])


def test_cortex_m4_fault_is_reported(tmp_path: Path) -> None:
    need("cortex-m4")
    crashing = MODEL_C.replace(
        "    TS_LAYER_BEGIN(1);", "    __builtin_trap(); /* an undefined instruction */\n    TS_LAYER_BEGIN(1);", 1
    )
    assert crashing != MODEL_C
    c_dir = make_c_dir(tmp_path, crashing)
    with pytest.raises(HarnessError, match="crashed"):
        emulate(c_dir, tmp_path / "work", "cortex-m4", timeout=60.0)


def test_unknown_arch_is_rejected(c_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="arch"):
        emulate(c_dir, tmp_path, "z80")


def test_cortex_m4_long_output_arrives_whole(tmp_path: Path) -> None:
    """200000 output bytes are 400000 hex characters over semihosting: more than a pipe holds, which
    QEMU's non-blocking stdio would truncate (the harness collects QEMU's output in a file)."""
    need("cortex-m4")
    c_dir = tmp_path / "xor"
    (c_dir / "runtime" / "include" / "tinysplit").mkdir(parents=True)
    (c_dir / "runtime" / "src").mkdir()
    shutil.copy(RUNTIME_INCLUDE / "profile.h", c_dir / "runtime" / "include" / "tinysplit" / "profile.h")
    (c_dir / "model.h").write_text(
        "#include <stdint.h>\n#define MODEL_LAYER_COUNT 1\nvoid model_run(const int8_t *input0, int8_t *output0);\n"
    )
    (c_dir / "model.c").write_text(
        '#include "model.h"\n#include "tinysplit/profile.h"\n'
        "void model_run(const int8_t *input0, int8_t *output0)\n{\n    int32_t i;\n    TS_LAYER_BEGIN(0);\n"
        "    for (i = 0; i < 200000; i++) {\n        output0[i] = (int8_t)(input0[i] ^ 0x55);\n    }\n"
        "    TS_LAYER_END(0);\n}\n"
    )
    x = np.random.default_rng(0).integers(-128, 128, 200000).astype(np.int8)
    spec_in, spec_out = IOSpec("input0", "int8_t", 200000), IOSpec("output0", "int8_t", 200000)
    run = run_emulated(c_dir, [x], [spec_in], [spec_out], tmp_path / "work", calibration=())
    np.testing.assert_array_equal(run.outputs[0], x ^ np.int8(0x55))
    assert run.layer_instructions[0] > 200000 * 3
