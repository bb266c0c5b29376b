/* int8 softmax over the last axis with a precomputed exp table (quant.softmax_exp_table). */
#include "tinysplit/kernels.h"

#include "requantize.h"

/* y = output_offset + floor((2 * E * mult + S * 2^16) / (2 * S * 2^16)), E = exp_table[max - x],
 * S = sum of E over the row (64-bit), i.e. E * mult / (S * 2^16) rounded half up. */
void ts_softmax_s8(const int32_t exp_table[256], int32_t out_multiplier, int32_t output_offset, int32_t rows,
                   int32_t depth, const int8_t *input, int8_t *output)
{
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = input + r * depth;
        int8_t *y = output + r * depth;
        int32_t max = TS_INT8_MIN;
        uint64_t sum = 0, den;
        for (i = 0; i < depth; ++i) {
            max = x[i] > max ? x[i] : max;
        }
        for (i = 0; i < depth; ++i) {
            sum += (uint64_t)(uint32_t)exp_table[max - x[i]];
        }
        den = sum << 17;
        for (i = 0; i < depth; ++i) {
            const uint64_t e = (uint32_t)exp_table[max - x[i]];
            const uint64_t num = ((e * (uint64_t)(uint32_t)out_multiplier) << 1) + (sum << 16);
            const int32_t q = den != 0 ? (int32_t)(num / den) : 0;
            y[i] = (int8_t)ts_clamp(q + output_offset, TS_INT8_MIN, TS_INT8_MAX);
        }
    }
}
