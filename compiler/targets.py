"""Device profiles: one TOML data file per target in targets/, read into a frozen Target."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from importlib import resources

from tinysplit.compiler.errors import CompileError


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    cpu: str
    isa: str
    clock_hz: int
    flash_bytes: int
    ram_bytes: int
    cores: int
    dsp: bool  # Armv7E-M DSP extension: SMLAD and friends
    fpu: bool
    radios: tuple[str, ...]
    riot_board: str | None = None
    emulator: str | None = None  # compiler.harness arch that emulates this target, if any


def available_targets() -> list[str]:
    return sorted(
        p.name[: -len(".toml")] for p in resources.files("tinysplit.targets").iterdir() if p.name.endswith(".toml")
    )


def load_target(name: str) -> Target:
    path = resources.files("tinysplit.targets") / f"{name}.toml"
    if not path.is_file():
        raise CompileError(f"unknown target {name!r}; available: {', '.join(available_targets())}")
    data = tomllib.loads(path.read_text())
    known = {f.name for f in fields(Target)}
    unknown = set(data) - known
    if unknown:
        raise CompileError(f"target file {name}.toml has unknown keys: {sorted(unknown)}")
    data["radios"] = tuple(data.get("radios", ()))
    return Target(**data)
