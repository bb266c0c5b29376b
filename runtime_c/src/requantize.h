/*
 * Private helpers: the integer requantization of tinysplit/compiler/quant.py, bit for bit.
 *
 *   requantize(acc, m, s) = rdiv_pot(high_mul(acc << max(s,0), m), max(-s,0))
 *   high_mul(a, m)        = (a * m + 2^30) >> 31      (64-bit product, arithmetic shift)
 *   rdiv_pot(x, e)        = x / 2^e rounded half away from zero
 *
 * The left shift happens in 32 bits with two's complement wrap-around (as the reference's
 * astype(int32)). m is in [0, 2^31) and s in [-31, 30] (quant.quantize_multiplier), so the
 * high_mul result always fits in 32 bits and e never exceeds 31.
 * Relies on GCC/Clang semantics for >> of negative values (arithmetic) and for out-of-range
 * unsigned -> signed conversion (modulo 2^32).
 */
#ifndef TINYSPLIT_REQUANTIZE_H
#define TINYSPLIT_REQUANTIZE_H

#include <stdint.h>

#include "simd.h"

#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
#include <arm_acle.h>
#endif

#define TS_INT8_MIN (-128)
#define TS_INT8_MAX 127

static inline int32_t ts_high_mul(int32_t a, int32_t m)
{
    int64_t p = (int64_t)a * (int64_t)m + ((int64_t)1 << 30);
    return (int32_t)(p >> 31);
}

/* x / 2^e, rounded half away from zero; 0 <= e <= 31. */
static inline int32_t ts_rdiv_pot(int32_t x, int32_t e)
{
    const int32_t mask = (int32_t)((1u << (uint32_t)e) - 1u);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0);
    return (x >> e) + (remainder > threshold);
}

static inline int32_t ts_shl32(int32_t x, int32_t left)
{
    return (int32_t)((uint32_t)x << (uint32_t)left);
}

static inline int32_t ts_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return ts_rdiv_pot(ts_high_mul(ts_shl32(acc, left), multiplier), right);
}

static inline int32_t ts_clamp(int32_t x, int32_t lo, int32_t hi)
{
    return x < lo ? lo : (x > hi ? hi : x);
}

/* r + offset (|offset| <= 255) before an int8 clamp, without int32 overflow: saturating r to 16
 * bits first cannot change the clamped result (one SSAT on Armv7E-M). */
static inline int32_t ts_add_offset(int32_t r, int32_t offset)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    return __ssat(r, 16) + offset;
#else
    return ts_clamp(r, -32768, 32767) + offset;
#endif
}

/*
 * The same requantization, prepared once per output channel for the hot loops of conv, depthwise
 * conv and fully connected. With right = -s >= 1 the two roundings fuse into one 64-bit step:
 *   rdiv_pot(h, e) = floor((h + 2^(e-1) - [h < 0]) / 2^e) and h = floor((x*m + 2^30) / 2^31) give
 *   requantize = floor((x*m + 2^30 + 2^(30+e) - [h < 0] * 2^31) / 2^(31+e))
 * (floor((floor(A/B) + c) / D) = floor((A + c*B) / (B*D)) for integers and B, D > 0). [h < 0] may
 * be replaced by [x*m < 0]: they differ only when x*m < 0 <= h, i.e. h == 0, where the e >= 1
 * rounding has no tie to break. [x*m < 0] is the sign of x ^ m except for x*m == 0, same argument.
 * So the result is bit-exact for every int32 accumulator and multiplier.
 */
typedef struct {
    int64_t round;      /* 2^30, plus 2^(30+right) when right >= 1 */
    int32_t multiplier;
    int32_t left;       /* max(s, 0) */
    int32_t right_m1;   /* max(-s, 0) - 1: -1 when there is no right shift */
} ts_rq;

static inline ts_rq ts_rq_make(int32_t multiplier, int32_t shift)
{
    ts_rq q;
    const int32_t right = shift > 0 ? 0 : -shift;
    q.multiplier = multiplier;
    q.left = shift > 0 ? shift : 0;
    q.right_m1 = right - 1;
    {
        /* 2^30 + 2^(30+right) as two words, without a variable 64-bit shift */
        const uint32_t lo = right == 1 ? 0xC0000000u : 0x40000000u;
        const uint32_t hi = right >= 2 ? 1u << (uint32_t)(right - 2) : 0u;
        q.round = (int64_t)(((uint64_t)hi << 32) | lo);
    }
    return q;
}

static inline int32_t ts_rq_apply(const ts_rq *q, int32_t acc)
{
    if (q->right_m1 >= 0) {
        const int64_t negative = (int64_t)((uint32_t)(acc ^ q->multiplier) >> 31);
        const int64_t v = q->round - negative * ((int64_t)1 << 31) + (int64_t)acc * q->multiplier;
        return (int32_t)(v >> 32) >> q->right_m1;
    }
    return (int32_t)((q->round + (int64_t)ts_shl32(acc, q->left) * q->multiplier) >> 31);
}

/* ts_rq_apply when q->right_m1 >= 0 (the usual case: real multiplier < 0.5), branch-free. */
static inline int32_t ts_rq_apply_right(int64_t round, int32_t multiplier, int32_t right_m1, int32_t acc)
{
    const int64_t negative = (int64_t)((uint32_t)(acc ^ multiplier) >> 31);
    const int64_t v = round - negative * ((int64_t)1 << 31) + (int64_t)acc * multiplier;
    return (int32_t)(v >> 32) >> right_m1;
}

