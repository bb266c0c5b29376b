/*
 * tinysplit per-layer profiling on QEMU's mps2-an386: the TS_LAYER_BEGIN/END hooks of
 * tinysplit/profile.h and the ts_bench.h measurement API, on SysTick.
 *
 * Conversion: QEMU runs with -icount shift=0, so its virtual clock advances exactly 1 ns per
 * executed guest instruction. SysTick on the processor clock (CLKSOURCE=1) of this board counts at
 * 25 MHz, i.e. one tick per 40 ns = 40 instructions. ts_stamp (stamp.S) resolves the phase inside
 * a tick, so a stamp is exact to one instruction:
 *
 *     t = 40 * ticks - first          (plus a constant that cancels in differences)
 *
 * where ticks is the 64-bit tick count (SysTick wraps counted by its interrupt) at the load X and
 * `first` is the index of the first burst load that saw the next tick. A region's count is
 * t(end stamp's entry) - t(begin stamp's exit) minus the hooks' own instructions, calibrated once
 * with an empty region: what remains is the instructions executed between the two hook calls.
 */
#include <stdint.h>

#include "tinysplit/profile.h"
#include "ts_bench.h"

#ifndef TS_SYSTICK_RELOAD
#define TS_SYSTICK_RELOAD 0x00FFFFFFu /* 24-bit SysTick: a wrap every 2^24 ticks (671M instructions) */
#endif
#define TS_INSTRUCTIONS_PER_TICK 40 /* 1 instruction = 1 ns (icount shift=0); SysTick at 25 MHz */
#define TS_SPIN_INSTRUCTIONS 4      /* length of ts_stamp's spin loop */
#define TS_BURST 8

#define TS_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define TS_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define TS_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define TS_ICSR_PENDSTSET (1u << 26)

typedef struct {
    uint32_t value;
    uint32_t spins;
    uint32_t burst[TS_BURST];
    uint32_t wraps;
    uint32_t icsr;
} ts_stamp_raw;

void ts_stamp(ts_stamp_raw *out); /* stamp.S */

volatile uint32_t ts_systick_wraps;

static ts_stamp_raw ts_layer_begin_stamp, ts_layer_end_stamp, ts_total_begin_stamp, ts_total_end_stamp;
static int64_t ts_layer_overhead, ts_total_overhead;
static uint64_t ts_total_count;
static uint64_t ts_last_layer_count;
static uint32_t ts_errors;

void ts_systick_handler(void)
{
    ts_systick_wraps++;
}

/* Instruction time of the stamp's load X, up to a constant. */
static int64_t ts_stamp_time(const ts_stamp_raw *s)
{
    const uint32_t reload = TS_SYSTICK_RELOAD;
    uint64_t wraps = s->wraps;
    uint64_t ticks;
    uint32_t next = s->value == 0u ? reload : s->value - 1u;
    int32_t first = -1;
    int32_t i;

    /* A wrap that happened while interrupts were masked is pending and not yet counted; it
     * concerns X only if X saw a value just after the wrap (near the reload value). */
    if ((s->icsr & TS_ICSR_PENDSTSET) != 0u && s->value > reload / 2u) {
        wraps++;
    }
    ticks = wraps * ((uint64_t)reload + 1u) + (reload - s->value);

    for (i = 0; i < TS_BURST; i++) {
        if (s->burst[i] != s->value) {
            first = i;
            break;
        }
    }
    /* The burst must straddle exactly one tick edge, with old values before it and the next
     * value after it; anything else means the phase is unknown. */
    if (first < 1 || s->burst[TS_BURST - 1] != next) {
        ts_errors |= 1u;
    }
    for (i = first < 0 ? TS_BURST : first; i < TS_BURST; i++) {
        if (s->burst[i] != next) {
            ts_errors |= 2u;
        }
    }
    return (int64_t)ticks * TS_INSTRUCTIONS_PER_TICK - first;
}

/* Instructions from the exit of the begin stamp to the entry of the end stamp, plus a constant. */
static int64_t ts_region(const ts_stamp_raw *begin, const ts_stamp_raw *end)
{
    return ts_stamp_time(end) - (int64_t)end->spins * TS_SPIN_INSTRUCTIONS - ts_stamp_time(begin);
}

static uint64_t ts_clamp(int64_t count)
{
    if (count < 0) {
        ts_errors |= 4u;
        return 0u;
    }
    return (uint64_t)count;
}

/* The begin hooks end with the stamp (everything after its load X is straight-line code) and the
 * end hooks start with it, so that the hooks' own work stays outside the measured region. */
__attribute__((noipa)) void ts_profile_layer_begin(int32_t layer)
{
    (void)layer;
    ts_stamp(&ts_layer_begin_stamp);
}

__attribute__((noipa)) void ts_profile_layer_end(int32_t layer)
{
    int64_t count;
    ts_stamp(&ts_layer_end_stamp);
    count = ts_region(&ts_layer_begin_stamp, &ts_layer_end_stamp) - ts_layer_overhead;
    ts_last_layer_count = ts_clamp(count);
    if (layer >= 0 && layer < ts_bench_layer_count) {
        ts_bench_layer_counts[layer] += ts_last_layer_count;
    }
}

__attribute__((noipa)) void ts_bench_begin(void)
{
    ts_stamp(&ts_total_begin_stamp);
}

__attribute__((noipa)) void ts_bench_end(void)
{
    ts_stamp(&ts_total_end_stamp);
    ts_total_count = ts_clamp(ts_region(&ts_total_begin_stamp, &ts_total_end_stamp) - ts_total_overhead);
}

uint64_t ts_bench_total(void)
{
    return ts_total_count;
}

uint32_t ts_bench_error(void)
{
    return ts_errors;
}

void ts_bench_init(void)
{
    int64_t first;
    int32_t i;

    TS_SYST_CSR = 0u;
    TS_SYST_RVR = TS_SYSTICK_RELOAD;
    TS_SYST_CVR = 0u;
    ts_systick_wraps = 0u;
    TS_SYST_CSR = 0x7u; /* CLKSOURCE = processor clock, TICKINT, ENABLE */
    for (i = 0; i < ts_bench_layer_count; i++) {
        ts_bench_layer_counts[i] = 0u;
    }

    /* Empty regions measure the hooks' own instructions; they must be the same every time. */
    ts_layer_overhead = 0;
    ts_profile_layer_begin(-1);
    ts_profile_layer_end(-1);
    first = (int64_t)ts_last_layer_count;
    ts_profile_layer_begin(-1);
    ts_profile_layer_end(-1);
    if ((int64_t)ts_last_layer_count != first) {
        ts_errors |= 8u;
    }
    ts_layer_overhead = first;

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
