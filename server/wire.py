"""The wire format between a device and the server, both directions (Python side).

Request (device -> server), the payload of a CoAP POST with Content-Format 16
(application/cose; cose-type="cose-encrypt0"), is a COSE_Encrypt0 (RFC 9052 §5.2), tag 16 optional::

    [ protected:   bstr .cbor {1: 24}                  ; alg ChaCha20/Poly1305, exactly h'A1011818'
      unprotected: {4: kid,                            ; bstr, the device id (UTF-8)
                    6: partial_iv,                     ; bstr, seq big-endian, minimal, 1..5 bytes
                    -65537: model_version},            ; uint, hint so the server can tell "stale model"
      ciphertext:  bstr ]                              ; AEAD(plaintext) || 16-byte tag

    nonce        = iv XOR (0x00000000 || uint64_be(seq))            ; 12 bytes, iv per device
    external_aad = cbor(["tinysplit/1", model_id, model_version])    ; binds the model the tail is for
    AAD          = cbor(["Encrypt0", protected, external_aad])        ; Enc_structure, RFC 9052 §5.3
    key          = key_up of the device (32 bytes)

    plaintext    = {1: model_id (tstr), 2: model_version (uint), 3: seq (uint),
                    4: [[shape: [+ uint], scale: float, zero_point: int, data: bstr (int8)], ...],
                    5: {1: latency_us (uint), 2: arena_bytes (uint)}}

Answer (server -> device), the payload of the 2.04 response, Content-Format 16::

    [ h'A1011818', {}, ciphertext ]     ; no Partial IV: the nonce is the request's (as in OSCORE)
    nonce, external_aad as above with the request's seq; key = key_down of the device
    plaintext    = {3: seq (uint), 6: [[shape: [+ uint], data: bstr (float32 little-endian)], ...]}

Directions use independent keys (key_up, key_down), so the request and its answer may share a nonce.
A device never reuses a seq (ts_seq in runtime_c persists a reservation), the server accepts each
seq once (replay.py), so every (key, nonce) pair seals at most one message.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import dataclass
from typing import Any

import cbor2
import numpy as np
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

ALG_CHACHA20_POLY1305 = 24
PROTECTED = bytes.fromhex("a1011818")  # {1: 24}
HDR_KID, HDR_PIV, HDR_MODEL_VERSION = 4, 6, -65537
CONTENT_FORMAT = 16  # application/cose; cose-type="cose-encrypt0"
AAD_CONTEXT = "tinysplit/1"
KEY_BYTES, IV_BYTES, TAG_BYTES = 32, 12, 16
MAX_PIV_BYTES = 5
MAX_SEQ = (1 << (8 * MAX_PIV_BYTES)) - 1
MAX_KID_BYTES = 32
MAX_MESSAGE_BYTES = 65000

REQ_MODEL_ID, REQ_MODEL_VERSION, REQ_SEQ, REQ_TENSORS, REQ_TELEMETRY = 1, 2, 3, 4, 5
ANS_SEQ, ANS_OUTPUTS = 3, 6
TEL_LATENCY_US, TEL_ARENA_BYTES = 1, 2


class Malformed(ValueError):
    """Not a well-formed message of this protocol (bad CBOR, COSE structure or field)."""


class AuthFailed(ValueError):
    """The AEAD tag does not verify: tampered, forged, or sealed for another model or key."""


@dataclass(frozen=True)
class Envelope:
    kid: bytes
    seq: int
    model_version: int
    ciphertext: bytes


@dataclass(frozen=True)
class WireTensor:
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    data: bytes


@dataclass(frozen=True)
class Request:
    model_id: str
    model_version: int
    seq: int
    tensors: tuple[WireTensor, ...]
    latency_us: int
    arena_bytes: int


def strict_loads(data: bytes) -> Any:
    """Decode exactly one CBOR item filling all of data; any failure is Malformed."""
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp).decode()
    except Exception as e:  # cbor2 raises a variety of errors (and RecursionError) on hostile input
        raise Malformed(f"bad CBOR: {type(e).__name__}") from None
    if fp.tell() != len(data):
        raise Malformed("trailing bytes after the CBOR item")
    return value


def nonce(iv: bytes, seq: int) -> bytes:
    """iv XOR (4 zero bytes || seq as 8 bytes big-endian)."""
    return (int.from_bytes(iv, "big") ^ seq).to_bytes(IV_BYTES, "big")


def external_aad(model_id: str, model_version: int) -> bytes:
    return cbor2.dumps([AAD_CONTEXT, model_id, model_version])


@functools.lru_cache(maxsize=64)
def enc_structure(model_id: str, model_version: int) -> bytes:
    return cbor2.dumps(["Encrypt0", PROTECTED, external_aad(model_id, model_version)])


@functools.lru_cache(maxsize=4096)
def aead(key: bytes) -> ChaCha20Poly1305:
    """The cipher object of a key (its construction costs more than sealing a short answer)."""
    return ChaCha20Poly1305(key)


def encode_piv(seq: int) -> bytes:
    return seq.to_bytes(max(1, (seq.bit_length() + 7) // 8), "big")


def _uint(value: Any, limit: int, what: str) -> int:
    if type(value) is not int or not 0 <= value <= limit:
        raise Malformed(f"{what}: expected an unsigned integer <= {limit}")
    return value


def parse_envelope(data: bytes) -> Envelope:
    """The unauthenticated outer layer of a request: structure, kid, seq and the model version hint."""
    if len(data) > MAX_MESSAGE_BYTES:
        raise Malformed("message too large")
    item = strict_loads(data)
    if isinstance(item, cbor2.CBORTag):
        if item.tag != 16:
            raise Malformed("unexpected CBOR tag")
        item = item.value
    if not isinstance(item, list) or len(item) != 3:
        raise Malformed("COSE_Encrypt0 must be an array of 3")
    protected, unprotected, ciphertext = item
    if protected != PROTECTED:
        raise Malformed("protected header must be exactly {1: 24}")
    if not isinstance(unprotected, dict) or set(unprotected) != {HDR_KID, HDR_PIV, HDR_MODEL_VERSION}:
        raise Malformed("unprotected header must hold kid, partial IV and model version")
    kid, piv = unprotected[HDR_KID], unprotected[HDR_PIV]
    if type(kid) is not bytes or not 1 <= len(kid) <= MAX_KID_BYTES:
        raise Malformed("kid must be 1..32 bytes")
    if type(piv) is not bytes or not 1 <= len(piv) <= MAX_PIV_BYTES or (len(piv) > 1 and piv[0] == 0):
        raise Malformed("partial IV must be 1..5 bytes, minimally encoded")
    version = _uint(unprotected[HDR_MODEL_VERSION], 0xFFFFFFFF, "model version")
    if type(ciphertext) is not bytes or len(ciphertext) < TAG_BYTES:
        raise Malformed("ciphertext must be a byte string holding at least the tag")
    return Envelope(kid, int.from_bytes(piv, "big"), version, ciphertext)


def open_envelope(env: Envelope, key_up: bytes, iv: bytes, model_id: str, model_version: int) -> bytes:
    try:
        return aead(key_up).decrypt(nonce(iv, env.seq), env.ciphertext, enc_structure(model_id, model_version))
    except Exception:  # cryptography raises InvalidTag
        raise AuthFailed("tag does not verify") from None


def decode_request(plaintext: bytes) -> Request:
    """The authenticated inner layer: still checked strictly, a device bug must not crash the server."""
    body = strict_loads(plaintext)
    keys = {REQ_MODEL_ID, REQ_MODEL_VERSION, REQ_SEQ, REQ_TENSORS, REQ_TELEMETRY}
    if not isinstance(body, dict) or set(body) != keys:
        raise Malformed("request must be a map with keys 1..5")
    model_id = body[REQ_MODEL_ID]
    if type(model_id) is not str:
        raise Malformed("model id must be a text string")
    tensors_in, telemetry = body[REQ_TENSORS], body[REQ_TELEMETRY]
    if not isinstance(tensors_in, list) or not 1 <= len(tensors_in) <= 8:
        raise Malformed("tensors must be an array of 1..8")
    tensors = []
    for t in tensors_in:
        if not isinstance(t, list) or len(t) != 4:
            raise Malformed("tensor must be [shape, scale, zero_point, data]")
        shape, scale, zp, data = t
        if not isinstance(shape, list) or not 1 <= len(shape) <= 8:
            raise Malformed("shape must be an array of 1..8 dimensions")
        dims = tuple(_uint(d, 1 << 24, "dimension") for d in shape)
        if type(scale) is not float or not math.isfinite(scale) or scale <= 0:
            raise Malformed("scale must be a positive finite float")
        if type(zp) is not int or not -128 <= zp <= 127:
            raise Malformed("zero point must be in [-128, 127]")
        if type(data) is not bytes or len(data) != math.prod(dims):
            raise Malformed("tensor data must be a byte string of prod(shape) int8 values")
        tensors.append(WireTensor(dims, scale, zp, data))
    if not isinstance(telemetry, dict) or set(telemetry) != {TEL_LATENCY_US, TEL_ARENA_BYTES}:
        raise Malformed("telemetry must be {1: latency_us, 2: arena_bytes}")
    return Request(
        model_id,
        _uint(body[REQ_MODEL_VERSION], 0xFFFFFFFF, "model version"),
        _uint(body[REQ_SEQ], MAX_SEQ, "seq"),
        tuple(tensors),
        _uint(telemetry[TEL_LATENCY_US], 0xFFFFFFFF, "latency_us"),
        _uint(telemetry[TEL_ARENA_BYTES], 0xFFFFFFFF, "arena_bytes"),
    )


def seal_answer(
    key_down: bytes, iv: bytes, model_id: str, model_version: int, seq: int, outputs: list[np.ndarray]
) -> bytes:
    body = {ANS_SEQ: seq, ANS_OUTPUTS: [[list(o.shape), o.astype("<f4").tobytes()] for o in outputs]}
    ct = aead(key_down).encrypt(nonce(iv, seq), cbor2.dumps(body), enc_structure(model_id, model_version))
    return cbor2.dumps([PROTECTED, {}, ct])


# --- the device's half, in Python: used by tests, the benchmark and as the executable spec of runtime_c/wire ---


def seal_request(
    key_up: bytes,
    iv: bytes,
    kid: bytes,
    model_id: str,
    model_version: int,
    seq: int,
    tensors: list[tuple[np.ndarray, float, int]],
    latency_us: int = 0,
    arena_bytes: int = 0,
) -> bytes:
    body = {
        REQ_MODEL_ID: model_id,
        REQ_MODEL_VERSION: model_version,
        REQ_SEQ: seq,
        REQ_TENSORS: [
            [list(q.shape), float(np.float32(scale)), zp, q.astype(np.int8).tobytes()] for q, scale, zp in tensors
        ],
        REQ_TELEMETRY: {TEL_LATENCY_US: latency_us, TEL_ARENA_BYTES: arena_bytes},
    }
    ct = ChaCha20Poly1305(key_up).encrypt(
        nonce(iv, seq), cbor2.dumps(body, canonical=True), enc_structure(model_id, model_version)
    )
    unprotected = {HDR_KID: kid, HDR_PIV: encode_piv(seq), HDR_MODEL_VERSION: model_version}
    return cbor2.dumps([PROTECTED, unprotected, ct])


def open_answer(
    key_down: bytes, iv: bytes, model_id: str, model_version: int, seq: int, message: bytes
) -> list[np.ndarray]:
    item = strict_loads(message)
    if not isinstance(item, list) or len(item) != 3 or item[0] != PROTECTED or item[1] != {}:
        raise Malformed("answer must be [h'A1011818', {}, ciphertext]")
    try:
        pt = ChaCha20Poly1305(key_down).decrypt(nonce(iv, seq), item[2], enc_structure(model_id, model_version))
    except Exception:
        raise AuthFailed("answer tag does not verify") from None
    body = strict_loads(pt)
    if not isinstance(body, dict) or body.get(ANS_SEQ) != seq:
        raise Malformed("answer for another seq")
    return [np.frombuffer(data, "<f4").reshape(shape) for shape, data in body[ANS_OUTPUTS]]
