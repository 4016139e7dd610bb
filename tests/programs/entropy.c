/*
 * entropy.c - a run that cannot be repeated: stdin, clocks, getrandom, pid.
 *
 * Exercises: read(0) until EOF, getrandom (32 bytes), clock_gettime
 * (CLOCK_REALTIME and CLOCK_MONOTONIC), getpid, then a compute loop whose
 * result depends on all of them (so a replay that feeds different inputs
 * diverges in registers and memory, not only in the output).
 *
 * Usage:  entropy [ROUNDS]     (ROUNDS of the mixing loop, default 20000)
 * Output: "stdin: <n> bytes", "random: <64 hex>", "realtime: <s>.<9 ns>",
 *   "monotonic: <s>.<9 ns>", "pid: <pid>", "mix: <16 hex>".  The same values
 *   are kept in the global `seen` (struct entropy), for debuggers to find.
 * Exit status: 0 (1 if getrandom or clock_gettime fails).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct entropy {
    uint64_t stdin_bytes;
    uint64_t stdin_hash;
    unsigned char random[32];
    int64_t realtime_s, realtime_ns;
    int64_t monotonic_s, monotonic_ns;
    int64_t pid;
    uint64_t mix;
};

struct entropy seen;

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? strtol(argv[1], NULL, 0) : 20000;
    unsigned char buf[256];
    ssize_t n;
    struct timespec rt, mono;

    seen.stdin_hash = 0xcbf29ce484222325ULL;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        seen.stdin_bytes += (uint64_t)n;
        seen.stdin_hash = fnv(seen.stdin_hash, buf, (size_t)n);
    }
    if (getrandom(seen.random, sizeof seen.random, 0) != (ssize_t)sizeof seen.random)
        return 1;
    if (clock_gettime(CLOCK_REALTIME, &rt) || clock_gettime(CLOCK_MONOTONIC, &mono))
        return 1;
    seen.realtime_s = rt.tv_sec;
    seen.realtime_ns = rt.tv_nsec;
    seen.monotonic_s = mono.tv_sec;
    seen.monotonic_ns = mono.tv_nsec;
    seen.pid = getpid();

    uint64_t h = fnv(seen.stdin_hash, seen.random, sizeof seen.random);
    h = fnv(h, (const unsigned char *)&seen.realtime_s, 4 * sizeof(int64_t));
    h = fnv(h, (const unsigned char *)&seen.pid, sizeof seen.pid);
    for (long i = 0; i < rounds; i++)
        h = (h ^ (h >> 29)) * 0xbf58476d1ce4e5b9ULL + (uint64_t)i;
    seen.mix = h;

    printf("stdin: %llu bytes\n", (unsigned long long)seen.stdin_bytes);
    printf("random: ");
    for (size_t i = 0; i < sizeof seen.random; i++)
        printf("%02x", seen.random[i]);
    printf("\nrealtime: %lld.%09lld\n", (long long)rt.tv_sec, (long long)rt.tv_nsec);
    printf("monotonic: %lld.%09lld\n", (long long)mono.tv_sec, (long long)mono.tv_nsec);
    printf("pid: %lld\n", (long long)seen.pid);
    printf("mix: %016llx\n", (unsigned long long)seen.mix);
    return 0;
}
