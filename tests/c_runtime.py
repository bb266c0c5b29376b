"""Build the C runtime (runtime_c/src) for the host and call its kernels through ctypes.

`load(variant)` compiles every `runtime_c/src/*.c` with the host gcc (C99, -O2, the project's
warning flags, -Werror) into a shared library, cached under the system temp dir by a hash of the
sources and flags, and returns a `CRuntime` whose methods take and return numpy arrays.

Variants:
- "portable": the plain C paths (what a core without the DSP extension runs);
- "dsp": the Cortex-M4 DSP paths, with the SIMD32 instructions modelled exactly in C
  (-DTS_EMULATE_DSP, see runtime_c/src/simd.h), so the same kernel code is checked on the host.

Every output and scratch buffer is allocated with guard bytes after it, and each call checks that
the kernel did not write past the end (`BufferOverrun`).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from ctypes import POINTER, Structure, c_float, c_int32, c_size_t, c_void_p
from functools import cache
from pathlib import Path

import numpy as np

from tinysplit.backends.lower import F32_FC_ROWS, pack_conv_f32, pack_depthwise_f32, pack_rows_f32
from tinysplit.passes.weight_layout import smlad_weights

ROOT = Path(__file__).resolve().parent.parent
SRC_DIR = ROOT / "runtime_c" / "src"
INCLUDE_DIR = ROOT / "runtime_c" / "include"
WARNINGS = ["-Wall", "-Wextra", "-Werror", "-pedantic"]
HOST_FLAGS = ["-std=c99", "-O2", "-fPIC", "-shared", *WARNINGS]
VARIANT_FLAGS: dict[str, list[str]] = {"portable": [], "dsp": ["-DTS_EMULATE_DSP"]}
VARIANTS = tuple(VARIANT_FLAGS)
GUARD = 64  # bytes after every output / scratch buffer that must stay untouched
SENTINEL = 0xA5

# sizeof / offsetof probes compiled into the test library only (never part of runtime_c)
_ABI_PROBE = r"""
#include <stddef.h>
#include "tinysplit/kernels.h"
#define PROBE(name, expr) size_t ts_probe_##name(void) { return (size_t)(expr); }
PROBE(dims, sizeof(ts_dims))
PROBE(conv_params, sizeof(ts_conv_params))
PROBE(conv_params_act_max, offsetof(ts_conv_params, act_max))
PROBE(conv_params_groups, offsetof(ts_conv_params, groups))
PROBE(channel_quant, sizeof(ts_channel_quant))
PROBE(fc_params, sizeof(ts_fc_params))
PROBE(elementwise_params, sizeof(ts_elementwise_params))
PROBE(elementwise_params_act_max, offsetof(ts_elementwise_params, act_max))
PROBE(pool_params, sizeof(ts_pool_params))
PROBE(pool_params_input_zero_point, offsetof(ts_pool_params, input_zero_point))
PROBE(conv_f32_params, sizeof(ts_conv_f32_params))
PROBE(conv_f32_params_act_max, offsetof(ts_conv_f32_params, act_max))
PROBE(pool_f32_params, sizeof(ts_pool_f32_params))
PROBE(pool_f32_params_act_max, offsetof(ts_pool_f32_params, act_max))
"""


class BuildError(RuntimeError):
    """The host compiler rejected the runtime."""


class BufferOverrun(AssertionError):
    """A kernel wrote past the end of its output or scratch buffer."""


# ---------------------------------------------------------------------------------------------
# ctypes mirrors of kernels.h


class Dims(Structure):
    _fields_ = [("n", c_int32), ("h", c_int32), ("w", c_int32), ("c", c_int32)]


class HW(Structure):
    _fields_ = [("h", c_int32), ("w", c_int32)]


class Padding(Structure):
    _fields_ = [("top", c_int32), ("left", c_int32), ("bottom", c_int32), ("right", c_int32)]


class ChannelQuant(Structure):
    _fields_ = [("multiplier", POINTER(c_int32)), ("shift", POINTER(c_int32))]


class ConvParams(Structure):
    _fields_ = [
        ("input_offset", c_int32),
        ("output_offset", c_int32),
        ("stride", HW),
        ("dilation", HW),
        ("pad", Padding),
        ("groups", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class FcParams(Structure):
    _fields_ = [("input_offset", c_int32), ("output_offset", c_int32), ("act_min", c_int32), ("act_max", c_int32)]


class ElementwiseParams(Structure):
    _fields_ = [
        ("a_offset", c_int32),
        ("b_offset", c_int32),
        ("a_multiplier", c_int32),
        ("a_shift", c_int32),
        ("b_multiplier", c_int32),
        ("b_shift", c_int32),
        ("out_multiplier", c_int32),
        ("out_shift", c_int32),
        ("output_offset", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
    ]


class PoolParams(Structure):
    _fields_ = [
        ("kernel", HW),
        ("stride", HW),
        ("pad", Padding),
        ("count_include_pad", c_int32),
        ("act_min", c_int32),
        ("act_max", c_int32),
        ("input_zero_point", c_int32),
    ]


class ConvF32Params(Structure):
    _fields_ = [
        ("stride", HW),
        ("dilation", HW),
        ("pad", Padding),
        ("groups", c_int32),
        ("act_min", c_float),
        ("act_max", c_float),
    ]


class PoolF32Params(Structure):
    _fields_ = [
        ("kernel", HW),
        ("stride", HW),
        ("pad", Padding),
        ("count_include_pad", c_int32),
        ("act_min", c_float),
        ("act_max", c_float),
    ]


ABI_STRUCTS: dict[str, type[Structure]] = {
    "dims": Dims,
    "conv_params": ConvParams,
    "channel_quant": ChannelQuant,
    "fc_params": FcParams,
    "elementwise_params": ElementwiseParams,
    "pool_params": PoolParams,
    "conv_f32_params": ConvF32Params,
    "pool_f32_params": PoolF32Params,
}
ABI_FIELDS: dict[str, tuple[type[Structure], str]] = {
    "conv_params_act_max": (ConvParams, "act_max"),
    "conv_params_groups": (ConvParams, "groups"),
    "elementwise_params_act_max": (ElementwiseParams, "act_max"),
    "pool_params_input_zero_point": (PoolParams, "input_zero_point"),
    "conv_f32_params_act_max": (ConvF32Params, "act_max"),
    "pool_f32_params_act_max": (PoolF32Params, "act_max"),
}

P = c_void_p  # every array argument is passed as a plain pointer
I32 = c_int32
SIGNATURES: dict[str, tuple[type | None, list[type]]] = {
    "ts_conv_s8_get_buffer_size": (I32, [P, P, P, P]),
    "ts_conv_s8": (None, [P, P, P, P, P, P, P, P, P, P]),
    "ts_depthwise_conv_s8_get_buffer_size": (I32, [P, P, P, P]),
    "ts_depthwise_conv_s8": (None, [P, P, P, P, P, P, P, P, P, P]),
    "ts_fully_connected_s8_get_buffer_size": (I32, [P, I32, I32]),
    "ts_fully_connected_s8": (None, [P, P, I32, I32, I32, P, P, P, P, P]),
    "ts_conv_s8_wide_get_buffer_size": (I32, [P, P, P, P]),
    "ts_conv_s8_wide": (None, [P, P, P, P, P, P, P, P, P, P]),
    "ts_fully_connected_s8_wide_get_buffer_size": (I32, [P, I32, I32]),
    "ts_fully_connected_s8_wide": (None, [P, P, I32, I32, I32, P, P, P, P, P]),
    "ts_add_s8": (None, [P, P, P, P, P, P, P]),
    "ts_mul_s8": (None, [P, P, P, P, P, P, P]),
    "ts_lookup_s8": (None, [P, I32, P, P]),
    "ts_clip_s8": (None, [I32, I32, I32, P, P]),
    "ts_requantize_s8": (None, [I32, I32, I32, I32, I32, P, P]),
    "ts_max_pool_s8": (None, [P, P, P, P, P]),
    "ts_avg_pool_s8": (None, [P, P, P, P, P]),
    "ts_softmax_s8": (None, [P, I32, I32, I32, I32, P, P]),
    "ts_quantize_f32_s8": (None, [c_float, I32, I32, P, P]),
    "ts_dequantize_s8_f32": (None, [c_float, I32, I32, P, P]),
    "ts_conv_f32_get_buffer_size": (I32, [P, P, P, P]),
    "ts_conv_f32": (None, [P, P, P, P, P, P, P, P, P]),
    "ts_depthwise_conv_f32_get_buffer_size": (I32, [P, P, P, P]),
    "ts_depthwise_conv_f32": (None, [P, P, P, P, P, P, P, P, P]),
    "ts_fully_connected_f32": (None, [c_float, c_float, I32, I32, I32, P, P, P, P]),
    "ts_add_f32": (None, [c_float, c_float, P, P, P, P, P, P]),
    "ts_mul_f32": (None, [c_float, c_float, P, P, P, P, P, P]),
    "ts_clip_f32": (None, [c_float, c_float, I32, P, P]),
    "ts_sigmoid_f32": (None, [I32, P, P]),
    "ts_tanh_f32": (None, [I32, P, P]),
    "ts_max_pool_f32": (None, [P, P, P, P, P]),
    "ts_avg_pool_f32": (None, [P, P, P, P, P]),
    "ts_softmax_f32": (None, [I32, I32, P, P]),
    "ts_transpose": (None, [c_size_t, P, P, P, P]),
    "ts_concat": (None, [c_size_t, I32, P, P, I32, P]),
    "ts_pad": (None, [c_size_t, P, P, P, P, P]),
    "ts_copy": (None, [c_size_t, P, P]),
}


# ---------------------------------------------------------------------------------------------
# building


def sources() -> list[Path]:
    return sorted(SRC_DIR.glob("*.c"))


def _fingerprint(flags: Sequence[str]) -> str:
    h = hashlib.sha256(" ".join(flags).encode())
    h.update(_ABI_PROBE.encode())
    for path in [*sources(), *sorted(SRC_DIR.glob("*.h")), *sorted(INCLUDE_DIR.rglob("*.h"))]:
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def build(variant: str = "portable", cc: str = "gcc") -> Path:
    """Compile the runtime into a shared library (cached) and return its path."""
    if shutil.which(cc) is None:
        raise BuildError(f"host compiler {cc!r} not found")
    flags = [*HOST_FLAGS, *VARIANT_FLAGS[variant]]
    cache_dir = Path(tempfile.gettempdir()) / "tinysplit-c-runtime" / f"{variant}-{_fingerprint(flags)}"
    lib = cache_dir / "libtinysplit_rt.so"
    if lib.exists():
        return lib
    cache_dir.mkdir(parents=True, exist_ok=True)
    probe = cache_dir / "abi_probe.c"
    probe.write_text(_ABI_PROBE)
    tmp = cache_dir / f"libtinysplit_rt.{os.getpid()}.so"  # parallel test workers: build, then rename
    cmd = [cc, *flags, f"-I{INCLUDE_DIR}", *map(str, sources()), str(probe), "-o", str(tmp), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd)}\n{proc.stdout}{proc.stderr}")
    os.replace(tmp, lib)
    return lib


# ---------------------------------------------------------------------------------------------
# calling


def _ptr(a: np.ndarray | None) -> int | None:
    return None if a is None else int(a.ctypes.data)


def _c(a: np.ndarray | None, dtype: type[np.generic]) -> np.ndarray | None:
    return None if a is None else np.ascontiguousarray(a, dtype=dtype)


class _Guarded:
    """A zero-initialised-by-sentinel buffer with GUARD bytes after `nbytes` useful ones."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.raw = np.full(nbytes + GUARD, SENTINEL, dtype=np.uint8)

    @property
    def ptr(self) -> int:
        return int(self.raw.ctypes.data)

    def check(self, what: str) -> None:
        if not np.all(self.raw[self.nbytes :] == SENTINEL):
            raise BufferOverrun(f"{what}: write past the end of a {self.nbytes}-byte buffer")

    def view(self, dtype: type[np.generic], shape: Sequence[int]) -> np.ndarray:
        return self.raw[: self.nbytes].view(dtype).reshape(tuple(shape)).copy()


