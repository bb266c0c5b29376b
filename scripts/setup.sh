#!/usr/bin/env bash
# Installs everything tinysplit's main job and tests need on a fresh Debian 12 machine:
# system packages (compilers, QEMU, libsodium) and the Python venv in .venv. Idempotent and quick
# when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(gcc make cmake ninja-build python3-venv gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm libsodium-dev pkg-config gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc libcoap3-dev clang libclang-rt-14-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
stamp=.venv/.installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: creating the Python environment in .venv"
    [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
    .venv/bin/pip install -q --upgrade pip==25.3
    .venv/bin/pip install -q -e ".[dev,privacy]"
    touch "$stamp"
fi
