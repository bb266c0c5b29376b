/* Private: int8 weights x int16 columns with SMLAD (see mat_mult_s8.h for the column layout). */
#include "mat_mult_s8.h"

#include "requantize.h"

#if TS_HAVE_DSP

static inline int32_t col_pos(int32_t k, int32_t body, int32_t tail, int32_t ncols, int32_t j)
{
    if (k < body) {
        const int32_t r = k & 3;
        return (k >> 2) * 4 * ncols + 4 * j + (((r & 1) << 1) | (r >> 1));
    }
    return ncols * body + j * tail + (k - body);
}

void ts_priv_col_fill(int16_t *cols, int32_t ncols, int32_t j, int32_t K, int32_t k, const int8_t *src,
                      int32_t n, int32_t offset)
{
    const int32_t body = K & ~3;
    const int32_t tail = K & 3;
    const int32_t step = 4 * ncols;
    int32_t i = 0;
    while (i < n && ((k + i) & 3) != 0) {
        cols[col_pos(k + i, body, tail, ncols, j)] = (int16_t)(src != NULL ? src[i] + offset : 0);
        ++i;
    }
    if (i + 4 <= n) {
        /* k + i is a multiple of 4 and k + i + 4 <= K, so whole groups lie in the body */
        int16_t *dst = cols + ((k + i) >> 2) * step + 4 * j;
        if (src != NULL) {
            const int32_t off2 = ts_dup16(offset);
            for (; i + 4 <= n; i += 4) {
                const int32_t x = ts_load32(src + i);
                ts_store32(dst, ts_sxtab16(off2, x));
                ts_store32(dst + 2, ts_sxtab16_ror8(off2, x));
                dst += step;
            }
        } else {
            for (; i + 4 <= n; i += 4) {
                ts_store32(dst, 0);
                ts_store32(dst + 2, 0);
                dst += step;
            }
        }
    }
    for (; i < n; ++i) {
        cols[col_pos(k + i, body, tail, ncols, j)] = (int16_t)(src != NULL ? src[i] + offset : 0);
    }
}

int ts_priv_rq_rows(int32_t rows, const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                    ts_priv_rq_row *rq)
{
    int32_t m;
    for (m = 0; m < rows; ++m) {
        if (!ts_rqz_ok(shift[m])) {
            return 0;
        }
    }
    for (m = 0; m < rows; ++m) {
        const ts_rqz z = ts_rqz_make(multiplier[m], shift[m], output_offset);
        rq[m].round_lo = (uint32_t)((uint64_t)z.round & 0xFFFFFFFFu);
        rq[m].round_hi = (int32_t)(z.round >> 32);
        rq[m].multiplier = z.multiplier;
        rq[m].sh = z.sh;
    }
    return 1;
}

#if TS_DSP_ASM
/* One group of four values of one weight row against the four columns: the weight word is
 * sign-extended once; LDM brings two columns' halves of the group per instruction. */
#define TS_MM_GROUP                                                                                 \
    "ldr    %[p], [%[w]], #4\n\t"                                                                   \
    "ldmia  %[x]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                                                \
    "sxtb16 %[pe], %[p]\n\t"                                                                        \
    "sxtb16 %[p], %[p], ror #8\n\t"                                                                 \
    "smlad  %[a0], %[pe], %[x0], %[a0]\n\t"                                                         \
    "smlad  %[a0], %[p], %[x1], %[a0]\n\t"                                                          \
    "smlad  %[a1], %[pe], %[x2], %[a1]\n\t"                                                         \
    "smlad  %[a1], %[p], %[x3], %[a1]\n\t"                                                          \
    "ldmia  %[x]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                                                \
    "smlad  %[a2], %[pe], %[x0], %[a2]\n\t"                                                         \
    "smlad  %[a2], %[p], %[x1], %[a2]\n\t"                                                          \
    "smlad  %[a3], %[pe], %[x2], %[a3]\n\t"                                                         \
    "smlad  %[a3], %[p], %[x3], %[a3]\n\t"
#endif

