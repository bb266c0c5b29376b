"""Representative inputs for post-training quantization: loading, validation, batching.

`load_calibration(source, graph)` accepts
- a `.npy` file: one array [N, ...] for a single-input model;
- a `.npz` file: one array per graph input name, or a single array for a single-input model;
- a folder of images (PNG, JPEG, PGM/PPM, BMP via Pillow; or `.npy` files, one sample each): each
  image becomes one sample, converted to the input's channel count (1: grayscale, 3: RGB), laid out
  as the input (NCHW when dim 1 is 1 or 3 and the last dim is not, else NHWC) and scaled by
  `image_scale` (default 1/255: pixels in [0, 1]). Images of another size are an error, not resized;
- a Python callable (or any iterable) yielding feeds: a dict input name -> array, or an array;
- arrays directly: a numpy array (single input) or a dict input name -> array.

Samples are given as `[N, *input_shape[1:]]` (N samples of the model's per-batch shape) or
`[N, *input_shape]`. They must be floating point (as the model sees them, already preprocessed),
finite, and at least `min_samples` of them. Every problem is a CompileError naming the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinysplit.compiler.errors import CompileError
from tinysplit.compiler.ir import Graph

MIN_SAMPLES = 8
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".pgm", ".ppm", ".pnm", ".bmp"}

CalibrationSource = str | Path | np.ndarray | Mapping[str, np.ndarray] | Callable[[], Iterable[Any]] | Iterable[Any]


@dataclass
class Calibration:
    """Validated samples: per float graph input, a float32 array [N, *input_shape]."""

    samples: dict[str, np.ndarray]
    source: str = "arrays"

    @property
    def count(self) -> int:
        return len(next(iter(self.samples.values())))

    def batches(self, size: int) -> Iterator[dict[str, np.ndarray]]:
        """Feeds of up to `size` samples, each sample's arrays concatenated along the batch axis."""
        for start in range(0, self.count, size):
            yield {k: np.concatenate(list(v[start : start + size]), axis=0) for k, v in self.samples.items()}


def float_inputs(graph: Graph) -> list[str]:
    return [n for n in graph.inputs if graph.tensors[n].dtype == "float32"]


def load_calibration(
    source: CalibrationSource,
    graph: Graph,
    *,
    min_samples: int = MIN_SAMPLES,
    image_scale: float = 1.0 / 255.0,
) -> Calibration:
    """Load and validate calibration samples for `graph`'s float inputs (see the module doc)."""
    names = float_inputs(graph)
    if not names:
        raise CompileError("the model has no float32 input to calibrate")
    if isinstance(source, str | Path):
        path = Path(source)
        if not path.exists():
            raise CompileError(f"calibration data {str(path)!r} does not exist")
        raw, what = _read_path(path, graph, names, image_scale), str(path)
    elif isinstance(source, np.ndarray | Mapping):
        raw, what = _by_name(source, names, "calibration arrays"), "arrays"
    elif callable(source) or isinstance(source, Iterable):
        raw, what = _from_iterable(source, names), getattr(source, "__name__", type(source).__name__)
    else:
        raise CompileError(f"calibration source of type {type(source).__name__} is not supported")
    samples = {n: _validate(n, raw[n], tuple(graph.tensors[n].shape), what) for n in names}
    counts = {n: len(v) for n, v in samples.items()}
    if len(set(counts.values())) > 1:
        raise CompileError(f"calibration data {what}: inputs have different sample counts {counts}")
    count = next(iter(counts.values()))
    if count < min_samples:
        raise CompileError(
            f"calibration data {what}: {count} sample(s), need at least {min_samples} for meaningful ranges"
        )
    return Calibration(samples, what)


def _by_name(data: np.ndarray | Mapping[str, np.ndarray], names: list[str], what: str) -> dict[str, Any]:
    if isinstance(data, Mapping):
        if len(data) == 1 and len(names) == 1:
            return {names[0]: next(iter(data.values()))}
        missing = [n for n in names if n not in data]
        if missing:
            raise CompileError(f"{what}: no array for model input(s) {missing} (has {sorted(data)}, expects {names})")
        return {n: data[n] for n in names}
    if len(names) != 1:
        raise CompileError(f"{what}: a single array cannot feed a model with inputs {names}; use .npz with names")
    return {names[0]: data}


def _read_path(path: Path, graph: Graph, names: list[str], image_scale: float) -> dict[str, Any]:
    if path.is_dir():
        return _read_folder(path, graph, names, image_scale)
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return _by_name(np.load(path, allow_pickle=False), names, str(path))
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                return _by_name({k: z[k] for k in z.files}, names, str(path))
    except (ValueError, OSError) as e:
        raise CompileError(f"calibration data {str(path)!r} is not a readable numpy file: {e}") from None
    raise CompileError(f"calibration data {str(path)!r}: expected .npy, .npz or a folder of images")


