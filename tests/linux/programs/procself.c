/*
 * procself.c - a program reads its own /proc/self: cmdline, environ, exe, maps, mem, auxv,
 * fd, stat, status. Prints only facts that hold natively, under qemu-user and under syxdbg.
 *
 * Usage: procself [isolation]
 *   isolation: (under syxdbg only) the host behind the emulation stays out of reach:
 *   other processes' /proc directories do not exist, a symlink into the host's /proc is
 *   refused, /proc/self shows nothing of the debugger. Expects ./escape-mem and
 *   ./escape-fd (symlinks to /proc/self/mem and /proc/self/fd/0) in the cwd.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHECK(what, cond) printf("%s: %s\n", what, (cond) ? "ok" : "FAILED")

extern char **environ;
static volatile long secret = 0x1122334455667788L;
static char big[1 << 16];

static ssize_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    ssize_t n, total = 0;
    if (fd < 0)
        return -errno;
    while ((size_t)total < size && (n = read(fd, buf + total, size - total)) > 0)
        total += n;
    close(fd);
    return total;
}

static size_t joined(char **vec, char *out)
{
    size_t n = 0;
    for (; *vec; vec++) {
        size_t len = strlen(*vec) + 1;
        memcpy(out + n, *vec, len);
        n += len;
    }
    return n;
}

/* The maps line containing address a: its permissions and path (empty if none). */
static int find_map(const char *maps, uintptr_t a, char *perms, char *path)
{
    const char *line = maps;
    while (*line) {
        unsigned long lo, hi;
        char p[8] = "", name[512] = "";
        const char *end = strchr(line, '\n');
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %511[^\n]", &lo, &hi, p, name) >= 3 &&
            a >= lo && a < hi) {
            strcpy(perms, p);
            strcpy(path, name);
            return 1;
        }
        if (!end)
            break;
        line = end + 1;
    }
    return 0;
}

static int isolation(void)
{
    char path[128], buf[4096];
    int fd;
    snprintf(path, sizeof path, "/proc/%d/cmdline", (int)getppid());
    CHECK("parent's cmdline hidden", slurp(path, buf, sizeof buf) == -ENOENT);
    CHECK("init's environ hidden", slurp("/proc/1/environ", buf, sizeof buf) == -ENOENT);
    CHECK("mounts of the namespace", slurp("/proc/mounts", buf, sizeof buf) > 0);
    fd = open("escape-mem", O_RDWR);
    CHECK("symlink to the host's /proc/self/mem refused", fd < 0 && errno == EACCES);
    fd = open("escape-fd", O_RDONLY);
    CHECK("symlink to a host descriptor refused", fd < 0);
    snprintf(path, sizeof path, "/proc/%d/task/%d/comm", (int)getpid(), (int)getpid());
    CHECK("own task comm", slurp(path, buf, sizeof buf) > 0);
    CHECK("thread-self maps", slurp("/proc/thread-self/maps", buf, sizeof buf) > 0);
    fd = open("/proc/self/maps", O_WRONLY);
    CHECK("maps not writable", fd < 0 && errno == EACCES);
    return 0;
}

