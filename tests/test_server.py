"""The server half: bundle contract, keystore, replay window, rejection matrix over CoAP, fuzzing."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import time
import urllib.request
from pathlib import Path

import aiocoap
import cbor2
import numpy as np
import pytest
from aiocoap.numbers.codes import Code
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from server_fixtures import SimDevice, coap_post, free_udp_port, running_server, synthetic_bundle
from typer.testing import CliRunner

from tinysplit.server import wire
from tinysplit.server.bundle import BundleError, load_bundle, parse_bundle
from tinysplit.server.cli import keys_app
from tinysplit.server.keystore import DeviceKeys, Keystore, KeystoreError
from tinysplit.server.metrics import RESULTS
from tinysplit.server.replay import RESERVE, WINDOW, ReplayGuard, Window
from tinysplit.server.service import InferenceService

GOOD = np.arange(-4, 4, dtype=np.int8).reshape(1, 2, 4)


def expected_tail(x: np.ndarray, out: Path) -> np.ndarray:
    import onnxruntime as ort

    b = load_bundle(out)
    s = ort.InferenceSession(str(b.tail_path), providers=["CPUExecutionProvider"])
    t = b.cut[0]
    return s.run(None, {"x0": (x.astype(np.float32) - t.zero_point) * np.float32(t.scale)})[0]


# --- bundle contract ---


def test_bundle_loads_and_detects_batching(tmp_path: Path) -> None:
    synthetic_bundle(tmp_path)
    b = load_bundle(tmp_path)
    assert (b.model_id, b.model_version, b.cut[0].shape, b.outputs[0].name) == ("synthetic", 1, (1, 2, 4), "y")
    assert load_bundle(tmp_path / "server") == b


@pytest.mark.parametrize(
    "change, message",
    [
        ({"model_id": "bad id!"}, "model_id"),
        ({"model_version": -1}, "model_version"),
        ({"cut": []}, "cut must list"),
        ({"cut": [{"name": "x0", "shape": [1, 2, 4], "dtype": "uint8", "scale": 0.1, "zero_point": 0}]}, "dtype"),
        ({"cut": [{"name": "x0", "shape": [1, 2, 4], "dtype": "int8", "scale": 0.0, "zero_point": 0}]}, "scale"),
        ({"cut": [{"name": "x0", "shape": [1, 2, 4], "dtype": "int8", "scale": 0.1, "zero_point": 200}]}, "zero_point"),
        ({"cut": [{"name": "x0", "shape": [1, 0], "dtype": "int8", "scale": 0.1, "zero_point": 0}]}, "dimensions"),
        ({"outputs": [{"name": "z", "shape": [1, 5]}]}, "outputs"),
        ({"cut": [{"name": "other", "shape": [1, 2, 4], "dtype": "int8", "scale": 0.1, "zero_point": 0}]}, "inputs"),
        ({"cut": [{"name": "x0", "shape": [1, 4, 2], "dtype": "int8", "scale": 0.1, "zero_point": 0}]}, "dim 1"),
    ],
)
def test_bundle_rejects(tmp_path: Path, change: dict, message: str) -> None:
    folder = synthetic_bundle(tmp_path)
    data = json.loads((folder / "bundle.json").read_text())
    data.update(change)
    (folder / "bundle.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match=message):
        load_bundle(tmp_path)


def test_bundle_missing(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="not found"):
        load_bundle(tmp_path)
    with pytest.raises(BundleError):
        parse_bundle([], tmp_path)


# --- keystore and its CLI ---


def test_keystore(tmp_path: Path) -> None:
    store = Keystore(tmp_path / "keys.json")
    k = store.add("node-1")
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    assert len(k.key_up) == len(k.key_down) == 32 and len(k.iv) == 12 and len({k.key_up, k.key_down}) == 2
    with pytest.raises(KeystoreError, match="already exists"):
        store.add("node-1")
    with pytest.raises(KeystoreError, match="device id"):
        store.add("bad/id")
    store.revoke("node-1")
    again = Keystore(tmp_path / "keys.json")
    assert again.devices["node-1"].revoked and again.devices["node-1"].key_up == k.key_up
    assert "static const uint8_t ts_key_up[32]" in k.c_header() and k.key_up.hex() in k.env_lines()


def test_keys_cli(tmp_path: Path) -> None:
    synthetic_bundle(tmp_path)
    runner = CliRunner()
    r = runner.invoke(keys_app, ["add", "dev7", "--bundle", str(tmp_path), "--header", str(tmp_path / "keys.h")])
    assert r.exit_code == 0, r.output
    lines = dict(line.split("=", 1) for line in r.output.strip().splitlines())
    assert lines["TS_DEVICE_ID"] == "dev7" and len(bytes.fromhex(lines["TS_KEY_UP"])) == 32
    assert stat.S_IMODE(os.stat(tmp_path / "keys.h").st_mode) == 0o600
    assert runner.invoke(keys_app, ["add", "dev7", "--bundle", str(tmp_path)]).exit_code == 2
    assert "dev7\tactive" in runner.invoke(keys_app, ["list", "--bundle", str(tmp_path)]).output
    assert runner.invoke(keys_app, ["revoke", "dev7", "--bundle", str(tmp_path)]).exit_code == 0
    listed = runner.invoke(keys_app, ["list", "--bundle", str(tmp_path)]).output
    assert "dev7\trevoked" in listed and lines["TS_KEY_UP"] not in listed
    assert runner.invoke(keys_app, ["revoke", "nobody", "--bundle", str(tmp_path)]).exit_code == 2


# --- replay window ---


def test_window() -> None:
    w = Window()
    for seq in (5, 3, 7, 4):
        assert w.fresh(seq)
        w.mark(seq)
    assert not any(w.fresh(s) for s in (3, 4, 5, 7))
    assert w.fresh(6) and w.fresh(0) and w.fresh(100)
    w.mark(100 + WINDOW)
    assert not w.fresh(100) and not w.fresh(7) and w.fresh(101)


def test_replay_state_survives_restart(tmp_path: Path) -> None:
    path = tmp_path / "replay.json"
    g = ReplayGuard(path)
    g.mark("a", 10)
    g.mark("a", 12)
    g.close()  # clean: floor is the exact highest
    g = ReplayGuard(path)
    assert not g.fresh("a", 12) and g.fresh("a", 13)
    g.mark("a", 20)
    del g  # crash: floor is the reservation, every accepted seq stays rejected
    g = ReplayGuard(path)
    assert not g.fresh("a", 20) and not g.fresh("a", 10 + RESERVE) and g.fresh("a", 10 + RESERVE + 1)


# --- the rejection matrix, over real CoAP ---


async def post(port: int, payload: bytes, content_format: int | None = wire.CONTENT_FORMAT) -> aiocoap.Message:
    ctx = await aiocoap.Context.create_client_context()
    try:
        msg = aiocoap.Message(code=Code.POST, uri=f"coap://[::1]:{port}/ts/infer", payload=payload)
        if content_format is not None:
            msg.opt.content_format = content_format
        return await asyncio.wait_for(ctx.request(msg).response, 10)
    finally:
        await ctx.shutdown()


def seal_plaintext(dev: SimDevice, seq: int, plaintext: bytes) -> bytes:
    """An authentic message with arbitrary plaintext: a buggy (not malicious) device."""
    b, k = dev.bundle, dev.keys
    ct = ChaCha20Poly1305(k.key_up).encrypt(
        wire.nonce(k.iv, seq), plaintext, wire.enc_structure(b.model_id, b.model_version)
    )
    return cbor2.dumps([wire.PROTECTED, {4: k.kid, 6: wire.encode_piv(seq), -65537: b.model_version}, ct])


def test_rejection_matrix(tmp_path: Path) -> None:
    synthetic_bundle(tmp_path)
    store = Keystore(tmp_path / "server" / "keys.json")
    good_keys, revoked_keys = store.add("dev1"), store.add("gone")
    store.revoke("gone")
    bundle = load_bundle(tmp_path)
    dev = SimDevice(good_keys, bundle)
    stranger = SimDevice(DeviceKeys("nobody", os.urandom(32), os.urandom(32), os.urandom(12)), bundle)
    forger = SimDevice(DeviceKeys("dev1", os.urandom(32), os.urandom(32), os.urandom(12)), bundle)
    revoked = SimDevice(revoked_keys, bundle)

    seq0, first = dev.message([GOOD])
    tampered = bytearray(dev.message([GOOD])[1])
    tampered[-20] ^= 0x01
    _, stale = dev.message([GOOD], version=0)
    hint_changed = cbor2.loads(dev.message([GOOD])[1])
    hint_changed[1][-65537] = 7
    bad_shape = SimDevice(
        good_keys,
        bundle.__class__(
            **{**bundle.__dict__, "cut": (bundle.cut[0].__class__("x0", (1, 4, 2), bundle.cut[0].scale, 3),)}
        ),
    )
    bad_shape.seq = 300  # after bad_plain's 200: the window only looks 64 back
    _, wrong_shape = bad_shape.message([GOOD.reshape(1, 4, 2)])
    bad_plain = seal_plaintext(dev, 200, cbor2.dumps({1: "synthetic"}))
    cases = [
        ("good", first, None, "2.04", "ok"),
        ("replayed", first, None, "4.01", "replay"),
        ("tampered ciphertext", bytes(tampered), None, "4.01", "auth_failed"),
        ("forged with a wrong key", forger.message([GOOD], seq=50)[1], None, "4.01", "auth_failed"),
        ("version hint changed", cbor2.dumps(hint_changed), None, "4.01", "auth_failed"),
        ("stale model version", stale, None, "4.09", "stale_model"),
        ("unknown device", stranger.message([GOOD])[1], None, "4.01", "unknown_device"),
        ("revoked device", revoked.message([GOOD])[1], None, "4.01", "revoked_device"),
        ("malformed CBOR", b"\xff\x00\x01", None, "4.00", "malformed"),
        ("truncated CBOR", first[:-1], None, "4.00", "malformed"),
        ("malformed COSE", cbor2.dumps([wire.PROTECTED, {}, b"x" * 20]), None, "4.00", "malformed"),
        ("COSE with another alg", cbor2.dumps([cbor2.dumps({1: 10}), {}, b"x" * 20]), None, "4.00", "malformed"),
        ("empty payload", b"", None, "4.00", "malformed"),
        ("authentic, malformed plaintext", bad_plain, None, "4.00", "malformed"),
        ("wrong tensor shape", wrong_shape, None, "4.22", "bad_tensor"),
        ("wrong content format", dev.message([GOOD])[1], 0, "4.15", "unsupported_format"),
    ]

    async def run(port: int, service: InferenceService) -> None:
        for name, payload, cf, code, result in cases:
            before = dict(service.metrics.results)
            r = await post(port, payload, wire.CONTENT_FORMAT if cf is None else cf)
            assert r.code.dotted == code, f"{name}: got {r.code} {service.metrics.results}"
            diff = {k: v - before[k] for k, v in service.metrics.results.items() if v != before[k]}
            assert diff == {result: 1}, f"{name}: counters moved {diff}"
            assert RESULTS[result][0] == code
        # after all that, a good message still works and its answer opens and is right
        dev.seq = 400
        seq, msg = dev.message([GOOD])
        r = await post(port, msg)
        assert r.code == Code.CHANGED and r.opt.content_format == wire.CONTENT_FORMAT
        np.testing.assert_allclose(dev.open(seq, r.payload)[0], expected_tail(GOOD, tmp_path), rtol=1e-6)
        # a message without Content-Format is accepted too
        seq, msg = dev.message([GOOD])
        assert (await post(port, msg, None)).code == Code.CHANGED
        # metrics over CoAP and HTTP
        ctx = await aiocoap.Context.create_client_context()
        m = await ctx.request(aiocoap.Message(code=Code.GET, uri=f"coap://127.0.0.1:{port}/ts/metrics")).response
        await ctx.shutdown()
        text = m.payload.decode()
        assert 'tinysplit_requests_total{result="ok",code="2.04"} 3' in text
        assert 'tinysplit_requests_total{result="auth_failed",code="4.01"} 3' in text
        assert 'tinysplit_device_latency_us{device="dev1"} 1500' in text
        assert 'tinysplit_device_arena_bytes_max{device="dev1"} 4096' in text

    http_port = free_udp_port()
    with running_server(tmp_path, metrics_port=http_port) as (service, port):
        asyncio.run(run(port, service))
        text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=5).read().decode()
        assert 'tinysplit_requests_total{result="stale_model",code="4.09"} 1' in text
    assert seq0 == 0


def test_revocation_takes_effect_live(tmp_path: Path) -> None:
    synthetic_bundle(tmp_path)
    store = Keystore(tmp_path / "server" / "keys.json")
    dev = SimDevice(store.add("dev1"), load_bundle(tmp_path))
    with running_server(tmp_path) as (service, port):
        assert asyncio.run(post(port, dev.message([GOOD])[1])).code == Code.CHANGED
        time.sleep(0.05)  # mtime granularity
        Keystore(tmp_path / "server" / "keys.json").revoke("dev1")
        deadline = time.monotonic() + 5
        while service.keystore.devices["dev1"].revoked is False and time.monotonic() < deadline:
            time.sleep(0.1)
        assert asyncio.run(post(port, dev.message([GOOD])[1])).code == Code.UNAUTHORIZED
        assert service.metrics.results["revoked_device"] == 1


def test_overload_sheds_before_work(tmp_path: Path) -> None:
    synthetic_bundle(tmp_path)
    store = Keystore(tmp_path / "server" / "keys.json")
    dev = SimDevice(store.add("dev1"), load_bundle(tmp_path))
    service = InferenceService(load_bundle(tmp_path), store, ReplayGuard(None), max_pending=0)
    reply = asyncio.run(service.handle(dev.message([GOOD])[1]))
    assert (reply.code, reply.result) == ("5.03", "overload")
    assert service.replay.fresh("dev1", 0)  # the device may send the same message again


# --- fuzzing the handler (hypothesis) and the CoAP socket ---


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> tuple[InferenceService, SimDevice, bytes]:
    out = tmp_path_factory.mktemp("fuzz")
    synthetic_bundle(out)
    store = Keystore(out / "server" / "keys.json")
    dev = SimDevice(store.add("dev1"), load_bundle(out))
    service = InferenceService(load_bundle(out), store, ReplayGuard(None))
    return service, dev, dev.message([GOOD], seq=1 << 30)[1]


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**64), 2**64)
    | st.floats()
    | st.binary(max_size=40)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(-70000, 10) | st.text(max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)


def _mutate(message: bytes, data: st.DataObject) -> bytes:
    kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
    b = bytearray(message)
    if kind == "flip":
        i = data.draw(st.integers(0, len(b) - 1))
        b[i] ^= data.draw(st.integers(1, 255))
    elif kind == "truncate":
        b = b[: data.draw(st.integers(0, len(b) - 1))]
    elif kind == "extend":
        b += data.draw(st.binary(min_size=1, max_size=8))
    else:
        i = data.draw(st.integers(0, len(b)))
        b[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    return bytes(b)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_handler(fuzz_target: tuple[InferenceService, SimDevice, bytes], data: st.DataObject) -> None:
    service, _, valid = fuzz_target
    how = data.draw(st.sampled_from(["bytes", "cbor", "cose", "mutated"]))
    if how == "bytes":
        payload = data.draw(st.binary(max_size=200))
    elif how == "cbor":
        payload = cbor2.dumps(data.draw(cbor_values))
    elif how == "cose":
        unprotected = data.draw(st.dictionaries(st.sampled_from([4, 6, -65537, 5, 1]), cbor_values, max_size=4))
        payload = cbor2.dumps(
            [data.draw(st.sampled_from([wire.PROTECTED, b"", b"\xa0"])), unprotected, data.draw(st.binary(max_size=40))]
        )
    else:
        payload = _mutate(valid, data)
    before = sum(service.metrics.results.values())
    reply = asyncio.run(service.handle(payload, wire.CONTENT_FORMAT))
    assert sum(service.metrics.results.values()) == before + 1
    assert reply.result not in ("ok", "internal"), (how, payload.hex())


def test_fuzz_coap_datagrams(tmp_path: Path) -> None:
    """Garbage CoAP datagrams (random, and real requests with bytes flipped) do not take the server down."""
    synthetic_bundle(tmp_path)
    store = Keystore(tmp_path / "server" / "keys.json")
    dev = SimDevice(store.add("dev1"), load_bundle(tmp_path))
    rng = np.random.default_rng(1)
    encoded = coap_post(1, b"ab", dev.message([GOOD], seq=99)[1])
    with running_server(tmp_path) as (service, port), socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        for i in range(600):
            if i % 2:
                d = bytearray(encoded)
                for _ in range(1 + i % 3):
                    d[int(rng.integers(len(d)))] ^= int(rng.integers(1, 256))
                datagram = bytes(d)
            else:
                datagram = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
            s.sendto(datagram, ("::1", port))
        time.sleep(0.5)
        r = asyncio.run(post(port, dev.message([GOOD])[1]))
        assert r.code == Code.CHANGED
        assert service.metrics.results["internal"] == 0
        counted = sum(service.metrics.results.values())
        assert service.metrics.results["ok"] == 1 and counted > 1  # flipped payloads reached the handler, rejected
