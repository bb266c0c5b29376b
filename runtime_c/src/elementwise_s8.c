/* int8 elementwise kernels: broadcasting add and mul, table lookup, clip, requantize. */
#include "tinysplit/kernels.h"

#include "requantize.h"
#include "simd.h"

#if defined(__GNUC__)
#define TS_NOINLINE_ELEM __attribute__((noinline)) /* keeps the 2 KiB of tables off the small path's stack */
#else
#define TS_NOINLINE_ELEM
#endif

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

/* Large adds: each operand's rescaled value depends only on its int8 code, so both are tabulated
 * once (256 entries each) and every element costs two lookups and one requantization. */
#define TS_ADD_TABLE_MIN 1024 /* elements from which the tables pay for themselves */

typedef struct {
    int32_t ta[256], tb[256];
    ts_rq q;
    ts_rqz z;
    int32_t zp, act_min, act_max;
} add_tables;

static inline int8_t add_lookup(const add_tables *t, int32_t a, int32_t b)
{
    const int32_t y = ts_add_offset(ts_rq_apply(&t->q, t->ta[a + 128] + t->tb[b + 128]), t->zp);
    return (int8_t)ts_clamp(y, t->act_min, t->act_max);
}

/* A contiguous run without activation bounds: the int8 saturation is the only clamp, and four
 * elements of each operand come in one word load (the byte order is little-endian, as on every
 * core with the DSP extension and the hosts that emulate it). */
static inline void add_run_contiguous(const int32_t *ta, const int32_t *tb, int64_t round, int32_t m, int32_t sh,
                                      const int8_t *pa, const int8_t *pb, int8_t *y, int32_t n)
{
#if TS_HAVE_DSP
    for (; n >= 4; n -= 4, pa += 4, pb += 4, y += 4) {
        const int32_t a4 = ts_load32(pa), b4 = ts_load32(pb);
        y[0] = (int8_t)ts_sat8(ts_rqz_apply(round, m, sh, ta[(int8_t)a4] + tb[(int8_t)b4]));
        y[1] = (int8_t)ts_sat8(ts_rqz_apply(round, m, sh, ta[(int8_t)(a4 >> 8)] + tb[(int8_t)(b4 >> 8)]));
        y[2] = (int8_t)ts_sat8(ts_rqz_apply(round, m, sh, ta[(int8_t)(a4 >> 16)] + tb[(int8_t)(b4 >> 16)]));
        y[3] = (int8_t)ts_sat8(ts_rqz_apply(round, m, sh, ta[a4 >> 24] + tb[b4 >> 24]));
    }
#endif
    for (; n > 0; --n) {
        *y++ = (int8_t)ts_sat8(ts_rqz_apply(round, m, sh, ta[*pa++] + tb[*pb++]));
    }
}

/* one innermost run of n elements with the fused requantization (ts_rqz) */
static TS_NOINLINE_ELEM void add_run_fused(const add_tables *t, const int8_t *pa, int32_t sa, const int8_t *pb,
                                           int32_t sb, int8_t *y, int32_t n)
{
    const int32_t *ta = t->ta + 128, *tb = t->tb + 128;
    const int64_t round = t->z.round;
    const int32_t m = t->z.multiplier, sh = t->z.sh, lo = t->act_min, hi = t->act_max;
    int8_t *end = y + n;
    if (sa == 1 && sb == 1) {
        if (lo == TS_INT8_MIN && hi == TS_INT8_MAX) {
            add_run_contiguous(ta, tb, round, m, sh, pa, pb, y, n);
            return;
        }
        while (y != end) {
            *y++ = (int8_t)ts_clamp8(ts_rqz_apply(round, m, sh, ta[*pa++] + tb[*pb++]), lo, hi);
        }
        return;
    }
    while (y != end) {
        *y++ = (int8_t)ts_clamp8(ts_rqz_apply(round, m, sh, ta[*pa] + tb[*pb]), lo, hi);
        pa += sa;
        pb += sb;
    }
}

static TS_NOINLINE_ELEM void add_tabulated(const ts_elementwise_params *p, const int32_t out_dims[4],
                                           const int32_t a_strides[4], const int32_t b_strides[4], const int8_t *a,
                                           const int8_t *b, int8_t *output)
{
    add_tables t;
    int32_t v;
    for (v = -128; v < 128; ++v) {
        t.ta[v + 128] = ts_requantize((v + p->a_offset) * (1 << TS_ADD_LEFT_SHIFT), p->a_multiplier, p->a_shift);
        t.tb[v + 128] = ts_requantize((v + p->b_offset) * (1 << TS_ADD_LEFT_SHIFT), p->b_multiplier, p->b_shift);
    }
    t.q = ts_rq_make(p->out_multiplier, p->out_shift);
    t.zp = p->output_offset;
    t.act_min = p->act_min;
    t.act_max = p->act_max;
    if (ts_rqz_ok(p->out_shift)) {
        /* whole innermost runs; a contiguous tensor is one run */
        const int contiguous = a_strides[3] == 1 && b_strides[3] == 1 && a_strides[2] == out_dims[3] &&
                               b_strides[2] == out_dims[3] && a_strides[1] == out_dims[2] * out_dims[3] &&
                               b_strides[1] == a_strides[1] && a_strides[0] == out_dims[1] * a_strides[1] &&
                               b_strides[0] == a_strides[0];
        int32_t i0, i1, i2;
        int8_t *y = output;
        t.z = ts_rqz_make(p->out_multiplier, p->out_shift, p->output_offset);
        if (contiguous) {
            add_run_fused(&t, a, 1, b, 1, output, out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3]);
            return;
        }
        for (i0 = 0; i0 < out_dims[0]; ++i0) {
            for (i1 = 0; i1 < out_dims[1]; ++i1) {
                for (i2 = 0; i2 < out_dims[2]; ++i2) {
                    add_run_fused(&t, a + i0 * a_strides[0] + i1 * a_strides[1] + i2 * a_strides[2], a_strides[3],
                                  b + i0 * b_strides[0] + i1 * b_strides[1] + i2 * b_strides[2], b_strides[3], y,
                                  out_dims[3]);
                    y += out_dims[3];
                }
            }
        }
        return;
    }
    {
        const add_tables *params = &t;
        TS_BROADCAST_LOOP(add_lookup);
    }
}

void ts_add_s8(const ts_elementwise_params *params, const int32_t out_dims[4], const int32_t a_strides[4],
               const int32_t b_strides[4], const int8_t *a, const int8_t *b, int8_t *output)
{
    if (out_dims[0] * out_dims[1] * out_dims[2] * out_dims[3] >= TS_ADD_TABLE_MIN) {
        add_tabulated(params, out_dims, a_strides, b_strides, a, b, output);
        return;
    }
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
