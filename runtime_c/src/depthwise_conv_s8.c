/* int8 depthwise 2-D convolution: NHWC, filter [KH, KW, Cout] with Cout = Cin * multiplier. */
#include "tinysplit/kernels.h"

#include <stddef.h>

#include "requantize.h"
#include "simd.h"

/* Scratch of the DSP build (see the fast path below): the larger of
 * - the general path's: the sign-extended taps of four channels, two words per tap;
 * - the 3x3 fast path's: three words per output column (a table of rows) and two int16 planes of
 *   W + 1 rows of dw_plane_len(OH) values.
 * backends/lower.py (scratch_bytes) gives the same number. */
#if TS_HAVE_DSP

/* int16 values per plane row: the padded input along H that the outputs read, and more */
static int32_t dw_plane_len(int32_t stride_h, int32_t oh)
{
    return (stride_h * oh + 6) & ~1;
}
#endif

int32_t ts_depthwise_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                             const ts_dims *filter_dims, const ts_dims *output_dims)
{
#if TS_HAVE_DSP
    {
        const int32_t general = 2 * 4 * filter_dims->h * filter_dims->w;
        const int32_t fast =
            12 * output_dims->w + 4 * dw_plane_len(params->stride.h, output_dims->h) * (input_dims->w + 1);
        return general > fast ? general : fast;
    }
#else
    (void)params;
    (void)input_dims;
    (void)filter_dims;
    (void)output_dims;
    return 0;
#endif
}

static void dw_pixel_portable(const ts_conv_params *params, const ts_channel_quant *quant,
                              const ts_dims *input_dims, const int8_t *batch_input, const ts_dims *filter_dims,
                              const int8_t *filter, const int32_t *bias, int32_t oh, int32_t ow, int32_t oc_begin,
                              int32_t oc_end, int32_t mult, int32_t cout, int8_t *out);

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
    const int32_t *wq; /* per tap: sxtb16 of the four weights (channels 0, 2) and of the odd ones (1, 3) */
    int32_t x_row_step, x_step;
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
    int32_t c, t, i, b, oh, ow;
    dw_quad k;
    k.wq = wq;
    k.x_row_step = params->dilation.h * input_dims->w * ch;
    k.x_step = dw * ch;
    k.off2 = ts_dup16(params->input_offset);
    k.zp = params->output_offset;
    k.act_min = params->act_min;
    k.act_max = params->act_max;
    for (c = 0; c + 4 <= ch; c += 4) {
        k.all_fused = 1;
        for (i = 0; i < 4; ++i) {
            k.q[i] = ts_rq_make(quant->multiplier[c + i], quant->shift[c + i]);
            k.all_fused &= ts_rqz_ok(quant->shift[c + i]);
            if (k.all_fused) {
                k.z[i] = ts_rqz_make(quant->multiplier[c + i], quant->shift[c + i], params->output_offset);
            }
            k.bias[i] = bias != NULL ? bias[c + i] : 0;
        }
        for (t = 0; t < kh_n * kw_n; ++t) {
            const int8_t *w = filter + t * ch + c;
            wq[2 * t] = ts_sxtb16(ts_load32(w));
            wq[2 * t + 1] = ts_sxtb16_ror8(ts_load32(w));
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

/* ------------------------------------------------------------------------------------------------
 * Fast path: multiplier 1, 3x3 filter, stride 1 or 2 and dilation 1 along H (any stride, dilation
 * and padding along W), one channel at a time.
 *
 * Channels c and c + 1 are copied, sign-extended to int16, into two planes in scratch whose rows
 * are the input's columns (iw) and whose values run along H, with the padding of the top and bottom
 * written out: plane[iw][pad.top + ih] = x[ih][iw]. Padding holds the input's zero point (-input
 * offset), and the input offset times the sum of the weights is folded into the bias, so a padded
 * tap adds nothing and the values need no offset. Row W holds only the zero point: the columns of
 * the left and right padding read it (a per-call table gives each output column's three rows).
 *
 * One output column (fixed ow) is then a run along the plane's rows: output s reads values s, s+1,
 * s+2 of three rows. Four consecutive outputs take three aligned words per row, q0 = (v0, v1),
 * q1 = (v2, v3), q2 = (v4, v5), and the row's weights as two words, a = (w0, w1), b = (w1, w2):
 *   out0 += smlad(q0, a) + q1.lo * b.hi      out1 += q0.hi * a.lo + smlad(q1, b)
 *   out2 += smlad(q1, a) + q2.lo * b.hi      out3 += q1.hi * a.lo + smlad(q2, b)
 * that is 8 multiply instructions for 12 MACs, each row's input words loaded once. With stride 2,
 * output j reads v2j, v2j+1, v2j+2: out_j += smlad((v2j, v2j+1), a) + v2j+2 * b.hi (five words).
 *
 * The weights are doubled and so are the accumulators (|acc| < 2^30: dw_ctx_make bounds the bias),
 * so the requantization (right shift e >= 1, ts_rqz_ok) is ts_rq2's (requantize.h), one SMMLAR:
 *   out = (smmlar(2 acc, m, 2^(e-1) + zp * 2^e) - [acc < 0]) >> e     (then the int8 clamp)
 * A channel outside these bounds (a left shift, a huge bias) runs in plain C. With TS_DSP_ASM a
 * whole channel (its columns, steps of four and last one to three outputs) is one asm loop,
 * dw_channel_asm1 or 2 (the stride), when the clamp is SSAT alone; dw_column is their C version
 * (and the clamped one).
 *
 * Emulated instructions per MAC on Cortex-M4 (bench/kernel_profile.py): DS-CNN's 25x5x64 layers
 * 2.15 (6.94 before this path), 16x16x64 2.25, stride 2 (32x32x32) 2.94; per four outputs the
 * step is 59 instructions: 24 multiplies, 10 loads (weights, inputs, bias), 17 for the
 * requantization (with the LDM of its constants), 8 for the stores and the loop.
 * ------------------------------------------------------------------------------------------------ */

#if defined(__ARM_FEATURE_DSP) && !defined(TS_NO_DSP)
static inline int32_t dw_smlabt(int32_t x, int32_t y, int32_t acc)
{
    return __smlabt(x, y, acc);
}

static inline int32_t dw_smlatb(int32_t x, int32_t y, int32_t acc)
{
    return __smlatb(x, y, acc);
}
#else /* TS_EMULATE_DSP */
static inline int32_t dw_smlabt(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_lo(x) * ts_lane_hi(y)));
}

