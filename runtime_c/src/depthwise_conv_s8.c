/* int8 depthwise 2-D convolution: NHWC, filter [KH, KW, Cout] with Cout = Cin * multiplier. */
#include "tinysplit/kernels.h"

#include "requantize.h"
#include "simd.h"

int32_t ts_depthwise_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                             const ts_dims *filter_dims, const ts_dims *output_dims)
{
    (void)params;
    (void)input_dims;
    (void)output_dims;
#if TS_HAVE_DSP
    /* the taps of four channels, sign-extended: two words per tap */
    return 2 * 4 * filter_dims->h * filter_dims->w;
#else
    (void)filter_dims;
    return 0;
#endif
}

#if TS_HAVE_DSP

/* First valid tap and count along one axis: taps i in [0, k) with 0 <= start + i * dil < size. */
static inline void valid_taps(int32_t start, int32_t dil, int32_t k, int32_t size, int32_t *first, int32_t *count)
{
    int32_t lo = 0, hi = k;
    if (dil == 1) {
        lo = start < 0 ? -start : 0;
        hi = size - start < k ? size - start : k;
    } else {
        while (lo < k && start + lo * dil < 0) {
            ++lo;
        }
        while (hi > lo && start + (hi - 1) * dil >= size) {
            --hi;
        }
    }
    *first = lo;
    *count = hi > lo ? hi - lo : 0;
}

/* What the pixel loops of one group of four channels need, gathered so that they can run with few
 * live variables. */
typedef struct {
    ts_rq q[4];
    int32_t bias[4];
    int32_t folded[4]; /* bias + input_offset * (sum of the channel's weights) */
    const int32_t *wq; /* per tap: sxtb16 of the four weights (channels 0, 2) and of the odd ones (1, 3) */
    int32_t x_row_step, x_step, x_px_step, out_step;
    int32_t off2, zp, act_min, act_max;
    int all_fused; /* every channel takes the fused requantization (ts_rqz) */
    ts_rqz z[4];
} dw_quad;

static inline int8_t dw_out(const dw_quad *k, int32_t i, int32_t acc)
{
    if (k->all_fused) {
        return (int8_t)ts_clamp8(ts_rqz_apply(k->z[i].round, k->z[i].multiplier, k->z[i].sh, acc), k->act_min,
                                 k->act_max);
    }
    return ts_rq_out(&k->q[i], acc, k->zp, k->act_min, k->act_max);
}

static inline void dw_store(const dw_quad *k, int32_t a0, int32_t a1, int32_t a2, int32_t a3, int8_t *out)
{
    out[0] = dw_out(k, 0, a0);
    out[1] = dw_out(k, 1, a1);
    out[2] = dw_out(k, 2, a2);
    out[3] = dw_out(k, 3, a3);
}

/* Four channels of one output pixel over a rectangle of valid taps (nkh x nkw). xp points at the
 * first valid tap in the input; wp at its two sign-extended weight words. */
static TS_NOINLINE void dw_pixel_taps(const dw_quad *k, const int8_t *xp, const int32_t *wp, int32_t nkh,
                                      int32_t nkw, int32_t w_row_step, int8_t *out)
{
    int32_t a0 = k->bias[0], a1 = k->bias[1], a2 = k->bias[2], a3 = k->bias[3];
    int32_t kh, kw;
    for (kh = nkh; kh > 0; --kh) {
        const int8_t *x_row = xp;
        const int32_t *w_row = wp;
        for (kw = nkw; kw > 0; --kw) {
            const int32_t x = ts_load32(x_row);
            const int32_t x02 = ts_sxtab16(k->off2, x), x13 = ts_sxtab16_ror8(k->off2, x);
            const int32_t w02 = w_row[0], w13 = w_row[1];
            a0 = ts_smlabb(x02, w02, a0);
            a2 = ts_smlatt(x02, w02, a2);
            a1 = ts_smlabb(x13, w13, a1);
            a3 = ts_smlatt(x13, w13, a3);
            x_row += k->x_step;
            w_row += 2;
        }
        xp += k->x_row_step;
        wp += w_row_step;
    }
    dw_store(k, a0, a1, a2, a3, out);
}

/* The common case: n consecutive output pixels of a row whose 3x3 windows lie entirely inside the
 * input. The input offset is folded into the accumulator's start (k->folded), so the inputs need
 * only sign extension; the nine taps are unrolled with the weights at fixed offsets. */
