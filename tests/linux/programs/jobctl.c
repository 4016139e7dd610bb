/* Stopped and continued processes (issue 14): SIGSTOP, SIGTSTP and SIGCONT between
 * processes, what wait4/waitid and SIGCHLD report of them, signals that wait while a
 * process is stopped, SA_NOCLDSTOP, fatal signals to a stopped process, stop signals
 * discarded in an orphaned process group, and SIGHUP + SIGCONT to a stopped group that an
 * exit orphans. Every line is the same natively and under syxdbg, on every architecture
 * (the order of events is forced by pipes and waits, never by timing). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void line(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (write(1, buf, (size_t)n) != n)
        _exit(99);
}

static const char *describe(int st) {
    static char buf[64];
    if (WIFEXITED(st))
        snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, sizeof buf, "killed by %d", WTERMSIG(st));
    else if (WIFSTOPPED(st))
        snprintf(buf, sizeof buf, "stopped by %d", WSTOPSIG(st));
    else if (WIFCONTINUED(st))
        snprintf(buf, sizeof buf, "continued");
    else
        snprintf(buf, sizeof buf, "status %#x", st);
    return buf;
}

/* waitpid for ``child`` with ``options``, and one line of what it returned. */
static void report(const char *what, pid_t child, int options) {
    int st = 0;
    pid_t got = waitpid(child, &st, options);
    line("%s: %s%s\n", what, got == child ? "" : "(other pid) ", describe(st));
}

/* Bytes ready in a pipe right now (it is made non-blocking for the question). */
static int drain(int fd) {
    char buf[4096];
    int total = 0;
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        total += (int)n;
    }
    fcntl(fd, F_SETFL, flags);
    return total;
}

/* Let every other runnable process run for a while (natively and emulated). */
static void let_others_run(void) {
    for (int i = 0; i < 50; i++)
        sched_yield();
    usleep(20000);
}

static void writer_loop(int fd) {
    for (;;) {
        if (write(fd, "x", 1) != 1)
            _exit(3);
        sched_yield();
    }
}

/* 1. A child that writes to a pipe is stopped, makes no progress, is continued. */
static void stop_and_continue(void) {
    int p[2];
    if (pipe(p))
        _exit(2);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        writer_loop(p[1]);
    }
    close(p[1]);
    char c;
    if (read(p[0], &c, 1) != 1)
        _exit(4);
    kill(child, SIGSTOP);
    report("SIGSTOP, WUNTRACED", child, WUNTRACED);
    drain(p[0]);
    let_others_run();
    line("a stopped child writes %s\n", drain(p[0]) ? "bytes" : "nothing");
    int st = -1;
    pid_t again = waitpid(child, &st, WNOHANG | WUNTRACED);
    line("the stop is reported once: %d\n", (int)again);
    kill(child, SIGCONT);
    report("SIGCONT, WCONTINUED", child, WCONTINUED);
    line("continued, it writes: %s\n", read(p[0], &c, 1) == 1 ? "yes" : "no");
    kill(child, SIGSTOP);
    report("stopped again", child, WUNTRACED);
    kill(child, SIGTERM); /* only SIGKILL acts on a stopped process: this one waits */
    let_others_run();
    st = 0;
    line("SIGTERM to a stopped child, still there: %d\n",
         waitpid(child, &st, WNOHANG | WUNTRACED) == 0);
    kill(child, SIGCONT);
    report("continued, SIGTERM acts", child, 0);
    close(p[0]);
}

/* 2. What SIGCHLD says of a child that stops itself, is continued and exits. */
static void sigchld_codes(void) {
    int go[2];
    sigset_t chld;
    siginfo_t si;
    if (pipe(go))
        _exit(2);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        raise(SIGSTOP);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(5);
        _exit(7);
    }
    close(go[0]);
    for (int step = 0; step < 3; step++) {
        if (sigwaitinfo(&chld, &si) != SIGCHLD)
            _exit(6);
        line("SIGCHLD: code %d, status %d, from the child: %s\n", si.si_code, si.si_status,
             si.si_pid == child ? "yes" : "no");
        if (step == 0)
            kill(child, SIGCONT);
        else if (step == 1 && write(go[1], "g", 1) != 1)
            _exit(8);
    }
    report("then", child, WUNTRACED | WCONTINUED);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    close(go[1]);
}

