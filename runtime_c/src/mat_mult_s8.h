/*
 * Private: the int8 x int16 matrix multiplication at the heart of the DSP paths of ts_conv_s8 and
 * ts_fully_connected_s8, and the "column" layout of its int16 operand.
 *
 * A column is one input vector of K values (an im2col patch, or one row of a fully connected
 * input) with the input offset already added: v = x + input_offset in [-255, 255], as int16.
 * ncols columns (1 or TS_MM_COLS) are stored together, blocked for SMLAD:
 *   - the first 4*(K/4) values in groups of 4: group q holds, for each column j in turn, the four
 *     values v[4q+0], v[4q+2], v[4q+1], v[4q+3] of that column. The two 32-bit words of a column's
 *     group then pair up with sxtb16(w) = (w0, w2) and sxtb16(w ror 8) = (w1, w3) of the four int8
 *     weights loaded as one word, and one LDRD fetches both;
 *   - then the K % 4 tail values of column 0, of column 1, ..., in natural order.
 * Total ncols * K int16 values. The buffer must be 4-byte aligned (LDRD).
 */
#ifndef TINYSPLIT_MAT_MULT_S8_H
#define TINYSPLIT_MAT_MULT_S8_H

#include <stdint.h>

#include "requantize.h"
#include "simd.h"

#define TS_MM_COLS 4 /* columns per block of the convolution's matrix multiplication */

#if TS_HAVE_DSP

/* Writes n consecutive values of column j (of ncols), starting at flat index k:
 * v = src[i] + offset, or 0 for every value when src is NULL (zero padding). */
void ts_priv_col_fill(int16_t *cols, int32_t ncols, int32_t j, int32_t K, int32_t k, const int8_t *src,
                      int32_t n, int32_t offset);

/* A row's fused requantization constants (ts_rqz, requantize.h), as 32-bit words so that a table of
 * them needs only 4-byte alignment. */
typedef struct {
    uint32_t round_lo;
    int32_t round_hi;
    int32_t multiplier;
    int32_t sh;
} ts_priv_rq_row;

/* Fills rq[0..rows) and returns 1 when every row takes the fused requantization (ts_rqz_ok); else 0. */
int ts_priv_rq_rows(int32_t rows, const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                    ts_priv_rq_row *rq);

/* For rows m < rows and columns j < valid (of a block of TS_MM_COLS columns):
 * out[j * out_stride + m] = clamp(requantize(bias[m] + sum_k w[m*K + k] * col_j[k], multiplier[m],
 * shift[m]) + output_offset, act_min, act_max); bias may be NULL. The columns hold Kc values, a
 * multiple of 4 (so no tail section): K, or K rounded up with zeros after the K real ones. rq, from
 * ts_priv_rq_rows, or NULL: the same numbers, faster. */
void ts_priv_mat_mult_cols(const int8_t *w, int32_t rows, int32_t K, int32_t Kc, const int16_t *cols,
                           int32_t valid, const int32_t *bias, const ts_priv_rq_row *rq, const int32_t *multiplier,
                           const int32_t *shift, int32_t output_offset, int32_t act_min, int32_t act_max,
                           int8_t *out, int32_t out_stride);

/* The same for one column (ncols = 1, any K): out[m]. */
void ts_priv_mat_mult_col(const int8_t *w, int32_t rows, int32_t K, const int16_t *col, const int32_t *bias,
                          const int32_t *multiplier, const int32_t *shift, int32_t output_offset, int32_t act_min,
                          int32_t act_max, int8_t *out);

/*
 * The pre-widened conv path (ts_conv_s8_wide): two weight rows against TS_MM_PAIR_COLS = 2 columns.
 * Per group of four values, one LDM brings both rows' int16 weights (4 words) and one LDM both
 * columns' values (4 words), for 8 SMLADs: 10 instructions per 16 MACs. The columns are the layout
 * above with ncols = 2; the weights are weight_layout.smlad_weights's: doubled, rows of Kc values in
 * pairs, each pair group by group, row 0's group then row 1's. The accumulators are therefore 2 * acc,
 * and the requantization is ts_rq2's single SMMLAR.
 */
#define TS_MM_PAIR_COLS 2

/* What the accumulators of one row pair start from and how they end (44 bytes, read by LDM). */
typedef struct {
    int32_t acc[4];     /* 2 * bias of rows 0, 0, 1, 1: the four accumulators (row, column) */
    uint32_t dot_entry; /* where the assembly dot loop starts for this Kc; 0 after the last whole pair */
    ts_rq2 row[2];
} ts_priv_pair_rq;

/* Bytes of the table ts_priv_pair_rqs fills: `pairs` entries, then the accumulators and the zero
 * dot_entry of one more. */
#define TS_PRIV_PAIR_RQ_BYTES(pairs) ((int32_t)sizeof(ts_priv_pair_rq) * (pairs) + 20)

/* Fills rq for the rows' pairs (an odd last row is paired with a zero row) and returns 1 when every
 * row takes ts_rq2 and |acc| < 2^30 holds for Kc values in [-255, 255] times weights in [-128, 127];
 * else 0 (then the kernel requantizes one output at a time). */
int ts_priv_pair_rqs(int32_t rows, int32_t Kc, const int32_t *bias, const int32_t *multiplier, const int32_t *shift,
                     int32_t output_offset, ts_priv_pair_rq *rq);

/* One conv group's rows, the same for every pair of columns (read by the assembly: keep the first
 * three fields first). */
typedef struct {
    const int16_t *w;          /* the group's pre-widened weights */
    const ts_priv_pair_rq *rq; /* from ts_priv_pair_rqs, or NULL: one output at a time */
    int32_t Kc;                /* values per column */
    int32_t rows;
    const int32_t *bias, *multiplier, *shift; /* the group's */
    int32_t output_offset, act_min, act_max;
    int32_t out_stride; /* from one pixel's outputs to the next's */
    int8_t *sink;       /* 2 * ceil(rows / 2) bytes of scratch that an absent second column goes to */
} ts_priv_pairs;

/* For rows m < rows and columns j < valid (1 or 2): out[j * out_stride + m] = the conv output. */
void ts_priv_mat_mult_pairs_wide(const ts_priv_pairs *layer, const int16_t *cols, int32_t valid, int8_t *out);

/* ts_priv_mat_mult_col with the weights pre-widened: rows as above, the rows padded to a multiple of 4
 * and stored in blocks of 4 with the 4 rows' groups one after the other; the column holds Kc values. */
void ts_priv_mat_mult_col_wide(const int16_t *w, int32_t rows, int32_t Kc, const int16_t *col, const int32_t *bias,
                               const int32_t *multiplier, const int32_t *shift, int32_t output_offset,
                               int32_t act_min, int32_t act_max, int8_t *out);

#endif /* TS_HAVE_DSP */

#endif /* TINYSPLIT_MAT_MULT_S8_H */
