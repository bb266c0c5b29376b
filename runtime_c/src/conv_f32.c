/*
 * float32 2-D convolution (grouped) and depthwise convolution, NHWC, on packed filters (kernels.h).
 *
 * Convolution: groups of 3 output pixels; each pixel's K = KH * KW * Cin/groups inputs are copied
 * into scratch in the filter's k order (im2col, zeros for the padding), or read in place for a 1x1
 * window without padding; then ts_priv_gemm4x3_f32 (2 and 1 for the last pixels) multiplies them
 * with every block of 4 output channels. Depthwise (3 kernel rows, stride 1 down): 4 pixels down a
 * column at a time (ts_priv_dw3x4_f32), the kernel columns in passes. Without scratch, and for
 * other depthwise shapes, plain loops compute the same sums. The activation runs once at the end.
 */
#include <stdint.h>
#include <string.h>

#include "mat_mult_f32.h"
#include "tinysplit/kernels.h"

#define ROWS TS_F32_CONV_ROWS
#define COLS TS_F32_CONV_COLS

static const float zero_bias[ROWS] = {0.0f, 0.0f, 0.0f, 0.0f}; /* a block's bias when there is none */

static inline float clampf(float x, float lo, float hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* A 1x1 window without padding: each output pixel's K inputs lie side by side in the input. */
static int32_t conv_is_direct(const ts_conv_f32_params *params, const ts_dims *filter_dims)
{
    const ts_padding *pad = &params->pad;
    return filter_dims->h == 1 && filter_dims->w == 1 && pad->top == 0 && pad->left == 0 && pad->bottom == 0 &&
           pad->right == 0;
}

int32_t ts_conv_f32_get_buffer_size(const ts_conv_f32_params *params, const ts_dims *input_dims,
                                    const ts_dims *filter_dims, const ts_dims *output_dims)
{
    (void)input_dims;
    (void)output_dims;
    if (conv_is_direct(params, filter_dims)) {
        return 0;
    }
    return COLS * filter_dims->h * filter_dims->w * filter_dims->c * (int32_t)sizeof(float);
}

/* The taps t in [*lo, *hi) of a window start + t * dilation, t < kernel, that fall inside [0, size). */
static void valid_taps(int32_t start, int32_t dilation, int32_t kernel, int32_t size, int32_t *lo, int32_t *hi)
{
    int32_t a = start < 0 ? (-start + dilation - 1) / dilation : 0;
    int32_t b = size > start ? (size - start + dilation - 1) / dilation : 0;
    a = a < kernel ? a : kernel;
    b = b < kernel ? b : kernel;
    *lo = a;
    *hi = b > a ? b : a;
}

/* col[0..K) = the input window of output pixel (oh, ow) for group g, zeros where it is padding;
 * k = (kh * KW + kw) * Cg + c as in the filter. */
static void im2col_pixel(float *col, const ts_conv_f32_params *params, const ts_dims *input_dims,
                         const float *batch_input, const ts_dims *filter_dims, int32_t g, int32_t oh, int32_t ow)
{
    const int32_t cin = input_dims->c, cg = filter_dims->c, kw_n = filter_dims->w, row = kw_n * cg;
    const int32_t ih0 = oh * params->stride.h - params->pad.top;
    const int32_t iw0 = ow * params->stride.w - params->pad.left;
    const int32_t dh = params->dilation.h, dw = params->dilation.w;
    const float *x;
    int32_t kh0, kh1, kw0, kw1, kh;
    valid_taps(ih0, dh, filter_dims->h, input_dims->h, &kh0, &kh1);
    valid_taps(iw0, dw, kw_n, input_dims->w, &kw0, &kw1);
    if (kh0 > 0 || kh1 < filter_dims->h || kw0 > 0 || kw1 < kw_n) {
        ts_priv_zero_f32(col, filter_dims->h * row); /* the padding, then the taps inside */
    }
    if (kh1 == kh0 || kw1 == kw0) {
        return;
    }
    col += kh0 * row + kw0 * cg;
    x = batch_input + ((ih0 + kh0 * dh) * input_dims->w + iw0 + kw0 * dw) * cin + g * cg;
    if (dw == 1 && cg == cin) { /* each kernel row's valid taps are one run of the input row */
        ts_priv_copy_rows_f32(col, x, (kw1 - kw0) * cin, kh1 - kh0, row, dh * input_dims->w * cin);
        return;
    }
    for (kh = kh0; kh < kh1; ++kh, col += row, x += dh * input_dims->w * cin) {
        ts_priv_copy_rows_f32(col, x, cg, kw1 - kw0, cg, dw * cin);
    }
}

/* Without scratch: the same sums, one output at a time, skipping the padding. */
static void conv_f32_plain(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                           const ts_dims *filter_dims, const float *filter, const float *bias,
                           const ts_dims *output_dims, float *output)
{
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cin = input_dims->c, cg = filter_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t rows = cout / groups, rows_padded = (rows + ROWS - 1) / ROWS * ROWS;
    const int32_t kh_n = filter_dims->h, kw_n = filter_dims->w, K = kh_n * kw_n * cg;
    int32_t b, oh, ow, oc, kh, kw, c;
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                for (oc = 0; oc < cout; ++oc) {
                    const int32_t g = oc / rows, r = oc % rows;
                    const float *w = filter + (g * rows_padded + r / ROWS * ROWS) * K + r % ROWS;
                    float acc = bias != NULL ? bias[oc] : 0.0f;
                    for (kh = 0; kh < kh_n; ++kh) {
                        const int32_t ih = ih0 + kh * params->dilation.h;
                        if (ih < 0 || ih >= input_dims->h) {
                            continue;
                        }
                        for (kw = 0; kw < kw_n; ++kw) {
                            const int32_t iw = iw0 + kw * params->dilation.w;
                            const float *x, *wk;
                            if (iw < 0 || iw >= input_dims->w) {
                                continue;
                            }
                            x = batch_input + (ih * input_dims->w + iw) * cin + g * cg;
                            wk = w + (kh * kw_n + kw) * cg * ROWS;
                            for (c = 0; c < cg; ++c) {
                                acc += x[c] * wk[c * ROWS];
                            }
                        }
                    }
                    out[oc] = clampf(acc, params->act_min, params->act_max);
                }
            }
        }
    }
}