def _read_folder(path: Path, graph: Graph, names: list[str], image_scale: float) -> dict[str, Any]:
    if len(names) != 1:
        raise CompileError(f"calibration folder {str(path)!r}: a folder can only feed a single-input model")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES | {".npy"})
    if not files:
        raise CompileError(f"calibration folder {str(path)!r} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    shape = tuple(graph.tensors[names[0]].shape)
    samples = []
    for f in files:
        try:
            sample = np.load(f, allow_pickle=False) if f.suffix == ".npy" else _read_image(f, shape, image_scale)
        except (ValueError, OSError) as e:
            raise CompileError(f"calibration file {str(f)!r} cannot be read: {e}") from None
        samples.append(np.asarray(sample).reshape(1, *np.asarray(sample).shape))
    if len({s.shape for s in samples}) > 1:
        raise CompileError(f"calibration folder {str(path)!r}: files have different shapes")
    return {names[0]: np.concatenate(samples)}


def _read_image(path: Path, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """One image as the model's per-batch input shape, float32 pixels times `scale`."""
    from PIL import Image  # only image folders need Pillow

    if len(shape) == 4:
        nchw = shape[1] in (1, 3) and shape[3] not in (1, 3)
        channels, (h, w) = (shape[1], shape[2:4]) if nchw else (shape[3], shape[1:3])
    elif len(shape) == 3:  # [N, H, W]: one grayscale plane
        nchw, channels, (h, w) = False, 1, shape[1:3]
    else:
        raise CompileError(f"calibration images need an image-shaped model input, not {list(shape)}")
    if channels not in (1, 3):
        raise CompileError(f"calibration images: the model input {list(shape)} has {channels} channels, not 1 or 3")
    with Image.open(path) as im:
        pixels = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.float32)
    if pixels.shape[:2] != (h, w):
        size = f"{pixels.shape[1]}x{pixels.shape[0]}"
        raise CompileError(f"calibration image {str(path)!r} is {size}, the model wants {w}x{h} (not resized)")
    img = pixels.reshape(h, w, channels) * np.float32(scale)
    if len(shape) == 3:
        return img[:, :, 0]
    return img.transpose(2, 0, 1) if nchw else img


def _from_iterable(source: Callable[[], Iterable[Any]] | Iterable[Any], names: list[str]) -> dict[str, Any]:
    items = source() if callable(source) else source
    parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
    for i, item in enumerate(items):
        feed = _by_name(item, names, f"calibration feed #{i}")
        for n in names:
            parts[n].append(_as_samples(n, np.asarray(feed[n])))
    if not parts[names[0]]:
        raise CompileError("calibration callable yielded no feeds (empty calibration data)")
    shapes = {n: {p.shape[1:] for p in ps} for n, ps in parts.items()}
    for n, s in shapes.items():
        if len(s) > 1:
            raise CompileError(f"calibration feeds for input {n!r} have different shapes {sorted(s)}")
    return {n: np.concatenate(ps) for n, ps in parts.items()}


def _as_samples(name: str, a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        raise CompileError(f"calibration feed for input {name!r} is a scalar, not an array")
    return a


def _validate(name: str, data: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    """-> float32 [N, *shape], or a CompileError saying what is wrong."""
    a = np.asarray(data)
    where = f"calibration data {what}, input {name!r}"
    expected = f"[N, {', '.join(map(str, shape[1:]))}] or [N, {', '.join(map(str, shape))}]"
    if a.size == 0 and a.ndim >= 1 and a.shape[0] == 0:
        raise CompileError(f"{where}: empty (0 samples)")
    if a.dtype.kind != "f":
        raise CompileError(
            f"{where}: dtype {a.dtype}, expected floating point values as the model sees them (preprocessed)"
        )
    batch = shape[0] if shape else 1
    if a.shape[1:] == shape:
        samples = a
    elif a.shape[1:] == shape[1:] and len(a) % batch == 0:
        samples = a.reshape(-1, *shape)  # groups of `batch` samples form one feed
    else:
        raise CompileError(f"{where}: shape {list(a.shape)}, expected {expected} for model input {list(shape)}")
    if len(samples) == 0:
        raise CompileError(f"{where}: empty (0 samples)")
    bad = ~np.isfinite(samples)
    if bad.any():
        first = int(np.argwhere(bad.reshape(len(samples), -1).any(axis=1))[0][0])
        kinds = " and ".join(k for k, m in (("NaN", np.isnan(samples)), ("Inf", np.isinf(samples))) if m.any())
        raise CompileError(f"{where}: {int(bad.sum())} {kinds} value(s), first in sample {first}")
    return samples.astype(np.float32)


def batched(graph: Graph, n: int) -> Graph | None:
    """A copy of a batch-1 graph that processes n samples at once, or None if that is not provably safe.

    Safe when every activation has rank >= 2 and leading dim 1, and no op mixes across axis 0
    (transpose moving it, concat or pad on it): then axis 0 is a pure batch axis everywhere.
    """
    acts = graph.activations()
    if any(len(t.shape) < 2 or t.shape[0] != 1 for t in acts):
        return None
    for node in graph.nodes():
        rank = len(graph.tensors[node.outputs[0]].shape)
        if node.op == "transpose" and int(node.attrs.get("perm", (rank - 1,))[0]) != 0:
            return None
        if node.op == "concat" and int(node.attrs["axis"]) % rank == 0:
            return None
        if node.op == "pad" and (node.attrs["pads"][0] or node.attrs["pads"][rank]):
            return None
    out = graph.copy()
    for t in out.activations():
        t.shape = (n, *t.shape[1:])
    return out
