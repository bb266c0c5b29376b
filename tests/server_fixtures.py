"""Server bundles for tests and the benchmark: a synthetic one (onnx.helper) and a real DS-CNN cut."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from tinysplit.server import wire
from tinysplit.server.bundle import Bundle, load_bundle
from tinysplit.server.coap import ServerOptions, serve
from tinysplit.server.keystore import DeviceKeys
from tinysplit.server.service import InferenceService

ROOT = Path(__file__).resolve().parents[1]
DSCNN = ROOT.parent / "shared" / "models" / "dscnn_kws_f32.onnx"
DSCNN_CUT = "Relu__5:0"  # after the first conv block: [N, 64, 25, 5]


def write_bundle(folder: Path, model_id: str, version: int, cut: list[dict], outputs: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bundle.json").write_text(
        json.dumps({"model_id": model_id, "model_version": version, "cut": cut, "outputs": outputs}, indent=1)
    )
    return folder


def synthetic_bundle(out: Path, version: int = 1) -> Path:
    """OUT/server with a tail y = x0 @ W + b (x0: [N, 2, 4] flattened), model id 'synthetic'."""
    rng = np.random.default_rng(7)
    w = rng.standard_normal((8, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["x0"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["mm"]),
            helper.make_node("Add", ["mm", "B"], ["y"]),
        ],
        "synthetic_tail",
        [helper.make_tensor_value_info("x0", TensorProto.FLOAT, ["N", 2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        [numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    folder = out / "server"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(folder / "tail.onnx"))
    cut = [{"name": "x0", "shape": [1, 2, 4], "dtype": "int8", "scale": 0.05, "zero_point": 3}]
    return write_bundle(folder, "synthetic", version, cut, [{"name": "y", "shape": [1, 5]}])


@dataclass
class DscnnSplit:
    out: Path  # compile-output-like folder: OUT/server/{tail.onnx,bundle.json}, OUT/head.onnx
    scale: float
    zero_point: int

    def head(self, x: np.ndarray) -> np.ndarray:
        """What the device half computes: the head in float, then the cut quantized to int8."""
        sess = session(self.out / "head.onnx")
        f = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        q = np.round(f / self.scale) + self.zero_point
        return np.clip(q, -128, 127).astype(np.int8)

    def tail(self, q: np.ndarray) -> np.ndarray:
        sess = session(self.out / "server" / "tail.onnx")
        return sess.run(None, {DSCNN_CUT: (q.astype(np.float32) - self.zero_point) * np.float32(self.scale)})[0]


def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def dscnn_inputs(n: int, seed: int = 0) -> np.ndarray:
    """Inputs in the range of DS-CNN's MFCC features (roughly -250..50)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, 49, 10, 1)) * 30 - 20).astype(np.float32)


def dscnn_split(out: Path, version: int = 1) -> DscnnSplit:
    """Cut DS-CNN after its first conv block; calibrate the int8 cut on a few inputs."""
    folder = out / "server"
    folder.mkdir(parents=True, exist_ok=True)
    onnx.utils.extract_model(str(DSCNN), str(out / "head.onnx"), ["input_1"], [DSCNN_CUT])
    onnx.utils.extract_model(str(DSCNN), str(folder / "tail.onnx"), [DSCNN_CUT], ["Identity"])
    sess = session(out / "head.onnx")
    calib = sess.run(None, {"input_1": dscnn_inputs(16, seed=123)})[0]
    lo, hi = min(0.0, float(calib.min())), max(0.0, float(calib.max()))
    scale = (hi - lo) / 255.0
    zero_point = int(np.clip(round(-128 - lo / scale), -128, 127))
    cut = [
        {"name": DSCNN_CUT, "shape": [1, *calib.shape[1:]], "dtype": "int8", "scale": scale, "zero_point": zero_point}
    ]
    write_bundle(folder, "dscnn_kws", version, cut, [{"name": "Identity", "shape": [1, 12]}])
    return DscnnSplit(out, scale, zero_point)


# --- a simulated device and a server running in a background thread ---


@dataclass
class SimDevice:
    keys: DeviceKeys
    bundle: Bundle
    seq: int = 0

    def message(
        self, tensors: list[np.ndarray], seq: int | None = None, version: int | None = None
    ) -> tuple[int, bytes]:
        if seq is None:
            seq, self.seq = self.seq, self.seq + 1
        cut = [(q, t.scale, t.zero_point) for q, t in zip(tensors, self.bundle.cut, strict=True)]
        b = self.bundle
        msg = wire.seal_request(
            self.keys.key_up, self.keys.iv, self.keys.kid, b.model_id,
            b.model_version if version is None else version, seq, cut, latency_us=1500, arena_bytes=4096,
        )  # fmt: skip
        return seq, msg

    def open(self, seq: int, answer: bytes) -> list[np.ndarray]:
        b = self.bundle
        return wire.open_answer(self.keys.key_down, self.keys.iv, b.model_id, b.model_version, seq, answer)


def free_udp_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def running_server(out: Path, **options: object) -> Iterator[tuple[InferenceService, int]]:
    """Serve OUT on a free port ('::', dual stack) in a thread; yields (service, port)."""
    bundle = load_bundle(out)
    port = free_udp_port("::1")
    opts = ServerOptions(host="::", port=port, **options)
    ready = threading.Event()
    box: dict[str, object] = {}

    def started(service: InferenceService) -> None:
        box["service"] = service
        ready.set()

    async def main() -> None:
        box["loop"], box["task"] = asyncio.get_running_loop(), asyncio.current_task()
        with contextlib.suppress(asyncio.CancelledError):
            await serve(bundle, opts, started)

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as e:  # surface startup failures to the test
            box["error"] = e
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    if not ready.wait(30) or "error" in box:
        raise RuntimeError(f"server did not start: {box.get('error')}")
    try:
        yield box["service"], port
    finally:
        loop, task = box["loop"], box["task"]
        loop.call_soon_threadsafe(task.cancel)  # type: ignore[attr-defined]
        thread.join(10)


# --- a minimal CoAP codec for raw-UDP clients (fuzzing and the load benchmark) ---


def coap_post(mid: int, token: bytes, payload: bytes, content_format: int = wire.CONTENT_FORMAT) -> bytes:
    """CON POST /ts/infer with Content-Format, as bytes (RFC 7252 §3)."""
    head = bytes([0x40 | len(token), 0x02, mid >> 8 & 0xFF, mid & 0xFF]) + token
    options = bytes([0xB2]) + b"ts" + bytes([0x05]) + b"infer" + bytes([0x11, content_format])
    return head + options + b"\xff" + payload


def coap_parse(datagram: bytes) -> tuple[int, int, bytes, bytes]:
    """(code as class*100+detail, mid, token, payload) of a response; options are skipped."""
    tkl = datagram[0] & 0x0F
    code = datagram[1] >> 5 & 7, datagram[1] & 0x1F
    mid = datagram[2] << 8 | datagram[3]
    token = datagram[4 : 4 + tkl]
    i = 4 + tkl
    while i < len(datagram) and datagram[i] != 0xFF:
        delta, length = datagram[i] >> 4, datagram[i] & 0x0F
        i += 1
        for nibble in (delta, length):
            if nibble == 13:
                i += 1
            elif nibble == 14:
                i += 2
        if length == 13:
            length = datagram[i - 1] + 13
        elif length == 14:
            length = (datagram[i - 2] << 8 | datagram[i - 1]) + 269
        i += length
    return code[0] * 100 + code[1], mid, token, datagram[i + 1 :]