static inline int32_t dw_smlatb(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_hi(x) * ts_lane_lo(y)));
}
#endif

/* (lo, hi) as two int16 lanes (PKHBT) */
static inline int32_t dw_pack(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16));
}

/* One channel of the fast path: what the column loop reads (the assembly loop at fixed offsets
 * from &multiplier: LDMDB brings os, os3, end and LDM multiplier, round, sh). */
typedef struct {
    int32_t os, os3;     /* output step along a column (OW * C bytes), three times it */
    const int8_t *end;   /* the column's output pointer after its last step of four */
    int32_t multiplier;
    int32_t round;       /* 2^(e-1) + zp * 2^e */
    int32_t sh;          /* e */
    int32_t bias2;       /* 2 * (bias + input_offset * sum of the weights) */
    int32_t wq[6];       /* per plane row k: (2 w0, 2 w1), (2 w1, 2 w2) of filter column k */
    int32_t rem;         /* outputs of a column after its steps of four (0 to 3) */
    /* the channel's columns for dw_channel_asm */
    const int16_t *plane;
    const int32_t *rows; /* per column: the byte offsets in the plane of its three rows */
    int32_t cols;        /* columns left */
    int8_t *out;         /* the next column's first output */
    int32_t cstep;       /* from one column's output to the next's (C) */
    int32_t to_end;      /* from a column's first output to its end */
    int32_t act_min, act_max;
    int32_t stride; /* along H: 1 or 2 */
} dw_ctx;

static inline int32_t dw_requant(const dw_ctx *k, int32_t acc2)
{
    return ts_rq2_apply(k->multiplier, k->round, k->sh, acc2);
}

/* Copies input channel c (x points at it) into plane a, and channel c + 1 into plane b when b is not
 * NULL: a[iw * len + top + ih] = x[ih][iw][c], b[...] = x[ih][iw][c + 1]. */
