//! int8 2-D convolution (grouped) and depthwise convolution: NHWC activations, per-output-channel
//! requantization (`ts_conv_s8`, `ts_depthwise_conv_s8`).
//!
//! `acc = bias + sum((x + input_offset) * w)` over the taps inside the input (padded cells
//! contribute 0), `y = clamp(requantize(acc, m_c, s_c) + output_offset, act_min, act_max)`.

use crate::requantize::Requant;
use crate::{ChannelQuant, Dims, Hw, Padding};

/// Parameters of an int8 convolution (`ts_conv_params`).
#[derive(Clone, Copy, Debug)]
pub struct ConvParams {
    /// `-zero_point` of the input.
    pub input_offset: i32,
    /// `+zero_point` of the output.
    pub output_offset: i32,
    /// Stride.
    pub stride: Hw,
    /// Dilation.
    pub dilation: Hw,
    /// Zero padding.
    pub pad: Padding,
    /// Groups ([`conv_s8`] only): any divisor of the input channels.
    pub groups: usize,
    /// Lower output bound (int8, the fused activation's).
    pub act_min: i32,
    /// Upper output bound.
    pub act_max: i32,
}

/// Scratch bytes [`conv_s8`] needs: none (the Rust kernels accumulate directly; a memory plan
/// that reserves scratch for the C kernels' DSP paths is accepted and the bytes left unused).
pub fn conv_s8_buffer_size(
    _params: &ConvParams,
    _input_dims: &Dims,
    _filter_dims: &Dims,
    _output_dims: &Dims,
) -> usize {
    0
}

/// Scratch bytes [`depthwise_conv_s8`] needs: none.
pub fn depthwise_conv_s8_buffer_size(
    _params: &ConvParams,
    _input_dims: &Dims,
    _filter_dims: &Dims,
    _output_dims: &Dims,
) -> usize {
    0
}

/// The taps `k` in `0..kernel` with `0 <= start + k * dilation < size`: a contiguous range.
#[inline(always)]
pub(crate) fn valid_taps(
    start: isize,
    dilation: usize,
    kernel: usize,
    size: usize,
) -> (usize, usize) {
    let d = dilation as isize;
    let mut lo = 0;
    while lo < kernel && start + (lo as isize) * d < 0 {
        lo += 1;
    }
    let mut hi = kernel;
    while hi > lo && start + ((hi - 1) as isize) * d >= size as isize {
        hi -= 1;
    }
    (lo, hi)
}

/// `sum((x + offset) * w)`.
#[inline(always)]
fn dot(x: &[i8], w: &[i8], offset: i32) -> i32 {
    x.iter().zip(w).fold(0i32, |acc, (&x, &w)| {
        acc + (i32::from(x) + offset) * i32::from(w)
    })
}

