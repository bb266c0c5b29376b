/* float32 <-> int8 (ONNX QuantizeLinear / DequantizeLinear, per tensor). */
#include "tinysplit/kernels.h"

/* Round to nearest, ties to even, under the default floating-point environment and without libm:
 * for |v| < 2^22, v + 1.5 * 2^23 lies in (2^23, 2^24) where floats are exactly the integers, so
 * the addition rounds v as rint would and the subtraction is exact. (Never build with
 * -ffast-math, which would fold it away.) Larger magnitudes saturate anyway. */
static float round_half_even(float v)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    if (!(v > -4194304.0f && v < 4194304.0f)) {
        return v;
    }
    return (v + magic) - magic;
}

void ts_quantize_f32_s8(float scale, int32_t zero_point, int32_t size, const float *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        const float r = round_half_even(input[i] / scale);
        int32_t q;
        if (r != r) {
            q = zero_point; /* NaN */
        } else if (r <= -256.0f) {
            q = -128;
        } else if (r >= 256.0f) {
            q = 127;
        } else {
            q = (int32_t)r + zero_point;
            q = q < -128 ? -128 : (q > 127 ? 127 : q);
        }
        output[i] = (int8_t)q;
    }
}

void ts_dequantize_s8_f32(float scale, int32_t zero_point, int32_t size, const int8_t *input, float *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = (float)(input[i] - zero_point) * scale;
    }
}
