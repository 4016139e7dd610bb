/*
 * racecount.c - three threads add to a shared counter without a lock.
 *
 * Each round reads the counter, yields the CPU (a system call: the scheduler runs the other
 * workers there) and writes the value read plus one, so updates are lost, the same way on
 * every emulated run (natively it depends on the host's scheduler). Prints the final count.
 * Exercises: gdb's and the shell's threads (issue 13): info threads, thread N + bt, a
 * breakpoint hit by any thread, watch + reverse-continue to the writing thread,
 * reverse-stepi across a thread switch.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>

#define WORKERS 3
#define ROUNDS 5

volatile long counter; /* the shared counter, racy on purpose */
static volatile long finished[WORKERS];

static __attribute__((noinline)) void bump(long id)
{
    long seen = counter;
    sched_yield();
    counter = seen + 1 + 0 * id; /* the racy write */
}

static __attribute__((noinline)) void *worker(void *arg)
{
    long id = (long)arg;
    for (int i = 0; i < ROUNDS; i++)
        bump(id);
    finished[id] = 1;
    return arg;
}

int main(void)
{
    pthread_t threads[WORKERS];
    for (long i = 0; i < WORKERS; i++)
        pthread_create(&threads[i], NULL, worker, (void *)i);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(threads[i], NULL);
    printf("counter %ld\n", counter);
    return 0;
}
