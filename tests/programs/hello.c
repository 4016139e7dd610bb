/*
 * hello.c - process start-up and exit: argv, envp, stdout/stderr, exit status.
 *
 * Exercises: the initial stack layout built by the loader (argc/argv/envp/auxv),
 * getenv, buffered stdout and unbuffered stderr (write(2) on fds 1 and 2),
 * exit_group with a chosen status.
 *
 * Usage:  hello [--exit=N] [ARG...]
 *   Prints "argc=<n>", then every argv[i] (including argv[0] and --exit=N)
 *   as "argv[i]=<s>", then the values of SYXDBG_TEST_VAR and SYXDBG_TEST_VAR2
 *   ("(unset)" when absent).  The number of envp entries is deliberately NOT
 *   printed: it differs between native runs, qemu and emulators.
 *   Writes "hello: to stderr" on stderr.
 * Exit status: N from the first --exit=N argument (0..255), default 3.
 *   Note: argv[0] is printed, so callers that compare output across runners
 *   must pass the same argv[0].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void show_env(const char *name)
{
    const char *v = getenv(name);
    printf("%s=%s\n", name, v ? v : "(unset)");
}

int main(int argc, char **argv)
{
    int status = 3;
    int i;

    printf("argc=%d\n", argc);
    for (i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
        if (strncmp(argv[i], "--exit=", 7) == 0 && status == 3)
            status = atoi(argv[i] + 7) & 0xff;
    }
    show_env("SYXDBG_TEST_VAR");
    show_env("SYXDBG_TEST_VAR2");
    fputs("hello: to stderr\n", stderr);
    fflush(stdout);
    return status;
}
