/* float32 fully connected: input [batches, depth], filter [units, depth]. */
#include "tinysplit/kernels.h"

void ts_fully_connected_f32(float act_min, float act_max, int32_t batches, int32_t depth, int32_t units,
                            const float *input, const float *filter, const float *bias, float *output)
{
    int32_t b, u, k;
    for (b = 0; b < batches; ++b) {
        const float *x = input + b * depth;
        for (u = 0; u < units; ++u) {
            const float *w = filter + u * depth;
            float acc = bias != NULL ? bias[u] : 0.0f;
            for (k = 0; k < depth; ++k) {
                acc += x[k] * w[k];
            }
            output[b * units + u] = acc < act_min ? act_min : (acc > act_max ? act_max : acc);
        }
    }
}
