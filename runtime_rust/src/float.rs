//! float32 kernels (`ts_conv_f32`, `ts_fully_connected_f32`, ...): the same loops and the same
//! order of additions as the C runtime, so results agree with it to the last bit except where
//! `libm`'s `expf` / `tanhf` differ from the C library's (by an ulp at most).

use crate::conv::{for_each_window, Window};
use crate::elementwise::Broadcast;
use crate::{Dims, Hw, Operand, Padding};

/// Parameters of a float32 convolution (`ts_conv_f32_params`).
#[derive(Clone, Copy, Debug)]
pub struct ConvF32Params {
    /// Stride.
    pub stride: Hw,
    /// Dilation.
    pub dilation: Hw,
    /// Zero padding.
    pub pad: Padding,
    /// Groups ([`conv_f32`] only).
    pub groups: usize,
    /// Lower output bound (may be `-inf`).
    pub act_min: f32,
    /// Upper output bound (may be `+inf`).
    pub act_max: f32,
}

/// Parameters of float32 pooling (`ts_pool_f32_params`).
#[derive(Clone, Copy, Debug)]
pub struct PoolF32Params {
    /// Window size.
    pub kernel: Hw,
    /// Stride.
    pub stride: Hw,
    /// Padding.
    pub pad: Padding,
    /// Average pooling only: padded cells inside the padded extent count in the divisor.
    pub count_include_pad: bool,
    /// Lower output bound.
    pub act_min: f32,
    /// Upper output bound.
    pub act_max: f32,
}

