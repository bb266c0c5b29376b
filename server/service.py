"""Message handling, independent of CoAP: check, open, decode, batch the tail model, seal the answer.

`InferenceService.handle(payload, content_format)` never raises: every input ends in a `Reply` whose
`result` names one counter of metrics.RESULTS. The order of checks is chosen so that cheap and
unauthenticated checks come first and nothing an attacker can send moves state:

1. overload (queue full)              -> 5.03, before any work
2. Content-Format, COSE envelope      -> 4.15 / 4.00
3. kid known, not revoked             -> 4.01
4. seq fresh in the replay window     -> 4.01
5. AEAD with the current model's AAD  -> 4.01; if the version hint names another version and the
   message authenticates under *that* model's AAD, it is an honest stale device -> 4.09; a message
   that authenticates but whose (unprotected) hint was altered is tampered -> 4.01
6. mark seq as seen (authentic only), decode the plaintext   -> 4.00
7. tensors match the bundle's cut     -> 4.22
8. tail model (batched)               -> 2.04 + sealed answer, or 5.00
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

from tinysplit.server import wire
from tinysplit.server.bundle import Bundle, check_tail
from tinysplit.server.keystore import DeviceKeys, Keystore
from tinysplit.server.metrics import RESULTS, Metrics
from tinysplit.server.replay import ReplayGuard


@dataclass(frozen=True)
class Reply:
    result: str  # a key of metrics.RESULTS
    payload: bytes = b""

    @property
    def code(self) -> str:
        return RESULTS[self.result][0]


@dataclass(frozen=True)
class Accepted:
    keys: DeviceKeys
    seq: int
    cut: list[np.ndarray]  # int8 cut tensors, one per bundle.cut (dequantized per batch)


class InferenceService:
    def __init__(
        self,
        bundle: Bundle,
        keystore: Keystore,
        replay: ReplayGuard,
        metrics: Metrics | None = None,
        max_pending: int = 512,
        max_batch: int = 8,
    ) -> None:
        self.bundle = bundle
        self.keystore = keystore
        self.replay = replay
        self.metrics = metrics or Metrics()
        self.max_pending = max_pending
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(bundle.tail_path), options, providers=["CPUExecutionProvider"])
        self.max_batch = max_batch if check_tail(bundle) else 1
        self.input_names = [t.name for t in bundle.cut]
        self.scales = [np.float32(t.scale) for t in bundle.cut]
        self.pending: list[tuple[Accepted, asyncio.Future[list[np.ndarray]]]] = []
        self.draining = False
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="tail")

    # --- checks (synchronous, cheap) ---

    def check(self, payload: bytes, content_format: int | None) -> Accepted | Reply:
        if content_format is not None and content_format != wire.CONTENT_FORMAT:
            return Reply("unsupported_format")
        try:
            env = wire.parse_envelope(payload)
        except wire.Malformed as e:
            return Reply("malformed", str(e).encode())
        try:
            keys = self.keystore.devices.get(env.kid.decode())
        except UnicodeDecodeError:
            keys = None
        if keys is None:
            return Reply("unknown_device")
        if keys.revoked:
            return Reply("revoked_device")
        if not self.replay.fresh(keys.device_id, env.seq):
            return Reply("replay")
        b = self.bundle
        try:
            plaintext = wire.open_envelope(env, keys.key_up, keys.iv, b.model_id, b.model_version)
        except wire.AuthFailed:
            if env.model_version != b.model_version:
                try:
                    wire.open_envelope(env, keys.key_up, keys.iv, b.model_id, env.model_version)
                except wire.AuthFailed:
                    return Reply("auth_failed")
                self.replay.mark(keys.device_id, env.seq)
                return Reply("stale_model", f"model version {b.model_version} expected".encode())
            return Reply("auth_failed")
        if env.model_version != b.model_version:
            return Reply("auth_failed")  # authentic ciphertext, altered hint: tampered in transit
        self.replay.mark(keys.device_id, env.seq)
        try:
            req = wire.decode_request(plaintext)
        except wire.Malformed as e:
            return Reply("malformed", str(e).encode())
        if (req.model_id, req.model_version, req.seq) != (b.model_id, b.model_version, env.seq):
            return Reply("malformed", b"model id, version or seq differ from the envelope")
        if len(req.tensors) != len(b.cut):
            return Reply("bad_tensor", f"{len(b.cut)} cut tensors expected".encode())
        cut = []
        for t, spec, scale in zip(req.tensors, b.cut, self.scales, strict=True):
            if t.shape != spec.shape or t.zero_point != spec.zero_point or np.float32(t.scale) != scale:
                return Reply("bad_tensor", f"{spec.name}: shape or quantization differ from the bundle".encode())
            cut.append(np.frombuffer(t.data, np.int8).reshape(t.shape))
        self.metrics.telemetry(keys.device_id, env.seq, req.latency_us, req.arena_bytes)
        return Accepted(keys, env.seq, cut)

    # --- the whole request ---

    async def handle(self, payload: bytes, content_format: int | None = None) -> Reply:
        try:
            if len(self.pending) >= self.max_pending:
                reply = Reply("overload")
            else:
                checked = self.check(payload, content_format)
                reply = checked if isinstance(checked, Reply) else await self._answer(checked)
        except Exception as e:  # a bug must cost one request, not the server
            reply = Reply("internal", type(e).__name__.encode())
        self.metrics.count(reply.result)
        return reply

    async def _answer(self, acc: Accepted) -> Reply:
        try:
            outputs = await self._infer(acc)
        except Exception as e:
            return Reply("internal", type(e).__name__.encode())
        b = self.bundle
        sealed = wire.seal_answer(acc.keys.key_down, acc.keys.iv, b.model_id, b.model_version, acc.seq, outputs)
        return Reply("ok", sealed)

    # --- batching: requests that arrive while the tail runs are answered by the next single call ---

    async def _infer(self, acc: Accepted) -> list[np.ndarray]:
        fut: asyncio.Future[list[np.ndarray]] = asyncio.get_running_loop().create_future()
        self.pending.append((acc, fut))
        if not self.draining:
            self.draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await fut

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(0)  # let requests already in the ready queue join the first batch
            while self.pending:
                batch, self.pending = self.pending[: self.max_batch], self.pending[self.max_batch :]
                feeds = {}
                for i, (name, spec) in enumerate(zip(self.input_names, self.bundle.cut, strict=True)):
                    x = np.concatenate([acc.cut[i] for acc, _ in batch]).astype(np.float32)
                    x -= np.float32(spec.zero_point)  # real = scale * (q - zero_point), exact in float32
                    x *= self.scales[i]
                    feeds[name] = x
                start = time.perf_counter()
                try:
                    outs = await loop.run_in_executor(self.executor, self.session.run, None, feeds)
                except Exception as e:
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(e)
                    continue
                self.metrics.inference_seconds += time.perf_counter() - start
                self.metrics.batches += 1
                self.metrics.batch_items += len(batch)
                for k, (_, fut) in enumerate(batch):
                    if not fut.done():
                        fut.set_result([np.asarray(o[k : k + 1]) for o in outs])
        finally:
            self.draining = False

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.replay.close()