/// int8 convolution. `filter_dims = {Cout, KH, KW, Cin / groups}`, filter data in that order
/// (OHWI); `bias` has `Cout` entries or is `None`. `scratch` may be empty (see
/// [`conv_s8_buffer_size`]).
pub fn conv_s8(
    params: &ConvParams,
    quant: &ChannelQuant<'_>,
    input_dims: &Dims,
    input: &[i8],
    filter_dims: &Dims,
    filter: &[i8],
    bias: Option<&[i32]>,
    output_dims: &Dims,
    output: &mut [i8],
    _scratch: &mut [u8],
) {
    let groups = params.groups.max(1);
    let (cin, cg, cout) = (input_dims.c, filter_dims.c, output_dims.c);
    let (kh_n, kw_n) = (filter_dims.h, filter_dims.w);
    assert!(cg * groups == cin && cout % groups == 0 && filter_dims.n == cout);
    assert!(input.len() >= input_dims.size() && filter.len() >= filter_dims.size());
    assert!(output.len() >= output_dims.size() && input_dims.n == output_dims.n);
    assert!(quant.multiplier.len() >= cout && quant.shift.len() >= cout);
    assert!(bias.is_none_or(|b| b.len() >= cout));
    let rows = cout / groups;
    let tap = kw_n * cg; // filter elements per (oc, kh)
    let in_row = input_dims.w * cin;
    let contiguous = groups == 1 && params.dilation.w == 1;
    let (off, out_off, lo, hi) = (
        params.input_offset,
        params.output_offset,
        params.act_min,
        params.act_max,
    );
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
                let g = oc / rows;
                let w_oc = &filter[oc * kh_n * tap..(oc + 1) * kh_n * tap];
                let mut acc = bias.map_or(0, |b| b[oc]);
                for kh in kh0..if kw0 < kw1 { kh1 } else { kh0 } {
                    let ih = (ih0 + (kh * params.dilation.h) as isize) as usize;
                    let w_row = &w_oc[kh * tap..(kh + 1) * tap];
                    if contiguous {
                        let iw = (iw0 + kw0 as isize) as usize;
                        let x = &batch_input[ih * in_row + iw * cin..][..(kw1 - kw0) * cin];
                        acc += dot(x, &w_row[kw0 * cg..kw1 * cg], off);
                    } else {
                        for kw in kw0..kw1 {
                            let iw = (iw0 + (kw * params.dilation.w) as isize) as usize;
                            let x = &batch_input[ih * in_row + iw * cin + g * cg..][..cg];
                            acc += dot(x, &w_row[kw * cg..(kw + 1) * cg], off);
                        }
                    }
                }
                *y = Requant::new(quant.multiplier[oc], quant.shift[oc])
                    .output(acc, out_off, lo, hi);
            }
        },
    );
}

/// Where one output pixel's window lies in the input: its first row and column (negative inside
/// the padding) and the ranges of its taps that fall inside the input.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) ih0: isize,
    pub(crate) iw0: isize,
    pub(crate) kh: (usize, usize),
    pub(crate) kw: (usize, usize),
}

/// Calls `f(batch_input, window, out)` for every output pixel of a windowed NHWC op, batch by batch,
/// `out` being the pixel's `output_dims.c` outputs; `geometry` is (stride, dilation, padding).
#[inline(always)]
pub(crate) fn for_each_window<T, U>(
    input: &[T],
    input_dims: &Dims,
    output: &mut [U],
    output_dims: &Dims,
    geometry: (Hw, Hw, Padding),
    kernel: (usize, usize),
    mut f: impl FnMut(&[T], Window, &mut [U]),
) {
    let (stride, dilation, pad) = geometry;
    let cout = output_dims.c;
    if output_dims.size() == 0 {
        return;
    }
    for (batch_input, batch_output) in input
        .chunks_exact((input_dims.h * input_dims.w * input_dims.c).max(1))
        .zip(output.chunks_exact_mut(output_dims.h * output_dims.w * cout))
        .take(input_dims.n)
    {
        for (oh, out_row) in batch_output
            .chunks_exact_mut(output_dims.w * cout)
            .enumerate()
        {
            let ih0 = (oh * stride.h) as isize - pad.top as isize;
            let kh = valid_taps(ih0, dilation.h, kernel.0, input_dims.h);
            for (ow, out) in out_row.chunks_exact_mut(cout).enumerate() {
                let iw0 = (ow * stride.w) as isize - pad.left as isize;
                let kw = valid_taps(iw0, dilation.w, kernel.1, input_dims.w);
                f(batch_input, Window { ih0, iw0, kh, kw }, out);
            }
        }
    }
}

