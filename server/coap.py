"""The CoAP face of the server (aiocoap, UDP): POST /ts/infer, GET /ts/metrics, optional HTTP metrics.

One process, one asyncio loop. The udp6 transport binds a dual-stack socket, so the default bind
("::", 5683) serves IPv4 (as mapped addresses) and IPv6 alike. Requests larger than one datagram
may come block-wise (Block1, RFC 7959; aiocoap reassembles them); aiocoap's receive buffer is
raised to 64 KiB so that a host device may also send a whole cut tensor in one datagram.
"""

from __future__ import annotations

import asyncio
import http.server
import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiocoap
import aiocoap.resource as resource
from aiocoap.numbers.codes import Code
from aiocoap.util.asyncio import recvmsg

from tinysplit.server import wire
from tinysplit.server.bundle import Bundle
from tinysplit.server.keystore import Keystore
from tinysplit.server.metrics import Metrics
from tinysplit.server.replay import ReplayGuard
from tinysplit.server.service import InferenceService

INFER_PATH = ("ts", "infer")
METRICS_PATH = ("ts", "metrics")
CONTENT_FORMAT_TEXT = 0
OVERLOAD_MAX_AGE = 1  # seconds a device should wait after 5.03

log = logging.getLogger("tinysplit.server")


class InferResource(resource.Resource):
    def __init__(self, service: InferenceService) -> None:
        super().__init__()
        self.service = service

    async def render_post(self, request: aiocoap.Message) -> aiocoap.Message:
        cf = request.opt.content_format
        reply = await self.service.handle(request.payload, None if cf is None else int(cf))
        code = Code(int(reply.code[0]) << 5 | int(reply.code[2:]))
        message = aiocoap.Message(code=code, payload=reply.payload)
        if reply.result == "ok":
            message.opt.content_format = wire.CONTENT_FORMAT
        elif reply.result == "overload":
            message.opt.max_age = OVERLOAD_MAX_AGE
        return message


class MetricsResource(resource.Resource):
    def __init__(self, metrics: Metrics) -> None:
        super().__init__()
        self.metrics = metrics

    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(
            code=Code.CONTENT, payload=self.metrics.exposition().encode(), content_format=CONTENT_FORMAT_TEXT
        )


def build_site(service: InferenceService) -> resource.Site:
    site = resource.Site()
    site.add_resource(INFER_PATH, InferResource(service))
    site.add_resource(METRICS_PATH, MetricsResource(service.metrics))
    return site


def start_http_metrics(host: str, port: int, render: Callable[[], str]) -> http.server.ThreadingHTTPServer:
    """GET /metrics on a stdlib HTTP server in a thread; render() runs on the asyncio loop (thread-safe)."""
    loop = asyncio.get_running_loop()

    async def text() -> str:
        return render()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = asyncio.run_coroutine_threadsafe(text(), loop).result(timeout=5).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server


def enlarge_receive_buffer(context: aiocoap.Context, size: int) -> None:
    """A burst of devices each sending a whole cut tensor (8 KB for DS-CNN) overflows the default
    ~200 KB socket buffer and the kernel drops datagrams; the kernel caps this at net.core.rmem_max."""
    for interface in context.request_interfaces:
        transport = getattr(
            getattr(getattr(interface, "token_interface", None), "message_interface", None), "transport", None
        )
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


@dataclass
class ServerOptions:
    host: str = "::"
    port: int = 5683
    keystore: Path | None = None  # default: BUNDLE/keys.json
    replay_state: Path | None = None  # default: beside the keystore, replay.json
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = None
    max_pending: int = 512
    max_batch: int = 8
    receive_buffer: int = 4 << 20


async def serve(bundle: Bundle, opts: ServerOptions, ready: Callable[[InferenceService], None] | None = None) -> None:
    """Run until cancelled (SIGINT/SIGTERM in the CLI); the replay state is closed cleanly on the way out."""
    keystore_path = opts.keystore or bundle.folder / "keys.json"
    keystore = Keystore(keystore_path)
    replay = ReplayGuard(opts.replay_state or keystore_path.with_name("replay.json"))
    service = InferenceService(bundle, keystore, replay, max_pending=opts.max_pending, max_batch=opts.max_batch)
    # aiocoap reads datagrams with a 4 KiB buffer; a cut tensor sent in one datagram is larger
    recvmsg.RecvmsgSelectorDatagramTransport.max_size = 65535
    context = await aiocoap.Context.create_server_context(
        build_site(service), bind=(opts.host, opts.port), transports=["udp6"]
    )
    enlarge_receive_buffer(context, opts.receive_buffer)
    http_server = None
    if opts.metrics_port is not None:
        http_server = start_http_metrics(opts.metrics_host, opts.metrics_port, service.metrics.exposition)
    log.info("serving %s v%d on [%s]:%d", bundle.model_id, bundle.model_version, opts.host, opts.port)
    if ready is not None:
        ready(service)
    try:
        while True:
            await asyncio.sleep(1.0)
            try:  # revocations and new devices take effect within a second, without a restart
                if keystore.reload_if_changed():
                    log.info("keystore reloaded: %d devices", len(keystore.devices))
            except Exception as e:  # keep the keys we have; a half-written file is retried next tick
                log.warning("keystore not reloaded: %s", e)
    finally:
        if http_server is not None:
            http_server.shutdown()
        await context.shutdown()
        service.close()
