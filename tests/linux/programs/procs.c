/* Processes: fork, exec, vfork, pipes between processes, wait statuses, signals between
 * processes, SIGCHLD handlers, process groups. Every line of output is deterministic, so the
 * test compares it with the native run. argv[1] selects a role when the program runs itself. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t reaped, usr1;

static void on_chld(int sig) {
    int st;
    (void)sig;
    while (waitpid(-1, &st, WNOHANG) > 0)
        reaped++;
}

static void on_usr1(int sig) { (void)sig; usr1 = 1; }

/* What the last SA_SIGINFO handler of SIGCHLD ([0]) and SIGUSR1 ([1]) was told. */
static volatile sig_atomic_t info_pid[2], info_code[2], info_status[2], info_uid_ok[2];

static void on_info(int sig, siginfo_t *si, void *ctx) {
    int i = sig == SIGUSR1;
    (void)ctx;
    info_pid[i] = si->si_pid;
    info_code[i] = si->si_code;
    info_status[i] = si->si_status;
    info_uid_ok[i] = si->si_uid == getuid();
}

static void describe(const char *what, int st) {
    if (WIFEXITED(st))
        printf("%s: exited %d\n", what, WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        printf("%s: killed by signal %d\n", what, WTERMSIG(st));
    else
        printf("%s: status %#x\n", what, st);
}

/* Role "count": count the bytes and lines of stdin (a pipeline's reader). Only that child
 * runs it (test_processes.py breaks there: not static, so the symbol table names it). */
int count_stdin(void);
int count_stdin(void) {
    char buf[512];
    long bytes = 0, lines = 0;
    ssize_t n;
    while ((n = read(0, buf, sizeof buf)) > 0) {
        bytes += n;
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    printf("count: %ld bytes, %ld lines\n", bytes, lines);
    return 0;
}

/* A read of an empty pipe interrupted by a signal from another process: EINTR, or read
 * again with SA_RESTART (then it gets the byte written after the signal). */
static void interrupted_read(int restart) {
    int fds[2];
    struct sigaction sa;
    if (pipe(fds) != 0)
        return;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = restart ? SA_RESTART : 0;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        usleep(100000); /* the parent blocks in read meanwhile */
        kill(parent, SIGUSR1);
        usleep(100000);
        if (write(fds[1], "x", 1) != 1)
            _exit(1);
        _exit(0);
    }
    close(fds[1]);
    char c;
    usr1 = 0;
    ssize_t n = read(fds[0], &c, 1);
    printf("%s: read=%d %s handler=%d\n", restart ? "SA_RESTART" : "no SA_RESTART", (int)n,
           n < 0 && errno == EINTR ? "EINTR" : "-", (int)usr1);
    waitpid(pid, NULL, 0);
    close(fds[0]);
}

int main(int argc, char **argv) {
    int st, fds[2];
    pid_t pid, w;

    if (argc > 1 && strcmp(argv[1], "count") == 0)
        return count_stdin();
    if (argc > 1 && strcmp(argv[1], "exit") == 0)
        return atoi(argv[2]);
    setvbuf(stdout, NULL, _IONBF, 0);

    /* fork: separate memory, exit status. */
    int shared = 1;
    pid = fork();
    if (pid == 0) {
        shared = 99;
        _exit(shared == 99 ? 5 : 6);
    }
    w = waitpid(pid, &st, 0);
    printf("fork: waited the child %d, parent still sees %d\n", w == pid, shared);
    describe("fork child", st);

    /* A pipeline: this process writes 1000 lines into a pipe read by a child that
     * became "count" through exec, with the pipe as its stdin. */
    if (pipe(fds) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        dup2(fds[0], 0);
        close(fds[0]);
        close(fds[1]);
        execl(argv[0], argv[0], "count", (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    for (int i = 0; i < 1000; i++) {
        char line[64];
        int n = snprintf(line, sizeof line, "line %d of the pipeline\n", i);
        if (write(fds[1], line, n) != n)
            return 2;
    }
    close(fds[1]);
    waitpid(pid, &st, 0);
    describe("pipeline reader", st);

    /* exec's status and a failing exec. */
    pid = fork();
    if (pid == 0) {
        execl(argv[0], argv[0], "exit", "42", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    describe("exec child", st);
    pid = fork();
    if (pid == 0) {
        execl("/nonexistent/program", "x", (char *)NULL);
        _exit(errno == ENOENT ? 10 : 11);
    }
    waitpid(pid, &st, 0);
    describe("failed exec", st);

    /* vfork + exec (what posix_spawn does). */
    pid = vfork();
    if (pid == 0) {
        execl(argv[0], argv[0], "exit", "3", (char *)NULL);
        _exit(127);
    }
    waitpid(pid, &st, 0);
    describe("vfork child", st);

    /* Signals between processes: a child waiting in pause() is killed; another catches
     * SIGUSR1 and exits with a code saying so. */
    pid = fork();
    if (pid == 0) {
        for (;;)
            pause();
    }
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    describe("paused child", st);
    signal(SIGUSR1, on_usr1);
    if (pipe(fds) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        char c;
        close(fds[1]);
        while (!usr1)
            pause();
        /* The parent closes its end after the signal: read sees EOF. */
        ssize_t n = read(fds[0], &c, 1);
        _exit(usr1 && n == 0 ? 20 : 21);
    }
    close(fds[0]);
    kill(pid, SIGUSR1);
    close(fds[1]);
    waitpid(pid, &st, 0);
    describe("SIGUSR1 child", st);

    interrupted_read(1);
    interrupted_read(0);

    /* A full pipe blocks its writer until the reader reads; once the reader closes it, the
     * writer gets SIGPIPE. */
    if (pipe(fds) != 0)
        return 1;
    pid = fork();
    if (pid == 0) {
        char out[1000];
        close(fds[0]);
        memset(out, 'y', sizeof out);
        for (;;)
            if (write(fds[1], out, sizeof out) < 0)
                _exit(50);
    }
    close(fds[1]);
    long total = 0;
    char in[4096];
    while (total < 300000) {
        ssize_t n = read(fds[0], in, sizeof in);
        if (n <= 0)
            break;
        total += n;
    }
    close(fds[0]);
    waitpid(pid, &st, 0);
    printf("full pipe: read at least 300000: %d\n", total >= 300000);
    describe("writer of a closed pipe", st);

    /* Process groups: children in a new group, waited for by group. */
    pid_t leader = fork();
    if (leader == 0) {
        setpgid(0, 0);
        _exit(getpgrp() == getpid() ? 30 : 31);
    }
    setpgid(leader, leader);
    printf("group: child's group is its pid: %d\n", getpgid(leader) == leader);
    w = waitpid(-leader, &st, 0);
    printf("group: waited by group %d\n", w == leader);
    describe("group leader", st);

    /* WNOHANG and ECHILD. */
    printf("wnohang with no children: %s\n", waitpid(-1, &st, WNOHANG) == -1 && errno == ECHILD ? "ECHILD" : "?");
    pid = fork();
    if (pid == 0) {
        pause();
        _exit(0);
    }
    printf("wnohang with a live child: %d\n", waitpid(pid, &st, WNOHANG));
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    describe("killed child", st);

    /* SA_SIGINFO: SIGCHLD says which child ended and how; a signal from a child names it. */
    struct sigaction si;
    memset(&si, 0, sizeof si);
    si.sa_sigaction = on_info;
    si.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGCHLD, &si, NULL);
    pid = fork();
    if (pid == 0)
        _exit(33);
    waitpid(pid, &st, 0);
    printf("SIGCHLD info: pid=%d code=%s status=%d uid=%d\n", info_pid[0] == pid,
           info_code[0] == CLD_EXITED ? "CLD_EXITED" : "?", (int)info_status[0],
           (int)info_uid_ok[0]);
    sigaction(SIGUSR1, &si, NULL);
    pid = fork();
    if (pid == 0) {
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    printf("SIGUSR1 info from the child: pid=%d code=%s uid=%d\n", info_pid[1] == pid,
           info_code[1] == SI_USER ? "SI_USER" : "?", (int)info_uid_ok[1]);
    signal(SIGCHLD, SIG_DFL);

    /* sigtimedwait: signals a child sends, taken without their handlers; timeouts. */
    sigset_t waitset, oldset;
    sigemptyset(&waitset);
    sigaddset(&waitset, SIGUSR1);
    sigaddset(&waitset, SIGUSR2);
    sigprocmask(SIG_BLOCK, &waitset, &oldset);
    struct timespec zero = {0, 0}, short_wait = {0, 20000000};
    printf("sigtimedwait, nothing pending: %s\n",
           sigtimedwait(&waitset, NULL, &zero) < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    printf("sigtimedwait for 20 ms: %s\n",
           sigtimedwait(&waitset, NULL, &short_wait) < 0 && errno == EAGAIN ? "EAGAIN" : "?");
    pid = fork();
    if (pid == 0) {
        kill(getppid(), SIGUSR2);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    siginfo_t got;
    int first = sigwaitinfo(&waitset, &got);
    int first_from_child = got.si_pid == pid;
    int second = sigwaitinfo(&waitset, &got);
    /* (Which comes first depends on when the parent wakes: natively, on another CPU.) */
    printf("sigwaitinfo: both: %d, from the child: %d %d\n",
           first + second == SIGUSR1 + SIGUSR2 && first != second, first_from_child,
           got.si_pid == pid);
    waitpid(pid, &st, 0);
    sigprocmask(SIG_SETMASK, &oldset, NULL);

    /* A child subreaper adopts its orphaned grandchild, which PR_SET_PDEATHSIG kills when
     * its parent ends. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    int up[2], ready[2];
    if (pipe(up) != 0 || pipe(ready) != 0)
        return 1;
    pid_t middle = fork();
    if (middle == 0) {
        close(up[0]);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            char c = 'r';
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (write(ready[1], &c, 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
        char c;
        if (read(ready[0], &c, 1) != 1)  /* the grandchild's death signal is set */
            _exit(1);
        if (write(up[1], &grandchild, sizeof grandchild) != sizeof grandchild)
            _exit(1);
        _exit(8);
    }
    close(up[1]);
    close(ready[0]);
    close(ready[1]);
    pid_t grandchild;
    if (read(up[0], &grandchild, sizeof grandchild) != sizeof grandchild)
        return 1;
    close(up[0]);
    waitpid(middle, &st, 0);
    describe("middle child", st);
    w = waitpid(grandchild, &st, 0);
    printf("subreaper adopted the grandchild: %d\n", w == grandchild);
    describe("grandchild (parent-death signal)", st);

    /* SIGCHLD handler reaping three children. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGCHLD, &sa, NULL);
    for (int i = 0; i < 3; i++) {
        if (fork() == 0)
            _exit(i);
    }
    while (reaped < 3)
        usleep(1000);
    printf("SIGCHLD handler reaped %d\n", (int)reaped);
    printf("getppid of the first process differs from its pid: %d\n", getppid() != getpid());
    return 0;
}
