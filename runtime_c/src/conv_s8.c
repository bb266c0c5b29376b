/* int8 2-D convolution, NHWC input/output, OHWI filter, per-output-channel requantization. */
#include "tinysplit/kernels.h"

#include "mat_mult_s8.h"
#include "requantize.h"
#include "simd.h"

#if TS_HAVE_DSP

/* The DSP path's scratch, in this order: the requantization constants (ts_priv_rq_row per output
 * channel; for pre-widened weights ts_priv_pair_rq per pair of a group's rows), the sink of an absent
 * second column (pre-widened weights), ncols im2col columns of Kc int16 values (K = KH * KW * Cin/groups,
 * rounded up to a multiple of 4 when Cin/groups is not one), and then an int8 patch of Kc bytes. */
typedef struct {
    int32_t ncols; /* columns per block */
    int32_t Kc;    /* values per column */
    int32_t sink, cols, patch;        /* byte offsets; the table starts the scratch */
    int32_t pair_table;               /* bytes of one group's ts_priv_pair_rq table */
    int32_t total;
} conv_scratch;

static conv_scratch conv_scratch_layout(const ts_conv_params *params, const ts_dims *filter_dims, int wide)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t pairs = (filter_dims->n / groups + 1) >> 1;
    const int32_t K = filter_dims->h * filter_dims->w * filter_dims->c;
    const int has_patch = (filter_dims->c & 3) != 0;
    conv_scratch s;
    s.ncols = wide ? TS_MM_PAIR_COLS : TS_MM_COLS;
    s.Kc = has_patch ? (K + 3) & ~3 : K;
    s.pair_table = TS_PRIV_PAIR_RQ_BYTES(pairs);
    s.sink = wide ? groups * s.pair_table : (int32_t)sizeof(ts_priv_rq_row) * filter_dims->n;
    s.cols = s.sink + (wide ? (2 * pairs + 3) & ~3 : 0);
    s.patch = s.cols + 2 * s.ncols * s.Kc;
    s.total = s.patch + (has_patch ? s.Kc : 0);
    return s;
}
#endif

static int32_t conv_buffer_size(const ts_conv_params *params, const ts_dims *filter_dims, int wide)
{
#if TS_HAVE_DSP
    return conv_scratch_layout(params, filter_dims, wide).total;
#else
    (void)params;
    (void)filter_dims;
    (void)wide;
    return 0;
#endif
}

int32_t ts_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                   const ts_dims *filter_dims, const ts_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    return conv_buffer_size(params, filter_dims, 0);
}

#if TS_HAVE_DSP

/* n4 groups of four values of one tap into a column of a block of ncols (TS_MM_COLS or
 * TS_MM_PAIR_COLS): v = src + offset (src == NULL: zeros). */
static inline void col_tap4(int16_t *dst, const int8_t *src, int32_t n4, int32_t off2, int32_t ncols)
{
    const int32_t step = 4 * ncols; /* int16 values from one group of a column to the next */
    if (src == NULL) {
        for (; n4 > 0; --n4) {
            ts_store32(dst, 0);
            ts_store32(dst + 2, 0);
            dst += step;
        }
        return;
    }
#if TS_DSP_ASM
    if (n4 >= 4) {
        /* sixteen values per LDM; LDM's register list must ascend, so the words live in fixed registers */
        register int32_t x0 __asm__("r8");
        register int32_t x1 __asm__("r9");
        register int32_t x2 __asm__("r10");
        register int32_t x3 __asm__("r11");
        int32_t lo, hi;
        int32_t n16 = n4 >> 2;
#define TS_COL_WORD(X, STEP)                                                                        \
    "sxtab16 %[lo], %[off2], " X "\n\t"                                                             \
    "sxtab16 %[hi], %[off2], " X ", ror #8\n\t"                                                     \
    "strd    %[lo], %[hi], [%[dst]], #" STEP "\n\t"
#define TS_COL_LOOP(STEP)                                                                           \
    __asm__ volatile("1:\n\t"                                                                        \
                     "ldmia   %[src]!, {%[x0], %[x1], %[x2], %[x3]}\n\t" TS_COL_WORD("%[x0]", STEP)    \
                         TS_COL_WORD("%[x1]", STEP) TS_COL_WORD("%[x2]", STEP) TS_COL_WORD("%[x3]", STEP) \
                     "subs    %[n], %[n], #1\n\t"                                                     \
                     "bne     1b\n\t"                                                                 \
                     : [src] "+r"(src), [dst] "+r"(dst), [n] "+r"(n16), [lo] "=&r"(lo), [hi] "=&r"(hi), \
                       [x0] "=&r"(x0), [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3)                 \
                     : [off2] "r"(off2)                                                             \
                     : "cc", "memory")
        if (ncols == TS_MM_COLS) {
            TS_COL_LOOP("32"); /* bytes from one group of a column to the next: 2 * step */
        } else {
            TS_COL_LOOP("16");
        }
#undef TS_COL_LOOP
#undef TS_COL_WORD
        n4 &= 3;
    }
#endif
    for (; n4 > 0; --n4) {
        const int32_t x = ts_load32(src);
        ts_store32(dst, ts_sxtab16(off2, x));
        ts_store32(dst + 2, ts_sxtab16_ror8(off2, x));
        src += 4;
        dst += step;
    }
}

