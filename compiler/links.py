"""Link profiles (links/*.toml) and the time and radio energy of one request over a link.

A request travels as layers, each adding its bytes, and the model counts every one:

1. the sealed message of server/wire.py (COSE_Encrypt0 over CBOR: the cut tensors as int8 with
   shape, scale and zero point, plus telemetry), measured by encoding it (`request_bytes`);
2. CoAP (RFC 7252) over UDP: header, token, options; a message above 1024 bytes goes as
   block-wise transfer (RFC 7959, Block1, SZX 6), one confirmable block at a time (NSTART 1), each
   answered by 2.31 Continue, the last by the 2.04 carrying the sealed answer (`coap_messages`);
3. the (compressed) IP + UDP header of each datagram (`Link.ip_header_bytes`);
4. the link's frames: `segment` (BLE L2CAP splits a datagram into LL PDUs), `6lowpan` (RFC 4944
   fragments with 8-byte aligned offsets, RFC 6282 compressed headers in the first fragment) or
   `none` (one frame per datagram); each frame adds `frame_overhead_bytes` on air and
   `frame_gap_s` of inter-frame time (spacing, backoff, acknowledgement).

Time of one CoAP message: latency_s + sum over frames of (air bytes * 8 / phy_bps + frame_gap_s).
Energy on the device, sending: tx_w * airtime + rx_w * gaps (it listens for the ACK or the
central's empty PDU); receiving: rx_w * (airtime + gaps). Not counted: connection set-up, sleep
between connection events, the radio waiting for the server, retransmissions.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, fields
from importlib import resources

import numpy as np

from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.targets import RadioPower, Target

FRAGMENTATIONS = ("segment", "6lowpan", "none")
ALIASES = {"ble1m": "ble", "802.15.4": "ieee802154", "802154": "ieee802154", "lte-m": "ltem"}

# CoAP (RFC 7252 §3): 4-byte header + 2-byte token; a request names its resource (Uri-Path "infer":
# 1 + 5 bytes) and Content-Format 16 (2 bytes); a payload follows a 0xFF marker. Block1 (RFC 7959
# §2.2): option header + a 2-byte block number/SZX value.
COAP_BLOCK_BYTES = 1024
COAP_HEADER = 4 + 2
COAP_REQUEST_OPTIONS = 6 + 2
COAP_RESPONSE_OPTIONS = 2  # Content-Format of the sealed answer
COAP_PAYLOAD_MARKER = 1
COAP_BLOCK1 = 3

# RFC 4944 §5.3 fragment headers; RFC 6282 §2: fragment offsets count the *uncompressed* IPv6 (40)
# + UDP (8) header, so fragment payloads are sized to keep 48 + offset a multiple of 8.
FRAG1_BYTES, FRAGN_BYTES, UNCOMPRESSED_IP_UDP = 4, 5, 48


@dataclass(frozen=True)
class Link:
    name: str
    description: str
    radio: str
    phy_bps: float
    fragmentation: str
    frame_payload_bytes: int
    frame_overhead_bytes: int
    frame_gap_s: float
    ip_header_bytes: int
    mtu_bytes: int
    latency_s: float
    tx_w: float | None = None
    rx_w: float | None = None
    external: bool = False


@dataclass(frozen=True)
class Transfer:
    """What moving some CoAP messages one way costs: seconds, device joules, frames, bytes."""

    seconds: float = 0.0
    joules: float = 0.0
    frames: int = 0
    message_bytes: int = 0  # CoAP messages (what the application hands to UDP)
    air_bytes: int = 0  # everything on air, link headers included

    def __add__(self, other: Transfer) -> Transfer:
        return Transfer(
            self.seconds + other.seconds,
            self.joules + other.joules,
            self.frames + other.frames,
            self.message_bytes + other.message_bytes,
            self.air_bytes + other.air_bytes,
        )


def available_links() -> list[str]:
    root = resources.files("tinysplit.links")
    return sorted(p.name[: -len(".toml")] for p in root.iterdir() if p.name.endswith(".toml"))


def load_link(name: str) -> Link:
    name = ALIASES.get(name, name)
    path = resources.files("tinysplit.links") / f"{name}.toml"
    if not path.is_file():
        raise CompileError(f"unknown link {name!r}; available: {', '.join(available_links())}")
    data = tomllib.loads(path.read_text())
    known = {f.name for f in fields(Link)}
    if set(data) - known:
        raise CompileError(f"link file {name}.toml has unknown keys: {sorted(set(data) - known)}")
    link = Link(**data)
    if link.fragmentation not in FRAGMENTATIONS:
        raise CompileError(f"link file {name}.toml: fragmentation must be one of {FRAGMENTATIONS}")
    return link


def radio_power(target: Target, link: Link) -> RadioPower:
    """The device's radio power on `link`: the target's own figure for that radio, else the link file's."""
    if link.radio not in target.radios and not link.external:
        radios = ", ".join(target.radios) or "none"
        raise CompileError(f"target {target.name} has no {link.radio} radio for link {link.name} (radios: {radios})")
    own = target.cost.radio.get(link.radio)
    if own is not None:
        return own
    if link.tx_w is None or link.rx_w is None:
        raise CompileError(f"neither target {target.name} nor link {link.name} gives the {link.radio} radio's power")
    return RadioPower(link.tx_w, link.rx_w)