/*
 * The requantization, the output zero point and the int8 clamp in one 64-bit step, for a right
 * shift e = -s in [1, TS_RQZ_MAX_RIGHT] (the usual case):
 *   clamp(ts_add_offset(requantize(x, m, s), zp), lo, hi) = clamp((v >> 32) >> (e - 1), lo, hi),
 *   v = x*m + 2^30 + 2^(30+e) + zp * 2^(31+e) - [x < 0] * 2^31.
 * This is ts_rq_apply_right with zp added inside the floor (an integer, so it comes out exactly),
 * and [x*m < 0] replaced by [x < 0]: they differ only for m == 0, where h = 0 and both give 0.
 * |x*m| < 2^62 and |zp| * 2^(31+e) <= 2^60 keep v inside int64 and v >> 32 inside int32, and
 * saturating r to 16 bits before adding zp (ts_add_offset) cannot change the int8-clamped result.
 */
#define TS_RQZ_MAX_RIGHT 22

typedef struct {
    int32_t multiplier;
    int32_t sh;        /* e - 1 */
    int64_t round;     /* 2^30 + 2^(30+e) + zp * 2^(31+e) */
} ts_rqz;

/* 1 when (multiplier, shift) takes the fused path */
static inline int ts_rqz_ok(int32_t shift)
{
    return shift <= -1 && shift >= -TS_RQZ_MAX_RIGHT;
}

static inline ts_rqz ts_rqz_make(int32_t multiplier, int32_t shift, int32_t zp)
{
    ts_rqz q;
    const int32_t e = -shift;
    q.multiplier = multiplier;
    q.sh = e - 1;
    {
        /* as two words, without variable 64-bit shifts: the low word is 2^30 (+ 2^31 when e == 1) */
        const uint32_t lo = e == 1 ? 0xC0000000u : 0x40000000u;
        const uint32_t hi = (e >= 2 ? 1u << (uint32_t)(e - 2) : 0u) + (uint32_t)zp * (1u << (uint32_t)(e - 1));
        q.round = (int64_t)(((uint64_t)hi << 32) | lo);
    }
    return q;
}

/*
 * The same fused step for a doubled accumulator a2 = 2 * acc (|acc| < 2^30), as kernels that can
 * double their weights for free compute it (depthwise conv, pre-widened conv): since
 * high_mul(acc, m) = (acc * m + 2^30) >> 31 = (a2 * m + 2^31) >> 32 is SMMLAR's rounded high word,
 *   clamp(ts_add_offset(requantize(acc, m, s), zp)) = clamp((smmlar(a2, m, round + (a2 >> 31))) >> e),
 *   round = 2^(e-1) + zp * 2^e, e = -s in [1, TS_RQZ_MAX_RIGHT]
 * (ts_rqz_apply's identity; a2 >> 31 is -[acc < 0], and adding it to SMMLAR's accumulator word is
 * exact): one multiply instruction per output. ts_rq2_make needs ts_rqz_ok(shift).
 */
typedef struct {
    int32_t multiplier;
    int32_t round; /* 2^(e-1) + zp * 2^e */
    int32_t sh;    /* e */
} ts_rq2;

static inline ts_rq2 ts_rq2_make(int32_t multiplier, int32_t shift, int32_t zp)
{
    ts_rq2 q;
    q.multiplier = multiplier;
    q.sh = -shift;
    q.round = (int32_t)((1u << (uint32_t)(q.sh - 1)) + (uint32_t)zp * (1u << (uint32_t)q.sh));
    return q;
}

#if TS_HAVE_DSP
/* requantize + zp of the doubled accumulator a2, not yet clamped */
static inline int32_t ts_rq2_apply(int32_t multiplier, int32_t round, int32_t sh, int32_t a2)
{
    return ts_smmlar(a2, multiplier, round + (a2 >> 31)) >> sh;
}
#endif

/* clamp(x, lo, hi) for -128 <= lo <= hi <= 127 */
static inline int32_t ts_clamp8(int32_t x, int32_t lo, int32_t hi)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    x = __ssat(x, 8);
#endif
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* x saturated to [-128, 127] (kept in 32 bits: a store truncates); one SSAT on Armv7E-M */
static inline int32_t ts_sat8(int32_t x)
{
#if defined(__ARM_FEATURE_SAT) && defined(__GNUC__)
    return __ssat(x, 8);
#else
    return ts_clamp(x, TS_INT8_MIN, TS_INT8_MAX);
#endif
}

/* requantize + zp, not yet clamped */
static inline int32_t ts_rqz_apply(int64_t round, int32_t multiplier, int32_t sh, int32_t x)
{
    const int64_t v = round + (int64_t)(int32_t)((uint32_t)x & 0x80000000u) + (int64_t)x * multiplier;
    return (int32_t)(v >> 32) >> sh;
}

static inline int8_t ts_rq_out(const ts_rq *q, int32_t acc, int32_t output_offset, int32_t act_min, int32_t act_max)
{
    return (int8_t)ts_clamp(ts_add_offset(ts_rq_apply(q, acc), output_offset), act_min, act_max);
}

/* The common epilogue of conv / fully connected: requantize, add the output zero point, clamp. */
static inline int8_t ts_requantize_s8_out(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                          int32_t act_min, int32_t act_max)
{
    return (int8_t)ts_clamp(ts_add_offset(ts_requantize(acc, multiplier, shift), output_offset), act_min, act_max);
}

#endif /* TINYSPLIT_REQUANTIZE_H */
