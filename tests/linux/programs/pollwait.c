/* Readiness of stdin: poll, ppoll, select and pselect with a timeout, then read what is
 * there. Prints the call's result, what it reported and the data, one line per round.
 * usage: pollwait poll|ppoll|select|pselect TIMEOUT_MS ROUNDS */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

static int wait_stdin(const char *how, int ms, int *flags) {
    if (!strcmp(how, "poll") || !strcmp(how, "ppoll")) {
        struct pollfd pfd = {.fd = 0, .events = POLLIN};
        int r;
        if (how[0] == 'p' && how[1] == 'p') {
            struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
            r = ppoll(&pfd, 1, ms < 0 ? NULL : &ts, NULL);
        } else {
            r = poll(&pfd, 1, ms);
        }
        *flags = pfd.revents;
        return r;
    }
    fd_set rd;
    FD_ZERO(&rd);
    FD_SET(0, &rd);
    int r;
    if (!strcmp(how, "select")) {
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000L};
        r = select(1, &rd, NULL, NULL, ms < 0 ? NULL : &tv);
    } else {
        struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
        sigset_t none;
        sigemptyset(&none);
        r = pselect(1, &rd, NULL, NULL, ms < 0 ? NULL : &ts, &none);
    }
    *flags = FD_ISSET(0, &rd);
    return r;
}

int main(int argc, char **argv) {
    if (argc < 4)
        return 2;
    int ms = atoi(argv[2]), rounds = atoi(argv[3]);
    for (int i = 0; i < rounds; i++) {
        int flags = 0;
        int r = wait_stdin(argv[1], ms, &flags);
        printf("%s %d flags %#x", argv[1], r, flags);
        if (r > 0) {
            char buf[64];
            ssize_t n = read(0, buf, sizeof buf - 1);
            if (n < 0)
                n = 0;
            buf[n] = 0;
            if (n && buf[n - 1] == '\n')
                buf[n - 1] = 0;
            printf(" read %zd \"%s\"", n, buf);
            if (n == 0) {
                printf("\n");
                break;
            }
        }
        printf("\n");
        fflush(stdout);
    }
    return 0;
}