/// `x < lo ? lo : (x > hi ? hi : x)` (NaN passes through, as in C).
#[inline(always)]
fn clampf(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// Rows per packed block of [`conv_f32`]'s filter (`TS_F32_CONV_ROWS`).
pub const CONV_F32_ROWS: usize = 4;
/// Rows per packed block of [`fully_connected_f32`]'s filter (`TS_F32_FC_ROWS`).
pub const FC_F32_ROWS: usize = 8;

/// Values of a packed filter of `rows` rows of `k` values in blocks of `block` rows.
fn packed_len(rows: usize, k: usize, block: usize) -> usize {
    rows.div_ceil(block) * block * k
}

/// float32 convolution, NHWC. `filter_dims` is `{Cout, KH, KW, Cin / groups}`; the filter is
/// packed as the C kernel reads it: per group, its rows in blocks of [`CONV_F32_ROWS`] (zero rows
/// appended), each block holding for each `k = (kh * KW + kw) * Cin / groups + c` the block's
/// values of that `k`.
pub fn conv_f32(
    params: &ConvF32Params,
    input_dims: &Dims,
    input: &[f32],
    filter_dims: &Dims,
    filter: &[f32],
    bias: Option<&[f32]>,
    output_dims: &Dims,
    output: &mut [f32],
    _scratch: &mut [u8],
) {
    // `scratch` is the C kernel's im2col buffer (ts_conv_f32_get_buffer_size): unused here.
    let groups = params.groups.max(1);
    let (cin, cg, cout) = (input_dims.c, filter_dims.c, output_dims.c);
    let (kh_n, kw_n) = (filter_dims.h, filter_dims.w);
    assert!(cg * groups == cin && cout % groups == 0 && filter_dims.n == cout);
    let rows = cout / groups;
    let k_n = kh_n * kw_n * cg;
    let group_len = packed_len(rows, k_n, CONV_F32_ROWS);
    assert!(input.len() >= input_dims.size() && filter.len() >= groups * group_len);
    assert!(output.len() >= output_dims.size() && input_dims.n == output_dims.n);
    assert!(bias.is_none_or(|b| b.len() >= cout));
    let tap = kw_n * cg;
    let in_row = input_dims.w * cin;
    let contiguous = groups == 1 && params.dilation.w == 1;
    for_each_window(
        input,
        input_dims,
        output,
        output_dims,
        (params.stride, params.dilation, params.pad),
        (kh_n, kw_n),
        |batch_input, window, out| {
            let Window {
                ih0,
                iw0,
                kh: (kh0, kh1),
                kw: (kw0, kw1),
            } = window;
            let kh_end = if kw0 < kw1 { kh1 } else { kh0 };
            // A block of output channels at a time: each sums its taps in the same order as C.
            for (g, out_g) in out.chunks_exact_mut(rows).enumerate() {
                for (rb, ys) in out_g.chunks_mut(CONV_F32_ROWS).enumerate() {
                    let oc0 = g * rows + rb * CONV_F32_ROWS;
                    let w_blk =
                        &filter[g * group_len + rb * CONV_F32_ROWS * k_n..][..CONV_F32_ROWS * k_n];
                    let mut acc = [0.0f32; CONV_F32_ROWS];
                    if let Some(b) = bias {
                        acc[..ys.len()].copy_from_slice(&b[oc0..oc0 + ys.len()]);
                    }
                    let mut run = |x: &[f32], k0: usize| {
                        let w = &w_blk[k0 * CONV_F32_ROWS..][..x.len() * CONV_F32_ROWS];
                        for (&xv, w) in x.iter().zip(w.chunks_exact(CONV_F32_ROWS)) {
                            for (a, &w) in acc.iter_mut().zip(w) {
                                *a += xv * w;
                            }
                        }
                    };
                    for kh in kh0..kh_end {
                        let ih = (ih0 + (kh * params.dilation.h) as isize) as usize;
                        if contiguous {
                            let iw = (iw0 + kw0 as isize) as usize;
                            run(
                                &batch_input[ih * in_row + iw * cin..][..(kw1 - kw0) * cin],
                                kh * tap + kw0 * cg,
                            );
                        } else {
                            for kw in kw0..kw1 {
                                let iw = (iw0 + (kw * params.dilation.w) as isize) as usize;
                                run(
                                    &batch_input[ih * in_row + iw * cin + g * cg..][..cg],
                                    kh * tap + kw * cg,
                                );
                            }
                        }
                    }
                    for (y, &a) in ys.iter_mut().zip(&acc) {
                        *y = clampf(a, params.act_min, params.act_max);
                    }
                }
            }
        },
    );
}

/// float32 depthwise convolution, `Cout = Cin * multiplier`: `filter_dims` is `{1, KH, KW, Cout}`;
/// the filter is packed as the C kernel reads it: for each `kw`, each block of 4 output channels
/// (`Cout` rounded up with zeros), each `kh`, the block's 4 weights. Per output, the taps are summed
/// column by column (`kw` outer, `kh` inner), as in C.
pub fn depthwise_conv_f32(
    params: &ConvF32Params,
    input_dims: &Dims,
    input: &[f32],
    filter_dims: &Dims,
    filter: &[f32],
    bias: Option<&[f32]>,
    output_dims: &Dims,
    output: &mut [f32],
    _scratch: &mut [u8],
) {
    let (cin, cout) = (input_dims.c, output_dims.c);
    let (kh_n, kw_n) = (filter_dims.h, filter_dims.w);
    let blocks = cout.div_ceil(4);
    assert!(cin > 0 && cout % cin == 0 && filter_dims.c == cout);
    assert!(input.len() >= input_dims.size() && filter.len() >= kh_n * kw_n * blocks * 4);
    assert!(output.len() >= output_dims.size() && input_dims.n == output_dims.n);
    assert!(bias.is_none_or(|b| b.len() >= cout));
    let mult = cout / cin;
    let in_row = input_dims.w * cin;
    for_each_window(
        input,
        input_dims,
        output,
        output_dims,
        (params.stride, params.dilation, params.pad),
        (kh_n, kw_n),
        |batch_input, window, out| {
            let Window {
                ih0,
                iw0,
                kh: (kh0, kh1),
                kw: (kw0, kw1),
            } = window;
            for (oc, y) in out.iter_mut().enumerate() {
                let ic = oc / mult;
                let mut acc = bias.map_or(0.0, |b| b[oc]);
                for kw in kw0..kw1 {
                    let iw = (iw0 + (kw * params.dilation.w) as isize) as usize;
                    let w = &filter[((kw * blocks + oc / 4) * kh_n) * 4 + oc % 4..];
                    for kh in kh0..kh1 {
                        let ih = (ih0 + (kh * params.dilation.h) as isize) as usize;
                        acc += batch_input[ih * in_row + iw * cin + ic] * w[kh * 4];
                    }
                }
                *y = clampf(acc, params.act_min, params.act_max);
            }
        },
    );
}

/// float32 fully connected: input `[batches, depth]`, filter `[units, depth]` packed in blocks of
/// [`FC_F32_ROWS`] rows (zero rows appended), each block holding for each `k` the block's values of
/// that `k`.
pub fn fully_connected_f32(
    act_min: f32,
    act_max: f32,
    batches: usize,
    depth: usize,
    units: usize,
    input: &[f32],
    filter: &[f32],
    bias: Option<&[f32]>,
    output: &mut [f32],
) {
    assert!(input.len() >= batches * depth);
    assert!(filter.len() >= packed_len(units, depth, FC_F32_ROWS));
    assert!(output.len() >= batches * units);
    assert!(bias.is_none_or(|b| b.len() >= units));
    if batches == 0 || units == 0 {
        return;
    }
    for (x, out) in input
        .chunks_exact(depth.max(1))
        .zip(output.chunks_exact_mut(units))
        .take(batches)
    {
        let x = &x[..depth];
        // A block of rows at a time, k outer: each row still sums in k order (as C), and the
        // block's rows are contiguous for each k.
        for (b, ys) in out.chunks_mut(FC_F32_ROWS).enumerate() {
            let mut acc = [0.0f32; FC_F32_ROWS];
            if let Some(bias) = bias {
                acc[..ys.len()].copy_from_slice(&bias[b * FC_F32_ROWS..][..ys.len()]);
            }
            let block = &filter[b * FC_F32_ROWS * depth..][..FC_F32_ROWS * depth];
            for (&xk, w) in x.iter().zip(block.chunks_exact(FC_F32_ROWS)) {
                for (a, &w) in acc.iter_mut().zip(w) {
                    *a += xk * w;
                }
            }
            for (y, &a) in ys.iter_mut().zip(&acc) {
                *y = clampf(a, act_min, act_max);
            }
        }
    }
}

/// float32 add with 4-D broadcasting (see [`crate::add_s8`]).
pub fn add_f32(
    act_min: f32,
    act_max: f32,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: &[f32],
    b: &[f32],
    output: &mut [f32],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply(a, b, output, |a, b| clampf(a + b, act_min, act_max));
}

/// [`add_f32`] in place.
pub fn add_f32_inplace(
    act_min: f32,
    act_max: f32,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: Operand<'_, f32>,
    b: Operand<'_, f32>,
    output: &mut [f32],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply_inplace(a, b, output, |a, b| clampf(a + b, act_min, act_max));
}

/// float32 mul with 4-D broadcasting.
pub fn mul_f32(
    act_min: f32,
    act_max: f32,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: &[f32],
    b: &[f32],
    output: &mut [f32],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply(a, b, output, |a, b| clampf(a * b, act_min, act_max));
}

/// [`mul_f32`] in place.
pub fn mul_f32_inplace(
    act_min: f32,
    act_max: f32,
    out_dims: &[i32; 4],
    a_strides: &[i32; 4],
    b_strides: &[i32; 4],
    a: Operand<'_, f32>,
    b: Operand<'_, f32>,
    output: &mut [f32],
) {
    Broadcast::new(out_dims, a_strides, b_strides)
        .apply_inplace(a, b, output, |a, b| clampf(a * b, act_min, act_max));
}

fn unary(input: &[f32], output: &mut [f32], f: impl Fn(f32) -> f32) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = f(x);
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + libm::expf(-x))
}

