/*
 * memhog.c - allocates until the system says no, then exits cleanly: under a memory limit
 * (syxdbg --memory-limit) malloc must return NULL, never crash.
 *
 * Usage: memhog [CHUNK_KIB]   (default 1024: 1 MiB chunks, each touched)
 * Prints how many MiB it got (rounded down to 8 MiB) from malloc, then what sbrk and a big
 * mmap say at the limit.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    size_t chunk = (argc > 1 ? strtoul(argv[1], NULL, 10) : 1024) * 1024, total = 0;
    void *p, *brk0;
    for (;;) {
        p = malloc(chunk);
        if (p == NULL)
            break;
        memset(p, 0xA5, chunk);
        total += chunk;
        if (total > ((size_t)1 << 40))
            break;
    }
    printf("malloc returned NULL after %zu MiB (about %zu)\n", total >> 20,
           (total >> 23) << 3);
    brk0 = sbrk(0);
    errno = 0;
    printf("sbrk beyond the limit: %s\n",
           sbrk(64 << 20) == (void *)-1 && errno == ENOMEM && sbrk(0) == brk0 ? "ENOMEM, "
           "break unchanged" : "FAILED");
    errno = 0;
    p = mmap(NULL, 64 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    printf("mmap beyond the limit: %s\n", p == MAP_FAILED && errno == ENOMEM ? "ENOMEM" : "FAILED");
    p = malloc(16);
    printf("small malloc after that: %s\n", p ? "ok" : "NULL");
    return 0;
}
