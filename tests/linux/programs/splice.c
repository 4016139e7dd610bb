/* splice (issue 16): file -> pipe, pipe -> file with and without offsets, pipe -> pipe,
 * SPLICE_F_NONBLOCK on an empty pipe, end of file and of a pipe, and the errors Linux
 * gives (ESPIPE for an offset on a pipe, EINVAL without a pipe or for the two ends of one
 * pipe, EBADF for a write-only source). The same output natively and under syxdbg. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void show(const char *what, ssize_t n) {
    /* errno by name: musl's strerror texts differ from glibc's */
    const char *e = n >= 0 ? "" : errno == EAGAIN ? " EAGAIN" : errno == ESPIPE ? " ESPIPE"
                  : errno == EINVAL ? " EINVAL" : errno == EBADF ? " EBADF" : " other";
    printf("%s: %zd%s\n", what, n, e);
}

int main(void) {
    char path[] = "/tmp/syxdbg-splice-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 2;
    unlink(path);
    const char text[] = "0123456789abcdefghijklmnopqrstuvwxyz";
    if (write(fd, text, sizeof text - 1) != (ssize_t)(sizeof text - 1))
        return 3;
    int p[2], q[2];
    if (pipe(p) || pipe(q))
        return 4;

    loff_t off = 10;
    show("file -> pipe at offset 10, 8 bytes", splice(fd, &off, p[1], NULL, 8, 0));
    printf("offset now %lld\n", (long long)off);
    lseek(fd, 0, SEEK_SET);
    show("file -> pipe at the file position, 4 bytes", splice(fd, NULL, p[1], NULL, 4, 0));
    printf("file position now %lld\n", (long long)lseek(fd, 0, SEEK_CUR));
    show("pipe -> pipe, 5 bytes", splice(p[0], NULL, q[1], NULL, 5, 0));
    char buf[64] = {0};
    ssize_t n = read(q[0], buf, sizeof buf - 1);
    printf("second pipe holds %zd: %s\n", n, buf);

    loff_t out = 40;
    show("pipe -> file at offset 40, all", splice(p[0], NULL, fd, &out, 64, 0));
    printf("out offset now %lld\n", (long long)out);
    memset(buf, 0, sizeof buf);
    n = pread(fd, buf, sizeof buf - 1, 40);
    printf("file from 40: %zd: %s\n", n, buf);

    show("empty pipe, SPLICE_F_NONBLOCK", splice(p[0], NULL, fd, NULL, 8, SPLICE_F_NONBLOCK));
    show("offset on a pipe", splice(p[0], &off, fd, NULL, 8, 0));
    show("no pipe", splice(fd, NULL, fd, NULL, 8, 0));
    show("the two ends of one pipe", splice(p[0], NULL, p[1], NULL, 8, 0));
    show("write end as the source", splice(p[1], NULL, fd, NULL, 8, 0));
    show("zero bytes", splice(fd, NULL, p[1], NULL, 0, 0));

    /* A child writes into a pipe; splice waits for it, then sees the end. */
    int r[2];
    if (pipe(r))
        return 5;
    pid_t child = fork();
    if (child == 0) {
        close(r[0]);
        usleep(20000);
        if (write(r[1], "late", 4) != 4)
            _exit(1);
        _exit(0);
    }
    close(r[1]);
    out = 0;
    show("pipe -> file, waiting for the writer", splice(r[0], NULL, fd, &out, 64, 0));
    show("pipe -> file at the end of the pipe", splice(r[0], NULL, fd, &out, 64, 0));
    int st;
    waitpid(child, &st, 0);
    memset(buf, 0, sizeof buf);
    n = pread(fd, buf, 8, 0);
    printf("file starts with %zd: %s\n", n, buf);
    return 0;
}
