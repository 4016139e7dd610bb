/* Threads under syxdbg (issue 13): pthreads from glibc and musl, x86_64 and aarch64.
 *
 *   threads pc        producer/consumer: 2 producers, 2 consumers, mutex + condvars
 *   threads join      pthread_join return values, __thread variables
 *   threads detach    detached threads report through a mutex/condvar
 *   threads cancel    pthread_cancel of a thread looping over pthread_testcancel
 *   threads robust    a robust mutex whose owner exits: EOWNERDEAD, then consistent
 *   threads race N    4 threads increment a shared counter without a lock, yielding
 *   threads deadlock  two threads take two mutexes in opposite orders
 *   threads sleep     threads sleeping and a timed condition wait that times out
 *   threads work N    3 threads computing N steps each, a system call every 2000 steps
 *   threads proc      /proc/self/task and /proc/thread-self with two threads
 *   threads pipe      main reads a pipe (blocking while empty) that a thread writes
 *   threads pipestall main reads a pipe nobody writes, the other thread waits forever
 *   threads cancelwait pthread_cancel of threads blocked in read (an empty pipe) and in
 *                     pthread_cond_wait: SIGCANCEL's handler runs in them
 *   threads names     thread names: prctl PR_SET_NAME/PR_GET_NAME, pthread_setname_np and
 *                     pthread_getname_np of itself and of another thread (/proc comm)
 *   threads spin N    main spins (no system call) on a flag a thread sets after N steps
 *                     of work, then the two take 5 turns through a spun-on variable
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#define QSIZE 8
#define ITEMS 200

static int queue[QSIZE], qhead, qtail, qcount, produced_done;
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t notfull = PTHREAD_COND_INITIALIZER, notempty = PTHREAD_COND_INITIALIZER;
static long consumed_sum[2], consumed_n[2];

static void *producer(void *arg) {
    int base = (int)(intptr_t)arg;
    for (int i = 1; i <= ITEMS; i++) {
        pthread_mutex_lock(&qlock);
        while (qcount == QSIZE)
            pthread_cond_wait(&notfull, &qlock);
        queue[qtail] = base + i;
        qtail = (qtail + 1) % QSIZE;
        qcount++;
        pthread_cond_signal(&notempty);
        pthread_mutex_unlock(&qlock);
    }
    pthread_mutex_lock(&qlock);
    produced_done++;
    pthread_cond_broadcast(&notempty);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static void *consumer(void *arg) {
    int me = (int)(intptr_t)arg;
    for (;;) {
        pthread_mutex_lock(&qlock);
        while (qcount == 0 && produced_done < 2)
            pthread_cond_wait(&notempty, &qlock);
        if (qcount == 0) {
            pthread_mutex_unlock(&qlock);
            return NULL;
        }
        int v = queue[qhead];
        qhead = (qhead + 1) % QSIZE;
        qcount--;
        pthread_cond_signal(&notfull);
        pthread_mutex_unlock(&qlock);
        consumed_sum[me] += v;
        consumed_n[me]++;
    }
}

static int run_pc(void) {
    pthread_t p[2], c[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&c[i], NULL, consumer, (void *)(intptr_t)i);
    for (int i = 0; i < 2; i++)
        pthread_create(&p[i], NULL, producer, (void *)(intptr_t)(i * 1000));
    for (int i = 0; i < 2; i++)
        pthread_join(p[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(c[i], NULL);
    printf("consumed %ld items, sum %ld\n", consumed_n[0] + consumed_n[1],
           consumed_sum[0] + consumed_sum[1]);
    return 0;
}

static __thread int tls_value = 7;
static __thread char tls_name[16];

static void *tls_worker(void *arg) {
    int n = (int)(intptr_t)arg;
    tls_value += n * 10;
    snprintf(tls_name, sizeof tls_name, "worker%d", n);
    sched_yield();
    long r = tls_value * 100 + n;
    if (strcmp(tls_name, "worker") < 0)
        r = -1;
    return (void *)r;
}

static int run_join(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        if (pthread_create(&t[i], NULL, tls_worker, (void *)(intptr_t)(i + 1)) != 0) {
            puts("pthread_create failed");
            return 1;
        }
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("thread %d returned %ld\n", i + 1, (long)r);
    }
    printf("main tls_value %d name '%s'\n", tls_value, tls_name);
    printf("gettid==getpid in main: %d\n", (int)(syscall(SYS_gettid) == getpid()));
    return 0;
}

static int detached_done;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;

static void *detached(void *arg) {
    pthread_mutex_lock(&qlock);
    detached_done += (int)(intptr_t)arg;
    pthread_cond_signal(&done_cond);
    pthread_mutex_unlock(&qlock);
    return NULL;
}

static int run_detach(void) {
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (int i = 1; i <= 3; i++) {
        pthread_t t;
        pthread_create(&t, &attr, detached, (void *)(intptr_t)i);
    }
    pthread_mutex_lock(&qlock);
    while (detached_done < 6)
        pthread_cond_wait(&done_cond, &qlock);
    pthread_mutex_unlock(&qlock);
    printf("detached threads done: %d\n", detached_done);
    return 0;
}

static volatile int spins;

static void *spinner(void *arg) {
    (void)arg;
    for (;;) {
        spins++;
        pthread_testcancel(); /* the cancellation point */
        sched_yield();
    }
    return NULL;
}