/* n bytes from src to dst, a word at a time (Armv7E-M loads and stores words at any address) */
static inline void copy_bytes(int8_t *dst, const int8_t *src, int32_t n)
{
    for (; n >= 4; n -= 4, src += 4, dst += 4) {
        ts_store32(dst, ts_load32(src));
    }
    for (; n > 0; --n) {
        *dst++ = *src++;
    }
}

static inline void fill_bytes(int8_t *dst, int8_t value, int32_t n)
{
    const int32_t word = (int32_t)(0x01010101u * (uint8_t)value);
    for (; n >= 4; n -= 4, dst += 4) {
        ts_store32(dst, word);
    }
    for (; n > 0; --n) {
        *dst++ = value;
    }
}

/* im2col of one output pixel (oh, ow) of group g into column j of the blocked column buffer, when
 * Cin/groups is not a multiple of 4: the raw patch is gathered into `patch` first (padding as the
 * input zero point, which becomes 0) and converted in one pass, so that the conversion still runs
 * four values at a time. With one group and no horizontal dilation a kernel row's taps are one run
 * of the input row. */
static void im2col_pixel(const ts_conv_params *params, const ts_dims *input_dims, const int8_t *batch_input,
                         const ts_dims *filter_dims, int32_t group, int32_t oh, int32_t ow, int16_t *cols, int32_t j,
                         int32_t ncols, int8_t *patch)
{
    const int32_t cg = filter_dims->c;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t K = kh_n * kw_n * cg;
    const int32_t Kp = (K + 3) & ~3;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    const int8_t zero_point = (int8_t)(-params->input_offset);
    const int runs = cg == input_dims->c && params->dilation.w == 1;
    int32_t kh, kw, k = 0;
    if (runs && ih0 >= 0 && ih0 + (kh_n - 1) * params->dilation.h < input_dims->h && iw0 >= 0 &&
        iw0 + kw_n <= input_dims->w) {
        /* an interior pixel (the usual case): every kernel row is one whole run */
        const int8_t *src = batch_input + (ih0 * input_dims->w + iw0) * cg;
        const int32_t run = kw_n * cg, step = params->dilation.h * input_dims->w * cg;
        for (kh = 0; kh < kh_n; ++kh, k += run, src += step) {
            copy_bytes(patch + k, src, run);
        }
    } else if (runs) {
        /* at the border: the zero point everywhere, then the in-range part of each in-range kernel row */
        const int32_t lo = iw0 < 0 ? (-iw0 < kw_n ? -iw0 : kw_n) : 0;
        const int32_t hi = input_dims->w - iw0 < kw_n ? input_dims->w - iw0 : kw_n;
        fill_bytes(patch, zero_point, K);
        for (kh = 0; kh < kh_n && hi > lo; ++kh, k += kw_n * cg) {
            const int32_t ih = ih0 + kh * params->dilation.h;
            if (ih >= 0 && ih < input_dims->h) {
                copy_bytes(patch + k + lo * cg, batch_input + (ih * input_dims->w + iw0 + lo) * cg, (hi - lo) * cg);
            }
        }
    } else {
        for (kh = 0; kh < kh_n; ++kh, k += kw_n * cg) {
            const int32_t ih = ih0 + kh * params->dilation.h;
            const int8_t *row = batch_input + ih * input_dims->w * input_dims->c + group * cg;
            for (kw = 0; kw < kw_n; ++kw) {
                const int32_t iw = iw0 + kw * params->dilation.w;
                if (ih >= 0 && ih < input_dims->h && iw >= 0 && iw < input_dims->w) {
                    copy_bytes(patch + k + kw * cg, row + iw * input_dims->c, cg);
                } else {
                    fill_bytes(patch + k + kw * cg, zero_point, cg);
                }
            }
        }
    }
    /* padded to a multiple of 4 with the zero point, which the offset turns into 0 */
    fill_bytes(patch + K, zero_point, Kp - K);
    col_tap4(cols + 4 * j, patch, Kp >> 2, ts_dup16(params->input_offset), ncols);
}