#if TS_DSP_ASM
/* The same group with pre-widened weights (two int16 words per group: no sign extension). */
#define TS_MM_GROUP_WIDE                                                                            \
    "ldrd   %[p], %[pe], [%[w]], #8\n\t"                                                            \
    "ldmia  %[x]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                                                \
    "smlad  %[a0], %[p], %[x0], %[a0]\n\t"                                                          \
    "smlad  %[a0], %[pe], %[x1], %[a0]\n\t"                                                         \
    "smlad  %[a1], %[p], %[x2], %[a1]\n\t"                                                          \
    "smlad  %[a1], %[pe], %[x3], %[a1]\n\t"                                                         \
    "ldmia  %[x]!, {%[x0], %[x1], %[x2], %[x3]}\n\t"                                                \
    "smlad  %[a2], %[p], %[x0], %[a2]\n\t"                                                          \
    "smlad  %[a2], %[pe], %[x1], %[a2]\n\t"                                                         \
    "smlad  %[a3], %[p], %[x2], %[a3]\n\t"                                                          \
    "smlad  %[a3], %[pe], %[x3], %[a3]\n\t"
#endif

#if TS_DSP_ASM
/* A dot loop: COUNT iterations of GROUPS (copies of one of the group macros above). LDM's register list
 * must ascend, so the four column words live in fixed registers. */
#define TS_MM_DOT_LOOP(GROUPS, COUNT)                                                                   \
    do {                                                                                            \
        register int32_t x0 __asm__("r8");                                                          \
        register int32_t x1 __asm__("r9");                                                          \
        register int32_t x2 __asm__("r10");                                                         \
        register int32_t x3 __asm__("r11");                                                         \
        int32_t p, pe;                                                                              \
        __asm__ volatile("1:\n\t" GROUPS "subs   %[n], %[n], #1\n\t"                                \
                         "bne    1b\n\t"                                                            \
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w),   \
                           [x] "+r"(x), [n] "+r"(COUNT), [p] "=&r"(p), [pe] "=&r"(pe), [x0] "=&r"(x0),    \
                           [x1] "=&r"(x1), [x2] "=&r"(x2), [x3] "=&r"(x3)                             \
                         :                                                                          \
                         : "cc", "memory");                                                         \
    } while (0)
#endif

/* One group's 8 SMLADs in C: the weight pairs (w0, w2) and (w1, w3) against the 4 columns. */
static TS_ALWAYS_INLINE void mac_group(int32_t pe, int32_t po, const int16_t *x, int32_t *a0, int32_t *a1,
                                       int32_t *a2, int32_t *a3)
{
    *a0 = ts_smlad(po, ts_load32(x + 2), ts_smlad(pe, ts_load32(x), *a0));
    *a1 = ts_smlad(po, ts_load32(x + 6), ts_smlad(pe, ts_load32(x + 4), *a1));
    *a2 = ts_smlad(po, ts_load32(x + 10), ts_smlad(pe, ts_load32(x + 8), *a2));
    *a3 = ts_smlad(po, ts_load32(x + 14), ts_smlad(pe, ts_load32(x + 12), *a3));
}

/* One weight row against TS_MM_COLS = 4 columns, `groups` groups of 4 values, into a0..a3. */
static TS_ALWAYS_INLINE void dot_1x4(const int8_t *w, const int16_t *x, int32_t groups, int32_t *acc0, int32_t *acc1,
                                     int32_t *acc2, int32_t *acc3)
{
    int32_t a0 = *acc0, a1 = *acc1, a2 = *acc2, a3 = *acc3;
#if TS_DSP_ASM
    int32_t quads = groups >> 2;
    if (quads > 0) {
        TS_MM_DOT_LOOP(TS_MM_GROUP TS_MM_GROUP TS_MM_GROUP TS_MM_GROUP, quads);
    }
    groups &= 3;
    if (groups > 0) {
        TS_MM_DOT_LOOP(TS_MM_GROUP, groups);
    }
#else
    for (; groups > 0; --groups, w += 4, x += 16) {
        const int32_t p = ts_load32(w);
        mac_group(ts_sxtb16(p), ts_sxtb16_ror8(p), x, &a0, &a1, &a2, &a3);
    }
#endif
    *acc0 = a0;
    *acc1 = a1;
    *acc2 = a2;
    *acc3 = a3;
}

