/*
 * tinysplit C runtime: the kernels generated model code calls.
 *
 * Conventions (CMSIS-NN style):
 * - Activations are channels-last (NHWC); rank-4 dims are given as ts_dims {n, h, w, c}.
 * - One function per kernel variant; parameters in small structs; every kernel that needs
 *   scratch memory has a *_get_buffer_size companion returning bytes (0 when none is needed).
 *   The caller hands scratch in from the static arena; kernels never allocate. Scratch must be
 *   4-byte aligned. The sizes depend on the build: only the Armv7E-M DSP paths (cores with
 *   __ARM_FEATURE_DSP: Cortex-M4/M7/M33...) use scratch; elsewhere every size is 0. A kernel given
 *   NULL (or misaligned) scratch falls back to its plain C path: correct, only slower.
 *   With DSP, in bytes (K = KH * KW * Cin/groups):
 *     ts_conv_s8 (and _wide):  16 * Cout + 8 * K; 16 * Cout + 9 * Kp with Kp = (K + 3) & ~3 when (Cin/groups) % 4 != 0
 *     ts_depthwise_conv_s8:  max(8 * KH * KW, 12 * OW + 8 * ((SH * OH + 6) / 2) * (W + 1)) (W: input width, SH: stride along H)
 *     ts_fully_connected_s8: 2 * depth (_wide: 2 * Kp, Kp = (depth + 3) & ~3)
 *   The float32 convolutions use scratch on every build (their C paths run the same blocked loops):
 *     ts_conv_f32:           12 * K, or 0 for a 1x1 window without padding (it reads the input in place)
 *     ts_depthwise_conv_f32: 4 * (KW + 4) * C when KH = 3, stride_h = 1, no dilation, Cout = Cin and
 *                            C % 4 == 0; else 0
 * - int8 numerics are specified by tinysplit/compiler/quant.py and must agree bit for bit:
 *   requantize(acc, m, s) = rdiv_pot(high_mul(acc << max(s,0), m), max(-s,0)),
 *   high_mul(a, m) = (a * m + 2^30) >> 31 on 64 bits, rdiv_pot rounds half away from zero.
 * - offsets are added to the stored value: input_offset = -zero_point(input),
 *   output_offset = +zero_point(output).
 */
#ifndef TINYSPLIT_KERNELS_H
#define TINYSPLIT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "tinysplit/platform.h" /* ts_platform_random: generated code fills ts_noise_s8's bytes with it */

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int32_t n, h, w, c;
} ts_dims;

typedef struct {
    int32_t h, w;
} ts_hw;

/* (named ts_padding, not ts_pad: ts_pad is the constant-padding function below) */
typedef struct {
    int32_t top, left, bottom, right;
} ts_padding;

/* Per-output-channel requantization, arrays of length c (output channels). */
typedef struct {
    const int32_t *multiplier;
    const int32_t *shift;
} ts_channel_quant;

/* ---------------------------------------------------------------- convolution (int8) */

typedef struct {
    int32_t input_offset;  /* -zero_point of the input */
    int32_t output_offset; /* +zero_point of the output */
    ts_hw stride;
    ts_hw dilation;
    ts_padding pad;
    int32_t groups; /* ts_conv_s8: any divisor of input and output channels (each group runs the
                       fast path); ts_depthwise_conv_s8 ignores it */
    int32_t act_min, act_max;
} ts_conv_params;

/* filter_dims = {Cout, KH, KW, Cin/groups}; filter data in that order (OHWI). */
int32_t ts_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                   const ts_dims *filter_dims, const ts_dims *output_dims);
void ts_conv_s8(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                const int8_t *input, const ts_dims *filter_dims, const int8_t *filter, const int32_t *bias,
                const ts_dims *output_dims, int8_t *output, void *scratch);

/* ts_conv_s8 with the weights pre-widened for SMLAD (tinysplit/passes/weight_layout.py): int16, doubled
 * (2w), each row of K = KH*KW*Cin/groups weights padded with zeros to Kp = (K + 3) & ~3, each group of
 * four in the order 0, 2, 1, 3; per conv group, its rows in pairs (a zero row after an odd last one),
 * each pair group by group, the first row's group then the second's; 4-byte aligned. Twice the weight
 * flash, fewer instructions per MAC; the same results. */
