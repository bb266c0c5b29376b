//! int8 softmax over the last axis with a precomputed exp table (`ts_softmax_s8`).

use crate::clamp_i8;

/// Softmax over rows of `depth` values. `exp_table[k] = exp(-s_x * k) * 2^20`
/// (`quant.softmax_exp_table`); with `E = exp_table[max - x]` and `S` the row's sum of `E`,
/// `y = output_offset + floor((2 * E * out_multiplier + S * 2^16) / (2 * S * 2^16))`, i.e.
/// `E * out_multiplier / (S * 2^16)` rounded half up, saturated to int8.
pub fn softmax_s8(
    exp_table: &[i32; 256],
    out_multiplier: i32,
    output_offset: i32,
    rows: usize,
    depth: usize,
    input: &[i8],
    output: &mut [i8],
) {
    assert!(input.len() >= rows * depth && output.len() >= rows * depth);
    if depth == 0 {
        return;
    }
    let e = |max: i8, x: i8| u64::from(exp_table[(i32::from(max) - i32::from(x)) as usize] as u32);
    let m = u64::from(out_multiplier as u32);
    for (x, y) in input
        .chunks_exact(depth)
        .zip(output.chunks_exact_mut(depth))
        .take(rows)
    {
        let max = x.iter().copied().max().unwrap_or(i8::MIN);
        let sum: u64 = x.iter().map(|&x| e(max, x)).sum();
        let den = sum << 17;
        for (y, &x) in y.iter_mut().zip(x) {
            let num = ((e(max, x) * m) << 1) + (sum << 16);
            let q = num.checked_div(den).map_or(0, |q| q as i32);
            *y = clamp_i8(q + output_offset, i32::from(i8::MIN), i32::from(i8::MAX));
        }
    }
}
