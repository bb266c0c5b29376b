/* void ts_bench_calib_loop(uint32_t iterations): exactly 2 * iterations + 1 instructions. */
    .section .text.ts_bench_calib_loop, "ax", @progbits
    .global ts_bench_calib_loop
    .type ts_bench_calib_loop, @function
ts_bench_calib_loop:
1:  addi    a0, a0, -1
    bnez    a0, 1b
    ret
    .size ts_bench_calib_loop, . - ts_bench_calib_loop
