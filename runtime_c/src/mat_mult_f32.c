/* Private: the float32 kernels' inner loops, in assembly for Cortex-M4F and in C (mat_mult_f32.h). */
#include "mat_mult_f32.h"

#include <float.h>
#include <string.h>

#if TS_HAVE_F32_ASM

/*
 * Cortex-M4F (fpv4-sp-d16: s0-s31) assembly, as functions of their own (AAPCS: the argument struct
 * in r0; r4-r11 and s16-s31 saved). QEMU -icount counts a VLDM of n registers as one instruction; on
 * silicon it takes about n + 1 cycles, as n pipelined VLDRs would.
 */
#define TS_V(acc, w, x) "vmla.f32 s" #acc ", s" #w ", s" #x "\n\t"
#define TS_FUNC_BEGIN(name)                                                                                   \
    "\t.pushsection .text." #name ",\"ax\",%progbits\n\t.syntax unified\n\t.thumb\n\t.p2align 2\n"      \
    "\t.global " #name "\n\t.hidden " #name "\n\t.type " #name ", %function\n\t.thumb_func\n" #name ":\n\t"
#define TS_FUNC_END(name) "\n\t.size " #name ", .-" #name "\n\t.popsection\n"

/* Convolution, 4 rows x 1 to 3 pixels: accumulators s0-s11 (pixel p, row r in s[4p + r]), weights of
 * four k in s12-s27 (k + i, row r in s[12 + 4i + r]), four inputs of one pixel in s28-s31.
 * The loop runs 16 k per iteration; it is entered part way (skip groups of 4 k) when K / 4 is not a
 * multiple of 4. Every instruction of a group of 4 k is 32 bits wide: a group is (1 + 17 * pixels) * 4
 * bytes. After each group of pixels the pointers in the arguments advance to the next group.
 * r0 args, r1-r3 inputs of the pixels, r4 weights, r5 bias, r6 K % 4, r7-r9 outputs,
 * r10 blocks left, r11 entry point, r12 iterations left, lr single-k counter. */
#define TS_CONV_PIXEL(xr, a0, a1, a2, a3)                                                                    \
    "vldmia " xr "!, {s28-s31}\n\t"                                                                           \
    TS_V(a0, 12, 28) TS_V(a1, 13, 28) TS_V(a2, 14, 28) TS_V(a3, 15, 28)                                     \
    TS_V(a0, 16, 29) TS_V(a1, 17, 29) TS_V(a2, 18, 29) TS_V(a3, 19, 29)                                     \
    TS_V(a0, 20, 30) TS_V(a1, 21, 30) TS_V(a2, 22, 30) TS_V(a3, 23, 30)                                     \
    TS_V(a0, 24, 31) TS_V(a1, 25, 31) TS_V(a2, 26, 31) TS_V(a3, 27, 31)
#define TS_CONV_K4_1 "vldmia r4!, {s12-s27}\n\t" TS_CONV_PIXEL("r1", 0, 1, 2, 3)
#define TS_CONV_K4_2 TS_CONV_K4_1 TS_CONV_PIXEL("r2", 4, 5, 6, 7)
#define TS_CONV_K4_3 TS_CONV_K4_2 TS_CONV_PIXEL("r3", 8, 9, 10, 11)
#define TS_CONV_K1_1                                                                                          \
    "vldmia r4!, {s12-s15}\n\t"                                                                               \
    "vldmia r1!, {s28}\n\t" TS_V(0, 12, 28) TS_V(1, 13, 28) TS_V(2, 14, 28) TS_V(3, 15, 28)
#define TS_CONV_K1_2 TS_CONV_K1_1 "vldmia r2!, {s29}\n\t" TS_V(4, 12, 29) TS_V(5, 13, 29) TS_V(6, 14, 29) TS_V(7, 15, 29)
#define TS_CONV_K1_3                                                                                          \
    TS_CONV_K1_2 "vldmia r3!, {s30}\n\t" TS_V(8, 12, 30) TS_V(9, 13, 30) TS_V(10, 14, 30) TS_V(11, 15, 30)