static TS_NOINLINE void dw_expand(const int8_t *x, int32_t h, int32_t w, int32_t ch, int16_t *a, int16_t *b,
                                  int32_t len, int32_t top)
{
    const int32_t row = w * ch;
    int32_t iw, ih;
#if TS_DSP_ASM
    if (b != NULL) {
        /* a column at a time: the first value alone when top is odd (then the rest is word-aligned),
         * eight at a time, then one at a time; LDRH brings both channels' values */
        int32_t prm[6];
        const int32_t odd = top & 1, groups = (h - odd) >> 3, row3 = 3 * row;
        int32_t n, v0, v1, v2, v3;
        const int8_t *q = x;
        int16_t *da = a + top, *db = b + top;
        prm[0] = groups;
        prm[1] = (h - odd) & 7;
        prm[2] = odd;
        prm[3] = ch - h * row;
        prm[4] = 2 * len - 2 * h;
        prm[5] = w;
#define TS_DW_EXP4                                                                                  \
    "ldrh   %[v0], [%[q]]\n\t"                                                                     \
    "ldrh   %[v1], [%[q], %[row]]\n\t"                                                             \
    "ldrh   %[v2], [%[q], %[row], lsl #1]\n\t"                                                     \
    "ldrh   %[v3], [%[q], %[row3]]\n\t"                                                            \
    "add    %[q], %[q], %[row], lsl #2\n\t"                                                        \
    "pkhbt  %[v0], %[v0], %[v1], lsl #16\n\t"                                                      \
    "pkhbt  %[v2], %[v2], %[v3], lsl #16\n\t"                                                      \
    "sxtb16 %[v1], %[v0]\n\t"                                                                      \
    "sxtb16 %[v0], %[v0], ror #8\n\t"                                                              \
    "sxtb16 %[v3], %[v2]\n\t"                                                                      \
    "sxtb16 %[v2], %[v2], ror #8\n\t"                                                              \
    "strd   %[v1], %[v3], [%[da]], #8\n\t"                                                         \
    "strd   %[v0], %[v2], [%[db]], #8\n\t"
#define TS_DW_EXP1                                                                                  \
    "ldrh   %[v0], [%[q]]\n\t"                                                                     \
    "add    %[q], %[q], %[row]\n\t"                                                                \
    "sxtb16 %[v1], %[v0]\n\t"                                                                      \
    "sxtb16 %[v0], %[v0], ror #8\n\t"                                                              \
    "strh   %[v1], [%[da]], #2\n\t"                                                                \
    "strh   %[v0], [%[db]], #2\n\t"
        __asm__ volatile("0:\n\t"
                         "ldr    %[n], [%[prm], #8]\n\t"
                         "cmp    %[n], #0\n\t"
                         "beq    1f\n\t" TS_DW_EXP1 "1:\n\t"
                         "ldr    %[n], [%[prm]]\n\t"
                         "cmp    %[n], #0\n\t"
                         "beq    3f\n\t"
                         "2:\n\t" TS_DW_EXP4 TS_DW_EXP4 "subs   %[n], %[n], #1\n\t"
                         "bne    2b\n\t"
                         "3:\n\t"
                         "ldr    %[n], [%[prm], #4]\n\t"
                         "cmp    %[n], #0\n\t"
                         "beq    5f\n\t"
                         "4:\n\t" TS_DW_EXP1 "subs   %[n], %[n], #1\n\t"
                         "bne    4b\n\t"
                         "5:\n\t"
                         "ldrd   %[v0], %[v1], [%[prm], #12]\n\t"
                         "add    %[q], %[q], %[v0]\n\t"
                         "add    %[da], %[da], %[v1]\n\t"
                         "add    %[db], %[db], %[v1]\n\t"
                         "ldr    %[n], [%[prm], #20]\n\t"
                         "subs   %[n], %[n], #1\n\t"
                         "str    %[n], [%[prm], #20]\n\t"
                         "bne    0b\n\t"
                         : [q] "+r"(q), [da] "+r"(da), [db] "+r"(db), [n] "=&r"(n), [v0] "=&r"(v0),
                           [v1] "=&r"(v1), [v2] "=&r"(v2), [v3] "=&r"(v3)
                         : [row] "r"(row), [row3] "r"(row3), [prm] "r"(prm)
                         : "cc", "memory");
#undef TS_DW_EXP4
#undef TS_DW_EXP1
        return;
    }
#endif
    for (iw = 0; iw < w; ++iw) {
        const int8_t *q = x + iw * ch;
        int16_t *da = a + iw * len + top;
        if (b != NULL) {
            int16_t *db = b + iw * len + top;
            for (ih = 0; ih < h; ++ih) {
                da[ih] = q[0];
                db[ih] = q[1];
                q += row;
            }
            continue;
        }
        for (ih = h; ih >= 2; ih -= 2) {
            ts_store32(da, dw_pack(q[0], q[row]));
            da += 2;
            q += 2 * row;
        }
        if (ih > 0) {
            da[0] = q[0];
        }
    }
}

/* Four outputs of a column (see above) from the rows r0, r1, r2 at the first one's values (stride 1
 * or 2 along H). */
