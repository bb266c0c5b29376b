/* int8 fully connected: input [batches, depth], filter [units, depth], per-unit requantization. */
#include "tinysplit/kernels.h"

#include "mat_mult_s8.h"
#include "requantize.h"
#include "simd.h"

int32_t ts_fully_connected_s8_get_buffer_size(const ts_fc_params *params, int32_t depth, int32_t units)
{
    (void)params;
    (void)units;
#if TS_HAVE_DSP
    return 2 * depth; /* one int16 column of depth values */
#else
    (void)depth;
    return 0;
#endif
}

/* The plain C path of both variants: int8 rows (filter) or pre-widened blocks (wide_filter, see
 * ts_fully_connected_s8_wide). */
static void fc_portable(const ts_fc_params *params, const ts_channel_quant *quant, int32_t batches, int32_t depth,
                        int32_t units, const int8_t *input, const int8_t *filter, const int16_t *wide_filter,
                        const int32_t *bias, int8_t *output)
{
    static const unsigned char order[4] = {0, 2, 1, 3};
    const int32_t Kp = (depth + 3) & ~3;
    const int32_t off = params->input_offset;
    int32_t b, u, k;
    for (b = 0; b < batches; ++b) {
        const int8_t *x = input + b * depth;
        for (u = 0; u < units; ++u) {
            int32_t acc = bias != NULL ? bias[u] : 0;
            if (wide_filter == NULL) {
                const int8_t *w = filter + u * depth;
                for (k = 0; k < depth; ++k) {
                    acc += (x[k] + off) * w[k];
                }
            } else {
                const int16_t *block = wide_filter + (u >> 2) * 4 * Kp + (u & 3) * 4;
                for (k = 0; k < depth; ++k) {
                    acc += (x[k] + off) * block[(k >> 2) * 16 + order[k & 3]];
                }
            }
            output[b * units + u] = ts_requantize_s8_out(acc, quant->multiplier[u], quant->shift[u],
                                                         params->output_offset, params->act_min, params->act_max);
        }
    }
}

void ts_fully_connected_s8(const ts_fc_params *params, const ts_channel_quant *quant, int32_t batches,
                           int32_t depth, int32_t units, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, int8_t *output, void *scratch)
{
#if TS_HAVE_DSP
    if (scratch != NULL && ((uintptr_t)scratch & 3u) == 0) {
        int16_t *col = (int16_t *)scratch;
        int32_t b;
        for (b = 0; b < batches; ++b) {
            ts_priv_col_fill(col, 1, 0, depth, 0, input + b * depth, depth, params->input_offset);
            ts_priv_mat_mult_col(filter, units, depth, col, bias, quant->multiplier, quant->shift,
                                 params->output_offset, params->act_min, params->act_max, output + b * units);
        }
        return;
    }
#else
    (void)scratch;
#endif
    fc_portable(params, quant, batches, depth, units, input, filter, NULL, bias, output);
}

int32_t ts_fully_connected_s8_wide_get_buffer_size(const ts_fc_params *params, int32_t depth, int32_t units)
{
    (void)params;
    (void)units;
#if TS_HAVE_DSP
    return 2 * ((depth + 3) & ~3); /* one int16 column of depth values, zeros after them */
#else
    (void)depth;
    return 0;
#endif
}

void ts_fully_connected_s8_wide(const ts_fc_params *params, const ts_channel_quant *quant, int32_t batches,
                                int32_t depth, int32_t units, const int8_t *input, const int16_t *filter,
                                const int32_t *bias, int8_t *output, void *scratch)
{
#if TS_HAVE_DSP
    if (scratch != NULL && ((uintptr_t)scratch & 3u) == 0) {
        const int32_t Kp = (depth + 3) & ~3;
        int16_t *col = (int16_t *)scratch;
        int32_t b;
        for (b = 0; b < batches; ++b) {
            ts_priv_col_fill(col, 1, 0, Kp, 0, input + b * depth, depth, params->input_offset);
            ts_priv_col_fill(col, 1, 0, Kp, depth, NULL, Kp - depth, 0);
            ts_priv_mat_mult_col_wide(filter, units, Kp, col, bias, quant->multiplier, quant->shift,
                                      params->output_offset, params->act_min, params->act_max, output + b * units);
        }
        return;
    }
#else
    (void)scratch;
#endif
    fc_portable(params, quant, batches, depth, units, input, NULL, filter, bias, output);
}
