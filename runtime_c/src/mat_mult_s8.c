/* Private: int8 weights x int16 columns with SMLAD (see mat_mult_s8.h for the column layout). */
#include "mat_mult_s8.h"

#include <string.h>

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
        /* the weight pairs (w0, w2) and (w1, w3) against the 4 columns */
        const int32_t p = ts_load32(w), pe = ts_sxtb16(p), po = ts_sxtb16_ror8(p);
        a0 = ts_smlad(po, ts_load32(x + 2), ts_smlad(pe, ts_load32(x), a0));
        a1 = ts_smlad(po, ts_load32(x + 6), ts_smlad(pe, ts_load32(x + 4), a1));
        a2 = ts_smlad(po, ts_load32(x + 10), ts_smlad(pe, ts_load32(x + 8), a2));
        a3 = ts_smlad(po, ts_load32(x + 14), ts_smlad(pe, ts_load32(x + 12), a3));
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

/* Rows of K int8 weights, `groups` groups read from each, every row fused: few live variables, so
 * that GCC keeps the row loop in registers. */
static TS_ALWAYS_INLINE void rows_fused_loop(const int8_t *w, int32_t K, int32_t rows, int32_t groups,
                                             const int16_t *cols, const int32_t *bias, const ts_priv_rq_row *rq,
                                             int8_t *o, int32_t stride, int full_range, int32_t act_min,
                                             int32_t act_max, int32_t valid)
{
    for (; rows > 0; --rows, ++rq, ++o, w += K) {
        const int32_t b = bias != NULL ? *bias++ : 0;
        int32_t a0 = b, a1 = b, a2 = b, a3 = b;
        dot_1x4(w, cols, groups, &a0, &a1, &a2, &a3);
        store_row4(rq, a0, a1, a2, a3, o, stride, full_range, act_min, act_max, valid);
    }
}