#define TS_CONV_BIAS_1 "vldmia r5!, {s0-s3}\n\t"
#define TS_CONV_BIAS_2 "vldmia r5, {s4-s7}\n\t" TS_CONV_BIAS_1
#define TS_CONV_BIAS_3 "vldmia r5, {s8-s11}\n\t" TS_CONV_BIAS_2
#define TS_CONV_OUT_1 "vstmia r7!, {s0-s3}\n\t"
#define TS_CONV_OUT_2 "vstmia r8!, {s4-s7}\n\t" TS_CONV_OUT_1
#define TS_CONV_OUT_3 "vstmia r9!, {s8-s11}\n\t" TS_CONV_OUT_2

#define TS_GEMM4_FUNC(name, group_bytes, k4, k1, bias, out)                                                  \
    __asm__(TS_FUNC_BEGIN(name) "push {r4-r11, lr}\n\t"                                                      \
                                "vpush {s16-s31}\n\t"                                                         \
                                "ldr r12, [r0, #44]\n\t"                                                      \
                                "movs lr, #" #group_bytes "\n\t"                                              \
                                "adr r4, 2f\n\t"                                                              \
                                "mla r11, lr, r12, r4\n\t"                                                    \
                                "orr r11, r11, #1\n"                                                          \
                                "0:\n\t"                                                                      \
                                "add r4, r0, #16\n\t"                                                         \
                                "ldm r4, {r4-r10}\n"                                                          \
                                "1:\n\t"                                                                      \
                                "ldm r0, {r1, r2, r3, r12}\n\t" bias "bx r11\n\t"                             \
                                ".p2align 2\n"                                                                \
                                "2:\n\t" k4 k4 k4 k4 "subs r12, r12, #1\n\t"                                  \
                                "bne 2b\n\t"                                                                  \
                                "cbz r6, 4f\n\t"                                                              \
                                "mov lr, r6\n"                                                                \
                                "3:\n\t" k1 "subs lr, lr, #1\n\t"                                             \
                                "bne 3b\n"                                                                    \
                                "4:\n\t" out "subs r10, r10, #1\n\t"                                          \
                                "bne 1b\n\t"                                                                  \
                                "ldr lr, [r0, #52]\n\t"                                                       \
                                "subs lr, lr, #1\n\t"                                                         \
                                "beq 5f\n\t"                                                                  \
                                "str lr, [r0, #52]\n\t"                                                       \
                                "ldm r0, {r1, r2, r3}\n\t"                                                    \
                                "ldr r12, [r0, #56]\n\t"                                                      \
                                "add r1, r1, r12\n\t"                                                         \
                                "add r2, r2, r12\n\t"                                                         \
                                "add r3, r3, r12\n\t"                                                         \
                                "stm r0, {r1, r2, r3}\n\t"                                                    \
                                "add lr, r0, #28\n\t"                                                         \
                                "ldm lr, {r1, r2, r3}\n\t"                                                    \
                                "ldr r12, [r0, #60]\n\t"                                                      \
                                "add r1, r1, r12\n\t"                                                         \
                                "add r2, r2, r12\n\t"                                                         \
                                "add r3, r3, r12\n\t"                                                         \
                                "stm lr, {r1, r2, r3}\n\t"                                                    \
                                "b 0b\n"                                                                      \
                                "5:\n\t"                                                                      \
                                "vpop {s16-s31}\n\t"                                                          \
                                "pop {r4-r11, pc}" TS_FUNC_END(name))

TS_GEMM4_FUNC(ts_priv_gemm4x3_f32, 208, TS_CONV_K4_3, TS_CONV_K1_3, TS_CONV_BIAS_3, TS_CONV_OUT_3);
TS_GEMM4_FUNC(ts_priv_gemm4x2_f32, 140, TS_CONV_K4_2, TS_CONV_K1_2, TS_CONV_BIAS_2, TS_CONV_OUT_2);
TS_GEMM4_FUNC(ts_priv_gemm4x1_f32, 72, TS_CONV_K4_1, TS_CONV_K1_1, TS_CONV_BIAS_1, TS_CONV_OUT_1);

