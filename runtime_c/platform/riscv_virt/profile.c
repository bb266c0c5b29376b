/*
 * tinysplit per-layer profiling on QEMU's riscv32 virt machine: the TS_LAYER_BEGIN/END hooks of
 * tinysplit/profile.h and the ts_bench.h measurement API, on the instret counter.
 *
 * With -icount shift=0, QEMU 7.2 answers reads of instret (and cycle) with its instruction
 * counter, so rdinstret/rdinstreth give the number of executed guest instructions directly: no
 * conversion. The begin hooks end with the counter read and the end hooks start with it; the
 * instructions of the hooks themselves are calibrated once with an empty region and subtracted.
 *
 * The stack: picolibc.ld puts a __stack_size region (stack_size.S) below __stack, the top of RAM;
 * the link defines ts_stack_top = __stack and ts_stack_bottom = __heap_end for ts_stack.c, and a
 * constructor paints the stack before main.
 */
#include <stdint.h>

#include "tinysplit/profile.h"
#include "ts_bench.h"

static uint64_t ts_layer_begin_count, ts_total_begin_count;
static int64_t ts_layer_overhead, ts_total_overhead;
static uint64_t ts_total_count, ts_last_layer_count;
static uint32_t ts_errors;

/* Inline so that the read sits at the very end of a begin hook and at the very start of an end
 * hook. The high word is re-read to catch a carry out of the low word in between. */
static inline __attribute__((always_inline)) uint64_t ts_instret(void)
{
    uint32_t hi, lo, hi2;
    do {
        __asm__ volatile("rdinstreth %0" : "=r"(hi));
        __asm__ volatile("rdinstret %0" : "=r"(lo));
        __asm__ volatile("rdinstreth %0" : "=r"(hi2));
    } while (hi != hi2);
    return ((uint64_t)hi << 32) | lo;
}

static uint64_t ts_clamp(int64_t count)
{
    if (count < 0) {
        ts_errors |= 4u;
        return 0u;
    }
    return (uint64_t)count;
}

__attribute__((noipa)) void ts_profile_layer_begin(int32_t layer)
{
    (void)layer;
    ts_layer_begin_count = ts_instret();
}

__attribute__((noipa)) void ts_profile_layer_end(int32_t layer)
{
    const uint64_t now = ts_instret();
    ts_last_layer_count = ts_clamp((int64_t)(now - ts_layer_begin_count) - ts_layer_overhead);
    if (layer >= 0 && layer < ts_bench_layer_count) {
        ts_bench_layer_counts[layer] += ts_last_layer_count;
    }
}

__attribute__((noipa)) void ts_bench_begin(void)
{
    ts_total_begin_count = ts_instret();
}

__attribute__((noipa)) void ts_bench_end(void)
{
    const uint64_t now = ts_instret();
    ts_total_count = ts_clamp((int64_t)(now - ts_total_begin_count) - ts_total_overhead);
}

uint64_t ts_bench_total(void)
{
    return ts_total_count;
}

uint32_t ts_bench_error(void)
{
    return ts_errors;
}

/* picolibc's crt0 runs the constructors after initialising .data and .bss, before main: the
 * earliest point at which C code can paint the stack. */
__attribute__((constructor)) static void ts_paint_stack_at_start(void)
{
    (void)ts_bench_stack_paint();
}

void ts_bench_init(void)
{
    uint64_t first;
    int32_t i;

    for (i = 0; i < ts_bench_layer_count; i++) {
        ts_bench_layer_counts[i] = 0u;
    }
    ts_layer_overhead = 0;
    ts_profile_layer_begin(-1);
    ts_profile_layer_end(-1);
    first = ts_last_layer_count;
    ts_profile_layer_begin(-1);
    ts_profile_layer_end(-1);
    if (ts_last_layer_count != first) {
        ts_errors |= 8u;
    }
    ts_layer_overhead = (int64_t)first;

    ts_total_overhead = 0;
    ts_bench_begin();
    ts_bench_end();
    ts_total_overhead = (int64_t)ts_total_count;
    ts_total_count = 0u;
}

uint64_t ts_bench_calibrate(uint32_t iterations)
{
    if (iterations == 0u) {
        return 0u;
    }
    ts_profile_layer_begin(-1);
    ts_bench_calib_loop(iterations);
    ts_profile_layer_end(-1);
    return ts_last_layer_count;
}
