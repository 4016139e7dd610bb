/* Signals shown to gdb (tests/gdb/test_gdb_signals_stop.py): SIGUSR1 raised twice at a
 * handler that counts; the program prints the count after each, so the test sees whether
 * the handler ran (passed) or not (discarded). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t hits;

static void on_usr1(int sig) {
    (void)sig;
    hits++; /* the handler's first line */
}

int main(void) {
    struct sigaction sa;
    setvbuf(stdout, NULL, _IONBF, 0);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    raise(SIGUSR1);
    printf("after raise: hits=%d\n", (int)hits);
    kill(getpid(), SIGUSR1);
    printf("after kill: hits=%d\n", (int)hits);
    return 0;
}
