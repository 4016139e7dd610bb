/*
 * spin.c - prints "ready", then loops forever.
 *
 * Exercises: Ctrl-C at any moment of a run, of a recording and of a served
 * session (the tests wait for "ready" on stdout, never sleep).
 *
 * Usage:  spin
 * Output: "ready" (flushed).
 * Exit status: never exits.
 */
#include <stdio.h>

int main(void)
{
    volatile unsigned long n = 0;
    puts("ready");
    fflush(stdout);
    for (;;)
        n++;
}
