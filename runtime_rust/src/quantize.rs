//! float32 <-> int8, per tensor: ONNX QuantizeLinear / DequantizeLinear
//! (`ts_quantize_f32_s8`, `ts_dequantize_s8_f32`).

/// Round to nearest, ties to even: for `|v| < 2^23` adding and subtracting `1.5 * 2^23` leaves `v`
/// rounded to an integer in single precision (as the C runtime; larger values are integers).
#[inline(always)]
fn round_half_even(v: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    if !(v > -8_388_608.0 && v < 8_388_608.0) {
        return v;
    }
    (v + MAGIC) - MAGIC
}

/// `y = saturate(round_half_even(x / scale) + zero_point)`; NaN becomes `zero_point`.
pub fn quantize_f32_s8(scale: f32, zero_point: i32, input: &[f32], output: &mut [i8]) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        let r = round_half_even(x / scale);
        let q = if r.is_nan() {
            zero_point
        } else if r <= -256.0 {
            -128
        } else if r >= 256.0 {
            127
        } else {
            (r as i32 + zero_point).clamp(-128, 127)
        };
        *y = q as i8;
    }
}

/// `y = (x - zero_point) * scale`.
pub fn dequantize_s8_f32(scale: f32, zero_point: i32, input: &[i8], output: &mut [f32]) {
    assert!(input.len() >= output.len());
    for (y, &x) in output.iter_mut().zip(input) {
        *y = (i32::from(x) - zero_point) as f32 * scale;
    }
}
