/* eventfd, timerfd and signalfd, alone and under poll/epoll (and a thread waking a blocked
 * eventfd read). Every line printed is the same on any Linux run: timer counts are checked
 * against bounds, not printed raw.
 * usage: fdevents */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

static int efd_shared;

static void *writer(void *arg) {
    (void)arg;
    uint64_t v = 42;
    write(efd_shared, &v, 8);
    return NULL;
}

static int efd_progress;

static void *progress(void *arg) {
    (void)arg;
    uint64_t one = 1;
    for (int i = 0; i < 5; i++)
        write(efd_progress, &one, 8);
    return NULL;
}

/* A thread blocked on a timer (a read, or epoll_wait) lets another thread run. */
static void timer_with_threads(int use_epoll) {
    efd_progress = eventfd(0, EFD_NONBLOCK);
    int tt = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec w = {.it_value = {.tv_nsec = 100 * 1000000}};
    timerfd_settime(tt, 0, &w, NULL);
    pthread_t t;
    pthread_create(&t, NULL, progress, NULL);
    uint64_t ticks = 0, count = 0;
    if (use_epoll) {
        int ep = epoll_create1(0);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 9}, got;
        epoll_ctl(ep, EPOLL_CTL_ADD, tt, &ev);
        printf("epoll on the timer %d", epoll_wait(ep, &got, 1, -1));
        close(ep);
    } else {
        printf("timer read %zd", read(tt, &ticks, 8));
    }
    read(efd_progress, &count, 8);
    printf(", worker progress meanwhile %llu\n", (unsigned long long)count);
    pthread_join(t, NULL);
    close(tt);
    close(efd_progress);
}

