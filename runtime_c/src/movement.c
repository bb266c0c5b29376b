/* Data movement for any element type: transpose, concat, constant pad, copy. */
#include <string.h>

#include "tinysplit/kernels.h"

static inline void copy_elem(size_t elem_size, unsigned char *dst, const unsigned char *src)
{
    switch (elem_size) {
    case 1:
        *dst = *src;
        break;
    case 2:
        memcpy(dst, src, 2);
        break;
    case 4:
        memcpy(dst, src, 4);
        break;
    default:
        memcpy(dst, src, elem_size);
        break;
    }
}

void ts_transpose(size_t elem_size, const int32_t in_dims[4], const int32_t perm[4], const void *input,
                  void *output)
{
    const unsigned char *in = (const unsigned char *)input;
    unsigned char *out = (unsigned char *)output;
    int32_t in_strides[4], out_dims[4], s[4];
    int32_t i, o0, o1, o2, o3;
    in_strides[3] = 1;
    for (i = 2; i >= 0; --i) {
        in_strides[i] = in_strides[i + 1] * in_dims[i + 1];
    }
    for (i = 0; i < 4; ++i) {
        out_dims[i] = in_dims[perm[i]];
        s[i] = in_strides[perm[i]]; /* input stride of output axis i, in elements */
    }
    for (o0 = 0; o0 < out_dims[0]; ++o0) {
        for (o1 = 0; o1 < out_dims[1]; ++o1) {
            for (o2 = 0; o2 < out_dims[2]; ++o2) {
                const unsigned char *src = in + (size_t)(o0 * s[0] + o1 * s[1] + o2 * s[2]) * elem_size;
                const size_t step = (size_t)s[3] * elem_size;
                for (o3 = 0; o3 < out_dims[3]; ++o3) {
                    copy_elem(elem_size, out, src);
                    out += elem_size;
                    src += step;
                }
            }
        }
    }
}

void ts_concat(size_t elem_size, int32_t n_inputs, const void *const *inputs, const int32_t *chunk_elems,
               int32_t outer, void *output)
{
    unsigned char *out = (unsigned char *)output;
    int32_t row, i;
    for (row = 0; row < outer; ++row) {
        for (i = 0; i < n_inputs; ++i) {
            const size_t bytes = (size_t)chunk_elems[i] * elem_size;
            memcpy(out, (const unsigned char *)inputs[i] + (size_t)row * bytes, bytes);
            out += bytes;
        }
    }
}

static void fill(size_t elem_size, unsigned char *dst, const unsigned char *value, int32_t n)
{
    int32_t i;
    if (elem_size == 1) {
        memset(dst, *value, (size_t)n);
        return;
    }
    for (i = 0; i < n; ++i) {
        copy_elem(elem_size, dst + (size_t)i * elem_size, value);
    }
}

/* Begins and ends may be negative (ONNX Pad crops then). */
void ts_pad(size_t elem_size, const int32_t in_dims[4], const int32_t pads[8], const void *value,
            const void *input, void *output)
{
    const unsigned char *in = (const unsigned char *)input;
    const unsigned char *val = (const unsigned char *)value;
    unsigned char *out = (unsigned char *)output;
    int32_t out_dims[4];
    int32_t i, o0, o1, o2;
    int32_t lo, hi;
    for (i = 0; i < 4; ++i) {
        out_dims[i] = in_dims[i] + pads[i] + pads[4 + i];
    }
    /* along the last axis, output o3 reads input o3 - pads[3] when that is in [0, in_dims[3]) */
    lo = pads[3] > 0 ? pads[3] : 0;
    hi = pads[3] + in_dims[3] < out_dims[3] ? pads[3] + in_dims[3] : out_dims[3];
    if (hi < lo) {
        hi = lo;
    }
    for (o0 = 0; o0 < out_dims[0]; ++o0) {
        const int32_t i0 = o0 - pads[0];
        for (o1 = 0; o1 < out_dims[1]; ++o1) {
            const int32_t i1 = o1 - pads[1];
            for (o2 = 0; o2 < out_dims[2]; ++o2) {
                const int32_t i2 = o2 - pads[2];
                const size_t row_bytes = (size_t)out_dims[3] * elem_size;
                if (i0 < 0 || i0 >= in_dims[0] || i1 < 0 || i1 >= in_dims[1] || i2 < 0 || i2 >= in_dims[2]) {
                    fill(elem_size, out, val, out_dims[3]);
                } else {
                    const int32_t row = (i0 * in_dims[1] + i1) * in_dims[2] + i2;
                    const unsigned char *src = in + ((size_t)row * (size_t)in_dims[3] + (size_t)(lo - pads[3])) * elem_size;
                    fill(elem_size, out, val, lo);
                    memcpy(out + (size_t)lo * elem_size, src, (size_t)(hi - lo) * elem_size);
                    fill(elem_size, out + (size_t)hi * elem_size, val, out_dims[3] - hi);
                }
                out += row_bytes;
            }
        }
    }
}

void ts_copy(size_t bytes, const void *input, void *output)
{
    if (input != output) {
        memmove(output, input, bytes);
    }
}
