/*
 * loop.c - long-running compute loop.
 *
 * Exercises: sustained straight-line execution with loads/stores (emulator
 * speed, Ctrl-C / interrupt handling, instruction counting, periodic
 * snapshots).  No system calls inside the loop.
 *
 * Usage:  loop [ITERATIONS]    (default 5000000: about 20 instructions per
 *                               iteration at -O1, so ~1e8 instructions; 0 ok)
 * Output: "iterations: <n>" and "checksum: <16 hex>" (identical on all
 *   toolchains/architectures for the same ITERATIONS).
 * Exit status: 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define N 4096

static uint32_t table[N];

int main(int argc, char **argv)
{
    unsigned long long iters = 5000000ULL;
    unsigned long long i;
    uint64_t x = 88172645463325252ULL, sum = 0;
    uint32_t k;

    if (argc > 1)
        iters = strtoull(argv[1], NULL, 10);
    for (k = 0; k < N; k++)
        table[k] = k * 2654435761u;

    for (i = 0; i < iters; i++) {
        /* xorshift64 step, one load, one store, a few ALU ops */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        k = (uint32_t)x & (N - 1);
        table[k] += (uint32_t)(x >> 32);
        sum += table[(k + 1) & (N - 1)];
    }
    for (k = 0; k < N; k++)
        sum = sum * 31 + table[k];

    printf("iterations: %llu\n", iters);
    printf("checksum: %016llx\n", (unsigned long long)sum);
    return 0;
}
