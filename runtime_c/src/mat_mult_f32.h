/*
 * Private: the float32 kernels' inner loops: the register-blocked matrix multiplications behind
 * ts_conv_f32 and ts_fully_connected_f32, the depthwise column kernel, runs of add and mul, the
 * average pool's channel sums, the activation, and the copies of the convolution's im2col.
 *
 * Packed rows: a weight matrix of M rows (output channels) by K values is stored in blocks of R
 * rows (M rounded up to a multiple of R with rows of zeros); block b holds, for each k in turn, the
 * R values w[bR + 0][k] .. w[bR + R - 1][k]. One VLDM then loads several k of a whole block.
 * The compiler packs them (backends/lower.py, pack_rows_f32): R = TS_F32_CONV_ROWS for a
 * convolution (per group), R = TS_F32_FC_ROWS for a fully connected layer; depthwise filters are
 * packed by pack_depthwise_f32.
 *
 * Every output is bias + w[0] x[0] + w[1] x[1] + ... + w[K-1] x[K-1], summed in that order with one
 * rounding per multiply and per add, by both paths:
 * - Cortex-M with a single-precision FPU (__ARM_FP & 4, Thumb-2): hand-written VLDM/VMLA assembly
 *   (VMLA, not the fused VFMA, so that it rounds as the C path does);
 * - elsewhere, or with TS_NO_F32_ASM: plain C with the same loops (C99 does not contract a * b + c).
 * The two give the same values. (The assembly's ReLU clears every word with its sign bit set, so a
 * -0 becomes +0 where the C path keeps -0, and a NaN with its sign bit set becomes +0.)
 */
#ifndef TINYSPLIT_MAT_MULT_F32_H
#define TINYSPLIT_MAT_MULT_F32_H

#include <stdint.h>

#if defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__) && !defined(TS_NO_F32_ASM)
#define TS_HAVE_F32_ASM 1
#else
#define TS_HAVE_F32_ASM 0
#endif

#define TS_F32_CONV_ROWS 4 /* rows per packed block of a convolution's weights */
#define TS_F32_CONV_COLS 3 /* output pixels per block of the convolution */
#define TS_F32_FC_ROWS 8   /* rows per packed block of a fully connected layer's weights */

/* One call of the convolution's kernel: `blocks` blocks of 4 rows for `pixel_groups` groups of 3
 * pixels (2 and 1: the same with x[0..1] / x[0]). Pixel p's K input values are x[p][0..K); out[p]
 * receives row block j at out[p][4j..4j+3]; then every x[p] advances by x_step bytes and every
 * out[p] by out_step bytes for the next group (the kernel updates them). bias has 4 values per
 * block. ts_priv_gemm4_f32_prepare fills k4, ktail, iterations and skip from K. */
typedef struct {
    const float *x[3];    /* offsets 0, 4, 8 (the assembly reads the layout) */
    int32_t iterations;   /* 12: of 16 k: ceil(K / 16), at least 1 */
    const float *w;       /* 16: packed rows, advances by 4 K values per block */
    const float *bias;    /* 20 */
    int32_t ktail;        /* 24: K % 4 */
    float *out[3];        /* 28, 32, 36 */
    int32_t blocks;       /* 40: >= 1 */
    int32_t skip;         /* 44: groups of 4 k the first iteration leaves out (0..3; 4 when K < 4) */
    int32_t k4;           /* 48: K / 4 */
    int32_t pixel_groups; /* 52: >= 1 (counted down by the assembly) */
    int32_t x_step;       /* 56 */
    int32_t out_step;     /* 60 */
} ts_priv_gemm4x3_f32_args;

static inline void ts_priv_gemm4_f32_prepare(ts_priv_gemm4x3_f32_args *a, int32_t K)
{
    a->k4 = K / 4;
    a->ktail = K % 4;
    a->iterations = a->k4 > 0 ? (a->k4 + 3) / 4 : 1;
    a->skip = a->k4 > 0 ? (4 - a->k4 % 4) % 4 : 4;
    a->pixel_groups = 1;
}