/* im2col of one output pixel into column j when Cin/groups is a multiple of 4: each tap's cg
 * values are cg/4 whole groups of the blocked layout. With one group and no horizontal dilation the
 * in-range taps of a kernel row are one run of the input row and of the column: one call. */
static TS_NOINLINE void im2col_pixel4(const ts_conv_params *params, const ts_dims *input_dims,
                                      const int8_t *src0, const ts_dims *filter_dims, int32_t oh, int32_t ow,
                                      int16_t *cols, int32_t j, int32_t ncols)
{
    const int32_t cg4 = filter_dims->c >> 2;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    const int32_t off2 = ts_dup16(params->input_offset);
    const int32_t row_bytes = input_dims->w * input_dims->c;
    const int32_t tap_step = cg4 * 4 * ncols; /* int16 values from one tap of a column to the next */
    const int runs = filter_dims->c == input_dims->c && params->dilation.w == 1;
    int16_t *dst = cols + 4 * j;
    int32_t kh, kw;
    if (runs && ih0 >= 0 && ih0 + (kh_n - 1) * params->dilation.h < input_dims->h && iw0 >= 0 &&
        iw0 + kw_n <= input_dims->w) {
        /* an interior pixel (the usual case): every kernel row is one whole run */
        const int8_t *src = src0 + ih0 * row_bytes + iw0 * input_dims->c;
        const int32_t step = params->dilation.h * row_bytes;
        for (kh = 0; kh < kh_n; ++kh, dst += kw_n * tap_step, src += step) {
            col_tap4(dst, src, kw_n * cg4, off2, ncols);
        }
        return;
    }
    for (kh = 0; kh < kh_n; ++kh, dst += kw_n * tap_step) {
        const int32_t ih = ih0 + kh * params->dilation.h;
        const int8_t *row = src0 + ih * row_bytes;
        if (ih < 0 || ih >= input_dims->h) {
            col_tap4(dst, NULL, kw_n * cg4, off2, ncols);
        } else if (runs) {
            const int32_t lo = iw0 < 0 ? (-iw0 < kw_n ? -iw0 : kw_n) : 0;
            const int32_t hi = input_dims->w - iw0 < kw_n ? input_dims->w - iw0 : kw_n;
            const int32_t n = hi > lo ? hi - lo : 0;
            if (n < kw_n) {
                col_tap4(dst, NULL, lo * cg4, off2, ncols);
                col_tap4(dst + (lo + n) * tap_step, NULL, (kw_n - lo - n) * cg4, off2, ncols);
            }
            col_tap4(dst + lo * tap_step, row + (iw0 + lo) * input_dims->c, n * cg4, off2, ncols);
        } else {
            for (kw = 0; kw < kw_n; ++kw) {
                const int32_t iw = iw0 + kw * params->dilation.w;
                const int ok = iw >= 0 && iw < input_dims->w;
                col_tap4(dst + kw * tap_step, ok ? row + iw * input_dims->c : NULL, cg4, off2, ncols);
            }
        }
    }
}

/* Group g's table of ts_priv_pair_rq (they start the scratch, pair_table bytes each). */
static ts_priv_pair_rq *pair_rq(int8_t *scratch, int32_t pair_table, int32_t g)
{
    return (ts_priv_pair_rq *)(void *)(scratch + g * pair_table);
}

/* What every block of a conv_dsp call multiplies its columns with. */
typedef struct {
    ts_priv_pairs pairs;    /* pre-widened weights (pairs.w != NULL), for group `group` */
    const int8_t *filter;   /* int8 weights */
    const ts_priv_rq_row *rq_rows;
    int32_t group, rows, K, Kc, cout;
    int8_t *scratch;
    int32_t pair_table;
    const int16_t *wide_filter;
    int fused;
    const ts_conv_params *params;
    const ts_channel_quant *quant;
    const int32_t *bias;
} conv_weights;