static int run_cancel(void) {
    pthread_t t;
    void *r;
    pthread_create(&t, NULL, spinner, NULL);
    while (spins < 3)
        sched_yield();
    pthread_cancel(t);
    pthread_join(t, &r);
    printf("cancelled: %d\n", r == PTHREAD_CANCELED);
    return 0;
}

static pthread_mutex_t robust;

static void *robust_owner(void *arg) {
    (void)arg;
    pthread_mutex_lock(&robust);
    return NULL; /* exits holding it */
}

static int run_robust(void) {
    pthread_mutexattr_t a;
    pthread_t t;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    pthread_mutex_init(&robust, &a);
    pthread_create(&t, NULL, robust_owner, NULL);
    pthread_join(t, NULL);
    int rc = pthread_mutex_lock(&robust);
    printf("lock after owner died: %s\n", rc == EOWNERDEAD ? "EOWNERDEAD" : strerror(rc));
    if (rc == EOWNERDEAD)
        printf("consistent: %d\n", pthread_mutex_consistent(&robust));
    printf("unlock: %d\n", pthread_mutex_unlock(&robust));
    printf("lock again: %d\n", pthread_mutex_lock(&robust));
    return 0;
}

static volatile long counter;
static int race_loops = 1000;

static void *racer(void *arg) {
    (void)arg;
    for (int i = 0; i < race_loops; i++) {
        long v = counter;
        if (i % 3 == 0)
            sched_yield();
        counter = v + 1;
    }
    return NULL;
}

static int run_race(void) {
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, racer, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    printf("counter %ld of %d\n", counter, 4 * race_loops);
    return 0;
}

static pthread_mutex_t ma = PTHREAD_MUTEX_INITIALIZER, mb = PTHREAD_MUTEX_INITIALIZER;
static pthread_barrier_t barrier;

static void *lock_ba(void *arg) {
    (void)arg;
    pthread_mutex_lock(&mb);
    pthread_barrier_wait(&barrier);
    pthread_mutex_lock(&ma);
    return NULL;
}

static int run_deadlock(void) {
    pthread_t t;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&t, NULL, lock_ba, NULL);
    pthread_mutex_lock(&ma);
    pthread_barrier_wait(&barrier);
    puts("both hold one mutex");
    fflush(stdout);
    pthread_mutex_lock(&mb);
    puts("not reached");
    return 0;
}

static void *nap(void *arg) {
    struct timespec ts = {0, 2000000 * (long)(intptr_t)arg};
    nanosleep(&ts, NULL);
    return arg;
}

static int run_sleep(void) {
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, nap, (void *)(intptr_t)(i + 1));
    pthread_mutex_lock(&qlock);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 5000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    int rc = pthread_cond_timedwait(&done_cond, &qlock, &until);
    pthread_mutex_unlock(&qlock);
    printf("timedwait: %s\n", rc == ETIMEDOUT ? "ETIMEDOUT" : strerror(rc));
    for (int i = 0; i < 2; i++) {
        void *r;
        pthread_join(t[i], &r);
        printf("nap %ld\n", (long)r);
    }
    return 0;
}

