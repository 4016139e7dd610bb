/* Blocking socket calls that wait for the host side (issue 16), driven by tests/linux/test_net_blocking.py.
 *
 * serve [read]   print "port N", accept (blocking), then recv (or read) and echo until the
 *                client closes; print what came. The test interrupts the waits (SIGINT to
 *                syxdbg run, gdb's Ctrl-C to syxdbg serve).
 * connect L C    connect to control port C, then a blocking connect to port L, whose
 *                listener's queue is full until the host reads "go" from the control
 *                connection: a worker thread sends it once the main thread is connecting
 *                (without cooperation the worker never runs: a hang).
 * send D C       the same with a blocking send of 32 MiB to port D, which the host drains
 *                only after "go"; the host then says how much it got.
 * v6 T U        AF_INET6 over ::1: a TCP exchange with the host's server on port T and a
 *                UDP datagram echoed by the host's port U; names and families printed.
 * lone-connect L, lone-send D
 *                one thread: print "waiting", then the blocking connect or send that the
 *                host never lets finish (the test interrupts it).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static atomic_int busy;
static int control = -1;

static int dial(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        return -1;
    }
    return s;
}

static void *worker(void *arg) {
    (void)arg;
    while (!atomic_load(&busy))
        sched_yield();
    if (send(control, "go\n", 3, 0) != 3)
        return (void *)1;
    return NULL;
}

static int serve(int use_read) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 4))
        return 2;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int c = accept(s, NULL, NULL);
    if (c < 0)
        return 3;
    printf("accepted\n");
    fflush(stdout);
    char buf[256], all[4096];
    size_t total = 0;
    for (;;) {
        ssize_t n = use_read ? read(c, buf, sizeof buf) : recv(c, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        if (send(c, buf, n, 0) != n)
            return 4;
        if (total + n < sizeof all) {
            memcpy(all + total, buf, n);
            total += n;
        }
    }
    printf("server got %zu bytes: %.*s\n", total, (int)total, all);
    return 0;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "serve"))
        return serve(argc > 2 && !strcmp(argv[2], "read"));
    if (argc == 4 && !strcmp(argv[1], "v6")) {
        struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
        char buf[128];
        for (int udp = 0; udp < 2; udp++) {
            int s = socket(AF_INET6, udp ? SOCK_DGRAM : SOCK_STREAM, 0);
            a.sin6_port = htons(atoi(argv[udp ? 3 : 2]));
            if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a) != 0)
                return 8;
            struct sockaddr_in6 me, peer;
            socklen_t ml = sizeof me, pl = sizeof peer;
            getsockname(s, (struct sockaddr *)&me, &ml);
            getpeername(s, (struct sockaddr *)&peer, &pl);
            char ip[64];
            inet_ntop(AF_INET6, &peer.sin6_addr, ip, sizeof ip);
            send(s, "v6 ping", 7, 0);
            ssize_t n = recv(s, buf, sizeof buf, 0);
            printf("%s: family %d/%d len %u peer %s, got %.*s\n", udp ? "udp6" : "tcp6",
                   me.sin6_family, peer.sin6_family, (unsigned)pl, ip, (int)(n > 0 ? n : 0),
                   buf);
            close(s);
        }
        return 0;
    }
    if (argc == 3 && !strncmp(argv[1], "lone-", 5)) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int sending = !strcmp(argv[1], "lone-send");
        if (sending && connect(s, (struct sockaddr *)&a, sizeof a) != 0)
            return 7;
        printf("waiting\n");
        fflush(stdout);
        if (sending) {
            size_t size = 64u << 20;
            char *buf = calloc(size, 1);
            printf("sent %zd\n", send(s, buf, size, 0));
        } else {
            printf("connect %d\n", connect(s, (struct sockaddr *)&a, sizeof a));
        }
        return 0;
    }
    if (argc < 4)
        return 1;
    int connecting = !strcmp(argv[1], "connect");
    control = dial(atoi(argv[3]));
    if (control < 0)
        return 5;
    int data = -1;
    if (!connecting && (data = dial(atoi(argv[2]))) < 0)
        return 6;
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    if (connecting) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2])),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        atomic_store(&busy, 1);
        int r = connect(s, (struct sockaddr *)&a, sizeof a);
        printf("blocking connect: %d\n", r);
        close(s);
    } else {
        size_t size = 32u << 20;
        char *buf = malloc(size);
        for (size_t i = 0; i < size; i++)
            buf[i] = (char)(i * 7 + (i >> 12));
        atomic_store(&busy, 1);
        ssize_t n = send(data, buf, size, 0);
        printf("blocking send: %zd\n", n);
        close(data);
    }
    void *ret;
    pthread_join(t, &ret);
    printf("worker: %s\n", ret ? "failed" : "sent go");
    char reply[64];
    ssize_t n = recv(control, reply, sizeof reply - 1, MSG_WAITALL);
    printf("host: %.*s", (int)(n > 0 ? n : 0), reply);
    return 0;
}