int32_t ts_conv_s8_wide_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                        const ts_dims *filter_dims, const ts_dims *output_dims);
void ts_conv_s8_wide(const ts_conv_params *params, const ts_channel_quant *quant, const ts_dims *input_dims,
                     const int8_t *input, const ts_dims *filter_dims, const int16_t *filter, const int32_t *bias,
                     const ts_dims *output_dims, int8_t *output, void *scratch);

/* Depthwise: groups == input channels, output channels = input channels * multiplier
 * (output channel c reads input channel c / multiplier; multiplier 1 is the fast path).
 * filter_dims = {1, KH, KW, Cout}; filter data channel-last (HWC), as TFLite. */
int32_t ts_depthwise_conv_s8_get_buffer_size(const ts_conv_params *params, const ts_dims *input_dims,
                                             const ts_dims *filter_dims, const ts_dims *output_dims);
void ts_depthwise_conv_s8(const ts_conv_params *params, const ts_channel_quant *quant,
                          const ts_dims *input_dims, const int8_t *input, const ts_dims *filter_dims,
                          const int8_t *filter, const int32_t *bias, const ts_dims *output_dims,
                          int8_t *output, void *scratch);

/* ---------------------------------------------------------------- fully connected (int8) */

typedef struct {
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min, act_max;
} ts_fc_params;

/* input [batches, depth], filter [units, depth] row-major, bias [units] or NULL. */
int32_t ts_fully_connected_s8_get_buffer_size(const ts_fc_params *params, int32_t depth, int32_t units);
void ts_fully_connected_s8(const ts_fc_params *params, const ts_channel_quant *quant, int32_t batches,
                           int32_t depth, int32_t units, const int8_t *input, const int8_t *filter,
                           const int32_t *bias, int8_t *output, void *scratch);

/* ts_fully_connected_s8 with the weights pre-widened (tinysplit/passes/weight_layout.py): int16, each
 * row of depth weights padded with zeros to a multiple of 4, each group of four in the order 0, 2, 1, 3
 * (not doubled); zero rows to a multiple of 4, stored in blocks of 4 rows, each group of the block's
 * 4 rows one after the other; 4-byte aligned. */
int32_t ts_fully_connected_s8_wide_get_buffer_size(const ts_fc_params *params, int32_t depth, int32_t units);
void ts_fully_connected_s8_wide(const ts_fc_params *params, const ts_channel_quant *quant, int32_t batches,
                                int32_t depth, int32_t units, const int8_t *input, const int16_t *filter,
                                const int32_t *bias, int8_t *output, void *scratch);

/* ---------------------------------------------------------------- elementwise (int8) */

/* Broadcasting over rank <= 4: out_dims are the output's, a_strides/b_strides are element
 * strides of each operand per output dim (0 where that operand is broadcast). */
typedef struct {
    int32_t a_offset, b_offset; /* -zero_points */
    int32_t a_multiplier, a_shift, b_multiplier, b_shift; /* add only (see quant.add_params) */
    int32_t out_multiplier, out_shift;
    int32_t output_offset;
    int32_t act_min, act_max;
} ts_elementwise_params;

void ts_add_s8(const ts_elementwise_params *params, const int32_t out_dims[4], const int32_t a_strides[4],
               const int32_t b_strides[4], const int8_t *a, const int8_t *b, int8_t *output);
void ts_mul_s8(const ts_elementwise_params *params, const int32_t out_dims[4], const int32_t a_strides[4],
               const int32_t b_strides[4], const int8_t *a, const int8_t *b, int8_t *output);