static TS_NOINLINE void dw_row_3x3(const dw_quad *k, const int8_t *xp, int8_t *out, int32_t n)
{
    const int32_t *wq = k->wq;
    const int32_t x_step = k->x_step, x_row_step = k->x_row_step;
    for (; n > 0; --n) {
        const int8_t *x = xp;
        int32_t a0 = k->folded[0], a1 = k->folded[1], a2 = k->folded[2], a3 = k->folded[3];
#if TS_DSP_ASM
        /* per tap: v = four inputs, v02 / v their sign-extended even / odd pairs, w02 / w13 the weights */
        int32_t v, v02, w02, w13;
#define TS_DW_TAP(XADDR, WOFF)                                                                      \
    "ldr    %[v], " XADDR "\n\t"                                                                    \
    "ldrd   %[w02], %[w13], [%[wq], #" WOFF "]\n\t"                                                 \
    "sxtb16 %[v02], %[v]\n\t"                                                                       \
    "sxtb16 %[v], %[v], ror #8\n\t"                                                                 \
    "smlabb %[a0], %[v02], %[w02], %[a0]\n\t"                                                       \
    "smlatt %[a2], %[v02], %[w02], %[a2]\n\t"                                                       \
    "smlabb %[a1], %[v], %[w13], %[a1]\n\t"                                                         \
    "smlatt %[a3], %[v], %[w13], %[a3]\n\t"
#define TS_DW_ROW(W0, W1, W2)                                                                       \
    __asm__ volatile(TS_DW_TAP("[%[x]]", W0) TS_DW_TAP("[%[x], %[xs]]", W1)                         \
                         TS_DW_TAP("[%[x], %[xs], lsl #1]", W2)                                     \
                     : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [v] "=&r"(v),    \
                       [v02] "=&r"(v02), [w02] "=&r"(w02), [w13] "=&r"(w13)                         \
                     : [x] "r"(x), [wq] "r"(wq), [xs] "r"(x_step)                                   \
                     : "memory")
        TS_DW_ROW("0", "8", "16");
        x += x_row_step;
        TS_DW_ROW("24", "32", "40");
        x += x_row_step;
        TS_DW_ROW("48", "56", "64");
#undef TS_DW_ROW
#undef TS_DW_TAP
#else
        int32_t r;
        for (r = 0; r < 3; ++r) {
            const int32_t *w = wq + 6 * r;
            int32_t v = ts_load32(x), v02 = ts_sxtb16(v), v13 = ts_sxtb16_ror8(v);
            a0 = ts_smlabb(v02, w[0], a0);
            a2 = ts_smlatt(v02, w[0], a2);
            a1 = ts_smlabb(v13, w[1], a1);
            a3 = ts_smlatt(v13, w[1], a3);
            v = ts_load32(x + x_step);
            v02 = ts_sxtb16(v);
            v13 = ts_sxtb16_ror8(v);
            a0 = ts_smlabb(v02, w[2], a0);
            a2 = ts_smlatt(v02, w[2], a2);
            a1 = ts_smlabb(v13, w[3], a1);
            a3 = ts_smlatt(v13, w[3], a3);
            v = ts_load32(x + 2 * x_step);
            v02 = ts_sxtb16(v);
            v13 = ts_sxtb16_ror8(v);
            a0 = ts_smlabb(v02, w[4], a0);
            a2 = ts_smlatt(v02, w[4], a2);
            a1 = ts_smlabb(v13, w[5], a1);
            a3 = ts_smlatt(v13, w[5], a3);
            x += x_row_step;
        }
#endif
        dw_store(k, a0, a1, a2, a3, out);
        xp += k->x_px_step;
        out += k->out_step;
    }
}

/* Multiplier 1: channels in groups of four (outermost, so that the weights are sign-extended and
 * the requantization prepared once per group); returns the number of channels done. */
