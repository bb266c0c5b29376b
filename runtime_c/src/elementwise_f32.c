/* float32 elementwise kernels: broadcasting add and mul, clip, sigmoid, tanh. */
#include <math.h>

#include "tinysplit/kernels.h"

static inline float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

static void broadcast(int op_mul, float act_min, float act_max, const int32_t out_dims[4], const int32_t a_strides[4],
                      const int32_t b_strides[4], const float *a, const float *b, float *output)
{
    int32_t i0, i1, i2, i3;
    float *y = output;
    for (i0 = 0; i0 < out_dims[0]; ++i0) {
        for (i1 = 0; i1 < out_dims[1]; ++i1) {
            for (i2 = 0; i2 < out_dims[2]; ++i2) {
                const float *pa = a + i0 * a_strides[0] + i1 * a_strides[1] + i2 * a_strides[2];
                const float *pb = b + i0 * b_strides[0] + i1 * b_strides[1] + i2 * b_strides[2];
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
