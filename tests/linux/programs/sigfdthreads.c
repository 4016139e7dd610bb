/* signalfd and threads (issue 16): a signal sent to one thread (tgkill) is read by that
 * thread's signalfd, in a blocking read that it wakes, and not seen by another thread's; a
 * process-directed one (kill) wakes a poll of another thread; the caller's own signals come
 * before the process's. SIGUSR1 has a handler (blocked: it never runs), SIGUSR2 not: the
 * two ways a signal to another thread is kept. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <unistd.h>

static int sfd;
static pid_t worker_tid;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void on_usr1(int sig) {
    (void)sig;
    write(1, "handler ran\n", 12);
}

static void wait_stage(int n) {
    pthread_mutex_lock(&mu);
    while (stage < n)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static void set_stage(int n) {
    pthread_mutex_lock(&mu);
    stage = n;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void *worker(void *arg) {
    (void)arg;
    struct signalfd_siginfo si;
    worker_tid = (pid_t)syscall(SYS_gettid);
    set_stage(1);
    /* A blocking read: woken by the main thread's tgkill to this thread. */
    ssize_t n = read(sfd, &si, sizeof si);
    printf("worker read %zd: sig %u code %d\n", n, si.ssi_signo, si.ssi_code);
    fflush(stdout);
    set_stage(2);
    /* poll, then read: a process-directed signal. */
    struct pollfd pfd = {.fd = sfd, .events = POLLIN};
    int r = poll(&pfd, 1, -1);
    n = read(sfd, &si, sizeof si);
    printf("worker poll %d read %zd: sig %u code %d\n", r, n, si.ssi_signo, si.ssi_code);
    fflush(stdout);
    return NULL;
}

int main(void) {
    signal(SIGUSR1, on_usr1);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, NULL);
    sfd = signalfd(-1, &set, SFD_CLOEXEC);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    wait_stage(1);
    /* A signal for the worker only: the main thread's signalfd does not see it. */
    syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
    struct pollfd pfd = {.fd = sfd, .events = POLLIN};
    wait_stage(2);
    int first = poll(&pfd, 1, 0);
    /* Another one for the worker (in or on its way to poll): not the main thread's. */
    syscall(SYS_tgkill, getpid(), worker_tid, SIGUSR1);
    int second = poll(&pfd, 1, 0);
    kill(getpid(), SIGUSR2);
    pthread_join(t, NULL);
    printf("main polls after the worker's signals: %d %d\n", first, second);
    /* A signal for the main thread, with one for the process: its own first. */
    syscall(SYS_tgkill, getpid(), (pid_t)syscall(SYS_gettid), SIGUSR2);
    kill(getpid(), SIGUSR1);
    struct signalfd_siginfo si[2];
    ssize_t n = read(sfd, si, sizeof si);
    printf("main read %zd: %u code %d, %u code %d\n", n, si[0].ssi_signo, si[0].ssi_code,
           si[1].ssi_signo, si[1].ssi_code);
    return 0;
}