/* dot_1x4 with the row's weights pre-widened: int16, each group in the columns' order 0, 2, 1, 3. */
static TS_ALWAYS_INLINE void dot_1x4_wide(const int16_t *w, const int16_t *x, int32_t groups, int32_t *acc0,
                                          int32_t *acc1, int32_t *acc2, int32_t *acc3)
{
    int32_t a0 = *acc0, a1 = *acc1, a2 = *acc2, a3 = *acc3;
#if TS_DSP_ASM
    int32_t quads = groups >> 2;
    if (quads > 0) {
        TS_MM_DOT_LOOP(TS_MM_GROUP_WIDE TS_MM_GROUP_WIDE TS_MM_GROUP_WIDE TS_MM_GROUP_WIDE, quads);
    }
    groups &= 3;
    if (groups > 0) {
        TS_MM_DOT_LOOP(TS_MM_GROUP_WIDE, groups);
    }
#else
    for (; groups > 0; --groups, w += 4, x += 16) {
        mac_group(ts_load32(w), ts_load32(w + 2), x, &a0, &a1, &a2, &a3);
    }
#endif
    *acc0 = a0;
    *acc1 = a1;
    *acc2 = a2;
    *acc3 = a3;
}

/* o[0], o[stride], o[2 * stride], o[3 * stride] = v0..v3, through one pointer: in C, GCC turns the
 * four addresses into four induction variables of the row loop, and spills them. */
static TS_ALWAYS_INLINE void store4_strided(int8_t *o, int32_t stride, int32_t v0, int32_t v1, int32_t v2, int32_t v3)
{
#if TS_DSP_ASM
    int8_t *t;
    __asm__ volatile("strb %[v0], [%[o]]\n\t"
                     "strb %[v1], [%[o], %[s]]\n\t"
                     "add  %[t], %[o], %[s], lsl #1\n\t"
                     "strb %[v2], [%[t]]\n\t"
                     "strb %[v3], [%[t], %[s]]\n\t"
                     : [t] "=&r"(t)
                     : [o] "r"(o), [s] "r"(stride), [v0] "r"(v0), [v1] "r"(v1), [v2] "r"(v2), [v3] "r"(v3)
                     : "memory");
#else
    o[0] = (int8_t)v0;
    o[stride] = (int8_t)v1;
    o[2 * stride] = (int8_t)v2;
    o[3 * stride] = (int8_t)v3;
#endif
}

/* The outputs j < valid (a constant 4 on the hot path) of one row with its fused constants. They are
 * copied to locals first: the int8 stores may alias the table, and GCC would reload it after each. */
static TS_ALWAYS_INLINE void store_row4(const ts_priv_rq_row *r, int32_t a0, int32_t a1, int32_t a2, int32_t a3,
                                        int8_t *o, int32_t stride, int full_range, int32_t act_min, int32_t act_max,
                                        int32_t valid)
{
    const int64_t round = (int64_t)(((uint64_t)(uint32_t)r->round_hi << 32) | r->round_lo);
    const int32_t multiplier = r->multiplier, sh = r->sh;
    if (valid == TS_MM_COLS) {
        const int32_t v0 = ts_rqz_apply(round, multiplier, sh, a0);
        const int32_t v1 = ts_rqz_apply(round, multiplier, sh, a1);
        const int32_t v2 = ts_rqz_apply(round, multiplier, sh, a2);
        const int32_t v3 = ts_rqz_apply(round, multiplier, sh, a3);
        if (full_range) {
            store4_strided(o, stride, ts_sat8(v0), ts_sat8(v1), ts_sat8(v2), ts_sat8(v3));
        } else {
            store4_strided(o, stride, ts_clamp8(v0, act_min, act_max), ts_clamp8(v1, act_min, act_max),
                           ts_clamp8(v2, act_min, act_max), ts_clamp8(v3, act_min, act_max));
        }
    } else {
        const int32_t acc[TS_MM_COLS] = {a0, a1, a2, a3};
        int32_t j;
        for (j = 0; j < valid; ++j) {
            o[j * stride] = (int8_t)ts_clamp8(ts_rqz_apply(round, multiplier, sh, acc[j]), act_min, act_max);
        }
    }
}

/* Rows of `row_stride` weights (int8 at w8, or pre-widened int16 at w16 when `wide`), `groups` groups
 * read from each, every row fused: few live variables, so that GCC keeps the row loop in registers. */
