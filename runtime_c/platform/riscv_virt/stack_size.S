/* The stack size for picolibc.ld, which reserves __stack_size bytes below __stack (the top of RAM).
 * Defined here rather than with --defsym because the script tests DEFINED(__stack_size) before
 * the linker reads command-line symbols; the harness compiles this file with -DTS_STACK_SIZE=n. */
#ifndef TS_STACK_SIZE
#define TS_STACK_SIZE 0x10000
#endif
    .global __stack_size
    .set __stack_size, TS_STACK_SIZE
