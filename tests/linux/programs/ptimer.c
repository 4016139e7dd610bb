/* POSIX timers (timer_create): a periodic SIGEV_SIGNAL timer with its siginfo (SI_TIMER,
 * the sigval), disarming, timer_gettime of a one-shot, overruns, timer_delete, a timer
 * signal taken by sigwaitinfo, an absolute time in the past (fires at once). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t ticks, last_value, last_code;
static void on_tick(int sig, siginfo_t *si, void *ctx) {
    (void)sig; (void)ctx; ticks++; last_value = si->si_value.sival_int; last_code = si->si_code;
}
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_tick; sa.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &sa, NULL);
    struct sigevent ev; memset(&ev, 0, sizeof ev);
    ev.sigev_notify = SIGEV_SIGNAL; ev.sigev_signo = SIGUSR1; ev.sigev_value.sival_int = 77;
    timer_t t;
    if (timer_create(CLOCK_MONOTONIC, &ev, &t) != 0) { perror("timer_create"); return 1; }
    struct itimerspec its = {{0, 10000000}, {0, 10000000}};  /* every 10 ms */
    timer_settime(t, 0, &its, NULL);
    while (ticks < 3) pause();
    struct itimerspec off = {{0, 0}, {0, 0}}, cur;
    timer_settime(t, 0, &off, NULL);
    timer_gettime(t, &cur);
    printf("periodic: ticks>=3 %d value=%d code=%s disarmed=%d\n", ticks >= 3, (int)last_value,
           last_code == SI_TIMER ? "SI_TIMER" : "?", cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec == 0);
    struct itimerspec once = {{0, 0}, {5, 0}};
    timer_settime(t, 0, &once, NULL);
    timer_gettime(t, &cur);
    printf("one-shot in 5 s: left between 4 and 5 s: %d\n", cur.it_value.tv_sec == 4 || (cur.it_value.tv_sec == 5 && cur.it_value.tv_nsec == 0));
    printf("overrun: %d\n", timer_getoverrun(t));
    int first = timer_delete(t);
    int second = timer_delete(t);
    printf("delete: %d, again: %s\n", first, second < 0 && errno == EINVAL ? "EINVAL" : "?");
    /* A blocked signal taken by sigwaitinfo from a SIGEV_SIGNAL timer. */
    sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR2); sigprocmask(SIG_BLOCK, &set, NULL);
    ev.sigev_signo = SIGUSR2; ev.sigev_value.sival_int = 5;
    timer_create(CLOCK_REALTIME, &ev, &t);
    struct itimerspec soon = {{0, 0}, {0, 20000000}};
    timer_settime(t, 0, &soon, NULL);
    siginfo_t si; int got = sigwaitinfo(&set, &si);
    printf("sigwaitinfo: %s value=%d\n", got == SIGUSR2 ? "SIGUSR2" : "?", si.si_value.sival_int);
    /* Absolute time in the past: fires at once. */
    struct timespec now; clock_gettime(CLOCK_REALTIME, &now);
    struct itimerspec past = {{0, 0}, {now.tv_sec - 1, 0}};
    timer_settime(t, TIMER_ABSTIME, &past, NULL);
    got = sigwaitinfo(&set, &si);
    printf("absolute in the past: %s\n", got == SIGUSR2 ? "fired" : "?");
    return 0;
}
