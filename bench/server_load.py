"""Load on the server half: N simulated devices send sealed DS-CNN cut tensors over CoAP/UDP on loopback.

    .venv/bin/python bench/server_load.py [--devices 64] [--requests 100] [--max-batch 8]

The server runs as its own process (`tinysplit serve`'s code path) pinned to CPU 0; the devices are
raw UDP sockets in one asyncio loop pinned to CPU 1, each sending its next request when the answer to
the previous one arrived (closed loop). Every request carries a fresh seq and is pre-sealed before the
clock starts. Reports requests/s, p50/p99 latency, and lost good requests (no 2.04 with an answer
that opens, within 5 s). Not a test: figures vary with the machine; compare runs side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server_fixtures import (  # noqa: E402
    DSCNN,
    SimDevice,
    coap_parse,
    coap_post,
    dscnn_inputs,
    dscnn_split,
    free_udp_port,
)

from tinysplit.server.bundle import load_bundle  # noqa: E402
from tinysplit.server.keystore import Keystore  # noqa: E402

TIMEOUT = 5.0


def serve_process(out: Path, port: int, max_batch: int) -> subprocess.Popen[bytes]:
    code = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from tinysplit.server.bundle import load_bundle\n"
        "from tinysplit.server.coap import ServerOptions, serve\n"
        "os.sched_setaffinity(0, {0})\n"
        "opts = ServerOptions(host='127.0.0.1', port=int(sys.argv[2]), max_batch=int(sys.argv[3]), max_pending=4096)\n"
        "asyncio.run(serve(load_bundle(Path(sys.argv[1])), opts, lambda s: print('ready', flush=True)))\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code, str(out), str(port), str(max_batch)], stdout=subprocess.PIPE)
    assert p.stdout is not None and p.stdout.readline().strip() == b"ready"
    return p


class Device(asyncio.DatagramProtocol):
    def __init__(self, sim: SimDevice, messages: list[tuple[int, bytes]], done: asyncio.Future[None]) -> None:
        self.sim, self.messages, self.done = sim, messages, done
        self.latencies: list[float] = []
        self.ok = self.lost = self.rejected = 0
        self.i = 0
        self.sent_at = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def send_next(self) -> None:
        if self.i == len(self.messages):
            if not self.done.done():
                self.done.set_result(None)
            return
        _, payload = self.messages[self.i]
        self.sent_at = time.perf_counter()
        self.transport.sendto(coap_post(self.i & 0xFFFF, self.i.to_bytes(4, "big"), payload))  # type: ignore[attr-defined]
        self.timer = asyncio.get_running_loop().call_later(TIMEOUT, self.timeout, self.i)

    def timeout(self, i: int) -> None:
        if i == self.i:
            self.lost += 1
            self.i += 1
            self.send_next()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        code, mid, token, payload = coap_parse(data)
        if data[0] >> 4 & 3 == 0:  # a separate response (the server was slower than 0.1 s) is CON: ACK it
            self.transport.sendto(bytes([0x60, 0, mid >> 8, mid & 0xFF]))  # type: ignore[attr-defined]
        if token != self.i.to_bytes(4, "big") or code == 0:
            return  # late answer to a timed-out request
        if self.timer is not None:
            self.timer.cancel()
        self.latencies.append(time.perf_counter() - self.sent_at)
        seq = self.messages[self.i][0]
        if code == 204:
            self.sim.open(seq, payload)  # raises if the answer does not authenticate
            self.ok += 1
        else:
            self.rejected += 1
        self.i += 1
        self.send_next()


async def drive(
    port: int, sims: list[SimDevice], messages: list[list[tuple[int, bytes]]]
) -> tuple[float, list[Device]]:
    loop = asyncio.get_running_loop()
    devices = []
    for sim, msgs in zip(sims, messages, strict=True):
        device = Device(sim, msgs, loop.create_future())
        await loop.create_datagram_endpoint(lambda device=device: device, remote_addr=("127.0.0.1", port))  # type: ignore[misc]
        devices.append(device)
    start = time.perf_counter()
    for d in devices:
        d.send_next()
    await asyncio.gather(*(d.done for d in devices))
    return time.perf_counter() - start, devices


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=64)
    ap.add_argument("--requests", type=int, default=100, help="per device")
    ap.add_argument("--max-batch", type=int, default=8, help="1 disables batching")
    args = ap.parse_args()
    if not DSCNN.exists():
        sys.exit(f"{DSCNN} is needed")
    os.sched_setaffinity(0, {1 % os.cpu_count()})  # type: ignore[operator]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        split = dscnn_split(out)
        store = Keystore(out / "server" / "keys.json")
        bundle = load_bundle(out)
        sims = [SimDevice(store.add(f"dev{i}"), bundle) for i in range(args.devices)]
        cut = split.head(dscnn_inputs(8, seed=3))  # 8 distinct inputs, cycled
        messages = [
            [s.message([cut[(i + k) % len(cut)][None]]) for k in range(args.requests)] for i, s in enumerate(sims)
        ]
        port = free_udp_port()
        server = serve_process(out, port, args.max_batch)
        try:
            elapsed, devices = asyncio.run(drive(port, sims, messages))
        finally:
            server.terminate()
            server.wait(10)
    lat = np.array([x for d in devices for x in d.latencies]) * 1e3
    ok = sum(d.ok for d in devices)
    total = args.devices * args.requests
    print(f"DS-CNN tail (cut {bundle.cut[0].shape}, {len(messages[0][0][1])} B sealed), server pinned to 1 core, "
          f"{args.devices} devices x {args.requests} requests, max batch {args.max_batch}")  # fmt: skip
    p50, p99 = np.percentile(lat, [50, 99])
    rejected, lost = sum(d.rejected for d in devices), sum(d.lost for d in devices)
    print(f"  {ok / elapsed:,.0f} req/s  p50 {p50:.2f} ms  p99 {p99:.2f} ms  ok {ok}/{total}", end="")
    print(f"  rejected {rejected}  lost {lost}")


if __name__ == "__main__":
    main()
