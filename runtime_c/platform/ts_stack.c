/*
 * Stack high-water measurement by painting, shared by all emulated platforms. The platform's link
 * defines the symbols ts_stack_bottom and ts_stack_top (the stack region is [bottom, top)).
 */
#include <stdint.h>

#include "ts_bench.h"

#define TS_STACK_PATTERN 0x5A17C0DEu

extern uint32_t ts_stack_bottom[], ts_stack_top[];

uintptr_t ts_bench_stack_top(void)
{
    return (uintptr_t)ts_stack_top;
}

uintptr_t ts_bench_stack_bottom(void)
{
    return (uintptr_t)ts_stack_bottom;
}

static uintptr_t ts_current_sp(void)
{
    uintptr_t sp;
#if defined(__arm__)
    __asm__ volatile("mov %0, sp" : "=r"(sp));
#elif defined(__riscv)
    __asm__ volatile("mv %0, sp" : "=r"(sp));
#else
#error "ts_stack.c: unsupported architecture"
#endif
    return sp;
}

/* Paints [bottom, sp) word by word. A leaf function that needs no stack frame, so the stack
 * pointer it sees (and returns) is its caller's. */
__attribute__((noinline)) uintptr_t ts_bench_stack_paint(void)
{
    uintptr_t sp = ts_current_sp();
    volatile uint32_t *p = ts_stack_bottom;
    while ((uintptr_t)p < sp) {
        *p++ = TS_STACK_PATTERN;
    }
    return sp;
}

uintptr_t ts_bench_stack_lowest(void)
{
    const volatile uint32_t *p = ts_stack_bottom;
    const uintptr_t top = (uintptr_t)ts_stack_top;
    while ((uintptr_t)p < top && *p == TS_STACK_PATTERN) {
        p++;
    }
    return (uintptr_t)p;
}
