/* Buffers filled by system calls, for last-write: recv from a socketpair into ``inbox``,
 * read of a pipe into ``piped``, recvmsg into ``gathered``; then the program changes one
 * byte of ``piped`` itself.
 * usage: recvbuf */
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

char inbox[64];
char piped[64];
char gathered[64];

int main(void) {
    int sv[2], pfd[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(pfd))
        return 1;
    send(sv[0], "hello over a socket", 19, 0);
    if (recv(sv[1], inbox, sizeof inbox, 0) != 19)
        return 2;
    write(pfd[1], "through a pipe", 14);
    if (read(pfd[0], piped, sizeof piped) != 14)
        return 3;
    piped[0] = 'T';
    send(sv[0], "gathered", 8, 0);
    struct iovec iov = {.iov_base = gathered, .iov_len = sizeof gathered};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (recvmsg(sv[1], &m, 0) != 8)
        return 4;
    return 0;
}