/* Fully connected, 8 rows x 1 vector: accumulators s0-s7, weights of two k in s8-s23 (k + i, row r
 * in s[8 + 8i + r]), eight inputs in s24-s31.
 * r1 input, r2 input start, r3 K / 8, r4 weights, r5 bias, r6 output, r7 blocks left, r8 K % 8,
 * r9 bias step, r10 and r12 counters. */
#define TS_FC_K2(x0, x1)                                                                                      \
    "vldmia r4!, {s8-s23}\n\t"                                                                                \
    TS_V(0, 8, x0) TS_V(1, 9, x0) TS_V(2, 10, x0) TS_V(3, 11, x0)                                           \
    TS_V(4, 12, x0) TS_V(5, 13, x0) TS_V(6, 14, x0) TS_V(7, 15, x0)                                         \
    TS_V(0, 16, x1) TS_V(1, 17, x1) TS_V(2, 18, x1) TS_V(3, 19, x1)                                         \
    TS_V(4, 20, x1) TS_V(5, 21, x1) TS_V(6, 22, x1) TS_V(7, 23, x1)
#define TS_FC_K8 "vldmia r1!, {s24-s31}\n\t" TS_FC_K2(24, 25) TS_FC_K2(26, 27) TS_FC_K2(28, 29) TS_FC_K2(30, 31)

__asm__(TS_FUNC_BEGIN(ts_priv_gemm8x1_f32)
        "push {r4-r11, lr}\n\t"
        "vpush {s16-s31}\n\t"
        "ldm r0, {r2-r9}\n"
        "1:\n\t"
        "mov r1, r2\n\t"
        "vldmia r5, {s0-s7}\n\t"
        "add r5, r5, r9\n\t"
        "lsrs r12, r3, #1\n\t"
        "beq 3f\n"
        "2:\n\t"
        TS_FC_K8 TS_FC_K8
        "subs r12, r12, #1\n\t"
        "bne 2b\n"
        "3:\n\t"
        "tst r3, #1\n\t"
        "beq 4f\n\t"
        TS_FC_K8
        "4:\n\t"
        "movs r10, r8\n\t"
        "beq 6f\n"
        "5:\n\t"
        "vldmia r1!, {s24}\n\t"
        "vldmia r4!, {s8-s15}\n\t"
        TS_V(0, 8, 24) TS_V(1, 9, 24) TS_V(2, 10, 24) TS_V(3, 11, 24)
        TS_V(4, 12, 24) TS_V(5, 13, 24) TS_V(6, 14, 24) TS_V(7, 15, 24)
        "subs r10, r10, #1\n\t"
        "bne 5b\n"
        "6:\n\t"
        "vstmia r6!, {s0-s7}\n\t"
        "subs r7, r7, #1\n\t"
        "bne 1b\n\t"
        "vpop {s16-s31}\n\t"
        "pop {r4-r11, pc}"
        TS_FUNC_END(ts_priv_gemm8x1_f32));

/* Depthwise, 4 pixels (one below the other) x 4 channels: accumulators s0-s15 (pixel p, channel c in
 * s[4p + c]), weights of one kernel column s16-s27 (kernel row kh, channel c in s[16 + 4kh + c]),
 * four channels of one input row in s28-s31; input row j serves pixel p with kernel row j - p.
 * r1-r6 input rows, r7 weights, r8 accumulator buffer, r9 bias (0 once used), r10 blocks left,
 * r11 passes left; in the last pass r0, r11, r12, lr are the output pointers. */
