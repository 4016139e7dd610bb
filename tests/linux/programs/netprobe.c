/* Networking beyond the echo server: epoll edge-triggered and one-shot, SCM_RIGHTS over an
 * AF_UNIX socketpair, a non-blocking connect (accepted and refused), UDP between two guest
 * sockets, a poll that times out, and a client of a host server (TCP echo on argv[1], UDP
 * echo on argv[2]; "-" skips them). Every line is the same on any Linux run.
 * usage: netprobe TCPPORT|- UDPPORT|- */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

static int wait1(int ep, struct epoll_event *got) { return epoll_wait(ep, got, 4, 0); }

static void edge_triggered(void) {
    int sv[2];
    char buf[64];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u32 = 1}, got[4];
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[1], &ev);
    printf("et empty %d\n", wait1(ep, got));
    write(sv[0], "0123456789", 10);
    printf("et data %d", wait1(ep, got));
    printf(" again %d\n", wait1(ep, got));
    write(sv[0], "abc", 3);
    printf("et more %d", wait1(ep, got));
    printf(" again %d\n", wait1(ep, got));
    printf("et partial read %zd", read(sv[1], buf, 5));
    printf(" then %d\n", wait1(ep, got));
    ssize_t n, total = 0;
    while ((n = recv(sv[1], buf, sizeof buf, 0)) > 0)
        total += n;
    printf("et drained %zd %s, then %d\n", total, errno == EAGAIN ? "EAGAIN" : "?",
           wait1(ep, got));
    write(sv[0], "0123456789", 10);
    printf("et same size again %d\n", wait1(ep, got));
    while (read(sv[1], buf, sizeof buf) > 0) {
    }
    printf("et drained by read, then %d", wait1(ep, got));
    write(sv[0], "xy", 2);
    printf(", new data %d\n", wait1(ep, got));

    /* Level-triggered on the same data: reported every time. */
    struct epoll_event lt = {.events = EPOLLIN, .data.u32 = 2};
    epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &lt);
    printf("lt %d", wait1(ep, got));
    printf(" %d\n", wait1(ep, got));

    /* One-shot: once, then disabled until EPOLL_CTL_MOD. */
    struct epoll_event one = {.events = EPOLLIN | EPOLLONESHOT, .data.u32 = 3};
    epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &one);
    printf("oneshot %d", wait1(ep, got));
    printf(" then %d", wait1(ep, got));
    epoll_ctl(ep, EPOLL_CTL_MOD, sv[1], &one);
    printf(" re-armed %d data %u\n", wait1(ep, got), got[0].data.u32);

    /* EPOLLOUT, edge-triggered: once while writable. */
    struct epoll_event out = {.events = EPOLLOUT | EPOLLET, .data.u32 = 4};
    epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &out);
    int r = wait1(ep, got);
    printf("et out %d events %#x", r, r > 0 ? got[0].events : 0);
    printf(" then %d\n", wait1(ep, got));
    close(ep);
    close(sv[0]);
    close(sv[1]);
}

static void pass_fds(const char *self) {
    int sv[2], pfd[2];
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    pipe(pfd);
    int file = open(self, O_RDONLY);
    int fds[2] = {pfd[0], file};
    char cbuf[CMSG_SPACE(sizeof fds)];
    memset(cbuf, 0, sizeof cbuf);
    struct iovec iov = {.iov_base = "fds", .iov_len = 3};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
                       .msg_controllen = sizeof cbuf};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    printf("sendmsg rights %zd\n", sendmsg(sv[0], &m, 0));
    close(pfd[0]);
    close(file);

    char data[8] = {0};
    char rbuf[CMSG_SPACE(sizeof fds)];
    struct iovec riov = {.iov_base = data, .iov_len = sizeof data};
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = rbuf,
                        .msg_controllen = sizeof rbuf};
    ssize_t n = recvmsg(sv[1], &rm, MSG_CMSG_CLOEXEC);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rm);
    int got[2] = {-1, -1};
    if (rc && rc->cmsg_type == SCM_RIGHTS)
        memcpy(got, CMSG_DATA(rc), sizeof got);
    printf("recvmsg %zd %.3s level %d type %d len %zu flags %#x\n", n, data,
           rc ? rc->cmsg_level : -1, rc ? rc->cmsg_type : -1,
           rc ? (size_t)rc->cmsg_len : 0, rm.msg_flags);
    write(pfd[1], "through the pipe", 16);
    char pbuf[32] = {0};
    printf("received pipe %zd %s cloexec %d\n", read(got[0], pbuf, sizeof pbuf), pbuf,
           (fcntl(got[0], F_GETFD) & FD_CLOEXEC) != 0);
    char elf[4] = {0};
    printf("received file %zd %d\n", read(got[1], elf, 4), !memcmp(elf, "\177ELF", 4));

    /* No room for the rights: MSG_CTRUNC. */
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    fds[0] = pfd[1];
    fds[1] = pfd[1];
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    sendmsg(sv[0], &m, 0);
    rm.msg_control = NULL;
    rm.msg_controllen = 0;
    n = recvmsg(sv[1], &rm, 0);
    printf("recvmsg without room %zd ctrunc %d\n", n, (rm.msg_flags & MSG_CTRUNC) != 0);
    close(got[0]);
    close(got[1]);
    close(pfd[1]);
    close(sv[0]);
    close(sv[1]);
}

static int listener(struct sockaddr_in *a, int type, int listening) {
    int s = socket(AF_INET, type | SOCK_CLOEXEC, 0);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a->sin_port = 0;
    bind(s, (struct sockaddr *)a, sizeof *a);
    if (listening)
        listen(s, 4);
    socklen_t len = sizeof *a;
    getsockname(s, (struct sockaddr *)a, &len);
    return s;
}