/* The rows of the block's n pixels times the weights of one group: whole blocks of 4 rows straight
 * into the output, a last partial block through local buffers. gemm is the kernel for n pixels. */
static void conv_block(void (*gemm)(ts_priv_gemm4x3_f32_args *), ts_priv_gemm4x3_f32_args *a, int32_t n,
                       const float *w, const float *bias, int32_t rows, int32_t K)
{
    const int32_t full = rows / ROWS, rest = rows % ROWS, chunk = bias != NULL ? full : 1;
    float *out[COLS];
    int32_t done, p;
    memcpy(out, a->out, sizeof out);
    for (done = 0; done < full; done += chunk) { /* without a bias, one block at a time from zeros */
        for (p = 0; p < n; ++p) {
            a->out[p] = out[p] + done * ROWS;
        }
        a->w = w + done * ROWS * K;
        a->bias = bias != NULL ? bias : zero_bias;
        a->blocks = chunk;
        gemm(a);
    }
    if (rest != 0) {
        float part_bias[ROWS] = {0.0f, 0.0f, 0.0f, 0.0f}, part_out[COLS][ROWS];
        int32_t r;
        for (r = 0; r < rest && bias != NULL; ++r) {
            part_bias[r] = bias[full * ROWS + r];
        }
        for (p = 0; p < n; ++p) {
            a->out[p] = part_out[p];
        }
        a->w = w + full * ROWS * K;
        a->bias = part_bias;
        a->blocks = 1;
        gemm(a);
        for (p = 0; p < n; ++p) {
            memcpy(out[p] + full * ROWS, part_out[p], (size_t)rest * sizeof(float));
        }
    }
}

/* A 1x1 window, stride 1, no padding, whole blocks of rows and a bias: output pixel q reads input
 * pixel q, so the kernel walks the groups of 3 pixels itself. */