#define TS_DW_BODY                                                                                            \
    "vldmia r7!, {s16-s27}\n\t"                                                                               \
    "vldmia r1!, {s28-s31}\n\t"                                                                               \
    TS_V(0, 16, 28) TS_V(1, 17, 29) TS_V(2, 18, 30) TS_V(3, 19, 31)                                         \
    "vldmia r2!, {s28-s31}\n\t"                                                                               \
    TS_V(4, 16, 28) TS_V(5, 17, 29) TS_V(6, 18, 30) TS_V(7, 19, 31)                                         \
    TS_V(0, 20, 28) TS_V(1, 21, 29) TS_V(2, 22, 30) TS_V(3, 23, 31)                                         \
    "vldmia r3!, {s28-s31}\n\t"                                                                               \
    TS_V(8, 16, 28) TS_V(9, 17, 29) TS_V(10, 18, 30) TS_V(11, 19, 31)                                       \
    TS_V(4, 20, 28) TS_V(5, 21, 29) TS_V(6, 22, 30) TS_V(7, 23, 31)                                         \
    TS_V(0, 24, 28) TS_V(1, 25, 29) TS_V(2, 26, 30) TS_V(3, 27, 31)                                         \
    "vldmia r4!, {s28-s31}\n\t"                                                                               \
    TS_V(12, 16, 28) TS_V(13, 17, 29) TS_V(14, 18, 30) TS_V(15, 19, 31)                                     \
    TS_V(8, 20, 28) TS_V(9, 21, 29) TS_V(10, 22, 30) TS_V(11, 23, 31)                                       \
    TS_V(4, 24, 28) TS_V(5, 25, 29) TS_V(6, 26, 30) TS_V(7, 27, 31)                                         \
    "vldmia r5!, {s28-s31}\n\t"                                                                               \
    TS_V(12, 20, 28) TS_V(13, 21, 29) TS_V(14, 22, 30) TS_V(15, 23, 31)                                     \
    TS_V(8, 24, 28) TS_V(9, 25, 29) TS_V(10, 26, 30) TS_V(11, 27, 31)                                       \
    "vldmia r6!, {s28-s31}\n\t"                                                                               \
    TS_V(12, 24, 28) TS_V(13, 25, 29) TS_V(14, 26, 30) TS_V(15, 27, 31)
#define TS_DW_BIAS "vldmia r9, {s0-s3}\n\tvldmia r9, {s4-s7}\n\tvldmia r9, {s8-s11}\n\tvldmia r9!, {s12-s15}\n\t"
#define TS_DW_OUT "vstmia r0!, {s0-s3}\n\tvstmia r11!, {s4-s7}\n\tvstmia r12!, {s8-s11}\n\tvstmia lr!, {s12-s15}\n\t"
/* One pixel: accumulators s0-s3, input rows r1-r3 only. */
#define TS_DW_BODY1                                                                                           \
    "vldmia r7!, {s16-s27}\n\t"                                                                               \
    "vldmia r1!, {s28-s31}\n\t"                                                                               \
    TS_V(0, 16, 28) TS_V(1, 17, 29) TS_V(2, 18, 30) TS_V(3, 19, 31)                                         \
    "vldmia r2!, {s28-s31}\n\t"                                                                               \
    TS_V(0, 20, 28) TS_V(1, 21, 29) TS_V(2, 22, 30) TS_V(3, 23, 31)                                         \
    "vldmia r3!, {s28-s31}\n\t"                                                                               \
    TS_V(0, 24, 28) TS_V(1, 25, 29) TS_V(2, 26, 30) TS_V(3, 27, 31)
#define TS_DW_BIAS1 "vldmia r9!, {s0-s3}\n\t"
#define TS_DW_OUT1 "vstmia r0!, {s0-s3}\n\t"

/* The passes over the kernel columns: the first starts from the bias, the last stores the outputs,
 * the others go through the accumulator buffer (acc_regs, as one VLDM/VSTM). */