static long work_result[3];

static void *worker(void *arg) {
    int n = (int)(intptr_t)arg;
    unsigned long x = (unsigned long)n + 1;
    for (int i = 0; i < race_loops; i++) {
        x = x * 6364136223846793005UL + 1442695040888963407UL;
        if (i % 2000 == 0)
            syscall(SYS_getpid); /* a system call: where time slices end */
    }
    work_result[n] = (long)(x >> 33);
    return NULL;
}

static int run_work(void) {
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++)
        printf("worker %d: %ld\n", i, work_result[i]);
    return 0;
}

static volatile int spin_flag, spin_turn;

static void *spin_peer(void *arg) {
    unsigned long x = 7;
    (void)arg;
    for (int i = 0; i < race_loops; i++)
        x = x * 6364136223846793005UL + 1442695040888963407UL;
    work_result[0] = (long)(x >> 33);
    spin_flag = 1;
    for (int i = 0; i < 5; i++) {
        while (spin_turn != 1)
            ; /* no system call: only the end of the time slice lets main run */
        work_result[2] += i;
        spin_turn = 0;
    }
    return NULL;
}

static int run_spin(void) {
    pthread_t t;
    pthread_create(&t, NULL, spin_peer, NULL);
    while (!spin_flag)
        ;
    for (int i = 0; i < 5; i++) {
        while (spin_turn != 0)
            ;
        work_result[1] += 10 * i;
        spin_turn = 1;
    }
    pthread_join(t, NULL);
    printf("spin: %ld, turns %ld %ld\n", work_result[0], work_result[1], work_result[2]);
    return 0;
}

static int cancel_pipe[2];
static volatile int blocked_started;
static pthread_mutex_t never_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t never_cond = PTHREAD_COND_INITIALIZER;

static void *blocked_reader(void *arg) {
    char c;
    (void)arg;
    blocked_started++;
    read(cancel_pipe[0], &c, 1); /* nobody writes: blocks until cancelled */
    return NULL;
}

static void unlock_never(void *arg) {
    (void)arg;
    pthread_mutex_unlock(&never_lock);
}

static void *blocked_waiter(void *arg) {
    (void)arg;
    pthread_mutex_lock(&never_lock);
    pthread_cleanup_push(unlock_never, NULL);
    blocked_started++;
    for (;;)
        pthread_cond_wait(&never_cond, &never_lock); /* never signalled */
    pthread_cleanup_pop(1);
    return NULL;
}

static int run_cancelwait(void) {
    pthread_t r, w;
    void *rr, *rw;
    pipe(cancel_pipe);
    pthread_create(&r, NULL, blocked_reader, NULL);
    pthread_create(&w, NULL, blocked_waiter, NULL);
    while (blocked_started < 2)
        sched_yield();
    for (int i = 0; i < 5; i++)
        sched_yield(); /* both blocked by now */
    pthread_cancel(r);
    pthread_cancel(w);
    pthread_join(r, &rr);
    pthread_join(w, &rw);
    printf("cancelled in read: %d, in pthread_cond_wait: %d\n", rr == PTHREAD_CANCELED,
           rw == PTHREAD_CANCELED);
    return 0;
}

static pthread_barrier_t name_barrier;

static void *named_self(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "self-named");
    pthread_barrier_wait(&name_barrier); /* everyone named */
    pthread_barrier_wait(&name_barrier); /* main has looked */
    return NULL;
}

static void *named_by_main(void *arg) {
    (void)arg;
    pthread_barrier_wait(&name_barrier);
    pthread_barrier_wait(&name_barrier);
    return NULL;
}

/* Where a debugger looks at the named threads (all alive, waiting on the barrier). */
__attribute__((noinline)) void names_ready(void) {
    __asm__ volatile("" ::: "memory");
}