def frame_payloads(link: Link, datagram_bytes: int) -> list[int]:
    """Link-layer payload bytes of each frame that carries one (header-compressed) datagram."""
    p = link.frame_payload_bytes
    if link.fragmentation == "segment" or datagram_bytes <= p:
        return [p] * (datagram_bytes // p) + ([datagram_bytes % p] if datagram_bytes % p else [])
    if link.fragmentation == "none":
        raise CompileError(f"link {link.name}: a {datagram_bytes}-byte datagram exceeds the {p}-byte frame payload")
    # 6LoWPAN: the first fragment carries the compressed header and UDP payload up to an 8-byte
    # boundary of the uncompressed datagram; the others 8-byte multiples after a FRAGN header.
    header = link.ip_header_bytes
    first = (p - FRAG1_BYTES - header + UNCOMPRESSED_IP_UDP) // 8 * 8 - UNCOMPRESSED_IP_UDP
    rest = (p - FRAGN_BYTES) // 8 * 8
    left = datagram_bytes - header - first
    frames = [FRAG1_BYTES + header + first]
    while left > 0:
        frames.append(FRAGN_BYTES + min(rest, left))
        left -= rest
    return frames


def send(link: Link, power: RadioPower, message_bytes: int, uplink: bool) -> Transfer:
    """One CoAP message from the device (uplink) or to it, over `link`."""
    datagram = message_bytes + link.ip_header_bytes
    if datagram > link.mtu_bytes:
        raise CompileError(f"link {link.name}: a {datagram}-byte datagram exceeds the {link.mtu_bytes}-byte MTU")
    air = [b + link.frame_overhead_bytes for b in frame_payloads(link, datagram)]
    airtime = sum(air) * 8 / link.phy_bps
    gaps = len(air) * link.frame_gap_s
    joules = power.tx_w * airtime + power.rx_w * gaps if uplink else power.rx_w * (airtime + gaps)
    return Transfer(link.latency_s + airtime + gaps, joules, len(air), message_bytes, sum(air))


def _blocks(payload: int) -> list[int]:
    n = max(1, math.ceil(payload / COAP_BLOCK_BYTES))
    return [COAP_BLOCK_BYTES] * (n - 1) + [payload - (n - 1) * COAP_BLOCK_BYTES]


def coap_messages(request_payload: int, answer_payload: int) -> list[tuple[int, int]]:
    """(request bytes, response bytes) of each CoAP exchange that carries one request and its answer.

    Above 1024 bytes the request goes as Block1 blocks, each acknowledged by 2.31 Continue but the
    last, whose 2.04 response starts the answer; an answer above 1024 bytes goes as Block2 blocks,
    each further block fetched by a payload-less request (RFC 7959 §2.3, §2.4).
    """
    ups, downs = _blocks(request_payload), _blocks(answer_payload)
    block1 = COAP_BLOCK1 if len(ups) > 1 else 0
    block2 = COAP_BLOCK1 if len(downs) > 1 else 0
    request = COAP_HEADER + COAP_REQUEST_OPTIONS + COAP_PAYLOAD_MARKER + block1
    answer = COAP_HEADER + COAP_RESPONSE_OPTIONS + COAP_PAYLOAD_MARKER + block1 + block2
    messages = [(request + size, COAP_HEADER + block1) for size in ups[:-1]]
    messages.append((request + ups[-1], answer + downs[0]))
    fetch = COAP_HEADER + COAP_REQUEST_OPTIONS - 2 + block2  # Uri-Path and Block2, no Content-Format, no payload
    return messages + [(fetch, answer - block1 + size) for size in downs[1:]]


def exchange(link: Link, power: RadioPower, request_payload: int, answer_payload: int) -> tuple[Transfer, Transfer]:
    """(uplink, downlink) cost of sending a sealed request of `request_payload` bytes and receiving the answer."""
    up, down = Transfer(), Transfer()
    for req, resp in coap_messages(request_payload, answer_payload):
        up += send(link, power, req, uplink=True)
        down += send(link, power, resp, uplink=False)
    return up, down


def goodput_bps(link: Link) -> float:
    """Application bytes per second of a long stream of full frames (for comparison with published figures)."""
    p = link.frame_payload_bytes
    frame = (p + link.frame_overhead_bytes) * 8 / link.phy_bps + link.frame_gap_s
    payload = (p - FRAGN_BYTES) // 8 * 8 if link.fragmentation == "6lowpan" else p
    return payload * 8 / frame


# the sealed messages (layer 1), measured by encoding them with server/wire.py ------------------
KEY, IV, KID = bytes(32), bytes(12), b"device-0001"  # an 11-byte device id
SEQ, LATENCY_US, ARENA_BYTES = 1 << 24, 1 << 24, 1 << 17  # typical magnitudes: 4-byte seq and telemetry


def request_bytes(cut: list[tuple[tuple[int, ...], float, int]], model_id: str, model_version: int = 1) -> int:
    """Bytes of the sealed request carrying int8 tensors of these (shape, scale, zero point)."""
    from tinysplit.server import wire

    tensors = [(np.zeros(shape, np.int8), scale, zp) for shape, scale, zp in cut]
    return len(wire.seal_request(KEY, IV, KID, model_id, model_version, SEQ, tensors, LATENCY_US, ARENA_BYTES))


def answer_bytes(output_shapes: list[tuple[int, ...]], model_id: str, model_version: int = 1) -> int:
    """Bytes of the sealed answer carrying the model's outputs (float32, as server/wire.py sends them)."""
    from tinysplit.server import wire

    outputs = [np.zeros(shape, np.float32) for shape in output_shapes]
    return len(wire.seal_answer(KEY, IV, model_id, model_version, SEQ, outputs))
