/*
 * segv.c - fatal faults.
 *
 * Exercises: delivery of synchronous faults with observable output before the
 * crash (stdout is flushed first), default signal disposition (process dies
 * by the signal, no core file expected).
 *
 * Usage:  segv [MODE]
 *   (none) | null : store through a NULL pointer          -> SIGSEGV (11)
 *   read          : load through a NULL pointer           -> SIGSEGV (11)
 *   unmapped      : store to a clearly unmapped address
 *                   (0xdead0000 on 64-bit)                -> SIGSEGV (11)
 *   ill           : execute an invalid instruction        -> SIGILL  (4)
 *                   x86_64: ud2 (__builtin_trap);
 *                   aarch64: `.inst 0x00000000` (UDF #0).  __builtin_trap is
 *                   NOT used on aarch64: it emits `brk #1000`, which gives
 *                   SIGTRAP (5), not SIGILL.
 *   exit          : no fault; exits normally with status 0 (control case)
 *   anything else : usage message on stderr, exit status 2
 * Output: "segv: mode=<MODE>" then "segv: about to fault" on stdout (flushed
 *   before faulting); nothing after.  Natively/under qemu the process is killed
 *   by the signal: subprocess returncode -11 / -4, shell status 139 / 132.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* volatile so the compiler cannot prove the pointer is NULL and replace the
   access with a trap instruction (-fisolate-erroneous-paths-dereference). */
static int *volatile null_ptr;
static volatile uintptr_t unmapped_addr = (uintptr_t)0xdead0000UL;

static void invalid_instruction(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_trap(); /* ud2 -> SIGILL */
#elif defined(__aarch64__)
    __asm__ volatile(".inst 0x00000000"); /* UDF #0 -> SIGILL */
#else
    __builtin_trap();
#endif
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "null";
    int v = 0;

    printf("segv: mode=%s\n", mode);
    if (strcmp(mode, "null") && strcmp(mode, "read") && strcmp(mode, "unmapped") &&
        strcmp(mode, "ill") && strcmp(mode, "exit")) {
        fflush(stdout);
        fprintf(stderr, "usage: segv [null|read|unmapped|ill|exit]\n");
        return 2;
    }
    if (strcmp(mode, "exit") == 0) {
        printf("segv: no fault\n");
        return 0;
    }
    printf("segv: about to fault\n");
    fflush(stdout);

    if (strcmp(mode, "null") == 0) {
        *null_ptr = 42;
    } else if (strcmp(mode, "read") == 0) {
        v = *null_ptr;
    } else if (strcmp(mode, "unmapped") == 0) {
        *(volatile int *)unmapped_addr = 42;
    } else {
        invalid_instruction();
    }
    printf("segv: survived?! %d\n", v);
    return 0;
}
