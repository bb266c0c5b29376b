/* float32 2-D convolution (grouped) and depthwise convolution, NHWC. */
#include "tinysplit/kernels.h"

static inline float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

void ts_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                 const ts_dims *filter_dims, const float *filter, const float *bias, const ts_dims *output_dims,
                 float *output)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cin = input_dims->c, cg = filter_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t rows = cout / groups;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    int32_t b, oh, ow, oc, kh, kw, c;
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                for (oc = 0; oc < cout; ++oc) {
                    const int32_t g = oc / rows;
                    float acc = bias != NULL ? bias[oc] : 0.0f;
                    for (kh = 0; kh < kh_n; ++kh) {
                        const int32_t ih = ih0 + kh * params->dilation.h;
                        if (ih < 0 || ih >= input_dims->h) {
                            continue;
                        }
                        for (kw = 0; kw < kw_n; ++kw) {
                            const int32_t iw = iw0 + kw * params->dilation.w;
                            const float *x;
                            const float *w;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            x = batch_input + (ih * input_dims->w + iw) * cin + g * cg;
                            w = filter + ((oc * kh_n + kh) * kw_n + kw) * cg;
                            for (c = 0; c < cg; ++c) {
                                acc += x[c] * w[c];
                            }
                        }
                    }
                    out[oc] = clampf(acc, params->act_min, params->act_max);
                }
            }
        }
    }
}

void ts_depthwise_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                           const ts_dims *filter_dims, const float *filter, const float *bias,
                           const ts_dims *output_dims, float *output)
{
    const int32_t cin = input_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t mult = cin > 0 ? cout / cin : 1;
    int32_t b, oh, ow, oc, kh, kw;
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                for (oc = 0; oc < cout; ++oc) {
                    const int32_t ic = oc / mult;
                    float acc = bias != NULL ? bias[oc] : 0.0f;
                    for (kh = 0; kh < filter_dims->h; ++kh) {
                        const int32_t ih = ih0 + kh * params->dilation.h;
                        if (ih < 0 || ih >= input_dims->h) {
                            continue;
                        }
                        for (kw = 0; kw < filter_dims->w; ++kw) {
                            const int32_t iw = iw0 + kw * params->dilation.w;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            acc += batch_input[(ih * input_dims->w + iw) * cin + ic] *
                                   filter[(kh * filter_dims->w + kw) * cout + oc];
                        }
                    }
                    out[oc] = clampf(acc, params->act_min, params->act_max);
                }
            }
        }
    }
}
