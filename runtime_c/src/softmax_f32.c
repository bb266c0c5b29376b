/* float32 softmax over the last axis. */
#include <math.h>

#include "tinysplit/kernels.h"

void ts_softmax_f32(int32_t rows, int32_t depth, const float *input, float *output)
{
    int32_t r, i;
    for (r = 0; r < rows; ++r) {
        const float *x = input + r * depth;
        float *y = output + r * depth;
        float max = -INFINITY, sum = 0.0f, inv;
        for (i = 0; i < depth; ++i) {
            max = x[i] > max ? x[i] : max;
        }
        for (i = 0; i < depth; ++i) {
            y[i] = expf(x[i] - max);
            sum += y[i];
        }
        inv = 1.0f / sum;
        for (i = 0; i < depth; ++i) {
            y[i] *= inv;
        }
    }
}
