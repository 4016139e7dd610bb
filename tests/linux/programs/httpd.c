/* A small HTTP/1.0 file server: 127.0.0.1, port 0 (printed first), an edge-triggered
 * epoll loop over non-blocking sockets, GET of files under DOCROOT (read(2) and send(2),
 * or sendfile(2) with "sendfile"), 404 otherwise; exits after N responses.
 * usage: httpd DOCROOT N [sendfile] */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAXC 16

struct conn {
    int fd;
    size_t got;
    char req[2048];
};

static struct conn conns[MAXC];
static const char *root;
static int use_sendfile;

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                continue; /* a full socket buffer: try again (loopback drains fast) */
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void respond(struct conn *c) {
    char method[8], path[512], file[1024], head[256];
    if (sscanf(c->req, "%7s %511s", method, path) != 2 || strcmp(method, "GET") ||
        strstr(path, "..")) {
        const char *bad = "HTTP/1.0 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        send_all(c->fd, bad, strlen(bad));
        return;
    }
    snprintf(file, sizeof file, "%s%s", root, path);
    int f = open(file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (f < 0 || fstat(f, &st) || !S_ISREG(st.st_mode)) {
        const char *nf = "HTTP/1.0 404 Not Found\r\nContent-Length: 10\r\n\r\nnot found\n";
        send_all(c->fd, nf, strlen(nf));
        if (f >= 0)
            close(f);
        return;
    }
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %lld\r\n\r\n", (long long)st.st_size);
    send_all(c->fd, head, (size_t)n);
    if (use_sendfile) {
        off_t off = 0;
        while (off < st.st_size) {
            ssize_t w = sendfile(c->fd, f, &off, (size_t)(st.st_size - off));
            if (w < 0 && errno != EAGAIN)
                break;
        }
    } else {
        char buf[8192];
        ssize_t r;
        while ((r = read(f, buf, sizeof buf)) > 0)
            if (send_all(c->fd, buf, (size_t)r))
                break;
    }
    close(f);
}

int main(int argc, char **argv) {
    if (argc < 3)
        return 2;
    root = argv[1];
    int left = atoi(argv[2]);
    use_sendfile = argc > 3 && !strcmp(argv[3], "sendfile");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16))
        return 3;
    socklen_t len = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &len);
    printf("port %d\n", ntohs(a.sin_port));
    fflush(stdout);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = s}, evs[8];
    epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
    int served = 0;
    while (served < left) {
        int n = epoll_wait(ep, evs, 8, 60000);
        if (n <= 0)
            return 4;
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == s) {
                int c;
                while ((c = accept4(s, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int slot = 0;
                    while (slot < MAXC && conns[slot].fd)
                        slot++;
                    if (slot == MAXC) {
                        close(c);
                        continue;
                    }
                    conns[slot].fd = c;
                    conns[slot].got = 0;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.fd = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
                }
                continue;
            }
            struct conn *c = NULL;
            for (int k = 0; k < MAXC; k++)
                if (conns[k].fd == fd)
                    c = &conns[k];
            if (!c)
                continue;
            int done = 0;
            for (;;) { /* edge-triggered: drain until EAGAIN */
                ssize_t r = recv(fd, c->req + c->got, sizeof c->req - 1 - c->got, 0);
                if (r > 0) {
                    c->got += (size_t)r;
                    c->req[c->got] = 0;
                    if (strstr(c->req, "\r\n\r\n") || c->got == sizeof c->req - 1) {
                        done = 1;
                        break;
                    }
                    continue;
                }
                if (r == 0)
                    done = -1;
                break;
            }
            if (done) {
                if (done > 0) {
                    respond(c);
                    served++;
                    printf("served %d: %.*s\n", served, (int)strcspn(c->req, "\r"), c->req);
                }
                epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                close(fd);
                c->fd = 0;
            }
        }
    }
    close(ep);
    close(s);
    return 0;
}