/* y = table[x + 128]: sigmoid, tanh and any other unary int8 function (tables from quant.py). */
void ts_lookup_s8(const int8_t table[256], int32_t size, const int8_t *input, int8_t *output);
void ts_clip_s8(int32_t act_min, int32_t act_max, int32_t size, const int8_t *input, int8_t *output);
/* y = clamp(requantize(x + input_offset, m, s) + output_offset) */
void ts_requantize_s8(int32_t input_offset, int32_t multiplier, int32_t shift, int32_t output_offset,
                      int32_t size, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------- pooling (int8) */

typedef struct {
    ts_hw kernel;
    ts_hw stride;
    ts_padding pad;
    int32_t count_include_pad; /* average pooling only */
    int32_t act_min, act_max;
    int32_t input_zero_point; /* average pooling with count_include_pad: padded cells count as this value */
} ts_pool_params;

/* Input and output share one quantization; average rounds half away from zero. */
void ts_max_pool_s8(const ts_pool_params *params, const ts_dims *input_dims, const int8_t *input,
                    const ts_dims *output_dims, int8_t *output);
void ts_avg_pool_s8(const ts_pool_params *params, const ts_dims *input_dims, const int8_t *input,
                    const ts_dims *output_dims, int8_t *output);

/* ---------------------------------------------------------------- softmax (int8) */

/* Over the last axis (rows x depth). exp_table[k] = exp(-s_x * k) * 2^20 (quant.softmax_exp_table);
 * y = sat8(output_offset + round_half_up(exp_table[max - x] * out_multiplier / (sum << 16))),
 * i.e. floor((2 E m + S 2^16) / (2 S 2^16)) with E = exp_table[max - x], S = sum of E (64-bit). */
void ts_softmax_s8(const int32_t exp_table[256], int32_t out_multiplier, int32_t output_offset, int32_t rows,
                   int32_t depth, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------- noise at the cut (int8) */

/* The rounded noise law as a CDF over integers (quant.noise_table): n = min_value + #{i : cdf[i] <= u}. */
typedef struct {
    int32_t min_value;   /* -K */
    int32_t table_size;  /* 2K >= 2 entries, nondecreasing */
    const uint32_t *cdf;
} ts_noise_params;

/* y = sat8(x + n), element j drawing n from the little-endian word u = random[4j..4j+3]; random
 * holds 4 * size bytes from ts_platform_random (tinysplit/platform.h). The work per element does
 * not depend on u: a fixed number of table probes, no branch on the noise. Elementwise: a caller may
 * run a long tensor in pieces, each with the next bytes of the stream. input == output is allowed. */
void ts_noise_s8(const ts_noise_params *params, const uint8_t *random, int32_t size, const int8_t *input,
                 int8_t *output);

/* ---------------------------------------------------------------- quantize / dequantize */

/* ONNX QuantizeLinear: round half to even, saturate to int8. */
void ts_quantize_f32_s8(float scale, int32_t zero_point, int32_t size, const float *input, int8_t *output);
void ts_dequantize_s8_f32(float scale, int32_t zero_point, int32_t size, const int8_t *input, float *output);

/* ---------------------------------------------------------------- float32 kernels */

typedef struct {
    ts_hw stride;
    ts_hw dilation;
    ts_padding pad;
    int32_t groups;
    float act_min, act_max;
} ts_conv_f32_params;

/* filter_dims = {Cout, KH, KW, Cin/groups}, but the filter data is packed for the register-blocked
 * kernels: per group, its M = Cout/groups rows in blocks of 4 (M rounded up to a multiple of 4 with
 * rows of zeros), block j holding for each k = (kh * KW + kw) * Cin/groups + c in turn the four values
 * w[4j + 0..3][k] (backends/lower.py pack_rows_f32 with 4 rows). Scratch: see the top of this file. */
int32_t ts_conv_f32_get_buffer_size(const ts_conv_f32_params *params, const ts_dims *input_dims,
                                    const ts_dims *filter_dims, const ts_dims *output_dims);
void ts_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                 const ts_dims *filter_dims, const float *filter, const float *bias, const ts_dims *output_dims,
                 float *output, void *scratch);
/* filter_dims = {1, KH, KW, Cout}; the filter data is packed: for each kw, each block of 4 output
 * channels (Cout rounded up to a multiple of 4 with zeros), each kh, the block's 4 weights
 * (lower.py pack_depthwise_f32). Scratch: see the top of this file. */
int32_t ts_depthwise_conv_f32_get_buffer_size(const ts_conv_f32_params *params, const ts_dims *input_dims,
                                              const ts_dims *filter_dims, const ts_dims *output_dims);
void ts_depthwise_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                           const ts_dims *filter_dims, const float *filter, const float *bias,
                           const ts_dims *output_dims, float *output, void *scratch);