static void conv_f32_pointwise(ts_priv_gemm4x3_f32_args *a, const ts_dims *input_dims, const float *input,
                               const float *filter, const float *bias, const ts_dims *output_dims, float *output,
                               int32_t groups, int32_t K)
{
    const int32_t cin = input_dims->c, cout = output_dims->c, rows = cout / groups;
    const int32_t npix = output_dims->h * output_dims->w, whole = npix / COLS * COLS;
    int32_t b, g, p;
    a->x_step = COLS * cin * (int32_t)sizeof(float);
    a->out_step = COLS * cout * (int32_t)sizeof(float);
    a->blocks = rows / ROWS;
    for (b = 0; b < input_dims->n; ++b) {
        for (g = 0; g < groups; ++g) {
            const float *x = input + b * npix * cin + g * K;
            float *y = output + b * npix * cout + g * rows;
            a->w = filter + g * rows * K;
            a->bias = bias + g * rows;
            for (p = 0; p < COLS; ++p) {
                a->x[p] = x + p * cin;
                a->out[p] = y + p * cout;
            }
            if (whole > 0) {
                a->pixel_groups = whole / COLS;
                ts_priv_gemm4x3_f32(a);
            }
            if (npix > whole) {
                for (p = 0; p < COLS; ++p) {
                    a->x[p] = x + (whole + p) * cin;
                    a->out[p] = y + (whole + p) * cout;
                }
                a->pixel_groups = 1;
                (npix - whole == 2 ? ts_priv_gemm4x2_f32 : ts_priv_gemm4x1_f32)(a);
            }
        }
    }
    a->pixel_groups = 1;
}

void ts_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                 const ts_dims *filter_dims, const float *filter, const float *bias, const ts_dims *output_dims,
                 float *output, void *scratch)
{
    static void (*const gemm[COLS + 1])(ts_priv_gemm4x3_f32_args *) = {
        NULL, ts_priv_gemm4x1_f32, ts_priv_gemm4x2_f32, ts_priv_gemm4x3_f32};
    const int32_t groups = params->groups > 0 ? params->groups : 1;
    const int32_t cin = input_dims->c, cg = filter_dims->c, cout = output_dims->c;
    const int32_t rows = cout / groups, blocks = (rows + ROWS - 1) / ROWS;
    const int32_t K = filter_dims->h * filter_dims->w * cg;
    const int32_t npix = output_dims->h * output_dims->w;
    const int32_t direct = conv_is_direct(params, filter_dims);
    const int32_t sh = params->stride.h, sw = params->stride.w;
    /* an inner pixel's window lies inside the input: with unit column dilation and one group, each of
     * its kernel rows is one run of the input, copied as it is */
    const int32_t runs = params->dilation.w == 1 && cg == cin, row = filter_dims->w * cin;
    const int32_t row_step = params->dilation.h * input_dims->w * cin;
    const int32_t ih_max = input_dims->h - 1 - (filter_dims->h - 1) * params->dilation.h;
    const int32_t iw_max = input_dims->w - filter_dims->w;
    float *cols = (float *)scratch;
    ts_priv_gemm4x3_f32_args a;
    int32_t b, pix, g, p;
    if (npix == 0 || cout == 0) {
        return;
    }
    if (!direct && (cols == NULL || ((uintptr_t)scratch & 3u) != 0)) {
        conv_f32_plain(params, input_dims, input, filter_dims, filter, bias, output_dims, output);
        return;
    }
    ts_priv_gemm4_f32_prepare(&a, K);
    if (direct && sh == 1 && sw == 1 && rows % ROWS == 0 && bias != NULL) {
        conv_f32_pointwise(&a, input_dims, input, filter, bias, output_dims, output, groups, K);
        ts_priv_activation_f32(params->act_min, params->act_max, output, input_dims->n * npix * cout);
        return;
    }
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * cin;
        float *batch_output = output + b * npix * cout;
        int32_t oh = 0, ow = 0; /* of the block's first pixel */
        for (pix = 0; pix < npix; pix += COLS) {
            const int32_t n = npix - pix < COLS ? npix - pix : COLS;
            const int32_t ih0 = oh * sh - params->pad.top, iw0 = ow * sw - params->pad.left;
            for (g = 0; g < groups; ++g) {
                int32_t y = oh, x = ow;
                p = 0;
                if (runs && !direct && n == COLS && ow + COLS <= output_dims->w && ih0 >= 0 && ih0 <= ih_max &&
                    iw0 >= 0 && iw0 + (COLS - 1) * sw <= iw_max) { /* three inner pixels of one row */
                    const float *src = batch_input + (ih0 * input_dims->w + iw0) * cin;
                    for (; p < COLS; ++p, src += sw * cin) {
                        ts_priv_copy_rows_f32(cols + p * K, src, row, filter_dims->h, row, row_step);
                        a.x[p] = cols + p * K;
                        a.out[p] = batch_output + (pix + p) * cout;
                    }
                }
                for (; p < n; ++p) {
                    a.out[p] = batch_output + (pix + p) * cout + g * rows;
                    if (direct) {
                        a.x[p] = batch_input + (y * sh * input_dims->w + x * sw) * cin + g * cg;
                    } else {
                        const int32_t ih = y * sh - params->pad.top, iw = x * sw - params->pad.left;
                        float *col = cols + p * K;
                        if (runs && ih >= 0 && ih <= ih_max && iw >= 0 && iw <= iw_max) {
                            ts_priv_copy_rows_f32(col, batch_input + (ih * input_dims->w + iw) * cin, row,
                                                  filter_dims->h, row, row_step);
                        } else {
                            im2col_pixel(col, params, input_dims, batch_input, filter_dims, g, y, x);
                        }
                        a.x[p] = col;
                    }
                    if (++x == output_dims->w) {
                        x = 0;
                        ++y;
                    }
                }
                conv_block(gemm[n], &a, n, filter + g * blocks * ROWS * K, bias != NULL ? bias + g * rows : NULL,
                           rows, K);
            }
            ow += n;
            while (ow >= output_dims->w) {
                ow -= output_dims->w;
                ++oh;
            }
        }
    }
    ts_priv_activation_f32(params->act_min, params->act_max, output, input_dims->n * npix * cout);
}

