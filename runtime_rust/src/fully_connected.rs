//! int8 fully connected layer: input `[batches, depth]`, filter `[units, depth]` row-major,
//! per-unit requantization (`ts_fully_connected_s8`).

use crate::requantize::Requant;
use crate::ChannelQuant;

/// Parameters of an int8 fully connected layer (`ts_fc_params`).
#[derive(Clone, Copy, Debug)]
pub struct FcParams {
    /// `-zero_point` of the input.
    pub input_offset: i32,
    /// `+zero_point` of the output.
    pub output_offset: i32,
    /// Lower output bound (int8).
    pub act_min: i32,
    /// Upper output bound (int8).
    pub act_max: i32,
}

/// Scratch bytes [`fully_connected_s8`] needs: none.
pub fn fully_connected_s8_buffer_size(_params: &FcParams, _depth: usize, _units: usize) -> usize {
    0
}

/// `y[b, u] = clamp(requantize(bias[u] + sum_k (x[b, k] + input_offset) * w[u, k]) + output_offset)`.
pub fn fully_connected_s8(
    params: &FcParams,
    quant: &ChannelQuant<'_>,
    batches: usize,
    depth: usize,
    units: usize,
    input: &[i8],
    filter: &[i8],
    bias: Option<&[i32]>,
    output: &mut [i8],
    _scratch: &mut [u8],
) {
    assert!(input.len() >= batches * depth && filter.len() >= units * depth);
    assert!(output.len() >= batches * units);
    assert!(quant.multiplier.len() >= units && quant.shift.len() >= units);
    assert!(bias.is_none_or(|b| b.len() >= units));
    if batches == 0 || units == 0 {
        return;
    }
    let off = params.input_offset;
    for (x, out) in input
        .chunks_exact(depth.max(1))
        .zip(output.chunks_exact_mut(units))
        .take(batches)
    {
        let x = &x[..depth];
        for (u, (y, w)) in out
            .iter_mut()
            .zip(filter.chunks_exact(depth.max(1)))
            .enumerate()
        {
            let w = &w[..depth];
            let dot = x.iter().zip(w).fold(0i32, |acc, (&x, &w)| {
                acc + (i32::from(x) + off) * i32::from(w)
            });
            let acc = bias.map_or(0, |b| b[u]) + dot;
            *y = Requant::new(quant.multiplier[u], quant.shift[u]).output(
                acc,
                params.output_offset,
                params.act_min,
                params.act_max,
            );
        }
    }
}
