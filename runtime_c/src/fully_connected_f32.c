/* float32 fully connected: input [batches, depth], filter [units, depth] packed in blocks of 8 rows. */
#include <string.h>

#include "mat_mult_f32.h"
#include "tinysplit/kernels.h"

#define ROWS TS_F32_FC_ROWS

static const float zero_bias[ROWS] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};

void ts_fully_connected_f32(float act_min, float act_max, int32_t batches, int32_t depth, int32_t units,
                            const float *input, const float *filter, const float *bias, float *output)
{
    const int32_t full = units / ROWS, rest = units % ROWS;
    int32_t b;
    for (b = 0; b < batches; ++b) {
        float *out = output + b * units;
        ts_priv_gemm8x1_f32_args a;
        a.x = input + b * depth;
        a.k8 = depth / 8;
        a.ktail = depth % 8;
        a.w = filter;
        a.bias = bias != NULL ? bias : zero_bias;
        a.bias_step = bias != NULL ? ROWS * (int32_t)sizeof(float) : 0;
        a.out = out;
        if (full > 0) {
            a.blocks = full;
            ts_priv_gemm8x1_f32(&a);
        }
        if (rest != 0) { /* the last, partial block of rows: through local buffers */
            float part_bias[ROWS], part_out[ROWS];
            int32_t r;
            for (r = 0; r < ROWS; ++r) {
                part_bias[r] = bias != NULL && r < rest ? bias[full * ROWS + r] : 0.0f;
            }
            a.w = filter + full * ROWS * depth;
            a.bias = part_bias;
            a.out = part_out;
            a.blocks = 1;
            ts_priv_gemm8x1_f32(&a);
            memcpy(out + full * ROWS, part_out, (size_t)rest * sizeof(float));
        }
        ts_priv_activation_f32(act_min, act_max, out, units);
    }
}
