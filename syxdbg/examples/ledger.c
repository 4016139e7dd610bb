/*
 * corrupt.c - the time-travel demo: "who wrote this byte, and when?"
 *
 * A tiny bank ledger.  Every transaction updates ledger.balance (many
 * legitimate writes); "large" transactions (|amount| >= 500) are also
 * recorded in a 16-entry ring buffer ledger.history[] by a function five
 * calls deep:
 *     main -> run_day -> process_batch -> apply_transaction -> audit
 *          -> record_history
 * The bug is an off-by-one wrap test in record_history ("> HISTORY_LEN"
 * instead of ">="): the 17th large transaction is stored in history[16],
 * which is one past the end of the array and is exactly where
 * ledger.balance lives (struct layout makes this deterministic; int64_t
 * fields, no padding, same on x86_64 and aarch64).  The 17th large
 * transaction is the LAST of the 40 transactions, so the out-of-bounds store
 * is the last write to ledger.balance before main checks it: put a
 * watchpoint on ledger.balance, run to the end, reverse-continue, and you
 * land in record_history (history[16] = 777).
 *
 * Usage:  corrupt [--fixed]
 *   --fixed uses the correct wrap test (no corruption) as a control.
 * Output (buggy, the default):
 *   "transactions: 40", "large: 17", "balance: 777", "expected: 5968",
 *   "ledger CORRUPTED"   -> exit status 1
 * Output (--fixed): same but "balance: 5968" and "ledger ok" -> exit status 0
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Keep the call chain real (visible in backtraces) and stop GCC's
   inter-procedural analysis from proving that record_history cannot modify
   ledger.balance (which would let it cache the balance in a register). */
#if defined(__GNUC__) && !defined(__clang__)
#define NOOPT __attribute__((noipa))
#else
#define NOOPT __attribute__((noinline))
#endif

#define HISTORY_LEN 16
#define LARGE 500

struct ledger {
    int64_t history[HISTORY_LEN]; /* ring buffer of recent large amounts */
    int64_t balance;              /* the victim: sits right after history[] */
    int64_t tx_count;
    int64_t large_count;
    int64_t history_pos;
};

struct ledger ledger; /* global; zero-initialised (.bss) */
int fixed_mode;

static const int64_t amounts[] = {
    120, -45, 510, 300, -600, 75, 900, -20, 650, -510,
    40, 1200, -80, 555, 10, -700, 820, 60, -15, 530,
    250, -999, 35, 640, -90, 505, 15, -560, 700, 25,
    -30, 880, 5, -45, 10, -25, 60, -5, 20, 777,
};
#define NTX ((int)(sizeof amounts / sizeof amounts[0]))

NOOPT static void record_history(int64_t amount)
{
    int64_t pos = ledger.history_pos;
    ledger.history[pos] = amount; /* BUG: pos can be HISTORY_LEN here */
    pos++;
    if (fixed_mode ? pos >= HISTORY_LEN : pos > HISTORY_LEN) /* off-by-one */
        pos = 0;
    ledger.history_pos = pos;
}

NOOPT static void audit(int64_t amount)
{
    if (amount >= LARGE || amount <= -LARGE) {
        ledger.large_count++;
        record_history(amount);
    }
}

NOOPT static void apply_transaction(int64_t amount)
{
    ledger.balance += amount;
    ledger.tx_count++;
    audit(amount);
}

NOOPT static void process_batch(const int64_t *batch, int n)
{
    int i;
    for (i = 0; i < n; i++)
        apply_transaction(batch[i]);
}

NOOPT static void run_day(void)
{
    /* Batches of 8: the corrupting store happens in the last batch. */
    int i;
    for (i = 0; i < NTX; i += 8)
        process_batch(&amounts[i], NTX - i < 8 ? NTX - i : 8);
}

int main(int argc, char **argv)
{
    int64_t expected = 0;
    int i;

    fixed_mode = argc > 1 && strcmp(argv[1], "--fixed") == 0;
    for (i = 0; i < NTX; i++)
        expected += amounts[i];

    run_day();

    printf("transactions: %lld\n", (long long)ledger.tx_count);
    printf("large: %lld\n", (long long)ledger.large_count);
    printf("balance: %lld\n", (long long)ledger.balance);
    printf("expected: %lld\n", (long long)expected);
    if (ledger.balance != expected) {
        printf("ledger CORRUPTED\n");
        return 1;
    }
    printf("ledger ok\n");
    return 0;
}