/* The fused rows for `valid` columns: the four-column block specialised, with and without bounds. */
static TS_NOINLINE void rows_fused4(const int8_t *w, int32_t K, int32_t rows, int32_t groups, const int16_t *cols,
                                    const int32_t *bias, const ts_priv_rq_row *rq, int8_t *o, int32_t stride,
                                    int32_t act_min, int32_t act_max, int32_t valid)
{
    if (valid != TS_MM_COLS) {
        rows_fused_loop(w, K, rows, groups, cols, bias, rq, o, stride, 0, act_min, act_max, valid);
    } else if (act_min == TS_INT8_MIN && act_max == TS_INT8_MAX) {
        rows_fused_loop(w, K, rows, groups, cols, bias, rq, o, stride, 1, act_min, act_max, TS_MM_COLS);
    } else {
        rows_fused_loop(w, K, rows, groups, cols, bias, rq, o, stride, 0, act_min, act_max, TS_MM_COLS);
    }
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

/* ------------------------------------------------------------------------------------------------
 * The pre-widened conv path: row pairs against a pair of columns (mat_mult_s8.h).
 * ------------------------------------------------------------------------------------------------ */

#if TS_DSP_ASM
uint32_t ts_priv_pairs_dot_entry(int32_t groups);
#endif

int ts_priv_pair_rqs(int32_t rows, int32_t Kc, const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                     int32_t output_offset, ts_priv_pair_rq *rq)
{
    /* |acc| <= |bias| + Kc * 255 * 128 must stay below 2^30 (ts_rq2) */
    const int64_t limit = ((int64_t)1 << 30) - (int64_t)Kc * 255 * 128;
    const int32_t pairs = (rows + 1) >> 1;
#if TS_DSP_ASM
    const uint32_t entry = ts_priv_pairs_dot_entry(Kc >> 2);
#else
    const uint32_t entry = 0; /* the C loop does not read it */
#endif
    int32_t m;
    for (m = 0; m < rows; ++m) {
        const int64_t b = bias != NULL ? bias[m] : 0;
        if (!ts_rqz_ok(shift[m]) || b >= limit || -b >= limit) {
            return 0;
        }
    }
    for (m = 0; m < rows; m += 2) {
        ts_priv_pair_rq *e = rq + (m >> 1);
        const int32_t r1 = m + 1 < rows ? m + 1 : m; /* an odd last row: its zero partner copies it */
        e->acc[0] = e->acc[1] = bias != NULL ? 2 * bias[m] : 0;
        e->acc[2] = e->acc[3] = bias != NULL ? 2 * bias[r1] : 0;
        e->dot_entry = m + 1 < rows ? entry : 0; /* the assembly loop runs whole pairs only */
        e->row[0] = ts_rq2_make(multiplier[m], shift[m], output_offset);
        e->row[1] = ts_rq2_make(multiplier[r1], shift[r1], output_offset);
    }
    /* the end: the accumulators and the zero entry of one more pair */
    memset(&rq[pairs], 0, TS_PRIV_PAIR_RQ_BYTES(0));
    return 1;
}

/* acc[2 r + j] += the dot product of row r of the pair at w with column j, over `groups` groups. */
static TS_ALWAYS_INLINE void dot_2x2_wide(const int16_t *w, const int16_t *x, int32_t groups, int32_t acc[4])
{
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    for (; groups > 0; --groups, w += 8, x += 8) {
        const int32_t w0a = ts_load32(w), w0b = ts_load32(w + 2), w1a = ts_load32(w + 4), w1b = ts_load32(w + 6);
        const int32_t x0a = ts_load32(x), x0b = ts_load32(x + 2), x1a = ts_load32(x + 4), x1b = ts_load32(x + 6);
        a00 = ts_smlad(w0b, x0b, ts_smlad(w0a, x0a, a00));
        a01 = ts_smlad(w0b, x1b, ts_smlad(w0a, x1a, a01));
        a10 = ts_smlad(w1b, x0b, ts_smlad(w1a, x0a, a10));
        a11 = ts_smlad(w1b, x1b, ts_smlad(w1a, x1a, a11));
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* `pairs` whole row pairs with their fused constants: rows (2p, 2p + 1) of column 0 to o0[2p..],
 * of column 1 to o1[2p..]. */
static void pairs_fused(const int16_t *w, int32_t pairs, int32_t Kc, const int16_t *cols, const ts_priv_pair_rq *rq,
                        int8_t *o0, int8_t *o1, int32_t act_min, int32_t act_max)
{
    for (; pairs > 0; --pairs, ++rq, w += 2 * Kc, o0 += 2, o1 += 2) {
        int32_t acc[4];
        memcpy(acc, rq->acc, sizeof acc);
        dot_2x2_wide(w, cols, Kc >> 2, acc);
        const ts_rq2 *r0 = &rq->row[0], *r1 = &rq->row[1];
        o0[0] = (int8_t)ts_clamp8(ts_rq2_apply(r0->multiplier, r0->round, r0->sh, acc[0]), act_min, act_max);
        o1[0] = (int8_t)ts_clamp8(ts_rq2_apply(r0->multiplier, r0->round, r0->sh, acc[1]), act_min, act_max);
        o0[1] = (int8_t)ts_clamp8(ts_rq2_apply(r1->multiplier, r1->round, r1->sh, acc[2]), act_min, act_max);
        o1[1] = (int8_t)ts_clamp8(ts_rq2_apply(r1->multiplier, r1->round, r1->sh, acc[3]), act_min, act_max);
    }
}

#if TS_DSP_ASM
/* pairs_fused without the clamp, as assembly: in C, GCC spills the pair loop's pointers around the
 * 14 registers of the dot loop. The dot loop runs 16 groups per pass and is entered part-way (Duff's
 * device) for the groups % 16 of the first pass, so no register is left for a counter: a pass ends
 * when the column pointer reaches cols_end, the pair loop at the table's zero entry. Up to 16 groups
 * (K <= 64) take a copy of the 16 groups without the end test. */
/* out: row 0 of column 0; out1: column 1's outputs minus column 0's, in bytes */
void ts_priv_pairs_fused_asm(const ts_priv_pairs *layer, const int16_t *cols, int8_t *out, int32_t out1);

/* One group: both rows' weights (r4-r7) and both columns' values (r8-r11), 8 SMLADs into r0-r3 =
 * (row 0, column 0), (row 0, column 1), (row 1, column 0), (row 1, column 1); 40 bytes of code. */
#define TS_PAIR_GROUP                                                                               \
    "ldmia.w ip!, {r4, r5, r6, r7}\n\t"                                                             \
    "ldmia.w lr!, {r8, r9, r10, r11}\n\t"                                                           \
    "smlad   r0, r4, r8, r0\n\t"                                                                    \
    "smlad   r0, r5, r9, r0\n\t"                                                                    \
    "smlad   r1, r4, r10, r1\n\t"                                                                   \
    "smlad   r1, r5, r11, r1\n\t"                                                                   \
    "smlad   r2, r6, r8, r2\n\t"                                                                    \
    "smlad   r2, r7, r9, r2\n\t"                                                                    \
    "smlad   r3, r6, r10, r3\n\t"                                                                   \
    "smlad   r3, r7, r11, r3\n\t"
#define TS_PAIR_GROUP4 TS_PAIR_GROUP TS_PAIR_GROUP TS_PAIR_GROUP TS_PAIR_GROUP

/* The assembler checks that 16 groups are 640 bytes (every instruction of a group has a 32-bit
 * encoding); clang's integrated assembler cannot evaluate the check, GNU as does. */
#if defined(__clang__)
#define TS_PAIRS_640(SIZE)
#else
#define TS_PAIRS_640(SIZE)                                                                          \
    ".if " SIZE " != 640\n\t"                                                                       \
    ".error \"a group must be 40 bytes: ts_priv_pairs_dot_entry counts on it\"\n\t"                \
    ".endif\n\t"
#endif

/* acc A (r0..r3) -> int8 with multiplier M, round R, shift SH (ts_rq2); r10 scratch */
#define TS_PAIR_RQ(A, M, R, SH)                                                                     \
    "add     r10, " R ", " A ", asr #31\n\t"                                                        \
    "smmlar  " A ", " A ", " M ", r10\n\t"                                                          \
    "asr     " A ", " A ", " SH "\n\t"                                                              \
    "ssat    " A ", #8, " A "\n\t"

/* ts_priv_pairs_dot_entry(groups): the dot loop's entry for `groups` groups, Thumb bit set.
 * ts_priv_pairs_fused_asm's frame (after the push): [sp] rq, #4 out, #8 out1, #12 cols, #16 cols_end. */
__asm__(".syntax unified\n\t"
        ".thumb\n\t"
        ".pushsection .text.ts_priv_pairs_fused_asm, \"ax\", %progbits\n\t"
        ".balign 4\n\t"
        ".global ts_priv_pairs_dot_entry\n\t"
        ".type   ts_priv_pairs_dot_entry, %function\n\t"
        ".thumb_func\n"
        "ts_priv_pairs_dot_entry:\n\t"
        /* up to 16 groups: the single pass, 16 - groups groups in; more: the loop, (15 - (groups - 1) % 16)
         * groups in */
        "cmp     r0, #16\n\t"
        "ite     le\n\t"
        "adrle   r1, .Lts_pairs_once\n\t"
        "adrgt   r1, .Lts_pairs_dot\n\t"
        "sub     r0, r0, #1\n\t"
        "and     r0, r0, #15\n\t"
        "rsb     r0, r0, #15\n\t"
        "mov     r2, #40\n\t"
        "mla     r0, r0, r2, r1\n\t"
        "orr     r0, r0, #1\n\t"
        "bx      lr\n\t"
        ".size   ts_priv_pairs_dot_entry, . - ts_priv_pairs_dot_entry\n\t"
        ".balign 4\n\t"
        ".global ts_priv_pairs_fused_asm\n\t"
        ".type   ts_priv_pairs_fused_asm, %function\n\t"
        ".thumb_func\n"
        "ts_priv_pairs_fused_asm:\n\t"
        "push    {r4-r11, lr}\n\t"
        "sub     sp, #28\n\t"
        "ldr     ip, [r0]\n\t"      /* w */
        "ldrd    lr, r4, [r0, #4]\n\t" /* rq, Kc */
        "add     r5, r1, r4, lsl #2\n\t" /* cols_end: a pair of columns is 4 * Kc bytes */
        "strd    r2, r3, [sp, #4]\n\t"
        "strd    r1, r5, [sp, #12]\n\t"
        "ldmia   lr!, {r0-r3, r6}\n\t" /* the first pair's accumulators and dot entry */
        "str     lr, [sp]\n\t"
        "ldr     lr, [sp, #12]\n\t"
        "bx      r6\n\t"
        ".balign 4\n"
        ".Lts_pairs_dot:\n\t"
        TS_PAIR_GROUP4 TS_PAIR_GROUP4 TS_PAIR_GROUP4 TS_PAIR_GROUP4
        ".Lts_pairs_dot_end:\n\t"
        TS_PAIRS_640(".Lts_pairs_dot_end - .Lts_pairs_dot")
        "ldr     r4, [sp, #16]\n\t"
        "cmp     lr, r4\n\t"
        "bne     .Lts_pairs_dot\n\t"
        "b       .Lts_pairs_rq\n\t"
        /* the same 16 groups for a single pass: no end test (the usual case, K <= 64) */
        ".Lts_pairs_once:\n\t"
        TS_PAIR_GROUP4 TS_PAIR_GROUP4 TS_PAIR_GROUP4 TS_PAIR_GROUP4
        ".Lts_pairs_rq:\n\t"
        TS_PAIRS_640(".Lts_pairs_rq - .Lts_pairs_once")
        "ldr     lr, [sp]\n\t"
        "ldmia   lr!, {r4-r9}\n\t"
        TS_PAIR_RQ("r0", "r4", "r5", "r6")
        TS_PAIR_RQ("r1", "r4", "r5", "r6")
        TS_PAIR_RQ("r2", "r7", "r8", "r9")
        TS_PAIR_RQ("r3", "r7", "r8", "r9")
        "bfi     r0, r2, #8, #8\n\t"
        "bfi     r1, r3, #8, #8\n\t"
        "ldrd    r4, r5, [sp, #4]\n\t"
        "strh    r1, [r4, r5]\n\t"
        "strh    r0, [r4], #2\n\t"
        "ldmia   lr!, {r0-r3, r6}\n\t" /* the next pair's */
        "str     lr, [sp]\n\t"
        "str     r4, [sp, #4]\n\t"
        "cbz     r6, .Lts_pairs_done\n\t"
        "ldr     lr, [sp, #12]\n\t"
        "bx      r6\n"
        ".Lts_pairs_done:\n\t"
        "add     sp, #28\n\t"
        "pop     {r4-r11, pc}\n\t"
        ".size   ts_priv_pairs_fused_asm, . - ts_priv_pairs_fused_asm\n\t"
        ".popsection");
#endif

#if TS_DSP_ASM
/* x[0..n) clamped to [lo, hi]: four at a time with SSUB8 (per-byte GE flags) and SEL. */
static void clamp_s8(int8_t *x, int32_t n, int32_t lo, int32_t hi)
{
    const int32_t lo4 = (int32_t)(0x01010101u * (uint8_t)lo), hi4 = (int32_t)(0x01010101u * (uint8_t)hi);
    for (; n >= 4; n -= 4, x += 4) {
        int32_t v = ts_load32(x), t;
        __asm__("ssub8 %[t], %[v], %[lo]\n\t"
                "sel   %[v], %[v], %[lo]\n\t"
                "ssub8 %[t], %[hi], %[v]\n\t"
                "sel   %[v], %[v], %[hi]"
                : [v] "+r"(v), [t] "=&r"(t)
                : [lo] "r"(lo4), [hi] "r"(hi4)
                : "cc");
        ts_store32(x, v);
    }
    for (; n > 0; --n, ++x) {
        *x = (int8_t)ts_clamp(*x, lo, hi);
    }
}
#endif

/* Every row pair, one output at a time: for constants outside ts_rq2 (a left shift, a huge bias). */
static void pairs_generic(const int16_t *w, int32_t rows, int32_t Kc, const int16_t *cols, int32_t valid,
                          const int32_t *bias, const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                          int32_t act_min, int32_t act_max, int8_t *out, int32_t out_stride)
{
    int32_t m, r, j;
    for (m = 0; m < rows; m += 2, w += 2 * Kc) {
        int32_t acc[4] = {0, 0, 0, 0};
        dot_2x2_wide(w, cols, Kc >> 2, acc);
        for (r = 0; r < 2 && m + r < rows; ++r) {
            for (j = 0; j < valid; ++j) {
                /* the weights are doubled: acc is even (and the sum of K products stays inside int32) */
                const int32_t a = (acc[2 * r + j] >> 1) + (bias != NULL ? bias[m + r] : 0);
                out[j * out_stride + m + r] = ts_requantize_s8_out(a, multiplier[m + r], shift[m + r], output_offset,
                                                                   act_min, act_max);
            }
        }
    }
}

void ts_priv_mat_mult_pairs_wide(const ts_priv_pairs *layer, const int16_t *cols, int32_t valid, int8_t *out)
{
    const ts_priv_pairs *L = layer;
    const int32_t pairs = L->rows >> 1;
    int8_t *out1 = valid == TS_MM_PAIR_COLS ? out + L->out_stride : L->sink;
    if (L->rq == NULL) {
        pairs_generic(L->w, L->rows, L->Kc, cols, valid, L->bias, L->multiplier, L->shift, L->output_offset,
                      L->act_min, L->act_max, out, L->out_stride);
        return;
    }
    if (pairs > 0) {
#if TS_DSP_ASM
        ts_priv_pairs_fused_asm(L, cols, out, (int32_t)((uintptr_t)out1 - (uintptr_t)out));
        if (L->act_min != TS_INT8_MIN || L->act_max != TS_INT8_MAX) {
            clamp_s8(out, 2 * pairs, L->act_min, L->act_max);
            clamp_s8(out1, 2 * pairs, L->act_min, L->act_max);
        }
#else
        pairs_fused(L->w, pairs, L->Kc, cols, L->rq, out, out1, L->act_min, L->act_max);
#endif
    }
    if (L->rows & 1) {
        /* the last row, paired with a zero row */
        int8_t col0[2], col1[2];
        pairs_fused(L->w + pairs * 2 * L->Kc, 1, L->Kc, cols, L->rq + pairs, col0, col1, L->act_min, L->act_max);
        out[2 * pairs] = col0[0];
        if (valid == TS_MM_PAIR_COLS) {
            out[L->out_stride + 2 * pairs] = col1[0];
        }
    }
}

#else
typedef int ts_mat_mult_s8_unused; /* ISO C forbids an empty translation unit */
#endif /* TS_HAVE_DSP */
