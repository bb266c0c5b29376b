//! tinysplit device runtime for Rust: the kernels that generated model crates call.
//!
//! This crate is the Rust twin of `runtime_c` (`runtime_c/include/tinysplit/kernels.h`): one
//! function per kernel variant, with the same parameters in the same order, and the same integer
//! arithmetic bit for bit (the specification is `tinysplit/compiler/quant.py`, the oracle
//! `tinysplit/compiler/reference.py`). It is `#![no_std]`, uses no `alloc` and no `unsafe`.
//!
//! Differences from the C ABI, all of them mechanical:
//! - pointers are slices, so element counts that a slice carries (`size` of the elementwise
//!   kernels, `bytes` of `copy`, `n_inputs` of `concat`) and `elem_size` of the data-movement kernels
//!   (which are generic over the element type) are not parameters;
//! - a `NULL` bias is `None`, a missing scratch buffer an empty slice;
//! - dimensions and counts are `usize`, numeric parameters (offsets, multipliers, shifts, bounds) `i32`;
//!   4-D shape arrays (`out_dims`, strides, `perm`, `pads`) stay `[i32; 4]` / `[i32; 8]` as in C;
//! - ops that the memory plan runs in place (an output sharing its input's arena bytes) have
//!   `*_inplace` variants taking one `&mut` buffer (see [`Operand`]), because a `&[T]` and a `&mut [T]`
//!   to the same memory cannot coexist in safe Rust.
//!
//! Every kernel checks that its slices are as long as the shapes say and panics otherwise
//! (generated code always passes consistent arguments); after those checks the loops run without
//! further bounds checks where iterators allow.
//!
//! Conventions (CMSIS-NN style, as the C runtime): activations are channels-last (NHWC);
//! `input_offset = -zero_point(input)`, `output_offset = +zero_point(output)`.
//!
//! Besides the kernels: [`arena`] (the static arena and its checked, typed views), [`noise`] (noise
//! at the cut, drawing from a [`Random`] source the application provides) and, with the cargo
//! feature `wire`, [`wire`](crate#modules): sealing requests for the tinysplit server and opening
//! its answers (COSE_Encrypt0 with RustCrypto's ChaCha20-Poly1305, CBOR with `minicbor`), byte for
//! byte as the C device does.
//!
//! Multi-core: [`parallel`] splits convolution and pooling layers by output rows over the cores a
//! [`Cores`] implementation provides ([`OneCore`]; with the cargo feature `std`, host threads:
//! `threads::ThreadPool`); the generated `Model::run_on` calls it. No `unsafe` there either: cores
//! that outlive a call get copies of their rows ([`Handoff`]).

#![no_std]
#![forbid(unsafe_code)]

pub mod arena;
pub mod conv;
pub mod elementwise;
pub mod float;
pub mod fully_connected;
pub mod movement;
pub mod noise;
pub mod parallel;
pub mod pool;
pub mod quantize;
pub mod requantize;
pub mod softmax;
#[cfg(feature = "std")]
pub mod threads;
#[cfg(feature = "wire")]
pub mod wire;

pub use arena::{regions, view, view_mut, Arena, Element};
pub use conv::{
    conv_s8, conv_s8_buffer_size, depthwise_conv_s8, depthwise_conv_s8_buffer_size, ConvParams,
};
pub use elementwise::{
    add_s8, add_s8_inplace, clip_s8, clip_s8_inplace, lookup_s8, lookup_s8_inplace, mul_s8,
    mul_s8_inplace, requantize_s8, requantize_s8_inplace, ElementwiseParams,
};
pub use float::{
    add_f32, add_f32_inplace, avg_pool_f32, clip_f32, clip_f32_inplace, conv_f32,
    depthwise_conv_f32, fully_connected_f32, max_pool_f32, mul_f32, mul_f32_inplace, sigmoid_f32,
    sigmoid_f32_inplace, softmax_f32, tanh_f32, tanh_f32_inplace, ConvF32Params, PoolF32Params,
};
pub use fully_connected::{fully_connected_s8, fully_connected_s8_buffer_size, FcParams};
pub use movement::{concat, copy, pad, slice_rows, transpose, write_rows, write_rows_inplace};
pub use noise::{noise_s8, noise_s8_inplace, NoiseParams, Random, RANDOM_CHUNK};
pub use parallel::{
    bytes, bytes_mut, handoff_bytes, row_band_for, run_on_workers, split_rows, Band, BandTask,
    Cores, Handoff, OneCore, RowBand, RowSplit, Worker,
};
pub use pool::{avg_pool_s8, max_pool_s8, PoolParams};
pub use quantize::{dequantize_s8_f32, quantize_f32_s8};
pub use softmax::softmax_s8;
#[cfg(feature = "std")]
pub use threads::ThreadPool;

/// A rank-4 NHWC shape (`ts_dims`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Batch.
    pub n: usize,
    /// Height.
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Dims {
    /// Number of elements, `n * h * w * c`.
    pub const fn size(&self) -> usize {
        self.n * self.h * self.w * self.c
    }
}

/// A height/width pair: kernel size, stride or dilation (`ts_hw`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hw {
    /// Along the height.
    pub h: usize,
    /// Along the width.
    pub w: usize,
}

/// Spatial zero padding of a window op (`ts_padding`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Padding {
    /// Rows before the first input row.
    pub top: usize,
    /// Columns before the first input column.
    pub left: usize,
    /// Rows after the last input row.
    pub bottom: usize,
    /// Columns after the last input column.
    pub right: usize,
}

/// Per-output-channel requantization, one multiplier and shift per output channel
/// (`ts_channel_quant`; from `quant.conv_requant`).
#[derive(Clone, Copy, Debug)]
pub struct ChannelQuant<'a> {
    /// Fixed-point multipliers in `[2^30, 2^31)` (or 0).
    pub multiplier: &'a [i32],
    /// Shifts in `[-31, 30]`.
    pub shift: &'a [i32],
}

/// One operand of an in-place binary kernel ([`add_s8_inplace`] and friends).
#[derive(Clone, Copy, Debug)]
pub enum Operand<'a, T> {
    /// A separate buffer, read with the operand's broadcast strides.
    Slice(&'a [T]),
    /// The output buffer itself: this operand has the output's shape and is read element by
    /// element just before that element is overwritten.
    Output,
}

/// Per-layer hooks for the generated `run_profiled` (timing, tracing). `()` does nothing.
pub trait Profiler {
    /// Called before layer `index` runs.
    fn begin(&mut self, index: usize);
    /// Called after layer `index` ran.
    fn end(&mut self, index: usize);
}

impl Profiler for () {
    #[inline(always)]
    fn begin(&mut self, _index: usize) {}
    #[inline(always)]
    fn end(&mut self, _index: usize) {}
}

/// Clamps `x` to `[lo, hi]` the way the C runtime's `ts_clamp` does (no ordering check).
#[inline(always)]
pub(crate) fn clamp(x: i32, lo: i32, hi: i32) -> i32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// Saturating `i32` -> `i8` after [`clamp`] to bounds that lie in the int8 range.
#[inline(always)]
pub(crate) fn clamp_i8(x: i32, lo: i32, hi: i32) -> i8 {
    clamp(x, lo, hi) as i8
}

/// `x` as an index; negative values are a caller bug.
#[inline(always)]
pub(crate) fn idx(x: i32) -> usize {
    usize::try_from(x).expect("negative dimension")
}
