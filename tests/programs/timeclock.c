/*
 * timeclock.c - time, randomness and identity system calls.
 *
 * Exercises: clock_gettime (CLOCK_MONOTONIC, CLOCK_REALTIME; may be served by
 * the vDSO natively - a static binary still calls it via the vDSO if the
 * kernel provides AT_SYSINFO_EHDR, otherwise via the syscall), gettimeofday,
 * time, nanosleep (1 ms), getrandom (16 bytes, via <sys/random.h>), getpid,
 * getppid, getuid/geteuid/getgid, uname.
 *
 * Usage:  timeclock     (no arguments, no input)
 * Output: only deterministic facts, one "<what>: ok" line per check, e.g.
 *   "clock monotonic: ok" (non-decreasing and advanced >= 1 ms across the
 *   nanosleep), "clock realtime: ok" (after 2020-01-01 and within 5 s of
 *   time() and gettimeofday()), "getrandom: 16 bytes", "uname sysname: Linux",
 *   "uname machine: ok" (matches the compiled architecture).  A failed check
 *   prints "<what>: FAILED" (details on stderr).
 * Exit status: 0 if all checks pass, else 1.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#if defined(__x86_64__)
#define EXPECTED_MACHINE "x86_64"
#elif defined(__aarch64__)
#define EXPECTED_MACHINE "aarch64"
#else
#define EXPECTED_MACHINE ""
#endif

#define Y2020 1577836800LL

static int failures;

static void check(const char *what, int ok)
{
    printf("%s: %s\n", what, ok ? "ok" : "FAILED");
    if (!ok)
        failures++;
}

static long long ns(const struct timespec *t)
{
    return (long long)t->tv_sec * 1000000000LL + t->tv_nsec;
}

int main(void)
{
    struct timespec m0, m1, m2, rt, req;
    struct timeval tv;
    struct utsname u;
    unsigned char rnd[16];
    time_t t;
    ssize_t got;
    int ok;

    ok = clock_gettime(CLOCK_MONOTONIC, &m0) == 0 && clock_gettime(CLOCK_MONOTONIC, &m1) == 0;
    req.tv_sec = 0;
    req.tv_nsec = 1000000; /* 1 ms */
    while (nanosleep(&req, &req) != 0 && errno == EINTR)
        ;
    ok = ok && clock_gettime(CLOCK_MONOTONIC, &m2) == 0;
    if (!(ok && ns(&m1) >= ns(&m0) && ns(&m2) - ns(&m1) >= 1000000))
        fprintf(stderr, "monotonic: %lld %lld %lld\n", ns(&m0), ns(&m1), ns(&m2));
    check("clock monotonic", ok && ns(&m1) >= ns(&m0) && ns(&m2) - ns(&m1) >= 1000000);
    check("nanosleep", 1);

    ok = clock_gettime(CLOCK_REALTIME, &rt) == 0;
    t = time(NULL);
    ok = ok && gettimeofday(&tv, NULL) == 0;
    if (!(ok && rt.tv_sec >= Y2020 && rt.tv_nsec >= 0 && rt.tv_nsec < 1000000000L))
        fprintf(stderr, "realtime: %lld.%09ld\n", (long long)rt.tv_sec, (long)rt.tv_nsec);
    check("clock realtime", ok && rt.tv_sec >= Y2020 && rt.tv_nsec >= 0 &&
                                rt.tv_nsec < 1000000000L);
    check("time", t >= Y2020 && (long long)t - rt.tv_sec <= 5 && rt.tv_sec - (long long)t <= 5);
    check("gettimeofday", tv.tv_usec >= 0 && tv.tv_usec < 1000000 &&
                              (long long)tv.tv_sec - rt.tv_sec <= 5 &&
                              rt.tv_sec - (long long)tv.tv_sec <= 5);

    memset(rnd, 0, sizeof rnd);
    got = getrandom(rnd, sizeof rnd, 0);
    if (got < 0)
        perror("getrandom");
    printf("getrandom: %ld bytes\n", (long)got);
    if (got != (ssize_t)sizeof rnd)
        failures++;

    check("getpid", getpid() > 0 && getppid() >= 0);
    check("getuid", getuid() == geteuid() && (int)getgid() >= 0);

    if (uname(&u) != 0) {
        perror("uname");
        failures++;
    } else {
        printf("uname sysname: %s\n", u.sysname);
        if (strcmp(u.machine, EXPECTED_MACHINE) != 0)
            fprintf(stderr, "uname machine: %s\n", u.machine);
        check("uname machine", strcmp(u.machine, EXPECTED_MACHINE) == 0);
        check("uname release", u.release[0] >= '0' && u.release[0] <= '9');
    }
    return failures ? 1 : 0;
}
