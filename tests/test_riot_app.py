"""The RIOT application of a split deployment (templates/riot): its flash sequence-number store on the host
against a stand-in for RIOT's flashpage driver with each board's write rules, and, when RIOTBASE names a
RIOT checkout (never in CI), a real native64 build of the rendered application with RIOT's -Werror."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tinysplit.compiler.cli import app

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "examples" / "mnist"
RUNTIME = ROOT / "runtime_c"
CFLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-I{RUNTIME / 'include'}"]
runner = CliRunner()


def render(out: Path, *options: str) -> Path:
    """OUT/c of a split LeNet-5 (cut after the second pooling) with these extra compile options."""
    args = ["compile", str(MNIST / "lenet5.onnx"), "-o", str(out), "--target", "stm32", "--split", "p2"]
    args += ["--quantize", "int8", "--calibration", str(MNIST / "calibration.npz"), *options]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return out / "c"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return render(tmp_path_factory.mktemp("riot_app") / "out")


def test_makefile_names_only_modules_riot_has(rendered: Path) -> None:
    """RIOT's ChaCha20/Poly1305 is part of the `crypto` module; `crypto_chacha20poly1305` does not exist and
    RIOT's module check refuses the build."""
    makefile = (rendered / "Makefile").read_text()
    modules = {m for line in makefile.splitlines() if line.startswith("USEMODULE +=") for m in line.split()[2:]}
    assert "crypto" in modules and not any(m.startswith("crypto_chacha") for m in modules)
    assert {"gcoap", "ztimer_usec", "gnrc_ipv6_ext_frag"} <= modules


# A stand-in for RIOT's periph/flashpage.h with the checks of cpu/native/periph/flashpage.c: whole write
# blocks, aligned, inside the flash; erased bytes read FLASHPAGE_ERASE_STATE.
FLASHPAGE_STUB = r"""
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#define FLASHPAGE_SIZE 256u
#define FLASHPAGE_NUMOF 4u
static uint8_t flash[FLASHPAGE_SIZE * FLASHPAGE_NUMOF] __attribute__((aligned(FLASHPAGE_SIZE)));
static int writes;
static void *flashpage_addr(unsigned page) { return flash + page * FLASHPAGE_SIZE; }
static void flashpage_erase(unsigned page)
{
    assert(page < FLASHPAGE_NUMOF);
    memset(flashpage_addr(page), FLASHPAGE_ERASE_STATE, FLASHPAGE_SIZE);
}
static void flashpage_write(void *target, const void *data, size_t len)
{
    const uint8_t *src = data;
    uint8_t *dst = target;
    if (len % FLASHPAGE_WRITE_BLOCK_SIZE || (uintptr_t)target % FLASHPAGE_WRITE_BLOCK_ALIGNMENT ||
        (uintptr_t)data % FLASHPAGE_WRITE_BLOCK_ALIGNMENT || dst < flash || dst + len > flash + sizeof flash) {
        printf("bad write of %u bytes\n", (unsigned)len);
        exit(3);
    }
    for (size_t i = 0; i < len; i++) { /* flash only moves bits away from the erased state */
        dst[i] = FLASHPAGE_ERASE_STATE ? (uint8_t)(dst[i] & src[i]) : (uint8_t)(dst[i] | src[i]);
    }
    writes++;
}
"""

