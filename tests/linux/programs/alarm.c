/*
 * alarm.c - timer signals (issue 14): alarm, setitimer/getitimer (ITIMER_REAL), pause,
 * sigsuspend, and loops (with and without system calls) that run until their alarm fires.
 * The same output natively and under qemu-aarch64; the program ends killed by an
 * unhandled SIGALRM (status 142).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t alarms;

static void on_alarm(int sig) {
    (void)sig;
    alarms++;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);

    printf("alarm with none set: %u\n", alarm(0));
    alarm(5);
    printf("alarm remaining: %u\n", alarm(0));

    /* pause() returns -1 EINTR once the handler ran, about one second later. */
    double t0 = now();
    alarm(1);
    int r = pause();
    int e = errno;
    double waited = now() - t0;
    printf("pause: r=%d eintr=%d alarms=%d waited_ok=%d\n", r, e == EINTR, (int)alarms,
           waited > 0.8 && waited < 10);

    /* A loop that runs (making system calls) until its alarm fires. */
    alarms = 0;
    t0 = now();
    alarm(1);
    while (!alarms)
        (void)getppid();
    waited = now() - t0;
    printf("busy loop: alarms=%d waited_ok=%d\n", (int)alarms, waited > 0.8 && waited < 10);

    /* A loop that makes no system call at all: only a timer between two instructions
     * can run the handler that ends it. */
    alarms = 0;
    alarm(1);
    unsigned long spins = 0;
    while (!alarms)
        spins++;
    printf("spin loop: alarms=%d spun=%d\n", (int)alarms, spins > 0);

    /* A periodic timer, waited for with sigsuspend while SIGALRM is otherwise blocked. */
    sigset_t block, old, none, after;
    sigemptyset(&block);
    sigaddset(&block, SIGALRM);
    sigprocmask(SIG_BLOCK, &block, &old);
    struct itimerval it = {{0, 50000}, {0, 50000}}, cur, prev;
    setitimer(ITIMER_REAL, &it, NULL);
    sigemptyset(&none);
    alarms = 0;
    int eintr = 0;
    for (int i = 0; i < 3; i++)
        eintr += sigsuspend(&none) == -1 && errno == EINTR;
    sigprocmask(SIG_BLOCK, NULL, &after);
    printf("sigsuspend: eintr=%d alarms=%d alarm_blocked_after=%d\n", eintr, (int)alarms,
           sigismember(&after, SIGALRM));
    getitimer(ITIMER_REAL, &cur);
    printf("getitimer: interval=%ld value_ok=%d\n", (long)cur.it_interval.tv_usec,
           cur.it_value.tv_sec == 0 && cur.it_value.tv_usec <= 50000);
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_REAL, &off, &prev);
    printf("stopped: previous interval=%ld\n", (long)prev.it_interval.tv_usec);
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("bad timer: %d\n", setitimer(42, &off, NULL) == -1 && errno == EINVAL);

    /* No handler: SIGALRM's default action ends the program. */
    fflush(stdout);
    signal(SIGALRM, SIG_DFL);
    alarm(1);
    pause();
    puts("not reached");
    return 0;
}
