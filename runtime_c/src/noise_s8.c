/* Noise at the cut: y = sat8(x + n), n drawn by inversion of a CDF table (see kernels.h and
 * tinysplit/compiler/quant.py, which this file implements bit for bit). */
#include "tinysplit/kernels.h"

/* #{i : cdf[i] <= u} for a nondecreasing table of size >= 1. The probe sequence length depends on
 * size only, never on u, so the layer's time (reported to the server as telemetry) says nothing
 * about the noise; the selects compile to conditional moves or IT blocks, not branches. */
static int32_t count_at_most(const uint32_t *cdf, int32_t size, uint32_t u)
{
    int32_t base = 0;
    int32_t n = size;
    while (n > 1) {
        const int32_t half = n / 2;
        /* invariant: the count lies in [base, base + n] */
        base += (cdf[base + half] <= u) ? half : 0;
        n -= half;
    }
    return base + (cdf[base] <= u ? 1 : 0);
}

void ts_noise_s8(const ts_noise_params *params, const uint8_t *random, int32_t size, const int8_t *input,
                 int8_t *output)
{
    int32_t j;
    for (j = 0; j < size; ++j) {
        const uint8_t *r = random + 4 * j;
        const uint32_t u = (uint32_t)r[0] | ((uint32_t)r[1] << 8) | ((uint32_t)r[2] << 16) | ((uint32_t)r[3] << 24);
        int32_t y = (int32_t)input[j] + params->min_value + count_at_most(params->cdf, params->table_size, u);
        y = y < -128 ? -128 : y;
        y = y > 127 ? 127 : y;
        output[j] = (int8_t)y;
    }
}
