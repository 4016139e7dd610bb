/* A forking TCP echo server: 127.0.0.1, port 0 (printed first); each accepted client is
 * served by a child process (fork) while the parent closes its copy of the connection and
 * waits for the child; exits after N clients.
 * usage: forkserver N */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&a, sizeof a);
    listen(s, 4);
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        int c = accept(s, NULL, NULL);
        pid_t pid = fork();
        if (pid == 0) {
            close(s);
            char buf[256];
            ssize_t r;
            while ((r = recv(c, buf, sizeof buf, 0)) > 0) {
                for (ssize_t k = 0; k < r; k++)
                    if (buf[k] >= 'a' && buf[k] <= 'z')
                        buf[k] -= 32;
                send(c, buf, r, 0);
            }
            _exit(0);
        }
        close(c);
        int st;
        waitpid(pid, &st, 0);
        printf("child %d status %d\n", i, st);
        fflush(stdout);
    }
    return 0;
}
