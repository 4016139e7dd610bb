/*
 * sortalloc.c - heap allocator and qsort stress.
 *
 * Exercises: brk/sbrk and mmap/munmap/mremap as used by glibc and musl malloc
 * (blocks > 128 KiB go through mmap in both), malloc/calloc/realloc/free over
 * many sizes, memset/memcpy, and qsort (glibc: merge sort via a temp buffer,
 * musl: smoothsort) over a few thousand records from a fixed-seed LCG.
 *
 * Usage:  sortalloc [NRECORDS]     (default 3000, clamped to 1..1000000)
 * Output: "alloc digest: <16 hex>", "sorted: ok", "sort digest: <16 hex>",
 *   "min: <key> max: <key>", "records: <n>".  Identical across toolchains and
 *   architectures (comparator is a total order, so sort results are unique).
 * Exit status: 0, or 1 if a heap self-check fails (message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct record {
    uint32_t key;
    uint32_t id;
    char tag[8];
};

static uint64_t lcg_state = 0x2545F4914F6CDD1DULL;

static uint32_t lcg(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
    return h;
}

static int cmp_record(const void *a, const void *b)
{
    const struct record *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    if (x->id != y->id)
        return x->id < y->id ? -1 : 1;
    return 0;
}

static int check_fill(const unsigned char *p, size_t n, unsigned char v)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (p[i] != v)
            return -1;
    return 0;
}

#define NSLOTS 64

static uint64_t heap_churn(void)
{
    /* Sizes include mmap-threshold-crossing blocks (> 128 KiB). */
    static const size_t big[] = {
        100, 4096, 65536, 131072 + 1, 200 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 7,
    };
    unsigned char *slot[NSLOTS] = {0};
    size_t size[NSLOTS] = {0};
    uint64_t h = 0;
    int round, i;

    for (round = 0; round < 2000; round++) {
        int s = (int)(lcg() % NSLOTS);
        uint32_t r = lcg();
        size_t n;
        unsigned char v;

        if (slot[s]) {
            if (check_fill(slot[s], size[s], (unsigned char)(s + size[s])) != 0) {
                fprintf(stderr, "sortalloc: heap corruption in slot %d\n", s);
                exit(1);
            }
            h = mix(h, size[s]);
        }
        if (r % 7 == 0) {
            n = big[(r >> 8) % (sizeof big / sizeof big[0])];
        } else if (r % 3 == 0) {
            n = 1 + (r >> 4) % 64;
        } else {
            n = 1 + (r >> 4) % 4000;
        }
        switch ((r >> 20) % 4) {
        case 0: /* free */
            free(slot[s]);
            slot[s] = NULL;
            size[s] = 0;
            continue;
        case 1: { /* realloc (grow or shrink), keep the common prefix */
            unsigned char *p = realloc(slot[s], n);
            size_t keep = size[s] < n ? size[s] : n;
            if (!p) {
                fprintf(stderr, "sortalloc: realloc(%zu) failed\n", n);
                exit(1);
            }
            if (keep && check_fill(p, keep, (unsigned char)(s + size[s])) != 0) {
                fprintf(stderr, "sortalloc: realloc lost data in slot %d\n", s);
                exit(1);
            }
            slot[s] = p;
            break;
        }
        case 2: /* calloc */
            free(slot[s]);
            slot[s] = calloc(1, n);
            if (!slot[s] || check_fill(slot[s], n, 0) != 0) {
                fprintf(stderr, "sortalloc: calloc(%zu) bad\n", n);
                exit(1);
            }
            break;
        default: /* malloc */
            free(slot[s]);
            slot[s] = malloc(n);
            if (!slot[s]) {
                fprintf(stderr, "sortalloc: malloc(%zu) failed\n", n);
                exit(1);
            }
            break;
        }
        size[s] = n;
        v = (unsigned char)(s + n);
        memset(slot[s], v, n);
        h = mix(h, n);
    }
    for (i = 0; i < NSLOTS; i++) {
        if (slot[i] && check_fill(slot[i], size[i], (unsigned char)(i + size[i])) != 0) {
            fprintf(stderr, "sortalloc: final check failed in slot %d\n", i);
            exit(1);
        }
        free(slot[i]);
    }
    return h;
}

int main(int argc, char **argv)
{
    long n = 3000;
    struct record *recs;
    uint64_t h = 0;
    long i;

    if (argc > 1)
        n = strtol(argv[1], NULL, 10);
    if (n < 1)
        n = 1;
    if (n > 1000000)
        n = 1000000;

    printf("alloc digest: %016llx\n", (unsigned long long)heap_churn());

    recs = malloc((size_t)n * sizeof *recs);
    if (!recs) {
        fprintf(stderr, "sortalloc: out of memory\n");
        return 1;
    }
    for (i = 0; i < n; i++) {
        recs[i].key = lcg() % 100000; /* duplicates on purpose */
        recs[i].id = (uint32_t)i;
        snprintf(recs[i].tag, sizeof recs[i].tag, "r%05ld", i % 100000);
    }
    qsort(recs, (size_t)n, sizeof *recs, cmp_record);
    for (i = 1; i < n; i++) {
        if (cmp_record(&recs[i - 1], &recs[i]) >= 0) {
            fprintf(stderr, "sortalloc: not sorted at %ld\n", i);
            return 1;
        }
    }
    printf("sorted: ok\n");
    for (i = 0; i < n; i++) {
        h = mix(h, recs[i].key);
        h = mix(h, recs[i].id);
        h = mix(h, (uint64_t)(unsigned char)recs[i].tag[5]);
    }
    printf("sort digest: %016llx\n", (unsigned long long)h);
    printf("min: %u max: %u\n", recs[0].key, recs[n - 1].key);
    printf("records: %ld\n", n);
    free(recs);
    return 0;
}
