"""The `tinysplit` command line."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any

import typer

from tinysplit.compiler.errors import CompileError

app = typer.Typer(
    help="Compile ONNX models into split deployments for microcontrollers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 70


def _friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Bad input -> one clear line and exit 2; a bug -> one line and exit 70 (traceback with TINYSPLIT_DEBUG=1)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CompileError as e:
            typer.echo(f"error: {e}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
            typer.echo(f"error: {e.strerror}: {e.filename}", err=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except typer.Exit:
            raise
        except Exception as e:
            if os.environ.get("TINYSPLIT_DEBUG"):
                traceback.print_exc()
            typer.echo(f"internal error: {type(e).__name__}: {e} (set TINYSPLIT_DEBUG=1 for details)", err=True)
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


def parse_input_shapes(specs: list[str] | None) -> dict[str, tuple[int, ...]] | None:
    """`NAME:1,32,32,3` per input, or a bare `1,32,32,3` for a single-input model (key "")."""
    if not specs:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for spec in specs:
        name, _, dims = spec.rpartition(":")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            raise CompileError(f"--input-shape {spec!r}: expected NAME:D0,D1,... with integer dims") from None
        if any(d <= 0 for d in shape):
            raise CompileError(f"--input-shape {spec!r}: dimensions must be positive")
        shapes[name] = shape
    return shapes


InputShape = Annotated[
    list[str] | None,
    typer.Option("--input-shape", help="Fix an input's shape, e.g. input:1,28,28,1 (repeatable)."),
]


@app.command()
@_friendly_errors
def compile(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (replaced atomically).")] = Path("out"),
    target: Annotated[str, typer.Option(help="Device profile: host, stm32, nrf52, esp32c3, rp2040, ...")] = "host",
    input_shape: InputShape = None,
    prefix: Annotated[str, typer.Option(help="C symbol prefix of the generated model.")] = "model",
    quantize: Annotated[str | None, typer.Option("--quantize", help="Quantize a float model: int8.")] = None,
    calibration: Annotated[
        Path | None, typer.Option(help="Calibration data for --quantize: .npy, .npz or a folder of images.")
    ] = None,
    calibration_method: Annotated[str, typer.Option(help="minmax, percentile or entropy.")] = "minmax",
    weights: Annotated[
        str,
        typer.Option(
            help="How int8 conv / fully connected weights are stored: int8, int16 (pre-widened for the DSP "
            "extension's SMLAD: fewer instructions per MAC, twice their flash) or auto (int16 on DSP targets "
            "when it fits the flash budget)."
        ),
    ] = "auto",
    emit_deps: Annotated[
        Path | None, typer.Option(help="Write a Makefile-format dependency file of the outputs on their inputs.")
    ] = None,
    cores: Annotated[
        int,
        typer.Option(
            min=1, max=4, help="Split conv/pool output rows over N cores (C: <prefix>_run_worker, Rust: Model::run_on)."
        ),
    ] = 1,
    tile_memory: Annotated[
        str, typer.Option(help="'auto': patch-based execution of the first layers where it lowers peak RAM.")
    ] = "off",
    lang: Annotated[str, typer.Option("--lang", help="Device code: c, rust or c,rust.")] = "c",
    split: Annotated[
        str | None,
        typer.Option(help="Split the model: auto (search), none (all on device), input (all on server) or a tensor."),
    ] = None,
    link: Annotated[str, typer.Option(help="Radio link of the split: ble, ble2m, ieee802154, ltem, wifi.")] = "ble",
    objective: Annotated[str, typer.Option(help="What --split auto minimises: latency or energy.")] = "latency",
    max_leakage: Annotated[
        float | None,
        typer.Option(
            help="Split constraint: at most this leakage, 0..1: the inversion attack's SSIM with --privacy-data "
            "(0.3 and below: unrecognizable), else distance correlation."
        ),
    ] = None,
    privacy_data: Annotated[
        Path | None,
        typer.Option(
            help="Real inputs (.npy, .npz or image folder, like --calibration; 500 or more) the split's leakage is "
            "measured on: the SSIM a learned inversion attack reaches, on every cut that meets the other constraints "
            "(seconds per cut; needs the privacy extra). Pass the --calibration file again if it holds enough. "
            "Without it: distance correlation."
        ),
    ] = None,
    max_bytes: Annotated[int | None, typer.Option(help="Split constraint: at most this many message bytes.")] = None,
    noise: Annotated[
        str,
        typer.Option(
            help="Noise the device adds to what it sends: none, gaussian:SCALE, laplace:SCALE "
            "(std in quantization steps), auto, DIST:auto."
        ),
    ] = "none",
    max_accuracy_drop: Annotated[
        float, typer.Option(help="--noise auto: accuracy points (top-1 changes on --calibration data) it may cost.")
    ] = 1.0,
) -> None:
    """Compile MODEL into device code and a report in OUT."""
    from tinysplit.compiler.pipeline import CompileOptions, compile_model
    from tinysplit.passes.noise import AutoNoise, parse_noise
    from tinysplit.passes.weight_layout import WEIGHT_LAYOUTS

    if not prefix.isidentifier():
        raise CompileError(f"--prefix {prefix!r} is not a C identifier")
    if quantize not in (None, "int8"):
        raise CompileError(f"--quantize {quantize!r}: only int8 is supported")
    if quantize and calibration is None:
        raise CompileError("--quantize int8 needs --calibration PATH (.npy, .npz or a folder of images)")
    if calibration_method not in ("minmax", "percentile", "entropy"):
        raise CompileError(f"--calibration-method {calibration_method!r}: use minmax, percentile or entropy")
    options = CompileOptions(target, parse_input_shapes(input_shape), prefix)
    options.quantize, options.calibration, options.calibration_method = quantize, calibration, calibration_method
    options.emit_deps = emit_deps
    if weights not in WEIGHT_LAYOUTS:
        raise CompileError(f"--weights {weights!r}: use {', '.join(WEIGHT_LAYOUTS)}")
    options.weights = weights
    if tile_memory not in ("off", "auto"):
        raise CompileError(f"--tile-memory {tile_memory!r}: use off or auto")
    options.cores, options.tile_memory = cores, tile_memory == "auto"
    langs = tuple(dict.fromkeys(p.strip() for p in lang.split(",") if p.strip()))
    if not langs or set(langs) - {"c", "rust"}:
        raise CompileError(f"--lang {lang!r}: use c, rust or c,rust")
    options.langs = langs
    options.split, options.link, options.objective = split, link, objective
    options.max_leakage, options.max_bytes = max_leakage, max_bytes
    if privacy_data is not None and split is None:
        raise CompileError("--privacy-data measures the leakage of a split: it needs --split")
    options.privacy_data = privacy_data
    if isinstance(parse_noise(noise), AutoNoise) and calibration is None:
        raise CompileError("--noise auto needs --calibration data")
    options.noise, options.max_accuracy_drop = noise, max_accuracy_drop
    report = compile_model(model, out, options)
    mem = report["memory"]
    typer.echo(
        f"{model.name} -> {out}/  target {report['target']['name']}: {report['totals']['layers']} layers, "
        f"{report['totals']['macs']:,} MACs, arena {mem['arena_bytes']:,} B "
        f"(lower bound {mem['lower_bound_bytes']:,} B), weights {mem['weight_bytes']:,} B"
    )
    if "split" in report:
        s = report["split"]
        ms = {k: f"{s[k]['latency_s'] * 1e3:,.1f} ms" for k in ("choice", "all_on_device", "all_on_server")}
        typer.echo(
            f"split over {s['link']['name']}: {s['choice']['label']}, predicted {ms['choice']} end to end "
            f"(all on device {ms['all_on_device']}, all on server {ms['all_on_server']}); see report.md, split.png"
        )
        for problem in s["choice"]["problems"]:
            typer.echo(f"warning: the forced split does not fit: {problem}", err=True)
    for what in ("ram", "flash"):
        if not report["fits"][what]:
            typer.echo(f"warning: the model does not fit the {what} of {report['target']['name']}", err=True)


@app.command()
@_friendly_errors
def inspect(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    input_shape: InputShape = None,
) -> None:
    """Per layer: op, shapes, dtype, MACs, parameter bytes, activation bytes; and totals."""
    from tinysplit.compiler import frontend
    from tinysplit.compiler.stats import graph_stats, totals
    from tinysplit.passes.canonicalize import canonicalize

    graph = canonicalize(frontend.load(model, parse_input_shapes(input_shape)))
    layers = graph_stats(graph)
    columns = f"{'#':>3}  {'op':<16} {'dtype':<7} {'input':<18} {'output':<18}"
    typer.echo(f"{columns} {'MACs':>12} {'params B':>10} {'act B':>9}")
    for i, s in enumerate(layers):
        shape_in = " ".join("x".join(map(str, x)) for x in s.input_shapes)
        shape_out = " ".join("x".join(map(str, x)) for x in s.output_shapes)
        typer.echo(
            f"{i:>3}  {s.op:<16} {s.dtype:<7} {shape_in:<18} {shape_out:<18} {s.macs:>12,} "
            f"{s.param_bytes:>10,} {s.output_bytes:>9,}"
        )
    t = totals(layers)
    typer.echo(
        f"total: {t['layers']} layers, {t['macs']:,} MACs, {t['param_bytes']:,} parameter bytes, "
        f"{t['activation_bytes']:,} activation bytes"
    )


@app.command()
@_friendly_errors
def privacy(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    split: Annotated[list[str], typer.Option("--split", help="Cut after this tensor (repeatable).")],
    data: Annotated[
        str, typer.Option(help="mnist, or a .npz with x_train, y_train (attacker), x_test, y_test.")
    ] = "mnist",
    scales: Annotated[
        str, typer.Option(help="Noise scales to sweep, comma-separated (quantization steps).")
    ] = "4,8,16,32,64,128",
    distribution: Annotated[list[str] | None, typer.Option(help="gaussian and/or laplace (repeatable).")] = None,
    noise: Annotated[
        str, typer.Option(help="auto: also the scale --max-accuracy-drop allows; none: the sweep only.")
    ] = "auto",
    max_accuracy_drop: Annotated[float, typer.Option(help="Accuracy points --noise auto may cost.")] = 1.0,
    quick: Annotated[bool, typer.Option(help="A smaller, faster attack (its SSIM is a looser lower bound).")] = False,
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder: privacy.json and PNGs.")] = Path("privacy"),
) -> None:
    """How much of the input a server could rebuild from the cut: inversion attack, with and without noise."""
    from tinysplit.compiler.privacy import privacy_cli

    if noise not in ("auto", "none"):
        raise CompileError(f"--noise {noise!r}: use auto or none")
    try:
        values = [float(s) for s in scales.split(",") if s.strip()]
    except ValueError:
        raise CompileError(f"--scales {scales!r}: expected numbers separated by commas") from None
    privacy_cli(
        model, split, data, values, distribution or ["gaussian"], out,
        auto=noise == "auto", max_drop=max_accuracy_drop, quick=quick, log=typer.echo,
    )  # fmt: skip


@app.command()
@_friendly_errors
def bench(
    model: Annotated[Path, typer.Argument(help="The ONNX model.")],
    target: Annotated[
        str, typer.Option(help="Device profile with an emulator: stm32, nrf52 (Cortex-M4), esp32c3, riscv (RV32).")
    ] = "stm32",
    arch: Annotated[
        str | None, typer.Option(help="Emulated architecture: cortex-m4 or rv32 (default: the target's).")
    ] = None,
    json_file: Annotated[Path | None, typer.Option("--json", help="Also write the results to this JSON file.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random inputs.")] = 0,
    input_shape: InputShape = None,
    weights: Annotated[
        str, typer.Option(help="int8 conv / fully connected weight storage: auto, int8, int16.")
    ] = "auto",
) -> None:
    """Run MODEL once on an emulated microcontroller (QEMU): per-layer and total emulated instructions,
    instructions per MAC, flash, RAM and stack; outputs checked against the reference (exit 1 if they differ)."""
    from tinysplit.compiler.bench import bench_cli
    from tinysplit.passes.weight_layout import WEIGHT_LAYOUTS

    if weights not in WEIGHT_LAYOUTS:
        raise CompileError(f"--weights {weights!r}: use {', '.join(WEIGHT_LAYOUTS)}")
    bench_cli(model, target, arch, json_file, seed, parse_input_shapes(input_shape), weights)


def _register_server_commands() -> None:
    from tinysplit.server.cli import keys_app
    from tinysplit.server.cli import serve as serve_command

    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve_command)


_register_server_commands()


def main() -> None:
    sys.exit(app())


if __name__ == "__main__":
    main()