/* 3. SA_NOCLDSTOP: stops and continues send no SIGCHLD; waitid still sees them. */
static void nocldstop(void) {
    struct sigaction sa;
    sigset_t chld, pending;
    siginfo_t si;
    int go[2];
    if (pipe(go))
        _exit(2);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        setpgid(0, 0); /* a group whose link to the session is its parent: not orphaned */
        raise(SIGTSTP);
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(5);
        _exit(0);
    }
    close(go[0]);
    memset(&si, 0, sizeof si);
    waitid(P_PID, (id_t)child, &si, WSTOPPED);
    line("waitid WSTOPPED: code %d, status %d\n", si.si_code, si.si_status);
    sigpending(&pending);
    line("SIGCHLD pending after the stop: %d\n", sigismember(&pending, SIGCHLD));
    kill(child, SIGCONT);
    memset(&si, 0, sizeof si);
    waitid(P_PID, (id_t)child, &si, WCONTINUED);
    line("waitid WCONTINUED: code %d, status %d\n", si.si_code, si.si_status);
    sigpending(&pending);
    line("SIGCHLD pending after the continue: %d\n", sigismember(&pending, SIGCHLD));
    if (write(go[1], "g", 1) != 1)
        _exit(8);
    memset(&si, 0, sizeof si);
    waitid(P_PID, (id_t)child, &si, WEXITED);
    line("waitid WEXITED: code %d, status %d\n", si.si_code, si.si_status);
    sigpending(&pending);
    line("SIGCHLD pending after the exit: %d\n", sigismember(&pending, SIGCHLD));
    int sig;
    sigwait(&chld, &sig);
    sigprocmask(SIG_UNBLOCK, &chld, NULL);
    close(go[1]);
}

/* 4. A signal sent to a stopped process waits: its handler runs after SIGCONT. */
static int usr1_fd = -1;
static void on_usr1(int sig) {
    (void)sig;
    if (write(usr1_fd, "u", 1) != 1)
        _exit(9);
}

static void pending_while_stopped(void) {
    int p[2], st;
    if (pipe(p))
        _exit(2);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        usr1_fd = p[1];
        signal(SIGUSR1, on_usr1);
        if (write(p[1], "r", 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(p[1]);
    char c;
    if (read(p[0], &c, 1) != 1)
        _exit(4);
    kill(child, SIGSTOP);
    waitpid(child, &st, WUNTRACED);
    kill(child, SIGUSR1);
    let_others_run();
    line("handler ran while stopped: %s\n", drain(p[0]) ? "yes" : "no");
    kill(child, SIGCONT);
    line("after SIGCONT the handler ran: %s\n",
         read(p[0], &c, 1) == 1 && c == 'u' ? "yes" : "no");
    kill(child, SIGKILL);
    report("SIGKILL", child, 0);
    close(p[0]);
}

/* 5. SIGTSTP is discarded in an orphaned process group (a new session's), SIGSTOP not. */
static void orphaned_group(void) {
    int p[2];
    if (pipe(p))
        _exit(2);
    pid_t child = fork();
    if (child == 0) {
        close(p[0]);
        setsid(); /* its group is orphaned: no parent in another group of its session */
        raise(SIGTSTP);
        if (write(p[1], "t", 1) != 1)
            _exit(3);
        raise(SIGSTOP);
        if (write(p[1], "s", 1) != 1)
            _exit(3);
        _exit(0);
    }
    close(p[1]);
    char c;
    line("SIGTSTP in an orphaned group: %s\n",
         read(p[0], &c, 1) == 1 && c == 't' ? "ignored" : "?");
    report("SIGSTOP there", child, WUNTRACED);
    kill(child, SIGCONT);
    line("continued: %c\n", read(p[0], &c, 1) == 1 ? c : '?');
    report("end", child, 0);
    close(p[0]);
}

/* 6. A stopped process whose group an exit orphans gets SIGHUP, then SIGCONT. */
static int hup_fd = -1;
static void on_hup(int sig) {
    (void)sig;
    if (write(hup_fd, "h", 1) != 1)
        _exit(9);
}

static void hangup_on_orphaning(void) {
    int p[2];
    if (pipe(p))
        _exit(2);
    pid_t child = fork();
    if (child == 0) {
        /* A new group in this session: its link to the session is its parent (us). */
        setpgid(0, 0);
        pid_t grandchild = fork();
        if (grandchild == 0) {
            close(p[0]);
            hup_fd = p[1];
            signal(SIGHUP, on_hup);
            raise(SIGSTOP);
            if (write(p[1], "c", 1) != 1) /* continued */
                _exit(3);
            _exit(0);
        }
        int gst;
        waitpid(grandchild, &gst, WUNTRACED); /* stopped: now orphan its group */
        _exit(WIFSTOPPED(gst) ? 0 : 1);
    }
    close(p[1]);
    report("the middle process", child, 0);
    char got[3] = {0};
    for (int i = 0; i < 2; i++)
        if (read(p[0], &got[i], 1) != 1)
            got[i] = '?';
    line("the stopped grandchild got: %s\n", got);
    close(p[0]);
}

int main(void) {
    stop_and_continue();
    sigchld_codes();
    nocldstop();
    pending_while_stopped();
    orphaned_group();
    hangup_on_orphaning();
    line("done\n");
    return 0;
}