static int32_t dw_dsp(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                      const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                      const ts_dims *output_dims, int8_t *output, int32_t *wq)
{
    const int32_t ch = input_dims->c;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t sw = params->stride.w, dw = params->dilation.w;
    const int32_t ow_n = output_dims->w;
    const int is3x3 = kh_n == 3 && kw_n == 3;
    /* output columns whose window lies inside the input horizontally: iw0 >= 0, iw0 + 2 dw < W */
    int32_t ow_in0 = 0, ow_in1 = 0;
    int32_t c, t, i, b, oh, ow;
    dw_quad k;
    k.wq = wq;
    k.x_row_step = params->dilation.h * input_dims->w * ch;
    k.x_step = dw * ch;
    k.x_px_step = sw * ch;
    k.out_step = ch;
    k.off2 = ts_dup16(params->input_offset);
    k.zp = params->output_offset;
    k.act_min = params->act_min;
    k.act_max = params->act_max;
    if (is3x3) {
        ow_in0 = (params->pad.left + sw - 1) / sw;
        ow_in1 = ow_in0;
        while (ow_in1 < ow_n && ow_in1 * sw - params->pad.left + 2 * dw < input_dims->w) {
            ++ow_in1;
        }
    }
    for (c = 0; c + 4 <= ch; c += 4) {
        k.all_fused = 1;
        for (i = 0; i < 4; ++i) {
            k.q[i] = ts_rq_make(quant->multiplier[c + i], quant->shift[c + i]);
            k.all_fused &= ts_rqz_ok(quant->shift[c + i]);
            if (k.all_fused) {
                k.z[i] = ts_rqz_make(quant->multiplier[c + i], quant->shift[c + i], params->output_offset);
            }
            k.bias[i] = k.folded[i] = bias != NULL ? bias[c + i] : 0;
        }
        for (t = 0; t < kh_n * kw_n; ++t) {
            const int8_t *w = filter + t * ch + c;
            wq[2 * t] = ts_sxtb16(ts_load32(w));
            wq[2 * t + 1] = ts_sxtb16_ror8(ts_load32(w));
            for (i = 0; i < 4; ++i) {
                k.folded[i] += params->input_offset * w[i];
            }
        }
        for (b = 0; b < input_dims->n; ++b) {
            const int8_t *batch_input = input + b * input_dims->h * input_dims->w * ch + c;
            int8_t *batch_output = output + b * output_dims->h * ow_n * ch + c;
            for (oh = 0; oh < output_dims->h; ++oh) {
                const int32_t ih0 = oh * params->stride.h - params->pad.top;
                int8_t *out_row = batch_output + oh * ow_n * ch;
                int32_t kh0, nkh;
                valid_taps(ih0, params->dilation.h, kh_n, input_dims->h, &kh0, &nkh);
                for (ow = 0; ow < ow_n; ++ow) {
                    const int32_t iw0 = ow * sw - params->pad.left;
                    int32_t kw0, nkw;
                    if (is3x3 && nkh == 3 && ow == ow_in0 && ow_in1 > ow_in0) {
                        dw_row_3x3(&k, batch_input + (ih0 * input_dims->w + iw0) * ch, out_row + ow * ch,
                                   ow_in1 - ow_in0);
                        ow = ow_in1 - 1;
                        continue;
                    }
                    valid_taps(iw0, dw, kw_n, input_dims->w, &kw0, &nkw);
                    dw_pixel_taps(&k,
                                  batch_input + ((ih0 + kh0 * params->dilation.h) * input_dims->w + iw0 + kw0 * dw) *
                                                    ch,
                                  wq + 2 * (kh0 * kw_n + kw0), nkh, nkw, 2 * kw_n, out_row + ow * ch);
                }
            }
        }
    }
    return c;
}

#endif /* TS_HAVE_DSP */

/* Any multiplier, output channels [oc_begin, oc_end) of one output pixel, plain C. */
static void dw_pixel_portable(const ts_conv_params *params, const ts_channel_quant *quant,
                              const ts_dims *input_dims, const int8_t *batch_input, const ts_dims *filter_dims,
                              const int8_t *filter, const int32_t *bias, int32_t oh, int32_t ow, int32_t oc_begin,
                              int32_t oc_end, int32_t mult, int32_t cout, int8_t *out)
{
    const int32_t cin = input_dims->c;
    const int32_t off = params->input_offset;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    int32_t oc, kh, kw;
    for (oc = oc_begin; oc < oc_end; ++oc) {
        const int32_t ic = oc / mult;
        int32_t acc = bias != NULL ? bias[oc] : 0;
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
                acc += (batch_input[(ih * input_dims->w + iw) * cin + ic] + off) *
                       filter[(kh * filter_dims->w + kw) * cout + oc];
            }
        }
        out[oc] = ts_requantize_s8_out(acc, quant->multiplier[oc], quant->shift[oc], params->output_offset,
                                       params->act_min, params->act_max);
    }
}

void ts_depthwise_conv_s8(const ts_conv_params *params, const ts_channel_quant *quant,
                          const ts_dims *input_dims, const int8_t *input, const ts_dims *filter_dims,
                          const int8_t *filter, const int32_t *bias, const ts_dims *output_dims,
                          int8_t *output, void *scratch)
{
    const int32_t cin = input_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t mult = cin > 0 ? cout / cin : 1;
    int32_t c_done = 0;
    int32_t b, oh, ow;
#if TS_HAVE_DSP
    if (mult == 1 && scratch != NULL && ((uintptr_t)scratch & 3u) == 0) {
        c_done = dw_dsp(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output,
                        (int32_t *)scratch);
    }
#else
    (void)scratch;
#endif
    if (c_done == cout) {
        return;
    }
    for (b = 0; b < input_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            for (ow = 0; ow < output_dims->w; ++ow) {
                int8_t *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                dw_pixel_portable(params, quant, input_dims, batch_input, filter_dims, filter, bias, oh, ow, c_done,
                                  cout, mult, cout, out);
            }
        }
    }
}
