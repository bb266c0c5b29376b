/*
 * Private: the few SIMD32 (Armv7E-M DSP extension) operations the int8 kernels use.
 *
 * - On a target with the DSP extension (__ARM_FEATURE_DSP) they map to ACLE intrinsics from
 *   <arm_acle.h>; "sxtb16 with rotation by 8" is written as one instruction in inline assembly,
 *   because GCC does not fold a rotate into sxtb16.
 * - With TS_EMULATE_DSP (host tests only) they are exact portable C models of the instructions,
 *   so the very same DSP kernel code runs, and is tested bit for bit, on the build machine.
 * - Otherwise TS_HAVE_DSP is 0 and the kernels use their plain C paths.
 *
 * Packed types are int32_t, as ACLE's int16x2_t / int8x4_t.
 */
#ifndef TINYSPLIT_SIMD_H
#define TINYSPLIT_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && !defined(TS_NO_DSP)
#define TS_HAVE_DSP 1
#include <arm_acle.h>

/* (sext(b0), sext(b2)) as two int16 lanes */
static inline int32_t ts_sxtb16(int32_t x)
{
    return __sxtb16(x);
}

/* (sext(b1), sext(b3)): sxtb16 of x rotated right by 8 */
static inline int32_t ts_sxtb16_ror8(int32_t x)
{
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* (a.lo + sext(b0), a.hi + sext(b2)) */
static inline int32_t ts_sxtab16(int32_t a, int32_t x)
{
    return __sxtab16(a, x);
}

/* (a.lo + sext(b1), a.hi + sext(b3)) */
static inline int32_t ts_sxtab16_ror8(int32_t a, int32_t x)
{
    int32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + x.lo * y.lo + x.hi * y.hi */
static inline int32_t ts_smlad(int32_t x, int32_t y, int32_t acc)
{
    return __smlad(x, y, acc);
}

static inline int32_t ts_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return __smlabb(x, y, acc);
}

static inline int32_t ts_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return __smlatt(x, y, acc);
}

/* acc + ((x * y + 2^31) >> 32): the 64-bit product's rounded high word (no ACLE intrinsic) */
static inline int32_t ts_smmlar(int32_t x, int32_t y, int32_t acc)
{
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(x), "r"(y), "r"(acc));
    return r;
}

#elif defined(TS_EMULATE_DSP)
#define TS_HAVE_DSP 1

static inline int32_t ts_lane_lo(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x & 0xFFFFu);
}

static inline int32_t ts_lane_hi(int32_t x)
{
    return (int32_t)(int16_t)(uint16_t)((uint32_t)x >> 16);
}

static inline int32_t ts_byte(int32_t x, int32_t i)
{
    return (int32_t)(int8_t)(uint8_t)(((uint32_t)x >> (8 * i)) & 0xFFu);
}

static inline int32_t ts_pack16(int32_t lo, int32_t hi)
{
    return (int32_t)(((uint32_t)lo & 0xFFFFu) | (((uint32_t)hi & 0xFFFFu) << 16));
}

static inline int32_t ts_sxtb16(int32_t x)
{
    return ts_pack16(ts_byte(x, 0), ts_byte(x, 2));
}

static inline int32_t ts_sxtb16_ror8(int32_t x)
{
    return ts_pack16(ts_byte(x, 1), ts_byte(x, 3));
}

static inline int32_t ts_sxtab16(int32_t a, int32_t x)
{
    return ts_pack16(ts_lane_lo(a) + ts_byte(x, 0), ts_lane_hi(a) + ts_byte(x, 2));
}

static inline int32_t ts_sxtab16_ror8(int32_t a, int32_t x)
{
    return ts_pack16(ts_lane_lo(a) + ts_byte(x, 1), ts_lane_hi(a) + ts_byte(x, 3));
}

static inline int32_t ts_smlad(int32_t x, int32_t y, int32_t acc)
{
    uint32_t r = (uint32_t)acc + (uint32_t)(ts_lane_lo(x) * ts_lane_lo(y)) + (uint32_t)(ts_lane_hi(x) * ts_lane_hi(y));
    return (int32_t)r;
}

static inline int32_t ts_smlabb(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_lo(x) * ts_lane_lo(y)));
}

static inline int32_t ts_smlatt(int32_t x, int32_t y, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)(ts_lane_hi(x) * ts_lane_hi(y)));
}

static inline int32_t ts_smmlar(int32_t x, int32_t y, int32_t acc)
{
    const uint64_t v = ((uint64_t)(uint32_t)acc << 32) + (uint64_t)((int64_t)x * y) + 0x80000000u;
    return (int32_t)(uint32_t)(v >> 32);
}

#else
#define TS_HAVE_DSP 0
#endif

/* TS_DSP_ASM: the innermost loops of conv / fully connected / depthwise conv as GNU inline
 * assembly (GCC's register allocation spills in the C versions). Each asm statement takes at most
 * 13 registers, so it also builds with a frame pointer (-fno-omit-frame-pointer); not at -O0, where
 * GCC cannot provide that many. The C versions (the same arithmetic) run everywhere else, and are
 * what the host tests check through TS_EMULATE_DSP; the asm is checked on QEMU (Cortex-M4). */
#if defined(__ARM_FEATURE_DSP) && !defined(TS_NO_DSP) && !defined(TS_NO_ASM) && defined(__GNUC__) && defined(__OPTIMIZE__)
#define TS_DSP_ASM 1
#else
#define TS_DSP_ASM 0
#endif

/* Keeps a hot loop's function out of its caller, so that its registers are allocated for it alone;
 * TS_ALWAYS_INLINE specialises a helper for the constant arguments of each caller. */
#if defined(__GNUC__)
#define TS_NOINLINE __attribute__((noinline))
#define TS_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TS_NOINLINE
#define TS_ALWAYS_INLINE inline
#endif

#if TS_HAVE_DSP
/* Unaligned 32-bit load/store (Armv7E-M allows LDR/STR at any address; memcpy compiles to one). */
static inline int32_t ts_load32(const void *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline void ts_store32(void *p, int32_t v)
{
    memcpy(p, &v, 4);
}

/* Two int16 lanes (lo, hi) replicated offset, for sxtab16. */
static inline int32_t ts_dup16(int32_t v)
{
    return (int32_t)(((uint32_t)v & 0xFFFFu) | ((uint32_t)v << 16));
}
#endif

#endif /* TINYSPLIT_SIMD_H */