static TS_ALWAYS_INLINE void rows_fused_loop(const int8_t *w8, const int16_t *w16, int wide, int32_t row_stride,
                                             int32_t rows, int32_t groups, const int16_t *cols, const int32_t *bias,
                                             const ts_priv_rq_row *rq, int8_t *o, int32_t stride, int full_range,
                                             int32_t act_min, int32_t act_max, int32_t valid)
{
    for (; rows > 0; --rows, ++rq, ++o) {
        const int32_t b = bias != NULL ? *bias++ : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b;
        if (wide) {
            dot_1x4_wide(w16, cols, groups, &a0, &a1, &a2, &a3);
            w16 += row_stride;
        } else {
            dot_1x4(w8, cols, groups, &a0, &a1, &a2, &a3);
            w8 += row_stride;
        }
        store_row4(rq, a0, a1, a2, a3, o, stride, full_range, act_min, act_max, valid);
    }
}

/* The fused rows for `valid` columns: the four-column block specialised, with and without bounds. */
static TS_ALWAYS_INLINE void rows_fused(const int8_t *w8, const int16_t *w16, int wide, int32_t row_stride,
                                        int32_t rows, int32_t groups, const int16_t *cols, const int32_t *bias,
                                        const ts_priv_rq_row *rq, int8_t *o, int32_t stride, int32_t act_min,
                                        int32_t act_max, int32_t valid)
{
    if (valid != TS_MM_COLS) {
        rows_fused_loop(w8, w16, wide, row_stride, rows, groups, cols, bias, rq, o, stride, 0, act_min, act_max,
                        valid);
    } else if (act_min == TS_INT8_MIN && act_max == TS_INT8_MAX) {
        rows_fused_loop(w8, w16, wide, row_stride, rows, groups, cols, bias, rq, o, stride, 1, act_min, act_max,
                        TS_MM_COLS);
    } else {
        rows_fused_loop(w8, w16, wide, row_stride, rows, groups, cols, bias, rq, o, stride, 0, act_min, act_max,
                        TS_MM_COLS);
    }
}

static TS_NOINLINE void rows_fused4(const int8_t *w, int32_t K, int32_t rows, int32_t groups, const int16_t *cols,
                                    const int32_t *bias, const ts_priv_rq_row *rq, int8_t *o, int32_t stride,
                                    int32_t act_min, int32_t act_max, int32_t valid)
{
    rows_fused(w, NULL, 0, K, rows, groups, cols, bias, rq, o, stride, act_min, act_max, valid);
}

static TS_NOINLINE void rows_fused4_wide(const int16_t *w, int32_t Kc, int32_t rows, const int16_t *cols,
                                         const int32_t *bias, const ts_priv_rq_row *rq, int8_t *o, int32_t stride,
                                         int32_t act_min, int32_t act_max, int32_t valid)
{
    rows_fused(NULL, w, 1, Kc, rows, Kc >> 2, cols, bias, rq, o, stride, act_min, act_max, valid);
}

/* The outputs of one row for the columns j < valid, requantized one by one (any shift). */
static void store_row_generic(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t multiplier, int32_t shift,
                              int32_t output_offset, int32_t act_min, int32_t act_max, int8_t *o, int32_t stride,
                              int32_t valid)
{
    const ts_rq q = ts_rq_make(multiplier, shift);
    const int32_t acc[TS_MM_COLS] = {a0, a1, a2, a3};
    int32_t j;
    for (j = 0; j < valid; ++j) {
        o[j * stride] = ts_rq_out(&q, acc[j], output_offset, act_min, act_max);
    }
}

void ts_priv_mat_mult_cols_wide(const int16_t *w, int32_t rows, int32_t Kc, const int16_t *cols, int32_t valid,
                                const int32_t *bias, const ts_priv_rq_row *rq, const int32_t *multiplier,
                                const int32_t *shift, int32_t output_offset, int32_t act_min, int32_t act_max,
                                int8_t *out, int32_t out_stride)
{
    int32_t m;
    if (rq != NULL) {
        rows_fused4_wide(w, Kc, rows, cols, bias, rq, out, out_stride, act_min, act_max, valid);
        return;
    }
    for (m = 0; m < rows; ++m) {
        const int32_t b = bias != NULL ? bias[m] : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b;
        dot_1x4_wide(w + m * Kc, cols, Kc >> 2, &a0, &a1, &a2, &a3);
        store_row_generic(a0, a1, a2, a3, multiplier[m], shift[m], output_offset, act_min, act_max, out + m,
                          out_stride, valid);
    }
}

