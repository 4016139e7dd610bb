/* A fatal default action shown to gdb first (tests/gdb/test_gdb_signals_stop.py): SIGTERM
 * sent to itself twice, with no handler; it prints whether it survived the first. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    printf("before\n");
    kill(getpid(), SIGTERM);
    printf("survived\n");
    kill(getpid(), SIGTERM);
    printf("not reached\n");
    return 0;
}
