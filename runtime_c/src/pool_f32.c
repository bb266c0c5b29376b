/* float32 max and average pooling, NHWC. */
#include "mat_mult_f32.h"
#include "tinysplit/kernels.h"

void ts_max_pool_f32(const ts_pool_f32_params *params, const ts_dims *input_dims, const float *input,
                     const ts_dims *output_dims, float *output)
{
    const int32_t ch = input_dims->c;
    int32_t b, oh, ow, kh, kw, c;
    for (b = 0; b < output_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * ch;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * ch;
                for (c = 0; c < ch; ++c) {
                    float m = -3.402823466e+38f;
                    for (kh = 0; kh < params->kernel.h; ++kh) {
                        const int32_t ih = ih0 + kh;
                        if (ih < 0 || ih >= input_dims->h) {
                            continue;
                        }
                        for (kw = 0; kw < params->kernel.w; ++kw) {
                            const int32_t iw = iw0 + kw;
                            float v;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            v = batch_input[(ih * input_dims->w + iw) * ch + c];
                            m = v > m ? v : m;
                        }
                    }
                    out[c] = m < params->act_min ? params->act_min : (m > params->act_max ? params->act_max : m);
                }
            }
        }
    }
}

/* Average pooling of one output pixel whose window lies inside the input: 16 channels at a time
 * through ts_priv_sum16_f32, the others one by one, in the same order; returns the channels done. */
static int32_t avg_pool_inner(const ts_pool_f32_params *params, const ts_dims *input_dims, const float *window,
                              float *out)
{
    static const float zeros[16] = {0.0f};
    const int32_t ch = input_dims->c, cells = params->kernel.h * params->kernel.w;
    ts_priv_sum16_f32_args a;
    int32_t c;
    a.cols = params->kernel.w;
    a.rows = params->kernel.h;
    a.col_step = ch * (int32_t)sizeof(float);
    a.row_skip = (input_dims->w - params->kernel.w) * ch * (int32_t)sizeof(float);
    a.zero = zeros;
    for (c = 0; c + 16 <= ch; c += 16) {
        int32_t i;
        a.src = window + c;
        a.dst = out + c;
        ts_priv_sum16_f32(&a);
        for (i = 0; i < 16; ++i) {
            out[c + i] /= (float)cells;
        }
    }
    return c;
}

void ts_avg_pool_f32(const ts_pool_f32_params *params, const ts_dims *input_dims, const float *input,
                     const ts_dims *output_dims, float *output)
{
    const int32_t ch = input_dims->c;
    const int32_t ih_end = input_dims->h + params->pad.bottom;
    const int32_t iw_end = input_dims->w + params->pad.right;
    int32_t b, oh, ow, kh, kw, c;
    for (b = 0; b < output_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * ch;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * ch;
                c = 0;
                if (ih0 >= 0 && iw0 >= 0 && ih0 + params->kernel.h <= input_dims->h &&
                    iw0 + params->kernel.w <= input_dims->w && params->kernel.h > 0 && params->kernel.w > 0) {
                    c = avg_pool_inner(params, input_dims, batch_input + (ih0 * input_dims->w + iw0) * ch, out);
                }
                for (; c < ch; ++c) {
                    float sum = 0.0f, avg;
                    int32_t count = 0;
                    for (kh = 0; kh < params->kernel.h; ++kh) {
                        const int32_t ih = ih0 + kh;
                        for (kw = 0; kw < params->kernel.w; ++kw) {
                            const int32_t iw = iw0 + kw;
                            if (ih >= 0 && ih < input_dims->h && iw >= 0 && iw < input_dims->w) {
                                sum += batch_input[(ih * input_dims->w + iw) * ch + c];
                                ++count;
                            } else if (params->count_include_pad && ih >= -params->pad.top && ih < ih_end &&
                                       iw >= -params->pad.left && iw < iw_end) {
                                ++count;
                            }
                        }
                    }
                    avg = count > 0 ? sum / (float)count : 0.0f;
                    out[c] = avg;
                }
                ts_priv_activation_f32(params->act_min, params->act_max, out, ch);
            }
        }
    }
}
