"""Device profiles: one TOML data file per target in targets/, read into a frozen Target."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from tinysplit.compiler.errors import CompileError


@dataclass(frozen=True)
class RadioPower:
    """Supply power of an on-chip radio while transmitting and while receiving (W)."""

    tx_w: float
    rx_w: float


@dataclass(frozen=True)
class CostTable:
    """The target's [cost] table: what the split search needs to predict time, energy and memory.

    `instructions` holds emulated instructions per unit of work for each op class and dtype
    (compiler.cost.op_work names the classes and units); cycles = instructions * cycles_per_instruction.
    """

    instructions: dict[str, float] = field(default_factory=dict)
    cycles_per_instruction: float = 1.0
    layer_instructions: float = 0.0  # fixed per layer (call, loop set-up), on top of the per-unit work
    active_w: float | None = None  # supply power while the CPU computes
    radio: dict[str, RadioPower] = field(default_factory=dict)  # on-chip radios by family (ble, ieee802154, wifi)
    code_flash_bytes: int = 0  # kernels, parameter structs and requantization tables of a model, beside its weights
    reserved_ram_bytes: int = 0  # RAM the rest of the firmware (OS, network stack, crypto) keeps
    reserved_flash_bytes: int = 0


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
    cost: CostTable = field(default_factory=CostTable)


def available_targets() -> list[str]:
    return sorted(
        p.name[: -len(".toml")] for p in resources.files("tinysplit.targets").iterdir() if p.name.endswith(".toml")
    )


def target_file(name: str) -> Path:
    path = Path(str(resources.files("tinysplit.targets") / f"{name}.toml"))
    if not path.is_file():
        raise CompileError(f"unknown target {name!r}; available: {', '.join(available_targets())}")
    return path


def load_target(name: str) -> Target:
    data = tomllib.loads(target_file(name).read_text())
    known = {f.name for f in fields(Target)}
    unknown = set(data) - known
    if unknown:
        raise CompileError(f"target file {name}.toml has unknown keys: {sorted(unknown)}")
    data["radios"] = tuple(data.get("radios", ()))
    data["cost"] = _cost_table(name, data.get("cost", {}))
    return Target(**data)


def _cost_table(name: str, data: dict[str, Any]) -> CostTable:
    known = {f.name for f in fields(CostTable)}
    unknown = set(data) - known
    if unknown:
        raise CompileError(f"target file {name}.toml: unknown keys in [cost]: {sorted(unknown)}")
    radio = {k: RadioPower(float(v["tx_w"]), float(v["rx_w"])) for k, v in data.get("radio", {}).items()}
    instructions = {k: float(v) for k, v in data.get("instructions", {}).items()}
    return CostTable(**(data | {"radio": radio, "instructions": instructions}))