def _out(dtype: type[np.generic], shape: Sequence[int]) -> _Guarded:
    return _Guarded(int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)


def _dims(shape: Sequence[int]) -> Dims:
    n, h, w, c = shape
    return Dims(n, h, w, c)


def _i32x4(values: Sequence[int]) -> np.ndarray:
    return np.ascontiguousarray(values, dtype=np.int32)


def broadcast_strides(shape: Sequence[int], out_shape: Sequence[int]) -> np.ndarray:
    """Element strides of a C-contiguous operand per output dim (rank 4, 0 where broadcast)."""
    rank = len(out_shape)
    padded = [1] * (rank - len(shape)) + list(shape)
    strides = [0] * rank
    step = 1
    for i in range(rank - 1, -1, -1):
        strides[i] = 0 if padded[i] == 1 and out_shape[i] != 1 else step
        step *= padded[i]
    return _i32x4([0] * (4 - rank) + strides)


def pad4(shape: Sequence[int]) -> list[int]:
    return [1] * (4 - len(shape)) + list(shape)


class CRuntime:
    """The kernels of one build of the runtime, as numpy-in, numpy-out methods."""

    def __init__(self, path: Path, variant: str) -> None:
        self.path = path
        self.variant = variant
        self.lib = ctypes.CDLL(str(path))
        for name, (restype, argtypes) in SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        for name in [*ABI_STRUCTS, *ABI_FIELDS]:
            getattr(self.lib, f"ts_probe_{name}").restype = c_size_t

    def abi_mismatches(self) -> list[str]:
        """Differences between the ctypes mirrors and the C structs (sizes and field offsets)."""
        bad = []
        for name, struct in ABI_STRUCTS.items():
            c_size = getattr(self.lib, f"ts_probe_{name}")()
            if c_size != ctypes.sizeof(struct):
                bad.append(f"sizeof {name}: C {c_size}, ctypes {ctypes.sizeof(struct)}")
        for name, (struct, field) in ABI_FIELDS.items():
            c_off = getattr(self.lib, f"ts_probe_{name}")()
            py_off = getattr(struct, field).offset
            if c_off != py_off:
                bad.append(f"offsetof {name}: C {c_off}, ctypes {py_off}")
        return bad

    # -- int8 convolution / fully connected ---------------------------------------------------
    def conv_s8(
        self,
        x: np.ndarray,
        w: np.ndarray,
        bias: np.ndarray | None,
        multiplier: np.ndarray,
        shift: np.ndarray,
        params: ConvParams,
        out_shape: Sequence[int],
        *,
        depthwise: bool = False,
        wide: bool = False,
    ) -> np.ndarray:
        """x NHWC; w [Cout,KH,KW,Cin/groups] (conv) or [KH,KW,Cout] (depthwise). `wide`: ts_conv_s8_wide,
        given w pre-widened (passes.weight_layout.smlad_weights)."""
        xc, bc = _c(x, np.int8), _c(bias, np.int32)
        wc = _c(smlad_weights("conv2d", w, params.groups), np.int16) if wide else _c(w, np.int8)
        assert xc is not None and wc is not None
        mult, sh = _c(multiplier, np.int32), _c(shift, np.int32)
        assert mult is not None and sh is not None
        quant = ChannelQuant(mult.ctypes.data_as(POINTER(c_int32)), sh.ctypes.data_as(POINTER(c_int32)))
        in_dims, out_dims = _dims(xc.shape), _dims(out_shape)
        f_dims = Dims(1, *w.shape) if depthwise else _dims(w.shape)
        prefix = "ts_depthwise_conv_s8" if depthwise else "ts_conv_s8_wide" if wide else "ts_conv_s8"
        refs = [ctypes.byref(v) for v in (params, in_dims, f_dims, out_dims)]
        size = getattr(self.lib, f"{prefix}_get_buffer_size")(*refs)
        scratch = _Guarded(size) if size > 0 else None
        out = _out(np.int8, out_shape)
        getattr(self.lib, prefix)(
            ctypes.byref(params),
            ctypes.byref(quant),
            ctypes.byref(in_dims),
            _ptr(xc),
            ctypes.byref(f_dims),
            _ptr(wc),
            _ptr(bc),
            ctypes.byref(out_dims),
            out.ptr,
            scratch.ptr if scratch is not None else None,
        )
        out.check(prefix)
        if scratch is not None:
            scratch.check(f"{prefix} scratch")
        return out.view(np.int8, out_shape)

    def conv_s8_buffer_size(self, params: ConvParams, in_shape: Sequence[int], w_shape: Sequence[int]) -> int:
        dims = [_dims(in_shape), _dims(w_shape), _dims(in_shape)]
        return int(self.lib.ts_conv_s8_get_buffer_size(ctypes.byref(params), *[ctypes.byref(d) for d in dims]))

    def fully_connected_s8(
        self,
        x: np.ndarray,
        w: np.ndarray,
        bias: np.ndarray | None,
        multiplier: np.ndarray,
        shift: np.ndarray,
        params: FcParams,
        *,
        wide: bool = False,
    ) -> np.ndarray:
        """`wide`: ts_fully_connected_s8_wide, given w pre-widened (passes.weight_layout.smlad_weights)."""
        xc, bc = _c(x, np.int8), _c(bias, np.int32)
        wc = _c(smlad_weights("fully_connected", w), np.int16) if wide else _c(w, np.int8)
        assert xc is not None and wc is not None
        mult, sh = _c(multiplier, np.int32), _c(shift, np.int32)
        assert mult is not None and sh is not None
        quant = ChannelQuant(mult.ctypes.data_as(POINTER(c_int32)), sh.ctypes.data_as(POINTER(c_int32)))
        batches, depth = xc.shape
        units = w.shape[0]
        prefix = "ts_fully_connected_s8_wide" if wide else "ts_fully_connected_s8"
        size = getattr(self.lib, f"{prefix}_get_buffer_size")(ctypes.byref(params), depth, units)
        scratch = _Guarded(size) if size > 0 else None
        out = _out(np.int8, (batches, units))
        getattr(self.lib, prefix)(
            ctypes.byref(params),
            ctypes.byref(quant),
            batches,
            depth,
            units,
            _ptr(xc),
            _ptr(wc),
            _ptr(bc),
            out.ptr,
            scratch.ptr if scratch is not None else None,
        )
        out.check(prefix)
        if scratch is not None:
            scratch.check(f"{prefix} scratch")
        return out.view(np.int8, (batches, units))

    # -- elementwise ----------------------------------------------------------------------------
    def _binary(self, name: str, first: object, a: np.ndarray, b: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        dtype = np.int8 if name.endswith("s8") else np.float32
        ac, bc = _c(a, dtype), _c(b, dtype)
        assert ac is not None and bc is not None
        dims = _i32x4(pad4(out_shape))
        sa, sb = broadcast_strides(ac.shape, out_shape), broadcast_strides(bc.shape, out_shape)
        out = _out(dtype, out_shape)
        args = [ctypes.byref(first)] if isinstance(first, Structure) else list(first)  # type: ignore[call-overload]
        getattr(self.lib, name)(*args, _ptr(dims), _ptr(sa), _ptr(sb), _ptr(ac), _ptr(bc), out.ptr)
        out.check(name)
        return out.view(dtype, out_shape)

    def add_s8(self, params: ElementwiseParams, a: np.ndarray, b: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        return self._binary("ts_add_s8", params, a, b, out_shape)

    def mul_s8(self, params: ElementwiseParams, a: np.ndarray, b: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        return self._binary("ts_mul_s8", params, a, b, out_shape)

    def add_f32(self, act: tuple[float, float], a: np.ndarray, b: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        return self._binary("ts_add_f32", act, a, b, out_shape)

    def mul_f32(self, act: tuple[float, float], a: np.ndarray, b: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        return self._binary("ts_mul_f32", act, a, b, out_shape)

    def _unary(
        self, name: str, leading: Sequence[object], x: np.ndarray, in_dtype: type, out_dtype: type
    ) -> np.ndarray:
        xc = _c(x, in_dtype)
        assert xc is not None
        out = _out(out_dtype, xc.shape)
        getattr(self.lib, name)(*leading, xc.size, _ptr(xc), out.ptr)
        out.check(name)
        return out.view(out_dtype, xc.shape)

    def lookup_s8(self, table: np.ndarray, x: np.ndarray) -> np.ndarray:
        t = _c(table, np.int8)
        assert t is not None and t.size == 256
        xc = _c(x, np.int8)
        assert xc is not None
        out = _out(np.int8, xc.shape)
        self.lib.ts_lookup_s8(_ptr(t), xc.size, _ptr(xc), out.ptr)
        out.check("ts_lookup_s8")
        return out.view(np.int8, xc.shape)

    def clip_s8(self, act_min: int, act_max: int, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_clip_s8", [act_min, act_max], x, np.int8, np.int8)

    def requantize_s8(
        self, input_offset: int, multiplier: int, shift: int, output_offset: int, x: np.ndarray
    ) -> np.ndarray:
        return self._unary("ts_requantize_s8", [input_offset, multiplier, shift, output_offset], x, np.int8, np.int8)

    def quantize_f32_s8(self, scale: float, zero_point: int, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_quantize_f32_s8", [scale, zero_point], x, np.float32, np.int8)

    def dequantize_s8_f32(self, scale: float, zero_point: int, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_dequantize_s8_f32", [scale, zero_point], x, np.int8, np.float32)

    def clip_f32(self, act_min: float, act_max: float, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_clip_f32", [act_min, act_max], x, np.float32, np.float32)

    def sigmoid_f32(self, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_sigmoid_f32", [], x, np.float32, np.float32)

    def tanh_f32(self, x: np.ndarray) -> np.ndarray:
        return self._unary("ts_tanh_f32", [], x, np.float32, np.float32)

    # -- pooling / softmax ----------------------------------------------------------------------
    def pool(
        self, name: str, params: PoolParams | PoolF32Params, x: np.ndarray, out_shape: Sequence[int]
    ) -> np.ndarray:
        dtype = np.int8 if name.endswith("s8") else np.float32
        xc = _c(x, dtype)
        assert xc is not None
        out = _out(dtype, out_shape)
        in_dims, out_dims = _dims(xc.shape), _dims(out_shape)
        getattr(self.lib, name)(ctypes.byref(params), ctypes.byref(in_dims), _ptr(xc), ctypes.byref(out_dims), out.ptr)
        out.check(name)
        return out.view(dtype, out_shape)

    def softmax_s8(self, exp_table: np.ndarray, out_multiplier: int, output_offset: int, x: np.ndarray) -> np.ndarray:
        t, xc = _c(exp_table, np.int32), _c(x, np.int8)
        assert t is not None and xc is not None and t.size == 256
        depth = xc.shape[-1]
        out = _out(np.int8, xc.shape)
        self.lib.ts_softmax_s8(_ptr(t), out_multiplier, output_offset, xc.size // depth, depth, _ptr(xc), out.ptr)
        out.check("ts_softmax_s8")
        return out.view(np.int8, xc.shape)

    def softmax_f32(self, x: np.ndarray) -> np.ndarray:
        xc = _c(x, np.float32)
        assert xc is not None
        depth = xc.shape[-1]
        out = _out(np.float32, xc.shape)
        self.lib.ts_softmax_f32(xc.size // depth, depth, _ptr(xc), out.ptr)
        out.check("ts_softmax_f32")
        return out.view(np.float32, xc.shape)

    # -- float convolution / fully connected ----------------------------------------------------
    def conv_f32(
        self,
        x: np.ndarray,
        w: np.ndarray,
        bias: np.ndarray | None,
        params: ConvF32Params,
        out_shape: Sequence[int],
        *,
        depthwise: bool = False,
        scratch: bool = True,
    ) -> np.ndarray:
        """w: OHWI (depthwise: HWC), packed here as the compiler packs it; scratch=False passes NULL."""
        xc, wc, bc = _c(x, np.float32), _c(w, np.float32), _c(bias, np.float32)
        assert xc is not None and wc is not None
        in_dims, out_dims = _dims(xc.shape), _dims(out_shape)
        f_dims = Dims(1, *wc.shape) if depthwise else _dims(wc.shape)
        name = "ts_depthwise_conv_f32" if depthwise else "ts_conv_f32"
        out = _out(np.float32, out_shape)
        args = [ctypes.byref(params), ctypes.byref(in_dims), _ptr(xc), ctypes.byref(f_dims)]
        wc = np.ascontiguousarray(pack_depthwise_f32(wc) if depthwise else pack_conv_f32(wc, max(params.groups, 1)))
        refs = [ctypes.byref(v) for v in (params, in_dims, f_dims, out_dims)]
        size = getattr(self.lib, f"{name}_get_buffer_size")(*refs)
        buffer = _Guarded(size) if size > 0 and scratch else None
        args += [_ptr(wc), _ptr(bc), ctypes.byref(out_dims), out.ptr, buffer.ptr if buffer is not None else None]
        getattr(self.lib, name)(*args)
        out.check(name)
        if buffer is not None:
            buffer.check(f"{name} scratch")
        return out.view(np.float32, out_shape)

    def fully_connected_f32(
        self, act: tuple[float, float], x: np.ndarray, w: np.ndarray, bias: np.ndarray | None
    ) -> np.ndarray:
        xc, wc, bc = _c(x, np.float32), _c(w, np.float32), _c(bias, np.float32)
        assert xc is not None and wc is not None
        batches, depth = xc.shape
        units = wc.shape[0]
        wc = np.ascontiguousarray(pack_rows_f32(wc, F32_FC_ROWS))
        out = _out(np.float32, (batches, units))
        self.lib.ts_fully_connected_f32(act[0], act[1], batches, depth, units, _ptr(xc), _ptr(wc), _ptr(bc), out.ptr)
        out.check("ts_fully_connected_f32")
        return out.view(np.float32, (batches, units))

    # -- data movement --------------------------------------------------------------------------
    def transpose(self, x: np.ndarray, perm: Sequence[int]) -> np.ndarray:
        """Any rank <= 4; perm as numpy/ONNX over x's own rank."""
        xc = np.ascontiguousarray(x)
        lead = 4 - xc.ndim
        dims = _i32x4(pad4(xc.shape))
        perm4 = _i32x4(list(range(lead)) + [p + lead for p in perm])
        out_shape = tuple(xc.shape[p] for p in perm)
        out = _out(xc.dtype.type, out_shape)
        self.lib.ts_transpose(xc.itemsize, _ptr(dims), _ptr(perm4), _ptr(xc), out.ptr)
        out.check("ts_transpose")
        return out.view(xc.dtype.type, out_shape)

    def concat(self, xs: Sequence[np.ndarray], axis: int) -> np.ndarray:
        cs = [np.ascontiguousarray(x) for x in xs]
        axis %= cs[0].ndim
        outer = int(np.prod(cs[0].shape[:axis], dtype=np.int64))
        chunks = np.array([int(np.prod(x.shape[axis:], dtype=np.int64)) for x in cs], dtype=np.int32)
        ptrs = (c_void_p * len(cs))(*[x.ctypes.data for x in cs])
        out_shape = list(cs[0].shape)
        out_shape[axis] = sum(x.shape[axis] for x in cs)
        out = _out(cs[0].dtype.type, out_shape)
        self.lib.ts_concat(cs[0].itemsize, len(cs), ptrs, _ptr(chunks), outer, out.ptr)
        out.check("ts_concat")
        return out.view(cs[0].dtype.type, out_shape)

    def pad(self, x: np.ndarray, pads: Sequence[int], value: float | int) -> np.ndarray:
        """pads = begins then ends over x's own rank (ONNX order), may be negative."""
        xc = np.ascontiguousarray(x)
        rank, lead = xc.ndim, 4 - xc.ndim
        begins, ends = [0] * lead + list(pads[:rank]), [0] * lead + list(pads[rank:])
        dims = _i32x4(pad4(xc.shape))
        pads8 = np.array(begins + ends, dtype=np.int32)
        out_shape = [d + b + e for d, b, e in zip(xc.shape, pads[:rank], pads[rank:], strict=True)]
        val = np.array([value], dtype=xc.dtype)
        out = _out(xc.dtype.type, out_shape)
        self.lib.ts_pad(xc.itemsize, _ptr(dims), _ptr(pads8), _ptr(val), _ptr(xc), out.ptr)
        out.check("ts_pad")
        return out.view(xc.dtype.type, out_shape)

    def copy(self, x: np.ndarray, out_shape: Sequence[int]) -> np.ndarray:
        xc = np.ascontiguousarray(x)
        out = _out(xc.dtype.type, out_shape)
        self.lib.ts_copy(xc.nbytes, _ptr(xc), out.ptr)
        out.check("ts_copy")
        return out.view(xc.dtype.type, out_shape)


@cache
def load(variant: str = "portable") -> CRuntime:
    """Build (or reuse) the host library of one variant and bind it."""
    return CRuntime(build(variant), variant)
