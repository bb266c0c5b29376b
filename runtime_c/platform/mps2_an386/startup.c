/*
 * tinysplit start-up code for QEMU's mps2-an386 (Cortex-M4F), written for the benchmark harness.
 *
 * Reset: copy .data from flash, zero .bss, enable the FPU (CP10/CP11 in CPACR), paint the stack
 * for the high-water measurement, bound newlib's heap below the stack, open newlib's semihosting
 * handles (rdimon), run main, and leave QEMU through semihosting exit with main's return value.
 * Any fault prints its name over semihosting and exits with a failure.
 */
#include <stdint.h>
#include <stdlib.h>

#include "ts_bench.h"

extern uint32_t ts_data_load[], ts_data_start[], ts_data_end[];
extern uint32_t ts_bss_start[], ts_bss_end[];
extern uint32_t ts_stack_top[], ts_stack_bottom[];

int main(void);
extern void initialise_monitor_handles(void);
extern unsigned int __heap_limit; /* librdimon: _sbrk never grows the heap past it */
void ts_systick_handler(void); /* profile.c */

void ts_reset_handler(void) __attribute__((noreturn));
void ts_nmi_handler(void) __attribute__((noreturn));
void ts_hardfault_handler(void) __attribute__((noreturn));
void ts_memmanage_handler(void) __attribute__((noreturn));
void ts_busfault_handler(void) __attribute__((noreturn));
void ts_usagefault_handler(void) __attribute__((noreturn));
void ts_unexpected_handler(void) __attribute__((noreturn));

#define TS_CPACR (*(volatile uint32_t *)0xE000ED88u)

typedef void (*ts_handler)(void);

/* The Cortex-M vector table: initial stack pointer, then the 15 system exception handlers.
 * The board's external interrupts are never enabled, so they need no entries. */
typedef struct {
    uint32_t *initial_sp;
    ts_handler handlers[15];
} ts_vector_table;

__attribute__((section(".vectors"), used)) const ts_vector_table ts_vectors = {
    ts_stack_top,
    {
        ts_reset_handler,      /* 1 reset */
        ts_nmi_handler,        /* 2 NMI */
        ts_hardfault_handler,  /* 3 HardFault */
        ts_memmanage_handler,  /* 4 MemManage */
        ts_busfault_handler,   /* 5 BusFault */
        ts_usagefault_handler, /* 6 UsageFault */
        ts_unexpected_handler, /* 7 reserved */
        ts_unexpected_handler, /* 8 reserved */
        ts_unexpected_handler, /* 9 reserved */
        ts_unexpected_handler, /* 10 reserved */
        ts_unexpected_handler, /* 11 SVCall */
        ts_unexpected_handler, /* 12 DebugMonitor */
        ts_unexpected_handler, /* 13 reserved */
        ts_unexpected_handler, /* 14 PendSV */
        ts_systick_handler,    /* 15 SysTick */
    },
};

/* newlib's __libc_init_array/__libc_fini_array call these; crti.o, which usually provides them,
 * is not linked (-nostartfiles) and there is nothing to do. */
void _init(void);
void _fini(void);

void _init(void)
{
}

void _fini(void)
{
}

void ts_reset_handler(void)
{
    volatile uint32_t *dst = ts_data_start;
    const volatile uint32_t *src = ts_data_load;
    while (dst < ts_data_end) {
        *dst++ = *src++;
    }
    for (dst = ts_bss_start; dst < ts_bss_end;) {
        *dst++ = 0u;
    }
    /* Full access to the FPU (CP10, CP11) before any floating-point instruction runs. */
    TS_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    (void)ts_bench_stack_paint();
    /* rdimon-crt0 would ask the debugger (SYS_HEAPINFO); the heap must stay below the stack. */
    __heap_limit = (unsigned int)(uintptr_t)ts_stack_bottom;
    initialise_monitor_handles();
    exit(main());
}

/* Semihosting without the C library, usable from a fault handler: SYS_WRITE0, then SYS_EXIT
 * with ADP_Stopped_RunTimeErrorUnknown (QEMU exits with status 1). */
static void ts_semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

static void ts_fail(const char *message) __attribute__((noreturn));
static void ts_fail(const char *message)
{
    ts_semihost(0x04u, "TS_FAULT ");
    ts_semihost(0x04u, message);
    ts_semihost(0x04u, "\n");
    for (;;) {
        ts_semihost(0x18u, (const void *)0x20024u);
    }
}

void ts_nmi_handler(void)
{
    ts_fail("NMI");
}

void ts_hardfault_handler(void)
{
    ts_fail("HardFault");
}

void ts_memmanage_handler(void)
{
    ts_fail("MemManage");
}

void ts_busfault_handler(void)
{
    ts_fail("BusFault");
}

void ts_usagefault_handler(void)
{
    ts_fail("UsageFault");
}

void ts_unexpected_handler(void)
{
    ts_fail("unexpected exception");
}