/// `y = clamp(x, act_min, act_max)`.
pub fn clip_f32(act_min: f32, act_max: f32, input: &[f32], output: &mut [f32]) {
    unary(input, output, |x| clampf(x, act_min, act_max));
}

/// [`clip_f32`] in place.
pub fn clip_f32_inplace(act_min: f32, act_max: f32, data: &mut [f32]) {
    data.iter_mut()
        .for_each(|x| *x = clampf(*x, act_min, act_max));
}

/// `y = 1 / (1 + exp(-x))`.
pub fn sigmoid_f32(input: &[f32], output: &mut [f32]) {
    unary(input, output, sigmoid);
}

/// [`sigmoid_f32`] in place.
pub fn sigmoid_f32_inplace(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = sigmoid(*x));
}

/// `y = tanh(x)`.
pub fn tanh_f32(input: &[f32], output: &mut [f32]) {
    unary(input, output, libm::tanhf);
}

/// [`tanh_f32`] in place.
pub fn tanh_f32_inplace(data: &mut [f32]) {
    data.iter_mut().for_each(|x| *x = libm::tanhf(*x));
}

fn check_pool(input_dims: &Dims, input: &[f32], output_dims: &Dims, output: &[f32]) {
    assert!(input_dims.c == output_dims.c && input_dims.n == output_dims.n);
    assert!(input.len() >= input_dims.size() && output.len() >= output_dims.size());
}

/// float32 max pooling over the window's cells inside the input (none: `f32::MIN`), clamped.
pub fn max_pool_f32(
    params: &PoolF32Params,
    input_dims: &Dims,
    input: &[f32],
    output_dims: &Dims,
    output: &mut [f32],
) {
    check_pool(input_dims, input, output_dims, output);
    each_window(
        params,
        input_dims,
        input,
        output_dims,
        output,
        |w, x, ch, c| {
            let mut m = f32::MIN;
            for kh in w.kh.0..w.kh.1 {
                for kw in w.kw.0..w.kw.1 {
                    let v = x[w.index(kh, kw, ch, c)];
                    m = if v > m { v } else { m };
                }
            }
            m
        },
    );
}

