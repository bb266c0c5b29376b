/*
 * Instruction-exact time stamps from SysTick on QEMU's mps2-an386 with -icount shift=0.
 *
 * QEMU advances the virtual clock 1 ns per executed instruction; SysTick on the processor clock
 * counts down at 25 MHz, one tick per 40 instructions. A single SysTick read is thus only exact to
 * 40 instructions. ts_stamp reads the phase too:
 *
 *   1. spin until the counter changes; the load X that first sees the new value runs 0..3
 *      instructions after the tick edge (the loop is 4 instructions long) and r3 counts the
 *      iterations, so the number of instructions executed before X is known;
 *   2. exactly 34 instructions after X, load the counter 8 times in a row, one load per
 *      instruction; the index of the first load that sees the next tick (40 instructions after the
 *      first edge) gives X's phase within the tick (profile.c does the arithmetic).
 *
 * Everything after X is straight-line code, so the instruction count from X to the return is a
 * constant; so is the count from the entry to the spin loop. Interrupts are masked meanwhile, and
 * the SysTick wrap counter and pending bit are sampled for the wrap correction.
 *
 * void ts_stamp(ts_stamp_raw *out): out = {value, spins, burst[8], wraps, icsr} (12 words).
 */
    .syntax unified
    .cpu cortex-m4
    .thumb

    .section .text.ts_stamp, "ax", %progbits
    .global ts_stamp
    .type ts_stamp, %function
    .thumb_func
ts_stamp:
    push    {r4-r7, lr}
    cpsid   i
    ldr     r1, =0xE000E018         /* SYST_CVR */
    ldr     r2, [r1]
    movs    r3, #0
1:  adds    r3, r3, #1
    ldr     r4, [r1]                /* X: the last of these loads */
    cmp     r4, r2
    beq     1b
    str     r4, [r0, #0]            /* X+3 */
    str     r3, [r0, #4]            /* X+4 */
    adds    r0, r0, #8              /* X+5 */
    .rept 28                        /* X+6 .. X+33 */
    nop
    .endr
    ldr     r2, [r1]                /* X+34 */
    ldr     r3, [r1]
    ldr     r4, [r1]
    ldr     r5, [r1]
    ldr     r6, [r1]
    ldr     r7, [r1]
    ldr     r12, [r1]
    ldr     lr, [r1]                /* X+41 */
    stmia   r0!, {r2-r7, r12, lr}
    ldr     r2, =ts_systick_wraps
    ldr     r2, [r2]
    ldr     r3, =0xE000ED04         /* SCB_ICSR */
    ldr     r3, [r3]
    stmia   r0!, {r2, r3}
    cpsie   i
    pop     {r4-r7, pc}
    .ltorg
    .size ts_stamp, . - ts_stamp

/* void ts_bench_calib_loop(uint32_t iterations): 2 * iterations + 1 instructions. */
    .section .text.ts_bench_calib_loop, "ax", %progbits
    .global ts_bench_calib_loop
    .type ts_bench_calib_loop, %function
    .thumb_func
ts_bench_calib_loop:
1:  subs    r0, r0, #1
    bne     1b
    bx      lr
    .size ts_bench_calib_loop, . - ts_bench_calib_loop
