"""`tinysplit keys add|list|revoke` and `tinysplit serve` (registered by compiler/cli.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import Annotated

import typer

from tinysplit.server.bundle import BundleError, load_bundle
from tinysplit.server.keystore import Keystore, KeystoreError

keys_app = typer.Typer(help="Manage per-device keys of a server bundle.", no_args_is_help=True)

BundleDir = Annotated[
    Path, typer.Option("--bundle", "-b", help="Compile output folder (keys in OUT/server/keys.json).")
]
KeystorePath = Annotated[Path | None, typer.Option("--keystore", help="Keystore file (overrides --bundle).")]


def keystore_path(bundle: Path, keystore: Path | None) -> Path:
    if keystore is not None:
        return keystore
    return (bundle if (bundle / "bundle.json").exists() else bundle / "server") / "keys.json"


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@keys_app.command("add")
def keys_add(
    device: Annotated[str, typer.Argument(help="Device id, 1..32 of [A-Za-z0-9_.-]; sent as the COSE kid.")],
    bundle: BundleDir = Path("out"),
    keystore: KeystorePath = None,
    header: Annotated[Path | None, typer.Option(help="Also write a C header (keys.h) for the device build.")] = None,
) -> None:
    """Create fresh keys for DEVICE and print what the device needs (KEY=hex lines, secret)."""
    store = Keystore(keystore_path(bundle, keystore))
    try:
        keys = store.add(device)
    except KeystoreError as e:
        raise _fail(str(e)) from None
    if header is not None:
        fd = os.open(header, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(keys.c_header())
    typer.echo(keys.env_lines(), nl=False)


@keys_app.command("list")
def keys_list(bundle: BundleDir = Path("out"), keystore: KeystorePath = None) -> None:
    """List devices (id, state, creation time); never prints keys."""
    store = Keystore(keystore_path(bundle, keystore))
    for k in sorted(store.devices.values(), key=lambda k: k.device_id):
        typer.echo(f"{k.device_id}\t{'revoked' if k.revoked else 'active'}\t{k.created}")


@keys_app.command("revoke")
def keys_revoke(
    device: Annotated[str, typer.Argument()], bundle: BundleDir = Path("out"), keystore: KeystorePath = None
) -> None:
    """Revoke DEVICE: a running server rejects its messages within a second."""
    store = Keystore(keystore_path(bundle, keystore))
    try:
        store.revoke(device)
    except KeystoreError as e:
        raise _fail(str(e)) from None
    typer.echo(f"revoked {device}")


def serve(
    out: Annotated[Path, typer.Argument(help="Compile output folder holding server/bundle.json and server/tail.onnx.")],
    host: Annotated[str, typer.Option(help="Address to bind; '::' serves IPv6 and IPv4.")] = "::",
    port: Annotated[int, typer.Option(help="UDP port.")] = 5683,
    keystore: KeystorePath = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="Also serve Prometheus text on http://METRICS_HOST:PORT/metrics.")
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="Address of the HTTP metrics server.")] = "127.0.0.1",
    max_pending: Annotated[int, typer.Option(help="Queued requests before answering 5.03.")] = 512,
    cpu: Annotated[int | None, typer.Option(help="Pin the server to this CPU core.")] = None,
) -> None:
    """Serve the tail of a split model over CoAP: POST coap://HOST:PORT/ts/infer, GET /ts/metrics."""
    from tinysplit.server.coap import ServerOptions
    from tinysplit.server.coap import serve as run

    try:
        bundle = load_bundle(out)
    except BundleError as e:
        raise _fail(str(e)) from None
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    opts = ServerOptions(host, port, keystore_path(out, keystore) if keystore is None else keystore, None,
                         metrics_host, metrics_port, max_pending)  # fmt: skip

    async def main() -> None:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)

        def ready(_: object) -> None:
            typer.echo(f"tinysplit: serving {bundle.model_id} v{bundle.model_version} on udp [{host}]:{port}")

        with contextlib.suppress(asyncio.CancelledError):
            await run(bundle, opts, ready)

    asyncio.run(main())