/* Group g's rows against the block's `valid` columns, into out (the block's first pixel, row 0 of g). */
static TS_ALWAYS_INLINE void block_matmul(conv_weights *cw, int wide, int32_t g, const int16_t *cols, int32_t valid,
                                          int8_t *out)
{
    const int32_t m0 = g * cw->rows;
    const int32_t *bias = cw->bias != NULL ? cw->bias + m0 : NULL;
    if (!wide) {
        ts_priv_mat_mult_cols(cw->filter + m0 * cw->K, cw->rows, cw->K, cw->Kc, cols, valid, bias,
                              cw->fused ? cw->rq_rows + m0 : NULL, cw->quant->multiplier + m0, cw->quant->shift + m0,
                              cw->params->output_offset, cw->params->act_min, cw->params->act_max, out, cw->cout);
        return;
    }
    if (g != cw->group) {
        cw->group = g;
        cw->pairs.w = cw->wide_filter + g * ((cw->rows + 1) >> 1) * 2 * cw->Kc;
        cw->pairs.rq = cw->fused ? pair_rq(cw->scratch, cw->pair_table, g) : NULL;
        cw->pairs.bias = bias;
        cw->pairs.multiplier = cw->quant->multiplier + m0;
        cw->pairs.shift = cw->quant->shift + m0;
    }
    ts_priv_mat_mult_pairs_wide(&cw->pairs, cols, valid, out);
}

/* im2col of a block of ncols output pixels (the last block padded with zero columns), then every
 * output channel of the group against them: 4 pixels against one int8 weight row at a time, or
 * 2 pixels against a pair of pre-widened rows (mat_mult_s8.h). `wide` is a constant in each caller,
 * so that a build links only the matrix multiplication it uses. */
static TS_ALWAYS_INLINE void conv_dsp(const ts_conv_params *params, const ts_channel_quant *quant,
                                      const ts_dims *input_dims, const int8_t *input, const ts_dims *filter_dims,
                                      const int8_t *filter, const int16_t *wide_filter, const int32_t *bias,
                                      const ts_dims *output_dims, int8_t *output, void *scratch, int wide)
{
    const conv_scratch layout = conv_scratch_layout(params, filter_dims, wide);
    int8_t *base = (int8_t *)scratch;
    int16_t *cols = (int16_t *)(void *)(base + layout.cols);
    int8_t *patch = (filter_dims->c & 3) != 0 ? base + layout.patch : NULL;
    const int32_t ncols = layout.ncols, Kc = layout.Kc;
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cout = output_dims->c, cin = input_dims->c;
    const int32_t rows = cout / groups;
    const int32_t npix = output_dims->h * output_dims->w;
    const int32_t off2 = ts_dup16(params->input_offset);
    conv_weights cw;
    int32_t b, p, g, j;
    cw.filter = filter;
    cw.wide_filter = wide_filter;
    cw.rq_rows = (const ts_priv_rq_row *)(void *)base;
    cw.group = -1;
    cw.rows = rows;
    cw.K = filter_dims->h * filter_dims->w * filter_dims->c;
    cw.Kc = Kc;
    cw.cout = cout;
    cw.scratch = base;
    cw.pair_table = layout.pair_table;
    cw.params = params;
    cw.quant = quant;
    cw.bias = bias;
    cw.fused = 1;
    if (wide) {
        for (g = 0; g < groups; ++g) {
            cw.fused &= ts_priv_pair_rqs(rows, Kc, bias != NULL ? bias + g * rows : NULL,
                                         quant->multiplier + g * rows, quant->shift + g * rows, params->output_offset,
                                         pair_rq(base, layout.pair_table, g));
        }
        cw.pairs.rows = rows;
        cw.pairs.Kc = Kc;
        cw.pairs.output_offset = params->output_offset;
        cw.pairs.act_min = params->act_min;
        cw.pairs.act_max = params->act_max;
        cw.pairs.out_stride = cout;
        cw.pairs.sink = base + layout.sink;
    } else {
        cw.fused = ts_priv_rq_rows(cout, quant->multiplier, quant->shift, params->output_offset,
                                   (ts_priv_rq_row *)(void *)base);
    }
    if (filter_dims->h == 1 && filter_dims->w == 1 && params->stride.h == 1 && params->stride.w == 1 &&
        params->pad.top == 0 && params->pad.left == 0 && params->pad.bottom == 0 && params->pad.right == 0 &&
        groups == 1 && patch == NULL) {
        /* a 1x1 window at stride 1 without padding: the columns are the input pixels, of every batch */
        const int32_t total = input_dims->n * npix;
        for (p = 0; p < total; p += ncols) {
            const int32_t valid = total - p < ncols ? total - p : ncols;
            for (j = 0; j < ncols; ++j) {
                col_tap4(cols + 4 * j, j < valid ? input + (p + j) * cin : NULL, cin >> 2, off2, ncols);
            }
            block_matmul(&cw, wide, 0, cols, valid, output + p * cout);
        }
        return;
    }
    for (b = 0; b < input_dims->n; ++b) {
        const int8_t *batch_input = input + b * input_dims->h * input_dims->w * cin;
        int8_t *batch_output = output + b * npix * cout;
        int32_t oh = 0, ow = 0;
        for (p = 0; p < npix; p += ncols) {
            const int32_t valid = npix - p < ncols ? npix - p : ncols;
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
                for (j = 0; j < ncols; ++j) {
                    if (j < valid && patch == NULL) {
                        im2col_pixel4(params, input_dims, batch_input + g * filter_dims->c, filter_dims, ohs[j],
                                      ows[j], cols, j, ncols);
                    } else if (j < valid) {
                        im2col_pixel(params, input_dims, batch_input, filter_dims, g, ohs[j], ows[j], cols, j, ncols,
                                     patch);
                    } else if (g == 0) {
                        col_tap4(cols + 4 * j, NULL, Kc >> 2, 0, ncols);
                    }
                }
                block_matmul(&cw, wide, g, cols, valid, batch_output + p * cout + g * rows);
            }
        }
    }
}

