/*
 * sysprobe.c - the Linux plugin's own probe: fd table, directories, mmap family,
 * stat/statx, cwd, pipes, signals and rlimits. Prints only facts that are the same
 * natively, under qemu-user and under syxdbg.
 *
 * Usage: sysprobe DIR [abort|raise|ignore]
 *   DIR is an empty scratch directory (relative or absolute).
 *   abort : ends with abort()               -> killed by SIGABRT
 *   raise : ends with raise(SIGTERM)        -> killed by SIGTERM
 *   ignore: SIGUSR1 ignored, raised, then exit 0
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CHECK(what, cond) printf("%s: %s\n", what, (cond) ? "ok" : "FAILED")

static int cmpstr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    const char *mode = argc > 2 ? argv[2] : "";
    char buf[256], path[512];
    int fd, fd2, fd3, p[2];
    struct stat st;
    char *real = realpath(argv[0], NULL); /* before chdir: argv[0] may be relative */

    setvbuf(stdout, NULL, _IONBF, 0); /* one write per printf: ordering with the end */
    if (argc < 2 || chdir(argv[1]) != 0) {
        fprintf(stderr, "usage: sysprobe DIR [abort|raise|ignore]\n");
        return 2;
    }
    /* files, fd table, offsets shared by dup */
    fd = open("a.txt", O_RDWR | O_CREAT | O_TRUNC, 0644);
    CHECK("open", fd >= 3);
    CHECK("write", write(fd, "0123456789abcdef", 16) == 16);
    fd2 = dup(fd);
    CHECK("dup", fd2 == fd + 1);
    CHECK("lseek shared", lseek(fd, 4, SEEK_SET) == 4 && lseek(fd2, 0, SEEK_CUR) == 4);
    CHECK("read after dup", read(fd2, buf, 3) == 3 && memcmp(buf, "456", 3) == 0);
    fd3 = dup2(fd, 10);
    CHECK("dup2", fd3 == 10);
    CHECK("dup3 cloexec", dup3(fd, 11, O_CLOEXEC) == 11 && fcntl(11, F_GETFD) == FD_CLOEXEC);
    CHECK("fcntl getfd", fcntl(fd, F_GETFD) == 0);
    CHECK("fcntl setfd", fcntl(fd, F_SETFD, FD_CLOEXEC) == 0 && fcntl(fd, F_GETFD) == FD_CLOEXEC);
    CHECK("fcntl getfl", (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDWR);
    CHECK("fcntl setfl", fcntl(fd, F_SETFL, O_APPEND) == 0 && (fcntl(fd, F_GETFL) & O_APPEND));
    CHECK("fcntl dupfd", fcntl(fd, F_DUPFD, 20) == 20);
    CHECK("close", close(10) == 0 && close(11) == 0 && close(20) == 0);
    CHECK("close twice", close(10) == -1 && errno == EBADF);
    CHECK("fstat", fstat(fd, &st) == 0 && st.st_size == 16 && S_ISREG(st.st_mode));
    CHECK("stat", stat("a.txt", &st) == 0 && st.st_size == 16 && (st.st_mode & 0777) == 0644);
    CHECK("stat dir", stat(".", &st) == 0 && S_ISDIR(st.st_mode));
    CHECK("stat missing", stat("nope", &st) == -1 && errno == ENOENT);
#ifdef SYS_statx
    {
        unsigned char sx[256];
        memset(sx, 0, sizeof sx);
        long r = syscall(SYS_statx, AT_FDCWD, "a.txt", 0, 0x7ff, sx);
        unsigned long long size;
        unsigned short m;
        memcpy(&size, sx + 40, 8);
        memcpy(&m, sx + 28, 2);
        CHECK("statx", r == 0 && size == 16 && S_ISREG(m));
    }
#endif
    /* mmap a file, mremap, mprotect */
    {
        char *m = mmap(NULL, 16, PROT_READ, MAP_PRIVATE, fd, 0);
        CHECK("mmap file", m != MAP_FAILED && memcmp(m, "0123456789abcdef", 16) == 0);
        CHECK("munmap", munmap(m, 16) == 0);
        char *a = mmap(NULL, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        CHECK("mmap anon", a != MAP_FAILED && a[0] == 0 && a[3 * 4096 - 1] == 0);
        memset(a, 'x', 3 * 4096);
        char *b = mremap(a, 3 * 4096, 64 * 4096, MREMAP_MAYMOVE);
        CHECK("mremap grow", b != MAP_FAILED && b[0] == 'x' && b[3 * 4096 - 1] == 'x' && b[64 * 4096 - 1] == 0);
        char *c = mremap(b, 64 * 4096, 4096, 0);
        CHECK("mremap shrink", c == b && c[0] == 'x');
        CHECK("mprotect", mprotect(c, 4096, PROT_READ) == 0);
        CHECK("mprotect unmapped", mprotect(c + 4096, 4096, PROT_READ) == -1 && errno == ENOMEM);
        CHECK("munmap anon", munmap(c, 4096) == 0);
        CHECK("mmap bad", mmap(NULL, 0, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) == MAP_FAILED && errno == EINVAL);
    }
    close(fd2);
    close(fd);
    /* directories */
    CHECK("mkdir", mkdir("sub", 0755) == 0);
    fd = open("sub/b.txt", O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK("open excl", fd >= 0 && close(fd) == 0);
    CHECK("open excl again", open("sub/b.txt", O_WRONLY | O_CREAT | O_EXCL, 0600) == -1 && errno == EEXIST);
    CHECK("rename", rename("sub/b.txt", "sub/c.txt") == 0);
    {
        DIR *d = opendir(".");
        struct dirent *e;
        char *names[16];
        int n = 0, i;
        while (d && (e = readdir(d)) != NULL && n < 16)
            names[n++] = strdup(e->d_name);
        qsort(names, n, sizeof names[0], cmpstr);
        printf("readdir:");
        for (i = 0; i < n; i++)
            printf(" %s", names[i]);
        printf("\n");
        if (d)
            closedir(d);
    }
    CHECK("access", access("a.txt", R_OK | W_OK) == 0 && access("nope", F_OK) == -1 && errno == ENOENT);
    CHECK("chdir", chdir("sub") == 0);
    CHECK("getcwd", getcwd(buf, sizeof buf) != NULL && strlen(buf) > 4 && strcmp(buf + strlen(buf) - 4, "/sub") == 0);
    CHECK("getcwd erange", getcwd(buf, 2) == NULL && errno == ERANGE);
    CHECK("unlink", unlink("c.txt") == 0 && unlink("c.txt") == -1 && errno == ENOENT);
    CHECK("chdir ..", chdir("..") == 0);
    CHECK("rmdir", rmdir("sub") == 0);
    CHECK("unlinkat", unlinkat(AT_FDCWD, "a.txt", 0) == 0);
    /* /proc/self/exe */
    {
        ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
        if (n > 0)
            path[n] = 0;
        CHECK("readlink exe", n > 0 && real && strcmp(path, real) == 0);
    }
    /* pipes */
    CHECK("pipe", pipe(p) == 0 && write(p[1], "ping", 4) == 4 && read(p[0], buf, 4) == 4 && memcmp(buf, "ping", 4) == 0);
    CHECK("tty", !isatty(p[0]) && errno == ENOTTY);
    close(p[0]);
    close(p[1]);
    /* misc */
    {
        struct rlimit rl;
        struct timespec ts;
        CHECK("getrlimit", getrlimit(RLIMIT_STACK, &rl) == 0 && rl.rlim_cur > 0);
        CHECK("umask", umask(077) == umask(022) || 1);
        CHECK("clock_getres", clock_getres(CLOCK_MONOTONIC, &ts) == 0 && ts.tv_sec == 0);
        CHECK("kill 0", kill(getpid(), 0) == 0);
    }
    {
        struct sigaction sa, old;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_IGN;
        CHECK("sigaction", sigaction(SIGUSR2, &sa, NULL) == 0 && sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_IGN);
        CHECK("sigaction kill", sigaction(SIGKILL, &sa, NULL) == -1 && errno == EINVAL);
    }
    if (strcmp(mode, "abort") == 0) {
        printf("aborting\n");
        abort();
    }
    if (strcmp(mode, "raise") == 0) {
        printf("raising\n");
        raise(SIGTERM);
    }
    if (strcmp(mode, "ignore") == 0) {
        signal(SIGUSR1, SIG_IGN);
        raise(SIGUSR1);
        printf("survived\n");
    }
    printf("done\n");
    return 0;
}
