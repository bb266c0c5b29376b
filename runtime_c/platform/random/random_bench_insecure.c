/*
 * NOT SECURE. ts_platform_random for emulated benchmarks only (QEMU boards without an RNG): a
 * fixed-seed xorshift32 that anyone can reproduce, and then subtract the noise. It exists so that
 * instruction counts of models with noise can be measured; a real device links random_riot.c.
 * Its cost per byte is far below a CSPRNG's: benchmarks using it undercount the noise layer.
 */
#include <stdint.h>

#include "tinysplit/platform.h"

#ifndef TS_INSECURE_RANDOM_FOR_BENCHMARKS
#error "random_bench_insecure.c is predictable: define TS_INSECURE_RANDOM_FOR_BENCHMARKS to acknowledge it"
#endif

void ts_platform_random(uint8_t *buf, size_t n)
{
    static uint32_t state = 2463534242u;
    while (n-- > 0) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *buf++ = (uint8_t)(state >> 24);
    }
}