void ts_priv_gemm4x3_f32(ts_priv_gemm4x3_f32_args *a);
void ts_priv_gemm4x2_f32(ts_priv_gemm4x3_f32_args *a);
void ts_priv_gemm4x1_f32(ts_priv_gemm4x3_f32_args *a);

/* One call of the fully connected kernel: `blocks` blocks of 8 rows for one input vector x of K
 * values; block j writes out[8j..8j+7]. */
typedef struct {
    const float *x;    /* 0 */
    int32_t k8;        /* 4: K / 8 */
    const float *w;    /* 8 */
    const float *bias; /* 12 */
    float *out;        /* 16 */
    int32_t blocks;    /* 20: >= 1 */
    int32_t ktail;     /* 24: K % 8 */
    int32_t bias_step; /* 28: 32, or 0 */
} ts_priv_gemm8x1_f32_args;

void ts_priv_gemm8x1_f32(const ts_priv_gemm8x1_f32_args *a);

/* One call of the depthwise kernel (3 kernel rows, stride 1 down the columns): 4 output pixels one
 * below the other, all channel blocks of 4, `passes` kernel columns in turn. Pass i reads, for each
 * channel block, the packed weights w (3 rows x 4 channels, then the next block, then the next
 * column) and the input rows[j] (the 6 input rows of the 4 pixels, each advancing 4 channels per
 * block, so that a row continues at the next column in the next pass). The first pass starts from
 * bias (4 values per block), the others from acc (16 per block); the last writes out[p], the others
 * acc. Per output: bias + sum over columns, then over kernel rows, of w * x. */
typedef struct {
    const float *rows[6]; /* 0..20 */
    const float *w;       /* 24 */
    const float *bias;    /* 28 */
    int32_t passes;       /* 32: >= 1 */
    float *acc;           /* 36 */
    int32_t blocks;       /* 40: channels / 4, >= 1 */
    float *out[4];        /* 44..56 */
} ts_priv_dw3x4_f32_args;

void ts_priv_dw3x4_f32(const ts_priv_dw3x4_f32_args *a);
/* The same for one pixel: rows[0..2], out[0] (acc: 4 per block). */
void ts_priv_dw3x1_f32(const ts_priv_dw3x4_f32_args *a);

/* dst[0..n) = +0.0f (n >= 0). */
void ts_priv_zero_f32(float *dst, int32_t n);

/* y[i] = a[i] + b[i] (or a[i] * b[i]) for i < n; y may be a or b. */
void ts_priv_add_f32(const float *a, const float *b, float *y, int32_t n);
void ts_priv_mul_f32(const float *a, const float *b, float *y, int32_t n);

/* 16 channels of an average pool's window: dst[c] = ((0 + x[cell 0][c]) + x[cell 1][c]) + ... over
 * `rows` rows of `cols` cells; a cell starts col_step bytes after the one before it in its row, and
 * a row row_skip bytes after the end (cols * col_step) of the row before it. */
typedef struct {
    const float *src;  /* 0: channel 0 of the first cell */
    int32_t cols;      /* 4: >= 1 */
    int32_t rows;      /* 8: >= 1 */
    int32_t col_step;  /* 12: bytes */
    int32_t row_skip;  /* 16: bytes from the end of a row (cols * col_step) to the next */
    const float *zero; /* 20: 16 zeros */
    float *dst;        /* 24 */
} ts_priv_sum16_f32_args;

void ts_priv_sum16_f32(const ts_priv_sum16_f32_args *a);

/* data[0..n) = clamp(data, act_min, act_max); nothing for (-inf, +inf). */
void ts_priv_activation_f32(float act_min, float act_max, float *data, int32_t n);

/* rows >= 1 times: dst[0..n) = src[0..n) (no overlap, as bits), then dst += dst_stride and
 * src += src_stride (in floats). */
void ts_priv_copy_rows_f32(float *dst, const float *src, int32_t n, int32_t rows, int32_t dst_stride,
                           int32_t src_stride);

#endif /* TINYSPLIT_MAT_MULT_F32_H */