int main(int argc, char **argv)
{
    static char buf[1 << 16], want[1 << 16], maps[1 << 16], perms[8], name[512];
    char link[512], *real;
    ssize_t n;
    size_t len;
    int fd, dfd, unknown = 0, seen_own = 0;
    long value;
    struct dirent *de;
    DIR *dir;

    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc > 1 && strcmp(argv[1], "isolation") == 0)
        return isolation();

    n = slurp("/proc/self/cmdline", buf, sizeof buf);
    len = joined(argv, want);
    CHECK("cmdline", n == (ssize_t)len && memcmp(buf, want, len) == 0);
    n = slurp("/proc/self/environ", buf, sizeof buf);
    len = joined(environ, want);
    CHECK("environ", n == (ssize_t)len && memcmp(buf, want, len) == 0);

    real = realpath(argv[0], NULL);
    n = readlink("/proc/self/exe", link, sizeof link - 1);
    CHECK("readlink exe", real && n > 0 && (link[n] = 0, strcmp(link, real) == 0));
    {
        struct stat a, b;
        n = slurp("/proc/self/exe", buf, 64);
        CHECK("open exe", n == 64 && memcmp(buf, "\177ELF", 4) == 0 &&
                          stat("/proc/self/exe", &a) == 0 && stat(argv[0], &b) == 0 &&
                          a.st_size == b.st_size);
#if defined(__aarch64__)
        CHECK("exe machine", buf[18] == (char)183);
#else
        CHECK("exe machine", buf[18] == 62);
#endif
    }

    n = slurp("/proc/self/maps", maps, sizeof maps - 1);
    maps[n > 0 ? n : 0] = 0;
    CHECK("maps main", find_map(maps, (uintptr_t)&main, perms, name) && perms[0] == 'r' &&
                       perms[2] == 'x' && real && strcmp(name, real) == 0);
    CHECK("maps stack", find_map(maps, (uintptr_t)&fd, perms, name) &&
                        strcmp(name, "[stack]") == 0 && perms[1] == 'w');
    CHECK("maps data", find_map(maps, (uintptr_t)&secret, perms, name) && perms[1] == 'w');
    CHECK("maps nothing else", !strstr(maps, "python") && !strstr(maps, "unicorn") &&
                               !strstr(maps, "syxdbg") && !strstr(maps, "qemu"));

    fd = open("/proc/self/mem", O_RDWR);
    CHECK("open mem rw", fd >= 0);
    CHECK("pread mem", pread(fd, &value, 8, (off_t)(uintptr_t)&secret) == 8 &&
                       value == 0x1122334455667788L);
    value = 0x0102030405060708L;
    CHECK("pwrite mem", pwrite(fd, &value, 8, (off_t)(uintptr_t)&secret) == 8 &&
                        secret == 0x0102030405060708L);
    CHECK("lseek mem", lseek(fd, (off_t)(uintptr_t)&secret, SEEK_SET) ==
                       (off_t)(uintptr_t)&secret && read(fd, &value, 8) == 8 &&
                       value == 0x0102030405060708L &&
                       lseek(fd, 0, SEEK_CUR) == (off_t)(uintptr_t)&secret + 8);
    big[sizeof big - 1] = 7;
    CHECK("read mem big", pread(fd, buf, sizeof big, (off_t)(uintptr_t)big) ==
                          (ssize_t)sizeof big && buf[sizeof big - 1] == 7);
    errno = 0;
    CHECK("mem unmapped is EIO", pread(fd, &value, 8, 4096) < 0 && errno == EIO);
    close(fd);

    {
        unsigned long *av = (unsigned long *)buf, pagesz = 0, entry = 0;
        n = slurp("/proc/self/auxv", buf, sizeof buf);
        for (ssize_t i = 0; i + 1 < n / 8 && av[i]; i += 2) {
            if (av[i] == AT_PAGESZ)
                pagesz = av[i + 1];
            if (av[i] == AT_ENTRY)
                entry = av[i + 1];
        }
        CHECK("auxv", n > 0 && n % 16 == 0 && pagesz == getauxval(AT_PAGESZ) &&
                      entry == getauxval(AT_ENTRY));
    }

    fd = open("procself.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
    snprintf(want, sizeof want, "/proc/self/fd/%d", fd);
    n = readlink(want, link, sizeof link - 1);
    {
        char *cwd = getcwd(NULL, 0);
        snprintf(buf, sizeof buf, "%s/procself.tmp", cwd);
        CHECK("readlink fd", n > 0 && (link[n] = 0, strcmp(link, buf) == 0));
        free(cwd);
    }
    dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY);
    dir = fdopendir(dfd);
    while (dir && (de = readdir(dir))) {
        int num = atoi(de->d_name);
        if (de->d_name[0] == '.')
            continue;
        if (num == fd)
            seen_own = 1;
        else if (num > 2 && num != dirfd(dir))
            unknown++;
    }
    CHECK("fd listing", dir && seen_own && unknown == 0);
    if (dir)
        closedir(dir);
    n = readlink("/proc/self/fd/77", link, sizeof link);
    CHECK("fd not open", n < 0 && errno == ENOENT);
    CHECK("dev fd not open", open("/dev/fd/77", O_RDONLY) < 0 && errno == ENOENT);
    {
        int again = open(want, O_RDONLY);
        write(fd, "hello", 5);
        CHECK("reopen via fd link", again >= 0 && again != fd && read(again, buf, 5) == 5 &&
                                    memcmp(buf, "hello", 5) == 0);
        close(again);
    }
    close(fd);
    unlink("procself.tmp");

    n = slurp("/proc/self/stat", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    {
        char comm[64];
        int pid = 0;
        const char *base = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
        snprintf(comm, sizeof comm, "(%.15s)", base);
        CHECK("stat", sscanf(buf, "%d", &pid) == 1 && pid == getpid() && strstr(buf, comm));
    }
    n = slurp("/proc/self/status", buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    snprintf(want, sizeof want, "\nPid:\t%d\n", (int)getpid());
    CHECK("status", strstr(buf, want) != NULL);
    snprintf(want, sizeof want, "/proc/%d/cmdline", (int)getpid());
    CHECK("pid dir", slurp(want, buf, sizeof buf) > 0);
    CHECK("no such entry", slurp("/proc/self/no-such-entry", buf, sizeof buf) == -ENOENT);
    return 0;
}
