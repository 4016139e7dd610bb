/*
 * signals.c - guest signal handlers: delivery, frames, masks, return (issue 14).
 *
 * Every line it prints is the same natively (x86_64) and under qemu-aarch64, so the test
 * compares output: plain and SA_SIGINFO handlers (si_signo, si_code, si_pid), nested
 * delivery, a blocked signal delivered when sigprocmask unblocks it, the handler's mask,
 * SA_RESETHAND, SA_NODEFER, siglongjmp out of a handler, SA_ONSTACK on a sigaltstack, the
 * ucontext a handler sees, and every register (general and vector) intact after a handler
 * ran at the return of a raw system call.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

static volatile sig_atomic_t hits1, hits2, order_pos;
static char order[16];
static volatile int last_signo, last_code, last_pid_ok, nested_inside;
static sigjmp_buf jump;
static char *alt_base;
static size_t alt_size;
static volatile int on_alt;
static volatile uintptr_t uc_pc, uc_sp;

static void on_usr1(int sig) {
    (void)sig;
    hits1++;
    order[order_pos++] = '1';
}

static void on_usr2(int sig) {
    (void)sig;
    hits2++;
    order[order_pos++] = '2';
}

static void on_info(int sig, siginfo_t *si, void *ctx) {
    ucontext_t *uc = ctx;
    last_signo = si->si_signo;
    last_code = si->si_code;
    last_pid_ok = si->si_pid == getpid();
#if defined(__x86_64__)
    uc_pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uc_sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    uc_pc = (uintptr_t)uc->uc_mcontext.pc;
    uc_sp = (uintptr_t)uc->uc_mcontext.sp;
#endif
    (void)sig;
}

static void outer(int sig) {
    (void)sig;
    order[order_pos++] = 'o';
    raise(SIGUSR2); /* SIGUSR2's handler runs nested, before this one goes on */
    order[order_pos++] = 'O';
}

static void masked_check(int sig) {
    sigset_t now;
    (void)sig;
    sigprocmask(SIG_BLOCK, NULL, &now);
    nested_inside = sigismember(&now, SIGUSR1) * 10 + sigismember(&now, SIGTERM);
}

static void jumper(int sig) {
    siglongjmp(jump, sig);
}

static void on_stack(int sig) {
    char here;
    (void)sig;
    on_alt = &here >= alt_base && &here < alt_base + alt_size;
}

static void count_nodefer(int sig) {
    if (++hits1 < 3)
        raise(sig); /* SA_NODEFER: delivered again inside */
}

static void install(int sig, void (*fn)(int), int flags, int masked) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    if (masked)
        sigaddset(&sa.sa_mask, masked);
    if (sigaction(sig, &sa, NULL) != 0) {
        perror("sigaction");
        exit(1);
    }
}

/* A handler that overwrites the registers registers_survive() checks. */
static void clobber(int sig) {
    (void)sig;
    hits1++;
#if defined(__x86_64__)
    __asm__ volatile("pxor %%xmm7, %%xmm7\n\txor %%r8, %%r8\n\txor %%r9, %%r9\n\t"
                     "xor %%r10, %%r10\n\txor %%edx, %%edx\n\txor %%r11, %%r11"
                     ::: "xmm7", "r8", "r9", "r10", "rdx", "r11");
#elif defined(__aarch64__)
    __asm__ volatile("movi v7.16b, #0\n\tmov x2, #0\n\tmov x9, #0\n\tmov x17, #0"
                     ::: "v7", "x2", "x9", "x17");
#endif
}

/* A raw kill(getpid(), SIGUSR1) with known values in registers a C call would clobber:
 * the handler runs when the system call returns, and overwrites them. Returns 0 when every
 * one survived (the frame saved and restored them). */
static int registers_survive(void) {
    uint64_t pid = (uint64_t)getpid();
#if defined(__x86_64__)
    register uint64_t r8 __asm__("r8") = 0x1111111111111111;
    register uint64_t r9 __asm__("r9") = 0x2222222222222222;
    register uint64_t r10 __asm__("r10") = 0x3333333333333333;
    uint64_t rdx = 0x6666666666666666, rdi = pid, rsi = SIGUSR1, rax = SYS_kill;
    uint64_t xmm_in[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL}, xmm_out[2];
    __asm__ volatile(
        "movdqu (%[in]), %%xmm7\n\t"
        "syscall\n\t"
        "movdqu %%xmm7, (%[out])\n\t"
        : "+a"(rax), "+r"(r8), "+r"(r9), "+r"(r10), "+D"(rdi), "+S"(rsi), "+d"(rdx)
        : [in] "r"(xmm_in), [out] "r"(xmm_out)
        : "rcx", "r11", "xmm7", "memory");
    int bad = 0;
    bad |= r8 != 0x1111111111111111 || r9 != 0x2222222222222222 || r10 != 0x3333333333333333;
    bad |= rdi != pid || rsi != SIGUSR1 || rdx != 0x6666666666666666;
    bad |= rax != 0;
    bad |= memcmp(xmm_in, xmm_out, sizeof xmm_in) != 0;
    return bad;
#elif defined(__aarch64__)
    register uint64_t x0 __asm__("x0") = pid;
    register uint64_t x1 __asm__("x1") = SIGUSR1;
    register uint64_t x2 __asm__("x2") = 0x2222222222222222;
    register uint64_t x9 __asm__("x9") = 0x9999999999999999;
    register uint64_t x17 __asm__("x17") = 0x1717171717171717;
    register uint64_t x8 __asm__("x8") = SYS_kill;
    uint64_t v_in[2] = {0x0123456789abcdefULL, 0xfedcba9876543210ULL}, v_out[2];
    __asm__ volatile(
        "ldr q7, [%[in]]\n\t"
        "svc #0\n\t"
        "str q7, [%[out]]\n\t"
        : "+r"(x0), "+r"(x1), "+r"(x2), "+r"(x9), "+r"(x17)
        : "r"(x8), [in] "r"(v_in), [out] "r"(v_out)
        : "v7", "memory");
    int bad = 0;
    bad |= x1 != SIGUSR1 || x2 != 0x2222222222222222;
    bad |= x9 != 0x9999999999999999 || x17 != 0x1717171717171717;
    bad |= x0 != 0;
    bad |= memcmp(v_in, v_out, sizeof v_in) != 0;
    return bad;
#else
    return 0;
#endif
}

