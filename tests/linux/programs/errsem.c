/*
 * errsem.c - error semantics of read/writev with bad pointers, compared with Linux:
 * read at end of file into a bad pointer returns 0 (nothing to copy), read of data into
 * it EFAULT; writev stops at the first bad iovec and returns what it wrote before it
 * (EFAULT only when that is nothing).
 *
 * Usage: errsem   (writes errsem.tmp in the cwd)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static void show(const char *what, ssize_t r)
{
    printf("%s: %zd%s\n", what, r, r < 0 ? (errno == EFAULT ? " EFAULT" : " other") : "");
}

int main(void)
{
    volatile uintptr_t bad_addr = 8;
    void *bad = (void *)bad_addr;
    char buf[16];
    int fd = open("errsem.tmp", O_RDWR | O_CREAT | O_TRUNC, 0600);
    struct iovec iov[3];

    setvbuf(stdout, NULL, _IONBF, 0);
    show("write", write(fd, "abc", 3));
    lseek(fd, 0, SEEK_SET);
    show("read data into a bad pointer", read(fd, bad, 10));
    show("read", read(fd, buf, sizeof buf));
    show("read at EOF into a bad pointer", read(fd, bad, 10));
    show("pread at EOF into a bad pointer", pread(fd, bad, 10, 100));
    iov[0].iov_base = "hello";
    iov[0].iov_len = 5;
    iov[1].iov_base = bad;
    iov[1].iov_len = 5;
    iov[2].iov_base = "world";
    iov[2].iov_len = 5;
    show("writev with a bad second iovec", writev(fd, iov, 3));
    show("writev with a bad first iovec", writev(fd, iov + 1, 2));
    show("size after", lseek(fd, 0, SEEK_END));
    close(fd);
    unlink("errsem.tmp");
    return 0;
}
