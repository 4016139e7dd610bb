/* gdb's process events (tests/gdb/test_gdb_fork.py): a fork whose child runs a function
 * of its own, then a vfork whose child execs this program again. Every pid is printed, so
 * the test compares what gdb says with what the program saw. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int child_value;

/* Only the fork child runs it. */
__attribute__((noinline)) int in_child(int n) {
    child_value = n * 2 + 1;
    return child_value;
}

/* Only the exec'd program runs it. */
__attribute__((noinline)) int exec_main(int n) {
    printf("exec'd %d\n", n);
    return n;
}

int main(int argc, char **argv) {
    int st;
    if (argc > 2 && strcmp(argv[1], "exec") == 0)
        return exec_main(atoi(argv[2]));
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t pid = fork();
    if (pid == 0)
        _exit(in_child(20));
    printf("forked %d\n", (int)pid);
    waitpid(pid, &st, 0);
    printf("fork child status %d\n", WEXITSTATUS(st));
    pid = vfork();
    if (pid == 0) {
        execl(argv[0], argv[0], "exec", "7", (char *)0);
        _exit(127);
    }
    printf("vforked %d\n", (int)pid);
    waitpid(pid, &st, 0);
    printf("exec child status %d\n", WEXITSTATUS(st));
    return 0;
}