int main(void) {
    sigset_t block, old;

    /* 1. A plain handler, raised (tgkill) and killed (kill). */
    install(SIGUSR1, on_usr1, 0, 0);
    raise(SIGUSR1);
    kill(getpid(), SIGUSR1);
    printf("plain: hits=%d\n", (int)hits1);

    /* 2. SA_SIGINFO: what the handler learns, and the ucontext it is given. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_info;
    sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR2, &sa, NULL);
    kill(getpid(), SIGUSR2);
    printf("siginfo kill: signo=%d code=%d pid_ok=%d\n", last_signo, last_code, last_pid_ok);
    raise(SIGUSR2);
    printf("siginfo raise: signo=%d code=%d pid_ok=%d\n", last_signo, last_code, last_pid_ok);
    char probe;
    printf("ucontext: pc_set=%d sp_near=%d\n", uc_pc != 0,
           uc_sp > (uintptr_t)&probe - 65536 && uc_sp < (uintptr_t)&probe + 65536);

    /* 3. Nested delivery: SIGUSR1's handler raises SIGUSR2. */
    install(SIGUSR1, outer, 0, 0);
    install(SIGUSR2, on_usr2, 0, 0);
    order_pos = 0;
    raise(SIGUSR1);
    order[order_pos] = 0;
    printf("nested order: %s\n", order);

    /* 4. Blocked, pending, delivered when unblocked. */
    install(SIGUSR1, on_usr1, 0, 0);
    hits1 = 0;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    raise(SIGUSR1);
    sigset_t pending;
    sigpending(&pending);
    printf("blocked: hits=%d pending=%d\n", (int)hits1, sigismember(&pending, SIGUSR1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("unblocked: hits=%d\n", (int)hits1);

    /* 5. The handler's mask: its own signal and sa_mask are blocked inside, restored after. */
    install(SIGUSR1, masked_check, 0, SIGTERM);
    raise(SIGUSR1);
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    printf("mask inside=%d after=%d%d\n", nested_inside, sigismember(&now, SIGUSR1),
           sigismember(&now, SIGTERM));

    /* 6. SA_RESETHAND: the disposition is back to SIG_DFL after one delivery. */
    install(SIGUSR2, on_usr2, SA_RESETHAND, 0);
    hits2 = 0;
    raise(SIGUSR2);
    struct sigaction cur;
    sigaction(SIGUSR2, NULL, &cur);
    printf("resethand: hits=%d default=%d\n", (int)hits2, cur.sa_handler == SIG_DFL);

    /* 7. SA_NODEFER: the same signal is delivered again inside its handler. */
    install(SIGUSR1, count_nodefer, SA_NODEFER, 0);
    hits1 = 0;
    raise(SIGUSR1);
    printf("nodefer: hits=%d\n", (int)hits1);

    /* 8. siglongjmp out of a handler restores the mask saved by sigsetjmp. */
    install(SIGUSR1, jumper, 0, 0);
    int got = sigsetjmp(jump, 1);
    if (got == 0) {
        raise(SIGUSR1);
        printf("longjmp: not taken\n");
    } else {
        sigprocmask(SIG_BLOCK, NULL, &now);
        printf("longjmp: back with %d, usr1 blocked=%d\n", got, sigismember(&now, SIGUSR1));
    }

    /* 9. SA_ONSTACK: the handler runs on the alternate stack. */
    alt_size = 1 << 16;
    alt_base = malloc(alt_size);
    stack_t ss = {.ss_sp = alt_base, .ss_size = alt_size, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    install(SIGUSR2, on_stack, SA_ONSTACK, 0);
    raise(SIGUSR2);
    printf("altstack: on=%d\n", (int)on_alt);
    install(SIGUSR2, on_stack, 0, 0);
    raise(SIGUSR2);
    printf("no SA_ONSTACK: on=%d\n", (int)on_alt);

    /* 10. Every register survives a handler run at the return of a raw system call. */
    install(SIGUSR1, clobber, 0, 0);
    hits1 = 0;
    int bad = registers_survive();
    bad |= registers_survive();
    printf("registers intact=%d hits=%d\n", !bad, (int)hits1);

    /* 11. A signal with the default action still ends the program as Linux does. */
    fflush(stdout);
    signal(SIGUSR2, SIG_DFL);
    raise(SIGUSR2);
    printf("not reached\n");
    return 0;
}