void ts_priv_mat_mult_cols(const int8_t *w, int32_t rows, int32_t K, int32_t Kc, const int16_t *cols,
                           int32_t valid, const int32_t *bias, const ts_priv_rq_row *rq, const int32_t *multiplier,
                           const int32_t *shift, int32_t output_offset, int32_t act_min, int32_t act_max,
                           int8_t *out, int32_t out_stride)
{
    /* padded columns (Kc > K): a row's last group also reads the first weights of the next row,
     * against the zero values of the padding; only the last row must stop at K */
    const int32_t whole_rows = Kc == K ? rows : rows - 1;
    int32_t m = 0, t;
    if (rq != NULL) {
        rows_fused4(w, K, whole_rows, Kc >> 2, cols, bias, rq, out, out_stride, act_min, act_max, valid);
        m = whole_rows;
    }
    for (; m < rows; ++m) {
        const int8_t *wr = w + m * K;
        const int32_t b = bias != NULL ? bias[m] : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b;
        if (m < whole_rows) {
            dot_1x4(wr, cols, Kc >> 2, &a0, &a1, &a2, &a3);
        } else {
            /* its partial group one value at a time (blocked order 0, 2, 1, 3) */
            const int32_t full = K >> 2;
            const int16_t *g = cols + TS_MM_COLS * 4 * full;
            static const unsigned char pos[4] = {0, 2, 1, 3};
            dot_1x4(wr, cols, full, &a0, &a1, &a2, &a3);
            for (t = 0; t < (K & 3); ++t) {
                const int32_t wv = wr[4 * full + t];
                a0 += wv * g[pos[t]];
                a1 += wv * g[4 + pos[t]];
                a2 += wv * g[8 + pos[t]];
                a3 += wv * g[12 + pos[t]];
            }
        }
        if (rq != NULL) {
            store_row4(rq + m, a0, a1, a2, a3, out + m, out_stride, 0, act_min, act_max, valid);
        } else {
            store_row_generic(a0, a1, a2, a3, multiplier[m], shift[m], output_offset, act_min, act_max, out + m,
                              out_stride, valid);
        }
    }
}

#if TS_DSP_ASM
/* One group of four values of four weight rows (w0, w0 + K, w2, w2 + K) against the column. */
#define TS_MM_GROUP_4X1                                                                             \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t"                                                           \
    "ldr    %[p], [%[w0]], #4\n\t"                                                                  \
    "sxtb16 %[t], %[p]\n\t"                                                                         \
    "smlad  %[a0], %[t], %[x0], %[a0]\n\t"                                                          \
    "sxtb16 %[t], %[p], ror #8\n\t"                                                                 \
    "smlad  %[a0], %[t], %[x1], %[a0]\n\t"                                                          \
    "ldr    %[p], [%[w0], %[next]]\n\t"                                                             \
    "sxtb16 %[t], %[p]\n\t"                                                                         \
    "smlad  %[a1], %[t], %[x0], %[a1]\n\t"                                                          \
    "sxtb16 %[t], %[p], ror #8\n\t"                                                                 \
    "smlad  %[a1], %[t], %[x1], %[a1]\n\t"                                                          \
    "ldr    %[p], [%[w2]], #4\n\t"                                                                  \
    "sxtb16 %[t], %[p]\n\t"                                                                         \
    "smlad  %[a2], %[t], %[x0], %[a2]\n\t"                                                          \
    "sxtb16 %[t], %[p], ror #8\n\t"                                                                 \
    "smlad  %[a2], %[t], %[x1], %[a2]\n\t"                                                          \
    "ldr    %[p], [%[w2], %[next]]\n\t"                                                             \
    "sxtb16 %[t], %[p]\n\t"                                                                         \
    "smlad  %[a3], %[t], %[x0], %[a3]\n\t"                                                          \
    "sxtb16 %[t], %[p], ror #8\n\t"                                                                 \
    "smlad  %[a3], %[t], %[x1], %[a3]\n\t"
#endif

