/*
 * filecopy.c - file-system system calls.
 *
 * Exercises: open/openat (O_RDONLY, O_WRONLY|O_CREAT|O_TRUNC, O_RDWR),
 * read/write with a small odd-sized buffer, fstat (st_size), lseek with
 * SEEK_SET/SEEK_CUR/SEEK_END, pread/pwrite (pread64/pwrite64), close,
 * access(F_OK/R_OK), getcwd, unlink.
 *
 * Usage:  filecopy SRC DST
 *   Copies SRC to DST (DST is created/truncated, mode 0644), then re-reads
 *   DST and checks it matches SRC.  Also creates and unlinks the temporary
 *   file "DST.tmp".  Paths are used as given (relative to the cwd).
 * Output (deterministic for given SRC contents):
 *   "getcwd: ok", "access src: ok", "size: <n>", "copied: <n>",
 *   "seek end: <n>", "seek cur: ok", "pread: ok", "pwrite: ok",
 *   "verify: ok", "tmp unlink: ok", "checksum: <fnv1a-32 of SRC, 8 hex>".
 * Exit status: 0 on success, 1 on any failure (message on stderr),
 *   2 on bad usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BUFSZ 37 /* deliberately small and odd: many short read/write calls */

static int fail(const char *what)
{
    fprintf(stderr, "filecopy: %s: %s\n", what, strerror(errno));
    return 1;
}

static uint32_t fnv1a(uint32_t h, const unsigned char *p, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    unsigned char buf[BUFSZ], buf2[BUFSZ];
    char cwd[4096];
    char tmpname[4096];
    struct stat st;
    uint32_t sum = 2166136261u;
    off_t total = 0, off;
    int in, out, tmp;
    ssize_t n;

    if (argc != 3) {
        fprintf(stderr, "usage: filecopy SRC DST\n");
        return 2;
    }

    if (getcwd(cwd, sizeof cwd) == NULL || cwd[0] != '/')
        return fail("getcwd");
    printf("getcwd: ok\n");

    if (access(argv[1], F_OK) != 0 || access(argv[1], R_OK) != 0)
        return fail("access src");
    printf("access src: ok\n");

    in = open(argv[1], O_RDONLY);
    if (in < 0)
        return fail("open src");
    if (fstat(in, &st) != 0)
        return fail("fstat src");
    printf("size: %lld\n", (long long)st.st_size);

    out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0)
        return fail("open dst");
    while ((n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return fail("read src");
        }
        sum = fnv1a(sum, buf, (size_t)n);
        if (write_all(out, buf, (size_t)n) != 0)
            return fail("write dst");
        total += n;
    }
    printf("copied: %lld\n", (long long)total);
    if (close(out) != 0)
        return fail("close dst");

    /* lseek around the source. */
    off = lseek(in, 0, SEEK_END);
    if (off != st.st_size)
        return fail("lseek SEEK_END");
    printf("seek end: %lld\n", (long long)off);
    if (lseek(in, 0, SEEK_SET) != 0)
        return fail("lseek SEEK_SET");
    if (st.st_size >= 2) {
        if (read(in, buf, 1) != 1)
            return fail("read 1");
        off = lseek(in, 0, SEEK_CUR);
        if (off != 1)
            return fail("lseek SEEK_CUR");
        off = lseek(in, -1, SEEK_END);
        if (off != st.st_size - 1)
            return fail("lseek -1 SEEK_END");
    }
    printf("seek cur: ok\n");

    /* pread from the middle of src and dst: must agree and not move the offset. */
    out = open(argv[2], O_RDWR);
    if (out < 0)
        return fail("reopen dst");
    off = st.st_size / 2;
    n = pread(in, buf, sizeof buf, off);
    if (n < 0 || pread(out, buf2, sizeof buf2, off) != n || memcmp(buf, buf2, (size_t)n) != 0)
        return fail("pread");
    if (lseek(out, 0, SEEK_CUR) != 0)
        return fail("pread moved offset");
    printf("pread: ok\n");

    /* pwrite a byte at the end of dst, read it back, then restore the size. */
    buf[0] = 'Z';
    if (pwrite(out, buf, 1, st.st_size) != 1)
        return fail("pwrite");
    if (fstat(out, &st) != 0 || st.st_size != total + 1)
        return fail("fstat after pwrite");
    if (pread(out, buf2, 1, total) != 1 || buf2[0] != 'Z')
        return fail("pread after pwrite");
    if (ftruncate(out, total) != 0)
        return fail("ftruncate");
    printf("pwrite: ok\n");

    /* Verify dst == src by reading both from the start. */
    if (lseek(in, 0, SEEK_SET) != 0 || lseek(out, 0, SEEK_SET) != 0)
        return fail("rewind");
    for (;;) {
        ssize_t a = read(in, buf, sizeof buf);
        ssize_t b;
        if (a < 0)
            return fail("verify read src");
        b = a ? read(out, buf2, (size_t)a) : read(out, buf2, sizeof buf2);
        if (b != a || memcmp(buf, buf2, (size_t)a) != 0) {
            errno = EIO;
            return fail("verify");
        }
        if (a == 0)
            break;
    }
    printf("verify: ok\n");
    close(in);
    close(out);

    /* Temporary file: create, write, unlink, check it is gone. */
    if (snprintf(tmpname, sizeof tmpname, "%s.tmp", argv[2]) >= (int)sizeof tmpname) {
        errno = ENAMETOOLONG;
        return fail("tmpname");
    }
    tmp = open(tmpname, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (tmp < 0)
        return fail("open tmp");
    if (write_all(tmp, (const unsigned char *)"scratch\n", 8) != 0)
        return fail("write tmp");
    close(tmp);
    if (access(tmpname, F_OK) != 0)
        return fail("access tmp");
    if (unlink(tmpname) != 0)
        return fail("unlink tmp");
    if (access(tmpname, F_OK) == 0 || errno != ENOENT) {
        errno = EEXIST;
        return fail("tmp still exists");
    }
    printf("tmp unlink: ok\n");

    printf("checksum: %08x\n", (unsigned)sum);
    return 0;
}
