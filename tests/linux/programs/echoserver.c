/* A TCP echo server on 127.0.0.1 (port 0: the kernel picks one, printed first), driven by a
 * client in the test: poll on the listening socket, accept4, recv/send until the client
 * closes, then the next client; exits after N clients. Also a socketpair round trip.
 * With "epoll": the waits are epoll_wait on an epoll set (the listening socket, then each
 * client, EPOLLONESHOT re-armed with EPOLL_CTL_MOD).
 * usage: echoserver N [epoll] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int clients = argc > 1 ? atoi(argv[1]) : 1;
    int use_epoll = argc > 2 && !strcmp(argv[2], "epoll");
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev, got_ev[4];
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
        if (use_epoll) {
            ev.events = EPOLLIN;
            ev.data.u64 = 1000 + i;
            if (epoll_ctl(ep, i ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0)
                return 5;
            if (epoll_wait(ep, got_ev, 4, 60000) != 1 || got_ev[0].data.u64 != 1000u + i)
                return 6;
        } else {
            struct pollfd pfd = {.fd = s, .events = POLLIN};
            if (poll(&pfd, 1, 60000) != 1)
                return 3;
        }
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
        if (use_epoll) {
            ev.events = EPOLLIN | EPOLLONESHOT;
            ev.data.fd = c;
            epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
        }
        for (;;) {
            if (use_epoll) {
                if (epoll_wait(ep, got_ev, 4, 60000) != 1 || got_ev[0].data.fd != c)
                    return 7;
                ev.events = EPOLLIN | EPOLLONESHOT; /* re-arm */
                epoll_ctl(ep, EPOLL_CTL_MOD, c, &ev);
            }
            if ((n = recv(c, buf, sizeof buf, 0)) <= 0)
                break;
            for (ssize_t k = 0; k < n; k++)
                if (buf[k] >= 'a' && buf[k] <= 'z')
                    buf[k] -= 32;
            send(c, buf, n, 0);
            total += n;
        }
        printf("client %d from %s nodelay %d echoed %ld\n", i,
               inet_ntoa(peer.sin_addr), nodelay != 0, total);
        fflush(stdout);
        if (use_epoll)
            epoll_ctl(ep, EPOLL_CTL_DEL, c, NULL);
        close(c);
    }
    close(s);
    return 0;
}