static void nonblocking_connect(void) {
    struct sockaddr_in a;
    int l = listener(&a, SOCK_STREAM, 1);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int r = connect(c, (struct sockaddr *)&a, sizeof a);
    printf("connect %s\n", r == 0 || errno == EINPROGRESS ? "0-or-EINPROGRESS" : "?");
    struct pollfd p = {.fd = c, .events = POLLOUT};
    r = poll(&p, 1, 5000);
    int err = -1;
    socklen_t len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("connect poll %d revents %#x so_error %d\n", r, p.revents, err);
    int s = accept(l, NULL, NULL);
    send(c, "hi", 2, 0);
    char buf[4] = {0};
    printf("accepted %zd %.2s\n", recv(s, buf, sizeof buf, 0), buf);
    close(s);
    close(c);
    close(l);

    /* Refused: a bound port nobody listens on. */
    int b = listener(&a, SOCK_STREAM, 0);
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r = connect(c, (struct sockaddr *)&a, sizeof a);
    printf("refused connect %s\n",
           r < 0 && (errno == EINPROGRESS || errno == ECONNREFUSED) ? "failed" : "?");
    p.fd = c;
    poll(&p, 1, 5000);
    len = sizeof err;
    getsockopt(c, SOL_SOCKET, SO_ERROR, &err, &len);
    printf("refused poll revents-err %d so_error %s\n", (p.revents & POLLERR) != 0 ||
           r < 0, err == ECONNREFUSED || (err == 0 && errno == ECONNREFUSED) ? "ECONNREFUSED"
                                                                        : "?");
    close(c);
    close(b);
}

static void udp(void) {
    struct sockaddr_in a, b, from;
    int sa = listener(&a, SOCK_DGRAM, 0), sb = listener(&b, SOCK_DGRAM, 0);
    sendto(sa, "datagram one", 12, 0, (struct sockaddr *)&b, sizeof b);
    sendto(sa, "two", 3, 0, (struct sockaddr *)&b, sizeof b);
    char buf[32] = {0};
    socklen_t len = sizeof from;
    ssize_t n = recvfrom(sb, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    printf("udp %zd %.12s from-sender %d\n", n, buf, from.sin_port == a.sin_port);
    n = recvfrom(sb, buf, 2, MSG_TRUNC, NULL, NULL);
    printf("udp truncated %zd\n", n);
    struct mmsghdr out[2], in[4];
    struct iovec oiov[2] = {{.iov_base = "first", .iov_len = 5}, {.iov_base = "2nd", .iov_len = 3}};
    char ibuf[4][16];
    struct iovec iiov[4];
    memset(out, 0, sizeof out);
    memset(in, 0, sizeof in);
    for (int i = 0; i < 2; i++) {
        out[i].msg_hdr.msg_iov = &oiov[i];
        out[i].msg_hdr.msg_iovlen = 1;
        out[i].msg_hdr.msg_name = &b;
        out[i].msg_hdr.msg_namelen = sizeof b;
    }
    for (int i = 0; i < 4; i++) {
        iiov[i].iov_base = ibuf[i];
        iiov[i].iov_len = sizeof ibuf[i];
        in[i].msg_hdr.msg_iov = &iiov[i];
        in[i].msg_hdr.msg_iovlen = 1;
    }
    int sent = sendmmsg(sa, out, 2, 0);
    int got = recvmmsg(sb, in, 4, MSG_WAITFORONE, NULL);
    printf("mmsg sent %d (%u %u) got %d (%u %.5s, %u %.3s)\n", sent, out[0].msg_len,
           out[1].msg_len, got, in[0].msg_len, ibuf[0], in[1].msg_len, ibuf[1]);
    struct pollfd p = {.fd = sb, .events = POLLIN};
    printf("udp poll timeout %d\n", poll(&p, 1, 50));
    n = recv(sb, buf, sizeof buf, MSG_DONTWAIT);
    printf("udp empty %zd %s\n", n, n < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    close(sa);
    close(sb);
}

static void host_server(const char *tcp, const char *udpport) {
    if (strcmp(tcp, "-")) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(tcp)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int c = socket(AF_INET, SOCK_STREAM, 0);
        printf("host tcp connect %d\n", connect(c, (struct sockaddr *)&a, sizeof a));
        const char *msg = "request from the guest";
        send(c, msg, strlen(msg), 0);
        shutdown(c, SHUT_WR);
        char buf[128] = {0};
        ssize_t n, total = 0;
        while ((n = read(c, buf + total, sizeof buf - 1 - total)) > 0)
            total += n;
        printf("host tcp reply %zd %s\n", total, buf);
        close(c);
    }
    if (strcmp(udpport, "-")) {
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(udpport)),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)}, from;
        int u = socket(AF_INET, SOCK_DGRAM, 0);
        sendto(u, "udp ping", 8, 0, (struct sockaddr *)&a, sizeof a);
        char buf[64] = {0};
        socklen_t len = sizeof from;
        struct pollfd p = {.fd = u, .events = POLLIN};
        int r = poll(&p, 1, 10000);
        ssize_t n = recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        printf("host udp poll %d reply %zd %s from-server %d\n", r, n, buf,
               from.sin_port == a.sin_port);
        close(u);
    }
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IONBF, 0);
    edge_triggered();
    pass_fds(argv[0]);
    nonblocking_connect();
    udp();
    host_server(argc > 1 ? argv[1] : "-", argc > 2 ? argv[2] : "-");
    return 0;
}
