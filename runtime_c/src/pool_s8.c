/* int8 max and average pooling, NHWC; input and output share one quantization. */
#include "tinysplit/kernels.h"

#include "requantize.h"
#include "simd.h"

void ts_max_pool_s8(const ts_pool_params *params, const ts_dims *input_dims, const int8_t *input,
                    const ts_dims *output_dims, int8_t *output)
{
    const int32_t ch = input_dims->c;
    int32_t b, oh, ow, kh, kw, c;
    for (b = 0; b < output_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * ch;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            const int32_t kh0 = ih0 < 0 ? -ih0 : 0;
            const int32_t kh1 = input_dims->h - ih0 < params->kernel.h ? input_dims->h - ih0 : params->kernel.h;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                const int32_t kw0 = iw0 < 0 ? -iw0 : 0;
                const int32_t kw1 = input_dims->w - iw0 < params->kernel.w ? input_dims->w - iw0 : params->kernel.w;
                int8_t *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * ch;
                for (c = 0; c < ch; ++c) {
                    out[c] = TS_INT8_MIN;
                }
                for (kh = kh0; kh < kh1; ++kh) {
                    for (kw = kw0; kw < kw1; ++kw) {
                        const int8_t *x = batch_input + ((ih0 + kh) * input_dims->w + iw0 + kw) * ch;
                        for (c = 0; c < ch; ++c) {
                            out[c] = x[c] > out[c] ? x[c] : out[c];
                        }
                    }
                }
                for (c = 0; c < ch; ++c) {
                    out[c] = (int8_t)ts_clamp(out[c], params->act_min, params->act_max);
                }
            }
        }
    }
}

/* The average of `count` cells whose in-input ones sum to `sum`, plus n_pad cells of the zero point:
 * rounded half away from zero, then clamped. */
static inline int8_t avg_out(const ts_pool_params *params, int32_t sum, int32_t n_pad, int32_t count)
{
    int32_t avg;
    sum += n_pad * params->input_zero_point;
    if (count <= 0) {
        avg = params->input_zero_point;
    } else if (sum >= 0) {
        avg = (sum + count / 2) / count;
    } else {
        avg = (sum - count / 2) / count;
    }
    return (int8_t)ts_clamp(avg, params->act_min, params->act_max);
}

#if TS_HAVE_DSP
/* lane 0 (low) or 1 (high) of two int16 lanes, sign-extended */
static inline int32_t ts_lane_sum(int32_t lanes, int32_t lane)
{
    return (int32_t)(int16_t)(uint16_t)(((uint32_t)lanes >> (16 * lane)) & 0xFFFFu);
}
#endif

/* Average pooling, rounded half away from zero. The window's cells inside the input are summed;
 * with count_include_pad the cells in the padding (inside the padded extent) count too, each as
 * the zero point (real 0), and the divisor counts them. No scratch: one channel at a time. */
void ts_avg_pool_s8(const ts_pool_params *params, const ts_dims *input_dims, const int8_t *input,
                    const ts_dims *output_dims, int8_t *output)
{
    const int32_t ch = input_dims->c;
    const int32_t ih_end = input_dims->h + params->pad.bottom;
    const int32_t iw_end = input_dims->w + params->pad.right;
    int32_t b, oh, ow, kh, kw, c;
    for (b = 0; b < output_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * ch;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            const int32_t kh0 = ih0 < 0 ? -ih0 : 0;
            const int32_t kh1 = input_dims->h - ih0 < params->kernel.h ? input_dims->h - ih0 : params->kernel.h;
            /* rows of the window inside the padded input */
            const int32_t ph0 = ih0 < -params->pad.top ? -params->pad.top - ih0 : 0;
            const int32_t ph1 = ih_end - ih0 < params->kernel.h ? ih_end - ih0 : params->kernel.h;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                const int32_t kw0 = iw0 < 0 ? -iw0 : 0;
                const int32_t kw1 = input_dims->w - iw0 < params->kernel.w ? input_dims->w - iw0 : params->kernel.w;
                const int32_t pw0 = iw0 < -params->pad.left ? -params->pad.left - iw0 : 0;
                const int32_t pw1 = iw_end - iw0 < params->kernel.w ? iw_end - iw0 : params->kernel.w;
                const int32_t n_in = (kh1 > kh0 ? kh1 - kh0 : 0) * (kw1 > kw0 ? kw1 - kw0 : 0);
                const int32_t n_pad = params->count_include_pad ? (ph1 - ph0) * (pw1 - pw0) - n_in : 0;
                const int32_t count = n_in + n_pad;
                int8_t *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * ch;
                c = 0;
#if TS_HAVE_DSP
                /* four channels at a time in 16-bit lanes: |sum| <= 128 * n_in fits when n_in <= 256 */
                for (; n_in <= 256 && c + 4 <= ch; c += 4) {
                    int32_t even = 0, odd = 0; /* lanes (c, c + 2) and (c + 1, c + 3) */
                    for (kh = kh0; kh < kh1; ++kh) {
                        const int8_t *x = batch_input + ((ih0 + kh) * input_dims->w + iw0) * ch + c;
                        for (kw = kw0; kw < kw1; ++kw) {
                            const int32_t v = ts_load32(x + kw * ch);
                            even = ts_sxtab16(even, v);
                            odd = ts_sxtab16_ror8(odd, v);
                        }
                    }
                    out[c] = avg_out(params, ts_lane_sum(even, 0), n_pad, count);
                    out[c + 1] = avg_out(params, ts_lane_sum(odd, 0), n_pad, count);
                    out[c + 2] = avg_out(params, ts_lane_sum(even, 1), n_pad, count);
                    out[c + 3] = avg_out(params, ts_lane_sum(odd, 1), n_pad, count);
                }
#endif
                for (; c < ch; ++c) {
                    int32_t sum = 0;
                    for (kh = kh0; kh < kh1; ++kh) {
                        const int8_t *x = batch_input + ((ih0 + kh) * input_dims->w + iw0) * ch + c;
                        for (kw = kw0; kw < kw1; ++kw) {
                            sum += x[kw * ch];
                        }
                    }
                    out[c] = avg_out(params, sum, n_pad, count);
                }
            }
        }
    }
}
