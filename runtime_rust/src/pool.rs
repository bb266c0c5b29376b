//! int8 max and average pooling, NHWC; input and output share one quantization
//! (`ts_max_pool_s8`, `ts_avg_pool_s8`).

use crate::{clamp, clamp_i8, Dims, Hw, Padding};

/// Parameters of int8 pooling (`ts_pool_params`).
#[derive(Clone, Copy, Debug)]
pub struct PoolParams {
    /// Window size.
    pub kernel: Hw,
    /// Stride.
    pub stride: Hw,
    /// Padding (left out of max pooling; counted by average pooling with `count_include_pad`).
    pub pad: Padding,
    /// Average pooling only: padded cells inside the padded extent count (as `input_zero_point`).
    pub count_include_pad: bool,
    /// Lower output bound (int8).
    pub act_min: i32,
    /// Upper output bound (int8).
    pub act_max: i32,
    /// Average pooling with `count_include_pad`: the value of a padded cell (real 0).
    pub input_zero_point: i32,
}

/// The part of a window along one axis that lies in the input: `[k0, k1)` with `k1 - k0 >= 0`
/// cells, starting at input position `i0 + k0`; as the C kernels: `k0 = max(-i0, 0)`,
/// `k1 = min(size - i0, kernel)`.
#[inline(always)]
fn span(i0: isize, kernel: usize, size: usize) -> (isize, isize) {
    let k0 = if i0 < 0 { -i0 } else { 0 };
    let k1 = (size as isize - i0).min(kernel as isize);
    (k0, k1.max(k0))
}

fn check(input_dims: &Dims, input: &[i8], output_dims: &Dims, output: &[i8]) {
    assert!(input_dims.c == output_dims.c && input_dims.n == output_dims.n);
    assert!(input.len() >= input_dims.size() && output.len() >= output_dims.size());
}

/// Max pooling over the window's cells inside the input, then clamped (no valid cell: -128, clamped).
pub fn max_pool_s8(
    params: &PoolParams,
    input_dims: &Dims,
    input: &[i8],
    output_dims: &Dims,
    output: &mut [i8],
) {
    check(input_dims, input, output_dims, output);
    let ch = input_dims.c;
    if output_dims.size() == 0 {
        return;
    }
    let in_row = input_dims.w * ch;
    for (batch_input, batch_output) in input
        .chunks_exact((input_dims.h * in_row).max(1))
        .zip(output.chunks_exact_mut(output_dims.h * output_dims.w * ch))
        .take(output_dims.n)
    {
        for (oh, out_row) in batch_output
            .chunks_exact_mut(output_dims.w * ch)
            .enumerate()
        {
            let ih0 = (oh * params.stride.h) as isize - params.pad.top as isize;
            let (kh0, kh1) = span(ih0, params.kernel.h, input_dims.h);
            for (ow, out) in out_row.chunks_exact_mut(ch).enumerate() {
                let iw0 = (ow * params.stride.w) as isize - params.pad.left as isize;
                let (kw0, kw1) = span(iw0, params.kernel.w, input_dims.w);
                out.fill(i8::MIN);
                for kh in kh0..kh1 {
                    let ih = (ih0 + kh) as usize;
                    for kw in kw0..kw1 {
                        let iw = (iw0 + kw) as usize;
                        let x = &batch_input[ih * in_row + iw * ch..][..ch];
                        for (y, &x) in out.iter_mut().zip(x) {
                            *y = (*y).max(x);
                        }
                    }
                }
                for y in out.iter_mut() {
                    *y = clamp_i8(i32::from(*y), params.act_min, params.act_max);
                }
            }
        }
    }
}

/// Average pooling rounded half away from zero. The window's cells inside the input are summed;
/// with `count_include_pad` the cells in the padding (inside the padded extent) count too, each
/// as `input_zero_point`, and the divisor counts them. One channel at a time, no scratch.
pub fn avg_pool_s8(
    params: &PoolParams,
    input_dims: &Dims,
    input: &[i8],
    output_dims: &Dims,
    output: &mut [i8],
) {
    check(input_dims, input, output_dims, output);
    let ch = input_dims.c;
    if output_dims.size() == 0 {
        return;
    }
    let in_row = input_dims.w * ch;
    let ih_end = (input_dims.h + params.pad.bottom) as isize;
    let iw_end = (input_dims.w + params.pad.right) as isize;
    for (batch_input, batch_output) in input
        .chunks_exact((input_dims.h * in_row).max(1))
        .zip(output.chunks_exact_mut(output_dims.h * output_dims.w * ch))
        .take(output_dims.n)
    {
        for (oh, out_row) in batch_output
            .chunks_exact_mut(output_dims.w * ch)
            .enumerate()
        {
            let ih0 = (oh * params.stride.h) as isize - params.pad.top as isize;
            let (kh0, kh1) = span(ih0, params.kernel.h, input_dims.h);
            // rows of the window inside the padded input
            let ph0 = if ih0 < -(params.pad.top as isize) {
                -(params.pad.top as isize) - ih0
            } else {
                0
            };
            let ph1 = (ih_end - ih0).min(params.kernel.h as isize);
            for (ow, out) in out_row.chunks_exact_mut(ch).enumerate() {
                let iw0 = (ow * params.stride.w) as isize - params.pad.left as isize;
                let (kw0, kw1) = span(iw0, params.kernel.w, input_dims.w);
                let pw0 = if iw0 < -(params.pad.left as isize) {
                    -(params.pad.left as isize) - iw0
                } else {
                    0
                };
                let pw1 = (iw_end - iw0).min(params.kernel.w as isize);
                let n_in = ((kh1 - kh0) * (kw1 - kw0)) as i32;
                let n_pad = if params.count_include_pad {
                    ((ph1 - ph0) * (pw1 - pw0)) as i32 - n_in
                } else {
                    0
                };
                let count = n_in + n_pad;
                for (c, y) in out.iter_mut().enumerate() {
                    let mut sum = n_pad * params.input_zero_point;
                    for kh in kh0..kh1 {
                        let row = &batch_input[(ih0 + kh) as usize * in_row..][..in_row];
                        for kw in kw0..kw1 {
                            sum += i32::from(row[(iw0 + kw) as usize * ch + c]);
                        }
                    }
                    let avg = if count <= 0 {
                        params.input_zero_point
                    } else if sum >= 0 {
                        (sum + count / 2) / count
                    } else {
                        (sum - count / 2) / count
                    };
                    *y = clamp(avg, params.act_min, params.act_max) as i8;
                }
            }
        }
    }
}
