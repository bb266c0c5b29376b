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

/* One weight row against TS_MM_COLS = 4 columns, `groups` groups of 4 values: the weight word is
 * loaded and sign-extended once for the four columns; four accumulators. */
static inline void dot_1x4(const int8_t *w, const int16_t *x, int32_t groups, int32_t acc[4])
{
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if TS_DSP_ASM
    int32_t pairs = groups >> 1;
    if (pairs > 0) {
        int32_t p, pe, x0, x1;
        __asm__ volatile(
            "1:\n\t"
            "ldr    %[p], [%[w]], #4\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "sxtb16 %[pe], %[p]\n\t"
            "sxtb16 %[p], %[p], ror #8\n\t"
            "smlad  %[a0], %[pe], %[x0], %[a0]\n\t"
            "smlad  %[a0], %[p], %[x1], %[a0]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a1], %[pe], %[x0], %[a1]\n\t"
            "smlad  %[a1], %[p], %[x1], %[a1]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a2], %[pe], %[x0], %[a2]\n\t"
            "smlad  %[a2], %[p], %[x1], %[a2]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a3], %[pe], %[x0], %[a3]\n\t"
            "smlad  %[a3], %[p], %[x1], %[a3]\n\t"
            "ldr    %[p], [%[w]], #4\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "sxtb16 %[pe], %[p]\n\t"
            "sxtb16 %[p], %[p], ror #8\n\t"
            "smlad  %[a0], %[pe], %[x0], %[a0]\n\t"
            "smlad  %[a0], %[p], %[x1], %[a0]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a1], %[pe], %[x0], %[a1]\n\t"
            "smlad  %[a1], %[p], %[x1], %[a1]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a2], %[pe], %[x0], %[a2]\n\t"
            "smlad  %[a2], %[p], %[x1], %[a2]\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "smlad  %[a3], %[pe], %[x0], %[a3]\n\t"
            "smlad  %[a3], %[p], %[x1], %[a3]\n\t"
            "subs   %[n], %[n], #1\n\t"
            "bne    1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [x] "+r"(x),
              [n] "+r"(pairs), [p] "=&r"(p), [pe] "=&r"(pe), [x0] "=&r"(x0), [x1] "=&r"(x1)
            :
            : "cc", "memory");
    }
    groups &= 1;
#endif
    for (; groups > 0; --groups) {
        const int32_t p = ts_load32(w);
        const int32_t pe = ts_sxtb16(p), po = ts_sxtb16_ror8(p);
        a0 = ts_smlad(pe, ts_load32(x), a0);
        a0 = ts_smlad(po, ts_load32(x + 2), a0);
        a1 = ts_smlad(pe, ts_load32(x + 4), a1);
        a1 = ts_smlad(po, ts_load32(x + 6), a1);
        a2 = ts_smlad(pe, ts_load32(x + 8), a2);
        a2 = ts_smlad(po, ts_load32(x + 10), a2);
        a3 = ts_smlad(pe, ts_load32(x + 12), a3);
        a3 = ts_smlad(po, ts_load32(x + 14), a3);
        w += 4;
        x += 16;
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

void ts_priv_mat_mult_cols(const int8_t *w, int32_t rows, int32_t K, int32_t Kc, const int16_t *cols,
                           int32_t valid, const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                           int32_t output_offset, int32_t act_min, int32_t act_max, int8_t *out, int32_t out_stride)
{
    const int32_t tail = Kc == K ? K & 3 : 0;
    const int16_t *tails = cols + TS_MM_COLS * (Kc - tail);
    int32_t m, j, t;
    for (m = 0; m < rows; ++m) {
        const int8_t *wr = w + m * K;
        const int32_t b = bias != NULL ? bias[m] : 0;
        int32_t acc[TS_MM_COLS] = {b, b, b, b};
        ts_rq q;
        if (Kc == K || m + 1 < rows) {
            /* padded columns: a row's last group also reads the first weights of the next row, against
             * the zero values of the padding */
            dot_1x4(wr, cols, Kc >> 2, acc);
        } else {
            /* the last row stops at K: its partial group one value at a time (blocked order 0, 2, 1, 3) */
            const int32_t full = K >> 2;
            const int16_t *g = cols + TS_MM_COLS * 4 * full;
            static const unsigned char pos[4] = {0, 2, 1, 3};
            dot_1x4(wr, cols, full, acc);
            for (t = 0; t < (K & 3); ++t) {
                const int32_t wv = wr[4 * full + t];
                for (j = 0; j < TS_MM_COLS; ++j) {
                    acc[j] += wv * g[4 * j + pos[t]];
                }
            }
        }
        if (tail != 0) {
            const int8_t *wt = wr + (K - tail);
            int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
            for (t = 0; t < tail; ++t) {
                const int32_t wv = wt[t];
                a0 += wv * tails[t];
                a1 += wv * tails[tail + t];
                a2 += wv * tails[2 * tail + t];
                a3 += wv * tails[3 * tail + t];
            }
            acc[0] = a0;
            acc[1] = a1;
            acc[2] = a2;
            acc[3] = a3;
        }
        if (valid == TS_MM_COLS && ts_rqz_ok(shift[m])) {
            const ts_rqz z = ts_rqz_make(multiplier[m], shift[m], output_offset);
            int8_t *o = out + m;
            o[0] = (int8_t)ts_clamp8(ts_rqz_apply(z.round, z.multiplier, z.sh, acc[0]), act_min, act_max);
            o[out_stride] = (int8_t)ts_clamp8(ts_rqz_apply(z.round, z.multiplier, z.sh, acc[1]), act_min, act_max);
            o[2 * out_stride] =
                (int8_t)ts_clamp8(ts_rqz_apply(z.round, z.multiplier, z.sh, acc[2]), act_min, act_max);
            o[3 * out_stride] =
                (int8_t)ts_clamp8(ts_rqz_apply(z.round, z.multiplier, z.sh, acc[3]), act_min, act_max);
            continue;
        }
        q = ts_rq_make(multiplier[m], shift[m]);
        for (j = 0; j < valid; ++j) {
            out[j * out_stride + m] = ts_rq_out(&q, acc[j], output_offset, act_min, act_max);
        }
    }
}

/* Four weight rows (w0, w0 + K, w2 = w0 + 2K, w2 + K) against one column. */
static inline void dot_4x1(const int8_t *w0, int32_t K, const int16_t *x, int32_t groups, int32_t acc[4])
{
    const int8_t *w2 = w0 + 2 * K;
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
#if TS_DSP_ASM
    if (groups > 0) {
        int32_t n = groups;
        int32_t next = K - 4; /* the row below, after the post-increment of 4 */
        int32_t p, t, x0, x1;
        __asm__ volatile(
            "1:\n\t"
            "ldrd   %[x0], %[x1], [%[x]], #8\n\t"
            "ldr    %[p], [%[w0]], #4\n\t"
            "sxtb16 %[t], %[p]\n\t"
            "smlad  %[a0], %[t], %[x0], %[a0]\n\t"
            "sxtb16 %[t], %[p], ror #8\n\t"
            "smlad  %[a0], %[t], %[x1], %[a0]\n\t"
            "ldr    %[p], [%[w0], %[next]]\n\t"
            "sxtb16 %[t], %[p]\n\t"
            "smlad  %[a1], %[t], %[x0], %[a1]\n\t"
            "sxtb16 %[t], %[p], ror #8\n\t"
            "smlad  %[a1], %[t], %[x1], %[a1]\n\t"
            "ldr    %[p], [%[w2]], #4\n\t"
            "sxtb16 %[t], %[p]\n\t"
            "smlad  %[a2], %[t], %[x0], %[a2]\n\t"
            "sxtb16 %[t], %[p], ror #8\n\t"
            "smlad  %[a2], %[t], %[x1], %[a2]\n\t"
            "ldr    %[p], [%[w2], %[next]]\n\t"
            "sxtb16 %[t], %[p]\n\t"
            "smlad  %[a3], %[t], %[x0], %[a3]\n\t"
            "sxtb16 %[t], %[p], ror #8\n\t"
            "smlad  %[a3], %[t], %[x1], %[a3]\n\t"
            "subs   %[n], %[n], #1\n\t"
            "bne    1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w0] "+r"(w0), [w2] "+r"(w2),
              [x] "+r"(x), [n] "+r"(n), [p] "=&r"(p), [t] "=&r"(t), [x0] "=&r"(x0), [x1] "=&r"(x1)
            : [next] "r"(next)
            : "cc", "memory");
    }
#else
    int32_t g;
    for (g = groups; g > 0; --g) {
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
#endif
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
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
        dot_4x1(wr, K, col, groups, acc);
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

#else
typedef int ts_mat_mult_s8_unused; /* ISO C forbids an empty translation unit */
#endif /* TS_HAVE_DSP */
