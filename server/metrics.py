"""Counters and per-device telemetry, rendered in the Prometheus text exposition format (0.0.4)."""

from __future__ import annotations

from dataclasses import dataclass

# Every outcome of a request: (CoAP response code, what it means). One counter each.
RESULTS: dict[str, tuple[str, str]] = {
    "ok": ("2.04", "answered with a sealed result"),
    "malformed": ("4.00", "not CBOR, not a COSE_Encrypt0 of this protocol, or a bad field"),
    "unknown_device": ("4.01", "kid not in the keystore"),
    "revoked_device": ("4.01", "kid revoked"),
    "auth_failed": ("4.01", "AEAD tag does not verify: tampered, forged or wrong key"),
    "replay": ("4.01", "sequence number already seen or below the window"),
    "stale_model": ("4.09", "authentic, but sealed for another model version"),
    "unsupported_format": ("4.15", "Content-Format present and not 16 (cose-encrypt0)"),
    "bad_tensor": ("4.22", "authentic, but the tensors do not match the bundle's cut"),
    "internal": ("5.00", "the tail model failed"),
    "overload": ("5.03", "too many requests queued; retry after Max-Age"),
}


@dataclass
class DeviceStats:
    requests: int = 0
    last_seq: int = 0
    latency_us: int = 0
    latency_us_sum: int = 0
    arena_bytes: int = 0
    arena_bytes_max: int = 0


class Metrics:
    def __init__(self) -> None:
        self.results = dict.fromkeys(RESULTS, 0)
        self.devices: dict[str, DeviceStats] = {}
        self.batches = 0
        self.batch_items = 0
        self.inference_seconds = 0.0

    def count(self, result: str) -> None:
        self.results[result] += 1

    def telemetry(self, device: str, seq: int, latency_us: int, arena_bytes: int) -> None:
        s = self.devices.get(device)
        if s is None:
            s = self.devices[device] = DeviceStats()
        s.requests += 1
        s.last_seq = seq
        s.latency_us = latency_us
        s.latency_us_sum += latency_us
        s.arena_bytes = arena_bytes
        s.arena_bytes_max = max(s.arena_bytes_max, arena_bytes)

    def exposition(self) -> str:
        out = [
            "# HELP tinysplit_requests_total Inference requests by outcome (code: the CoAP response code).",
            "# TYPE tinysplit_requests_total counter",
        ]
        out += [f'tinysplit_requests_total{{result="{r}",code="{RESULTS[r][0]}"}} {n}' for r, n in self.results.items()]
        out += [
            "# HELP tinysplit_inference_batches_total onnxruntime calls of the tail model.",
            "# TYPE tinysplit_inference_batches_total counter",
            f"tinysplit_inference_batches_total {self.batches}",
            "# HELP tinysplit_inference_batch_items_total Requests answered by those calls.",
            "# TYPE tinysplit_inference_batch_items_total counter",
            f"tinysplit_inference_batch_items_total {self.batch_items}",
            "# HELP tinysplit_inference_seconds_total Time spent in the tail model.",
            "# TYPE tinysplit_inference_seconds_total counter",
            f"tinysplit_inference_seconds_total {self.inference_seconds:.6f}",
        ]
        per_device = [
            ("device_requests_total", "counter", "Accepted requests per device.", "requests"),
            ("device_last_seq", "gauge", "Highest sequence number accepted from the device.", "last_seq"),
            ("device_latency_us", "gauge", "Device-reported head latency of the last request (us).", "latency_us"),
            ("device_latency_us_sum", "counter", "Sum of device-reported head latencies (us).", "latency_us_sum"),
            ("device_arena_bytes", "gauge", "Device-reported arena use of the last request.", "arena_bytes"),
            ("device_arena_bytes_max", "gauge", "Largest device-reported arena use.", "arena_bytes_max"),
        ]
        for name, kind, help_text, attr in per_device:
            out += [f"# HELP tinysplit_{name} {help_text}", f"# TYPE tinysplit_{name} {kind}"]
            # device ids are [A-Za-z0-9_.-] (keystore.check_device_id): nothing to escape
            out += [f'tinysplit_{name}{{device="{d}"}} {getattr(s, attr)}' for d, s in sorted(self.devices.items())]
        return "\n".join(out) + "\n"