static inline void dw_step(const int16_t *r0, const int16_t *r1, const int16_t *r2, const dw_ctx *k, int32_t stride,
                           int32_t *acc)
{
    const int16_t *rows[3];
    int32_t a0 = k->bias2, a1 = k->bias2, a2 = k->bias2, a3 = k->bias2, j;
    rows[0] = r0;
    rows[1] = r1;
    rows[2] = r2;
    for (j = 0; j < 3; ++j) {
        const int32_t wa = k->wq[2 * j], wb = k->wq[2 * j + 1];
        const int32_t q0 = ts_load32(rows[j]), q1 = ts_load32(rows[j] + 2), q2 = ts_load32(rows[j] + 4);
        if (stride == 2) {
            const int32_t q3 = ts_load32(rows[j] + 6), q4 = ts_load32(rows[j] + 8);
            a0 = dw_smlabt(q1, wb, ts_smlad(q0, wa, a0));
            a1 = dw_smlabt(q2, wb, ts_smlad(q1, wa, a1));
            a2 = dw_smlabt(q3, wb, ts_smlad(q2, wa, a2));
            a3 = dw_smlabt(q4, wb, ts_smlad(q3, wa, a3));
            continue;
        }
        a0 = dw_smlabt(q1, wb, ts_smlad(q0, wa, a0));
        a1 = ts_smlad(q1, wb, dw_smlatb(q0, wa, a1));
        a2 = dw_smlabt(q2, wb, ts_smlad(q1, wa, a2));
        a3 = ts_smlad(q2, wb, dw_smlatb(q1, wa, a3));
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

#if TS_DSP_ASM
/* The channel loop's pieces (k = &multiplier of the context, see dw_ctx). */
/* a column: its rows from the table, its output, its end; to 2f when it has no step of four */
#define TS_DW_COLUMN                                                                                \
    "0:\n\t"                                                                                       \
    "ldr    %[a0], [%[k], #48]\n\t"                                                                \
    "ldm    %[a0]!, {%[q0], %[q1], %[wb]}\n\t"                                                     \
    "str    %[a0], [%[k], #48]\n\t"                                                                \
    "ldr    %[a1], [%[k], #44]\n\t"                                                                \
    "add    %[p0], %[a1], %[q0]\n\t"                                                               \
    "add    %[p1], %[a1], %[q1]\n\t"                                                               \
    "add    %[p2], %[a1], %[wb]\n\t"                                                               \
    "ldrd   %[o], %[a2], [%[k], #56]\n\t"                                                          \
    "add    %[a2], %[o], %[a2]\n\t"                                                                \
    "str    %[a2], [%[k], #56]\n\t"                                                                \
    "ldr    %[a2], [%[k], #64]\n\t"                                                                \
    "add    %[a2], %[o], %[a2]\n\t"                                                                \
    "str    %[a2], [%[k], #-4]\n\t"                                                                \
    "cmp    %[o], %[a2]\n\t"                                                                       \
    "beq    2f\n\t"
/* acc2 -> int8 in R: (smmlar(acc2, m, round) + [acc2 < 0] * -1) >> e, SSAT (q0, q1, wb: m, round, e) */
#define TS_DW_RQ(R, A)                                                                              \
    "smmlar " R ", " A ", %[q0], %[q1]\n\t"                                                         \
    "add    " R ", " R ", " A ", asr #31\n\t"                                                       \
    "asr    " R ", " R ", %[wb]\n\t"                                                                \
    "ssat   " R ", #8, " R "\n\t"
/* the four accumulators of a step requantized and stored; back to 1b until the column's end */
#define TS_DW_STEP_END                                                                              \
    "ldm    %[k], {%[q0], %[q1], %[wb]}\n\t" /* multiplier, round, sh */                           \
    TS_DW_RQ("%[wa]", "%[a0]") TS_DW_RQ("%[a0]", "%[a1]") TS_DW_RQ("%[a1]", "%[a2]")               \
    TS_DW_RQ("%[a2]", "%[a3]")                                                                      \
    "ldmdb  %[k], {%[q0], %[q1], %[wb]}\n\t" /* os, os3, end */                                    \
    "strb   %[wa], [%[o]]\n\t"                                                                     \
    "strb   %[a0], [%[o], %[q0]]\n\t"                                                              \
    "strb   %[a1], [%[o], %[q0], lsl #1]\n\t"                                                      \
    "strb   %[a2], [%[o], %[q1]]\n\t"                                                              \
    "add    %[o], %[o], %[q0], lsl #2\n\t"                                                         \
    "cmp    %[o], %[wb]\n\t"                                                                       \
    "bne    1b\n\t"
/* a step of four, with the function's TS_DW_ROW: the first row's first multiplies add to the bias
 * (in a3 until its own), then TS_DW_STEP_END */
#define TS_DW_STEP                                                                                  \
    "1:\n\t"                                                                                       \
    "ldr    %[a3], [%[k], #12]\n\t" TS_DW_ROW("p0", "16", "%[a3]", "%[a3]", "%[a3]", "%[a3]")        \
        TS_DW_ROW("p1", "24", "%[a0]", "%[a1]", "%[a2]", "%[a3]")                                  \
            TS_DW_ROW("p2", "32", "%[a0]", "%[a1]", "%[a2]", "%[a3]") TS_DW_STEP_END
/* one output: (v0, v1) . a + v2 * b.hi per row, the rows advancing by STEP bytes; into A0 */
#define TS_DW_ONE_ROW(P, WOFF, STEP)                                                                \
    "ldrd   %[wa], %[wb], [%[k], #" WOFF "]\n\t"                                                   \
    "ldrd   %[q0], %[q1], [%[" P "]]" STEP "\n\t"                                                  \
    "smlad  %[a0], %[q0], %[wa], %[a0]\n\t"                                                        \
    "smlabt %[a0], %[q1], %[wb], %[a0]\n\t"
#define TS_DW_ONE(STEP)                                                                             \
    "ldr    %[a0], [%[k], #12]\n\t" TS_DW_ONE_ROW("p0", "16", STEP) TS_DW_ONE_ROW("p1", "24", STEP)   \
        TS_DW_ONE_ROW("p2", "32", STEP) "ldm    %[k], {%[q0], %[q1], %[wb]}\n\t" TS_DW_RQ("%[wa]", "%[a0]") \
            "strb   %[wa], [%[o]]\n\t"
/* the next column, back to 0b */
#define TS_DW_NEXT                                                                                  \
    "9:\n\t"                                                                                       \
    "ldr    %[a0], [%[k], #52]\n\t"                                                                \
    "subs   %[a0], %[a0], #1\n\t"                                                                  \
    "str    %[a0], [%[k], #52]\n\t"                                                                \
    "bne    0b\n\t"
#define TS_DW_OPERANDS                                                                              \
    : [p0] "=&r"(p0), [p1] "=&r"(p1), [p2] "=&r"(p2), [o] "=&r"(o), [a0] "=&r"(a0), [a1] "=&r"(a1),  \
      [a2] "=&r"(a2), [a3] "=&r"(a3), [wa] "=&r"(wa), [q0] "=&r"(q0), [q1] "=&r"(q1), [wb] "=&r"(wb)  \
    : [k] "r"(base)                                                                                 \
    : "cc", "memory"
/* LDM's register list must ascend: the words it brings live in fixed registers */
#define TS_DW_LOCALS                                                                                \
    register int32_t q0 __asm__("r8");                                                             \
    register int32_t q1 __asm__("r9");                                                             \
    register int32_t wb __asm__("r10");                                                            \
    const int16_t *p0, *p1, *p2;                                                                    \
    int8_t *o;                                                                                      \
    int32_t a0, a1, a2, a3, wa

/* All columns of one channel, stride 1 along H, when the clamp is SSAT alone: per column, the steps
 * of four down to its end (dw_step, the requantization and the stores in one loop), then its last
 * one to three outputs (dw_tail). base = &k->multiplier; k->rows, k->cols and k->out advance. */
static TS_NOINLINE void dw_channel_asm1(const int32_t *base)
{
    TS_DW_LOCALS;
#define TS_DW_ROW(P, WOFF, C0, C1, C2, C3)                                                          \
    "ldrd   %[wa], %[wb], [%[k], #" WOFF "]\n\t"                                                   \
    "ldrd   %[q0], %[q1], [%[" P "]], #8\n\t"                                                      \
    "smlad  %[a0], %[q0], %[wa], " C0 "\n\t"                                                       \
    "smlatb %[a1], %[q0], %[wa], " C1 "\n\t"                                                       \
    "smlabt %[a0], %[q1], %[wb], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[q1], %[wb], %[a1]\n\t"                                                        \
    "ldr    %[q0], [%[" P "]]\n\t"                                                                 \
    "smlad  %[a2], %[q1], %[wa], " C2 "\n\t"                                                       \
    "smlatb %[a3], %[q1], %[wa], " C3 "\n\t"                                                       \
    "smlabt %[a2], %[q0], %[wb], %[a2]\n\t"                                                        \
    "smlad  %[a3], %[q0], %[wb], %[a3]\n\t"
/* the two outputs (v0, v1) . a + v2 * b.hi and v1 * a.lo + (v2, v3) . b of one row */
#define TS_DW_TAIL2(P, WOFF)                                                                        \
    "ldrd   %[wa], %[wb], [%[k], #" WOFF "]\n\t"                                                   \
    "ldrd   %[q0], %[q1], [%[" P "]], #4\n\t"                                                      \
    "smlad  %[a0], %[q0], %[wa], %[a0]\n\t"                                                        \
    "smlatb %[a1], %[q0], %[wa], %[a1]\n\t"                                                        \
    "smlabt %[a0], %[q1], %[wb], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[q1], %[wb], %[a1]\n\t"
    __asm__ volatile(TS_DW_COLUMN TS_DW_STEP
                     /* the last k->rem outputs: two, then one */
                     "2:\n\t"
                     "ldr    %[a3], [%[k], #40]\n\t"
                     "cmp    %[a3], #1\n\t"
                     "blt    9f\n\t"
                     "beq    4f\n\t"
                     "ldr    %[a0], [%[k], #12]\n\t"
                     "mov    %[a1], %[a0]\n\t"
                     TS_DW_TAIL2("p0", "16")
                     TS_DW_TAIL2("p1", "24")
                     TS_DW_TAIL2("p2", "32")
                     "ldm    %[k], {%[q0], %[q1], %[wb]}\n\t"
                     TS_DW_RQ("%[wa]", "%[a0]")
                     TS_DW_RQ("%[a0]", "%[a1]")
                     "ldr    %[q0], [%[k], #-12]\n\t"
                     "strb   %[wa], [%[o]]\n\t"
                     "strb   %[a0], [%[o], %[q0]]\n\t"
                     "add    %[o], %[o], %[q0], lsl #1\n\t"
                     "cmp    %[a3], #3\n\t"
                     "bne    9f\n\t"
                     "4:\n\t"
                     TS_DW_ONE("")
                     TS_DW_NEXT
                     TS_DW_OPERANDS);
#undef TS_DW_ROW
#undef TS_DW_TAIL2
}

/* The same with stride 2 along H: output j of a step reads values 2j, 2j+1, 2j+2 of each row,
 *   out_j += smlad((v2j, v2j+1), a) + v2j+2 * b.hi,
 * five words per row and step; the last outputs one at a time. */
static TS_NOINLINE void dw_channel_asm2(const int32_t *base)
{
    TS_DW_LOCALS;
#define TS_DW_ROW(P, WOFF, C0, C1, C2, C3)                                                          \
    "ldrd   %[wa], %[wb], [%[k], #" WOFF "]\n\t"                                                   \
    "ldrd   %[q0], %[q1], [%[" P "]], #8\n\t"                                                      \
    "smlad  %[a0], %[q0], %[wa], " C0 "\n\t"                                                       \
    "smlabt %[a0], %[q1], %[wb], %[a0]\n\t"                                                        \
    "smlad  %[a1], %[q1], %[wa], " C1 "\n\t"                                                       \
    "ldrd   %[q0], %[q1], [%[" P "]], #8\n\t"                                                      \
    "smlabt %[a1], %[q0], %[wb], %[a1]\n\t"                                                        \
    "smlad  %[a2], %[q0], %[wa], " C2 "\n\t"                                                       \
    "smlabt %[a2], %[q1], %[wb], %[a2]\n\t"                                                        \
    "smlad  %[a3], %[q1], %[wa], " C3 "\n\t"                                                       \
    "ldr    %[q0], [%[" P "]]\n\t"                                                                 \
    "smlabt %[a3], %[q0], %[wb], %[a3]\n\t"
    __asm__ volatile(TS_DW_COLUMN TS_DW_STEP
                     /* the last k->rem outputs, one at a time */
                     "2:\n\t"
                     "ldr    %[a3], [%[k], #40]\n\t"
                     "cmp    %[a3], #0\n\t"
                     "beq    9f\n\t"
                     "3:\n\t"
                     TS_DW_ONE(", #4")
                     "ldr    %[q0], [%[k], #-12]\n\t"
                     "add    %[o], %[o], %[q0]\n\t"
                     "subs   %[a3], %[a3], #1\n\t"
                     "bne    3b\n\t"
                     TS_DW_NEXT
                     TS_DW_OPERANDS);
#undef TS_DW_ROW
}
#undef TS_DW_COLUMN
#undef TS_DW_RQ
#undef TS_DW_STEP_END
#undef TS_DW_STEP
#undef TS_DW_ONE_ROW
#undef TS_DW_ONE
#undef TS_DW_NEXT
#undef TS_DW_OPERANDS
#undef TS_DW_LOCALS

/* dw_channel_asm1/2 read the context at fixed offsets */
typedef char dw_ctx_layout[offsetof(dw_ctx, multiplier) == 12 && offsetof(dw_ctx, bias2) == 24 &&
                                   offsetof(dw_ctx, wq) == 28 && offsetof(dw_ctx, rem) == 52 &&
                                   offsetof(dw_ctx, plane) == 56 && offsetof(dw_ctx, rows) == 60 &&
                                   offsetof(dw_ctx, cols) == 64 && offsetof(dw_ctx, out) == 68 &&
                                   offsetof(dw_ctx, cstep) == 72 && offsetof(dw_ctx, to_end) == 76
                               ? 1
                               : -1];
#endif

/* The accumulators of the one or two outputs at the rows r0, r1, r2 (the second when a1 != NULL). */
static inline void dw_tail(const int16_t *r0, const int16_t *r1, const int16_t *r2, const dw_ctx *k, int32_t *a0,
                           int32_t *a1)
{
    int32_t acc0 = k->bias2, acc1 = k->bias2;
    const int16_t *rows[3];
    int32_t j;
    rows[0] = r0;
    rows[1] = r1;
    rows[2] = r2;
    for (j = 0; j < 3; ++j) {
        const int32_t wa = k->wq[2 * j], wb = k->wq[2 * j + 1];
        const int32_t q0 = ts_load32(rows[j]), q1 = ts_load32(rows[j] + 2);
        acc0 = dw_smlabt(q1, wb, ts_smlad(q0, wa, acc0));
        acc1 = ts_smlad(q1, wb, dw_smlatb(q0, wa, acc1));
    }
    if (a1 != NULL) {
        *a1 = acc1;
    }
    *a0 = acc0;
}

/* n outputs of one column, out[j * os] for j < n, from the rows p0, p1, p2 (at output 0): the C
 * version of dw_channel_asm1/2 for one column, and the clamped one. */
static TS_NOINLINE void dw_column(const int16_t *p0, const int16_t *p1, const int16_t *p2, dw_ctx *k, int8_t *out,
                                  int32_t n, int full)
{
    const int32_t os = k->os, st = k->stride;
    int32_t acc[4], cnt, j;
    for (; n > 0; n -= cnt) {
        if (n >= 4) {
            dw_step(p0, p1, p2, k, st, acc);
            cnt = 4;
        } else if (st == 1 && n >= 2) {
            dw_tail(p0, p1, p2, k, &acc[0], &acc[1]);
            cnt = 2;
        } else {
            dw_tail(p0, p1, p2, k, &acc[0], NULL);
            cnt = 1;
        }
        for (j = 0; j < cnt; ++j) {
            int32_t r = ts_sat8(dw_requant(k, acc[j]));
            if (!full) {
                r = ts_clamp(r, k->act_min, k->act_max);
            }
            out[j * os] = (int8_t)r;
        }
        p0 += st * cnt;
        p1 += st * cnt;
        p2 += st * cnt;
        out += cnt * os;
    }
}

/* Prepares channel c's weights (doubled, as the six words of the column loop) and requantization;
 * 0 when the channel does not fit the fast path (right shift in [1, TS_RQZ_MAX_RIGHT], and
 * |bias| <= 2^29 so that 2 * (bias + input_offset * sum of w + sum of w * x) fits in int32:
 * |input_offset * sum of w| and |sum of w * x| are at most 9 * 128 * 128 each). */
static TS_NOINLINE int dw_ctx_make(const ts_conv_params *params, const ts_channel_quant *quant, const int8_t *filter,
                                   const int32_t *bias, int32_t ch, int32_t c, dw_ctx *k)
{
    const int32_t e = -quant->shift[c];
    const int32_t b = bias != NULL ? bias[c] : 0;
    const int8_t *f = filter + c;
    /* taps kh * 3 + kw; plane row j is filter column kw = j, along it run the taps kh = 0, 1, 2 */
    const int32_t w0 = f[0], w1 = f[ch], w2 = f[2 * ch], w3 = f[3 * ch], w4 = f[4 * ch], w5 = f[5 * ch];
    const int32_t w6 = f[6 * ch], w7 = f[7 * ch], w8 = f[8 * ch];
    const int32_t sum = w0 + w1 + w2 + w3 + w4 + w5 + w6 + w7 + w8;
    if ((uint32_t)(e - 1) >= (uint32_t)TS_RQZ_MAX_RIGHT || b > (1 << 29) || b < -(1 << 29)) {
        return 0;
    }
    k->wq[0] = dw_pack(2 * w0, 2 * w3);
    k->wq[1] = dw_pack(2 * w3, 2 * w6);
    k->wq[2] = dw_pack(2 * w1, 2 * w4);
    k->wq[3] = dw_pack(2 * w4, 2 * w7);
    k->wq[4] = dw_pack(2 * w2, 2 * w5);
    k->wq[5] = dw_pack(2 * w5, 2 * w8);
    k->bias2 = 2 * (b + params->input_offset * sum);
    {
        const ts_rq2 q = ts_rq2_make(quant->multiplier[c], quant->shift[c], params->output_offset);
        k->multiplier = q.multiplier;
        k->round = q.round;
        k->sh = q.sh;
    }
    return 1;
}

static void dw_fast(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                    const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                    const ts_dims *output_dims, int8_t *output, int32_t *scratch)
{
    const int32_t ch = input_dims->c, h = input_dims->h, w = input_dims->w;
    const int32_t oh_n = output_dims->h, ow_n = output_dims->w;
    const int32_t len = dw_plane_len(params->stride.h, oh_n);
    const int full = params->act_min <= TS_INT8_MIN && params->act_max >= TS_INT8_MAX;
    /* scratch: the row table (three words per output column), then two planes (channels c, c + 1) */
    int32_t *rows = scratch;
    int16_t *planes = (int16_t *)(void *)(scratch + 3 * ow_n);
    const int32_t fill = ts_dup16(-params->input_offset);
    int32_t i, b, c, ow;
    dw_ctx k;
    for (i = 0; i < 2 * (w + 1) * len; i += 2) {
        ts_store32(planes + i, fill);
    }
    for (ow = 0; ow < ow_n; ++ow) {
        for (i = 0; i < 3; ++i) {
            const int32_t iw = ow * params->stride.w - params->pad.left + i * params->dilation.w;
            /* byte offsets; columns in the padding read row w, the zero point's */
            rows[3 * ow + i] = 2 * len * ((uint32_t)iw < (uint32_t)w ? iw : w);
        }
    }
    k.os = ow_n * ch;
    k.os3 = 3 * k.os;
    k.rem = oh_n & 3;
    k.cstep = ch;
    k.to_end = (oh_n >> 2) * 4 * k.os;
    k.act_min = params->act_min;
    k.act_max = params->act_max;
    k.stride = params->stride.h;
    for (b = 0; b < input_dims->n; ++b) {
        const int8_t *batch_input = input + b * h * w * ch;
        for (c = 0; c < ch; c += 2) {
            const int32_t pair = c + 1 < ch;
            int32_t j;
            dw_expand(batch_input + c, h, w, ch, planes, pair ? planes + (w + 1) * len : NULL, len, params->pad.top);
            for (j = 0; j <= pair; ++j) {
                int8_t *out = output + b * oh_n * ow_n * ch + c + j;
                const int16_t *plane = planes + j * (w + 1) * len;
                if (!dw_ctx_make(params, quant, filter, bias, ch, c + j, &k)) {
                    /* this channel in plain C */
                    int32_t oh;
                    for (oh = 0; oh < oh_n; ++oh) {
                        for (ow = 0; ow < ow_n; ++ow) {
                            dw_pixel_portable(params, quant, input_dims, batch_input, filter_dims, filter, bias, oh,
                                              ow, c + j, c + j + 1, 1, ch, out - c - j + (oh * ow_n + ow) * ch);
                        }
                    }
                    continue;
                }
#if TS_DSP_ASM
                if (full) {
                    k.plane = plane;
                    k.rows = rows;
                    k.cols = ow_n;
                    k.out = out;
                    if (k.stride == 1) {
                        dw_channel_asm1(&k.multiplier);
                    } else {
                        dw_channel_asm2(&k.multiplier);
                    }
                    continue;
                }
#endif
                for (ow = 0; ow < ow_n; ++ow, out += ch) {
                    const int32_t *r = rows + 3 * ow;
                    dw_column((const int16_t *)(const void *)((const char *)plane + r[0]),
                              (const int16_t *)(const void *)((const char *)plane + r[1]),
                              (const int16_t *)(const void *)((const char *)plane + r[2]), &k, out, oh_n, full);
                }
            }
        }
    }
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
    if (mult == 1 && scratch != NULL && ((uintptr_t)scratch & 3u) == 0 && filter_dims->h == 3 &&
        filter_dims->w == 3 && (params->stride.h == 1 || params->stride.h == 2) && params->dilation.h == 1 &&
        input_dims->h > 0 && input_dims->w > 0 && output_dims->h > 0 && output_dims->w > 0) {
        dw_fast(params, quant, input_dims, input, filter_dims, filter, bias, output_dims, output, (int32_t *)scratch);
        return;
    }
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
