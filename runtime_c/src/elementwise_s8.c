/* int8 elementwise kernels: broadcasting add and mul, table lookup, clip, requantize. */
#include "tinysplit/kernels.h"

#include "requantize.h"

#define TS_ADD_LEFT_SHIFT 20 /* quant.ADD_LEFT_SHIFT */

static inline int8_t add_one(const ts_elementwise_params *p, int32_t a, int32_t b)
{
    const int32_t ra = ts_requantize((a + p->a_offset) * (1 << TS_ADD_LEFT_SHIFT), p->a_multiplier, p->a_shift);
    const int32_t rb = ts_requantize((b + p->b_offset) * (1 << TS_ADD_LEFT_SHIFT), p->b_multiplier, p->b_shift);
    const int32_t y = ts_add_offset(ts_requantize(ra + rb, p->out_multiplier, p->out_shift), p->output_offset);
    return (int8_t)ts_clamp(y, p->act_min, p->act_max);
}

static inline int8_t mul_one(const ts_elementwise_params *p, int32_t a, int32_t b)
{
    const int32_t y = ts_add_offset(
        ts_requantize((a + p->a_offset) * (b + p->b_offset), p->out_multiplier, p->out_shift), p->output_offset);
    return (int8_t)ts_clamp(y, p->act_min, p->act_max);
}

/* The innermost dimension gets its own loop so that the common cases (same shape, or one operand a
 * scalar / broadcast along the last axis) run without index arithmetic. */
#define TS_BROADCAST_LOOP(ONE)                                                                        \
    do {                                                                                              \
        int32_t i0, i1, i2, i3;                                                                       \
        int8_t *y = output;                                                                           \
        for (i0 = 0; i0 < out_dims[0]; ++i0) {                                                        \
            for (i1 = 0; i1 < out_dims[1]; ++i1) {                                                    \
                for (i2 = 0; i2 < out_dims[2]; ++i2) {                                                \
                    const int8_t *pa = a + i0 * a_strides[0] + i1 * a_strides[1] + i2 * a_strides[2]; \
                    const int8_t *pb = b + i0 * b_strides[0] + i1 * b_strides[1] + i2 * b_strides[2]; \
                    const int32_t sa = a_strides[3], sb = b_strides[3];                               \
                    for (i3 = 0; i3 < out_dims[3]; ++i3) {                                            \
                        *y++ = ONE(params, *pa, *pb);                                                 \
                        pa += sa;                                                                     \
                        pb += sb;                                                                     \
                    }                                                                                 \
                }                                                                                     \
            }                                                                                         \
        }                                                                                             \
    } while (0)

void ts_add_s8(const ts_elementwise_params *params, const int32_t out_dims[4], const int32_t a_strides[4],
               const int32_t b_strides[4], const int8_t *a, const int8_t *b, int8_t *output)
{
    TS_BROADCAST_LOOP(add_one);
}

void ts_mul_s8(const ts_elementwise_params *params, const int32_t out_dims[4], const int32_t a_strides[4],
               const int32_t b_strides[4], const int8_t *a, const int8_t *b, int8_t *output)
{
    TS_BROADCAST_LOOP(mul_one);
}

void ts_lookup_s8(const int8_t table[256], int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = table[input[i] + 128];
    }
}

void ts_clip_s8(int32_t act_min, int32_t act_max, int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = (int8_t)ts_clamp(input[i], act_min, act_max);
    }
}

void ts_requantize_s8(int32_t input_offset, int32_t multiplier, int32_t shift, int32_t output_offset,
                      int32_t size, const int8_t *input, int8_t *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        const int32_t y = ts_add_offset(ts_requantize(input[i] + input_offset, multiplier, shift), output_offset);
        output[i] = (int8_t)ts_clamp(y, TS_INT8_MIN, TS_INT8_MAX);
    }
}
