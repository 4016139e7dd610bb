/* What a dynamically linked program sees of its loading: the auxiliary vector, /proc/self
 * (maps, auxv, exe, fd), file-backed mmaps. Prints only facts that do not depend on where
 * things are, so its output is the same natively, under qemu-user and under syxdbg. */
#define _GNU_SOURCE
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <unistd.h>

extern void _start(void);

static char maps[1 << 16];

static void read_maps(void) {
    int fd = open("/proc/self/maps", O_RDONLY);
    size_t n = 0;
    ssize_t r;
    while (fd >= 0 && (r = read(fd, maps + n, sizeof maps - 1 - n)) > 0)
        n += (size_t)r;
    maps[n] = 0;
    if (fd >= 0)
        close(fd);
}

/* The maps line starting at address a (NULL if none). */
static const char *line_at(unsigned long a) {
    char key[32];
    snprintf(key, sizeof key, "%08lx-", a);
    for (const char *l = maps; *l; l = strchr(l, '\n') + 1) {
        if (strncmp(l, key, strlen(key)) == 0)
            return l;
        if (!strchr(l, '\n'))
            break;
    }
    return NULL;
}

/* The maps line containing address a. */
static const char *line_containing(unsigned long a) {
    for (const char *l = maps; *l;) {
        unsigned long lo, hi;
        if (sscanf(l, "%lx-%lx", &lo, &hi) == 2 && lo <= a && a < hi)
            return l;
        const char *nl = strchr(l, '\n');
        if (!nl)
            break;
        l = nl + 1;
    }
    return NULL;
}

static int has(const char *line, const char *what) {
    const char *nl = line ? strchr(line, '\n') : NULL;
    const char *p = line ? strstr(line, what) : NULL;
    return p && (!nl || p < nl);
}

static int first_phdr(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    *(const void **)data = info->dlpi_phdr;
    return 1;
}

int main(int argc, char **argv) {
    (void)argc;
    unsigned long base = getauxval(AT_BASE), entry = getauxval(AT_ENTRY);
    unsigned long phdr = getauxval(AT_PHDR);
    const void *main_phdr = NULL;
    dl_iterate_phdr(first_phdr, &main_phdr);
    printf("AT_ENTRY is _start: %d\n", entry == (unsigned long)&_start);
    printf("AT_PHDR is the program's: %d\n", phdr == (unsigned long)main_phdr);
    printf("AT_PHENT: %lu AT_PHNUM>0: %d\n", getauxval(AT_PHENT), getauxval(AT_PHNUM) > 0);
    read_maps();
    const char *ld = line_at(base);
    printf("AT_BASE maps the interpreter: %d\n", has(ld, "ld-linux") && has(ld, " 00000000 "));
    const char *libc = line_containing((unsigned long)&printf);
    printf("printf is in libc.so.6, executable: %d %d\n", has(libc, "libc.so.6"),
           libc && libc[strcspn(libc, " ") + 3] == 'x');

    /* /proc/self/auxv as the guest reads it. */
    unsigned long av[512] = {0};
    int fd = open("/proc/self/auxv", O_RDONLY);
    ssize_t n = read(fd, av, sizeof av);
    close(fd);
    int found_base = 0, found_entry = 0;
    for (ssize_t i = 0; i + 1 < n / 8; i += 2) {
        found_base |= av[i] == AT_BASE && av[i + 1] == base;
        found_entry |= av[i] == AT_ENTRY && av[i + 1] == entry;
    }
    printf("/proc/self/auxv has AT_BASE, AT_ENTRY: %d %d\n", found_base, found_entry);

    char link[4096], real[4096];
    ssize_t k = readlink("/proc/self/exe", link, sizeof link - 1);
    link[k > 0 ? k : 0] = 0;
    printf("/proc/self/exe is the program: %d\n",
           realpath(argv[0], real) && strcmp(link, real) == 0);

    /* A 5000-byte file: one full page and a partial one. */
    unsigned char pattern[5000];
    for (int i = 0; i < 5000; i++)
        pattern[i] = (unsigned char)(i * 7 + 3);
    fd = open("data.bin", O_RDWR | O_CREAT | O_TRUNC, 0644);
    write(fd, pattern, sizeof pattern);
    char fdlink[64];
    snprintf(fdlink, sizeof fdlink, "/proc/self/fd/%d", fd);
    k = readlink(fdlink, link, sizeof link - 1);
    link[k > 0 ? k : 0] = 0;
    printf("/proc/self/fd/N names the file: %d\n",
           realpath("data.bin", real) && strcmp(link, real) == 0);

    long page = sysconf(_SC_PAGESIZE);
    unsigned char *priv = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    int zeros = 1;
    for (long i = 5000; i < 2 * page; i++)
        zeros &= priv[i] == 0;
    printf("MAP_PRIVATE: contents %d, zero past EOF %d\n",
           memcmp(priv, pattern, 5000) == 0, zeros);
    priv[0] ^= 0xff;
    unsigned char first;
    pread(fd, &first, 1, 0);
    printf("MAP_PRIVATE writes stay private: %d\n", first == pattern[0]);

    unsigned char *off = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, page);
    printf("offset mapping: %d\n", memcmp(off, pattern + page, 5000 - page) == 0 &&
           off[5000 - page] == 0);
    read_maps();
    const char *offline = line_at((unsigned long)off);
    printf("maps shows the file and offset: %d %d\n", has(offline, "data.bin"),
           has(offline, " 00001000 "));

    unsigned char *shared = mmap(NULL, 5000, PROT_READ, MAP_SHARED, fd, 0);
    printf("MAP_SHARED read-only: %d\n", memcmp(shared, pattern, 5000) == 0);

    /* Reserve three pages, then map the file's second page over the middle one. */
    unsigned char *res = mmap(NULL, 3 * page, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    unsigned char *fixed = mmap(res + page, page, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, page);
    printf("MAP_FIXED over a reservation: %d %d\n", fixed == res + page,
           memcmp(fixed, pattern + page, 5000 - page) == 0);
    printf("mprotect of a file mapping: %d", mprotect(fixed, page, PROT_READ | PROT_WRITE));
    fixed[0] = 42;
    printf(" %d\n", fixed[0] == 42);
    read_maps();
    const char *after = line_at((unsigned long)fixed);
    printf("maps after mprotect: %d %d\n", has(after, "rw-p"), has(after, " 00001000 "));
    /* A read-only private mapping changed through /proc/self/mem (as a debugger does), then
     * the same file bytes mapped over it again: the file's bytes, not the changed ones. */
    unsigned char *ro = mmap(NULL, page, PROT_READ, MAP_PRIVATE, fd, 0);
    int mem = open("/proc/self/mem", O_RDWR);
    unsigned char poke = (unsigned char)~pattern[10];
    int poked = pwrite(mem, &poke, 1, (off_t)(unsigned long)(ro + 10)) == 1 && ro[10] == poke;
    close(mem);
    unsigned char *again = mmap(ro, page, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0);
    printf("remap after a forced write: %d %d\n", poked, again == ro && ro[10] == pattern[10]);
    close(fd);
    unlink("data.bin");
    return 0;
}
