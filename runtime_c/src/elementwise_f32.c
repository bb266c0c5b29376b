/* float32 elementwise kernels: broadcasting add and mul, clip, sigmoid, tanh. */
#include <math.h>

#include "mat_mult_f32.h"
#include "tinysplit/kernels.h"

static inline float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* Whether an operand's elements lie in the output's order: its stride is the output's wherever the
 * output has more than one element. */
static int32_t in_order(const int32_t out_dims[4], const int32_t strides[4])
{
    int32_t d, step = 1;
    for (d = 3; d >= 0; --d) {
        if (out_dims[d] > 1 && strides[d] != step) {
            return 0;
        }
        step *= out_dims[d];
    }
    return 1;
}

static void broadcast(int op_mul, float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                      const int32_t b_strides[4], const float *a, const float *b, float *output)
{
    const int32_t size = out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3];
    void (*rows)(const float *, const float *, float *, int32_t) = op_mul ? ts_priv_mul_f32 : ts_priv_add_f32;
    int32_t i0, i1, i2, i3;
    float *y = output;
    if (size <= 0) {
        return;
    }
    if (in_order(out_dims, a_strides) && in_order(out_dims, b_strides)) { /* no broadcasting: one run */
        rows(a, b, output, size);
        ts_priv_activation_f32(act_min, act_max, output, size);
        return;
    }
    for (i0 = 0; i0 < out_dims[0]; ++i0) {
        for (i1 = 0; i1 < out_dims[1]; ++i1) {
            for (i2 = 0; i2 < out_dims[2]; ++i2) {
                const float *pa = a + i0 * a_strides[0] + i1 * a_strides[1] + i2 * a_strides[2];
                const float *pb = b + i0 * b_strides[0] + i1 * b_strides[1] + i2 * b_strides[2];
                if (a_strides[3] == 1 && b_strides[3] == 1) { /* a run along the last axis */
                    rows(pa, pb, y, out_dims[3]);
                    ts_priv_activation_f32(act_min, act_max, y, out_dims[3]);
                    y += out_dims[3];
                    continue;
                }
                for (i3 = 0; i3 < out_dims[3]; ++i3) {
                    const float v = op_mul ? *pa * *pb : *pa + *pb;
                    *y++ = clampf(v, act_min, act_max);
                    pa += a_strides[3];
                    pb += b_strides[3];
                }
            }
        }
    }
}

void ts_add_f32(float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                const int32_t b_strides[4], const float *a, const float *b, float *output)
{
    broadcast(0, act_min, act_max, out_dims, a_strides, b_strides, a, b, output);
}

void ts_mul_f32(float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                const int32_t b_strides[4], const float *a, const float *b, float *output)
{
    broadcast(1, act_min, act_max, out_dims, a_strides, b_strides, a, b, output);
}

void ts_clip_f32(float act_min, float act_max, int32_t size, const float *input, float *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = clampf(input[i], act_min, act_max);
    }
}

void ts_sigmoid_f32(int32_t size, const float *input, float *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = 1.0f / (1.0f + expf(-input[i]));
    }
}

void ts_tanh_f32(int32_t size, const float *input, float *output)
{
    int32_t i;
    for (i = 0; i < size; ++i) {
        output[i] = tanhf(input[i]);
    }
}