/* Four weight rows (w0, w0 + K, w2 = w0 + 2K, w2 + K) against one column, into a0..a3. */
static TS_ALWAYS_INLINE void dot_4x1(const int8_t *w0, int32_t K, const int16_t *x, int32_t groups, int32_t *acc0,
                                     int32_t *acc1, int32_t *acc2, int32_t *acc3)
{
    const int8_t *w2 = w0 + 2 * K;
    int32_t a0 = *acc0, a1 = *acc1, a2 = *acc2, a3 = *acc3;
#if TS_DSP_ASM
    int32_t pairs = groups >> 1;
    if (pairs > 0) {
        const int32_t next = K - 4; /* the row below, after the post-increment of 4 */
        int32_t p, t, x0, x1;
        __asm__ volatile("1:\n\t" TS_MM_GROUP_4X1 TS_MM_GROUP_4X1
                         "subs   %[n], %[n], #1\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w0] "+r"(w0),
                           [w2] "+r"(w2), [x] "+r"(x), [n] "+r"(pairs), [p] "=&r"(p), [t] "=&r"(t),
                           [x0] "=&r"(x0), [x1] "=&r"(x1)
                         : [next] "r"(next)
                         : "cc", "memory");
    }
    groups &= 1;
#endif
    for (; groups > 0; --groups) {
        const int32_t xa = ts_load32(x), xb = ts_load32(x + 2);
        int32_t p = ts_load32(w0);
        a0 = ts_smlad(ts_sxtb16(p), xa, a0);
        a0 = ts_smlad(ts_sxtb16_ror8(p), xb, a0);
        p = ts_load32(w0 + K);
        a1 = ts_smlad(ts_sxtb16(p), xa, a1);
        a1 = ts_smlad(ts_sxtb16_ror8(p), xb, a1);
        p = ts_load32(w2);
        a2 = ts_smlad(ts_sxtb16(p), xa, a2);
        a2 = ts_smlad(ts_sxtb16_ror8(p), xb, a2);
        p = ts_load32(w2 + K);
        a3 = ts_smlad(ts_sxtb16(p), xa, a3);
        a3 = ts_smlad(ts_sxtb16_ror8(p), xb, a3);
        w0 += 4;
        w2 += 4;
        x += 4;
    }
    *acc0 = a0;
    *acc1 = a1;
    *acc2 = a2;
    *acc3 = a3;
}

void ts_priv_mat_mult_col(const int8_t *w, int32_t rows, int32_t K, const int16_t *col, const int32_t *bias,
                          const int32_t *multiplier, const int32_t *shift, int32_t output_offset, int32_t act_min,
                          int32_t act_max, int8_t *out)
{
    const int32_t groups = K >> 2;
    const int32_t tail = K & 3;
    const int16_t *tails = col + 4 * groups;
    int32_t m = 0, r, t;

    for (; m + 4 <= rows; m += 4) {
        const int8_t *wr = w + m * K;
        int32_t acc[4];
        for (r = 0; r < 4; ++r) {
            acc[r] = bias != NULL ? bias[m + r] : 0;
        }
        dot_4x1(wr, K, col, groups, &acc[0], &acc[1], &acc[2], &acc[3]);
        for (r = 0; r < 4; ++r) {
            const int8_t *wt = wr + r * K + 4 * groups;
            ts_rq q;
            for (t = 0; t < tail; ++t) {
                acc[r] += wt[t] * tails[t];
            }
            q = ts_rq_make(multiplier[m + r], shift[m + r]);
            out[m + r] = ts_rq_out(&q, acc[r], output_offset, act_min, act_max);
        }
    }
    for (; m < rows; ++m) {
        const int8_t *wr = w + m * K;
        const int16_t *x = col;
        int32_t a = bias != NULL ? bias[m] : 0;
        int32_t g;
        ts_rq q;
        for (g = groups; g > 0; --g) {
            const int32_t p = ts_load32(wr);
            a = ts_smlad(ts_sxtb16(p), ts_load32(x), a);
            a = ts_smlad(ts_sxtb16_ror8(p), ts_load32(x + 2), a);
            wr += 4;
            x += 4;
        }
        for (t = 0; t < tail; ++t) {
            a += wr[t] * tails[t];
        }
        q = ts_rq_make(multiplier[m], shift[m]);
        out[m] = ts_rq_out(&q, a, output_offset, act_min, act_max);
    }
}

