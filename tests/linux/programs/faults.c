/*
 * faults.c - synchronous signals go to the guest's handlers (issue 14).
 *
 * A SIGSEGV handler that siglongjmps out (read and write of unmapped memory, write to a
 * read-only page: si_code SEGV_MAPERR / SEGV_ACCERR, si_addr the address); a handler that
 * repairs the fault by making the page writable and returns, so the faulting store runs
 * again and succeeds; a handler on an alternate stack for a stack overflow; SIGILL from an
 * undefined instruction (x86_64) / SIGTRAP from a breakpoint instruction (aarch64), and
 * SIGFPE from an integer division by zero (x86_64); finally a fault with no handler ends
 * the program as Linux does. The same output natively and under qemu-aarch64.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static sigjmp_buf jump;
static volatile int got_sig, got_code, addr_ok, faults;
static volatile uintptr_t expect_addr;
static char *page;
static char *alt_base;
static size_t alt_size = 1 << 16;
static volatile int on_alt;

static void jumper(int sig, siginfo_t *si, void *ctx) {
    (void)ctx;
    got_sig = sig;
    got_code = si->si_code;
    addr_ok = (uintptr_t)si->si_addr == expect_addr;
    siglongjmp(jump, 1);
}

static void repair(int sig, siginfo_t *si, void *ctx) {
    (void)sig;
    (void)ctx;
    faults++;
    got_code = si->si_code;
    addr_ok = (uintptr_t)si->si_addr == expect_addr;
    mprotect(page, 4096, PROT_READ | PROT_WRITE); /* the store runs again and succeeds */
}

static void overflow_handler(int sig, siginfo_t *si, void *ctx) {
    char here;
    (void)si;
    (void)ctx;
    got_sig = sig;
    on_alt = &here >= alt_base && &here < alt_base + alt_size;
    siglongjmp(jump, 1);
}

static int recurse(volatile char *p) {
    volatile char buf[4096];
    buf[0] = *p;
    return recurse(buf) + buf[1];
}

static void install(int sig, void (*fn)(int, siginfo_t *, void *), int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = fn;
    sa.sa_flags = SA_SIGINFO | flags;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

static void report(const char *what) {
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("%s: sig=%d code=%d addr_ok=%d segv_blocked_after=%d\n", what, got_sig, got_code,
           addr_ok, sigismember(&now, SIGSEGV));
    got_sig = got_code = addr_ok = 0;
}

int main(void) {
    install(SIGSEGV, jumper, 0);

    expect_addr = 0x10;
    if (!sigsetjmp(jump, 1)) {
        (void)*(volatile int *)expect_addr;
        puts("read of unmapped memory: no fault");
    }
    report("read unmapped");

    expect_addr = 0x7000;
    if (!sigsetjmp(jump, 1)) {
        *(volatile int *)expect_addr = 1;
        puts("write of unmapped memory: no fault");
    }
    report("write unmapped");

    page = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    expect_addr = (uintptr_t)page + 8;
    if (!sigsetjmp(jump, 1)) {
        *(volatile int *)(page + 8) = 1;
        puts("write of a read-only page: no fault");
    }
    report("write read-only");

    /* A handler that repairs the page and returns: the store runs again. */
    install(SIGSEGV, repair, 0);
    mprotect(page, 4096, PROT_READ);
    expect_addr = (uintptr_t)page + 16;
    *(volatile int *)(page + 16) = 42;
    printf("repaired: faults=%d code=%d addr_ok=%d value=%d\n", faults, got_code, addr_ok,
           *(volatile int *)(page + 16));

    /* Stack overflow, handled on the alternate stack. */
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGSEGV, overflow_handler, SA_ONSTACK);
    if (!sigsetjmp(jump, 1)) {
        char c = 0;
        recurse(&c);
    }
    printf("stack overflow: sig=%d on_alt=%d\n", got_sig, (int)on_alt);
    got_sig = 0;

#if defined(__x86_64__)
    install(SIGILL, jumper, 0);
    if (!sigsetjmp(jump, 1)) {
        __asm__ volatile("ud2");
    }
    printf("undefined instruction: sig=%d code=%d\n", got_sig, got_code);
    install(SIGFPE, jumper, 0);
    if (!sigsetjmp(jump, 1)) {
        volatile int zero = 0, one = 1;
        printf("%d\n", one / zero);
    }
    printf("divide by zero: sig=%d code=%d\n", got_sig, got_code);
#elif defined(__aarch64__)
    install(SIGTRAP, jumper, 0);
    if (!sigsetjmp(jump, 1)) {
        __asm__ volatile("brk #1000");
    }
    printf("breakpoint instruction: sig=%d\n", got_sig);
    install(SIGILL, jumper, 0);
    if (!sigsetjmp(jump, 1)) {
        __asm__ volatile(".inst 0x00000000"); /* udf #0 */
    }
    printf("undefined instruction: sig=%d\n", got_sig); /* code: qemu-user differs */
#endif

    /* No handler: the fault ends the program. */
    fflush(stdout);
    signal(SIGSEGV, SIG_DFL);
    *(volatile int *)0x20 = 1;
    puts("not reached");
    return 0;
}