static void eventfds(void) {
    uint64_t v = 0;
    int e = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    ssize_t n = read(e, &v, 8);
    printf("eventfd read %zd value %llu\n", n, (unsigned long long)v);
    n = read(e, &v, 8);
    printf("eventfd empty %zd %s\n", n, n < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    n = read(e, &v, 4);
    printf("eventfd short read %zd %s\n", n, n < 0 && errno == EINVAL ? "EINVAL" : "?");
    struct pollfd pfd = {.fd = e, .events = POLLIN | POLLOUT};
    int r = poll(&pfd, 1, 0);
    printf("eventfd poll %d revents %#x\n", r, pfd.revents);
    v = 5;
    write(e, &v, 8);
    write(e, &v, 8);
    r = poll(&pfd, 1, 0);
    printf("eventfd poll %d revents %#x\n", r, pfd.revents);
    v = UINT64_MAX;
    n = write(e, &v, 8);
    printf("eventfd write max %zd %s\n", n, n < 0 && errno == EINVAL ? "EINVAL" : "?");
    read(e, &v, 8);
    printf("eventfd sum %llu\n", (unsigned long long)v);
    close(e);

    int sem = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    for (int i = 0; i < 3; i++) {
        v = 0;
        n = read(sem, &v, 8);
        printf("semaphore %d: %zd %llu\n", i, n, (unsigned long long)v);
    }
    close(sem);

    /* A blocking read woken by another thread's write. */
    efd_shared = eventfd(0, 0);
    pthread_t t;
    pthread_create(&t, NULL, writer, NULL);
    v = 0;
    n = read(efd_shared, &v, 8);
    pthread_join(t, NULL);
    printf("eventfd from thread %zd %llu\n", n, (unsigned long long)v);
    close(efd_shared);
}

static void timerfds(void) {
    int t = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    uint64_t ticks = 0;
    ssize_t n = read(t, &ticks, 8);
    printf("timerfd disarmed %zd %s\n", n, n < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    struct itimerspec its = {.it_value = {.tv_sec = 0, .tv_nsec = 30 * 1000000}};
    timerfd_settime(t, 0, &its, NULL);
    struct itimerspec cur;
    timerfd_gettime(t, &cur);
    printf("timerfd gettime armed %d interval %ld\n",
           cur.it_value.tv_sec == 0 && cur.it_value.tv_nsec > 0 &&
               cur.it_value.tv_nsec <= 30 * 1000000,
           (long)cur.it_interval.tv_nsec);
    struct pollfd pfd = {.fd = t, .events = POLLIN};
    printf("timerfd poll now %d\n", poll(&pfd, 1, 0));
    int r = poll(&pfd, 1, 5000);
    printf("timerfd poll wait %d revents %#x\n", r, pfd.revents);
    n = read(t, &ticks, 8);
    printf("timerfd read %zd ticks %llu\n", n, (unsigned long long)ticks);
    timerfd_gettime(t, &cur);
    printf("timerfd after one-shot %ld %ld\n", (long)cur.it_value.tv_sec,
           (long)cur.it_value.tv_nsec);

    /* Periodic, blocking reads, under epoll. */
    int tb = timerfd_create(CLOCK_MONOTONIC, 0);
    struct itimerspec per = {.it_value = {.tv_nsec = 10 * 1000000},
                             .it_interval = {.tv_nsec = 10 * 1000000}};
    timerfd_settime(tb, 0, &per, NULL);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = 77}, got;
    epoll_ctl(ep, EPOLL_CTL_ADD, tb, &ev);
    r = epoll_wait(ep, &got, 1, 5000);
    printf("timerfd epoll %d data %u\n", r, got.data.u32);
    uint64_t total = 0;
    for (int i = 0; i < 3; i++) {
        n = read(tb, &ticks, 8);
        total += ticks;
        if (n != 8 || ticks < 1)
            printf("bad periodic read %zd %llu\n", n, (unsigned long long)ticks);
    }
    printf("timerfd periodic ok %d\n", total >= 3);
    struct itimerspec old, off = {0};
    timerfd_settime(tb, 0, &off, &old);
    printf("timerfd old interval %ld\n", (long)old.it_interval.tv_nsec);
    timerfd_gettime(tb, &cur);
    printf("timerfd disarmed %ld %ld\n", (long)cur.it_value.tv_nsec,
           (long)cur.it_interval.tv_nsec);

    /* Absolute time, already passed: ready at once. */
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    struct itimerspec abs = {.it_value = now};
    timerfd_settime(t, TFD_TIMER_ABSTIME, &abs, NULL);
    n = read(t, &ticks, 8);
    printf("timerfd absolute past %zd ticks %llu\n", n, (unsigned long long)ticks);
    printf("timerfd bad clock %d\n", timerfd_create(12345, 0) < 0 && errno == EINVAL);
    close(ep);
    close(tb);
    close(t);
}

static void signalfds(void) {
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    sigaddset(&mask, SIGUSR2);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    int s = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    struct signalfd_siginfo si[2];
    ssize_t n = read(s, si, sizeof si);
    printf("signalfd empty %zd %s\n", n, n < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    printf("signalfd poll before %d\n", poll(&pfd, 1, 0));
    raise(SIGUSR2);
    kill(getpid(), SIGUSR1);
    int r = poll(&pfd, 1, 0);
    printf("signalfd poll after %d revents %#x\n", r, pfd.revents);
    n = read(s, si, sizeof si);
    printf("signalfd read %zd: %u code %d pid-ok %d, %u code %d\n", n, si[0].ssi_signo,
           si[0].ssi_code, si[0].ssi_pid == (uint32_t)getpid(), si[1].ssi_signo,
           si[1].ssi_code);
    sigset_t pending;
    sigpending(&pending);
    printf("signalfd pending after %d\n", sigismember(&pending, SIGUSR1));
    sigdelset(&mask, SIGUSR2);
    printf("signalfd update %d\n", signalfd(s, &mask, 0) == s);
    close(s);
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    eventfds();
    timerfds();
    timer_with_threads(0);
    timer_with_threads(1);
    signalfds();
    return 0;
}