static int run_names(void) {
    pthread_t a, b;
    char buf[32], path[64];
    FILE *f;
    prctl(PR_SET_NAME, "main-thread");
    pthread_barrier_init(&name_barrier, NULL, 3);
    pthread_create(&a, NULL, named_self, NULL);
    pthread_create(&b, NULL, named_by_main, NULL);
    printf("set other: %d\n", pthread_setname_np(b, "named-by-main"));
    printf("too long: %d\n", pthread_setname_np(b, "sixteen-bytes-xx") == ERANGE);
    pthread_barrier_wait(&name_barrier);
    prctl(PR_GET_NAME, buf);
    printf("main: %s\n", buf);
    pthread_getname_np(a, buf, sizeof buf);
    printf("a: %s\n", buf);
    pthread_getname_np(b, buf, sizeof buf);
    printf("b: %s\n", buf);
    snprintf(path, sizeof path, "/proc/self/comm");
    if ((f = fopen(path, "r")) != NULL) {
        if (fgets(buf, sizeof buf, f))
            printf("comm: %s", buf);
        fclose(f);
    }
    names_ready();
    pthread_barrier_wait(&name_barrier);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    prctl(PR_SET_NAME, "a-very-long-thread-name");
    prctl(PR_GET_NAME, buf);
    printf("cut: %s\n", buf);
    return 0;
}

static int pfd[2];

static void *pipe_writer(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) {
        char msg[32];
        int n = snprintf(msg, sizeof msg, "message %d\n", i);
        sched_yield();
        if (write(pfd[1], msg, n) != n)
            return (void *)1;
    }
    close(pfd[1]);
    return NULL;
}

static void *stuck(void *arg) {
    (void)arg;
    pthread_mutex_lock(&qlock);
    pthread_cond_wait(&done_cond, &qlock); /* never signalled */
    return NULL;
}

static int run_pipe(int stall) {
    pthread_t t;
    char buf[256];
    size_t got = 0;
    ssize_t n;
    if (pipe(pfd))
        return 1;
    pthread_create(&t, NULL, stall ? stuck : pipe_writer, NULL);
    while ((n = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)n;
    buf[got] = 0;
    pthread_join(t, NULL);
    printf("read %zu bytes:\n%s", got, buf);
    return 0;
}

static int count_tasks(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') {
            char path[300];
            snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
            n += access(path, R_OK) == 0;
        }
    closedir(d);
    return n;
}

static int thread_self_ok(void) {
    char link[64], want[64];
    ssize_t n = readlink("/proc/thread-self", link, sizeof link - 1);
    if (n < 0)
        return 0;
    link[n] = 0;
    snprintf(want, sizeof want, "%d/task/%ld", getpid(), (long)syscall(SYS_gettid));
    return strcmp(link, want) == 0;
}

static void *proc_thread(void *arg) {
    (void)arg;
    printf("thread: /proc/thread-self is its task: %d\n", thread_self_ok());
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    return NULL;
}

static int run_proc(void) {
    pthread_t t;
    pthread_barrier_init(&barrier, NULL, 2);
    printf("tasks before: %d\n", count_tasks());
    pthread_create(&t, NULL, proc_thread, NULL);
    pthread_barrier_wait(&barrier);
    printf("tasks with a thread: %d\n", count_tasks());
    printf("main: /proc/thread-self is its task: %d\n", thread_self_ok());
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
    printf("tasks after: %d\n", count_tasks());
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "pc";
    if (argc > 2)
        race_loops = atoi(argv[2]);
    if (!strcmp(mode, "pc"))
        return run_pc();
    if (!strcmp(mode, "join"))
        return run_join();
    if (!strcmp(mode, "detach"))
        return run_detach();
    if (!strcmp(mode, "cancel"))
        return run_cancel();
    if (!strcmp(mode, "robust"))
        return run_robust();
    if (!strcmp(mode, "race"))
        return run_race();
    if (!strcmp(mode, "deadlock"))
        return run_deadlock();
    if (!strcmp(mode, "proc"))
        return run_proc();
    if (!strcmp(mode, "pipe"))
        return run_pipe(0);
    if (!strcmp(mode, "pipestall"))
        return run_pipe(1);
    if (!strcmp(mode, "work"))
        return run_work();
    if (!strcmp(mode, "sleep"))
        return run_sleep();
    if (!strcmp(mode, "cancelwait"))
        return run_cancelwait();
    if (!strcmp(mode, "names"))
        return run_names();
    if (!strcmp(mode, "spin"))
        return run_spin();
    fprintf(stderr, "unknown mode %s\n", mode);
    return 2;
}