#define TS_DW_FUNC(name, body, bias, out, acc_regs)                                                           \
    __asm__(TS_FUNC_BEGIN(name) "push {r4-r11, lr}\n\t"                                                      \
                                "vpush {s16-s31}\n\t"                                                         \
                                "ldm r0, {r1-r6}\n\t"                                                         \
                                "ldr r7, [r0, #24]\n\t"                                                       \
                                "ldr r9, [r0, #28]\n\t"                                                       \
                                "ldr r11, [r0, #32]\n"                                                        \
                                "1:\n\t"                                                                      \
                                "ldr r8, [r0, #36]\n\t"                                                       \
                                "ldr r10, [r0, #40]\n\t"                                                      \
                                "cmp r11, #1\n\t"                                                             \
                                "beq 5f\n\t"                                                                  \
                                "cmp r9, #0\n\t"                                                              \
                                "beq 3f\n"                                                                    \
                                "2:\n\t" bias body "vstmia r8!, " acc_regs "\n\t"                             \
                                "subs r10, r10, #1\n\t"                                                       \
                                "bne 2b\n\t"                                                                  \
                                "movs r9, #0\n\t"                                                             \
                                "b 4f\n"                                                                      \
                                "3:\n\t"                                                                      \
                                "vldmia r8, " acc_regs "\n\t" body "vstmia r8!, " acc_regs "\n\t"             \
                                "subs r10, r10, #1\n\t"                                                       \
                                "bne 3b\n"                                                                    \
                                "4:\n\t"                                                                      \
                                "subs r11, r11, #1\n\t"                                                       \
                                "b 1b\n"                                                                      \
                                "5:\n\t"                                                                      \
                                "add lr, r0, #44\n\t"                                                         \
                                "ldm lr, {r0, r11, r12, lr}\n\t"                                              \
                                "cmp r9, #0\n\t"                                                              \
                                "beq 7f\n"                                                                    \
                                "6:\n\t" bias body out "subs r10, r10, #1\n\t"                                \
                                "bne 6b\n\t"                                                                  \
                                "b 8f\n"                                                                      \
                                "7:\n\t"                                                                      \
                                "vldmia r8!, " acc_regs "\n\t" body out "subs r10, r10, #1\n\t"               \
                                "bne 7b\n"                                                                    \
                                "8:\n\t"                                                                      \
                                "vpop {s16-s31}\n\t"                                                          \
                                "pop {r4-r11, pc}" TS_FUNC_END(name))

TS_DW_FUNC(ts_priv_dw3x4_f32, TS_DW_BODY, TS_DW_BIAS, TS_DW_OUT, "{s0-s15}");
TS_DW_FUNC(ts_priv_dw3x1_f32, TS_DW_BODY1, TS_DW_BIAS1, TS_DW_OUT1, "{s0-s3}");

/* y = a op b, 16 values per iteration through s0-s31, then one at a time. */
#define TS_OP16(op)                                                                                           \
    op " s0, s0, s16\n\t" op " s1, s1, s17\n\t" op " s2, s2, s18\n\t" op " s3, s3, s19\n\t" op               \
       " s4, s4, s20\n\t" op " s5, s5, s21\n\t" op " s6, s6, s22\n\t" op " s7, s7, s23\n\t" op               \
       " s8, s8, s24\n\t" op " s9, s9, s25\n\t" op " s10, s10, s26\n\t" op " s11, s11, s27\n\t" op           \
       " s12, s12, s28\n\t" op " s13, s13, s29\n\t" op " s14, s14, s30\n\t" op " s15, s15, s31\n\t"
#define TS_BINARY(name, op)                                                                                   \
    __asm__(TS_FUNC_BEGIN(name) "vpush {s16-s31}\n\t"                                                        \
                                "lsrs r12, r3, #4\n\t"                                                        \
                                "beq 2f\n"                                                                    \
                                "1:\n\t"                                                                      \
                                "vldmia r0!, {s0-s15}\n\t"                                                    \
                                "vldmia r1!, {s16-s31}\n\t" TS_OP16(op) "vstmia r2!, {s0-s15}\n\t"            \
                                "subs r12, r12, #1\n\t"                                                       \
                                "bne 1b\n"                                                                    \
                                "2:\n\t"                                                                      \
                                "ands r3, r3, #15\n\t"                                                        \
                                "beq 4f\n"                                                                    \
                                "3:\n\t"                                                                      \
                                "vldmia r0!, {s0}\n\t"                                                        \
                                "vldmia r1!, {s16}\n\t" op " s0, s0, s16\n\t"                                 \
                                "vstmia r2!, {s0}\n\t"                                                        \
                                "subs r3, r3, #1\n\t"                                                         \
                                "bne 3b\n"                                                                    \
                                "4:\n\t"                                                                      \
                                "vpop {s16-s31}\n\t"                                                          \
                                "bx lr" TS_FUNC_END(name))

TS_BINARY(ts_priv_add_f32, "vadd.f32");
TS_BINARY(ts_priv_mul_f32, "vmul.f32");

/* Sums of 16 channels: s0-s15 the sums, s16-s31 one cell.
 * r1 cell, r2 cells per row, r3 rows left, r4 cell step, r5 row skip, r6 zeros, r12 cells left. */