/* Depthwise filter, packed: for each kernel column kw, each block of 4 channels (channels rounded up
 * to a multiple of 4 with zeros), each kernel row kh, the 4 channels' weights. */
static const float *dw_weights(const float *filter, const ts_dims *filter_dims, int32_t cout, int32_t kh, int32_t kw,
                               int32_t oc)
{
    const int32_t blocks = (cout + 3) / 4;
    return filter + ((kw * blocks + oc / 4) * filter_dims->h + kh) * 4 + oc % 4;
}

/* The assembly's shape: 3 kernel rows, stride 1 down and no dilation, one output channel per input
 * channel, whole blocks of 4 channels. */
static int32_t dw_is_blocked(const ts_conv_f32_params *params, const ts_dims *input_dims, const ts_dims *filter_dims,
                             const ts_dims *output_dims)
{
    return filter_dims->h == 3 && params->stride.h == 1 && params->dilation.h == 1 && params->dilation.w == 1 &&
           output_dims->c == input_dims->c && input_dims->c % 4 == 0 && input_dims->c > 0;
}

int32_t ts_depthwise_conv_f32_get_buffer_size(const ts_conv_f32_params *params, const ts_dims *input_dims,
                                              const ts_dims *filter_dims, const ts_dims *output_dims)
{
    if (!dw_is_blocked(params, input_dims, filter_dims, output_dims)) {
        return 0;
    }
    return (filter_dims->w + 4) * input_dims->c * (int32_t)sizeof(float);
}

/* Columns of 4 output pixels at a time through ts_priv_dw3x4_f32, the rest through ts_priv_dw3x1_f32
 * (or, for 3 rows left, 4 that overlap the 4 before them: the same values are written twice). */