SEQ_MAIN = r"""
int ts_aead_seal(uint8_t *b, size_t l, const uint8_t *a, size_t al, const uint8_t *n, const uint8_t *k)
{ (void)b; (void)l; (void)a; (void)al; (void)n; (void)k; return -1; }
int ts_aead_open(uint8_t *b, size_t l, const uint8_t *a, size_t al, const uint8_t *n, const uint8_t *k)
{ (void)b; (void)l; (void)a; (void)al; (void)n; (void)k; return -1; }

int main(void)
{
    ts_seq_store_t store = { seq_load, seq_store, NULL };
    ts_seq_t seq;
    uint64_t s = 0, last = 0;
    int i, boot;
    memset(flash, 0xA5, sizeof flash); /* garbage: the page is erased before it is written */
    flashpage_erase(FLASHPAGE_NUMOF - 1);
    for (boot = 0; boot < 3; boot++) {
        if (ts_seq_init(&seq, &store) != TS_WIRE_OK) { puts("init failed"); return 1; }
        for (i = 0; i < 300; i++) {
            if (ts_seq_next(&seq, &s) != TS_WIRE_OK) { puts("next failed"); return 1; }
            if ((boot || i) && s <= last) {
                printf("seq %lu after %lu\n", (unsigned long)s, (unsigned long)last);
                return 2;
            }
            last = s;
        }
    }
    printf("last %lu writes %d\n", (unsigned long)last, writes);
    return 0;
}
"""


@pytest.mark.parametrize(
    ("block", "alignment", "erased"),
    [(16, 8, 0x00), (8, 8, 0xFF), (4, 4, 0xFF), (1, 1, 0xFF)],
    ids=["native", "stm32wb", "nrf52", "byte-writable"],
)
def test_sequence_numbers_survive_reboots_in_flash(
    rendered: Path, tmp_path: Path, block: int, alignment: int, erased: int
) -> None:
    """main.c's seq_load/seq_store, cut out of the rendered file, on a flash with the board's write block,
    alignment and erased state: writes whole aligned blocks, and a reboot never reuses a sequence number."""
    main_c = (rendered / "main.c").read_text()
    start, end = main_c.index("/* --- sequence numbers"), main_c.index("static void on_response")
    source = tmp_path / "seq.c"
    source.write_text(
        f"#include <stdlib.h>\n#define MODULE_PERIPH_FLASHPAGE 1\n#define FLASHPAGE_WRITE_BLOCK_SIZE {block}u\n"
        f"#define FLASHPAGE_WRITE_BLOCK_ALIGNMENT {alignment}u\n#define FLASHPAGE_ERASE_STATE 0x{erased:02X}u\n"
        f'{FLASHPAGE_STUB}#include "tinysplit/wire.h"\n{main_c[start:end]}{SEQ_MAIN}'
    )
    exe = tmp_path / "seq"
    cmd = ["gcc", *CFLAGS, "-Wno-unused-function", str(source), str(RUNTIME / "wire" / "wire.c"), "-o", str(exe)]
    built = subprocess.run(cmd, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    ran = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert ran.returncode == 0, ran.stdout
    last, writes = int(ran.stdout.split()[1]), int(ran.stdout.split()[3])
    assert last >= 899 and 3 <= writes <= 12, ran.stdout  # one store per TS_SEQ_RESERVE (128) numbers


def riot_checkout() -> Path:
    riotbase = os.environ.get("RIOTBASE")
    if not riotbase or not (Path(riotbase) / "boards" / "native64").is_dir():
        pytest.skip("needs a RIOT checkout: RIOTBASE=/path/to/RIOT (CI has none)")
    if shutil.which("make") is None:
        pytest.skip("needs make")
    return Path(riotbase)


KEYS_H = """#pragma once
#include <stdint.h>
#define TS_DEVICE_ID "test"
static const uint8_t ts_key_up[32] = {1};
static const uint8_t ts_key_down[32] = {2};
static const uint8_t ts_iv[12] = {3};
"""


@pytest.mark.parametrize("noise", [False, True], ids=["plain", "noise"])
def test_application_builds_for_native64(tmp_path: Path, noise: bool) -> None:
    """The rendered application, its runtime module and RIOT's modules build with RIOT's -Werror."""
    riotbase = riot_checkout()
    c = render(tmp_path / "out", *(["--noise", "gaussian:8"] if noise else []))
    (c / "keys.h").write_text(KEYS_H)
    cmd = ["make", "-C", str(c), "BOARD=native64", f"RIOTBASE={riotbase}", "all"]
    built = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    assert (c / "bin" / "native64" / "model_split.elf").is_file()