__asm__(TS_FUNC_BEGIN(ts_priv_sum16_f32)
        "push {r4-r6, lr}\n\t"
        "vpush {s16-s31}\n\t"
        "ldm r0, {r1-r6}\n\t"
        "vldmia r6, {s0-s15}\n"
        "1:\n\t"
        "mov r12, r2\n"
        "2:\n\t"
        "vldmia r1, {s16-s31}\n\t"
        "add r1, r1, r4\n\t"
        TS_OP16("vadd.f32")
        "subs r12, r12, #1\n\t"
        "bne 2b\n\t"
        "add r1, r1, r5\n\t"
        "subs r3, r3, #1\n\t"
        "bne 1b\n\t"
        "ldr r12, [r0, #24]\n\t"
        "vstmia r12, {s0-s15}\n\t"
        "vpop {s16-s31}\n\t"
        "pop {r4-r6, pc}"
        TS_FUNC_END(ts_priv_sum16_f32));

/* max(x, +0) on the bits, twelve words per LDM/STM: a float with its sign bit set becomes +0. */
void ts_priv_relu_f32(float *data, int32_t n);
#define TS_BIC(r) "bic " r ", " r ", " r ", asr #31\n\t"
__asm__(TS_FUNC_BEGIN(ts_priv_relu_f32)
        "push {r4-r11, lr}\n\t"
        "subs r1, r1, #12\n\t"
        "blt 2f\n"
        "1:\n\t"
        "ldm r0, {r2-r12, lr}\n\t"
        TS_BIC("r2") TS_BIC("r3") TS_BIC("r4") TS_BIC("r5") TS_BIC("r6") TS_BIC("r7")
        TS_BIC("r8") TS_BIC("r9") TS_BIC("r10") TS_BIC("r11") TS_BIC("r12") TS_BIC("lr")
        "stmia r0!, {r2-r12, lr}\n\t"
        "subs r1, r1, #12\n\t"
        "bge 1b\n"
        "2:\n\t"
        "adds r1, r1, #12\n\t"
        "beq 4f\n"
        "3:\n\t"
        "ldr r2, [r0]\n\t"
        TS_BIC("r2")
        "str r2, [r0], #4\n\t"
        "subs r1, r1, #1\n\t"
        "bne 3b\n"
        "4:\n\t"
        "pop {r4-r11, pc}"
        TS_FUNC_END(ts_priv_relu_f32));

/* Row by row: rows of 4, 8 or 12 words as one VLDM/VSTM each; other rows 16 words per VLDM/VSTM
 * through s0-s15, then 8, 4 and single words.
 * r0 dst, r1 src, r2 n, r3 rows, r4 dst stride, r5 src stride (bytes), r6 r7 row pointers. */
#define TS_COPY_ROWS(label, regs)                                                                             \
    label ":\n\t"                                                                                             \
    "vldmia r1, " regs "\n\t"                                                                                 \
    "vstmia r0, " regs "\n\t"                                                                                 \
    "add r0, r0, r4\n\t"                                                                                      \
    "add r1, r1, r5\n\t"                                                                                      \
    "subs r3, r3, #1\n\t"                                                                                     \
    "bne " label "b\n\t"                                                                                      \
    "pop {r4-r8, pc}\n"
