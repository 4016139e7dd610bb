/* poll/select with other threads (issue 16): timeouts in virtual time, wake-ups by a write.
 * timeout: the poller waits while main is blocked in pthread_join: nothing can make the pipe
 *          ready, the poll times out (0);
 * expire:  the poller waits while main still runs, then main joins: its timeout expires (0);
 * wake, select: main writes while the poller waits: it wakes with the data.
 * usage: pollthreads timeout|expire|wake|select */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

static int fds[2];

static void *poller(void *arg) {
    const char *how = arg;
    int r, ready;
    if (!strcmp(how, "select")) {
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fds[0], &rd);
        struct timeval tv = {5, 0};
        r = select(fds[0] + 1, &rd, NULL, NULL, &tv);
        ready = FD_ISSET(fds[0], &rd);
    } else {
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        r = poll(&pfd, 1, !strcmp(how, "wake") ? 5000 : 200);
        ready = pfd.revents;
    }
    char buf[16] = {0};
    if (r > 0)
        read(fds[0], buf, sizeof buf - 1);
    printf("%s: %d ready %#x \"%s\"\n", how, r, ready, buf);
    return NULL;
}

int main(int argc, char **argv) {
    const char *how = argc > 1 ? argv[1] : "timeout";
    pipe(fds);
    pthread_t t;
    pthread_create(&t, NULL, poller, (void *)how);
    if (strcmp(how, "timeout")) {
        for (int i = 0; i < 50; i++)
            sched_yield(); /* let the poller wait first */
        if (strcmp(how, "expire"))
            write(fds[1], "ping", 4);
    }
    pthread_join(t, NULL); /* "timeout": nothing else can run, the poll times out */
    printf("joined\n");
    return 0;
}