#if TS_DSP_ASM
/* One group of a block of four pre-widened rows (stored one after the other) against the column. */
#define TS_MM_GROUP_4X1_WIDE                                                                        \
    "ldrd   %[x0], %[x1], [%[x]], #8\n\t"                                                           \
    "ldmia  %[w]!, {%[p0], %[p1], %[p2], %[p3]}\n\t"                                                \
    "smlad  %[a0], %[p0], %[x0], %[a0]\n\t"                                                         \
    "smlad  %[a0], %[p1], %[x1], %[a0]\n\t"                                                         \
    "smlad  %[a1], %[p2], %[x0], %[a1]\n\t"                                                         \
    "smlad  %[a1], %[p3], %[x1], %[a1]\n\t"                                                         \
    "ldmia  %[w]!, {%[p0], %[p1], %[p2], %[p3]}\n\t"                                                \
    "smlad  %[a2], %[p0], %[x0], %[a2]\n\t"                                                         \
    "smlad  %[a2], %[p1], %[x1], %[a2]\n\t"                                                         \
    "smlad  %[a3], %[p2], %[x0], %[a3]\n\t"                                                         \
    "smlad  %[a3], %[p3], %[x1], %[a3]\n\t"
#endif

/* A block of four pre-widened rows (weight_layout.smlad_weights) against one column of `groups`
 * groups; returns the next block. */
static TS_ALWAYS_INLINE const int16_t *dot_4x1_wide(const int16_t *w, const int16_t *x, int32_t groups, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if TS_DSP_ASM
    register int32_t p0 __asm__("r8");
    register int32_t p1 __asm__("r9");
    register int32_t p2 __asm__("r10");
    register int32_t p3 __asm__("r11");
    int32_t x0, x1;
    int32_t pairs = groups >> 1;
    if (pairs > 0) {
        __asm__ volatile("1:\n\t" TS_MM_GROUP_4X1_WIDE TS_MM_GROUP_4X1_WIDE
                         "subs   %[n], %[n], #1\n\t"
                         "bne    1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [x] "+r"(x),
                           [n] "+r"(pairs), [x0] "=&r"(x0), [x1] "=&r"(x1), [p0] "=&r"(p0), [p1] "=&r"(p1),
                           [p2] "=&r"(p2), [p3] "=&r"(p3)
                         :
                         : "cc", "memory");
    }
    groups &= 1;
#endif
    for (; groups > 0; --groups) {
        const int32_t xa = ts_load32(x), xb = ts_load32(x + 2);
        a0 = ts_smlad(ts_load32(w), xa, a0);
        a0 = ts_smlad(ts_load32(w + 2), xb, a0);
        a1 = ts_smlad(ts_load32(w + 4), xa, a1);
        a1 = ts_smlad(ts_load32(w + 6), xb, a1);
        a2 = ts_smlad(ts_load32(w + 8), xa, a2);
        a2 = ts_smlad(ts_load32(w + 10), xb, a2);
        a3 = ts_smlad(ts_load32(w + 12), xa, a3);
        a3 = ts_smlad(ts_load32(w + 14), xb, a3);
        w += 16;
        x += 4;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    return w;
}

void ts_priv_mat_mult_col_wide(const int16_t *w, int32_t rows, int32_t Kc, const int16_t *col, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                               int32_t act_min, int32_t act_max, int8_t *out)
{
    int32_t m, r;
    for (m = 0; m < rows; m += 4) {
        const int32_t n = rows - m < 4 ? rows - m : 4; /* the last block's padding rows are computed, not stored */
        int32_t acc[4] = {0, 0, 0, 0};
        for (r = 0; r < n && bias != NULL; ++r) {
            acc[r] = bias[m + r];
        }
        w = dot_4x1_wide(w, col, Kc >> 2, acc);
        for (r = 0; r < n; ++r) {
            const ts_rq q = ts_rq_make(multiplier[m + r], shift[m + r]);
            out[m + r] = ts_rq_out(&q, acc[r], output_offset, act_min, act_max);
        }
    }
}

#else
typedef int ts_mat_mult_s8_unused; /* ISO C forbids an empty translation unit */
#endif /* TS_HAVE_DSP */