__asm__(TS_FUNC_BEGIN(ts_priv_copy_rows_f32)
        "push {r4-r8, lr}\n\t"
        "ldrd r4, r5, [sp, #24]\n\t"
        "lsls r4, r4, #2\n\t"
        "lsls r5, r5, #2\n\t"
        "cmp r2, #4\n\t"
        "beq 11f\n\t"
        "cmp r2, #8\n\t"
        "beq 12f\n\t"
        "cmp r2, #12\n\t"
        "beq 13f\n"
        "1:\n\t"
        "mov r6, r0\n\t"
        "mov r7, r1\n\t"
        "lsrs r8, r2, #4\n\t"
        "beq 3f\n"
        "2:\n\t"
        "vldmia r7!, {s0-s15}\n\t"
        "vstmia r6!, {s0-s15}\n\t"
        "subs r8, r8, #1\n\t"
        "bne 2b\n"
        "3:\n\t"
        "tst r2, #8\n\t"
        "beq 4f\n\t"
        "vldmia r7!, {s0-s7}\n\t"
        "vstmia r6!, {s0-s7}\n"
        "4:\n\t"
        "tst r2, #4\n\t"
        "beq 5f\n\t"
        "vldmia r7!, {s0-s3}\n\t"
        "vstmia r6!, {s0-s3}\n"
        "5:\n\t"
        "ands r8, r2, #3\n\t"
        "beq 7f\n"
        "6:\n\t"
        "ldr lr, [r7], #4\n\t"
        "str lr, [r6], #4\n\t"
        "subs r8, r8, #1\n\t"
        "bne 6b\n"
        "7:\n\t"
        "add r0, r0, r4\n\t"
        "add r1, r1, r5\n\t"
        "subs r3, r3, #1\n\t"
        "bne 1b\n\t"
        "pop {r4-r8, pc}\n"
        TS_COPY_ROWS("11", "{s0-s3}") TS_COPY_ROWS("12", "{s0-s7}") TS_COPY_ROWS("13", "{s0-s11}")
        TS_FUNC_END(ts_priv_copy_rows_f32));

/* dst[0..n) = +0: 8 words per VSTM of s0-s7 set to zero bits. */
__asm__(TS_FUNC_BEGIN(ts_priv_zero_f32)
        "movs r2, #0\n\t"
        "movs r3, #0\n\t"
        "vmov s0, s1, r2, r3\n\t"
        "vmov s2, s3, r2, r3\n\t"
        "vmov s4, s5, r2, r3\n\t"
        "vmov s6, s7, r2, r3\n\t"
        "lsrs r12, r1, #3\n\t"
        "beq 2f\n"
        "1:\n\t"
        "vstmia r0!, {s0-s7}\n\t"
        "subs r12, r12, #1\n\t"
        "bne 1b\n"
        "2:\n\t"
        "tst r1, #4\n\t"
        "beq 3f\n\t"
        "vstmia r0!, {s0-s3}\n"
        "3:\n\t"
        "ands r1, r1, #3\n\t"
        "beq 5f\n"
        "4:\n\t"
        "str r2, [r0], #4\n\t"
        "subs r1, r1, #1\n\t"
        "bne 4b\n"
        "5:\n\t"
        "bx lr"
        TS_FUNC_END(ts_priv_zero_f32));

#else /* portable C: the same sums in the same order */

static void gemm4_f32(ts_priv_gemm4x3_f32_args *a, int32_t pixels)
{
    const int32_t K = 4 * a->k4 + a->ktail;
    int32_t group, blk, k, p, r;
    for (group = 0; group < a->pixel_groups; ++group) {
        const float *w = a->w, *bias = a->bias;
        for (blk = 0; blk < a->blocks; ++blk, bias += 4) {
            float acc[3][4];
            for (p = 0; p < pixels; ++p) {
                for (r = 0; r < 4; ++r) {
                    acc[p][r] = bias[r];
                }
            }
            for (k = 0; k < K; ++k, w += 4) {
                for (p = 0; p < pixels; ++p) {
                    const float x = a->x[p][k];
                    for (r = 0; r < 4; ++r) {
                        acc[p][r] += w[r] * x;
                    }
                }
            }
            for (p = pixels - 1; p >= 0; --p) {
                memcpy(a->out[p] + 4 * blk, acc[p], sizeof acc[p]);
            }
        }
        for (p = 0; p < 3 && group + 1 < a->pixel_groups; ++p) {
            a->x[p] += a->x_step / (int32_t)sizeof(float);
            a->out[p] += a->out_step / (int32_t)sizeof(float);
        }
    }
}

void ts_priv_gemm4x3_f32(ts_priv_gemm4x3_f32_args *a)
{
    gemm4_f32(a, 3);
}

void ts_priv_gemm4x2_f32(ts_priv_gemm4x3_f32_args *a)
{
    gemm4_f32(a, 2);
}

void ts_priv_gemm4x1_f32(ts_priv_gemm4x3_f32_args *a)
{
    gemm4_f32(a, 1);
}