#endif /* TS_HAVE_DSP */

/* Weight k of row m (of `rows` per conv group) of a pre-widened filter (weight_layout.smlad_weights):
 * per group, pairs of rows of Kp = K rounded up to 4, group by group, the pair's two rows' groups one
 * after the other, in the order 0, 2, 1, 3, doubled. */
static inline int32_t wide_weight(const int16_t *wide_filter, int32_t K, int32_t rows, int32_t m, int32_t k)
{
    static const unsigned char order[4] = {0, 2, 1, 3};
    const int32_t Kp = (K + 3) & ~3;
    const int32_t pairs = (rows + 1) >> 1;
    const int32_t g = m / rows, r = m % rows;
    const int16_t *pair = wide_filter + (g * pairs + (r >> 1)) * 2 * Kp;
    return pair[(k >> 2) * 8 + (r & 1) * 4 + order[k & 3]] / 2;
}

/* `wide` (a constant in each caller) keeps the pre-widened weights' indexing out of the int8 loop */
static TS_ALWAYS_INLINE void conv_portable_loop(const ts_conv_params *params, const ts_channel_quant *quant,
                                                const ts_dims *input_dims, const int8_t *input,
                                                const ts_dims *filter_dims, const int8_t *filter,
                                                const int16_t *wide_filter, const int32_t *bias,
                                                const ts_dims *output_dims, int8_t *output, int wide)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cin = input_dims->c, cg = filter_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t rows = cout / groups;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w;
    const int32_t K = kh_n * kw_n * cg;
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
                            const int32_t k0 = (kh * kw_n + kw) * cg;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            x = batch_input + (ih * input_dims->w + iw) * cin + g * cg;
                            if (!wide) {
                                const int8_t *w = filter + oc * K + k0;
                                for (c = 0; c < cg; ++c) {
                                    acc += (x[c] + off) * w[c];
                                }
                            } else {
                                for (c = 0; c < cg; ++c) {
                                    acc += (x[c] + off) * wide_weight(wide_filter, K, rows, oc, k0 + c);
                                }
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

static TS_ALWAYS_INLINE void conv(const ts_conv_params *params, const ts_channel_quant *quant,
                                  const ts_dims *input_dims, const int8_t *input, const ts_dims *filter_dims,
                                  const int8_t *filter, const int16_t *wide_filter, const int32_t *bias,
                                  const ts_dims *output_dims, int8_t *output, void *scratch, int wide)
{
#if TS_HAVE_DSP
    if (scratch != NULL && ((uintptr_t)scratch & 3u) == 0) {
        conv_dsp(params, quant, input_dims, input, filter_dims, filter, wide_filter, bias, output_dims, output,
                 scratch, wide);
        return;
    }
#else
    (void)scratch;
#endif
    if (wide) {
        conv_portable_loop(params, quant, input_dims, input, filter_dims, NULL, wide_filter, bias, output_dims, output,
                           1);
    } else {
        conv_portable_loop(params, quant, input_dims, input, filter_dims, filter, NULL, bias, output_dims, output, 0);
    }
}

void ts_conv_s8(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                const ts_dims *output_dims, int8_t *output, void *scratch)
{
    conv(params, quant, input_dims, input, filter_dims, filter, NULL, bias, output_dims, output, scratch, 0);
}

int32_t ts_conv_s8_wide_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                        const ts_dims *filter_dims, const ts_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    return conv_buffer_size(params, filter_dims, 1);
}

void ts_conv_s8_wide(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                     const int8_t *input, const ts_dims *filter_dims, const int16_t *filter, const int32_t *bias,
                     const ts_dims *output_dims, int8_t *output, void *scratch)
{
    conv(params, quant, input_dims, input, filter_dims, NULL, filter, bias, output_dims, output, scratch, 1);
}