static void dw_blocked(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                       const ts_dims *filter_dims, const float *filter, const float *bias,
                       const ts_dims *output_dims, float *output, float *scratch)
{
    const int32_t ch = input_dims->c, in_w = input_dims->w, out_h = output_dims->h, out_w = output_dims->w;
    float *zeros = scratch, *acc = scratch + filter_dims->w * ch;
    ts_priv_dw3x4_f32_args a;
    int32_t b, ow, oh, j, p, pixels;
    ts_priv_zero_f32(zeros, filter_dims->w * ch); /* padding rows read it, one column per pass */
    a.bias = bias != NULL ? bias : zeros;
    a.acc = acc;
    a.blocks = ch / 4;
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * in_w * ch;
        float *batch_output = output + b * out_h * out_w * ch;
        for (ow = 0; ow < out_w; ++ow) {
            const int32_t iw0 = ow * params->stride.w - params->pad.left;
            int32_t kw0, kw1;
            valid_taps(iw0, 1, filter_dims->w, in_w, &kw0, &kw1);
            a.passes = kw1 - kw0;
            a.w = filter + kw0 * 3 * ch;
            for (oh = 0; oh < out_h; oh += pixels) {
                /* 4 pixels down the column; the last 1 or 2 one at a time, the last 3 as 4 that
                 * overlap the 4 before them */
                const int32_t rest = out_h - oh, top = rest >= 4 ? oh : (rest == 3 && out_h >= 4 ? out_h - 4 : oh);
                pixels = rest >= 4 || top != oh ? 4 : 1; /* (the overlap ends the column) */
                for (p = 0; p < 4; ++p) {
                    a.out[p] = batch_output + ((top + (pixels == 4 ? p : 0)) * out_w + ow) * ch;
                }
                if (a.passes == 0) { /* the window lies in the padding: the bias */
                    for (p = 0; p < pixels; ++p) {
                        memcpy(a.out[p], a.bias, (size_t)ch * sizeof(float));
                    }
                    continue;
                }
                for (j = 0; j < pixels + 2; ++j) {
                    const int32_t ih = top - params->pad.top + j;
                    a.rows[j] = ih >= 0 && ih < input_dims->h ? batch_input + (ih * in_w + iw0 + kw0) * ch : zeros;
                }
                if (pixels == 4) {
                    ts_priv_dw3x4_f32(&a);
                } else {
                    ts_priv_dw3x1_f32(&a);
                }
            }
        }
    }
    ts_priv_activation_f32(params->act_min, params->act_max, output,
                           output_dims->n * out_h * out_w * output_dims->c);
}

void ts_depthwise_conv_f32(const ts_conv_f32_params *params, const ts_dims *input_dims, const float *input,
                           const ts_dims *filter_dims, const float *filter, const float *bias,
                           const ts_dims *output_dims, float *output, void *scratch)
{
    const int32_t cin = input_dims->c;
    const int32_t cout = output_dims->c;
    const int32_t mult = cin > 0 ? cout / cin : 1;
    int32_t b, oh, ow, oc, kh, kw;
    if (scratch != NULL && ((uintptr_t)scratch & 3u) == 0 &&
        dw_is_blocked(params, input_dims, filter_dims, output_dims)) {
        dw_blocked(params, input_dims, input, filter_dims, filter, bias, output_dims, output, (float *)scratch);
        return;
    }
    for (b = 0; b < input_dims->n; ++b) {
        const float *batch_input = input + b * input_dims->h * input_dims->w * cin;
        for (oh = 0; oh < output_dims->h; ++oh) {
            const int32_t ih0 = oh * params->stride.h - params->pad.top;
            for (ow = 0; ow < output_dims->w; ++ow) {
                const int32_t iw0 = ow * params->stride.w - params->pad.left;
                float *out = output + ((b * output_dims->h + oh) * output_dims->w + ow) * cout;
                for (oc = 0; oc < cout; ++oc) {
                    const int32_t ic = oc / mult;
                    float acc = bias != NULL ? bias[oc] : 0.0f;
                    for (kw = 0; kw < filter_dims->w; ++kw) { /* columns, then rows: as the assembly */
                        const int32_t iw = iw0 + kw * params->dilation.w;
                        if (iw < 0 || iw >= input_dims->w) {
                            continue;
                        }
                        for (kh = 0; kh < filter_dims->h; ++kh) {
                            const int32_t ih = ih0 + kh * params->dilation.h;
                            if (ih < 0 || ih >= input_dims->h) {
                                continue;
                            }
                            acc += batch_input[(ih * input_dims->w + iw) * cin + ic] *
                                   *dw_weights(filter, filter_dims, cout, kh, kw, oc);
                        }
                    }
                    out[oc] = clampf(acc, params->act_min, params->act_max);
                }
            }
        }
    }
}