/* filter [units, depth], packed in blocks of 8 rows (units rounded up to a multiple of 8 with rows of
 * zeros), block j holding for each k in turn w[8j + 0..7][k] (lower.py pack_rows_f32 with 8 rows). */
void ts_fully_connected_f32(float act_min, float act_max, int32_t batches, int32_t depth, int32_t units,
                            const float *input, const float *filter, const float *bias, float *output);
void ts_add_f32(float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                const int32_t b_strides[4], const float *a, const float *b, float *output);
void ts_mul_f32(float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                const int32_t b_strides[4], const float *a, const float *b, float *output);
void ts_clip_f32(float act_min, float act_max, int32_t size, const float *input, float *output);
void ts_sigmoid_f32(int32_t size, const float *input, float *output);
void ts_tanh_f32(int32_t size, const float *input, float *output);

typedef struct {
    ts_hw kernel;
    ts_hw stride;
    ts_padding pad;
    int32_t count_include_pad;
    float act_min, act_max;
} ts_pool_f32_params;

void ts_max_pool_f32(const ts_pool_f32_params *params, const ts_dims *input_dims, const float *input,
                     const ts_dims *output_dims, float *output);
void ts_avg_pool_f32(const ts_pool_f32_params *params, const ts_dims *input_dims, const float *input,
                     const ts_dims *output_dims, float *output);
void ts_softmax_f32(int32_t rows, int32_t depth, const float *input, float *output);

/* ---------------------------------------------------------------- data movement (any dtype) */

/* Rank <= 4 (leading dims padded with 1). perm as ONNX Transpose. */
void ts_transpose(size_t elem_size, const int32_t in_dims[4], const int32_t perm[4], const void *input,
                  void *output);
/* Copies `outer` rows; row i of the output is the concatenation of each input's chunk i. */
void ts_concat(size_t elem_size, int32_t n_inputs, const void *const *inputs, const int32_t *chunk_elems,
               int32_t outer, void *output);
/* Constant padding over rank <= 4; pads = {b0,b1,b2,b3,e0,e1,e2,e3}; value points to one element. */
void ts_pad(size_t elem_size, const int32_t in_dims[4], const int32_t pads[8], const void *value,
            const void *input, void *output);
/* Reshape when input and output do not share memory. */
void ts_copy(size_t bytes, const void *input, void *output);


/* ================================================================ row bands (tiling)
 * Patch-based execution (passes/tiling.py: IR ops slice_rows, write_rows) and the row split of a
 * layer over cores (backends/c_multicore.py). Source: src/slice.c. Rows are the h axis of NHWC. */

/* output[b] = input[b, begin:begin+rows] for every batch b. */
void ts_slice_rows(size_t elem_size, const ts_dims *input_dims, int32_t begin, int32_t rows, const void *input,
                   void *output);
/* output = base (all zero bytes when base is NULL; untouched when base == output), then rows
 * begin..begin+rows-1 of every batch = input [n, rows, w, c]. */
void ts_write_rows(size_t elem_size, const ts_dims *output_dims, int32_t begin, int32_t rows, const void *base,
                   const void *input, void *output);

/* Part `part` of `parts` of a windowed layer's output rows (ceil(out_h / parts) rows each), the input
 * rows it reads and the padding it still needs (only where the whole layer is padded). */
typedef struct {
    int32_t out_begin, out_rows; /* output rows of this part */
    int32_t in_begin, in_rows;   /* input rows it reads */
    int32_t pad_top, pad_bottom; /* padding rows above and below them */
} ts_row_band;

/* kernel_extent = dilation * (kernel - 1) + 1. Fills band; returns its output rows (0: nothing to do). */
int32_t ts_row_band_for(int32_t part, int32_t parts, int32_t out_h, int32_t in_h, int32_t stride,
                        int32_t kernel_extent, int32_t pad_top, ts_row_band *band);

#ifdef __cplusplus
}
#endif

#endif /* TINYSPLIT_KERNELS_H */
