/* Blocking socket calls with threads: they must let the other threads run.
 * 1. One process, two threads: the main thread blocks in accept() and then recv() while a
 *    client thread connects to it, sends a request and blocks in recv() for the answer.
 * 2. A host client: the main thread prints the port, blocks in poll() with no timeout, then
 *    accept() and read(), while a worker thread waits on a condition variable for what
 *    arrives; the worker answers.
 * usage: threadnet */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static struct sockaddr_in addr;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ready = PTHREAD_COND_INITIALIZER;
static char request[128];
static int conn = -1;

static int listener(void) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    if (bind(s, (struct sockaddr *)&addr, sizeof addr) || listen(s, 4))
        return -1;
    socklen_t len = sizeof addr;
    getsockname(s, (struct sockaddr *)&addr, &len);
    return s;
}

static void *client(void *arg) {
    (void)arg;
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(c, (struct sockaddr *)&addr, sizeof addr))
        return (void *)1;
    send(c, "ping from a thread", 18, 0);
    char buf[64] = {0};
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    printf("client thread got %zd: %s\n", n, buf);
    close(c);
    return NULL;
}

static void *worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&lock);
    while (conn < 0)
        pthread_cond_wait(&ready, &lock);
    char answer[160];
    int n = snprintf(answer, sizeof answer, "worker saw: %s", request);
    pthread_mutex_unlock(&lock);
    send(conn, answer, (size_t)n, 0);
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    int s = listener();
    pthread_t t;
    pthread_create(&t, NULL, client, NULL);
    int c = accept(s, NULL, NULL);
    char buf[64] = {0};
    ssize_t n = recv(c, buf, sizeof buf - 1, 0);
    printf("main thread got %zd: %s\n", n, buf);
    send(c, "pong", 4, 0);
    void *ret;
    pthread_join(t, &ret);
    close(c);
    printf("client thread returned %ld\n", (long)ret);

    pthread_create(&t, NULL, worker, NULL);
    printf("port %d\n", ntohs(addr.sin_port));
    /* poll with no timeout while the worker waits: only the host client ends it */
    struct pollfd pfd = {.fd = s, .events = POLLIN};
    int polled = poll(&pfd, 1, -1);
    int h = accept(s, NULL, NULL);
    n = read(h, request, sizeof request - 1);
    pthread_mutex_lock(&lock);
    conn = h;
    pthread_cond_signal(&ready);
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);
    printf("poll %d, host client said %zd bytes\n", polled, n);
    close(h);
    close(s);
    return 0;
}
