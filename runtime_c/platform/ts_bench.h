/*
 * tinysplit benchmark platform API: what a harness main needs from an emulated board.
 *
 * Every platform directory (mps2_an386, riscv_virt) implements these functions together with the
 * per-layer hooks of tinysplit/profile.h (ts_profile_layer_begin/end). Counts are "emulated
 * instructions": the number of guest instructions QEMU executed (with -icount shift=0), after
 * subtracting the constant cost of the measurement itself, calibrated at ts_bench_init().
 */
#ifndef TINYSPLIT_TS_BENCH_H
#define TINYSPLIT_TS_BENCH_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Per-layer storage, defined by the harness main (it knows the model's layer count). The hooks
 * add the instructions of each TS_LAYER_BEGIN(i)..TS_LAYER_END(i) region to ts_bench_layer_counts[i]. */
extern uint64_t ts_bench_layer_counts[];
extern const int32_t ts_bench_layer_count;

/* Starts the instruction counter and calibrates the hook overhead. Call once, first. */
void ts_bench_init(void);

/* Brackets the whole inference; ts_bench_total() is the instructions executed in between. */
void ts_bench_begin(void);
void ts_bench_end(void);
uint64_t ts_bench_total(void);

/* Executes exactly 2 * iterations + 1 instructions (iterations >= 1): a two-instruction
 * count-down loop and a return. Written in assembly so the count does not depend on the compiler. */
void ts_bench_calib_loop(uint32_t iterations);

/* Measures ts_bench_calib_loop(iterations) with the layer hooks, as a model layer would be. */
uint64_t ts_bench_calibrate(uint32_t iterations);

/* Nonzero when a measurement was inconsistent (then the counts must not be trusted). */
uint32_t ts_bench_error(void);

/* Stack painting. The start-up code paints the whole stack before main; ts_bench_stack_paint()
 * repaints everything below the caller's stack pointer and returns that stack pointer. */
uintptr_t ts_bench_stack_paint(void);
/* Lowest stack address written since the last paint (the stack top when nothing was written). */
uintptr_t ts_bench_stack_lowest(void);
uintptr_t ts_bench_stack_top(void);
uintptr_t ts_bench_stack_bottom(void);

#ifdef __cplusplus
}
#endif

#endif /* TINYSPLIT_TS_BENCH_H */
