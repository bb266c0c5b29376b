/* int8 2-D convolution, NHWC input/output, OHWI filter, per-output-channel requantization. */
#include "tinysplit/kernels.h"

#include "mat_mult_s8.h"
#include "requantize.h"
#include "simd.h"

int32_t ts_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                   const ts_dims *filter_dims, const ts_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    (void)params;
#if TS_HAVE_DSP
    {
        /* TS_MM_COLS (4) im2col columns of K = KH * KW * Cin/groups int16 values; when Cin/groups is
         * not a multiple of 4, the columns are padded to Kp = K rounded up to a multiple of 4, and an
         * int8 patch of Kp bytes follows them. */
        const int32_t K = filter_dims->h * filter_dims->w * filter_dims->c;
        const int32_t Kp = (K + 3) & ~3;
        return (filter_dims->c & 3) != 0 ? TS_MM_COLS * 2 * Kp + Kp : TS_MM_COLS * 2 * K;
    }
#else
    (void)filter_dims;
    return 0;
#endif
}

#if TS_HAVE_DSP

/* im2col of one output pixel (oh, ow) of group g into column j of the blocked column buffer.
 * With Cin/groups a multiple of 4 each tap converts straight into the column; otherwise the raw
 * patch is gathered into `patch` first (padding as the input zero point, which becomes 0) and
 * converted in one pass, so that the conversion still runs four values at a time. */
static void im2col_pixel(const ts_conv_params *params, const ts_dims *input_dims, const int8_t *batch_input,
                         const ts_dims *filter_dims, int32_t group, int32_t oh, int32_t ow, int16_t *cols, int32_t j,
                         int8_t *patch)
{
    const int32_t cg = filter_dims->c;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t K = kh_n * kw_n * cg;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    const int8_t zero_point = (int8_t)(-params->input_offset);
    int32_t kh, kw, c, k = 0;
    for (kh = 0; kh < kh_n; ++kh) {
        const int32_t ih = ih0 + kh * params->dilation.h;
        const int row_ok = ih >= 0 && ih < input_dims->h;
        for (kw = 0; kw < kw_n; ++kw, k += cg) {
            const int32_t iw = iw0 + kw * params->dilation.w;
            const int8_t *src = NULL;
            if (row_ok && iw >= 0 && iw < input_dims->w) {
                src = batch_input + (ih * input_dims->w + iw) * input_dims->c + group * cg;
            }
            if (patch == NULL) {
                ts_priv_col_fill(cols, TS_MM_COLS, j, K, k, src, cg, params->input_offset);
            } else if (src != NULL) {
                for (c = 0; c < cg; ++c) {
                    patch[k + c] = src[c];
                }
            } else {
                for (c = 0; c < cg; ++c) {
                    patch[k + c] = zero_point;
                }
            }
        }
    }
    if (patch != NULL) {
        /* padded to a multiple of 4 with the zero point, which the offset turns into 0 */
        const int32_t Kp = (K + 3) & ~3;
        for (k = K; k < Kp; ++k) {
            patch[k] = zero_point;
        }
        ts_priv_col_fill(cols, TS_MM_COLS, j, Kp, 0, patch, Kp, params->input_offset);
    }
}

/* n4 groups of four values of one tap into column j: v = src + offset (src == NULL: zeros). */
static inline void col_tap4(int16_t *dst, const int8_t *src, int32_t n4, int32_t off2)
{
    if (src == NULL) {
        for (; n4 > 0; --n4) {
            ts_store32(dst, 0);
            ts_store32(dst + 2, 0);
            dst += 4 * TS_MM_COLS;
        }
        return;
    }
    for (; n4 > 0; --n4) {
        const int32_t x = ts_load32(src);
        ts_store32(dst, ts_sxtab16(off2, x));
        ts_store32(dst + 2, ts_sxtab16_ror8(off2, x));
        src += 4;
        dst += 4 * TS_MM_COLS;
    }
}

/* im2col of one output pixel into column j when Cin/groups is a multiple of 4: each tap's cg
 * values are cg/4 whole groups of the blocked layout. */
static TS_NOINLINE void im2col_pixel4(const ts_conv_params *params, const ts_dims *input_dims,
                                      const int8_t *src0, const ts_dims *filter_dims, int32_t oh, int32_t ow,
                                      int16_t *cols, int32_t j)
{
    const int32_t cg4 = filter_dims->c >> 2;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    const int32_t off2 = ts_dup16(params->input_offset);
    const int32_t row_bytes = input_dims->w * input_dims->c;
    int16_t *dst = cols + 4 * j;
    int32_t kh, kw;
    for (kh = 0; kh < kh_n; ++kh) {
        const int32_t ih = ih0 + kh * params->dilation.h;
        const int row_ok = ih >= 0 && ih < input_dims->h;
        const int8_t *row = src0 + ih * row_bytes;
        for (kw = 0; kw < kw_n; ++kw) {
            const int32_t iw = iw0 + kw * params->dilation.w;
            const int ok = row_ok && iw >= 0 && iw < input_dims->w;
            col_tap4(dst, ok ? row + iw * input_dims->c : NULL, cg4, off2);
            dst += cg4 * 4 * TS_MM_COLS;
        }
    }
}