void ts_priv_gemm8x1_f32(const ts_priv_gemm8x1_f32_args *a)
{
    const int32_t K = 8 * a->k8 + a->ktail;
    const float *w = a->w, *bias = a->bias;
    int32_t blk, k, r;
    for (blk = 0; blk < a->blocks; ++blk) {
        float acc[8];
        for (r = 0; r < 8; ++r) {
            acc[r] = bias[r];
        }
        for (k = 0; k < K; ++k, w += 8) {
            const float x = a->x[k];
            for (r = 0; r < 8; ++r) {
                acc[r] += w[r] * x;
            }
        }
        memcpy(a->out + 8 * blk, acc, sizeof acc);
        bias += a->bias_step / (int32_t)sizeof(float);
    }
}

void ts_priv_zero_f32(float *dst, int32_t n)
{
    memset(dst, 0, (size_t)n * sizeof(float)); /* all-zero bits are +0.0f */
}

void ts_priv_copy_rows_f32(float *dst, const float *src, int32_t n, int32_t rows, int32_t dst_stride,
                           int32_t src_stride)
{
    int32_t i;
    for (i = 0; i < rows; ++i, dst += dst_stride, src += src_stride) {
        memcpy(dst, src, (size_t)n * sizeof(float));
    }
}

static void dw3_f32(const ts_priv_dw3x4_f32_args *a, int32_t pixels)
{
    const float *rows[6], *w = a->w, *bias = a->bias;
    int32_t pass, blk, j, p, c;
    memcpy(rows, a->rows, sizeof rows);
    for (pass = 0; pass < a->passes; ++pass) {
        float *acc = a->acc;
        for (blk = 0; blk < a->blocks; ++blk, acc += 4 * pixels, w += 12) {
            float s[4][4];
            for (p = 0; p < pixels; ++p) {
                for (c = 0; c < 4; ++c) {
                    s[p][c] = pass == 0 ? bias[c] : acc[4 * p + c];
                }
            }
            if (pass == 0) {
                bias += 4;
            }
            for (j = 0; j < pixels + 2; ++j) {
                for (p = 0; p < pixels; ++p) {
                    const int32_t kh = j - p;
                    for (c = 0; c < 4 && kh >= 0 && kh < 3; ++c) {
                        s[p][c] += w[4 * kh + c] * rows[j][c];
                    }
                }
                rows[j] += 4;
            }
            for (p = 0; p < pixels; ++p) {
                memcpy(pass == a->passes - 1 ? a->out[p] + 4 * blk : acc + 4 * p, s[p], sizeof s[p]);
            }
        }
    }
}

void ts_priv_dw3x4_f32(const ts_priv_dw3x4_f32_args *a)
{
    dw3_f32(a, 4);
}

void ts_priv_dw3x1_f32(const ts_priv_dw3x4_f32_args *a)
{
    dw3_f32(a, 1);
}

void ts_priv_add_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = a[i] + b[i];
    }
}

void ts_priv_mul_f32(const float *a, const float *b, float *y, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        y[i] = a[i] * b[i];
    }
}

void ts_priv_sum16_f32(const ts_priv_sum16_f32_args *a)
{
    const char *cell = (const char *)a->src;
    float sum[16];
    int32_t r, k, c;
    memcpy(sum, a->zero, sizeof sum);
    for (r = 0; r < a->rows; ++r, cell += a->row_skip) {
        for (k = 0; k < a->cols; ++k, cell += a->col_step) {
            const float *x = (const float *)(const void *)cell;
            for (c = 0; c < 16; ++c) {
                sum[c] += x[c];
            }
        }
    }
    memcpy(a->dst, sum, sizeof sum);
}

#endif /* TS_HAVE_F32_ASM */

void ts_priv_activation_f32(float act_min, float act_max, float *data, int32_t n)
{
    int32_t i;
    if (act_max > FLT_MAX && act_min < -FLT_MAX) {
        return;
    }
#if TS_HAVE_F32_ASM
    if (act_max > FLT_MAX && act_min == 0.0f) {
        ts_priv_relu_f32(data, n);
        return;
    }
#endif
    for (i = 0; i < n; ++i) {
        const float x = data[i];
        data[i] = x < act_min ? act_min : (x > act_max ? act_max : x);
    }
}
