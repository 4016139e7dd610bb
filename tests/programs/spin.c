/* Prints "ready" (flushed), then loops forever: the target of the Ctrl-C tests. */
#include <stdio.h>

int main(void)
{
    volatile unsigned long n = 0;
    puts("ready");
    fflush(stdout);
    for (;;)
        n++;
}
