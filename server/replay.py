"""Per-device replay protection: a sliding window over sequence numbers, with a persisted floor.

In memory, each device has the highest accepted seq and a 64-bit bitmap of the 64 seqs up to it:
a seq is fresh when it is above the highest, or within the window and not yet seen, and above the
persisted floor. Only messages that authenticate are marked, so forgeries cannot move the window.

Across restarts (file ``replay.json`` beside the keystore): before the server accepts a seq above a
device's *reservation*, it durably writes reservation = seq + RESERVE. A clean shutdown writes each
device's exact highest seq instead and marks the file clean. On start the floor of each device is its
exact highest (clean file) or its reservation (crash): every seq the server ever accepted stays
rejected, at the cost of up to RESERVE seqs of an honest device after a crash (the device's own
reservation scheme makes it skip ahead the same way after its reboots).

The file is replaced atomically but not fsynced: that covers a crash or kill of the server process
(the kernel still holds the write), not a power loss of the server machine in the instant after a
reservation; an fsync per reservation cost ~10 ms on the test machine, which stalls the loop when
many devices first appear at once. Each write rewrites all devices' entries: fine for thousands of
devices, a database beyond that.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

WINDOW = 64
RESERVE = 1024


class Window:
    __slots__ = ("bitmap", "floor", "highest")

    def __init__(self, floor: int = -1) -> None:
        self.floor = floor  # seqs <= floor are never accepted
        self.highest = floor
        self.bitmap = 0  # bit i set: seq (highest - i) seen

    def fresh(self, seq: int) -> bool:
        if seq <= self.floor:
            return False
        if seq > self.highest:
            return True
        offset = self.highest - seq
        return offset < WINDOW and not (self.bitmap >> offset) & 1

    def mark(self, seq: int) -> None:
        if seq > self.highest:
            shift = seq - self.highest
            self.bitmap = ((self.bitmap << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.highest = seq
        else:
            self.bitmap |= 1 << (self.highest - seq)


class ReplayGuard:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.windows: dict[str, Window] = {}
        self.reserved: dict[str, int] = {}
        self.exact: dict[str, int] = {}
        if path is not None and path.exists():
            data = json.loads(path.read_text())
            floors = data["highest"] if data.get("clean") else data["reserved"]
            self.reserved = {k: int(v) for k, v in data["reserved"].items()}
            self.windows = {k: Window(int(v)) for k, v in floors.items()}
            self.exact = {k: int(v) for k, v in data["highest"].items()}
        self._write(clean=False)

    def fresh(self, device: str, seq: int) -> bool:
        w = self.windows.get(device)
        return w is None or w.fresh(seq)

    def mark(self, device: str, seq: int) -> None:
        """Record an authenticated seq; durably extends the device's reservation first when needed."""
        w = self.windows.get(device)
        if w is None:
            w = self.windows[device] = Window()
        if seq > self.reserved.get(device, -1):
            self.reserved[device] = seq + RESERVE
            self._write(clean=False)
        w.mark(seq)

    def close(self) -> None:
        self._write(clean=True)

    def _write(self, clean: bool) -> None:
        if self.path is None:
            return
        highest = {**self.exact, **{d: w.highest for d, w in self.windows.items()}}
        data = {"clean": clean, "highest": highest, "reserved": self.reserved}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".replay.")
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, self.path)  # atomic; not fsynced (see the module docstring)