/// float32 average pooling: the sum of the window's cells inside the input divided by their
/// count, or (`count_include_pad`) by the count of cells inside the padded extent.
pub fn avg_pool_f32(
    params: &PoolF32Params,
    input_dims: &Dims,
    input: &[f32],
    output_dims: &Dims,
    output: &mut [f32],
) {
    check_pool(input_dims, input, output_dims, output);
    each_window(
        params,
        input_dims,
        input,
        output_dims,
        output,
        |w, x, ch, c| {
            let mut sum = 0.0f32;
            for kh in w.kh.0..w.kh.1 {
                for kw in w.kw.0..w.kw.1 {
                    sum += x[w.index(kh, kw, ch, c)];
                }
            }
            let count = if params.count_include_pad {
                w.padded_cells
            } else {
                w.cells()
            };
            if count > 0 {
                sum / count as f32
            } else {
                0.0
            }
        },
    );
}

/// The cells of one pooling window: taps `kh.0..kh.1` x `kw.0..kw.1` lie in the input;
/// `padded_cells` of the window lie inside the padded extent.
struct PoolWindow {
    ih0: isize,
    iw0: isize,
    width: usize,
    kh: (isize, isize),
    kw: (isize, isize),
    padded_cells: i32,
}

impl PoolWindow {
    #[inline(always)]
    fn index(&self, kh: isize, kw: isize, ch: usize, c: usize) -> usize {
        (((self.ih0 + kh) as usize) * self.width + (self.iw0 + kw) as usize) * ch + c
    }

    #[inline(always)]
    fn cells(&self) -> i32 {
        ((self.kh.1 - self.kh.0) * (self.kw.1 - self.kw.0)) as i32
    }
}

/// `[max(-i0, 0), min(size - i0, kernel))`, empty when the window misses `[0, size)`.
#[inline(always)]
fn inside(i0: isize, kernel: usize, size: isize) -> (isize, isize) {
    let k0 = (-i0).max(0);
    (k0, (size - i0).min(kernel as isize).max(k0))
}

/// Calls `reduce(window, batch_input, channels, c)` for each output element (in the (kh, kw)
/// cell order of C, which float sums depend on) and stores it clamped.
fn each_window(
    params: &PoolF32Params,
    input_dims: &Dims,
    input: &[f32],
    output_dims: &Dims,
    output: &mut [f32],
    reduce: impl Fn(&PoolWindow, &[f32], usize, usize) -> f32,
) {
    let ch = input_dims.c;
    if output_dims.size() == 0 {
        return;
    }
    let (h, w) = (input_dims.h as isize, input_dims.w as isize);
    let (top, left) = (params.pad.top as isize, params.pad.left as isize);
    let (ih_end, iw_end) = (
        h + params.pad.bottom as isize,
        w + params.pad.right as isize,
    );
    let in_batch = (input_dims.h * input_dims.w * ch).max(1);
    for (batch_input, batch_output) in input
        .chunks_exact(in_batch)
        .zip(output.chunks_exact_mut(output_dims.h * output_dims.w * ch))
        .take(output_dims.n)
    {
        for (oh, out_row) in batch_output
            .chunks_exact_mut(output_dims.w * ch)
            .enumerate()
        {
            let ih0 = (oh * params.stride.h) as isize - top;
            let kh = inside(ih0, params.kernel.h, h);
            let ph = inside(ih0 + top, params.kernel.h, ih_end + top);
            for (ow, out) in out_row.chunks_exact_mut(ch).enumerate() {
                let iw0 = (ow * params.stride.w) as isize - left;
                let kw = inside(iw0, params.kernel.w, w);
                let pw = inside(iw0 + left, params.kernel.w, iw_end + left);
                let window = PoolWindow {
                    ih0,
                    iw0,
                    width: input_dims.w,
                    kh,
                    kw,
                    padded_cells: ((ph.1 - ph.0) * (pw.1 - pw.0)) as i32,
                };
                for (c, y) in out.iter_mut().enumerate() {
                    *y = clampf(
                        reduce(&window, batch_input, ch, c),
                        params.act_min,
                        params.act_max,
                    );
                }
            }
        }
    }
}

/// float32 softmax over rows of `depth` values: `exp(x - max) / sum`, computed as C does
/// (`y = e * (1 / sum)`).
pub fn softmax_f32(rows: usize, depth: usize, input: &[f32], output: &mut [f32]) {
    assert!(input.len() >= rows * depth && output.len() >= rows * depth);
    if depth == 0 {
        return;
    }
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
        .take(rows)
    {
        let max = x
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        let mut sum = 0.0f32;
        for (y, &x) in y.iter_mut().zip(x) {
            *y = libm::expf(x - max);
            sum += *y;
        }
        let inv = 1.0 / sum;
        for y in y.iter_mut() {
            *y *= inv;
        }
    }
}
