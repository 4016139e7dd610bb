/* A TCP echo server on 127.0.0.1 (port 0: the kernel picks one, printed first), driven by a
 * client in the test: poll on the listening socket, accept4, recv/send until the client
 * closes, then the next client; exits after N clients. Also a socketpair round trip.
 * usage: echoserver N */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int clients = argc > 1 ? atoi(argv[1]) : 1;
    int sv[2];
    char buf[256];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return 1;
    send(sv[0], "pair", 4, 0);
    ssize_t got = recv(sv[1], buf, sizeof buf, 0);
    printf("socketpair %zd %.4s\n", got, buf);
    close(sv[0]);
    close(sv[1]);

    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4))
        return 2;
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (int i = 0; i < clients; i++) {
        struct pollfd pfd = {.fd = s, .events = POLLIN};
        if (poll(&pfd, 1, 60000) != 1)
            return 3;
        struct sockaddr_in peer;
        socklen_t plen = sizeof peer;
        int c = accept4(s, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);
        if (c < 0)
            return 4;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int nodelay = 0;
        socklen_t olen = sizeof nodelay;
        getsockopt(c, IPPROTO_TCP, TCP_NODELAY, &nodelay, &olen);
        long total = 0;
        ssize_t n;
        while ((n = recv(c, buf, sizeof buf, 0)) > 0) {
            for (ssize_t k = 0; k < n; k++)
                if (buf[k] >= 'a' && buf[k] <= 'z')
                    buf[k] -= 32;
            send(c, buf, n, 0);
            total += n;
        }
        printf("client %d from %s nodelay %d echoed %ld\n", i,
               inet_ntoa(peer.sin_addr), nodelay != 0, total);
        fflush(stdout);
        close(c);
    }
    close(s);
    return 0;
}