impl Window {
    /// Calls `f(x, w)` for each valid tap with the input pixel's channels and the tap's filter row.
    #[inline(always)]
    fn each_tap(
        &self,
        params: &ConvParams,
        batch_input: &[i8],
        filter: &[i8],
        input_dims: &Dims,
        kw_n: usize,
        cout: usize,
        mut f: impl FnMut(&[i8], &[i8]),
    ) {
        let cin = input_dims.c;
        let in_row = input_dims.w * cin;
        for kh in self.kh.0..self.kh.1 {
            let ih = (self.ih0 + (kh * params.dilation.h) as isize) as usize;
            for kw in self.kw.0..self.kw.1 {
                let iw = (self.iw0 + (kw * params.dilation.w) as isize) as usize;
                let x = &batch_input[ih * in_row + iw * cin..][..cin];
                let w = &filter[(kh * kw_n + kw) * cout..][..cout];
                f(x, w);
            }
        }
    }
}

/// Channels per block of the depthwise kernel's accumulators (kept on the stack).
const DW_BLOCK: usize = 32;

/// int8 depthwise convolution: output channel `oc` reads input channel `oc / multiplier`
/// (`multiplier = Cout / Cin`). `filter_dims = {1, KH, KW, Cout}`, filter data HWC (as TFLite).
pub fn depthwise_conv_s8(
    params: &ConvParams,
    quant: &ChannelQuant<'_>,
    input_dims: &Dims,
    input: &[i8],
    filter_dims: &Dims,
    filter: &[i8],
    bias: Option<&[i32]>,
    output_dims: &Dims,
    output: &mut [i8],
    _scratch: &mut [u8],
) {
    let (cin, cout) = (input_dims.c, output_dims.c);
    let (kh_n, kw_n) = (filter_dims.h, filter_dims.w);
    assert!(cin > 0 && cout % cin == 0 && filter_dims.c == cout);
    assert!(input.len() >= input_dims.size() && filter.len() >= kh_n * kw_n * cout);
    assert!(output.len() >= output_dims.size() && input_dims.n == output_dims.n);
    assert!(quant.multiplier.len() >= cout && quant.shift.len() >= cout);
    assert!(bias.is_none_or(|b| b.len() >= cout));
    let mult = cout / cin;
    let (off, out_off, lo, hi) = (
        params.input_offset,
        params.output_offset,
        params.act_min,
        params.act_max,
    );
    for_each_window(
        input,
        input_dims,
        output,
        output_dims,
        (params.stride, params.dilation, params.pad),
        (kh_n, kw_n),
        |batch_input, window, out| {
            if mult == 1 {
                // Blocks of channels: one pass over the taps per block, accumulators in registers.
                let mut c0 = 0;
                for y in out.chunks_mut(DW_BLOCK) {
                    let n = y.len();
                    let mut acc = [0i32; DW_BLOCK];
                    if let Some(b) = bias {
                        acc[..n].copy_from_slice(&b[c0..c0 + n]);
                    }
                    window.each_tap(
                        params,
                        batch_input,
                        filter,
                        input_dims,
                        kw_n,
                        cout,
                        |x, w| {
                            for ((a, &x), &w) in
                                acc[..n].iter_mut().zip(&x[c0..c0 + n]).zip(&w[c0..c0 + n])
                            {
                                *a += (i32::from(x) + off) * i32::from(w);
                            }
                        },
                    );
                    for (i, (y, &a)) in y.iter_mut().zip(&acc[..n]).enumerate() {
                        let c = c0 + i;
                        *y = Requant::new(quant.multiplier[c], quant.shift[c])
                            .output(a, out_off, lo, hi);
                    }
                    c0 += n;
                }
            } else {
                for (oc, y) in out.iter_mut().enumerate() {
                    let ic = oc / mult;
                    let mut acc = bias.map_or(0, |b| b[oc]);
                    window.each_tap(
                        params,
                        batch_input,
                        filter,
                        input_dims,
                        kw_n,
                        cout,
                        |x, w| {
                            acc += (i32::from(x[ic]) + off) * i32::from(w[oc]);
                        },
                    );
                    *y = Requant::new(quant.multiplier[oc], quant.shift[oc])
                        .output(acc, out_off, lo, hi);
                }
            }
        },
    );
}
