/* Row bands of NHWC tensors: the data movement of patch-based execution (passes/tiling.py) and the
 * row split of one layer over several cores (backends/c_multicore.py). */
#include <string.h>

#include "tinysplit/kernels.h"

void ts_slice_rows(size_t elem_size, const ts_dims *input_dims, int32_t begin, int32_t rows, const void *input,
                   void *output)
{
    const size_t row_bytes = elem_size * (size_t)input_dims->w * (size_t)input_dims->c;
    const unsigned char *in = (const unsigned char *)input;
    unsigned char *out = (unsigned char *)output;
    int32_t b;
    for (b = 0; b < input_dims->n; ++b) {
        const unsigned char *src = in + ((size_t)b * (size_t)input_dims->h + (size_t)begin) * row_bytes;
        memmove(out + (size_t)b * (size_t)rows * row_bytes, src, (size_t)rows * row_bytes);
    }
}

void ts_write_rows(size_t elem_size, const ts_dims *output_dims, int32_t begin, int32_t rows, const void *base,
                   const void *input, void *output)
{
    const size_t row_bytes = elem_size * (size_t)output_dims->w * (size_t)output_dims->c;
    const size_t batch_bytes = row_bytes * (size_t)output_dims->h;
    const unsigned char *in = (const unsigned char *)input;
    unsigned char *out = (unsigned char *)output;
    int32_t b;
    if (base == NULL) {
        memset(output, 0, batch_bytes * (size_t)output_dims->n);
    } else if (base != output) {
        memmove(output, base, batch_bytes * (size_t)output_dims->n);
    }
    for (b = 0; b < output_dims->n; ++b) {
        memmove(out + (size_t)b * batch_bytes + (size_t)begin * row_bytes, in + (size_t)b * (size_t)rows * row_bytes,
                (size_t)rows * row_bytes);
    }
}

int32_t ts_row_band_for(int32_t part, int32_t parts, int32_t out_h, int32_t in_h, int32_t stride,
                        int32_t kernel_extent, int32_t pad_top, ts_row_band *band)
{
    const int32_t chunk = (out_h + parts - 1) / parts;
    const int32_t out_begin = part * chunk < out_h ? part * chunk : out_h;
    const int32_t out_end = out_begin + chunk < out_h ? out_begin + chunk : out_h;
    const int32_t want_begin = out_begin * stride - pad_top;
    const int32_t want_end = (out_end - 1) * stride - pad_top + kernel_extent;
    band->out_begin = out_begin;
    band->out_rows = out_end - out_begin;
    if (band->out_rows <= 0) {
        band->out_rows = 0;
        band->in_begin = band->in_rows = band->pad_top = band->pad_bottom = 0;
        return 0;
    }
    band->in_begin = want_begin > 0 ? want_begin : 0;
    band->in_rows = (want_end < in_h ? want_end : in_h) - band->in_begin;
    band->pad_top = band->in_begin - want_begin;
    band->pad_bottom = want_end - (band->in_begin + band->in_rows);
    return band->out_rows;
}