/* im2col of TS_MM_COLS output pixels at a time (the last block padded with zero columns), then
 * every output channel of the group against them. */
static void conv_dsp(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                     const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                     const ts_dims *output_dims, int8_t *output, int16_t *cols)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cout = output_dims->c;
    const int32_t rows = cout / groups;
    const int32_t K = filter_dims->h * filter_dims->w * filter_dims->c;
    const int32_t npix = output_dims->h * output_dims->w;
    const int32_t Kc = (filter_dims->c & 3) != 0 ? (K + 3) & ~3 : K; /* column length (see get_buffer_size) */
    int8_t *patch = (filter_dims->c & 3) != 0 ? (int8_t *)(cols + TS_MM_COLS * Kc) : NULL;
    int32_t b, p, g, j;
    for (b = 0; b < input_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * input_dims->c;
        int8_t *batch_output = output + b * npix * cout;
        int32_t oh = 0, ow = 0;
        for (p = 0; p < npix; p += TS_MM_COLS) {
            const int32_t valid = npix - p < TS_MM_COLS ? npix - p : TS_MM_COLS;
            int32_t ohs[TS_MM_COLS], ows[TS_MM_COLS];
            for (j = 0; j < valid; ++j) {
                ohs[j] = oh;
                ows[j] = ow;
                if (++ow == output_dims->w) {
                    ow = 0;
                    ++oh;
                }
            }
            for (g = 0; g < groups; ++g) {
                const int32_t m0 = g * rows;
                for (j = 0; j < TS_MM_COLS; ++j) {
                    if (j < valid && patch == NULL) {
                        im2col_pixel4(params, input_dims, batch_input + g * filter_dims->c, filter_dims, ohs[j],
                                      ows[j], cols, j);
                    } else if (j < valid) {
                        im2col_pixel(params, input_dims, batch_input, filter_dims, g, ohs[j], ows[j], cols, j,
                                     patch);
                    } else if (g == 0) {
                        ts_priv_col_fill(cols, TS_MM_COLS, j, Kc, 0, NULL, Kc, 0);
                    }
                }
                ts_priv_mat_mult_cols(filter + m0 * K, rows, K, Kc, cols, valid, bias != NULL ? bias + m0 : NULL,
                                      quant->multiplier + m0, quant->shift + m0, params->output_offset,
                                      params->act_min, params->act_max, batch_output + p * cout + m0, cout);
            }
        }
    }
}

#endif /* TS_HAVE_DSP */

static void conv_portable(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                          const int8_t *input, const ts_dims *filter_dims, const int8_t *filter,
                          const int32_t *bias, const ts_dims *output_dims, int8_t *output)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cin = input_dims->c, cg = filter_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t rows = cout / groups;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t off = params->input_offset;
    int32_t b, oh, ow, oc, kh, kw, c;
    for (b = 0; b < input_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                int8_t *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                for (oc = 0; oc < cout; ++oc) {
                    const int32_t g = oc / rows;
                    int32_t acc = bias != NULL ? bias[oc] : 0;
                    for (kh = 0; kh < kh_n; ++kh) {
                        const int32_t ih = ih0 + kh * params->dilation.h;
                        if (ih < 0 || ih >= input_dims->h) {
                            continue;
                        }
                        for (kw = 0; kw < kw_n; ++kw) {
                            const int32_t iw = iw0 + kw * params->dilation.w;
                            const int8_t *x;
                            const int8_t *w;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            x = batch_input + (ih * input_dims->w + iw) * cin + g * cg;
                            w = filter + ((oc * kh_n + kh) * kw_n + kw) * cg;
                            for (c = 0; c < cg; ++c) {
                                acc += (x[c] + off) * w[c];
                            }
                        }
                    }
                    out[oc] = ts_requantize_s8_out(acc, quant->multiplier[oc], quant->shift[oc],
                                                   params->output_offset, params->act_min, params->act_max);
                }
            }
        }
    }
}

void ts_conv_s8(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                const ts_dims *output_dims, int8_t *output, void *scratch)
{
#if TS_HAVE_DSP
    if (scratch != NULL && ((uintptr_t)scratch & 3u) == 0) {
        conv_dsp(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output,
                 (int16_t *)scratch);
        return;
    }
#else
    (void)scratch;
#endif
    conv_portable(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output);
}
